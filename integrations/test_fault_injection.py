"""Autologging never breaks training: a fault injected into each capture function in turn leaves
the training's results bit-identical, with one warning (issue 7's acceptance check)."""

from __future__ import annotations

import time
import warnings

import pytest

torch = pytest.importorskip("torch")

import autotrack  # noqa: E402
from autotrack import _patching  # noqa: E402

# (module, attribute) pairs: every piece of capture that runs around a plain PyTorch training
TARGETS = [
    ("autotrack._capture.hardware", "capture_hardware"),
    ("autotrack._capture.environment", "capture_environment"),
    ("autotrack._capture.source", "capture_source"),
    ("autotrack._capture.system.SystemSampler", "sample"),
    ("autotrack._capture.seeds", "record_seed"),
    ("autotrack.integrations.torch.autologging", "model_info"),
    ("autotrack.integrations.torch.autologging", "optimizer_info"),
    ("autotrack.integrations.torch.autologging", "lr_keys"),
    ("autotrack.integrations.torch.GradNormTracker", "step"),
    ("autotrack.integrations.torch.ScalarBuffer", "add_step"),
    ("autotrack.integrations.torch.CheckpointRecorder", "record"),
    ("autotrack.integrations.torch.autologging._Session", "record_step"),
    ("autotrack.integrations.torch.autologging", "_record_loss"),
]


def _resolve(path: str):
    import importlib

    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _train(tmp_path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(128, 6)
    y = x.sum(dim=1, keepdim=True)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3)
    for step in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[step * 8 : step * 8 + 8]), y[step * 8 : step * 8 + 8])
        loss.backward()
        opt.step()
        sched.step()
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def autologged(store, monkeypatch):
    monkeypatch.delenv("AUTOTRACK_STRICT", raising=False)
    monkeypatch.setenv("AUTOTRACK_CAPTURE", "1")
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0.05")
    _patching._warned.clear()
    yield
    autotrack.autolog(disable=True)
    while (run := autotrack.active_run()) is not None:
        run.end()


@pytest.mark.parametrize("target", [f"{m}.{a}" for m, a in TARGETS])
def test_injected_fault_leaves_training_identical(autologged, tmp_path, monkeypatch, target):
    baseline = _train(tmp_path)
    owner_path, attr = target.rsplit(".", 1)
    owner = _resolve(owner_path)
    assert hasattr(owner, attr), target  # the list names real capture functions

    def broken(*args, **kwargs):
        raise RuntimeError(f"injected fault in {target}")

    monkeypatch.setattr(owner, attr, broken)
    autotrack.autolog(system_metrics=0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        weights = _train(tmp_path)
        if "SystemSampler" in target:
            time.sleep(0.8)  # let the sampler (first sample 0.5 s after start) run into the fault
        from autotrack.integrations.torch.autologging import current_run

        run = current_run()
        if run is not None:
            run.end()
    assert weights.keys() == baseline.keys()
    assert all(torch.equal(weights[k], baseline[k]) for k in weights)  # bit-identical training
    ours = [w for w in caught if "injected fault" in str(w.message)]
    assert 1 <= len(ours) <= 2, [str(w.message) for w in caught]  # reported, once per place
    if run is not None:
        assert autotrack.get_run(run.id).status == "finished"
