"""`autotrack reproduce RUN --dir D --run`: rebuild, rerun under autotrack, compare, verdict."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autotrack
from autotrack._verify import EXACT, FAILED, compare

ROOT = Path(__file__).resolve().parents[1]

TORCH_SCRIPT = textwrap.dedent('''
    import torch
    from torch import nn

    torch.manual_seed(0)
    X = torch.randn(64, 4)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(64)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for epoch in range(2):
        for i in range(0, 64, 16):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(X[i:i + 16]).squeeze(-1), y[i:i + 16])
            loss.backward()
            opt.step()
''')

SKLEARN_SCRIPT = textwrap.dedent('''
    import autotrack
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=1)
    with autotrack.start_run(name="forest", params={"n_estimators": 5}) as run:
        clf = RandomForestClassifier(n_estimators=5, random_state=3).fit(Xtr, ytr)
        run.log_metric("val/acc", clf.score(Xte, yte))
        run.log_metric("train/acc", clf.score(Xtr, ytr))
''')


def _env(store: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_CAPTURE": "1",
            "AUTOTRACK_SYSTEM_METRICS": "0", "OMP_NUM_THREADS": "1", "GIT_CEILING_DIRECTORIES": str(store.parent)}


def _reproduce_cli(run_id: str, store: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotrack", "reproduce", run_id, "--dir", str(directory), "--run",
                           "--store", str(store)], env=_env(store), capture_output=True, text=True, timeout=300)


def test_plain_pytorch_run_reproduces_exactly(tmp_path):
    pytest.importorskip("torch")
    work = tmp_path / "code"
    work.mkdir()
    (work / "train.py").write_text(TORCH_SCRIPT)
    store = tmp_path / "store"
    out = subprocess.run([sys.executable, "-m", "autotrack", "run", "train.py"], cwd=work, env=_env(store),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (original,) = autotrack.runs(store=store)["id"]
    assert "train/loss" in autotrack.get_run(original, store=store).metric_keys

    result = _reproduce_cli(original, store, tmp_path / "bundle")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REPRODUCED EXACTLY" in result.stdout, result.stdout
    frame = autotrack.runs(store=store)
    assert len(frame) == 2
    rerun = frame[frame["id"] != original].iloc[0]
    assert rerun["tags.reproduces"] == original
    a, b = autotrack.get_run(original, store=store), autotrack.get_run(rerun["id"], store=store)
    assert a.metric("train/loss")["value"].tolist() == b.metric("train/loss")["value"].tolist()
    assert b.info("source")["launcher"] == "autotrack run"


def test_seeded_sklearn_run_reproduces_exactly(tmp_path):
    pytest.importorskip("sklearn")
    work = tmp_path / "code"
    work.mkdir()
    (work / "fit.py").write_text(SKLEARN_SCRIPT)
    store = tmp_path / "store"
    out = subprocess.run([sys.executable, "fit.py"], cwd=work, env=_env(store), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    (original,) = autotrack.runs(store=store)["id"]
    result = _reproduce_cli(original, store, tmp_path / "bundle")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REPRODUCED EXACTLY" in result.stdout, result.stdout
    assert "metrics identical: train/acc, val/acc" in result.stdout
    req = (tmp_path / "bundle" / "requirements.txt").read_text()
    assert "scikit-learn==" in req and "autotrack" not in req.split("\n", 1)[1]


def test_a_changed_result_is_not_reproduced(store):
    ids = []
    for loss in (0.5, 0.6):
        with autotrack.start_run(name="same") as run:
            run.log_metric("train/loss", loss, step=0)
            run.log_metric("system/cpu_percent", loss * 100, step=0)
        ids.append(run.id)
    a, b = (autotrack.get_run(i) for i in ids)
    result = compare(a, b)
    assert result["verdict"] == FAILED
    assert result["metrics"]["differ"]["train/loss"]["last"] == [0.5, 0.6]
    assert result["metrics"]["not_compared"] == ["system/cpu_percent"]
    assert compare(a, a)["verdict"] == EXACT
