"""Where the store used to live. The store is now ``autotrack.store`` (one ``Backend`` seam with
SQLite and PostgreSQL behind it); these names stay importable for code written before it."""

from __future__ import annotations

from .store import HEARTBEAT_INTERVAL_S, HOST, STALE_AFTER_S
from .store._owner import owner_alive, process_start_time
from .store.sqlite import DB_NAME, SCHEMA_VERSION, dumps, pack_double, unpack_double
from .store.sqlite import SQLiteBackend as Store

__all__ = [
    "DB_NAME", "HEARTBEAT_INTERVAL_S", "HOST", "SCHEMA_VERSION", "STALE_AFTER_S", "Store", "dumps",
    "owner_alive", "pack_double", "process_start_time", "unpack_double",
]
