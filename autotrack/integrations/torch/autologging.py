"""Autologging of plain PyTorch training loops, through torch's global hooks.

No change to the training loop: every ``optimizer.step()`` records ``train/grad_norm`` (before
clipping: the norm ``clip_grad_norm_`` returned when it was called, else the fused norm of the
gradients), ``train/lr`` (``train/lr/<group>``) and ``train/loss`` (the mean of the scalar tensors
``.backward()`` was called on since the last ``zero_grad()`` / optimizer step, un-scaled when a
``GradScaler`` scaled them; with ``optimizer.step(closure)`` the first loss the closure computed,
recorded at that same step), at step = that optimizer step; the ``optimizer`` and ``model``
sections at the first step; and checkpoints written with ``torch.save`` as artifacts of kind
``checkpoint``. Runs carry the tag ``autotrack.integration=pytorch``.

How the model is found: torch's global module/parameter registration hooks map every parameter to
the module it was registered on, and every module to its parent, so the optimizer's parameters
lead to the outermost model (models built before ``autolog()`` get no ``model`` section). No frame
is inspected.

Run boundaries: one run per training. A new run starts when an optimizer steps parameters that no
optimizer of the current run covers; the previous run ends ``finished``. Each thread (each
``contextvars`` context) has its own training state, so parallel trainings never share a run.
Calls made while another integration records (``base.recording``: the Lightning callback; a
Lightning fit while Lightning autologging is switched off) are left alone.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import weakref
from typing import Any

import torch
from torch import Tensor, nn

import autotrack
from autotrack.integrations.base import RunSlot, being_recorded, guarded, patch, suspended, unpatch
from autotrack.integrations.torch.buffers import GradNormTracker, ScalarBuffer
from autotrack.integrations.torch.checkpoints import CheckpointRecorder
from autotrack.integrations.torch.describe import lr_keys, model_info, optimizer_info, training_params
from autotrack.integrations.torch.signature import ForwardProbe

INTEGRATION = "pytorch"

_lock = threading.RLock()


class _Session:
    """One autologged run: one model (and its optimizers) being trained."""

    def __init__(self, optimizer: torch.optim.Optimizer, options: dict[str, Any]) -> None:
        self.options = options
        self.slot = RunSlot(INTEGRATION, autotrack.active_run())
        self.run = self.slot.get()
        self.owned = self.slot.created
        self.step = 0
        self.every = max(1, int(options.get("log_every_n_steps") or 1))
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
        self.step_keys: list[tuple[str, ...]] = []
        self.norms_done_step = -1
        self.add_optimizer(optimizer)
        if len(self.models) == 1:
            self.run.set_info("model", model_info(self.models[0]))
        elif self.models:
            self.run.set_info("model", {"models": [model_info(m) for m in self.models]})
        # the next forward of the model: its input/output shapes and first rows (the signature)
        self.probe = ForwardProbe(self.models[0]) if options.get("log_models") and len(self.models) == 1 else None
        self.run.add_end_hook(self._on_end)
        with _lock:
            _sessions.add(self)

    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizers.append(optimizer)
        for group in optimizer.param_groups:
            self.param_ids.update(id(p) for p in group["params"])
        params = [(self.names.get(id(p), f"param{i}"), p) for i, p in enumerate(
            p for opt in self.optimizers for g in opt.param_groups for p in g["params"])]
        self.grad_norms = GradNormTracker(params, self.buffer, per_layer_every=self.options.get("grad_norm_every", 50))
        self.lr_keys = lr_keys(self.optimizers)
        #: per optimizer, the keys of one step's row: gradient norm, loss, then each group's rate
        self.step_keys = [("train/grad_norm", "train/loss", *keys) for keys in self.lr_keys]
        model = self.models[0] if len(self.models) == 1 else None
        schedulers = [s for s in list(_schedulers) if any(s.optimizer is o for o in self.optimizers)]
        self.run.set_info("optimizer", optimizer_info(self.optimizers, model, schedulers, scaler=_last_scaler()))
        if self.owned:  # a run the user started keeps the params the user gave it
            self.run.log_params(training_params(self.optimizers, self.models))

    def covers(self, optimizer: torch.optim.Optimizer) -> bool:
        return any(id(p) in self.param_ids for g in optimizer.param_groups for p in g["params"])

    def due(self) -> bool:
        return self.step % self.every == 0

    def record_step(self, state: _State, optimizer: torch.optim.Optimizer) -> None:
        """Loss, gradient norm and learning rates of the step being taken: one row, handed to the
        buffer in one call with keys made when the optimizer was found."""
        step = self.step
        due = step % self.every == 0
        first = optimizer is self.optimizers[0]
        norm = loss = None
        if first:
            if due and self.norms_done_step != step:  # else: skipped, or taken before clipping
                if state.clip_norm is not None:
                    norm = state.clip_norm
                elif self.grad_norms is not None:
                    self.grad_norms.step(step)
            state.clip_norm = None
            losses, state.losses = state.losses, []
            if losses and due:
                loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        if due:
            index = 0 if first else next((i for i, o in enumerate(self.optimizers) if o is optimizer), 0)
            self.buffer.add_step(step, self.step_keys[index], (norm, loss, *[g["lr"] for g in optimizer.param_groups]))
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
        if self.probe is not None:
            self.probe.close()

    def _log_final_weights(self) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.pt")
            state = self.models[0].state_dict() if len(self.models) == 1 else {
                f"{i}.{type(m).__name__}": m.state_dict() for i, m in enumerate(self.models)}
            with suspended():
                torch.save(state, path)
            metadata = {"format": "torch state_dict", "load_with": "torch.load(path, weights_only=True)"}
            if self.probe is not None:
                metadata.update(self.probe.metadata())
            self.run.log_artifact(path, "model.pt", "model", step=self.step, metadata=metadata)


class _State:
    """The training state of one context (thread): its session and what awaits the next step."""

    __slots__ = ("session", "losses", "clip_norm", "closure_step")

    def __init__(self) -> None:
        self.session: _Session | None = None
        #: scalars ``.backward()`` was called on since the last zero_grad / step
        self.losses: list[Tensor] = []
        #: the norm ``clip_grad_norm_`` returned (the norm before clipping)
        self.clip_norm: Tensor | None = None
        #: the optimizer whose ``step(closure)`` is running
        self.closure_step: torch.optim.Optimizer | None = None


_state_var: contextvars.ContextVar[_State] = contextvars.ContextVar("autotrack_torch_state")
_sessions: weakref.WeakSet[_Session] = weakref.WeakSet()
_handles: list[Any] = []
_options: dict[str, Any] = {}
#: id of a tensor GradScaler.scale returned -> that scaler (popped by the backward that follows)
_scaled: dict[int, Any] = {}
_scaler_ref: weakref.ref[Any] | None = None


def _state() -> _State:
    state = _state_var.get(None)
    if state is None:
        state = _State()
        _state_var.set(state)
    return state


def _last_scaler() -> Any:
    return _scaler_ref() if _scaler_ref is not None else None


# -- which model: registration hooks, no frame walking ----------------------------------------------

#: id(parameter) -> (module it was registered on, its name there); id(module) -> (parent, name)
_param_owner: dict[int, tuple[weakref.ref[nn.Module], str]] = {}
_module_parent: dict[int, tuple[weakref.ref[nn.Module], str]] = {}


def _on_parameter_registered(module: nn.Module, name: str, param: Any) -> None:
    if param is not None:
        _param_owner[id(param)] = (weakref.ref(module), name)
        if len(_param_owner) > 200_000:
            _prune(_param_owner)


def _on_module_registered(parent: nn.Module, name: str, module: Any) -> None:
    if module is not None:
        _module_parent[id(module)] = (weakref.ref(parent), name)
        if len(_module_parent) > 200_000:
            _prune(_module_parent)


def _prune(table: dict[int, tuple[weakref.ref[nn.Module], str]]) -> None:
    for key in [k for k, (ref, _) in table.items() if ref() is None]:
        table.pop(key, None)


def _owner(param: Tensor) -> nn.Module | None:
    entry = _param_owner.get(id(param))
    if entry is None:
        return None
    module = entry[0]()
    if module is None or module._parameters.get(entry[1]) is not param:
        return None  # the id of a parameter that no longer exists
    return module


def _outermost(module: nn.Module) -> nn.Module:
    seen = {id(module)}
    while True:
        entry = _module_parent.get(id(module))
        parent = entry[0]() if entry is not None else None
        if parent is None or parent._modules.get(entry[1]) is not module or id(parent) in seen:  # type: ignore[index]
            return module
        seen.add(id(parent))
        module = parent


def _owning_modules(optimizer: torch.optim.Optimizer) -> list[nn.Module]:
    """The outermost modules whose parameters the optimizer steps."""
    found: dict[int, nn.Module] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            owner = _owner(p)
            if owner is not None:
                top = _outermost(owner)
                found.setdefault(id(top), top)
    return list(found.values())


# -- hooks -------------------------------------------------------------------------------------------


def _closure_of(optimizer: Any, args: Any, kwargs: Any) -> Any:
    """The closure passed to ``optimizer.step`` (torch hands hooks the call's args, self first)."""
    closure = kwargs.get("closure") if kwargs else None
    if closure is None and args:
        rest = args[1:] if args[0] is optimizer else args
        closure = rest[0] if rest else None
    return closure if callable(closure) else None


@guarded("pytorch autolog: optimizer step")
def _before_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    if being_recorded() is not None:
        return
    state = _state()
    session = _session_for(state, optimizer)
    if _closure_of(optimizer, args, kwargs) is not None and optimizer is session.optimizers[0]:
        # the closure computes this step's loss and gradients inside step(): recorded after it
        state.closure_step = optimizer
        state.losses = []
        return
    session.record_step(state, optimizer)


def _session_for(state: _State, optimizer: torch.optim.Optimizer) -> _Session:
    session = state.session
    if session is not None and session.optimizers[0] is optimizer and not session.run.ended:
        return session  # the common case: no lock, no lookups
    with _lock:
        if session is None or session.run.ended:
            session = state.session = _Session(optimizer, _options)
        elif not any(o is optimizer for o in session.optimizers):
            if session.covers(optimizer) or _shares_models(session, optimizer):
                session.add_optimizer(optimizer)
            else:  # a new model is being trained: a new run
                session.end()
                session = state.session = _Session(optimizer, _options)
    return session


def _shares_models(session: _Session, optimizer: torch.optim.Optimizer) -> bool:
    wanted = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return any(id(p) in wanted for m in session.models for p in m.parameters())


@guarded("pytorch autolog: optimizer step")
def _after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    if being_recorded() is not None:
        return
    state = _state()
    session = state.session
    if session is None or not any(o is optimizer for o in session.optimizers):
        return
    if state.closure_step is optimizer:
        state.closure_step = None
        losses = state.losses
        state.losses = losses[:1]  # the closure's first evaluation: the loss step() returns
        session.record_step(state, optimizer)
    session.after_step(optimizer)


def _backward(original: Any, self: Tensor, *args: Any, **kwargs: Any) -> Any:
    result = original(self, *args, **kwargs)
    if self.dim() == 0 and self.is_floating_point() and being_recorded() is None:
        _record_loss(self)
    return result


@guarded("pytorch autolog: loss")
def _record_loss(tensor: Tensor) -> None:
    loss = tensor.detach()
    scaler = _scaled.pop(id(tensor), None)
    if scaler is not None:
        scale = getattr(scaler, "_scale", None)  # private (get_scale() synchronises): PRIVATE_ATTRIBUTES
        if isinstance(scale, Tensor):
            loss = loss / scale.to(loss.dtype)  # on the device: no synchronisation
    losses = _state().losses
    if len(losses) < 10_000:  # a loop that never steps an optimizer must not grow this forever
        losses.append(loss)


def _zero_grad(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    """Gradients from before ``zero_grad()`` never reach a step: neither do their losses."""
    result = original(self, *args, **kwargs)
    state = _state_var.get(None)
    if state is not None and state.closure_step is None:
        state.losses = []
    return result


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
    state = _state()
    session = state.session
    if session is not None and not session.run.ended and session.due() and session.per_layer_due():
        _record_norms_before_clipping(session)
        return original(*args, **kwargs)
    total = original(*args, **kwargs)
    if isinstance(total, Tensor):
        state.clip_norm = total.detach()  # the norm before clipping
    return total


@guarded("pytorch autolog: gradient norms")
def _record_norms_before_clipping(session: _Session) -> None:
    session.record_grad_norms()


def _saved_path(f: Any) -> str | None:
    """Where ``torch.save`` wrote: a path, or the file an open file object writes to (flushed
    now, so that the background hash reads what was saved). None for in-memory buffers."""
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    name = getattr(f, "name", None)
    if not isinstance(name, str) or not hasattr(f, "write") or not os.path.isfile(name):
        return None  # io.BytesIO, a socket, a pipe: nothing on disk to point at
    try:
        f.flush()
    except Exception:  # noqa: BLE001 - a file that cannot flush is recorded as it is on disk
        pass
    return os.path.abspath(name)


def _save(original: Any, obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
    result = original(obj, f, *args, **kwargs)
    state = _state_var.get(None)
    session = state.session if state is not None else None
    path = _saved_path(f) if session is not None and not session.run.ended else None
    if path is not None:
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


def autolog(*, disable: bool = False, log_models: bool = True, log_every_n_steps: int | None = None,
            grad_norm_every: int = 50) -> None:
    """Record plain PyTorch training loops (see the module docstring). ``disable=True`` undoes it.

    ``log_every_n_steps``: record loss, gradient norm and learning rate every N optimizer steps
    (default: every step); ``grad_norm_every``: per-layer gradient norms every N steps."""
    with _lock:
        if disable:
            for handle in _handles:
                handle.remove()
            _handles.clear()
            unpatch(INTEGRATION)
            for session in list(_sessions):
                session.end()
            _sessions.clear()
            state = _state_var.get(None)
            if state is not None:
                state.session, state.losses = None, []
            return
        _options.update(grad_norm_every=grad_norm_every, log_models=log_models, log_every_n_steps=log_every_n_steps)
        if _handles:
            return
        from torch.nn.modules.module import (
            register_module_module_registration_hook,
            register_module_parameter_registration_hook,
        )
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        _handles.append(register_module_parameter_registration_hook(_on_parameter_registered))
        _handles.append(register_module_module_registration_hook(_on_module_registered))
        _handles.append(register_optimizer_step_pre_hook(_before_step))
        _handles.append(register_optimizer_step_post_hook(_after_step))
        patch(INTEGRATION, torch.Tensor, "backward", _backward)
        patch(INTEGRATION, torch.optim.Optimizer, "zero_grad", _zero_grad)
        patch(INTEGRATION, torch.nn.Module, "zero_grad", _zero_grad)
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
    """The run the plain-PyTorch autolog is writing in this context, if any."""
    state = _state_var.get(None)
    return None if state is None or state.session is None else state.session.run
