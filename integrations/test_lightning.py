"""End-to-end: real tiny Lightning trainings on CPU, checked against values the tests record themselves."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

import autotrack
from autotrack.integrations.lightning import AutotrackCallback, AutotrackLogger

ROOT = Path(__file__).resolve().parents[1]


def make_data(n: int = 64, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :2].sum(1) > 0).long()
    return torch.utils.data.TensorDataset(x, y)


def loader(n: int = 64, batch_size: int = 8, seed: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(make_data(n, seed), batch_size=batch_size)


class MLP(L.LightningModule):
    """2-layer MLP that records its own truth: losses, total grad norms, lrs, per optimizer step."""

    def __init__(self, lr: float = 0.05, betas: tuple[float, float] = (0.8, 0.95), step_size: int = 3,
                 gamma: float = 0.5, fail_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        self.losses: list[float] = []  # one per training_step call
        self.norms: dict[int, float] = {}
        self.lrs: dict[int, float] = {}

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise RuntimeError("boom in training_step")
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.losses.append(loss.item())
        self.log("my_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

    def on_before_optimizer_step(self, optimizer):
        grads = [p.grad.double() for p in self.parameters() if p.grad is not None]
        self.norms[self.global_step] = math.sqrt(sum(float((g * g).sum()) for g in grads))
        self.lrs[self.global_step] = optimizer.param_groups[0]["lr"]

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=self.hparams.betas)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.hparams.step_size, gamma=self.hparams.gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def trainer(**kwargs):
    defaults = {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "logger": False,
                "enable_model_summary": False, "enable_checkpointing": False, "num_sanity_val_steps": 0,
                "log_every_n_steps": 1}
    defaults.update(kwargs)
    return L.Trainer(**defaults)


def only_run():
    df = autotrack.runs()
    assert len(df) == 1, df
    return autotrack.get_run(df["id"].iloc[0])


def test_mlp_two_epochs_records_truth(store, tmp_path):
    torch.manual_seed(0)
    model = MLP()
    ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", mode="min", save_top_k=1,
                                       save_last=True)
    stopper = L.callbacks.EarlyStopping(monitor="val_loss", patience=5)
    t = trainer(callbacks=[AutotrackCallback(per_layer_every=2), ckpt, stopper], enable_checkpointing=True)
    t.fit(model, loader(), loader(32, seed=1))
    rec = only_run()
    assert rec.status == "finished"

    steps, losses, _ = rec.metric_arrays("train/loss")
    n_steps = 2 * 8
    assert list(steps) == list(range(n_steps))
    np.testing.assert_allclose(losses, model.losses, rtol=1e-6)

    steps, norms, _ = rec.metric_arrays("train/grad_norm")
    assert list(steps) == sorted(model.norms)
    np.testing.assert_allclose(norms, [model.norms[s] for s in steps], rtol=1e-5)

    steps, lrs, _ = rec.metric_arrays("train/lr")
    assert [float(v) for v in lrs] == [model.lrs[s] for s in steps]  # exactly the lr each step used
    assert [float(v) for v in lrs] == [0.05 * 0.5 ** (s // 3) for s in steps]

    # per-layer norms every 2 steps, equal to the test's own per-parameter norms' total
    per_layer = [k for k in rec.metric_keys if k.startswith("grad_norm/")]
    assert sorted(per_layer) == sorted(f"grad_norm/{n}" for n, _ in model.named_parameters())
    p_steps = rec.metric_arrays(per_layer[0])[0]
    assert list(p_steps) == list(range(0, n_steps, 2))
    total_from_layers = np.sqrt(sum(rec.metric_arrays(k)[1] ** 2 for k in per_layer))
    np.testing.assert_allclose(total_from_layers, [model.norms[s] for s in p_steps], rtol=1e-5)

    # self.log metrics at Lightning's steps, epoch per epoch
    np.testing.assert_allclose(rec.metric_arrays("my_loss")[1], model.losses, rtol=1e-6)
    assert len(rec.metric_arrays("val_loss")[1]) == 2
    assert list(rec.metric_arrays("epoch")[1]) == [0.0, 1.0]

    assert rec.info("model")["total_params"] == sum(p.numel() for p in model.parameters())
    try:
        from autotrack._capture import fingerprint
    except ImportError:  # the capture module is not there: no data section
        pass
    else:
        data = rec.info("data")
        assert data["train"]["hash"] == fingerprint(make_data())["hash"]
        assert data["validation"]["hash"] == fingerprint(make_data(32, seed=1))["hash"]
    opt = rec.info("optimizer")
    assert opt["optimizers"][0]["class"].endswith("Adam")
    assert opt["optimizers"][0]["param_groups"][0]["hyperparameters"]["betas"] == [0.8, 0.95]
    assert opt["schedulers"][0]["class"].endswith("StepLR")
    assert opt["schedulers"][0]["config"]["step_size"] == 3 and opt["schedulers"][0]["interval"] == "step"
    assert rec.params["lr"] == 0.05 and rec.params["betas"] == [0.8, 0.95]
    assert rec.params["trainer.max_epochs"] == 2
    assert rec.info("config")["trainer"]["accumulate_grad_batches"] == 1

    # checkpoints: every live artifact matches its file; the best is flagged; the replaced one deleted
    arts = [a for a in rec.artifacts if a.kind == "checkpoint"]
    live = [a for a in arts if not a.deleted]
    assert {a.metadata["path"] for a in live} == {str(Path(ckpt.best_model_path).resolve()),
                                                 str(Path(ckpt.last_model_path).resolve())}
    for a in live:
        assert a.sha256 == hashlib.sha256(Path(a.metadata["path"]).read_bytes()).hexdigest()
        assert a.size == Path(a.metadata["path"]).stat().st_size
    best = [a for a in live if a.metadata["best"]]
    assert len(best) == 1 and best[0].metadata["path"] == str(Path(ckpt.best_model_path).resolve())
    assert best[0].metadata["score"] == pytest.approx(float(ckpt.best_model_score))
    assert f"epoch={best[0].metadata['epoch']}-step={best[0].step}" == Path(ckpt.best_model_path).stem
    assert rec.params["early_stopping.monitor"] == "val_loss" and rec.params["early_stopping.patience"] == 5
    assert rec.params["early_stopping.best_score"] == pytest.approx(float(stopper.best_score))
    assert rec.info("config")["early_stopping"][0]["stopped_epoch"] == stopper.stopped_epoch
    deleted = [a for a in arts if a.deleted]
    assert len(deleted) == 2  # epoch 0's top-1 (replaced by a better one) and epoch 0's last.ckpt
    for a in deleted:
        assert a.metadata["best"] is False
        assert a.metadata.get("overwritten") or not Path(a.metadata["path"]).exists()
    assert sum(bool(a.metadata.get("overwritten")) for a in deleted) == 1


def test_accumulate_grad_batches_one_point_per_optimizer_step(store):
    torch.manual_seed(0)
    model = MLP(step_size=100)
    t = trainer(max_epochs=1, accumulate_grad_batches=4, callbacks=[AutotrackCallback()])
    t.fit(model, loader(64))  # 8 batches -> 2 optimizer steps
    rec = only_run()
    steps, losses, _ = rec.metric_arrays("train/loss")
    assert list(steps) == [0, 1]
    expected = [np.mean(model.losses[0:4]), np.mean(model.losses[4:8])]
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    steps, norms, _ = rec.metric_arrays("train/grad_norm")
    assert list(steps) == [0, 1]
    np.testing.assert_allclose(norms, [model.norms[0], model.norms[1]], rtol=1e-5)
    assert len(rec.metric_arrays("train/lr")[0]) == 2


def test_checkpoints_every_n_train_steps_recorded_with_their_steps(store, tmp_path):
    ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=3, save_top_k=-1,
                                       filename="{step}")
    trainer(max_epochs=1, callbacks=[AutotrackCallback(copy_checkpoints=True), ckpt],
            enable_checkpointing=True).fit(MLP(), loader())
    rec = only_run()
    files = sorted((tmp_path / "ck").glob("*.ckpt"))
    assert [f.name for f in files] == ["step=3.ckpt", "step=6.ckpt"]
    arts = sorted((a for a in rec.artifacts if a.kind == "checkpoint"), key=lambda a: a.name)
    assert [a.name for a in arts] == [f.name for f in files]
    for a, f in zip(arts, files):
        assert a.stored and a.step == int(f.stem.split("=")[1])
        assert a.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
        assert Path(a.path).read_bytes() == f.read_bytes()  # copied into the store


def test_amp_grad_scaler_loss_and_norm_are_unscaled(store):
    from lightning.pytorch.plugins.precision import MixedPrecision

    torch.manual_seed(0)
    model = MLP(step_size=100)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer(max_epochs=1, callbacks=[AutotrackCallback()],
            plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)]).fit(model, loader())
    rec = only_run()
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], model.losses, rtol=1e-6)
    steps, norms, _ = rec.metric_arrays("train/grad_norm")
    np.testing.assert_allclose(norms, [model.norms[s] for s in steps], rtol=1e-5)
    assert max(norms) < 100  # not multiplied by the 1024 scale
    info = rec.info("optimizer")["grad_scaler"]
    assert info["enabled"] is True and info["scale"] == 1024.0


def test_autolog_adds_the_callback_to_every_trainer(store):
    from autotrack.integrations.lightning import autolog

    torch.manual_seed(0)
    model = MLP(step_size=100)
    autolog(grad_norm_every=3)
    try:
        t = trainer(max_epochs=1)
        t.fit(model, loader())
    finally:
        autolog(disable=True)
    assert sum(isinstance(cb, AutotrackCallback) for cb in t.callbacks) == 1
    assert not any(isinstance(cb, AutotrackCallback) for cb in trainer().callbacks)  # undone
    rec = only_run()
    assert rec.status == "finished"
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], model.losses, rtol=1e-6)
    assert list(rec.metric_arrays("grad_norm/net.0.weight")[0]) == [0, 3, 6]
    weights = [a for a in rec.artifacts if a.kind == "model"]
    assert len(weights) == 1 and weights[0].name == "model.pt"
    state = torch.load(weights[0].path, weights_only=True)
    torch.testing.assert_close(state["net.0.weight"], model.net[0].weight.detach())


class TwoOptimizers(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.a = torch.nn.Linear(8, 2)
        self.b = torch.nn.Linear(8, 2)
        self.truth: list[tuple[int, str, float, float]] = []  # (global_step, which, loss, norm)

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_a, opt_b = self.optimizers()
        for net, opt, which in ((self.a, opt_a, "a"), (self.b, opt_b, "b")):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in net.parameters()))
            self.truth.append((self.global_step, which, loss.item(), norm))
            opt.step()

    def configure_optimizers(self):
        return [torch.optim.SGD(self.a.parameters(), lr=0.1), torch.optim.Adam(self.b.parameters(), lr=0.01)]


def test_manual_optimization_two_optimizers(store):
    torch.manual_seed(0)
    model = TwoOptimizers()
    trainer(max_epochs=1, callbacks=[AutotrackCallback()]).fit(model, loader(32))
    rec = only_run()
    steps, losses, _ = rec.metric_arrays("train/loss")
    assert list(steps) == [s for s, *_ in model.truth] == list(range(8))
    np.testing.assert_allclose(losses, [t[2] for t in model.truth], rtol=1e-6)
    for i, which in enumerate("ab"):
        mine = [t for t in model.truth if t[1] == which]
        s, norms, _ = rec.metric_arrays(f"train/grad_norm/opt{i}")
        assert list(s) == [t[0] for t in mine]
        np.testing.assert_allclose(norms, [t[3] for t in mine], rtol=1e-5)
    assert set(rec.metric_arrays("train/lr/opt0")[1]) == {0.1}
    assert set(rec.metric_arrays("train/lr/opt1")[1]) == {0.01}
    classes = [o["class"].rsplit(".", 1)[1] for o in rec.info("optimizer")["optimizers"]]
    assert classes == ["SGD", "Adam"]


def test_exception_in_training_step_fails_run_and_keeps_earlier_data(store):
    torch.manual_seed(0)
    model = MLP(fail_at=5)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(callbacks=[AutotrackCallback()]).fit(model, loader())
    rec = only_run()
    assert rec.status == "failed"
    assert "boom in training_step" in rec.error["message"]
    assert rec.error["type"] == "RuntimeError"
    steps, losses, _ = rec.metric_arrays("train/loss")
    assert list(steps) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(losses, model.losses, rtol=1e-6)
    assert rec.info("model")["total_params"] == sum(p.numel() for p in model.parameters())


def test_keyboard_interrupt_marks_run_killed(store):
    class Interrupted(MLP):
        def training_step(self, batch, batch_idx):
            if self.global_step == 2:
                raise KeyboardInterrupt
            return super().training_step(batch, batch_idx)

    with pytest.raises(SystemExit):  # Lightning turns Ctrl+C into a graceful shutdown and exit(1)
        trainer(callbacks=[AutotrackCallback()]).fit(Interrupted(), loader())
    rec = only_run()
    assert rec.status == "killed"
    assert len(rec.metric_arrays("train/loss")[0]) == 2


def test_existing_run_is_used_and_not_ended_logger_and_callback_write_one_run(store):
    torch.manual_seed(0)
    model = MLP()
    with autotrack.start_run(name="mine") as run:
        cb = AutotrackCallback(run)
        trainer(callbacks=[cb], logger=AutotrackLogger(run), max_epochs=1).fit(model, loader())
        assert not run.ended and cb.run is run
        run.log_metric("after_fit", 1.0)
    rec = only_run()
    assert rec.id == run.id and rec.status == "finished"
    assert rec.summary["after_fit"] == 1.0
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], model.losses, rtol=1e-6)
    np.testing.assert_allclose(rec.metric_arrays("my_loss")[1], model.losses, rtol=1e-6)


def test_logger_alone_and_with_callback_creates_one_run(store):
    torch.manual_seed(0)
    model = MLP()
    logger = AutotrackLogger(name="lazy", experiment="exp")
    trainer(callbacks=[AutotrackCallback()], logger=logger, max_epochs=1).fit(model, loader())
    rec = only_run()
    assert (rec.name, rec.experiment, rec.status) == ("lazy", "exp", "finished")
    assert rec.params["lr"] == 0.05
    np.testing.assert_allclose(rec.metric_arrays("my_loss")[1], model.losses, rtol=1e-6)
    assert len(rec.metric_arrays("train/grad_norm")[0]) == 8

    model2 = MLP()
    trainer(logger=AutotrackLogger(name="alone"), max_epochs=1).fit(model2, loader())
    rec2 = autotrack.get_run(autotrack.runs(where="name = 'alone'")["id"].iloc[0])
    assert rec2.status == "finished"
    np.testing.assert_allclose(rec2.metric_arrays("my_loss")[1], model2.losses, rtol=1e-6)


def test_pytorch_lightning_import(store):
    pl = pytest.importorskip("pytorch_lightning")

    class PLModel(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(8, 2)
            self.losses = []

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
            self.losses.append(loss.item())
            self.log("pl_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = PLModel()
    pl.Trainer(max_epochs=1, accelerator="cpu", logger=AutotrackLogger(), enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=1,
               callbacks=[AutotrackCallback()]).fit(model, loader())
    rec = only_run()
    assert rec.status == "finished"
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], model.losses, rtol=1e-6)
    np.testing.assert_allclose(rec.metric_arrays("pl_loss")[1], model.losses, rtol=1e-6)


DDP_SCRIPT = """
import os, sys, time, torch
import lightning.pytorch as L
import autotrack
from autotrack.integrations.lightning import AutotrackCallback

class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 2)
    def training_step(self, batch, batch_idx):
        time.sleep(0.05)  # long enough for each rank's system sampler (every 0.05 s) to take a sample
        loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        with open(os.path.join(sys.argv[2], f"loss_rank{self.global_rank}.txt"), "a") as f:
            f.write(repr(loss.item()) + "\\n")
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

if __name__ == "__main__":
    torch.manual_seed(0)
    x = torch.randn(32, 8); y = (x[:, 0] > 0).long()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    if sys.argv[3] == "existing":  # a run the main process owns; spawned rank 0 writes into it
        with autotrack.start_run(name="owned-by-main") as run:
            trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy=sys.argv[1], logger=False,
                                enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                                num_sanity_val_steps=0, callbacks=[AutotrackCallback(run)])
            trainer.fit(M(), data)
            assert not run.ended
    else:
        trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy=sys.argv[1], logger=False,
                            enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                            num_sanity_val_steps=0, callbacks=[AutotrackCallback()])
        trainer.fit(M(), data)
"""


@pytest.mark.parametrize(("strategy", "run"), [("ddp", "new"), ("ddp_spawn", "new"), ("ddp_spawn", "existing")])
@pytest.mark.timeout(120)
def test_ddp_two_processes_one_run_written_by_rank_zero(store, tmp_path, strategy, run):
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    store_dir = store.root
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store_dir), "PL_DISABLE_FORK": "1",
           "OMP_NUM_THREADS": "1", "AUTOTRACK_CAPTURE": "1", "AUTOTRACK_SYSTEM_METRICS": "0.05"}
    done = subprocess.run([sys.executable, str(script), strategy, str(tmp_path), run], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    df = autotrack.runs()
    assert len(df) == 1
    rec = autotrack.get_run(df["id"].iloc[0])
    assert rec.status == "finished"
    if run == "existing":
        assert rec.name == "owned-by-main"
    rank0 = [float(v) for v in (tmp_path / "loss_rank0.txt").read_text().split()]
    rank1 = [float(v) for v in (tmp_path / "loss_rank1.txt").read_text().split()]
    assert len(rank0) == len(rank1) == 4  # 32 samples, 2 ranks, batch 4
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], rank0, rtol=1e-6)
    assert rec.info("config")["trainer"]["world_size"] == 2
    try:
        from autotrack import _capture  # noqa: F401
    except ImportError:  # no capture module: no system metrics on any rank
        return
    # rank 1 writes only its system metrics, labelled, into rank 0's run
    rank1_keys = [k for k in rec.metric_keys if k.startswith("system/rank1/")]
    assert "system/rank1/proc_rss_bytes" in rank1_keys
    assert not any(k.startswith("system/rank0/") for k in rec.metric_keys)


class EvaluatedMLP(MLP):
    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.cross_entropy(self.net(x), y))
        self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())


def _truth(model: L.LightningModule, data: torch.utils.data.DataLoader) -> tuple[float, float]:
    """Lightning's epoch mean of the per-batch values (equal-size batches: the plain mean)."""
    with torch.no_grad():
        losses, accs = zip(*[(torch.nn.functional.cross_entropy(model.net(x), y).item(),
                              (model.net(x).argmax(1) == y).float().mean().item()) for x, y in data])
    return float(np.mean(losses)), float(np.mean(accs))


def test_test_after_fit_writes_into_the_fits_run_with_any_trainer(store):
    """`trainer.test()` after `fit()` -- with the same Trainer, or a new one for the same module --
    adds `test_*` to the fit's run (no second run) at the fit's last step, keeping the fit's params,
    config and status; a module that was never fitted here gets a run of its own."""
    from autotrack.integrations.lightning import autolog

    torch.manual_seed(0)
    model = EvaluatedMLP(step_size=100)
    test_data = loader(n=32, seed=1)
    autolog()
    try:
        t = trainer(max_epochs=1)
        t.fit(model, loader(), loader(n=16, seed=2))
        first = t.test(model, test_data, verbose=False)[0]
        again = trainer(max_epochs=5).test(model, test_data, verbose=False)[0]
        fresh = EvaluatedMLP()
        trainer().test(fresh, test_data, verbose=False)
    finally:
        autolog(disable=True)
    frame = autotrack.runs(order_by="start asc")
    assert len(frame) == 2, frame[["name", "status"]]
    rec = autotrack.get_run(frame["id"].iloc[0])
    loss, acc = _truth(model, test_data)
    assert first["test_loss"] == pytest.approx(loss, rel=1e-5) and again["test_loss"] == pytest.approx(loss, rel=1e-5)
    steps, values, _ = rec.metric_arrays("test_loss")
    np.testing.assert_allclose(values, [loss, loss], rtol=1e-5)
    assert list(steps) == [t.global_step, t.global_step] == [8, 8]
    assert rec.metric_arrays("test_acc")[1][-1] == pytest.approx(acc, rel=1e-6)
    assert rec.status == "finished" and rec.params["trainer.max_epochs"] == 1  # the second Trainer's left no mark
    assert rec.info("config")["stage"] == "fit"
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], model.losses, rtol=1e-6)
    other = autotrack.get_run(frame["id"].iloc[1])
    assert other.info("config")["stage"] == "test" and "test_loss" in other.metric_keys
