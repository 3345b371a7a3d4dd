"""`autotrack run` on an unmodified plain PyTorch script, end to end, in subprocesses."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import autotrack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "integrations" / "scripts" / "train_loop.py"


def _env(store_dir: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store_dir), "AUTOTRACK_SYSTEM_METRICS": "0"}
    return env


def _autotrack_run(store_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autotrack", "run", str(SCRIPT), *args],
        env=_env(store_dir), cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def _printed(stdout: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"loss": [], "norm": [], "lr": []}
    for line in stdout.splitlines():
        if line.startswith("step "):
            parts = line.split()
            out["loss"].append(float(parts[3]))
            out["norm"].append(float(parts[5]))
            out["lr"].append(float(parts[7]))
    return out


def _only_run(store_dir: Path) -> autotrack.RunRecord:
    frame = autotrack.runs(store=store_dir)
    assert len(frame) == 1, frame[["id", "name", "status"]]
    return autotrack.get_run(frame["id"][0], store=store_dir)


def test_unmodified_script_is_recorded_completely(tmp_path):
    store_dir = tmp_path / "store"
    done = _autotrack_run(store_dir, "--lr", "0.05", "--epochs", "2", "--out", "ckpt.pt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    truth = _printed(done.stdout)
    rec = _only_run(store_dir)
    assert rec.status == "finished"
    loss = rec.metric("train/loss")
    assert loss["step"].tolist() == list(range(len(truth["loss"])))
    assert loss["value"].tolist() == truth["loss"]
    assert rec.metric("train/grad_norm")["value"].to_numpy() == pytest.approx(truth["norm"], rel=1e-5)
    assert rec.metric("train/lr")["value"].tolist() == truth["lr"]  # StepLR halves it every 5 steps
    assert rec.params["lr"] == 0.05 and rec.params["epochs"] == 2 and rec.params["out"] == "ckpt.pt"
    n_params = int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("params")))
    assert rec.info("model")["total_params"] == n_params
    (opt,) = rec.info("optimizer")["optimizers"]
    assert opt["class"].endswith("Adam") and opt["param_groups"][0]["hyperparameters"]["betas"] == [0.8, 0.95]
    (sched,) = rec.info("optimizer")["schedulers"]
    assert sched["class"].endswith("StepLR") and sched["config"]["step_size"] == 5
    checkpoints = [a for a in rec.artifacts if a.kind == "checkpoint"]
    assert len(checkpoints) == 2  # one per epoch, the same path written twice
    assert checkpoints[0].deleted and not checkpoints[1].deleted  # the first was overwritten
    on_disk = hashlib.sha256((tmp_path / "ckpt.pt").read_bytes()).hexdigest()
    assert checkpoints[-1].sha256 == on_disk and checkpoints[-1].metadata["epoch"] == 1
    (model,) = [a for a in rec.artifacts if a.kind == "model"]
    state = torch.load(model.path, weights_only=True)
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.equal(state[k], saved[k]) for k in saved)


def test_autolog_does_not_change_training(tmp_path):
    plain = subprocess.run([sys.executable, str(SCRIPT), "--out", "plain.pt"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert plain.returncode == 0, plain.stderr
    logged = _autotrack_run(tmp_path / "store", "--out", "logged.pt", cwd=tmp_path)
    assert logged.returncode == 0, logged.stderr
    a = torch.load(tmp_path / "plain.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "logged.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    assert _printed(plain.stdout) == _printed(logged.stdout)


def test_exception_ends_failed(tmp_path):
    store_dir = tmp_path / "store"
    done = _autotrack_run(store_dir, "--fail-at", "3", cwd=tmp_path)
    assert done.returncode != 0 and "failing on purpose" in done.stderr
    rec = _only_run(store_dir)
    assert rec.status == "failed" and rec.error["type"] == "RuntimeError"
    assert rec.metric("train/loss")["value"].tolist() == _printed(done.stdout)["loss"]


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, "killed"), (signal.SIGKILL, "crashed")])
def test_signals(tmp_path, sig, status):
    store_dir = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotrack", "run", str(SCRIPT), "--pause-at", "4"],
        env=_env(store_dir), cwd=tmp_path, stdout=subprocess.PIPE, text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip() == "paused":
            break
    time.sleep(0.6)  # more than one flush interval
    proc.send_signal(sig)
    proc.wait(timeout=60)
    rec = _only_run(store_dir)
    assert rec.status == status
    assert rec.metric("train/loss")["value"].tolist() == _printed("".join(lines))["loss"]


def test_dataloader_workers(tmp_path):
    store_dir = tmp_path / "store"
    done = _autotrack_run(store_dir, "--workers", "2", "--epochs", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rec = _only_run(store_dir)
    assert rec.status == "finished"
    assert rec.metric("train/loss")["value"].tolist() == _printed(done.stdout)["loss"]


def test_signal_to_a_worker_never_ends_the_run_as_killed(tmp_path):
    store_dir = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotrack", "run", str(SCRIPT), "--workers", "2", "--pause-at", "10"],
        env=_env(store_dir), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    workers = []
    for line in proc.stdout:
        if line.startswith("worker "):
            workers.append(int(line.split()[1]))
        if line.strip() == "paused":
            break
    assert len(workers) >= 4  # two per epoch: the second epoch's were forked after the run started
    os.kill(workers[-1], signal.SIGTERM)  # a live worker; it inherited autotrack's SIGTERM handler
    _, err = proc.communicate(timeout=120)
    # torch turns a worker's death into an error in the main process, so the training fails; had
    # the worker's inherited handler acted, it would have ended the run as `killed` first.
    rec = _only_run(store_dir)
    assert rec.status == "failed", err
    assert "DataLoader worker" in rec.error["message"] and "killed by signal" in rec.error["message"]


def test_one_run_per_model_trained_one_after_another(store):
    """Run boundaries: a script that trains two models in turn gets one run per model."""
    from autotrack.integrations.torch import current_run

    autotrack.autolog(system_metrics=False)
    try:
        runs, losses = [], []
        for width in (4, 8):
            torch.manual_seed(width)
            model = torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            seen = []
            for _ in range(5):
                opt.zero_grad()
                loss = model(torch.ones(2, 3)).pow(2).mean()
                loss.backward()
                opt.step()
                seen.append(loss.item())
            runs.append(current_run())
            losses.append(seen)
        current_run().end()
    finally:
        autotrack.autolog(disable=True)
    first, second = (autotrack.get_run(r.id) for r in runs)
    assert first.id != second.id and first.status == second.status == "finished"
    assert first.metric("train/loss")["value"].tolist() == losses[0]
    assert second.metric("train/loss")["value"].tolist() == losses[1]
    assert first.info("model")["total_params"] == 3 * 4 + 4 + 4 + 1
    assert second.info("model")["total_params"] == 3 * 8 + 8 + 8 + 1


def test_plain_pytorch_runs_are_comparable_by_their_optimizer_and_model(store):
    """A plain-PyTorch run started by autolog gets the optimizer's constructor hyperparameters and
    the model's class and size as params (the runs table and `diff` compare runs by them); a run
    the user started keeps only the params the user gave it."""
    autotrack.autolog(system_metrics=False)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.8, 0.95), weight_decay=0.05)
        for _ in range(3):
            opt.zero_grad()
            model(torch.ones(4, 3)).square().mean().backward()
            opt.step()
        from autotrack.integrations.torch import current_run

        run = current_run()
        run.end()
        with autotrack.start_run(params={"mine": 1}) as mine:
            opt2 = torch.optim.SGD(model.parameters(), lr=0.5)
            opt2.zero_grad()
            model(torch.ones(4, 3)).square().mean().backward()
            opt2.step()
    finally:
        autotrack.autolog(disable=True)
    params = autotrack.get_run(run.id).params
    assert params["optimizer"] == "AdamW" and params["model"] == "Sequential"
    assert params["model.parameters"] == sum(p.numel() for p in model.parameters()) == 3 * 5 + 5 + 5 * 2 + 2
    for name, value in opt.defaults.items():
        if isinstance(value, (bool, int, float)):
            assert params[f"optimizer.{name}"] == value, name
    assert params["optimizer.betas"] == [0.8, 0.95]
    assert autotrack.get_run(mine.id).params == {"mine": 1}


def test_run_name_names_the_top_level_runs_and_leaves_children_alone(tmp_path):
    """`autotrack run --name baseline`: the first top-level run is `baseline`, the next ones
    `baseline-2`, `baseline-3` (whichever framework starts them); a search's children are named
    after their parent and take no number."""
    pytest.importorskip("sklearn")
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import torch
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV
        X, y = load_iris(return_X_y=True)
        LogisticRegression(max_iter=200).fit(X, y)
        GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(torch.tensor(X, dtype=torch.float32)), torch.tensor(y)).backward()
            opt.step()
    """))
    store = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "autotrack", "run", "--name", "baseline", str(script)],
                          env=_env(store), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    frame = autotrack.runs(store=store, order_by="start asc")
    top = frame[frame["parent_id"].isna()]
    assert top["name"].tolist() == ["baseline", "baseline-2", "baseline-3"]
    children = frame[frame["parent_id"].notna()]
    assert sorted(children["name"]) == ["baseline-2-candidate-0", "baseline-2-candidate-1"]
    assert autotrack.get_run("baseline", store=store).params["C"] == 1.0  # findable by its name
    bad = subprocess.run([sys.executable, "-c", "import autotrack; autotrack.autolog(run_name='')"],
                         env=_env(store), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "run_name" in bad.stderr


def test_autolog_tags_reach_every_run_it_starts_and_log_datasets_false_drops_the_data_section(store):
    """`autolog(tags=...)`: every run an integration starts gets them (scikit-learn, plain
    PyTorch, XGBoost here); `log_datasets=False`: none of them has a data fingerprint. Without the
    switch the same fits do record their data."""
    pytest.importorskip("sklearn")
    xgboost = pytest.importorskip("xgboost")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from autotrack.integrations.torch import current_run

    X, y = load_iris(return_X_y=True)

    def train_three() -> list[str]:
        before = set(autotrack.runs()["id"]) if len(autotrack.runs()) else set()
        LogisticRegression(max_iter=300).fit(X, y)
        xgboost.train({"objective": "multi:softprob", "num_class": 3}, xgboost.DMatrix(X, label=y), 3)
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(torch.tensor(X, dtype=torch.float32)), torch.tensor(y)).backward()
            opt.step()
        current_run().end()
        return [r for r in autotrack.runs()["id"] if r not in before]

    autotrack.autolog(system_metrics=False, tags={"team": "vision", "ticket": 42}, log_datasets=False)
    try:
        quiet = train_three()
    finally:
        autotrack.autolog(disable=True)
    autotrack.autolog(system_metrics=False)
    try:
        plain = train_three()
    finally:
        autotrack.autolog(disable=True)
    assert len(quiet) == len(plain) == 3
    for run_id in quiet:
        run = autotrack.get_run(run_id)
        assert run.tags["team"] == "vision" and run.tags["ticket"] in (42, "42"), run.tags
        assert not run.info("data"), (run.tags.get("autotrack.integration"), run.info("data"))
    integrations = {autotrack.get_run(r).tags["autotrack.integration"] for r in quiet}
    assert integrations == {"sklearn", "xgboost", "pytorch"}
    for run_id in plain:
        run = autotrack.get_run(run_id)
        assert "team" not in run.tags
    # the two fits that see their data record it when the switch is not given
    assert sum(bool(autotrack.get_run(r).info("data")) for r in plain) >= 2
    with pytest.raises(autotrack.InvalidArgumentError, match="tags"):
        autotrack.autolog(tags=["team"])
    with pytest.raises(autotrack.InvalidArgumentError, match="log_datasets"):
        autotrack.autolog(log_datasets="no")


def test_torch_save_to_an_open_file_is_a_checkpoint_and_an_in_memory_one_is_left_alone(store, tmp_path):
    """`with open(path, "wb") as f: torch.save(model, f)` (pytorch/examples' word language model)
    is recorded like `torch.save(obj, path)`: a checkpoint artifact whose hash is the saved file's;
    saving into an `io.BytesIO` records nothing and changes nothing."""
    import io

    from autotrack.integrations.torch import current_run

    autotrack.autolog(system_metrics=False)
    try:
        model = torch.nn.Linear(3, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(2):
            opt.zero_grad()
            model(torch.ones(4, 3)).square().mean().backward()
            opt.step()
            with open(tmp_path / f"epoch{epoch}.pt", "wb") as f:
                torch.save({"epoch": epoch, "state": model.state_dict()}, f)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        run = current_run()
        run.end()
    finally:
        autotrack.autolog(disable=True)
    assert torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)["weight"].shape == (2, 3)
    arts = {a.name: a for a in autotrack.get_run(run.id).artifacts if a.kind == "checkpoint"}
    assert set(arts) == {"epoch0.pt", "epoch1.pt"}, set(arts)  # (and the final weights, kind model)
    for epoch in range(2):
        art = arts[f"epoch{epoch}.pt"]
        assert art.kind == "checkpoint" and art.metadata["epoch"] == epoch and art.metadata["source"] == "torch.save"
        assert art.sha256 == hashlib.sha256((tmp_path / f"epoch{epoch}.pt").read_bytes()).hexdigest()
