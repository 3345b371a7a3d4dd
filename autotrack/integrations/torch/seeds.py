"""Seed hook: ``torch.manual_seed`` calls are recorded in the ``seeds`` section (seed capture)."""

from __future__ import annotations

import sys
from typing import Any

from autotrack.integrations.base import patch_seeder


def install(module: Any) -> None:
    """Patch torch's seeders (seed capture calls this once torch is imported)."""
    patch_seeder(module, "manual_seed", "torch", "torch.manual_seed")
    random_module = sys.modules.get("torch.random")
    if random_module is not None:
        patch_seeder(random_module, "manual_seed", "torch", "torch.manual_seed")
