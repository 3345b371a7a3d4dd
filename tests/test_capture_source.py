"""The source and environment sections, checked against git and the interpreter themselves."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autotrack
from autotrack import _capture

ROOT = Path(__file__).resolve().parents[1]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("AUTOTRACK_CAPTURE", raising=False)
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0")
    previous = _capture._settings
    yield
    _capture._settings = previous


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "model.py").write_text("LAYERS = 2\n")
    (repo / "train.py").write_text(textwrap.dedent("""\
        import sys
        import autotrack
        with autotrack.start_run() as run:
            pass
        print(run.id)
        """))
    git(repo, "add", "model.py", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def run_script(repo: Path, store: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_STRICT": "1",
                "AUTOTRACK_SYSTEM_METRICS": "0", **(env or {})}
    full_env.pop("AUTOTRACK_CAPTURE", None)
    out = subprocess.run([sys.executable, "train.py", *args], cwd=repo, capture_output=True, text=True,
                         env=full_env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def read_artifact(store_root: Path, artifact) -> str:
    return (store_root / "artifacts" / artifact.sha256[:2] / artifact.sha256).read_text()


@needs_git
def test_git_state_diff_and_script_in_a_real_repository(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "model.py").write_text("LAYERS = 2\nHIDDEN_SIZE = 317  # the uncommitted change\n")
    (repo / "notes.txt").write_text("untracked\n")
    git(repo, "remote", "add", "origin", "https://github.com/example/project.git")
    store = tmp_path / "store"
    run_id = run_script(repo, store, "--epochs", "3")

    rec = autotrack.get_run(run_id, store=store)
    src = rec.info("source")
    g = src["git"]
    assert g["commit"] == git(repo, "rev-parse", "HEAD")
    assert g["branch"] == git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert Path(g["root"]) == repo.resolve()
    assert g["dirty"] is True and g["changed_files"] == 1
    assert g["untracked_files"] == ["notes.txt"]
    assert g["remote"] == "origin" and g["remote_url"] == "https://github.com/example/project.git"
    assert src["argv"] == ["train.py", "--epochs", "3"]
    assert Path(src["cwd"]) == repo.resolve()
    assert src["entry_point"] == str((repo / "train.py").resolve())

    artifacts = {a.name: a for a in rec.artifacts}
    diff = read_artifact(store, artifacts["source/git.diff"])
    assert diff == git(repo, "diff", "HEAD") + "\n"
    assert "+HIDDEN_SIZE = 317  # the uncommitted change" in diff
    assert read_artifact(store, artifacts["source/train.py"]) == (repo / "train.py").read_text()


@needs_git
def test_clean_repository_has_no_diff_artifact(tmp_path):
    repo = make_repo(tmp_path)
    store = tmp_path / "store"
    rec = autotrack.get_run(run_script(repo, store), store=store)
    g = rec.info("source")["git"]
    assert g["dirty"] is False and g["untracked_files"] == []
    assert g["remote_url"] is None
    assert [a.name for a in rec.artifacts] == ["source/train.py"]


@needs_git
def test_repository_without_commits(tmp_path, monkeypatch, store):
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "a.py")
    monkeypatch.chdir(repo)
    with autotrack.start_run() as run:
        pass
    rec = autotrack.get_run(run.id)
    g = rec.info("source")["git"]
    assert g["commit"] is None and g["branch"] == "trunk" and g["dirty"] is True
    diff = [a for a in rec.artifacts if a.name == "source/git.diff"][0]
    assert "+x = 1" in read_artifact(store.root, diff)


def test_outside_a_git_repository(tmp_path, monkeypatch, store):
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with autotrack.start_run() as run:
        pass
    src = autotrack.get_run(run.id).info("source")
    if shutil.which("git") is not None and src["git"].get("available"):
        pytest.skip("an entry script's folder is inside a git repository here")
    assert src["git"]["available"] is False
    assert src["cwd"] == str(outside)


def test_git_not_installed(tmp_path, monkeypatch, store):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with autotrack.start_run() as run:
        pass
    g = autotrack.get_run(run.id).info("source")["git"]
    assert g == {"available": False, "reason": "git is not installed"}


def test_environment_section_matches_interpreter(store, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("CUDA_LAUNCH_BLOCKING", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "424242")
    monkeypatch.setenv("SOME_PRIVATE_SETTING", "not allow-listed")
    with autotrack.start_run() as run:
        pass
    env = autotrack.get_run(run.id).info("environment")
    assert env["python_version"] == platform.python_version()
    assert env["python_implementation"] == platform.python_implementation()
    assert env["python_executable"] == sys.executable
    assert env["env"]["OMP_NUM_THREADS"] == "3"
    assert env["env"]["CUDA_LAUNCH_BLOCKING"] == "1"
    assert env["env"]["SLURM_JOB_ID"] == "424242"
    assert "SOME_PRIVATE_SETTING" not in env["env"]
    import importlib.metadata as md
    import re

    truth: dict[str, str] = {}
    for dist in md.distributions():
        truth.setdefault(re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower(), dist.version)
    assert env["packages"] == truth
    assert env["package_count"] == len(truth)
    assert env["packages"]["psutil"] == md.version("psutil")


def test_extra_env_allow(store, monkeypatch):
    monkeypatch.setenv("MY_EXPERIMENT_KNOB", "7")
    monkeypatch.setenv("MY_API_TOKEN", "tok-abcdefgh-1234")
    _capture.configure(system_metrics=False, env_allow=["MY_EXPERIMENT_KNOB", "MY_API_TOKEN"])
    with autotrack.start_run() as run:
        pass
    env = autotrack.get_run(run.id).info("environment")["env"]
    assert env["MY_EXPERIMENT_KNOB"] == "7"
    assert "MY_API_TOKEN" not in env  # credentials are refused even when allow-listed


def test_torch_determinism_flags_when_torch_loaded(store):
    torch = pytest.importorskip("torch")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with autotrack.start_run() as run:
            pass
    finally:
        torch.use_deterministic_algorithms(previous)
    flags = autotrack.get_run(run.id).info("environment")["torch_determinism"]
    assert flags["deterministic_algorithms"] is True
    assert flags["num_threads"] == torch.get_num_threads()
    assert flags["cudnn_benchmark"] == torch.backends.cudnn.benchmark


def test_source_section_json_roundtrip(store):
    with autotrack.start_run() as run:
        pass
    src = autotrack.get_run(run.id).info("source")
    assert json.loads(json.dumps(src)) == src
    assert src["executable"] == sys.executable
