"""The model registry's loader for scikit-learn versions (registered in ``autotrack.integrations``):
skops with its check of untrusted types; a joblib pickle only with ``allow_pickle=True``."""

from __future__ import annotations

import io
from typing import Any

import autotrack
from autotrack.integrations.base import InvalidArgumentError, MissingDependencyError


def load_registered(version: autotrack.ModelVersion, data: bytes, *, trusted: list[str] | None = None,
                    allow_pickle: bool = False, **_options: Any) -> Any:
    if version.format == "joblib":
        return _load_pickle(version, data, allow_pickle)
    try:
        from ._models import skops_io

        sio = skops_io()
    except ImportError:
        raise MissingDependencyError("skops", "sklearn", "loading a scikit-learn model") from None
    try:
        untrusted = list(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - not a skops file: say so, never fall back to pickle
        raise autotrack.StoreError(f"the model file of {version.ref} is not a valid skops file "
                                   f"({type(exc).__name__}: {exc}); it was not loaded") from None
    missing = [t for t in untrusted if t not in set(trusted or ())]
    if missing:
        raise InvalidArgumentError(
            "trusted", trusted, f"{version.ref} holds types skops does not trust by default: {missing}. Review "
            f"them, then pass trusted={missing!r}")
    return sio.loads(data, trusted=untrusted)


def _load_pickle(version: autotrack.ModelVersion, data: bytes, allow_pickle: bool) -> Any:
    if allow_pickle is not True:
        raise InvalidArgumentError(
            "allow_pickle", allow_pickle, f"{version.ref} is a pickle ({version.artifact}), which runs arbitrary code "
            "when loaded; pass allow_pickle=True only if you trust whoever wrote this store")
    import joblib

    return joblib.load(io.BytesIO(data))
