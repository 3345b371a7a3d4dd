"""Building blocks any PyTorch training shares: the Lightning callback uses them, and so will the
one-line autolog for plain PyTorch loops.

* :func:`model_info` -- section ``model``: module tree, parameter counts, shapes, dtypes, sizes.
* :func:`optimizer_info` -- section ``optimizer``: optimizers, param groups, schedulers, GradScaler.
* :class:`ScalarBuffer` -- 0-d tensors (losses, user metrics) reach the run without a host-device
  synchronisation inside the step: on an accelerator they are copied into a preallocated device
  buffer, copied out in one transfer every ``flush_every`` values -- or by a background thread once
  the oldest has waited ``MAX_AGE_S`` (0.1 s), so batching never weakens crash safety.
* :class:`GradNormTracker` -- ``train/grad_norm`` (global L2 norm of all gradients from one fused
  ``torch._foreach_norm`` per step) at every optimizer step, ``grad_norm/<name>`` every
  ``per_layer_every`` steps, and the first step with non-finite gradients; batched the same way.
* :class:`LossTracker` -- ``train/loss`` per optimizer step (the mean of the micro-batch losses
  accumulated since the previous step).
* :func:`lr_metrics` -- ``train/lr`` (``train/lr/<group>``) of each param group.
* :class:`CheckpointRecorder` -- checkpoint files as artifacts of kind ``checkpoint``, hashed in a
  background thread, by reference unless ``copy=True``.
* :func:`autolog` -- the plain-PyTorch autolog (``autotrack.integrations._torch_autolog``), which
  builds on the above.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from autotrack._errors import InvalidArgumentError
from autotrack._patching import report_failure

if TYPE_CHECKING:
    from autotrack import Run

__all__ = [
    "CheckpointRecorder",
    "GradNormTracker",
    "LossTracker",
    "ScalarBuffer",
    "autolog",
    "load_weights",
    "lr_keys",
    "model_info",
    "optimizer_info",
]

#: Above this many modules the tree is summarised by depth instead of listed module by module.
MAX_MODULES = 500
#: Above this many parameters the per-parameter list is left out (counts stay exact).
MAX_PARAMETERS = 2000
MAX_REPR_CHARS = 20_000

_now = time.time


# -- model architecture --------------------------------------------------------------------------


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def model_info(model: nn.Module) -> dict[str, Any]:
    """Describe ``model`` for the ``model`` section.

    Keys: ``class``, ``total_params``, ``trainable_params``, ``non_trainable_params``,
    ``size_bytes`` (parameters + buffers), ``size_bytes_by_dtype``, ``buffers``, ``modules``
    (qualified name, type, own/total/trainable parameter counts, depth), ``parameters`` (name, shape,
    dtype, trainable), ``frozen_modules``, ``repr``. When the model has more than ``MAX_MODULES``
    modules, ``modules`` holds only the shallow levels that fit and ``modules_by_depth`` counts
    modules and parameters per depth.
    """
    own_total: dict[str, int] = {}
    own_trainable: dict[str, int] = {}
    parameters = []
    by_dtype: dict[str, int] = defaultdict(int)
    seen: set[int] = set()
    total = trainable = 0
    for mod_name, module in model.named_modules():
        n_own = n_tr = 0
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue  # tied weights count once
            seen.add(id(p))
            n = p.numel()
            n_own += n
            if p.requires_grad:
                n_tr += n
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            parameters.append(
                {"name": full, "shape": list(p.shape), "dtype": _dtype_name(p.dtype), "trainable": p.requires_grad}
            )
            by_dtype[_dtype_name(p.dtype)] += n * p.element_size()
        own_total[mod_name] = n_own
        own_trainable[mod_name] = n_tr
        total += n_own
        trainable += n_tr
    buffer_bytes = 0
    n_buffers = 0
    for _, b in model.named_buffers():
        n_buffers += b.numel()
        buffer_bytes += b.numel() * b.element_size()
        by_dtype[_dtype_name(b.dtype)] += b.numel() * b.element_size()

    def subtree(prefix: str, table: dict[str, int]) -> int:
        if not prefix:
            return sum(table.values())
        return sum(v for k, v in table.items() if k == prefix or k.startswith(prefix + "."))

    modules = []
    frozen = []
    depth_counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for mod_name, module in model.named_modules():
        depth = 0 if not mod_name else mod_name.count(".") + 1
        tot = subtree(mod_name, own_total)
        tr = subtree(mod_name, own_trainable)
        modules.append(
            {"name": mod_name, "type": type(module).__name__, "params_own": own_total[mod_name],
             "params_total": tot, "trainable": tr, "depth": depth}
        )
        depth_counts[depth][0] += 1
        depth_counts[depth][1] += own_total[mod_name]
        if own_total[mod_name] and not own_trainable[mod_name]:
            frozen.append(mod_name)
    info: dict[str, Any] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
        "buffers": n_buffers,
        "size_bytes": sum(by_dtype.values()),
        "size_bytes_by_dtype": dict(by_dtype),
        "frozen_modules": frozen,
    }
    if len(modules) > MAX_MODULES:
        max_depth = 0
        while sum(c for d, (c, _) in depth_counts.items() if d <= max_depth + 1) <= MAX_MODULES:
            max_depth += 1
        info["modules"] = [m for m in modules if m["depth"] <= max_depth]
        info["modules_summarised_below_depth"] = max_depth
        info["modules_by_depth"] = [
            {"depth": d, "modules": c, "params_own": n} for d, (c, n) in sorted(depth_counts.items())
        ]
    else:
        info["modules"] = modules
    if len(parameters) <= MAX_PARAMETERS:
        info["parameters"] = parameters
    else:
        info["parameters_omitted"] = len(parameters)
    text = repr(model)
    info["repr"] = text if len(text) <= MAX_REPR_CHARS else text[:MAX_REPR_CHARS] + f"... ({len(text)} chars)"
    return info


# -- optimizer settings --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Hyperparameter values without tensors (a tensor lr becomes its float)."""
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else f"Tensor(shape={list(value.shape)})"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, Tensor) or v.numel() == 1}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parameter_names(model: nn.Module | None) -> dict[int, str]:
    return {} if model is None else {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}


def optimizer_info(
    optimizers: Sequence[torch.optim.Optimizer],
    model: nn.Module | None = None,
    schedulers: Sequence[Any] = (),
    scaler: Any = None,
) -> dict[str, Any]:
    """Describe optimizers, LR schedulers and the AMP GradScaler for the ``optimizer`` section.

    ``schedulers`` holds schedulers or dicts ``{"scheduler": s, "interval": ..., ...}`` (Lightning's
    LRSchedulerConfig is accepted too). Keys: ``optimizers`` (class, defaults, param_groups with their
    hyperparameters, parameter names and counts), ``schedulers`` (class, configuration = the
    state_dict without tensors, and interval/frequency/monitor when given), ``grad_scaler``.
    """
    names = parameter_names(model)
    out_opts = []
    for i, opt in enumerate(optimizers):
        opt = getattr(opt, "optimizer", opt)  # unwrap LightningOptimizer
        groups = []
        for g in opt.param_groups:
            params = g["params"]
            groups.append(
                {
                    "hyperparameters": {k: _plain(v) for k, v in g.items() if k != "params"},
                    "params": [names.get(id(p), f"<unnamed {tuple(p.shape)}>") for p in params][:MAX_PARAMETERS],
                    "n_params": len(params),
                    "numel": sum(p.numel() for p in params),
                }
            )
        out_opts.append(
            {"index": i, "class": f"{type(opt).__module__}.{type(opt).__qualname__}",
             "defaults": _plain(dict(opt.defaults)), "param_groups": groups}
        )
    out_sched = []
    for s in schedulers:
        extra: dict[str, Any] = {}
        if isinstance(s, Mapping):
            extra = {k: v for k, v in s.items() if k != "scheduler"}
            s = s["scheduler"]
        elif hasattr(s, "scheduler") and hasattr(s, "interval"):  # Lightning's LRSchedulerConfig
            extra = {k: getattr(s, k, None) for k in ("name", "interval", "frequency", "monitor", "reduce_on_plateau")}
            s = s.scheduler
        try:
            state = s.state_dict()
        except Exception:  # noqa: BLE001 - a scheduler without a state_dict is still described
            state = {}
        config = {k: _plain(v) for k, v in state.items() if not callable(v) and not k.startswith("_")}
        out_sched.append({"class": f"{type(s).__module__}.{type(s).__qualname__}", "config": config, **extra})
    info: dict[str, Any] = {"optimizers": out_opts, "schedulers": out_sched}
    if scaler is not None:
        enabled = bool(getattr(scaler, "is_enabled", lambda: False)())
        scaler_info: dict[str, Any] = {"class": type(scaler).__qualname__, "enabled": enabled}
        if enabled:
            scaler_info.update({k: _plain(v) for k, v in scaler.state_dict().items()})
        info["grad_scaler"] = scaler_info
    return info


# -- device-side scalars -------------------------------------------------------------------------

#: Longest time a value waits in a buffer before a background thread hands it to the run: the
#: recorder's crash-safety promise (what was logged a flush interval before a hard kill is on disk)
#: holds for batched values too, even while training is paused.
MAX_AGE_S = 0.1


class _Flusher:
    """One daemon thread flushing every live buffer whose oldest value is older than MAX_AGE_S."""

    def __init__(self) -> None:
        self.items: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def register(self, item: Any) -> None:
        with self.lock:
            self.items.add(item)
            if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._loop, name="autotrack-device-buffers", daemon=True)
                self.thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(0.05)
            now = _now()
            for item in list(self.items):
                oldest = item._oldest
                if oldest is not None and now - oldest >= MAX_AGE_S:
                    try:
                        item.flush()
                    except Exception as exc:  # noqa: BLE001 - a background thread cannot raise to anyone
                        if not item.run.ended:
                            try:
                                report_failure("flushing buffered metrics", exc)
                            except Exception:  # noqa: BLE001, S110 - strict mode: keep the thread alive
                                pass


_flusher = _Flusher()



class ScalarBuffer:
    """Hands 0-d tensors (losses, user metrics) to ``run`` in batches, never one ``.item()`` each.

    On an accelerator each value is copied, on the device, into a preallocated float64 buffer, so
    nothing synchronises inside the training step; the buffer is copied to the host in one transfer
    every ``flush_every`` values and at :meth:`flush`. On the CPU there is no synchronisation to
    avoid, but a conversion per value still costs: the tensors are kept (a reference each) and
    converted with one ``torch.stack(...).tolist()`` per batch. Python numbers are logged at once.
    """

    def __init__(self, run: Run, flush_every: int = 100, *, always_buffer: bool = False) -> None:
        self.run = run
        self.flush_every = max(1, int(flush_every))
        #: copy CPU tensors into a buffer too (the accelerator code path, runnable without one)
        self.always_buffer = always_buffer
        self._device: torch.device | None = None
        self._buf: Tensor | None = None
        self._meta: list[tuple[str, int, float]] = []
        self._refs: list[Tensor] = []  # CPU: the tensors themselves, converted at flush
        self._log = run.log_metric
        #: also flushed by :meth:`flush` (a GradNormTracker built on this buffer registers here)
        self.flushers: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._oldest: float | None = None  # time of the oldest value waiting
        _flusher.register(self)

    def add(self, key: str, step: int, value: Tensor | float) -> None:
        """Record ``value`` (a 0-d tensor or a number) for ``key`` at ``step``."""
        if not isinstance(value, Tensor):
            self._log(key, value, step)
            return
        if value.requires_grad:
            value = value.detach()
        if value.ndim:  # one-element tensors; plain 0-d tensors skip this (a view costs microseconds)
            value = value.reshape(())
        t = _now()
        with self._lock:
            if value.is_cpu and not self.always_buffer:
                if self._buf is not None:
                    self.flush()
                self._refs.append(value)
            else:
                if self._buf is None or self._device != value.device or len(self._meta) >= self._buf.numel():
                    self.flush()
                    self._device = value.device
                    self._buf = torch.empty(self.flush_every, dtype=torch.float64, device=value.device)
                self._buf[len(self._meta)].copy_(value, non_blocking=True)
            self._meta.append((key, step, t))
            if self._oldest is None:
                self._oldest = t
            if len(self._meta) >= self.flush_every:
                self.flush()

    def flush(self) -> None:
        """Convert the buffered values (one transfer / one conversion) and hand them to the run."""
        for flush in self.flushers:
            flush()
        with self._lock:
            self._oldest = None
            if not self._meta:
                return
            meta, self._meta = self._meta, []
            if self._refs:
                refs, self._refs = self._refs, []
                dtype = refs[0].dtype
                if any(r.dtype != dtype for r in refs):
                    refs = [r.to(torch.float64) for r in refs]
                values = torch.stack(refs).tolist()
            else:
                values = self._buf[: len(meta)].tolist()  # type: ignore[index]
        if self.run.ended:
            return
        log = self._log
        for (key, step, t), v in zip(meta, values):
            log(key, v, step, t)


# -- gradient norms ------------------------------------------------------------------------------


class GradNormTracker:
    """Gradient norms at every optimizer step: one fused kernel per step, converted in batches.

    Each :meth:`step` computes the L2 norm of every gradient with one ``torch._foreach_norm`` call
    and keeps the result: on an accelerator it is stacked into a preallocated device buffer (no
    host-device synchronisation inside the step), on the CPU the tensors are kept as they are. Every
    ``flush_every`` steps (and at :meth:`flush`) the batch is converted in one transfer and logged:

    * ``train/grad_norm`` (``key``) -- the global L2 norm over all gradients (computed in float64
      from the per-parameter norms: ``sqrt(sum(norm_i ** 2))``), at every step;
    * ``grad_norm/<name>`` -- per parameter (``per="parameter"``) or per module (``per="module"``)
      every ``per_layer_every`` steps (0 turns them off);
    * tags ``grad_nonfinite/first_step`` and ``grad_nonfinite/params`` -- the first step with a
      non-finite gradient and the parameters concerned.

    Call it after the gradients are complete and before clipping (un-scaled under AMP).
    """

    def __init__(
        self,
        named_params: Iterable[tuple[str, nn.Parameter]],
        run: Run | ScalarBuffer,
        *,
        key: str = "train/grad_norm",
        per_layer_every: int = 50,
        per: str = "parameter",
        flush_every: int = 100,
        always_buffer: bool = False,
    ) -> None:
        """``run`` may be a :class:`ScalarBuffer`: its run is used and its ``flush()`` flushes the
        norms too."""
        if per not in ("parameter", "module"):
            raise InvalidArgumentError("per", per, "choose 'parameter' or 'module'")
        self.params = [(n, p) for n, p in named_params if p.requires_grad]
        self._tensors = [p for _, p in self.params]
        self._all = tuple(range(len(self.params)))
        if isinstance(run, ScalarBuffer):
            always_buffer = always_buffer or run.always_buffer
            run.flushers.append(self.flush)
            run = run.run
        self.run = run
        self.key = key
        self.per_layer_every = int(per_layer_every)
        self.per = per
        self.flush_every = max(1, int(flush_every))
        self.always_buffer = always_buffer
        self.nonfinite_step: int | None = None
        self._pending: list[tuple[int, float, tuple[int, ...], int]] = []  # step, time, param indices, offset
        self._refs: list[Tensor] = []
        self._used = 0
        self._buf: Tensor | None = None
        self._lock = threading.RLock()
        self._oldest: float | None = None
        _flusher.register(self)
        self._sparse: bool | None = None
        self._dtype = torch.float32
        self._cast: torch.dtype | None = None
        self._names: dict[tuple[int, ...], tuple[list[str], list[int]]] = {}

    def step(self, step: int) -> None:
        """Take the norms of the current gradients for optimizer step ``step``."""
        grads = [p.grad for p in self._tensors]
        if any(g is None for g in grads):  # parameters without a gradient this step are left out
            idx = tuple(i for i, g in enumerate(grads) if g is not None)
            grads = [grads[i] for i in idx]
            if not grads:
                return
        else:
            idx = self._all
        if self._sparse is None:
            self._sparse = any(g.is_sparse for g in grads)
            # norms in float32 (float64 if any gradient is): fp16/bf16 norms would overflow, and one
            # dtype lets the batch be stacked
            wide = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
            self._dtype = wide
            self._cast = None if all(g.dtype == wide for g in grads) else wide
        if self._sparse:  # sparse gradients (Embedding(sparse=True)): the norm of their values
            grads = [g.coalesce()._values() if g.is_sparse else g for g in grads]
        norms = torch._foreach_norm(grads, 2.0, dtype=self._cast)
        n = len(norms)
        t = _now()
        with self._lock:
            if norms[0].is_cpu and not self.always_buffer:
                self._refs.extend(norms)
            else:
                if self._buf is None or self._used + n > self._buf.numel() or self._buf.device != norms[0].device:
                    self.flush()
                    self._buf = torch.empty(max(self.flush_every * n, n), dtype=self._dtype, device=norms[0].device)
                torch.stack(norms, out=self._buf[self._used : self._used + n])
            self._pending.append((step, t, idx, self._used))
            self._used += n
            if self._oldest is None:
                self._oldest = t
            if len(self._pending) >= self.flush_every:
                self.flush()

    def flush(self) -> None:
        """Convert the pending norms (one transfer) and log them."""
        with self._lock:
            self._oldest = None
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            used, self._used = self._used, 0
            if self._refs:
                refs, self._refs = self._refs, []
                flat = torch.stack(refs).tolist()
            else:
                flat = self._buf[:used].tolist()  # type: ignore[index]
        if self.run.ended:
            return
        log = self.run.log_metric
        every = self.per_layer_every
        for step, t, idx, offset in pending:
            values = flat[offset : offset + len(idx)]
            total = math.sqrt(math.fsum(v * v for v in values))
            log(self.key, total, step, t)
            if self.nonfinite_step is None and not math.isfinite(total):
                self._record_nonfinite(step, [self.params[i][0] for i, v in zip(idx, values) if not math.isfinite(v)])
            if every and step % every == 0:
                names, groups = self._layer_names(idx)
                if self.per == "parameter":
                    for name, v in zip(names, values):
                        log(name, v, step, t)
                else:
                    sums = [0.0] * len(names)
                    for g, v in zip(groups, values):
                        sums[g] += v * v
                    for name, v in zip(names, sums):
                        log(name, math.sqrt(v), step, t)

    def _layer_names(self, idx: tuple[int, ...]) -> tuple[list[str], list[int]]:
        cached = self._names.get(idx)
        if cached is None:
            if self.per == "parameter":
                cached = ([f"grad_norm/{self.params[i][0]}" for i in idx], list(range(len(idx))))
            else:
                modules: dict[str, int] = {}
                groups = [modules.setdefault(self.params[i][0].rpartition(".")[0] or self.params[i][0], len(modules))
                          for i in idx]
                cached = ([f"grad_norm/{m}" for m in modules], groups)
            self._names[idx] = cached
        return cached

    def _record_nonfinite(self, step: int, names: list[str]) -> None:
        self.nonfinite_step = step
        shown = ", ".join(names[:50]) + (f", ... ({len(names)} in all)" if len(names) > 50 else "")
        self.run.set_tags({"grad_nonfinite/first_step": step, "grad_nonfinite/params": shown})


# -- loss and learning rate ----------------------------------------------------------------------


class LossTracker:
    """``train/loss`` once per optimizer step: the mean of the micro-batch losses seen since the
    previous step. Losses stay on the device until the :class:`ScalarBuffer` copies them out."""

    def __init__(self, buffer: ScalarBuffer, key: str = "train/loss") -> None:
        self.buffer = buffer
        self.key = key
        self._sum: Tensor | None = None
        self._count = 0
        self._scale = 1.0

    def add(self, loss: Tensor, scale: float = 1.0) -> None:
        """A micro-batch loss; ``scale`` multiplies it back to the user's value (e.g. undoes the
        division by ``accumulate_grad_batches``)."""
        loss = loss.detach()
        self._sum = loss if self._sum is None else self._sum + loss
        self._count += 1
        self._scale = scale

    def step(self, step: int) -> None:
        """Record the mean loss of this optimizer step (no-op if no loss was seen)."""
        if self._sum is None:
            return
        value, count, scale = self._sum, self._count, self._scale
        self._sum, self._count = None, 0
        factor = scale / count
        if factor != 1.0:
            value = value * factor
        self.buffer.add(self.key, step, value)


def lr_keys(optimizers: Sequence[torch.optim.Optimizer], prefix: str = "train/lr") -> list[list[str]]:
    """Metric keys for each optimizer's param groups: ``train/lr`` for one optimizer with one group,
    ``train/lr/<group>`` for several groups, ``train/lr/opt<i>`` (``.../opt<i>/<group>``) for several
    optimizers. A group's name is its ``"name"`` entry when it has one, else its index."""
    keys = []
    multi_opt = len(optimizers) > 1
    for i, opt in enumerate(optimizers):
        groups = getattr(opt, "optimizer", opt).param_groups
        base = f"{prefix}/opt{i}" if multi_opt else prefix
        if len(groups) == 1:
            keys.append([base])
        else:
            keys.append([f"{base}/{g.get('name', j)}" for j, g in enumerate(groups)])
    return keys


# -- checkpoints ---------------------------------------------------------------------------------


class CheckpointRecorder:
    """Records checkpoint files as artifacts of kind ``checkpoint`` from a background thread.

    ``record`` returns at once; a worker thread hashes the file (or copies it into the store when
    ``copy=True``) and logs it. Updates (``mark_deleted``, ``update``) are queued behind the records
    they refer to, so they apply in order. :meth:`close` waits for the queue; it is registered as an
    end hook of the run, so the run never ends with a checkpoint still being hashed.
    """

    def __init__(self, run: Run, copy: bool = False) -> None:
        self.run = run
        self.copy = copy
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.missing: list[str] = []
        run.add_end_hook(lambda _run, _status: self.close())

    def record(self, path: str, name: str, *, step: int | None, metadata: Mapping[str, Any]) -> None:
        self._put(("record", (path, name, step, dict(metadata))))

    def update(self, name: str, metadata: Mapping[str, Any]) -> None:
        self._put(("update", (name, dict(metadata))))

    def mark_deleted(self, name: str) -> None:
        self._put(("deleted", (name,)))

    def _put(self, item: tuple[str, tuple[Any, ...]]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="autotrack-checkpoints", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._do(*item)
            except Exception as exc:  # noqa: BLE001 - reported, never raised into training
                try:
                    report_failure("recording a checkpoint", exc)
                except Exception:  # noqa: BLE001 - strict mode: keep the worker alive, remember it
                    self.error = exc
            finally:
                self._queue.task_done()

    error: BaseException | None = None

    def _do(self, action: str, args: tuple[Any, ...]) -> None:
        if self.run.ended:
            return
        if action == "record":
            path, name, step, metadata = args
            try:
                self.run.log_artifact(path, name, "checkpoint", step=step, metadata=metadata, copy=self.copy)
            except InvalidArgumentError:
                if os.path.exists(path):
                    raise
                # deleted before it could be hashed: keep the record (path, no sha256), marked deleted
                self.missing.append(path)
                self.run._record_artifact(name, "checkpoint", None, None, step, os.path.abspath(path), False,  # type: ignore[arg-type]
                                          {**metadata, "deleted_before_hashing": True})
                self.run.update_artifact(name, deleted=True)
        elif action == "update":
            self.run.update_artifact(args[0], metadata=args[1])
        elif action == "deleted":
            self.run.update_artifact(args[0], deleted=True)

    def wait(self) -> None:
        """Block until every queued record and update is done."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def close(self) -> None:
        self.wait()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=30)
            self._thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


# -- plain PyTorch autolog -----------------------------------------------------------------------


def autolog(*, disable: bool = False, grad_norm_every: int = 50, log_models: bool = True) -> None:
    """Record plain PyTorch training loops with no change to them (``autotrack.autolog()`` calls
    this); see ``autotrack.integrations._torch_autolog``. Imported on first use: that module builds
    on this one."""
    from autotrack.integrations._torch_autolog import autolog as _autolog

    _autolog(disable=disable, grad_norm_every=grad_norm_every, log_models=log_models)


def load_weights(run_id: str, name: str = "model.pt", *, store: Any = None) -> Any:
    """Load a weights artifact of a run (default: the final ``model.pt``) safely.

    The bytes are checked against the recorded sha256, then read with
    ``torch.load(..., weights_only=True)``: tensors and plain containers only, never arbitrary
    pickled objects, so a planted ``__reduce__`` payload cannot run.
    """
    import io

    from autotrack import get_run

    data = get_run(run_id, store=store).read_artifact(name)
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
