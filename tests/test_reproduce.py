"""A real (numpy, seeded) training script is recorded as a run, then rerun from its bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autotrack
from autotrack._reproduce import reproduce

ROOT = Path(__file__).resolve().parents[1]

# A seeded numpy training script; every section comes from the real start capture.
TRAIN = textwrap.dedent('''
    import argparse
    import numpy as np
    import autotrack

    NOISE = 0.1

    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with autotrack.start_run(experiment="repro", params=vars(args)) as run:
        autotrack.seed_everything(args.seed)
        rng = np.random.default_rng(args.seed)
        X = rng.normal(size=(256, 8))
        y = X @ rng.normal(size=8) + NOISE * rng.normal(size=256)
        w = np.zeros(8)
        for step in range(args.steps):
            idx = rng.integers(0, 256, size=32)
            err = X[idx] @ w - y[idx]
            w -= args.lr * X[idx].T @ err / 32
            run.log_metric("train/loss", float(np.mean((X @ w - y) ** 2)), step=step)
''')


def _env(store_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store_dir), "OMP_NUM_THREADS": "1",
            "AUTOTRACK_CAPTURE": "1", "AUTOTRACK_SYSTEM_METRICS": "0", **extra}


def _final_losses(store_dir: Path) -> list[float]:
    frame = autotrack.runs(store=store_dir, order_by="start")
    return [autotrack.get_run(rid, store=store_dir).summary["train/loss"] for rid in frame["id"]]


def _rerun(bundle: Path, store_dir: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = _env(store_dir, SKIP_INSTALL="1", PYTHON=sys.executable, WORKDIR=str(workdir))
    return subprocess.run(["bash", str(bundle / "reproduce.sh")], env=env, capture_output=True, text=True, timeout=120)


def _dirty_repo(tmp_path: Path, committed: str, working: str, remote: str | None = None) -> Path:
    """A git repository whose train.py is committed as ``committed`` and edited to ``working``;
    its ``origin`` is ``remote`` (default: the repository itself, so that it can be cloned)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(committed)
    for args in (("init", "-q", "-b", "main"), ("add", "train.py"), ("commit", "-qm", "train"),
                 ("remote", "add", "origin", remote or str(repo))):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                       capture_output=True)
    (repo / "train.py").write_text(working)
    return repo


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_reproduce_from_git_commit_and_patch(tmp_path):
    # an uncommitted change that alters the result: only the patch carries it
    repo = _dirty_repo(tmp_path, TRAIN, TRAIN.replace("NOISE = 0.1", "NOISE = 0.7"))
    store_dir = tmp_path / "store"
    subprocess.run([sys.executable, "train.py", "--lr", "0.05", "--steps", "30", "--seed", "3"], cwd=repo, check=True,
                   env=_env(store_dir), capture_output=True, timeout=120)
    (original,) = _final_losses(store_dir)
    run_id = autotrack.runs(store=store_dir)["id"][0]

    bundle = reproduce(autotrack.get_run(run_id, store=store_dir), tmp_path / "bundle")
    assert "--lr 0.05" in (bundle / "reproduce.sh").read_text()
    assert "NOISE = 0.7" in (bundle / "source.patch").read_text()
    assert "numpy==" in (bundle / "requirements.txt").read_text()
    assert "export OMP_NUM_THREADS=1" in (bundle / "env.sh").read_text()
    readme = (bundle / "README.md").read_text()
    assert "What cannot be reproduced" in readme and "Hardware" in readme

    result = _rerun(bundle, store_dir, tmp_path / "work")
    assert result.returncode == 0, result.stderr
    losses = _final_losses(store_dir)
    assert len(losses) == 2
    assert losses[1] == original
    # the patch was applied on top of the commit, not the committed file alone
    assert "NOISE = 0.7" in (tmp_path / "work" / "train.py").read_text()


def test_reproduce_without_git(tmp_path):
    work = tmp_path / "plain"
    work.mkdir()
    (work / "train.py").write_text(TRAIN)
    store_dir = tmp_path / "store"
    env = _env(store_dir, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run([sys.executable, "train.py", "--steps", "25", "--seed", "5"], cwd=work, check=True, env=env,
                   capture_output=True, timeout=120)
    (original,) = _final_losses(store_dir)
    run_id = autotrack.runs(store=store_dir)["id"][0]
    bundle = reproduce(autotrack.get_run(run_id, store=store_dir), tmp_path / "bundle")
    readme = (bundle / "README.md").read_text()
    assert "not in a git repository" in readme
    assert (bundle / "code" / "train.py").read_text() == TRAIN
    assert "export OMP_NUM_THREADS=1" in (bundle / "env.sh").read_text()
    result = subprocess.run(["bash", str(bundle / "reproduce.sh")], capture_output=True, text=True, timeout=120,
                            env={**env, "SKIP_INSTALL": "1", "PYTHON": sys.executable, "WORKDIR": str(tmp_path / "w")})
    assert result.returncode == 0, result.stderr
    assert _final_losses(store_dir)[1] == original


def test_missing_sections_say_not_recorded(store, tmp_path):
    with autotrack.start_run(name="bare") as run:
        run.log_metric("loss", 1.0)
    bundle = reproduce(run.id, tmp_path / "b")
    readme = (bundle / "README.md").read_text()
    for text in ("Installed packages: not recorded", "Seeds: not recorded", "Data inputs: not recorded",
                 "The command (entry point and arguments): not recorded"):
        assert text in readme
    assert (bundle / "reproduce.sh").exists()
    with pytest.raises(autotrack.InvalidArgumentError):
        reproduce(run.id, bundle)  # not empty


def test_recorded_text_cannot_inject_shell(store, tmp_path):
    with autotrack.start_run() as run:
        run.set_info("source", {"entry_point": "t.py", "argv": ["t.py", "$(touch pwned)"], "cwd": "/r/$(touch pwned)",
                                "git": {"commit": "abc", "root": "/r", "remote": "origin",
                                        "remote_url": 'https://user:s3cret@h/x"$(touch pwned)"'}})
        run.set_info("environment", {"env": {"A": "$(touch pwned)", "BAD NAME": "x"}})
    bundle = reproduce(run.id, tmp_path / "b")
    script = (bundle / "reproduce.sh").read_text() + (bundle / "env.sh").read_text()
    assert "s3cret" not in script and "s3cret" not in (bundle / "README.md").read_text()
    assert "BAD NAME" not in script
    # run it with a fake git and `echo` as Python: nothing recorded may execute
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "git").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "git").chmod(0o755)
    work = tmp_path / "work"
    (work / ".git").mkdir(parents=True)
    (work / "$(touch pwned)").mkdir()
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "SKIP_INSTALL": "1", "PYTHON": "echo",
           "WORKDIR": str(work)}
    result = subprocess.run(["bash", str(bundle / "reproduce.sh")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t.py $(touch pwned)"
    assert not list(tmp_path.rglob("pwned"))


def test_source_not_recorded_is_said(store, tmp_path):
    with autotrack.start_run() as run:
        pass
    bundle = reproduce(run.id, tmp_path / "b")
    readme = (bundle / "README.md").read_text()
    assert "Source (entry point, arguments, git commit, uncommitted changes): not recorded" in readme
    assert "not in a git repository" not in readme
    # with no code stored, nothing says whether it imports autotrack: the bundle installs it anyway
    assert "does not import" not in readme and "whether the run's code imports it: not recorded" in readme
    script = (bundle / "reproduce.sh").read_text()
    assert "AUTOTRACK_VERSION=''" in script and 'pip install -q "autotrack-ml${AUTOTRACK_VERSION:+==' in script


# The same kind of script with nothing but the run: its sections come from the real start capture.
TRAIN_CAPTURED = textwrap.dedent('''
    import argparse
    import numpy as np
    import autotrack

    NOISE = 0.1
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    with autotrack.start_run(experiment="repro", params=vars(args)) as run:
        rng = np.random.default_rng(7)
        X = rng.normal(size=(128, 4))
        y = X @ rng.normal(size=4) + NOISE * rng.normal(size=128)
        w = np.zeros(4)
        for step in range(args.steps):
            w -= args.lr * X.T @ (X @ w - y) / 128
            run.log_metric("train/loss", float(np.mean((X @ w - y) ** 2)), step=step)
''')


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_reproduce_a_run_recorded_by_start_capture(tmp_path):
    repo = _dirty_repo(tmp_path, TRAIN_CAPTURED, TRAIN_CAPTURED.replace("NOISE = 0.1", "NOISE = 0.9"))
    store_dir = tmp_path / "store"
    env = _env(store_dir, AUTOTRACK_CAPTURE="1")
    subprocess.run([sys.executable, "train.py", "--lr", "0.2", "--steps", "15"], cwd=repo, check=True, env=env,
                   capture_output=True, timeout=120)
    (original,) = _final_losses(store_dir)
    rec = autotrack.get_run(autotrack.runs(store=store_dir)["id"][0], store=store_dir)
    assert rec.info("source")["git"]["dirty"] is True
    bundle = reproduce(rec, tmp_path / "bundle")
    assert "NOISE = 0.9" in (bundle / "source.patch").read_text()
    assert "--lr 0.2" in (bundle / "reproduce.sh").read_text()
    env = _env(store_dir, SKIP_INSTALL="1", PYTHON=sys.executable, WORKDIR=str(tmp_path / "work"), REPO=str(repo))
    result = subprocess.run(["bash", str(bundle / "reproduce.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _final_losses(store_dir)[1] == original
