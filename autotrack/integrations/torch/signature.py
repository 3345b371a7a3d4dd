"""The signature and input example of a stored PyTorch model, from a batch training already ran.

:class:`ForwardProbe` hooks the model's next ``forward`` once (a forward hook that removes itself):
it keeps the shapes and dtypes of that call's inputs and output and a copy of the inputs' first
rows (``t[:5].detach().clone()``: no host-device synchronisation, nothing read back), and
nothing else happens in later steps. When the model's own ``forward`` never runs in training (a
Lightning ``training_step`` calling its layers directly), the integration offers the first rows
of a training batch (:meth:`ForwardProbe.offer_batch`, outside the step) and the output comes
from one no-grad forward on them when the model is stored, at the end of training. The rows are
copied to the CPU only then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from autotrack.integrations.base import (
    EXAMPLE_ROWS,
    data_schema,
    model_io,
    report_failure,
)

__all__ = ["ForwardProbe"]


def _first_rows(value: Any) -> Any:
    """The first rows of every tensor in ``value`` (a tensor, a tuple/list or dict of them),
    detached copies on the same device; other values as they are."""
    if isinstance(value, torch.Tensor):
        return value[:EXAMPLE_ROWS].detach().clone() if value.dim() > 0 else value.detach().clone()
    if isinstance(value, Mapping):
        return {k: _first_rows(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_first_rows(v) for v in value) if isinstance(value, tuple) else [_first_rows(v) for v in value]
    return value


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value) if isinstance(value, tuple) else [_to_cpu(v) for v in value]
    return value


def _call_inputs(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """What a forward call took, as one object: the tensor, a tuple of the positional arguments,
    or a dict (keyword arguments, positional ones as ``arg0`` ...)."""
    if not kwargs:
        return args[0] if len(args) == 1 else tuple(args)
    if not args:
        return dict(kwargs)
    return {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}


def _model_input(batch: Any) -> Any:
    """The model's input in a training batch: the batch's first element (``(x, y)``), a dict's
    tensors without its label keys, or the batch itself."""
    if isinstance(batch, (list, tuple)) and batch:
        return batch[0]
    if isinstance(batch, Mapping):
        return {k: v for k, v in batch.items() if k not in ("label", "labels", "y", "target", "targets")}
    return batch


class ForwardProbe:
    """Watches one forward call of ``module`` (see the module docstring)."""

    def __init__(self, module: nn.Module, *, drop_inputs: tuple[str, ...] = (),
                 drop_outputs: tuple[str, ...] = ()) -> None:
        #: keyword inputs and output keys left out of the signature (a Transformers model's
        #: ``labels`` and the ``loss`` they make: not what the model takes in inference)
        self.drop_inputs, self.drop_outputs = drop_inputs, drop_outputs
        self.module = module
        self.input_schema: dict[str, Any] | None = None
        self.output_schema: dict[str, Any] | None = None
        self.rows: Any = None
        self.fired = False
        self._metadata: dict[str, Any] | None = None
        self._handle: Any = module.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        self.close()
        try:
            inputs = _call_inputs(args, {k: v for k, v in kwargs.items() if k not in self.drop_inputs})
            self.input_schema = data_schema(inputs)  # shapes and dtypes only: nothing read back
            if self.drop_outputs and isinstance(output, Mapping):
                output = {k: v for k, v in output.items() if k not in self.drop_outputs}
            self.output_schema = data_schema(output)
            self.rows = _first_rows(inputs)
            self.fired = True
        except Exception as exc:  # noqa: BLE001 - a hook inside the user's step never raises into it
            try:
                report_failure("pytorch: model signature", exc)
            except Exception:  # noqa: BLE001 - strict mode: the failure is raised at store time instead
                self.fired = False

    def offer_batch(self, batch: Any) -> None:
        """A training batch (outside the step), used when ``forward`` was not seen."""
        if self.fired or self.rows is not None:
            return
        inputs = _model_input(batch)
        self.input_schema = data_schema(inputs)
        self.rows = _first_rows(inputs)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.remove()

    def metadata(self, *, where: str = "pytorch: model signature") -> dict[str, Any]:
        """``signature`` / ``input_example`` for the stored model ({} when no batch was seen). When
        only a batch was offered, the output comes from one no-grad forward on its rows now."""
        self.close()
        if self._metadata is not None:
            return dict(self._metadata)
        if self.rows is None:
            return {}
        rows = _to_cpu(self.rows)
        if self.fired:
            meta = model_io(rows, input_schema=self.input_schema, where=where)
            if "signature" in meta:
                meta["signature"]["outputs"] = self.output_schema
        else:
            meta = model_io(rows, self._forward, input_schema=self.input_schema, where=where)
        self._metadata = meta
        return dict(meta)

    def _forward(self, rows: Any) -> Any:
        module = self.module
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        moved = _to_device(self.rows, device)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                if isinstance(moved, Mapping):
                    return module(**moved)
                return module(*moved) if isinstance(moved, tuple) else module(moved)
        finally:
            module.train(was_training)


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    return value
