"""TEMPORARY SHIM of the SDK surface (branch ``sdk`` writes the real ``base.py``; replace this file
with it verbatim). It offers only the names the scikit-learn and XGBoost integrations use, with the
same meaning as the SDK's: the patch mechanism with its safety policy, one context-local
"already being recorded" flag, data fingerprints and the shared error type."""

from __future__ import annotations

import contextvars
from typing import Any

import autotrack
from autotrack import Run
from autotrack._capture.fingerprint import fingerprint, log_data
from autotrack._errors import InvalidArgumentError
from autotrack._patching import _in_original, disabled, guarded, patch, patched, report_failure, strict, unpatch

__all__ = ["InvalidArgumentError", "Run", "being_recorded", "disabled", "fingerprint", "guarded", "log_data",
           "patch", "patched", "recording", "register_fingerprinter", "report_failure", "strict", "unpatch"]

_recording: contextvars.ContextVar[str | None] = contextvars.ContextVar("autotrack_recording", default=None)


def being_recorded() -> str | None:
    return _recording.get()


class recording:
    def __init__(self, owner: str = "autotrack") -> None:
        self.owner = owner

    def __enter__(self) -> recording:
        self._token = _recording.set(self.owner)
        self._previous = _in_original.value
        _in_original.value = True
        return self

    def __exit__(self, *exc: object) -> None:
        _in_original.value = self._previous
        _recording.reset(self._token)


def register_fingerprinter(accepts: Any, describe: Any) -> None:  # the core still has its own
    return None


_ = autotrack
