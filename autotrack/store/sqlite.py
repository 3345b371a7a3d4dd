"""The embedded store: one SQLite database in WAL mode plus a content-addressed artifact folder.

Layout of a store folder::

    autotrack.db            runs, params, tags, sections, metric chunks, artifact records
    artifacts/ab/abcdef...  file contents, named by sha256, written once (blobs.py)
    tmp/                    partial artifact writes (renamed into artifacts/ when complete)

Metrics are stored as chunks: each writer flush turns the points of one key into one row holding
packed float64 values and times (and int64 steps, omitted when they are consecutive), with a CRC32
of the three so damage is found on read. Reading one key's full history is then a few blob reads
and ``numpy.frombuffer`` instead of a Python object per point (benchmarks/bench_core.py). Each key
keeps its stats (count, last, min, max, last step) in ``metric_keys``, updated as chunks arrive, so
tables can sort and filter on them in SQL.

Many processes may write one store at once: transactions take the write lock up front
(``BEGIN IMMEDIATE``) and queue on the busy timeout. Every process, and every thread, opens its own
connection; a connection never crosses a fork (see :func:`_forget_inherited_connections`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import struct
import threading
import time
import warnings
import zlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import (
    AliasConflictError,
    ModelNotFoundError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    StoreVersionError,
)
from . import _sql
from ._records import (
    AliasMoveRow,
    AliasRow,
    ArtifactAdd,
    ArtifactRow,
    ArtifactUpdate,
    Degraded,
    EndRun,
    Heartbeat,
    KeyStats,
    ModelVersionRow,
    NewModelVersion,
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
    SetAlias,
    StoreHealth,
    Tags,
)
from .base import Backend
from .blobs import GC_GRACE_S, LocalBlobStore

SCHEMA_VERSION = 3
DB_NAME = "autotrack.db"
BUSY_TIMEOUT_S = 60.0
FILE_MODE = 0o600
#: File systems on which SQLite's WAL mode (shared-memory index) is unsafe.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "lustre", "cifs", "smb3", "smbfs", "fuse.sshfs", "gpfs", "beegfs", "9p", "ceph", "glusterfs")
_DOUBLE = struct.Struct("<d")

_MIGRATIONS: list[str] = [
    # version 1: the first wave's schema
    """
    CREATE TABLE experiments (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        experiment_id INTEGER NOT NULL REFERENCES experiments(id),
        parent_id TEXT,
        status TEXT NOT NULL,
        start_time REAL NOT NULL,
        end_time REAL,
        heartbeat REAL NOT NULL,
        pid INTEGER,
        host TEXT,
        proc_start REAL,
        error TEXT,
        degraded TEXT
    );
    CREATE INDEX runs_by_experiment ON runs(experiment_id, start_time);
    CREATE INDEX runs_by_parent ON runs(parent_id);
    CREATE TABLE params (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        original_length INTEGER,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE tags (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE sections (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE metric_keys (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        last_step INTEGER,
        last_value BLOB,
        last_time REAL,
        min_value REAL,
        max_value REAL,
        UNIQUE (run_id, key)
    );
    CREATE TABLE metric_chunks (
        key_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        n INTEGER NOT NULL,
        first_step INTEGER NOT NULL,
        steps BLOB,
        vals BLOB NOT NULL,
        times BLOB NOT NULL,
        PRIMARY KEY (key_id, seq)
    );
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT,
        size INTEGER,
        step INTEGER,
        path TEXT,
        stored INTEGER NOT NULL,
        meta TEXT,
        created REAL NOT NULL,
        deleted REAL
    );
    CREATE INDEX artifacts_by_run ON artifacts(run_id);
    """,
    # version 2: the storage seam. Notes and owner identity on runs; the last value as a number
    # (for sorting and filtering in SQL); checksums on chunks and sections; blob references indexed
    # for garbage collection.
    """
    ALTER TABLE runs ADD COLUMN note TEXT;
    ALTER TABLE runs ADD COLUMN identity TEXT;
    ALTER TABLE metric_keys ADD COLUMN last REAL;
    UPDATE metric_keys SET last = at_unpack_double(last_value);
    ALTER TABLE metric_chunks ADD COLUMN crc INTEGER;
    ALTER TABLE sections ADD COLUMN crc INTEGER;
    CREATE INDEX runs_by_start ON runs(start_time);
    CREATE INDEX runs_by_name ON runs(name);
    CREATE INDEX runs_by_status ON runs(status);
    CREATE INDEX artifacts_by_sha ON artifacts(sha256);
    """,
    # version 3: the model registry (see _REGISTRY_SQL below). The alias history is append-only:
    # the two triggers refuse any UPDATE or DELETE of it, whoever runs them.
    """
    CREATE TABLE registered_models (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        last_version INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE model_versions (
        name TEXT NOT NULL REFERENCES registered_models(name),
        version INTEGER NOT NULL,
        run_id TEXT NOT NULL,
        artifact TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        framework TEXT NOT NULL,
        meta TEXT,
        tags TEXT,
        description TEXT,
        created REAL NOT NULL,
        user_name TEXT NOT NULL,
        host TEXT NOT NULL,
        run_deleted REAL,
        UNIQUE (name, version)
    );
    CREATE INDEX model_versions_by_run ON model_versions(run_id);
    CREATE INDEX model_versions_by_sha ON model_versions(sha256);
    CREATE TABLE model_aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        moved_at REAL NOT NULL,
        PRIMARY KEY (name, alias)
    );
    CREATE TABLE alias_history (
        seq INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        from_version INTEGER,
        to_version INTEGER NOT NULL,
        action TEXT NOT NULL,
        reason TEXT,
        user_name TEXT NOT NULL,
        host TEXT NOT NULL,
        moved_at REAL NOT NULL
    );
    CREATE INDEX alias_history_by_alias ON alias_history(name, alias, seq);
    CREATE TRIGGER alias_history_no_update BEFORE UPDATE ON alias_history
    BEGIN SELECT RAISE(ABORT, 'the alias history is append-only'); END;
    CREATE TRIGGER alias_history_no_delete BEFORE DELETE ON alias_history
    BEGIN SELECT RAISE(ABORT, 'the alias history is append-only'); END;
    """,
]

# -- the model registry's SQL -------------------------------------------------------------------
# Plain standard SQL with ``?`` placeholders (a PostgreSQL port swaps them for ``%s`` and can use
# ``RETURNING seq`` instead of ``lastrowid``). Numbering: the per-name counter row in
# registered_models is bumped inside the write transaction, so concurrent writers serialise on it
# (SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock the UPDATE takes).

_VERSION_COLUMNS = ("name, version, run_id, artifact, sha256, size, framework, meta, tags, description,"
                    " created, user_name, host, run_deleted")
_REGISTRY_SQL = {
    "add_model": "INSERT INTO registered_models(name, created, last_version) VALUES (?, ?, 0)"
                 " ON CONFLICT (name) DO NOTHING",
    "bump_version": "UPDATE registered_models SET last_version = last_version + 1 WHERE name = ?",
    "last_version": "SELECT last_version FROM registered_models WHERE name = ?",
    "add_version": "INSERT INTO model_versions(name, version, run_id, artifact, sha256, size, framework, meta,"
                   " tags, description, created, user_name, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "version": "SELECT " + _VERSION_COLUMNS + " FROM model_versions WHERE name = ? AND version = ?",
    "versions": "SELECT " + _VERSION_COLUMNS + " FROM model_versions WHERE name = ? ORDER BY version",
    "versions_of_run": "SELECT " + _VERSION_COLUMNS + " FROM model_versions WHERE run_id = ? ORDER BY name, version",
    "names": "SELECT name FROM registered_models ORDER BY name",
    "alias": "SELECT version FROM model_aliases WHERE name = ? AND alias = ?",
    "put_alias": "INSERT INTO model_aliases(name, alias, version, moved_at) VALUES (?, ?, ?, ?)"
                 " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, moved_at = excluded.moved_at",
    "add_move": "INSERT INTO alias_history(name, alias, from_version, to_version, action, reason, user_name, host,"
                " moved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "move": "SELECT seq, name, alias, from_version, to_version, action, reason, user_name, host, moved_at"
            " FROM alias_history WHERE seq = ?",
    "aliases": "SELECT name, alias, version, moved_at FROM model_aliases WHERE name = ? ORDER BY alias",
    "history": "SELECT seq, name, alias, from_version, to_version, action, reason, user_name, host, moved_at"
               " FROM alias_history WHERE name = ? ORDER BY seq",
    "alias_history": "SELECT seq, name, alias, from_version, to_version, action, reason, user_name, host, moved_at"
                     " FROM alias_history WHERE name = ? AND alias = ? ORDER BY seq",
    "run_deleted": "UPDATE model_versions SET run_deleted = ? WHERE run_id = ? AND run_deleted IS NULL",
    "sha_referenced": "SELECT 1 FROM model_versions WHERE sha256 = ? LIMIT 1",
    "all_shas": "SELECT DISTINCT sha256 FROM model_versions",
}


class _RegistrySQL:
    """The registry half of :class:`SQLiteBackend` (the methods a new backend must also provide:
    register_version, set_alias, model_names, model_versions, model_version, model_aliases,
    alias_history, versions_of_runs; plus delete_runs marking run_deleted and the blob reference
    check counting model versions)."""

    root: Path

    def _registry_write(self, what: str) -> Any:
        if self.read_only:  # type: ignore[attr-defined]
            self.initialise()  # type: ignore[attr-defined]
            raise StoreError(f"the store at {self.root} is read-only here; cannot {what}")
        self._check_not_deleted()  # type: ignore[attr-defined]
        return self._guard(what + " in")  # type: ignore[attr-defined]

    def register_version(self, record: NewModelVersion) -> ModelVersionRow:
        r = record
        with self._registry_write("register a model version"):
            conn = self._conn()  # type: ignore[attr-defined]
            with transaction(conn):
                conn.execute(_REGISTRY_SQL["add_model"], (r.name, r.created))
                conn.execute(_REGISTRY_SQL["bump_version"], (r.name,))
                version = conn.execute(_REGISTRY_SQL["last_version"], (r.name,)).fetchone()[0]
                conn.execute(_REGISTRY_SQL["add_version"], (
                    r.name, version, r.run_id, r.artifact, r.sha256, r.size, r.framework, r.meta, r.tags,
                    r.description, r.created, r.user, r.host))
                row = conn.execute(_REGISTRY_SQL["version"], (r.name, version)).fetchone()
        return ModelVersionRow(*row)

    def set_alias(self, move: SetAlias) -> AliasMoveRow | None:
        m = move
        with self._registry_write("move an alias"):
            conn = self._conn()  # type: ignore[attr-defined]
            with transaction(conn):
                if conn.execute(_REGISTRY_SQL["version"], (m.name, m.version)).fetchone() is None:
                    raise ModelNotFoundError(m.name, m.version, f"model {m.name!r} has no version {m.version}; "
                                             f"list its versions with `autotrack models show {m.name}`")
                row = conn.execute(_REGISTRY_SQL["alias"], (m.name, m.alias)).fetchone()
                current = None if row is None else row[0]
                if m.check_expected and current != m.expected:
                    raise AliasConflictError(m.name, m.alias, m.expected, current)
                if current == m.version:
                    return None  # already there: not a move, nothing to record
                conn.execute(_REGISTRY_SQL["put_alias"], (m.name, m.alias, m.version, m.time))
                seq = conn.execute(_REGISTRY_SQL["add_move"], (
                    m.name, m.alias, current, m.version, m.action, m.reason, m.user, m.host, m.time)).lastrowid
                out = conn.execute(_REGISTRY_SQL["move"], (seq,)).fetchone()
        return AliasMoveRow(*out)

    def _registry_rows(self, key: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._reader()  # type: ignore[attr-defined]
        if conn is None:
            return []
        with self._guard("read the model registry of"):  # type: ignore[attr-defined]
            return conn.execute(_REGISTRY_SQL[key], args).fetchall()

    def model_names(self) -> list[str]:
        return [name for (name,) in self._registry_rows("names", ())]

    def model_versions(self, name: str) -> list[ModelVersionRow]:
        return [ModelVersionRow(*row) for row in self._registry_rows("versions", (name,))]

    def model_version(self, name: str, version: int) -> ModelVersionRow | None:
        if not (0 < version < 2**63):
            return None
        rows = self._registry_rows("version", (name, version))
        return ModelVersionRow(*rows[0]) if rows else None

    def model_aliases(self, name: str) -> list[AliasRow]:
        return [AliasRow(*row) for row in self._registry_rows("aliases", (name,))]

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMoveRow]:
        if alias is None:
            return [AliasMoveRow(*row) for row in self._registry_rows("history", (name,))]
        return [AliasMoveRow(*row) for row in self._registry_rows("alias_history", (name, alias))]

    def versions_of_runs(self, run_ids: Sequence[str]) -> list[ModelVersionRow]:
        out: list[ModelVersionRow] = []
        for run_id in dict.fromkeys(run_ids):
            out += [ModelVersionRow(*row) for row in self._registry_rows("versions_of_run", (run_id,))]
        return out

_RUN_COLUMNS = (
    "r.id, r.name, e.name, r.status, r.start_time, r.end_time, r.parent_id, r.pid, r.host,"
    " r.proc_start, r.heartbeat, r.error, r.degraded, r.note, r.identity"
)
_RUN_FROM = " FROM runs r JOIN experiments e ON e.id = r.experiment_id"
_RUN_SELECT = "SELECT " + _RUN_COLUMNS + _RUN_FROM


def pack_double(value: float) -> bytes:
    return _DOUBLE.pack(value)


def unpack_double(blob: bytes | None) -> float | None:
    return None if blob is None else _DOUBLE.unpack(blob)[0]


def _last_values(run_ids: Sequence[str], rows: list[tuple[str, str, bytes | None]]) -> dict[str, dict[str, float]]:
    """``(run_id, key, packed last value)`` rows -> per run, key -> value (decoded in one call)."""
    import numpy as np

    out: dict[str, dict[str, float]] = {rid: {} for rid in run_ids}
    rows = [r for r in rows if r[2] is not None]
    values = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f8").tolist()
    for (rid, key, _), value in zip(rows, values, strict=True):
        out[rid][key] = value
    return out


def _chunk_crc(steps: bytes | None, vals: bytes, times: bytes) -> int:
    return zlib.crc32(times, zlib.crc32(vals, zlib.crc32(steps or b"")))


class _Connections:
    """One connection per (process, thread). After a fork the child never touches the parent's
    connections (closing them could release locks the parent holds): they are kept, unused."""

    def __init__(self) -> None:
        self.by_thread: dict[tuple[int, int], sqlite3.Connection] = {}
        self.lock = threading.Lock()


_inherited: list[Any] = []
_all_connections: list[_Connections] = []


def _forget_inherited_connections() -> None:
    for pool in _all_connections:
        _inherited.append(dict(pool.by_thread))
        pool.by_thread.clear()
        pool.lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_inherited_connections)


class SQLiteBackend(_RegistrySQL, Backend):
    """A store folder. Thread-safe; each process and thread opens its own SQLite connection."""

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.location = str(self.root)
        self.db_path = self.root / DB_NAME
        self.blobs = LocalBlobStore(self.root)
        self.durable = durable
        #: Called with each new connection (tests use it to simulate a full or read-only disk).
        self.connect_hooks: list[Any] = []
        self.journal_mode = "wal"
        self.quarantined: Path | None = None
        self.read_only = False
        self._pool = _Connections()
        _all_connections.append(self._pool)
        self._init_lock = threading.Lock()
        self._initialised_pid: int | None = None
        self._db_identity: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.root)!r})"

    @property
    def writable(self) -> bool:  # type: ignore[override]
        return not self.read_only

    # -- connections ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.db_path.exists()

    def _connect(self, read_only: bool = False) -> sqlite3.Connection:
        busy = _busy_timeout()
        if read_only:
            uri = self.db_path.as_uri() + "?mode=ro"
            try:
                conn = sqlite3.connect(uri, uri=True, timeout=busy, isolation_level=None, check_same_thread=False)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # WAL needs its -shm file: in a folder we cannot write, read the file as it is.
                conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=busy, isolation_level=None,
                                       check_same_thread=False)
        else:
            conn = sqlite3.connect(self.db_path, timeout=busy, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")
        if not read_only:
            conn.execute("PRAGMA synchronous = " + ("FULL" if self.durable else "NORMAL"))
            # Keep the WAL file from growing without bound after bursts.
            conn.execute("PRAGMA journal_size_limit = 67108864")
        _sql.register_sqlite_functions(conn)
        for hook in self.connect_hooks:
            hook(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened in this process."""
        key = (os.getpid(), threading.get_ident())
        conn = self._pool.by_thread.get(key)
        if conn is None:
            self.initialise()
            conn = self._connect(read_only=self.read_only)
            with self._pool.lock:
                self._pool.by_thread[key] = conn
        return conn

    def close(self) -> None:
        pid = os.getpid()
        with self._pool.lock:
            for key in [k for k in self._pool.by_thread if k[0] == pid]:
                with contextlib.suppress(sqlite3.Error):
                    self._pool.by_thread.pop(key).close()

    def idle(self) -> None:
        with contextlib.suppress(sqlite3.Error, StoreError):
            if not self.read_only and self.exists():
                self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def initialise(self) -> None:
        """Create the folder and database if needed and migrate the schema forward (once per process).

        A store we may not write (read-only folder or file) opens read-only: fully readable, and
        every write fails with a ``StoreError`` the recorder turns into one warning.
        """
        pid = os.getpid()
        if self._initialised_pid == pid:
            return
        with self._init_lock:
            if self._initialised_pid == pid:
                return
            try:
                self._initialise()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store at {self.root}: {exc}") from exc
            self._initialised_pid = pid

    def _initialise(self) -> None:
        if self.db_path.exists() and not _can_write(self.db_path):
            self.read_only = True
            self._check_version(self._connect(read_only=True))
            return
        try:
            old_umask = os.umask(0o077)
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.blobs._ready()
            finally:
                os.umask(old_umask)
        except OSError as exc:
            if self.db_path.exists():
                self.read_only = True
                self._check_version(self._connect(read_only=True))
                return
            raise StoreError(f"cannot create the store at {self.root}: {exc}. Pick a folder you can write "
                             "with autotrack.set_store(path) or AUTOTRACK_DIR.") from exc
        self.journal_mode = "delete" if self._on_network_filesystem() else "wal"
        try:
            self._open_and_migrate()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self._quarantine(exc)
            self._open_and_migrate()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(str(self.db_path) + suffix, FILE_MODE)
        st = os.stat(self.db_path)
        self._db_identity = (st.st_dev, st.st_ino)
        self.blobs.clean_partials()

    def _check_version(self, conn: sqlite3.Connection) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
        if version > SCHEMA_VERSION:
            raise StoreVersionError(str(self.root), version, SCHEMA_VERSION)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.root} has schema version {version} and is read-only here, so it "
                f"cannot be migrated to version {SCHEMA_VERSION}; open it once with write access"
            )

    def _open_and_migrate(self) -> None:
        conn = self._connect()
        try:
            _retry_locked(lambda: _set_journal_mode(conn, self.journal_mode))
            self._migrate(conn)
        finally:
            conn.close()

    def _on_network_filesystem(self) -> bool:
        fstype = filesystem_type(self.root)
        if fstype is not None and fstype.lower() in NETWORK_FILESYSTEMS:
            warnings.warn(
                f"autotrack: the store at {self.root} is on a network file system ({fstype}), where "
                "SQLite's WAL mode is unsafe; using rollback-journal mode instead (slower with many "
                "writers). Put the store on a local disk (AUTOTRACK_DIR) for full speed.",
                RuntimeWarning,
                stacklevel=5,
            )
            return True
        return False

    def _quarantine(self, exc: BaseException) -> None:
        """Move an unreadable database aside (kept for `sqlite3 .recover`) and start a new one."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.db_path.with_name(f"{DB_NAME}.corrupt-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.db_path) + suffix)
            if source.exists():
                with contextlib.suppress(OSError):
                    os.replace(source, Path(str(target) + suffix))
        self.quarantined = target
        warnings.warn(
            f"autotrack: the database {self.db_path} is unreadable ({exc}); it was moved to {target} "
            "and a new one was started. New runs are flagged 'degraded'.",
            RuntimeWarning,
            stacklevel=5,
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreVersionError(str(self.root), version, SCHEMA_VERSION)
        if version == SCHEMA_VERSION:
            return
        conn.create_function("at_unpack_double", 1, unpack_double, deterministic=True)
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreVersionError(str(self.root), version, SCHEMA_VERSION)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(_MIGRATIONS[target - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")

    def _guard(self, what: str) -> Any:
        """Turn SQLite errors into StoreError that names the store and what was being done."""
        return _Guard(self, what)

    # -- the write path ------------------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        if self.read_only:
            self.initialise()
            raise StoreError(f"the store at {self.root} is read-only here; nothing can be written to it")
        self._check_not_deleted()
        with self._guard("write to"):
            conn = self._conn()
            groups: dict[tuple[str, str], tuple[list[int], list[float], list[float]]] = {}
            with transaction(conn):
                for record in records:
                    if type(record) is tuple:
                        group = groups.get((record[0], record[1]))
                        if group is None:
                            group = groups[(record[0], record[1])] = ([], [], [])
                        group[0].append(record[2])
                        group[1].append(record[3])
                        group[2].append(record[4])
                    elif type(record) is Points:
                        self._write_chunk(conn, record.run_id, record.key, record.steps, record.values, record.times)
                    else:
                        self._apply(conn, record)
                for (run_id, key), (steps, values, times) in groups.items():
                    self._write_chunk(conn, run_id, key, steps, values, times)

    def _check_not_deleted(self) -> None:
        """A store folder deleted (or replaced) under a live process is a storage fault, not a
        silent success: SQLite would keep writing into the unlinked file."""
        if self._db_identity is None:
            return
        try:
            st = os.stat(self.db_path)
        except FileNotFoundError:
            raise StoreError(f"the store's database {self.db_path} was deleted while this process was writing to it") from None
        if (st.st_dev, st.st_ino) != self._db_identity:
            raise StoreError(f"the store's database {self.db_path} was replaced while this process was writing to it")

    def _apply(self, conn: sqlite3.Connection, r: Any) -> None:
        kind = type(r)
        if kind is Params:
            conn.executemany(
                "INSERT OR REPLACE INTO params(run_id, key, value, original_length) VALUES (?, ?, ?, ?)",
                [(r.run_id, k, v, n) for k, v, n in r.rows],
            )
        elif kind is Tags:
            conn.executemany("INSERT OR REPLACE INTO tags(run_id, key, value) VALUES (?, ?, ?)",
                             [(r.run_id, k, v) for k, v in r.rows])
        elif kind is RemoveTags:
            conn.executemany("DELETE FROM tags WHERE run_id = ? AND key = ?", [(r.run_id, k) for k in r.keys])
        elif kind is Section:
            conn.execute("INSERT OR REPLACE INTO sections(run_id, name, value, crc) VALUES (?, ?, ?, ?)",
                         (r.run_id, r.name, r.value, zlib.crc32(r.value.encode("utf-8", "surrogatepass"))))
        elif kind is ArtifactAdd:
            conn.execute(
                "INSERT INTO artifacts(run_id, name, kind, sha256, size, step, path, stored, meta, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.run_id, r.name, r.kind, r.sha256, r.size, r.step, r.path, int(r.stored), r.meta, r.created),
            )
        elif kind is ArtifactUpdate:
            row = conn.execute(
                "SELECT id, meta FROM artifacts WHERE run_id = ? AND name = ? ORDER BY id DESC LIMIT 1",
                (r.run_id, r.name),
            ).fetchone()
            if row is not None:
                meta = row[1]
                if r.meta is not None:
                    merged = json.loads(meta) if meta else {}
                    merged.update(json.loads(r.meta))
                    meta = dumps(merged)
                conn.execute("UPDATE artifacts SET meta = ?, deleted = coalesce(?, deleted) WHERE id = ?",
                             (meta, r.deleted, row[0]))
        elif kind is NewRun:
            conn.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES (?, ?)", (r.experiment, r.start_time))
            exp_id = conn.execute("SELECT id FROM experiments WHERE name = ?", (r.experiment,)).fetchone()[0]
            o = r.owner
            conn.execute(
                "INSERT INTO runs(id, name, experiment_id, parent_id, status, start_time, heartbeat, pid, host,"
                " proc_start, identity) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (r.run_id, r.name, exp_id, r.parent_id, r.start_time, r.start_time, o.pid, o.host, o.proc_start,
                 o.identity),
            )
        elif kind is EndRun:
            conn.execute("UPDATE runs SET status = ?, end_time = ?, error = ? WHERE id = ?",
                         (r.status, r.end_time, r.error, r.run_id))
        elif kind is Heartbeat:
            conn.executemany("UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                             [(r.time, run_id) for run_id in r.run_ids])
        elif kind is Degraded:
            conn.executemany("UPDATE runs SET degraded = ? WHERE id = ?", [(r.detail, run_id) for run_id in r.run_ids])
        elif kind is Note:
            conn.execute("UPDATE runs SET note = ? WHERE id = ?", (r.text, r.run_id))
        elif kind is Rename:
            conn.execute("UPDATE runs SET name = ? WHERE id = ?", (r.name, r.run_id))
        else:
            raise TypeError(f"not a store record: {r!r}")

    def _write_chunk(self, conn: sqlite3.Connection, run_id: str, key: str, steps: list[int],
                     values: list[float], times: list[float]) -> None:
        row = conn.execute("SELECT id FROM metric_keys WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
        if row is None:
            key_id = conn.execute("INSERT INTO metric_keys(run_id, key) VALUES (?, ?)", (run_id, key)).lastrowid
        else:
            key_id = row[0]
        n = len(steps)
        first = steps[0]
        consecutive = steps[-1] - first == n - 1 and (n < 3 or steps == list(range(first, first + n)))
        step_blob = None if consecutive else array("q", steps).tobytes()
        val_blob = array("d", values).tobytes()
        time_blob = array("d", times).tobytes()
        finite = [v for v in values if not math.isnan(v)]
        conn.execute(
            "INSERT INTO metric_chunks(key_id, seq, n, first_step, steps, vals, times, crc) VALUES"
            " (?, (SELECT coalesce(max(seq), -1) + 1 FROM metric_chunks WHERE key_id = ?), ?, ?, ?, ?, ?, ?)",
            (key_id, key_id, n, first, step_blob, val_blob, time_blob, _chunk_crc(step_blob, val_blob, time_blob)),
        )
        lo = min(finite) if finite else None
        hi = max(finite) if finite else None
        last = values[-1]
        conn.execute(
            "UPDATE metric_keys SET count = count + ?, last_step = ?, last_value = ?, last = ?, last_time = ?,"
            " min_value = coalesce(min(min_value, ?), min_value, ?),"
            " max_value = coalesce(max(max_value, ?), max_value, ?) WHERE id = ?",
            (n, steps[-1], pack_double(last), None if math.isnan(last) else last, times[-1], lo, lo, hi, hi, key_id),
        )

    @contextlib.contextmanager
    def copy_lock(self, run_id: str) -> Iterator[None]:
        """An exclusive ``flock`` on ``locks/copy-<run id>`` in the store folder (released by the
        kernel if the copier dies)."""
        import fcntl

        self.initialise()
        folder = self.root / "locks"
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / f"copy-{run_id}", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def claim_run(self, run_id: str, owner: Owner, alive: Any) -> RunRow:
        with self._guard("resume a run in"):
            conn = self._conn()
            with transaction(conn):
                row = conn.execute(_RUN_SELECT + " WHERE r.id = ?", (run_id,)).fetchone()
                if row is None:
                    raise RunNotFoundError(run_id, [], "cannot resume: no run with")
                run = RunRow(*row)
                if run.status == "running" and alive(run):
                    raise RunLockedError(run_id, run.pid, run.host)
                conn.execute(
                    "UPDATE runs SET status = 'running', end_time = NULL, error = NULL, pid = ?, host = ?,"
                    " proc_start = ?, identity = ?, heartbeat = ? WHERE id = ?",
                    (owner.pid, owner.host, owner.proc_start, owner.identity, time.time(), run_id),
                )
            return run

    def delete_runs(self, run_ids: Sequence[str]) -> dict[str, float]:
        with self._guard("delete runs from"):
            conn = self._conn()
            with transaction(conn):
                shas: dict[str, float] = {}
                for run_id in run_ids:
                    for sha, created in conn.execute(
                            "SELECT sha256, max(created) FROM artifacts WHERE run_id = ? AND stored = 1"
                            " AND sha256 IS NOT NULL GROUP BY sha256", (run_id,)):
                        shas[sha] = max(created, shas.get(sha, created))
                    key_ids = [(k,) for (k,) in conn.execute("SELECT id FROM metric_keys WHERE run_id = ?", (run_id,))]
                    conn.executemany("DELETE FROM metric_chunks WHERE key_id = ?", key_ids)
                    for table in ("metric_keys", "params", "tags", "sections", "artifacts"):
                        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608 - fixed names
                    conn.execute("UPDATE runs SET parent_id = NULL WHERE parent_id = ?", (run_id,))
                    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    conn.execute(_REGISTRY_SQL["run_deleted"], (time.time(), run_id))
                return {s: t for s, t in sorted(shas.items()) if not self._referenced(conn, s)}

    def _referenced(self, conn: sqlite3.Connection, sha256: str) -> bool:
        """Whether an artifact or a registered model version needs the blob."""
        if conn.execute("SELECT 1 FROM artifacts WHERE sha256 = ? AND stored = 1 LIMIT 1", (sha256,)).fetchone() is not None:
            return True
        return conn.execute(_REGISTRY_SQL["sha_referenced"], (sha256,)).fetchone() is not None

    def collect_garbage(self, candidates: Mapping[str, float] | None = None, grace: float = GC_GRACE_S) -> tuple[int, int]:
        with self._guard("collect garbage in"):
            conn = self._conn()
            if candidates is None:
                cutoff = time.time() - grace
                names = {sha: cutoff for sha, _ in self.blobs.list()}
            else:
                names = dict(candidates)
            freed = count = 0
            for sha, touched_before in names.items():
                if self._referenced(conn, sha):
                    continue
                n = self.blobs.collect(sha, lambda s: self._referenced(conn, s), touched_before)
                if n:
                    count += 1
                    freed += n
            return count, freed

    # -- the read path -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection | None:
        if not self.exists():
            return None
        return self._conn()

    def _compile(self, query: RunQuery, crashed: Sequence[str]) -> tuple[str, list[Any], _sql.Compiler]:
        compiler = _sql.Compiler(_sql.Dialect(), crashed)
        clauses = []
        if query.experiments:
            clauses.append(f"e.name IN ({','.join(compiler.bind(e) for e in query.experiments)})")
        if query.statuses:
            status = compiler.status_expr()
            clauses.append(f"{status} IN ({','.join(compiler.bind(s) for s in query.statuses)})")
        if query.parent_id is not None:
            clauses.append(f"r.parent_id = {compiler.bind(query.parent_id)}")
        if query.run_ids is not None:
            clauses.append(f"r.id IN ({','.join(compiler.bind(i) for i in query.run_ids) or 'NULL'})")
        if query.where is not None:
            clauses.append(compiler.where(query.where))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, compiler.args, compiler

    def find_runs(self, query: RunQuery, crashed: Sequence[str] = ()) -> list[RunRow]:
        conn = self._reader()
        if conn is None:
            return []
        where, args, compiler = self._compile(query, crashed)
        order = compiler.order(query.order)
        sql = _RUN_SELECT + where + " ORDER BY " + order
        args = compiler.args
        if query.limit is not None or query.offset:
            sql += f" LIMIT {compiler.bind(-1 if query.limit is None else int(query.limit))}"
            sql += f" OFFSET {compiler.bind(int(query.offset))}"
        with self._guard("read runs from"):
            return [RunRow(*row) for row in conn.execute(sql, args)]

    def count_runs(self, query: RunQuery, crashed: Sequence[str] = ()) -> int:
        conn = self._reader()
        if conn is None:
            return 0
        where, args, _ = self._compile(query, crashed)
        with self._guard("count runs in"):
            return conn.execute("SELECT count(*)" + _RUN_FROM + where, args).fetchone()[0]

    def has_key(self, table: str, key: str) -> bool:
        """Whether any run has a param/metric/tag named ``key`` (for 'no such column' hints)."""
        conn = self._reader()
        if conn is None:
            return False
        name = {"params": "params", "metrics": "metric_keys", "tags": "tags"}[table]
        with self._guard("read"):
            return conn.execute(f"SELECT 1 FROM {name} WHERE key = ? LIMIT 1", (key,)).fetchone() is not None  # noqa: S608

    def known_keys(self, table: str, limit: int = 2000) -> list[str]:
        conn = self._reader()
        if conn is None:
            return []
        name = {"params": "params", "metrics": "metric_keys", "tags": "tags"}[table]
        with self._guard("read"):
            return [k for (k,) in conn.execute(f"SELECT DISTINCT key FROM {name} LIMIT ?", (limit,))]  # noqa: S608

    def running_runs(self) -> list[RunRow]:
        conn = self._reader()
        if conn is None:
            return []
        with self._guard("read runs from"):
            return [RunRow(*row) for row in conn.execute(_RUN_SELECT + " WHERE r.status = 'running'")]

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        conn = self._reader()
        if conn is None or not run_ids:
            return []
        out: list[RunRow] = []
        with self._guard("read runs from"):
            for part in _batches(list(run_ids)):
                out += [RunRow(*row) for row in conn.execute(
                    _RUN_SELECT + f" WHERE r.id IN ({','.join('?' * len(part))})", part)]
        return out

    def match_runs(self, ref: str, limit: int = 5) -> tuple[list[RunRow], list[RunRow]]:
        conn = self._reader()
        if conn is None:
            return [], []
        with self._guard("read runs from"):
            by_id = [RunRow(*row) for row in conn.execute(
                _RUN_SELECT + " WHERE r.id >= ? AND r.id < ? ORDER BY r.id LIMIT ?", (ref, ref + "\U0010ffff", limit))]
            by_name = [RunRow(*row) for row in conn.execute(
                _RUN_SELECT + " WHERE r.name = ? ORDER BY r.start_time DESC LIMIT ?", (ref, limit))]
        return by_id, by_name

    def latest_run(self) -> RunRow | None:
        conn = self._reader()
        if conn is None:
            return None
        with self._guard("read runs from"):
            row = conn.execute(_RUN_SELECT + " ORDER BY r.start_time DESC LIMIT 1").fetchone()
        return RunRow(*row) if row else None

    def all_run_ids(self) -> list[str]:
        conn = self._reader()
        if conn is None:
            return []
        with self._guard("read runs from"):
            return [rid for (rid,) in conn.execute("SELECT id FROM runs")]

    def _per_run(self, select: str, run_ids: Sequence[str], then: str = "") -> list[tuple[Any, ...]]:
        """``select`` over the rows of ``run_ids`` (``then``: a clause after the filter, e.g. GROUP BY)."""
        conn = self._reader()
        if conn is None or not run_ids:
            return []
        ids = list(run_ids)
        joiner = " AND " if " WHERE " in select else " WHERE "
        with self._guard("read"):
            if len(ids) > 500:  # one statement, the ids bound as one JSON array: no per-id binding
                return conn.execute(f"{select}{joiner}run_id IN (SELECT value FROM json_each(?)){then}",
                                    (json.dumps(ids),)).fetchall()
            return conn.execute(f"{select}{joiner}run_id IN ({','.join('?' * len(ids))}){then}", ids).fetchall()

    def params(self, run_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, int | None]]]:
        out: dict[str, dict[str, tuple[str, int | None]]] = {rid: {} for rid in run_ids}
        for rid, key, value, original in self._per_run("SELECT run_id, key, value, original_length FROM params", run_ids):
            out[rid][key] = (value, original)
        return out

    def tags(self, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
        for rid, key, value in self._per_run("SELECT run_id, key, value FROM tags", run_ids):
            out[rid][key] = value
        return out

    def stats(self, run_ids: Sequence[str]) -> dict[str, dict[str, KeyStats]]:
        out: dict[str, dict[str, KeyStats]] = {rid: {} for rid in run_ids}
        select = ("SELECT run_id, key, count, last_step, last_value, last_time, min_value, max_value"
                  " FROM metric_keys WHERE count > 0")
        for rid, key, n, step, last, last_time, lo, hi in self._per_run(select, run_ids):
            out[rid][key] = KeyStats(key, n, step, unpack_double(last), last_time, lo, hi)
        return out

    def param_columns(self, run_ids: Sequence[str]) -> dict[str, tuple[list[str], list[Any]]]:
        # grouped by key in SQL: one JSON array of values per key (concatenated text, not
        # json_group_array, which rejects the NaN / Infinity params may hold), one decode each;
        # the run ids comma-joined (ids that hold a comma: the per-run read of the base class)
        if any("," in rid for rid in run_ids):
            return super().param_columns(run_ids)
        rows = self._per_run("SELECT key, group_concat(run_id, ','), '[' || group_concat(value, ',') || ']' FROM params",
                             run_ids, " GROUP BY key")
        return {key: (ids.split(","), json.loads(values)) for key, ids, values in rows}

    def last_value_columns(self, run_ids: Sequence[str]) -> dict[str, tuple[list[str], Any]]:
        import numpy as np

        # the packed float64 last values of each key, hex-joined in SQL and decoded in one call
        if any("," in rid for rid in run_ids):
            return super().last_value_columns(run_ids)
        rows = self._per_run("SELECT key, group_concat(run_id, ','), group_concat(hex(last_value), '') FROM metric_keys"
                             " WHERE count > 0 AND last_value IS NOT NULL", run_ids, " GROUP BY key")
        return {key: (ids.split(","), np.frombuffer(bytes.fromhex(values), dtype="<f8")) for key, ids, values in rows}

    def metric(self, run_id: str, key: str) -> tuple[Any, Any, Any] | None:
        import numpy as np

        conn = self._reader()
        if conn is None:
            return None
        with self._guard("read metrics from"):
            row = conn.execute("SELECT id FROM metric_keys WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()
            if row is None:
                return None
            chunks = conn.execute(
                "SELECT n, first_step, steps, vals, times, crc FROM metric_chunks WHERE key_id = ? ORDER BY seq", (row[0],)
            ).fetchall()
        if not chunks:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        step_parts = []
        for n, first, steps, vals, times, crc in chunks:
            if crc is not None and _chunk_crc(steps, vals, times) != crc or len(vals) != 8 * n or len(times) != 8 * n:
                last = first + n - 1 if steps is None else "?"
                raise StoreError(
                    f"metric {key!r} of run {run_id[:8]} is damaged in the store at {self.root}: the chunk holding "
                    f"steps {first}..{last} ({n} points) does not match its checksum. Run `autotrack doctor --verify`."
                )
            step_parts.append(np.arange(first, first + n, dtype=np.int64) if steps is None
                              else np.frombuffer(steps, dtype=np.int64))
        values = np.frombuffer(b"".join(c[3] for c in chunks), dtype=np.float64)
        times_arr = np.frombuffer(b"".join(c[4] for c in chunks), dtype=np.float64)
        return np.concatenate(step_parts), values, times_arr

    def last_steps(self, run_id: str) -> dict[str, int]:
        conn = self._reader()
        if conn is None:
            return {}
        with self._guard("read"):
            rows = conn.execute("SELECT key, last_step FROM metric_keys WHERE run_id = ? AND last_step IS NOT NULL", (run_id,))
            return {key: step for key, step in rows}

    def sections(self, run_id: str) -> dict[str, str]:
        conn = self._reader()
        if conn is None:
            return {}
        with self._guard("read sections from"):
            rows = conn.execute("SELECT name, value, crc FROM sections WHERE run_id = ? ORDER BY name", (run_id,)).fetchall()
        out = {}
        for name, value, crc in rows:
            if crc is not None and zlib.crc32(value.encode("utf-8", "surrogatepass")) != crc:
                raise StoreError(f"section {name!r} of run {run_id[:8]} is damaged in the store at {self.root} "
                                 "(checksum mismatch). Run `autotrack doctor --verify`.")
            out[name] = value
        return out

    def artifacts(self, run_id: str) -> list[ArtifactRow]:
        conn = self._reader()
        if conn is None:
            return []
        with self._guard("read artifacts from"):
            return [ArtifactRow(*row) for row in conn.execute(
                "SELECT id, run_id, name, kind, sha256, size, step, path, stored, meta, created, deleted"
                " FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))]

    def artifact(self, artifact_id: int) -> ArtifactRow | None:
        conn = self._reader()
        if conn is None or not (0 <= artifact_id < 2**63):
            return None
        with self._guard("read artifacts from"):
            row = conn.execute(
                "SELECT id, run_id, name, kind, sha256, size, step, path, stored, meta, created, deleted"
                " FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return ArtifactRow(*row) if row else None

    def children(self, run_id: str) -> list[RunRow]:
        conn = self._reader()
        if conn is None:
            return []
        with self._guard("read runs from"):
            return [RunRow(*row) for row in conn.execute(_RUN_SELECT + " WHERE r.parent_id = ? ORDER BY r.start_time", (run_id,))]

    def health(self, verify: bool = False) -> StoreHealth:
        if not self.db_path.exists():
            return StoreHealth(str(self.root), False, None, None)
        try:
            conn = self._connect(read_only=True)
        except sqlite3.Error as exc:
            return StoreHealth(str(self.root), True, None, None, error=str(exc))
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            integrity = conn.execute("PRAGMA quick_check" if not verify else "PRAGMA integrity_check").fetchone()[0]
            runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            running = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]
            experiments = conn.execute("SELECT count(*) FROM experiments").fetchone()[0]
            damaged: list[str] = []
            if verify and version >= 2:
                damaged = self._verify(conn)
            return StoreHealth(str(self.root), True, version, integrity, runs, running, 0, experiments, tuple(damaged))
        except sqlite3.Error as exc:
            return StoreHealth(str(self.root), True, None, None, error=str(exc))
        finally:
            conn.close()

    def _verify(self, conn: sqlite3.Connection) -> list[str]:
        damaged = []
        rows = conn.execute(
            "SELECT k.run_id, k.key, c.seq, c.n, c.first_step, c.steps, c.vals, c.times, c.crc"
            " FROM metric_chunks c JOIN metric_keys k ON k.id = c.key_id")
        for run_id, key, _seq, n, first, steps, vals, times, crc in rows:
            if crc is not None and _chunk_crc(steps, vals, times) != crc:
                span = f"{first}..{first + n - 1}" if steps is None else f"from {first} ({n} points)"
                damaged.append(f"run {run_id[:8]} metric {key!r} steps {span}")
        for run_id, name, value, crc in conn.execute("SELECT run_id, name, value, crc FROM sections"):
            if crc is not None and zlib.crc32(value.encode("utf-8", "surrogatepass")) != crc:
                damaged.append(f"run {run_id[:8]} section {name!r}")
        for sha, in conn.execute("SELECT DISTINCT sha256 FROM artifacts WHERE stored = 1 AND sha256 IS NOT NULL"):
            if not self.blobs.verify(sha):
                damaged.append(f"artifact blob {sha[:12]} missing or changed")
        if conn.execute("PRAGMA user_version").fetchone()[0] >= 3:
            for sha, in conn.execute(_REGISTRY_SQL["all_shas"]):
                if not self.blobs.verify(sha):
                    damaged.append(f"model version blob {sha[:12]} missing or changed")
        return damaged


class _Guard:
    def __init__(self, backend: SQLiteBackend, what: str) -> None:
        self.backend = backend
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, sqlite3.Error):
            hint = ""
            if _is_corruption(exc):
                hint = " The database file is damaged; `autotrack doctor --verify` tells what is readable."
            raise StoreError(f"cannot {self.what} the store at {self.backend.root}: {exc}.{hint}") from exc
        return False


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script (a trigger's body holds ``;`` of its own)."""
    statement = ""
    for part in script.split(";"):
        statement += part + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""
    if statement.strip(" \n;"):
        yield statement


def _batches(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _can_write(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so concurrent
    writers queue on the busy timeout instead of failing on lock upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _set_journal_mode(conn: sqlite3.Connection, wanted: str) -> None:
    mode = conn.execute(f"PRAGMA journal_mode = {wanted.upper()}").fetchone()[0]
    if str(mode).lower() != wanted:
        raise StoreError(f"could not switch the store to {wanted} journal mode (got {mode!r})")


def _is_corruption(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _busy_timeout() -> float:
    try:
        return float(os.environ.get("AUTOTRACK_BUSY_TIMEOUT", BUSY_TIMEOUT_S))
    except ValueError:
        return BUSY_TIMEOUT_S


def filesystem_type(path: Path) -> str | None:
    """The file system type of ``path`` from /proc/mounts (Linux), or None when unknown."""
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            mounts = [line.split()[:3] for line in f if line.strip()]
    except OSError:
        return None
    target = str(Path(path).resolve())
    best, best_type = "", None
    for entry in mounts:
        if len(entry) < 3:
            continue
        mount_point = entry[1].replace("\\040", " ")
        if (target == mount_point or target.startswith(mount_point.rstrip("/") + "/")) and len(mount_point) >= len(best):
            best, best_type = mount_point, entry[2]
    return best_type


def _retry_locked(fn: Any, attempts: int = 50) -> Any:
    for attempt in range(attempts):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (1 + attempt % 5))
    return None


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False, default=repr)
