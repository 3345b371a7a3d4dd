"""The installed Lightning packages (``lightning`` and/or ``pytorch_lightning``) and their base classes."""

from __future__ import annotations

import sys
from typing import Any

from autotrack.integrations.base import MissingDependencyError

_packages: list[Any] = []
try:
    import lightning.pytorch as _lightning

    _packages.append(_lightning)
except ImportError:
    pass
try:
    import pytorch_lightning as _pytorch_lightning

    _packages.append(_pytorch_lightning)
except ImportError:
    pass
if not _packages:
    raise MissingDependencyError("lightning", "lightning", "the Lightning callback")

packages = tuple(_packages)
CALLBACK_BASES = tuple(p.Callback for p in packages)
LOGGER_BASES = tuple(p.loggers.Logger for p in packages)
MODEL_CHECKPOINT = tuple(p.callbacks.ModelCheckpoint for p in packages)
EARLY_STOPPING = tuple(p.callbacks.EarlyStopping for p in packages)


def rank_zero() -> bool:
    """True unless a Lightning strategy has marked this process as a non-zero global rank."""
    for mod in ("lightning.fabric.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m.rank_zero_only, "rank", 0) != 0:
            return False
    return True
