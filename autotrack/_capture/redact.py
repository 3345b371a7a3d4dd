"""Moved to :mod:`autotrack._redact` (one detector for every value and every stored text); this
path is kept so that existing imports go on working."""

from __future__ import annotations

from .._redact import (  # noqa: F401 - re-exported
    REDACTED,
    is_secret_name,
    redact_argv,
    redact_text,
    redact_url,
    redact_value,
    scan,
    secret_env_values,
)
