"""The read side: ``autotrack.runs()`` as a DataFrame and ``autotrack.get_run()`` as a RunRecord.

pandas (and numpy) are imported only inside these functions, never by ``import autotrack``.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import InvalidArgumentError, RunNotFoundError
from ._run import END_STATUSES, get_store
from ._store import Store, effective_status, unpack_double
from ._where import evaluate, parse_order_by, parse_where

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("running", *END_STATUSES)
BASE_COLUMNS = ["id", "name", "experiment", "status", "start", "end", "duration", "parent_id"]
SECTIONS = ("hardware", "environment", "source", "model", "optimizer", "data", "config", "seeds")

_RUN_SELECT = (
    "SELECT r.id, r.name, e.name, r.status, r.start_time, r.end_time, r.parent_id, r.pid, r.host,"
    " r.proc_start, r.heartbeat, r.error, r.degraded FROM runs r JOIN experiments e ON e.id = r.experiment_id"
)


@dataclass(frozen=True)
class Artifact:
    """One artifact of a run. ``path`` is where its bytes are: in the store when it was copied,
    else the original file it refers to."""

    id: int
    name: str
    kind: str
    sha256: str | None
    size: int | None
    step: int | None
    path: str | None
    stored: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    source_path: str | None = None


class RunRecord:
    """A run as read back from the store."""

    def __init__(self, store: Store, row: Sequence[Any]) -> None:
        self._store = store
        (self.id, self.name, self.experiment, status, self.start_time, self.end_time, self.parent_id,
         self.pid, self.host, proc_start, heartbeat, error, degraded) = row
        self.status: str = effective_status(status, self.pid, self.host, proc_start, heartbeat)
        self.error: dict[str, Any] | None = json.loads(error) if error else None
        self.degraded: dict[str, Any] | None = json.loads(degraded) if degraded else None

    def __repr__(self) -> str:
        return f"RunRecord(id={self.id!r}, name={self.name!r}, experiment={self.experiment!r}, status={self.status!r})"

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._store.connection()

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    @cached_property
    def params(self) -> dict[str, Any]:
        rows = self._conn.execute("SELECT key, value FROM params WHERE run_id = ? ORDER BY key", (self.id,))
        return {key: json.loads(value) for key, value in rows}

    @cached_property
    def truncated_params(self) -> dict[str, int]:
        """Params stored truncated, with their original length."""
        rows = self._conn.execute(
            "SELECT key, original_length FROM params WHERE run_id = ? AND original_length IS NOT NULL", (self.id,)
        )
        return dict(rows.fetchall())

    @cached_property
    def tags(self) -> dict[str, str]:
        rows = self._conn.execute("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", (self.id,))
        return dict(rows.fetchall())

    @cached_property
    def summary(self) -> dict[str, float]:
        """The last value logged for each metric key."""
        rows = self._conn.execute(
            "SELECT key, last_value FROM metric_keys WHERE run_id = ? AND count > 0 ORDER BY key", (self.id,)
        )
        return {key: unpack_double(value) for key, value in rows}  # type: ignore[misc]

    def metric_stats(self) -> dict[str, dict[str, Any]]:
        """Per key: count, last step, last value, min and max (NaN ignored)."""
        rows = self._conn.execute(
            "SELECT key, count, last_step, last_value, min_value, max_value FROM metric_keys"
            " WHERE run_id = ? AND count > 0 ORDER BY key",
            (self.id,),
        )
        return {
            key: {"count": n, "last_step": step, "last": unpack_double(last), "min": lo, "max": hi}
            for key, n, step, last, lo, hi in rows
        }

    @property
    def metric_keys(self) -> list[str]:
        return list(self.summary)

    def metric(self, key: str) -> pd.DataFrame:
        """The full history of ``key``: a DataFrame with columns ``step``, ``value``, ``time``."""
        import pandas as pd

        steps, values, times = self.metric_arrays(key)
        return pd.DataFrame({"step": steps, "value": values, "time": times})

    def metric_arrays(self, key: str) -> tuple[Any, Any, Any]:
        """``(steps, values, times)`` as numpy arrays, the fastest way to read a long history."""
        import numpy as np

        row = self._conn.execute("SELECT id FROM metric_keys WHERE run_id = ? AND key = ?", (self.id, key)).fetchone()
        if row is None:
            close = difflib.get_close_matches(key, self.metric_keys, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else f" Keys: {', '.join(self.metric_keys[:10])}"
            raise InvalidArgumentError("key", key, f"run {self.id[:8]} has no metric with this key.{hint}")
        chunks = self._conn.execute(
            "SELECT n, first_step, steps, vals, times FROM metric_chunks WHERE key_id = ? ORDER BY seq", (row[0],)
        ).fetchall()
        step_parts = []
        for n, first, steps, _, _ in chunks:
            step_parts.append(
                np.arange(first, first + n, dtype=np.int64) if steps is None else np.frombuffer(steps, dtype=np.int64)
            )
        if not chunks:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        steps_arr = np.concatenate(step_parts)
        values = np.frombuffer(b"".join(c[3] for c in chunks), dtype=np.float64)
        times = np.frombuffer(b"".join(c[4] for c in chunks), dtype=np.float64)
        return steps_arr, values, times

    @cached_property
    def artifacts(self) -> list[Artifact]:
        rows = self._conn.execute(
            "SELECT id, name, kind, sha256, size, step, path, stored, meta, deleted FROM artifacts"
            " WHERE run_id = ? ORDER BY id",
            (self.id,),
        )
        out = []
        for aid, name, kind, sha, size, step, path, stored, meta, deleted in rows:
            location = str(self._store.blob_path(sha)) if stored and sha else path
            out.append(Artifact(aid, name, kind, sha, size, step, location, bool(stored),
                                json.loads(meta) if meta else {}, deleted is not None, path))
        return out

    def read_artifact(self, name: str) -> bytes:
        """The bytes of the newest artifact called ``name``, verified against its sha256."""
        from ._errors import StoreError

        matches = [a for a in self.artifacts if a.name == name]
        if not matches:
            close = difflib.get_close_matches(name, [a.name for a in self.artifacts], n=3)
            raise InvalidArgumentError("name", name, f"run {self.id[:8]} has no such artifact. Did you mean {', '.join(close) or 'one of rec.artifacts'}?")
        art = matches[-1]
        path = self._store.artifact_path(art.sha256) if art.stored else Path(art.path or "")
        if path is None or not path.is_file():
            raise StoreError(f"the bytes of artifact {name!r} of run {self.id[:8]} are missing ({art.path})")
        data = path.read_bytes()
        import hashlib

        if hashlib.sha256(data).hexdigest() != art.sha256:
            raise StoreError(
                f"artifact {name!r} of run {self.id[:8]} does not match its recorded sha256 {art.sha256}: "
                "the file was changed or damaged after it was logged"
            )
        return data

    def info(self, section: str) -> dict[str, Any]:
        """A captured section: hardware, environment, source, model, optimizer, data, config, seeds."""
        row = self._conn.execute(
            "SELECT value FROM sections WHERE run_id = ? AND name = ?", (self.id, section)
        ).fetchone()
        if row is None:
            available = self.sections
            if section not in SECTIONS and section not in available:
                raise InvalidArgumentError("section", section, f"choose one of {', '.join(sorted(set(SECTIONS) | set(available)))}")
            return {}
        return json.loads(row[0])

    @property
    def sections(self) -> list[str]:
        rows = self._conn.execute("SELECT name FROM sections WHERE run_id = ? ORDER BY name", (self.id,))
        return [name for (name,) in rows]

    @property
    def children(self) -> list[RunRecord]:
        rows = self._conn.execute(_RUN_SELECT + " WHERE r.parent_id = ? ORDER BY r.start_time", (self.id,))
        return [RunRecord(self._store, row) for row in rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "experiment": self.experiment, "status": self.status,
            "start_time": self.start_time, "end_time": self.end_time, "duration": self.duration,
            "parent_id": self.parent_id, "host": self.host, "pid": self.pid, "error": self.error,
            "degraded": self.degraded, "params": self.params, "tags": self.tags, "summary": self.summary,
            "sections": {name: self.info(name) for name in self.sections},
            "artifacts": [a.__dict__ for a in self.artifacts],
        }


def _store_for(store: Store | str | Path | None) -> Store:
    if store is None:
        return get_store()
    if isinstance(store, Store):
        return store
    return Store(store)


def get_run(run_id: str, *, store: Store | str | Path | None = None) -> RunRecord:
    """Read one run by its id or a unique prefix of it."""
    if not isinstance(run_id, str) or not run_id:
        raise InvalidArgumentError("run_id", run_id, "pass a run id (or a unique prefix) as shown by `autotrack runs`")
    st = _store_for(store)
    from ._recorder import all_recorders

    for rec in all_recorders():  # what this process logged is readable at once
        if rec.store.root == st.root:
            rec.flush(5.0)
    conn = st.reader()
    if conn is None:
        raise RunNotFoundError(run_id, [], f"the store at {st.root} is empty; no run matches")
    rows = conn.execute(_RUN_SELECT + " WHERE r.id >= ? AND r.id < ? LIMIT 2", (run_id, run_id + "\U0010ffff")).fetchall()
    if len(rows) == 1:
        return RunRecord(st, rows[0])
    if len(rows) > 1:
        ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 5", (run_id, run_id + "\U0010ffff"))]
        raise RunNotFoundError(run_id, ids, "more than one run matches; give more characters of the")
    by_name = conn.execute(_RUN_SELECT + " WHERE r.name = ? ORDER BY r.start_time DESC", (run_id,)).fetchall()
    if len(by_name) == 1:
        return RunRecord(st, by_name[0])
    all_ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
    close = difflib.get_close_matches(run_id, all_ids, n=3, cutoff=0.3)
    if len(by_name) > 1:
        raise RunNotFoundError(run_id, [r[0] for r in by_name[:5]], "several runs are named")
    return RunRecord(st, rows[0]) if rows else _not_found(run_id, close)


def _not_found(run_id: str, close: list[str]) -> RunRecord:
    raise RunNotFoundError(run_id, close)


def runs(
    experiment: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    where: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    store: Store | str | Path | None = None,
) -> pd.DataFrame:
    """All runs as a DataFrame, one row per run: ``id``, ``name``, ``experiment``, ``status``,
    ``start``, ``end``, ``duration``, ``parent_id``, then ``params.*``, ``metrics.*`` (last values)
    and ``tags.*``. Newest first unless ``order_by`` says otherwise."""
    import pandas as pd

    statuses = _as_list(status, "status")
    for s in statuses or ():
        if s not in STATUSES:
            raise InvalidArgumentError("status", s, f"choose from {', '.join(STATUSES)}")
    experiments = _as_list(experiment, "experiment")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise InvalidArgumentError("limit", limit, "pass a non-negative integer")
    where_node = parse_where(where) if where is not None else None
    order = parse_order_by(order_by) if order_by is not None else [("start", False)]

    st = _store_for(store)
    from ._recorder import all_recorders

    for rec in all_recorders():
        if rec.store.root == st.root:
            rec.flush(5.0)
    conn = st.reader()
    if conn is None:
        return pd.DataFrame(columns=BASE_COLUMNS)
    sql = _RUN_SELECT
    args: list[Any] = []
    if experiments:
        sql += f" WHERE e.name IN ({','.join('?' * len(experiments))})"
        args += experiments
    records: dict[str, dict[str, Any]] = {}
    for row in conn.execute(sql, args):
        rid, name, exp, st_status, start, end, parent, pid, host, proc_start, hb, _, degraded = row
        eff = effective_status(st_status, pid, host, proc_start, hb)
        if statuses and eff not in statuses:
            continue
        records[rid] = {
            "id": rid, "name": name, "experiment": exp, "status": eff,
            "start": pd.Timestamp(start, unit="s", tz="UTC"),
            "end": pd.Timestamp(end, unit="s", tz="UTC") if end is not None else pd.NaT,
            "duration": (end - start) if end is not None else None,
            "parent_id": parent,
        }
    if records:
        ids = list(records)
        for table, select, prefix, decode in (
            ("params", "SELECT run_id, key, value FROM params", "params.", json.loads),
            ("metric_keys", "SELECT run_id, key, last_value FROM metric_keys WHERE count > 0", "metrics.", unpack_double),
            ("tags", "SELECT run_id, key, value FROM tags", "tags.", None),
        ):
            for rid, key, value in _rows_for(conn, select, ids):
                rec = records.get(rid)
                if rec is not None:
                    rec[prefix + key] = decode(value) if decode else value
    frame = pd.DataFrame.from_records(list(records.values()))
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS)
    frame = frame[BASE_COLUMNS + sorted(c for c in frame.columns if c not in BASE_COLUMNS)]
    for column in frame.columns:
        if column.startswith("params.") and frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    if where_node is not None:
        frame = frame[evaluate(where_node, frame)]
    by = []
    ascending = []
    for column, asc in order:
        if column not in frame.columns:
            if "." not in column and f"params.{column}" in frame.columns:
                column = f"params.{column}"
            else:
                close = difflib.get_close_matches(column, list(frame.columns), n=3)
                raise InvalidArgumentError("order_by", column, f"no such column. Did you mean {', '.join(close) or 'start'}?")
        by.append(column)
        ascending.append(asc)
    frame = frame.sort_values(by=by, ascending=ascending, na_position="last", kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    return frame.reset_index(drop=True)


def _rows_for(conn: sqlite3.Connection, select: str, ids: list[str]) -> Iterable[tuple[Any, ...]]:
    if len(ids) > 500:  # cheaper to read everything than to bind thousands of ids
        return conn.execute(select)
    joiner = " AND " if " WHERE " in select else " WHERE "
    return conn.execute(f"{select}{joiner}run_id IN ({','.join('?' * len(ids))})", ids)


def _as_list(value: str | Iterable[str] | None, argument: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        raise InvalidArgumentError(argument, value, "pass a string or a list of strings") from None
    if not all(isinstance(v, str) for v in items):
        raise InvalidArgumentError(argument, value, "pass a string or a list of strings")
    return items


def delete_run(run_id: str, *, store: Store | str | Path | None = None) -> RunRecord:
    """Delete a run, its children's link to it, and its records (artifact blobs still used by other
    runs are kept)."""
    from ._store import transaction

    record = get_run(run_id, store=store)
    st = record._store
    conn = st.connection()
    with transaction(conn):
        key_ids = [k for (k,) in conn.execute("SELECT id FROM metric_keys WHERE run_id = ?", (record.id,))]
        conn.executemany("DELETE FROM metric_chunks WHERE key_id = ?", [(k,) for k in key_ids])
        for table in ("metric_keys", "params", "tags", "sections", "artifacts"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (record.id,))
        conn.execute("UPDATE runs SET parent_id = NULL WHERE parent_id = ?", (record.id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (record.id,))
    return record
