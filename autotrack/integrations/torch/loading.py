"""The model registry's loader for PyTorch and Lightning versions (registered in
``autotrack.integrations``): ``torch.load(weights_only=True)`` into a module the caller builds (or
its class, built with a Lightning checkpoint's hyper-parameters). Never unpickles, never rebuilds
code from the store."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import torch

import autotrack
from autotrack.integrations.base import InvalidArgumentError


def load_registered(version: autotrack.ModelVersion, data: bytes, *, model: Any = None, **_options: Any) -> Any:
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - refused by weights_only, or not a torch file at all
        raise autotrack.StoreError(
            f"the model file of {version.ref} is not a weights-only PyTorch file ({type(exc).__name__}: "
            f"{str(exc)[:300]}); autotrack never unpickles it. Save weights with torch.save(model.state_dict(), ...) "
            "and register that") from None
    hparams: dict[str, Any] = {}
    state = obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # a Lightning checkpoint
        state = obj["state_dict"]
        hparams = dict(obj.get("hyper_parameters") or {})
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise autotrack.StoreError(f"the model file of {version.ref} holds no state_dict (a mapping of names to tensors)")
    recorded = version.meta.get("class")
    short = str(recorded).rsplit(".", 1)[-1] if recorded else "YourModule"
    if model is None:
        built = f" (the class builds with the recorded hyper-parameters {hparams})" if hparams else ""
        raise InvalidArgumentError(
            "model", None, f"{version.ref} holds the weights of a {recorded or 'PyTorch module'}; autotrack never "
            f"rebuilds code from the store. Pass the module to load them into: autotrack.load_model({version.ref!r}, "
            f"model={short}(...)), or its class, model={short}{built}")
    if isinstance(model, type):
        if not issubclass(model, torch.nn.Module):
            raise InvalidArgumentError("model", model, "pass a torch.nn.Module instance or subclass")
        _check_class(version, model)
        model = model(**hparams)
    elif isinstance(model, torch.nn.Module):
        _check_class(version, type(model))
    else:
        raise InvalidArgumentError("model", model, "pass a torch.nn.Module instance or subclass to load the weights into")
    model.load_state_dict(state)
    return model.eval()


def _check_class(version: autotrack.ModelVersion, cls: type) -> None:
    recorded = version.meta.get("class")
    if recorded and str(recorded).rsplit(".", 1)[-1] != cls.__qualname__.rsplit(".", 1)[-1]:
        raise InvalidArgumentError("model", cls.__qualname__, f"{version.ref} holds the weights of {recorded}; pass "
                                   "that class (or an instance of it)")
