"""Values that stay on the device until they are copied out in batches: losses, metrics, gradient
norms (no host-device synchronisation inside a training step)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from autotrack.integrations.base import InvalidArgumentError, register_buffer

if TYPE_CHECKING:
    from autotrack import Run

_now = time.time


# -- device-side scalars -------------------------------------------------------------------------

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
        self._numbers: list[tuple[str, int, float, float]] = []  # add_step's plain numbers, logged at flush
        self._log = run.log_metric
        #: also flushed by :meth:`flush` (a GradNormTracker built on this buffer registers here)
        self.flushers: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._oldest: float | None = None  # time of the oldest value waiting
        register_buffer(self)

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

    def add_step(self, step: int, keys: Sequence[str], values: Sequence[Tensor | float | None]) -> None:
        """The values one optimizer step records (loss, gradient norm, learning rates: tensors or
        numbers, None for none this step) with one clock read, one lock and one batch check: the
        per-step path of the PyTorch and Lightning integrations. Numbers wait in the batch too, so
        that a step costs appends only; everything is handed to the run at :meth:`flush`."""
        t = _now()
        with self._lock:
            meta, numbers = self._meta, self._numbers
            for key, value in zip(keys, values):
                if value is None:
                    continue
                if not isinstance(value, Tensor):
                    numbers.append((key, step, value, t))
                    continue
                if value.requires_grad:
                    value = value.detach()
                if value.ndim:
                    value = value.reshape(())
                if value.is_cpu and not self.always_buffer:
                    if self._buf is not None:
                        self.flush()
                        meta, numbers = self._meta, self._numbers
                    self._refs.append(value)
                else:
                    if self._buf is None or self._device != value.device or len(meta) >= self._buf.numel():
                        self.flush()
                        meta, numbers = self._meta, self._numbers
                        self._device = value.device
                        self._buf = torch.empty(self.flush_every, dtype=torch.float64, device=value.device)
                    self._buf[len(meta)].copy_(value, non_blocking=True)
                meta.append((key, step, t))
            if self._oldest is None:
                self._oldest = t
            if len(meta) + len(numbers) >= self.flush_every:
                self.flush()

    def flush(self) -> None:
        """Convert the buffered values (one transfer / one conversion) and hand them to the run."""
        for flush in self.flushers:
            flush()
        with self._lock:
            self._oldest = None
            numbers, self._numbers = self._numbers, []
            meta, self._meta = self._meta, []
            values: list[float] = []
            if meta:
                if self._refs:
                    refs, self._refs = self._refs, []
                    dtype = refs[0].dtype
                    if any(r.dtype != dtype for r in refs):
                        refs = [r.to(torch.float64) for r in refs]
                    values = torch.stack(refs).tolist()
                else:
                    values = self._buf[: len(meta)].tolist()  # type: ignore[index]
        if self.run.ended or not (meta or numbers):
            return
        log = self._log
        for key, step, v, t in numbers:
            log(key, v, step, t)
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
        register_buffer(self)
        self._sparse: bool | None = None
        self._dtype = torch.float32
        self._cast: torch.dtype | None = None
        self._names: dict[tuple[int, ...], tuple[list[str], list[int]]] = {}
        #: per-layer keys are ``<layer_prefix><name>``
        self.layer_prefix = "grad_norm/"

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
                cached = ([f"{self.layer_prefix}{self.params[i][0]}" for i in idx], list(range(len(idx))))
            else:
                modules: dict[str, int] = {}
                groups = [modules.setdefault(self.params[i][0].rpartition(".")[0] or self.params[i][0], len(modules))
                          for i in idx]
                cached = ([f"{self.layer_prefix}{m}" for m in modules], groups)
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

    def take(self) -> Tensor | None:
        """The mean loss of this optimizer step (None if no loss was seen), and start the next."""
        value = self._sum
        if value is None:
            return None
        factor = self._scale / self._count
        self._sum, self._count = None, 0
        return value if factor == 1.0 else value * factor

    def step(self, step: int) -> None:
        """Record the mean loss of this optimizer step (no-op if no loss was seen)."""
        value = self.take()
        if value is not None:
            self.buffer.add(self.key, step, value)
