"""Issue 13 on real tiny PyTorch and Lightning trainings: autolog through the registry, the defects
it listed (each fails without its fix), key collisions, and the private framework attributes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

import autotrack  # noqa: E402
from autotrack.integrations import base  # noqa: E402
from autotrack.integrations.lightning import AutotrackCallback  # noqa: E402
from autotrack.integrations.torch import current_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def autologged(store):
    autotrack.autolog(system_metrics=False, log_models=False)
    yield
    autotrack.autolog(disable=True)


def mlp(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))


def batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    return torch.randn(4, 3, generator=g), torch.randn(4, 1, generator=g)


def train_plain(model: torch.nn.Module, steps: int, *, closure: bool = False) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    truth = []
    for i in range(steps):
        x, y = batch(i)
        if closure:
            def step_loss():
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            truth.append(opt.step(step_loss).item())
        else:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            truth.append(loss.item())
    return truth


# -- plain PyTorch -------------------------------------------------------------------------------


def test_closure_loss_is_recorded_at_its_own_step_and_never_leaks(autologged):
    torch.manual_seed(0)
    truth = train_plain(mlp(), 5, closure=True)
    first = current_run()
    first.end()
    truth2 = train_plain(mlp(6), 3)  # the next run starts clean
    second = current_run()
    second.end()
    rec, rec2 = autotrack.get_run(first.id), autotrack.get_run(second.id)
    loss = rec.metric("train/loss")
    assert loss["step"].tolist() == [0, 1, 2, 3, 4]
    assert loss["value"].tolist() == pytest.approx(truth, rel=1e-6)
    assert rec2.metric("train/loss")["value"].tolist() == pytest.approx(truth2, rel=1e-6)
    assert rec.tags["autotrack.integration"] == "pytorch"


def test_a_backward_before_training_is_not_averaged_into_the_first_loss(autologged):
    torch.manual_seed(0)
    model = mlp()
    x, y = batch(99)
    (model(x) - y).pow(2).mean().mul(1000).backward()  # a gradient check before training
    truth = train_plain(model, 3)
    run = current_run()
    run.end()
    assert autotrack.get_run(run.id).metric("train/loss")["value"].tolist() == pytest.approx(truth, rel=1e-6)


def test_flush_hands_over_the_device_side_buffers(autologged, monkeypatch):
    monkeypatch.setattr(base, "MAX_AGE_S", 600.0)  # the background thread stays out of it
    torch.manual_seed(0)
    truth = train_plain(mlp(), 3)
    run = current_run()
    autotrack.flush()
    rec = autotrack.get_run(run.id)
    assert rec.status == "running"
    assert rec.metric("train/loss")["value"].tolist() == pytest.approx(truth, rel=1e-6)
    assert len(rec.metric("train/grad_norm")) == 3
    train_plain(run and mlp(5), 1)  # a new model: new run; the first one ends
    run.flush()
    current_run().flush()
    assert len(autotrack.get_run(current_run().id).metric("train/loss")) == 1
    current_run().end()


_KEEP: list[torch.nn.Module] = []


def test_the_model_is_found_through_registration_hooks_not_frames(autologged):
    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = mlp(7)

    def build() -> torch.optim.Optimizer:  # the model lives in no frame of the training loop
        model = Wrapper()
        _KEEP.append(model)
        return torch.optim.SGD(model.parameters(), lr=0.1)

    opt = build()
    opt.zero_grad()
    params = [p for g in opt.param_groups for p in g["params"]]
    sum(p.sum() for p in params).backward()
    opt.step()
    run = current_run()
    run.end()
    info = autotrack.get_run(run.id).info("model")
    assert info["class"].endswith("Wrapper") and info["total_params"] == 3 * 7 + 7 + 7 + 1


def test_parallel_trainings_in_threads_get_their_own_runs(autologged):
    results: dict[int, tuple[object, list[float]]] = {}
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        torch.manual_seed(i)
        model = mlp(4 + i)
        barrier.wait()
        truth = train_plain(model, 4)
        results[i] = (current_run(), truth)
        current_run().end()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (run0, truth0), (run1, truth1) = results[0], results[1]
    assert run0.id != run1.id and run0.parent_id is None and run1.parent_id is None
    assert autotrack.get_run(run0.id).metric("train/loss")["value"].tolist() == pytest.approx(truth0, rel=1e-6)
    assert autotrack.get_run(run1.id).metric("train/loss")["value"].tolist() == pytest.approx(truth1, rel=1e-6)


# -- Lightning -----------------------------------------------------------------------------------


class Module(L.LightningModule):
    def __init__(self, log_key: str | None = None) -> None:
        super().__init__()
        self.log_key = log_key
        self.net = torch.nn.Linear(3, 1)
        self.losses: list[float] = []

    def training_step(self, b, i):
        loss = torch.nn.functional.mse_loss(self.net(b[0]), b[1])
        self.losses.append(loss.item())
        if self.log_key:
            self.log(self.log_key, loss * 100, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def fit(module: L.LightningModule, **kwargs) -> L.Trainer:
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1, **kwargs)
    trainer.fit(module, loader())
    return trainer


def test_a_user_key_wins_and_autotracks_own_moves_aside_with_one_warning(store):
    module = Module(log_key="train/loss")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(module, callbacks=[AutotrackCallback()])
    (rid,) = autotrack.runs()["id"]
    rec = autotrack.get_run(rid)
    user = rec.metric("train/loss")
    assert user["step"].tolist() == list(range(12))  # one writer: one point per step
    assert user["value"].tolist() == pytest.approx([v * 100 for v in module.losses], rel=1e-5)
    ours = rec.metric("autotrack/train/loss")
    assert ours["value"].tolist() == pytest.approx(module.losses, rel=1e-5)
    named = [w for w in caught if "'train/loss'" in str(w.message) and "'autotrack/train/loss'" in str(w.message)]
    assert len(named) == 1
    assert rec.tags["autotrack.integration"] == "lightning"


def test_one_fault_at_run_start_is_one_warning(store, monkeypatch):
    monkeypatch.delenv("AUTOTRACK_STRICT")
    from autotrack import _patching

    _patching._warned.clear()

    def broken(*args, **kwargs):
        raise RuntimeError("store unavailable")

    monkeypatch.setattr(autotrack, "start_run", broken)
    module = Module()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(module, callbacks=[AutotrackCallback()])
    ours = [w for w in caught if "store unavailable" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert len(module.losses) == 12  # training went on


def test_autolog_records_lightning_through_the_registry_once(store):
    autotrack.autolog(system_metrics=False, log_models=False)
    try:
        module = Module()
        fit(module)
    finally:
        autotrack.autolog(disable=True)
    (rid,) = autotrack.runs()["id"]  # one run: the plain-PyTorch hooks stayed out
    rec = autotrack.get_run(rid)
    assert rec.tags["autotrack.integration"] == "lightning"
    assert rec.metric("train/loss")["value"].tolist() == pytest.approx(module.losses, rel=1e-5)


def test_lightning_switched_off_is_not_recorded_by_the_pytorch_hooks_either(store):
    autotrack.autolog(lightning=False, system_metrics=False)
    autotrack.autolog(system_metrics=False)  # a later plain autolog() keeps lightning off
    try:
        fit(Module())
        assert len(autotrack.runs()) == 0
        torch.manual_seed(0)
        truth = train_plain(mlp(), 2)  # plain PyTorch is still recorded
        run = current_run()
        run.end()
    finally:
        autotrack.autolog(disable=True)
    assert autotrack.get_run(run.id).metric("train/loss")["value"].tolist() == pytest.approx(truth, rel=1e-6)
    assert getattr(L.Trainer.fit, "__autotrack_patch__", None) is None  # disable removed the switched-off patch too


def test_autolog_then_importing_the_integration_before_lightning_keeps_it_on(tmp_path):
    code = textwrap.dedent("""
        import warnings, autotrack
        warnings.simplefilter("error")
        autotrack.autolog(system_metrics=False)
        from autotrack.integrations.lightning import AutotrackCallback  # imports lightning inside
        from autotrack import _autolog
        import lightning.pytorch as L
        print(sorted(_autolog.enabled_frameworks()))
        print(L.Trainer.__init__.__autotrack_patch__)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(tmp_path), "AUTOTRACK_STRICT": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    enabled, patched = done.stdout.strip().splitlines()[-2:]
    assert "lightning" in enabled and "pytorch" in enabled
    assert patched == "lightning"


SPAWN_SCRIPT = """
import torch, lightning.pytorch as L, autotrack
from autotrack.integrations.lightning import AutotrackCallback

class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 2)
    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

if __name__ == "__main__":
    x = torch.randn(16, 8); y = (x[:, 0] > 0).long()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    with autotrack.start_run(name="user-run") as run:
        L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                  enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                  callbacks=[AutotrackCallback()]).fit(M(), data)
"""


@pytest.mark.timeout(150)
def test_ddp_spawn_fit_inside_a_user_run_is_its_child(store, tmp_path):
    script = tmp_path / "spawn.py"
    script.write_text(SPAWN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store.root), "PL_DISABLE_FORK": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=140)
    assert done.returncode == 0, done.stderr[-3000:]
    df = autotrack.runs()
    user = df[df["name"] == "user-run"]["id"].iloc[0]
    (child,) = df[df["name"] != "user-run"]["id"]
    rec = autotrack.get_run(child)
    assert rec.parent_id == user and rec.status == "finished" and len(rec.metric("train/loss")) == 2


# -- private framework attributes ----------------------------------------------------------------


def test_private_attributes_the_integrations_rely_on_still_exist(store):
    """One check per entry of PRIVATE_ATTRIBUTES: a framework release that renames one fails here,
    by name, instead of silently recording less."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from autotrack.integrations import lightning as at_lightning
    from autotrack.integrations import torch as at_torch

    checkpoint = ModelCheckpoint()
    trainer = fit(Module(), callbacks=[AutotrackCallback()])
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    scaler.scale(torch.ones(()))
    found = {
        "ModelCheckpoint._last_checkpoint_saved": hasattr(checkpoint, "_last_checkpoint_saved"),
        "ModelCheckpoint._last_global_step_saved": hasattr(checkpoint, "_last_global_step_saved"),
        "ModelCheckpoint._every_n_train_steps": hasattr(checkpoint, "_every_n_train_steps"),
        "ModelCheckpoint._train_time_interval": hasattr(checkpoint, "_train_time_interval"),
        "Trainer._logger_connector.log_metrics": callable(getattr(getattr(trainer, "_logger_connector", None),
                                                                  "log_metrics", None)),
        "Trainer.fit_loop.epoch_loop._batches_that_stepped": isinstance(
            getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", None), int),
        "GradScaler._scale": isinstance(getattr(scaler, "_scale", None), torch.Tensor),
        "torch.amp.GradScaler._scale": isinstance(getattr(scaler, "_scale", None), torch.Tensor),
        "torch._foreach_norm": callable(getattr(torch, "_foreach_norm", None)),
    }
    listed = set(at_lightning.PRIVATE_ATTRIBUTES) | set(at_torch.PRIVATE_ATTRIBUTES)
    assert listed <= set(found), listed - set(found)  # every listed attribute has a check here
    missing = [name for name in listed if not found[name]]
    assert not missing, f"framework release changed private attributes autotrack uses: {missing}"
