"""The PyTorch building blocks, on a plain training loop, against values the tests compute themselves."""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import autotrack
from autotrack.integrations.torch import (
    CheckpointRecorder,
    GradNormTracker,
    LossTracker,
    ScalarBuffer,
    lr_keys,
    model_info,
    optimizer_info,
)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
        self.norm = torch.nn.BatchNorm1d(3)
        self.head = torch.nn.Linear(3, 10, bias=False)
        for p in self.emb.parameters():
            p.requires_grad_(False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.body(self.emb(idx))))


def test_model_info_counts_shapes_and_frozen_layers():
    model = Net().to(torch.float64)
    model.body[2].to(torch.float32)
    info = model_info(model)
    params = list(model.parameters())
    assert info["total_params"] == sum(p.numel() for p in params)
    assert info["trainable_params"] == sum(p.numel() for p in params if p.requires_grad)
    assert info["non_trainable_params"] == model.emb.weight.numel()
    assert info["frozen_modules"] == ["emb"]
    by_name = {m["name"]: m for m in info["modules"]}
    assert by_name["body"]["params_total"] == sum(p.numel() for p in model.body.parameters())
    assert by_name["body"]["params_own"] == 0 and by_name["body"]["type"] == "Sequential"
    assert by_name[""]["params_total"] == info["total_params"]
    shapes = {p["name"]: (p["shape"], p["dtype"]) for p in info["parameters"]}
    assert shapes["body.2.weight"] == ([3, 6], "float32")
    assert shapes["body.0.weight"] == ([6, 4], "float64")
    expected_bytes = sum(t.numel() * t.element_size() for t in [*params, *model.buffers()])
    assert info["size_bytes"] == expected_bytes
    assert info["size_bytes_by_dtype"]["float32"] == model.body[2].weight.numel() * 4 + 3 * 4
    assert "Sequential" in info["repr"]


def test_model_info_counts_tied_weights_once_and_summarises_big_models(monkeypatch):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 4)
            self.b.weight = self.a.weight

    assert model_info(Tied())["total_params"] == 16 + 4 + 4
    import autotrack.integrations.torch.describe as at

    monkeypatch.setattr(at, "MAX_MODULES", 5)
    deep = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)) for _ in range(3)])
    info = model_info(deep)
    assert info["total_params"] == 6 * 6
    assert max(m["depth"] for m in info["modules"]) == info["modules_summarised_below_depth"] == 1
    assert sum(d["params_own"] for d in info["modules_by_depth"]) == 36


def test_optimizer_info_groups_schedulers_and_scaler():
    model = Net()
    opt = torch.optim.SGD(
        [{"params": model.body.parameters(), "lr": 0.1, "name": "body"},
         {"params": model.head.parameters(), "lr": 0.01, "weight_decay": 1e-4}],
        lr=0.5, momentum=0.9, nesterov=True,
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    info = optimizer_info([opt], model, [{"scheduler": sched, "interval": "epoch"}], scaler)
    o = info["optimizers"][0]
    assert o["class"] == "torch.optim.sgd.SGD"
    assert o["defaults"]["lr"] == 0.5 and o["defaults"]["nesterov"] is True
    g0, g1 = o["param_groups"]
    assert g0["hyperparameters"]["lr"] == 0.1 and g0["hyperparameters"]["momentum"] == 0.9
    assert g1["hyperparameters"]["weight_decay"] == 1e-4
    assert g0["params"] == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    assert g0["n_params"] == 4 and g0["numel"] == sum(p.numel() for p in model.body.parameters())
    s = info["schedulers"][0]
    assert s["class"].endswith("StepLR") and s["config"]["step_size"] == 7 and s["config"]["gamma"] == 0.3
    assert s["interval"] == "epoch"
    assert info["grad_scaler"]["enabled"] is True and info["grad_scaler"]["scale"] == 1024.0
    assert lr_keys([opt]) == [["train/lr/body", "train/lr/1"]]
    assert lr_keys([opt, opt]) == [["train/lr/opt0/body", "train/lr/opt0/1"], ["train/lr/opt1/body", "train/lr/opt1/1"]]


def own_norms(model):
    return {n: math.sqrt(float((p.grad.double() ** 2).sum())) for n, p in model.named_parameters() if p.grad is not None}


def test_grad_norms_loss_and_lr_in_a_plain_loop(store):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam((p for p in model.parameters() if p.requires_grad), lr=0.01)
    run = autotrack.start_run()
    buffer = ScalarBuffer(run, flush_every=4)
    tracker = GradNormTracker(model.named_parameters(), run, per_layer_every=3, flush_every=4)
    module_tracker = GradNormTracker(model.named_parameters(), run, per_layer_every=3, per="module",
                                     key="module_total")
    losses = LossTracker(buffer)
    truth_norms, truth_modules, truth_losses, truth_params = [], [], [], []
    for step in range(7):
        opt.zero_grad()
        batch_losses = []
        for _ in range(2):  # two micro-batches accumulated per step
            loss = torch.nn.functional.cross_entropy(model(torch.randint(0, 10, (8,))), torch.randint(0, 10, (8,)))
            (loss / 2).backward()
            losses.add(loss / 2, scale=2.0)
            batch_losses.append(loss.item())
        norms = own_norms(model)
        truth_params.append(norms)
        truth_norms.append(math.sqrt(sum(v * v for v in norms.values())))
        mods: dict[str, float] = {}
        for n, v in norms.items():
            mods[n.rpartition(".")[0]] = mods.get(n.rpartition(".")[0], 0.0) + v * v
        truth_modules.append({k: math.sqrt(v) for k, v in mods.items()})
        truth_losses.append(sum(batch_losses) / 2)
        losses.step(step)
        tracker.step(step)
        module_tracker.step(step)
        opt.step()
    buffer.flush()
    tracker.flush()
    module_tracker.flush()
    run.end()
    rec = autotrack.get_run(run.id)
    steps, values, _ = rec.metric_arrays("train/grad_norm")
    assert list(steps) == list(range(7))
    np.testing.assert_allclose(values, truth_norms, rtol=1e-5)
    np.testing.assert_allclose(rec.metric_arrays("module_total")[1], truth_norms, rtol=1e-5)
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], truth_losses, rtol=1e-6)
    # per parameter and per module, every 3 steps; the frozen embedding has no gradient
    assert "grad_norm/emb.weight" not in rec.metric_keys and "grad_norm/emb" not in rec.metric_keys
    s, v, _ = rec.metric_arrays("grad_norm/body.0.weight")
    assert list(s) == [0, 3, 6]
    np.testing.assert_allclose(v, [truth_params[i]["body.0.weight"] for i in (0, 3, 6)], rtol=1e-5)
    for key, step_values in (("grad_norm/body.2", [t["body.2"] for t in truth_modules]),
                             ("grad_norm/norm", [t["norm"] for t in truth_modules])):
        s, v, _ = rec.metric_arrays(key)
        assert list(s) == [0, 3, 6]
        np.testing.assert_allclose(v, [step_values[i] for i in (0, 3, 6)], rtol=1e-5)


def test_per_parameter_norms_equal_own_norms(store):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    run = autotrack.start_run()
    tracker = GradNormTracker(model.named_parameters(), run, per_layer_every=1)
    model(torch.randn(16, 5)).pow(2).mean().backward()
    truth = own_norms(model)
    tracker.step(0)
    tracker.flush()
    run.end()
    rec = autotrack.get_run(run.id)
    for name, value in truth.items():
        assert rec.metric_arrays(f"grad_norm/{name}")[1][0] == pytest.approx(value, rel=1e-5)


def test_tracker_built_on_a_buffer_is_flushed_with_it(store):
    model = torch.nn.Linear(3, 1)
    run = autotrack.start_run()
    buffer = ScalarBuffer(run)
    tracker = GradNormTracker(model.named_parameters(), buffer, per_layer_every=0)
    model(torch.ones(2, 3)).sum().backward()
    truth = math.sqrt(sum(v * v for v in own_norms(model).values()))
    tracker.step(0)
    buffer.add("train/loss", 0, torch.tensor(0.5))
    buffer.flush()  # flushes the tracker too
    run.end()
    rec = autotrack.get_run(run.id)
    assert rec.metric_arrays("train/grad_norm")[1][0] == pytest.approx(truth, rel=1e-6)
    assert rec.summary["train/loss"] == 0.5


def test_background_thread_hands_over_waiting_values(store):
    run = autotrack.start_run()
    buffer = ScalarBuffer(run, flush_every=1000)
    model = torch.nn.Linear(3, 1)
    tracker = GradNormTracker(model.named_parameters(), run, flush_every=1000)
    model(torch.ones(2, 3)).sum().backward()
    buffer.add("train/loss", 0, torch.tensor(0.25))
    tracker.step(0)
    deadline = time.monotonic() + 5
    while (buffer._meta or tracker._pending) and time.monotonic() < deadline:
        time.sleep(0.02)  # training paused: no new value comes to trigger a flush
    assert not buffer._meta and not tracker._pending
    run.flush()
    rec = autotrack.get_run(run.id)
    assert rec.summary["train/loss"] == 0.25 and "train/grad_norm" in rec.summary
    run.end()


def test_non_finite_gradients_record_first_step_and_parameters(store):
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    run = autotrack.start_run()
    tracker = GradNormTracker(model.named_parameters(), run, per_layer_every=0, flush_every=3)
    for step in range(4):
        model.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        if step >= 2:
            model[1].weight.grad[0, 0] = float("inf")
        tracker.step(step)
    tracker.flush()
    run.end()
    rec = autotrack.get_run(run.id)
    assert rec.tags["grad_nonfinite/first_step"] == "2"
    assert rec.tags["grad_nonfinite/params"] == "1.weight"
    values = rec.metric_arrays("train/grad_norm")[1]
    assert np.isfinite(values[:2]).all() and np.isinf(values[2:]).all()


def test_checkpoint_recorder_hashes_in_background_and_marks_deleted(store, tmp_path):
    run = autotrack.start_run()
    rec_ckpt = CheckpointRecorder(run)
    files = []
    for i in range(3):
        path = tmp_path / f"ckpt{i}.pt"
        torch.save({"w": torch.full((100,), float(i))}, path)
        files.append(path)
        rec_ckpt.record(str(path), path.name, step=i, metadata={"epoch": i, "best": i == 1})
    t0 = time.perf_counter()
    rec_ckpt.wait()
    assert time.perf_counter() - t0 < 10
    rec_ckpt.mark_deleted("ckpt0.pt")
    files[0].unlink()
    rec_ckpt.update("ckpt2.pt", {"score": 0.5})
    gone = tmp_path / "gone.pt"
    gone.write_bytes(b"x")
    gone.unlink()  # deleted before the worker could hash it (a trainer's save_top_k can do that)
    rec_ckpt.record(str(gone), "gone.pt", step=3, metadata={"epoch": 3})
    copied = CheckpointRecorder(run, copy=True)
    copied.record(str(files[2]), "copied.pt", step=2, metadata={})
    run.end()  # the end hooks wait for the queues
    rec = autotrack.get_run(run.id)
    arts = {a.name: a for a in rec.artifacts}
    assert set(arts) == {"ckpt0.pt", "ckpt1.pt", "ckpt2.pt", "copied.pt", "gone.pt"}
    assert arts["gone.pt"].deleted and arts["gone.pt"].sha256 is None and arts["gone.pt"].step == 3
    assert arts["gone.pt"].metadata == {"epoch": 3, "deleted_before_hashing": True}
    for i in (1, 2):
        a = arts[f"ckpt{i}.pt"]
        assert a.kind == "checkpoint" and not a.stored and a.step == i
        assert a.sha256 == hashlib.sha256(files[i].read_bytes()).hexdigest()
        assert a.size == files[i].stat().st_size
    assert arts["ckpt0.pt"].deleted and not arts["ckpt1.pt"].deleted
    assert arts["ckpt1.pt"].metadata["best"] is True
    assert arts["ckpt2.pt"].metadata == {"epoch": 2, "best": False, "score": 0.5}
    assert arts["copied.pt"].stored and Path(arts["copied.pt"].path).read_bytes() == files[2].read_bytes()


@pytest.mark.parametrize("always_buffer", [False, True], ids=["cpu-refs", "device-buffer-path"])
def test_a_steps_row_in_one_call_keeps_every_value_and_its_step(store, monkeypatch, always_buffer):
    """`ScalarBuffer.add_step` (the per-step path of the PyTorch and Lightning integrations):
    tensors (grad-requiring and one-element ones too) and plain numbers of one step, None left
    out; nothing reaches the run before a batch is full or a flush; then every value at its step."""
    import autotrack.integrations.base as at

    monkeypatch.setattr(at, "MAX_AGE_S", 600.0)  # only the batch size and flush() decide here
    run = autotrack.start_run()
    buffer = ScalarBuffer(run, flush_every=10, always_buffer=always_buffer)
    w = torch.tensor([2.0], requires_grad=True)
    truth: dict[str, list[tuple[int, float]]] = {"loss": [], "norm": [], "lr": [], "lr2": []}
    keys = ("norm", "loss", "lr", "lr2")
    logged: list[tuple] = []
    buffer._log = lambda *point: (logged.append(point), run.log_metric(*point))
    for step in range(7):
        loss = (w * (step + 1)).sum()  # requires grad
        norm = torch.tensor([0.5 * step]) if step % 3 else None  # one-element, and absent on some steps
        lrs = (0.1 / (step + 1), torch.tensor(0.01 * step, dtype=torch.float64))
        buffer.add_step(step, keys, (norm, loss, *lrs))
        truth["loss"].append((step, 2.0 * (step + 1)))
        truth["lr"].append((step, 0.1 / (step + 1)))
        truth["lr2"].append((step, 0.01 * step))
        if norm is not None:
            truth["norm"].append((step, 0.5 * step))
        if step == 1:
            assert logged == []  # 7 values wait in the buffer
        if step == 2:
            assert len(logged) == 11  # the batch (10) is full: all handed over in one go
    buffer.flush()
    run.end()
    rec = autotrack.get_run(run.id)
    for key, want in truth.items():
        steps, values, _ = rec.metric_arrays(key)
        assert list(steps) == [s for s, _ in want], key
        np.testing.assert_allclose(values, [v for _, v in want], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("device", [
    "cpu",  # the accelerator code path (device buffer, batched copies), forced on the CPU
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
])
def test_device_buffer_copies_out_in_batches_and_matches(store, device, monkeypatch):
    import autotrack.integrations.base as at

    monkeypatch.setattr(at, "MAX_AGE_S", 600.0)  # only the batch size decides here
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 1)).to(device)
    run = autotrack.start_run()
    buffer = ScalarBuffer(run, flush_every=8, always_buffer=True)
    tracker = GradNormTracker(model.named_parameters(), run, per_layer_every=5, flush_every=8, always_buffer=True)
    losses = LossTracker(buffer)
    truth_norms, truth_losses, truth_params = [], [], []
    pending = []
    for step in range(12):
        model.zero_grad()
        loss = model(torch.randn(4, 8, device=device)).pow(2).mean()
        loss.backward()
        if step == 9:
            model[1].bias.grad.fill_(float("nan"))
        losses.add(loss)
        losses.step(step)
        tracker.step(step)
        norms = own_norms(model)
        truth_params.append(norms)
        truth_norms.append(math.sqrt(sum(v * v for v in norms.values())))
        truth_losses.append(loss.item())
        pending.append((len(buffer._meta), len(tracker._pending)))
    assert max(pending) == (7, 7)  # never more than flush_every values wait on the device
    assert tracker._buf is not None and tracker._buf.numel() == 8 * 4  # preallocated: 8 steps x 4 params
    assert tracker.nonfinite_step is None  # step 9 waits in the second batch, not copied out yet
    buffer.flush()
    tracker.flush()
    assert tracker.nonfinite_step == 9
    run.end()
    rec = autotrack.get_run(run.id)
    got = rec.metric_arrays("train/grad_norm")[1]
    assert np.isnan(got[9]) and np.isnan(truth_norms[9])
    keep = [i for i in range(12) if i != 9]
    np.testing.assert_allclose(got[keep], np.array(truth_norms)[keep], rtol=1e-5)
    np.testing.assert_allclose(rec.metric_arrays("train/loss")[1], truth_losses, rtol=1e-6)
    s, v, _ = rec.metric_arrays("grad_norm/0.weight")
    assert list(s) == [0, 5, 10]
    np.testing.assert_allclose(v, [truth_params[i]["0.weight"] for i in (0, 5, 10)], rtol=1e-5)
    assert rec.tags["grad_nonfinite/first_step"] == "9"
    assert rec.tags["grad_nonfinite/params"] == "1.bias"
