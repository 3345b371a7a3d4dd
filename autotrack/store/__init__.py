"""Storage: the :class:`Backend` seam, its implementations, and how a location picks one.

``open_backend("./autotrack-runs")`` (a folder) is the embedded SQLite store;
``open_backend("postgresql://user@host/db")`` the team store. The rest of autotrack sees only the
:class:`Backend` interface and the typed records and rows in :mod:`autotrack.store._records`.
"""

from __future__ import annotations

import os
from typing import Any

from ._owner import HEARTBEAT_INTERVAL_S, HOST, STALE_AFTER_S, effective_status, row_alive, this_owner
from ._records import (
    END_STATUSES,
    AliasMoveRow,
    AliasRow,
    ModelVersionRow,
    NewModelVersion,
    SetAlias,
    STATUSES,
    ArtifactAdd,
    ArtifactRow,
    ArtifactUpdate,
    Degraded,
    EndRun,
    Heartbeat,
    KeyStats,
    MetricPoint,
    NewRun,
    Note,
    Owner,
    Params,
    Points,
    Record,
    RemoveTags,
    Rename,
    RunQuery,
    RunRow,
    Section,
    StoredBlob,
    StoreHealth,
    Tags,
)
from .base import Backend, BlobStore

__all__ = [
    "END_STATUSES", "HEARTBEAT_INTERVAL_S", "HOST", "STALE_AFTER_S", "STATUSES", "ArtifactAdd", "ArtifactRow",
    "ArtifactUpdate", "Backend", "BlobStore", "Degraded", "EndRun", "Heartbeat", "KeyStats", "MetricPoint",
    "NewRun", "Note", "Owner", "Params", "Points", "Record", "RemoveTags", "Rename", "RunQuery", "RunRow",
    "Section", "StoreHealth", "StoredBlob", "Tags", "effective_status", "is_url", "open_backend", "row_alive",
    "this_owner", "AliasMoveRow", "AliasRow", "ModelVersionRow", "NewModelVersion", "SetAlias",
]

_URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(_URL_SCHEMES)


def open_backend(location: str | os.PathLike[str], *, durable: bool = False, **options: Any) -> Backend:
    """The backend for ``location``: a PostgreSQL URL for the team store, else a store folder."""
    if is_url(location):
        from .postgres import PostgresBackend  # needs the [postgres] extra

        return PostgresBackend(str(location), **options)
    from .sqlite import SQLiteBackend

    return SQLiteBackend(location, durable=durable)
