"""Seed hook: Lightning's ``seed_everything`` calls are recorded in the ``seeds`` section."""

from __future__ import annotations

import sys
from typing import Any

from autotrack.integrations.base import patch_seeder

_MODULES = (
    "lightning.fabric.utilities.seed", "lightning.fabric", "lightning.pytorch", "lightning",
    "lightning_fabric.utilities.seed", "lightning_fabric", "pytorch_lightning",
    "pytorch_lightning.utilities.seed",
)


def install(module: Any) -> None:
    """Patch every loaded ``seed_everything`` (seed capture calls this once Lightning is imported)."""
    for name in _MODULES:
        owner = sys.modules.get(name)
        if owner is not None and "seed_everything" in vars(owner):
            patch_seeder(owner, "seed_everything", "lightning", f"{name}.seed_everything", seed_from_result=True)
