"""No credential reaches the store: planted secrets, then every byte of the store folder is read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autotrack._capture.redact import is_secret_name, redact_argv, redact_text, redact_url

ROOT = Path(__file__).resolve().parents[1]

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTEDKEY01"
HF_TOKEN = "hf_PlantedTokenAbCdEfGhIjKlMnOpQr"
HUB_TOKEN = "hub-planted-token-9f8e7d6c5b4a"
REMOTE_TOKEN = "ghp_PlantedRemoteToken1234567890ab"
API_KEY_ARG = "planted-api-key-value-5566"
PASSWORD_IN_CODE = "planted-password-in-diff"


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_planted_secrets_never_reach_the_store(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    script = textwrap.dedent("""\
        import os, sys
        import autotrack
        autotrack.set_store(sys.argv[1])
        with autotrack.start_run(params={"lr": 0.1}) as run:
            run.log_metric("train/loss", 1.0)
        print(run.id)
        """)
    (repo / "train.py").write_text(script)
    (repo / "config.py").write_text("BATCH = 8\n")
    _git(repo, "add", "train.py", "config.py")
    _git(repo, "commit", "-q", "-m", "first")
    _git(repo, "remote", "add", "origin", f"https://user:{REMOTE_TOKEN}@git.example.com/team/repo.git")
    # an uncommitted change that pastes credentials into tracked code: the diff must be cleaned
    (repo / "config.py").write_text(
        f'BATCH = 8\npassword = "{PASSWORD_IN_CODE}"\nHF = "{HF_TOKEN}"\n'
    )
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STRICT": "1", "AUTOTRACK_SYSTEM_METRICS": "0",
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "HF_TOKEN": HF_TOKEN,
           "CUDA_PLANTED_TOKEN": HF_TOKEN}  # allow-listed prefix, secret-looking name
    env.pop("AUTOTRACK_CAPTURE", None)
    argv = [sys.executable, "train.py", str(store), f"--hub_token={HUB_TOKEN}", "--api-key", API_KEY_ARG,
            f"--data=https://bob:{REMOTE_TOKEN}@data.example.com/x.csv"]
    out = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]

    import autotrack

    rec = autotrack.get_run(run_id, store=store)
    assert {"hardware", "environment", "source"} <= set(rec.sections)
    names = {a.name for a in rec.artifacts}
    assert {"source/git.diff", "source/train.py"} <= names  # the diff was captured, cleaned

    blobs = b""
    for path in sorted(store.rglob("*")):
        if path.is_file():
            blobs += path.read_bytes()
    assert len(blobs) > 10_000
    for secret in (AWS_SECRET, HF_TOKEN, HUB_TOKEN, REMOTE_TOKEN, API_KEY_ARG, PASSWORD_IN_CODE):
        assert secret.encode() not in blobs, f"{secret!r} reached the store"
    # and what was redacted is still useful
    src = rec.info("source")
    assert src["git"]["remote_url"] == "https://git.example.com/team/repo.git"
    assert src["argv"][2:] == ["--hub_token=***", "--api-key", "***", "--data=https://data.example.com/x.csv"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [("HF_TOKEN", True), ("AWS_SECRET_ACCESS_KEY", True), ("--hub_token", True), ("api-key", True),
     ("db.password", True), ("GITHUB_PAT", True), ("WANDB_API_KEY", True), ("key_size", False),
     ("max_tokens", False), ("tokenizer", False), ("PWD", False), ("monkey", False), ("lr", False),
     ("pad_token", False), ("--eos-token", False), ("hub_token", True)],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_redact_argv_forms():
    argv = ["train.py", "--password", "p4ss-w0rd", "--lr", "0.1", "-token", "abc12345", "model.secret=xyz",
            "--token", "--next", "--max_tokens", "512"]
    assert redact_argv(argv) == ["train.py", "--password", "***", "--lr", "0.1", "-token", "***",
                                 "model.secret=***", "--token", "--next", "--max_tokens", "512"]


def test_redact_url_and_text():
    assert redact_url("https://user:pw@host/repo.git") == "https://host/repo.git"
    assert redact_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git"
    assert redact_url("ssh://git@host:22/x") == "ssh://host:22/x"
    text = 'key = "AKIAABCDEFGHIJKLMNOP"\napi_key: "s3cr3t-value"\nsteps = 10\n'
    cleaned = redact_text(text, extra=[])
    assert "AKIAABCDEFGHIJKLMNOP" not in cleaned and "s3cr3t-value" not in cleaned
    assert "steps = 10" in cleaned
    assert redact_text('tok.pad_token = "<pad>"\n', extra=[]) == 'tok.pad_token = "<pad>"\n'
    assert redact_text("value is hunter2-planted", extra=["hunter2-planted"]) == "value is ***"
