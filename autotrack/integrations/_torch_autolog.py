"""Autologging of plain PyTorch training loops, through torch's global optimizer hooks.

No change to the training loop: every ``optimizer.step()`` in the process records
``train/grad_norm`` (before clipping: the norm ``clip_grad_norm_`` returned when it was called,
else the fused norm of the gradients), ``train/lr`` (``train/lr/<group>``) and ``train/loss`` (the
mean of the scalar tensors ``.backward()`` was called on since the previous step, un-scaled when a
``GradScaler`` scaled them), at step = that optimizer step; the ``optimizer`` and ``model``
sections at the first step; and checkpoints written with ``torch.save`` as artifacts of kind
``checkpoint``.

Run boundaries: one run per script. When a script trains several models one after another, a new
run starts when an optimizer steps parameters that no optimizer of the current run covers; the
previous run ends ``finished``. Training driven by Lightning with an :class:`AutotrackCallback` is
left to the callback (see :func:`framework_recording`).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import weakref
from typing import Any

import torch
from torch import Tensor, nn

from autotrack._patching import guarded, patch, unpatch
from autotrack.integrations.torch import (
    CheckpointRecorder,
    GradNormTracker,
    ScalarBuffer,
    lr_keys,
    model_info,
    optimizer_info,
)

INTEGRATION = "pytorch"

_lock = threading.RLock()
_framework_depth = 0


class framework_recording:
    """While a framework integration (the Lightning callback) records a training, the global
    optimizer hooks stay out of its way."""

    def __enter__(self) -> None:
        global _framework_depth
        _framework_depth += 1

    def __exit__(self, *exc: object) -> None:
        global _framework_depth
        _framework_depth = max(0, _framework_depth - 1)


class _Session:
    """One autologged run: one model (and its optimizers) being trained."""

    def __init__(self, optimizer: torch.optim.Optimizer, options: dict[str, Any]) -> None:
        import autotrack

        self.options = options
        active = autotrack.active_run()
        self.owned = active is None
        self.run = active if active is not None else autotrack.start_run()
        self.step = 0
        self.optimizers: list[torch.optim.Optimizer] = []
        self.param_ids: set[int] = set()
        self.buffer = ScalarBuffer(self.run)
        self.models = _owning_modules(optimizer)
        named = []
        seen: set[int] = set()
        for model in self.models:
            for name, p in model.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    named.append((name if len(self.models) == 1 else f"{type(model).__name__}.{name}", p))
        self.names = {id(p): n for n, p in named}
        self.grad_norms: GradNormTracker | None = None
        self.checkpoints = CheckpointRecorder(self.run)
        self.saved: set[str] = set()
        self.lr_keys: list[list[str]] = []
        self.norms_done_step = -1
        self.add_optimizer(optimizer)
        if len(self.models) == 1:
            self.run.set_info("model", model_info(self.models[0]))
        elif self.models:
            self.run.set_info("model", {"models": [model_info(m) for m in self.models]})
        self.run.add_end_hook(self._on_end)

    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizers.append(optimizer)
        for group in optimizer.param_groups:
            self.param_ids.update(id(p) for p in group["params"])
        params = [(self.names.get(id(p), f"param{i}"), p) for i, p in enumerate(
            p for opt in self.optimizers for g in opt.param_groups for p in g["params"])]
        self.grad_norms = GradNormTracker(params, self.buffer, per_layer_every=self.options.get("grad_norm_every", 50))
        self.lr_keys = lr_keys(self.optimizers)
        model = self.models[0] if len(self.models) == 1 else None
        schedulers = [s for s in list(_schedulers) if any(s.optimizer is o for o in self.optimizers)]
        self.run.set_info("optimizer", optimizer_info(self.optimizers, model, schedulers, scaler=_last_scaler()))

    def covers(self, optimizer: torch.optim.Optimizer) -> bool:
        return any(id(p) in self.param_ids for g in optimizer.param_groups for p in g["params"])

    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        global _clip_norm
        step = self.step
        if optimizer is self.optimizers[0]:
            if self.norms_done_step == step:
                pass  # recorded before clipping, inside clip_grad_norm_
            elif _clip_norm is not None:
                self.buffer.add("train/grad_norm", step, _clip_norm)
            elif self.grad_norms is not None:
                self.grad_norms.step(step)
            _clip_norm = None
            if _losses:
                losses = _losses[:]
                _losses.clear()
                loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
                self.buffer.add("train/loss", step, loss)
        index = next((i for i, o in enumerate(self.optimizers) if o is optimizer), 0)
        for key, group in zip(self.lr_keys[index], optimizer.param_groups):
            self.buffer.add(key, step, group["lr"])
        self.run.step = step

    def per_layer_due(self) -> bool:
        tracker = self.grad_norms
        return tracker is not None and bool(tracker.per_layer_every) and self.step % tracker.per_layer_every == 0

    def record_grad_norms(self) -> None:
        """Global and per-layer norms now (called before clipping changes the gradients)."""
        if self.grad_norms is not None:
            self.grad_norms.step(self.step)
            self.norms_done_step = self.step

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        if optimizer is self.optimizers[0]:
            self.step += 1

    def end(self) -> None:
        if self.owned and not self.run.ended:
            self.run.end("finished")
        else:
            self.buffer.flush()

    @guarded("pytorch autolog: end of run")
    def _on_end(self, run: Any, status: str) -> None:
        self.buffer.flush()
        if self.options.get("log_models") and self.models and status == "finished":
            self._log_final_weights()

    def _log_final_weights(self) -> None:
        import tempfile

        from autotrack._patching import suspended

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.pt")
            state = self.models[0].state_dict() if len(self.models) == 1 else {
                f"{i}.{type(m).__name__}": m.state_dict() for i, m in enumerate(self.models)}
            with suspended():
                torch.save(state, path)
            self.run.log_artifact(path, "model.pt", "model", step=self.step,
                                  metadata={"format": "torch state_dict", "load_with": "torch.load(path, weights_only=True)"})


_session: _Session | None = None
_handles: list[Any] = []
_options: dict[str, Any] = {}
#: id of a tensor GradScaler.scale returned -> that scaler (popped by the backward that follows)
_scaled: dict[int, Any] = {}
_scaler_ref: weakref.ref[Any] | None = None


def _last_scaler() -> Any:
    return _scaler_ref() if _scaler_ref is not None else None


def _owning_modules(optimizer: torch.optim.Optimizer) -> list[nn.Module]:
    """The outermost modules whose parameters the optimizer steps: looked up in the caller's
    frames first (cheap; usually finds ``model``), else among all live modules."""
    wanted = {id(p) for g in optimizer.param_groups for p in g["params"]}
    candidates: dict[int, nn.Module] = {}
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, nn.Module):
                candidates[id(value)] = value
            elif hasattr(value, "__dict__") and not isinstance(value, type):
                for attr in list(getattr(value, "__dict__", {}).values()):
                    if isinstance(attr, nn.Module):
                        candidates[id(attr)] = attr
        frame = frame.f_back
    covering = [m for m in candidates.values() if any(id(p) in wanted for p in m.parameters())]
    if not covering:
        covering = [o for o in gc.get_objects() if isinstance(o, nn.Module) and any(id(p) in wanted for p in o.parameters())]
    # keep the outermost: drop modules contained in another candidate
    inner = {id(sub) for m in covering for sub in m.modules() if sub is not m}
    return [m for m in covering if id(m) not in inner]


# -- hooks ---------------------------------------------------------------------------------------


@guarded("pytorch autolog: optimizer step")
def _before_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    global _session
    if _framework_depth:
        return
    session = _session
    if session is not None and session.optimizers[0] is optimizer and not session.run.ended:
        session.before_step(optimizer)  # the common case: no lock, no lookups
        return
    with _lock:
        session = _session
        if session is None or session.run.ended:
            session = _session = _Session(optimizer, _options)
        elif not any(o is optimizer for o in session.optimizers):
            if session.covers(optimizer) or _shares_models(session, optimizer):
                session.add_optimizer(optimizer)
            else:  # a new model is being trained: a new run
                session.end()
                session = _session = _Session(optimizer, _options)
        session.before_step(optimizer)


def _shares_models(session: _Session, optimizer: torch.optim.Optimizer) -> bool:
    wanted = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return any(id(p) in wanted for m in session.models for p in m.parameters())


@guarded("pytorch autolog: optimizer step")
def _after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    if _framework_depth:
        return
    session = _session
    if session is not None and any(o is optimizer for o in session.optimizers):
        session.after_step(optimizer)


#: Scalars ``.backward()`` was called on since the last optimizer step, and the norm
#: ``clip_grad_norm_`` returned: consumed by the next step of the first optimizer.
_losses: list[Tensor] = []
_clip_norm: Tensor | None = None


def _backward(original: Any, self: Tensor, *args: Any, **kwargs: Any) -> Any:
    result = original(self, *args, **kwargs)
    if not _framework_depth and self.dim() == 0 and self.is_floating_point():
        _record_loss(self)
    return result


@guarded("pytorch autolog: loss")
def _record_loss(tensor: Tensor) -> None:
    loss = tensor.detach()
    scaler = _scaled.pop(id(tensor), None)
    if scaler is not None and getattr(scaler, "_scale", None) is not None:
        loss = loss / scaler._scale.to(loss.dtype)  # on the device: no synchronisation
    if len(_losses) < 10_000:  # a loop that never steps an optimizer must not grow this forever
        _losses.append(loss)


def _scale(original: Any, self: Any, outputs: Any) -> Any:
    global _scaler_ref
    result = original(self, outputs)
    if isinstance(result, Tensor) and self.is_enabled():
        if len(_scaled) > 64:  # scaled outputs that were never backpropagated
            _scaled.clear()
        _scaled[id(result)] = self
        _scaler_ref = weakref.ref(self)
    return result


def _clip_grad_norm(original: Any, *args: Any, **kwargs: Any) -> Any:
    global _clip_norm
    session = _session
    if not _framework_depth and session is not None and not session.run.ended and session.per_layer_due():
        _record_norms_before_clipping(session)
        return original(*args, **kwargs)
    total = original(*args, **kwargs)
    if not _framework_depth and isinstance(total, Tensor):
        _clip_norm = total.detach()  # the norm before clipping
    return total


@guarded("pytorch autolog: gradient norms")
def _record_norms_before_clipping(session: _Session) -> None:
    session.record_grad_norms()


def _save(original: Any, obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
    result = original(obj, f, *args, **kwargs)
    session = _session
    if session is not None and not _framework_depth and not session.run.ended and isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        epoch = obj.get("epoch") if isinstance(obj, dict) else None
        name = os.path.basename(path)
        if path in session.saved:  # overwritten: the earlier record no longer matches the file
            session.checkpoints.mark_deleted(name)
        session.saved.add(path)
        session.checkpoints.record(
            path, name, step=session.step,
            metadata={"step": session.step, "epoch": epoch, "source": "torch.save"},
        )
    return result


_schedulers: weakref.WeakSet[Any] = weakref.WeakSet()


def _scheduler_init(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    result = original(self, *args, **kwargs)
    _schedulers.add(self)
    return result


def autolog(*, disable: bool = False, grad_norm_every: int = 50, log_models: bool = True) -> None:
    """Record plain PyTorch training loops (see the module docstring). ``disable=True`` undoes it."""
    global _session
    with _lock:
        if disable:
            for handle in _handles:
                handle.remove()
            _handles.clear()
            unpatch(INTEGRATION)
            if _session is not None:
                _session.end()
                _session = None
            return
        _options.update(grad_norm_every=grad_norm_every, log_models=log_models)
        if _handles:
            return
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        _handles.append(register_optimizer_step_pre_hook(_before_step))
        _handles.append(register_optimizer_step_post_hook(_after_step))
        patch(INTEGRATION, torch.Tensor, "backward", _backward)
        patch(INTEGRATION, torch.nn.utils, "clip_grad_norm_", _clip_grad_norm)
        patch(INTEGRATION, torch, "save", _save)
        patch(INTEGRATION, torch.optim.lr_scheduler.LRScheduler, "__init__", _scheduler_init)
        for owner in _grad_scaler_classes():
            patch(INTEGRATION, owner, "scale", _scale)


def _grad_scaler_classes() -> list[type]:
    classes = []
    for module_name in ("torch.amp.grad_scaler", "torch.cuda.amp.grad_scaler"):
        module = sys.modules.get(module_name)
        cls = getattr(module, "GradScaler", None) if module is not None else None
        if cls is not None and "scale" in cls.__dict__ and cls not in classes:
            classes.append(cls)
    if not classes:
        from torch.amp.grad_scaler import GradScaler

        classes.append(GradScaler)
    return classes


def current_run() -> Any:
    """The run the plain-PyTorch autolog is writing, if any."""
    return None if _session is None else _session.run
