"""Lightning autolog: every ``Trainer`` gets an :class:`AutotrackCallback`.

Switched off (``autotrack.autolog(lightning=False)``), it keeps every Lightning ``fit``/``validate``/
``test``/``predict`` marked as "already being recorded", so the plain-PyTorch hooks do not record
Lightning's optimizer steps either. ``autotrack.autolog(disable=True)`` removes that too.

This module imports the callback only when a Trainer is made, so it can be imported while the
package is still initialising (a framework import inside it fires autolog's post-import hook).
"""

from __future__ import annotations

from typing import Any

from autotrack.integrations.base import patch, recording, unpatch
from autotrack.integrations.lightning._packages import packages

INTEGRATION = "lightning"
_ENTRY_POINTS = ("fit", "validate", "test", "predict")


def autolog(*, disable: bool = False, log_models: bool = True, log_every_n_steps: int | None = None,
            grad_norm_every: int = 50) -> None:
    """Give every Lightning ``Trainer`` created from now on an :class:`AutotrackCallback` (unless it
    has one already); ``autotrack.autolog()`` calls this when Lightning is imported. Each ``fit``
    then starts (and ends) its own run. ``grad_norm_every`` is the callback's ``per_layer_every``;
    ``log_every_n_steps`` is left to Lightning's own Trainer setting. ``disable=True`` undoes it and
    keeps Lightning's trainings out of the lower-level (plain-PyTorch) hooks."""
    unpatch(INTEGRATION)
    if disable:
        for package in packages:
            for name in _ENTRY_POINTS:
                patch(INTEGRATION, package.Trainer, name, _unrecorded)
        return
    options = {"per_layer_every": grad_norm_every, "log_model": log_models}

    def init(original: Any, trainer: Any, *args: Any, **kwargs: Any) -> None:
        original(trainer, *args, **kwargs)
        _add_callback(trainer, options)

    for package in packages:
        patch(INTEGRATION, package.Trainer, "__init__", init)


def _unrecorded(original: Any, *args: Any, **kwargs: Any) -> Any:
    with recording("lightning (switched off)"):
        return original(*args, **kwargs)


def _add_callback(trainer: Any, options: dict[str, Any]) -> None:
    from autotrack.integrations.lightning.callback import AutotrackCallback

    if not any(isinstance(cb, AutotrackCallback) for cb in trainer.callbacks):
        trainer.callbacks.append(AutotrackCallback(**options))
