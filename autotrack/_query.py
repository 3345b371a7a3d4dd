"""The read side: ``autotrack.runs()`` as a DataFrame and ``autotrack.get_run()`` as a RunRecord.

Everything is read through the store's :class:`~autotrack.store.Backend`: filters, sorting and
paging run in the database, per-key stats come from the store. Reading never drives the writer: a
process sees what it logged itself once it is flushed (``autotrack.flush()``, or the run's end).

pandas (and numpy) are imported only inside these functions, never by ``import autotrack``.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import InvalidArgumentError, RunInUseError, RunNotFoundError, StoreError
from ._run import END_STATUSES, edit_name, edit_note, edit_tags, store_for
from .store import Backend, KeyStats, RunQuery, RunRow, effective_status, row_alive
from .store._sql import metric_stat_column
from ._where import parse_order_by, parse_where

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("running", *END_STATUSES)
BASE_COLUMNS = ["id", "name", "experiment", "status", "start", "end", "duration", "parent_id"]
from ._sections import SECTION_NAMES as SECTIONS  # noqa: E402 - the one list of captured sections
_ORDER_ALIASES = {"start_time": "start", "end_time": "end"}


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

    @property
    def signature(self) -> dict[str, Any] | None:
        """A model's ``{"inputs": schema, "outputs": schema}`` as its integration recorded it (None
        when it has none); check data against it with ``autotrack.check_input(artifact, X)``."""
        from ._signature import recorded

        return recorded(self.metadata, "signature")

    @property
    def input_example(self) -> dict[str, Any] | None:
        """A model's first training rows as JSON (secret filter applied), or None."""
        from ._signature import recorded

        return recorded(self.metadata, "input_example")


class RunRecord:
    """A run as read back from the store."""

    def __init__(self, store: Backend, row: RunRow) -> None:
        self._store = store
        self._row = row
        self.id: str = row.id
        self.name: str = row.name
        self.experiment: str = row.experiment
        self.start_time: float = row.start_time
        self.end_time: float | None = row.end_time
        self.parent_id: str | None = row.parent_id
        self.pid: int | None = row.pid
        self.host: str | None = row.host
        self.status: str = effective_status(row)
        self.error: dict[str, Any] | None = json.loads(row.error) if row.error else None
        self.degraded: dict[str, Any] | None = json.loads(row.degraded) if row.degraded else None
        self.note: str | None = row.note

    def __repr__(self) -> str:
        return f"RunRecord(id={self.id!r}, name={self.name!r}, experiment={self.experiment!r}, status={self.status!r})"

    @property
    def store(self) -> Backend:
        return self._store

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    @cached_property
    def _params(self) -> dict[str, tuple[str, int | None]]:
        return self._store.params([self.id]).get(self.id, {})

    @cached_property
    def params(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, (value, _) in sorted(self._params.items())}

    @cached_property
    def truncated_params(self) -> dict[str, int]:
        """Params stored truncated, with their original length."""
        return {key: n for key, (_, n) in self._params.items() if n is not None}

    @cached_property
    def tags(self) -> dict[str, str]:
        return dict(sorted(self._store.tags([self.id]).get(self.id, {}).items()))

    @cached_property
    def _stats(self) -> dict[str, KeyStats]:
        return dict(sorted(self._store.stats([self.id]).get(self.id, {}).items()))

    @property
    def summary(self) -> dict[str, float]:
        """The last value logged for each metric key."""
        return {key: s.last for key, s in self._stats.items()}  # type: ignore[misc]

    def metric_stats(self) -> dict[str, dict[str, Any]]:
        """Per key: count, last step, last value, min and max (NaN ignored)."""
        return {
            key: {"count": s.count, "last_step": s.last_step, "last": s.last, "min": s.min, "max": s.max}
            for key, s in self._stats.items()
        }

    @property
    def metric_keys(self) -> list[str]:
        return list(self._stats)

    def metric(self, key: str) -> pd.DataFrame:
        """The full history of ``key``: a DataFrame with columns ``step``, ``value``, ``time``."""
        import pandas as pd

        steps, values, times = self.metric_arrays(key)
        return pd.DataFrame({"step": steps, "value": values, "time": times})

    def metric_arrays(self, key: str) -> tuple[Any, Any, Any]:
        """``(steps, values, times)`` as numpy arrays, the fastest way to read a long history."""
        arrays = self._store.metric(self.id, key)
        if arrays is None:
            keys = self.metric_keys
            close = difflib.get_close_matches(key, keys, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else f" Keys: {', '.join(keys[:10])}"
            raise InvalidArgumentError("key", key, f"run {self.id[:8]} has no metric with this key.{hint}")
        return arrays

    @cached_property
    def artifacts(self) -> list[Artifact]:
        out = []
        for a in self._store.artifacts(self.id):
            location = a.path
            if a.stored and a.sha256:
                location = self._store.blobs.local_path(a.sha256) or a.path
            out.append(Artifact(a.id, a.name, a.kind, a.sha256, a.size, a.step, location, bool(a.stored),
                                json.loads(a.meta) if a.meta else {}, a.deleted is not None, a.path))
        return out

    def read_artifact(self, name: str) -> bytes:
        """The bytes of the newest artifact called ``name``, verified against its sha256."""
        import hashlib

        matches = [a for a in self.artifacts if a.name == name]
        if not matches:
            close = difflib.get_close_matches(name, [a.name for a in self.artifacts], n=3)
            raise InvalidArgumentError("name", name, f"run {self.id[:8]} has no such artifact. Did you mean {', '.join(close) or 'one of rec.artifacts'}?")
        art = matches[-1]
        try:
            if art.stored and art.sha256:
                data = self._store.blobs.read(art.sha256)
            else:
                data = Path(art.source_path or "").read_bytes()
        except OSError:
            raise StoreError(f"the bytes of artifact {name!r} of run {self.id[:8]} are missing ({art.path})") from None
        if hashlib.sha256(data).hexdigest() != art.sha256:
            raise StoreError(
                f"artifact {name!r} of run {self.id[:8]} does not match its recorded sha256 {art.sha256}: "
                "the file was changed or damaged after it was logged"
            )
        return data

    @cached_property
    def _sections(self) -> dict[str, str]:
        return self._store.sections(self.id)

    def info(self, section: str) -> dict[str, Any]:
        """A captured section: hardware, environment, source, model, optimizer, data, config, seeds."""
        text = self._sections.get(section)
        if text is None:
            available = self.sections
            if section not in SECTIONS and section not in available:
                raise InvalidArgumentError("section", section, f"choose one of {', '.join(sorted(set(SECTIONS) | set(available)))}")
            return {}
        return json.loads(text)

    @property
    def sections(self) -> list[str]:
        return sorted(self._sections)

    @property
    def children(self) -> list[RunRecord]:
        """The runs whose parent this run is; their params, tags and metric stats are read for
        all of them at once (three statements, not three per child: a study of thousands of trials)."""
        return _prefetched(self._store, [RunRecord(self._store, row) for row in self._store.children(self.id)])

    # -- edits: through the one write path (validated, secret-filtered); never touch status or times

    def set_tags(self, tags: Mapping[str, Any], *, remove: Iterable[str] = ()) -> RunRecord:
        """Set (and with ``remove``, delete) tags of this run, live or ended."""
        edit_tags(self._store, self.id, tags, tuple(remove))
        self.__dict__.pop("tags", None)
        return self

    def set_tag(self, key: str, value: Any) -> RunRecord:
        return self.set_tags({key: value})

    def set_note(self, markdown: str) -> RunRecord:
        """Attach a Markdown note to this run (replacing an earlier one)."""
        edit_note(self._store, self.id, markdown)
        self.note = get_run(self.id, store=self._store).note
        return self

    def rename(self, name: str) -> RunRecord:
        edit_name(self._store, self.id, name)
        self.name = get_run(self.id, store=self._store).name
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "experiment": self.experiment, "status": self.status,
            "start_time": self.start_time, "end_time": self.end_time, "duration": self.duration,
            "parent_id": self.parent_id, "host": self.host, "pid": self.pid, "error": self.error,
            "degraded": self.degraded, "note": self.note, "params": self.params, "tags": self.tags,
            "summary": self.summary,
            "sections": {name: self.info(name) for name in self.sections},
            "artifacts": [a.__dict__ for a in self.artifacts],
        }


def _store_for(store: Backend | str | os.PathLike[str] | None) -> Backend:
    return store_for(store)


def get_run(run_id: str, *, store: Backend | str | os.PathLike[str] | None = None) -> RunRecord:
    """Read one run by its id, a unique prefix of it, its name, or ``"latest"``."""
    if not isinstance(run_id, str) or not run_id:
        raise InvalidArgumentError("run_id", run_id, "pass a run id (or a unique prefix, a name, or 'latest') as shown by `autotrack runs`")
    st = _store_for(store)
    if not st.exists():
        raise RunNotFoundError(run_id, [], f"the store at {st.location} is empty; no run matches")
    if run_id == "latest":
        row = st.latest_run()
        if row is None:
            raise RunNotFoundError(run_id, [], f"the store at {st.location} has no runs; no run matches")
        return RunRecord(st, row)
    by_id, by_name = st.match_runs(run_id)
    exact = [r for r in by_id if r.id == run_id]
    if exact:
        return RunRecord(st, exact[0])
    if len(by_id) == 1:
        return RunRecord(st, by_id[0])
    if len(by_id) > 1:
        raise RunNotFoundError(run_id, [r.id for r in by_id], "more than one run matches; give more characters of the")
    if len(by_name) == 1:
        return RunRecord(st, by_name[0])
    if len(by_name) > 1:
        raise RunNotFoundError(run_id, [r.id for r in by_name], "several runs are named")
    close = difflib.get_close_matches(run_id, st.all_run_ids(), n=3, cutoff=0.3)
    raise RunNotFoundError(run_id, close)


def _crashed(st: Backend) -> list[str]:
    return [row.id for row in st.running_runs() if not row_alive(row)]


def _query(experiment: Any, status: Any, where: str | None, order_by: Any, limit: Any, offset: Any,
           parent: str | None = None) -> RunQuery:
    statuses = _as_list(status, "status")
    for s in statuses or ():
        if s not in STATUSES:
            raise InvalidArgumentError("status", s, f"choose from {', '.join(STATUSES)}")
    experiments = _as_list(experiment, "experiment")
    for name, value in (("limit", limit), ("offset", offset)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise InvalidArgumentError(name, value, "pass a non-negative integer")
    where_node = parse_where(where) if where is not None else None
    order = parse_order_by(order_by) if order_by is not None else [("start", False)]
    order = [(_ORDER_ALIASES.get(col, col), asc) for col, asc in order]
    return RunQuery(experiments, statuses, where_node, order, limit, offset or 0, parent)


def _check_order_columns(st: Backend, order: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """A sort column nobody has is a typo: say so, with the closest names."""
    out = []
    for column, asc in order:
        if column in BASE_COLUMNS or column == "note":
            out.append((column, asc))
            continue
        stat = metric_stat_column(column)
        if stat is not None:
            has_key = getattr(st, "has_key", None)
            if has_key is not None and not has_key("metrics", stat[1]):
                known = [f"{stat[0]}(metrics.{k})" for k in st.known_keys("metrics")]  # type: ignore[attr-defined]
                close = difflib.get_close_matches(column, known, n=3)
                raise InvalidArgumentError("order_by", column, f"no run has this metric. Did you mean {', '.join(close) or 'start'}?")
            out.append((column, asc))
            continue
        prefix, _, key = column.partition(".")
        table = prefix if prefix in ("params", "metrics", "tags") and key else "params"
        key = key if table == prefix else column
        has_key = getattr(st, "has_key", None)
        if has_key is not None and not has_key(table, key):
            known = [f"{t}.{k}" for t in ("params", "metrics", "tags") for k in st.known_keys(t)]  # type: ignore[attr-defined]
            close = difflib.get_close_matches(column, known + BASE_COLUMNS, n=3)
            raise InvalidArgumentError("order_by", column, f"no run has this column. Did you mean {', '.join(close) or 'start'}?")
        out.append((f"{table}.{key}", asc))
    return out


def runs(
    experiment: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    where: str | None = None,
    order_by: str | list[str] | None = None,
    limit: int | None = None,
    *,
    offset: int | None = None,
    store: Backend | str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Runs as a DataFrame, one row per run: ``id``, ``name``, ``experiment``, ``status``,
    ``start``, ``end``, ``duration``, ``parent_id``, then ``params.*``, ``metrics.*`` (last values)
    and ``tags.*``. Newest first unless ``order_by`` says otherwise. ``where`` filters, ``order_by``
    sorts and ``limit``/``offset`` page in the store; integer params stay integers (nullable
    ``Int64`` where some runs lack them)."""
    import pandas as pd

    st, rows = _found(experiment, status, where, order_by, limit, offset, store)
    if not rows:
        return pd.DataFrame(columns=BASE_COLUMNS)
    return frame_of(st, rows)


def find_records(where: str | None = None, order_by: str | list[str] | None = None, limit: int | None = None, *,
                 offset: int | None = None, store: Backend | str | os.PathLike[str] | None = None) -> list[RunRecord]:
    """The runs :func:`runs` would list, as records whose params, tags and metric stats are read
    in one batch each (a page of the UI's table: four statements, not four per run)."""
    st, rows = _found(None, None, where, order_by, limit, offset, store)
    return _prefetched(st, [RunRecord(st, row) for row in rows])


def _found(experiment: Any, status: Any, where: str | None, order_by: Any, limit: Any, offset: Any,
           store: Backend | str | os.PathLike[str] | None) -> tuple[Backend, list[RunRow]]:
    """The store and the rows of the runs matching the filters, sorted and paged by the store."""
    query = _query(experiment, status, where, order_by, limit, offset)
    st = _store_for(store)
    if not st.exists():
        return st, []
    query.order = _check_order_columns(st, query.order)
    return st, st.find_runs(query, _crashed(st))


def count_runs(experiment: Any = None, status: Any = None, where: str | None = None, *,
               store: Backend | str | os.PathLike[str] | None = None) -> int:
    """How many runs match (the same filters as :func:`runs`)."""
    query = _query(experiment, status, where, None, None, None)
    st = _store_for(store)
    return st.count_runs(query, _crashed(st)) if st.exists() else 0


def frame_of(st: Backend, rows: list[RunRow]) -> pd.DataFrame:
    """One DataFrame row per run, in the given order. Built column by column: each key gets one
    list, filled where a run has it (no per-run dicts), and times are converted in one call."""
    import numpy as np
    import pandas as pd

    ids = [r.id for r in rows]
    param_columns, last, tags = _read_columns(st, ids)
    start = np.array([r.start_time for r in rows], dtype=float)
    end = np.array([np.nan if r.end_time is None else r.end_time for r in rows], dtype=float)
    duration = end - start
    columns: dict[str, Any] = {
        "id": ids,
        "name": [r.name for r in rows],
        "experiment": [r.experiment for r in rows],
        "status": [effective_status(r) for r in rows],
        "start": pd.to_datetime(start, unit="s", utc=True),
        "end": pd.to_datetime(end, unit="s", utc=True),
        "duration": [None if np.isnan(d) else float(d) for d in duration],
        "parent_id": [r.parent_id for r in rows],
    }
    extra: dict[str, Any] = {}
    position = {rid: i for i, rid in enumerate(ids)}
    n = len(ids)
    for key, (run_ids, values) in param_columns.items():  # a column per key, placed by position
        column = np.full(n, None, dtype=object)
        column[list(map(position.__getitem__, run_ids))] = _as_objects(values)
        extra["params." + key] = column.tolist()
    for key, (run_ids, values) in last.items():
        column = np.full(n, np.nan)
        column[list(map(position.__getitem__, run_ids))] = values
        extra["metrics." + key] = column
    _fill_columns(extra, "tags.", ids, tags, None)
    for name in sorted(extra):
        values = extra[name]
        columns[name] = _typed_param_column(values) if name.startswith("params.") else values
    return pd.DataFrame(columns)


#: from this many runs on, a table's three column reads run at once (below it, threads cost more than they save)
CONCURRENT_READS_FROM = 1000
_READERS: tuple[int, Any] | None = None
_READERS_LOCK = threading.Lock()


def _read_columns(st: Backend, ids: list[str]) -> tuple[Any, Any, Any]:
    """Params, last values and tags of ``ids``: three independent statements. For many runs they
    run at once on two reader threads (each with its own connection; the database works outside
    the GIL), which takes the slowest read's time instead of the sum."""
    global _READERS
    if len(ids) < CONCURRENT_READS_FROM:
        return st.param_columns(ids), st.last_value_columns(ids), st.tags(ids)
    with _READERS_LOCK:
        if _READERS is None or _READERS[0] != os.getpid():  # a forked child has none of its parent's threads
            from concurrent.futures import ThreadPoolExecutor

            _READERS = (os.getpid(), ThreadPoolExecutor(2, thread_name_prefix="autotrack-read"))
        readers = _READERS[1]
    last = readers.submit(st.last_value_columns, ids)
    tags = readers.submit(st.tags, ids)
    return st.param_columns(ids), last.result(), tags.result()


def _prefetched(st: Backend, records: list[RunRecord]) -> list[RunRecord]:
    """``records`` with their ``params``, ``tags`` and metric stats read in one batch each (the
    values their cached properties would read one run at a time)."""
    if len(records) < 2:
        return records
    ids = [r.id for r in records]
    params, tags, stats = st.params(ids), st.tags(ids), st.stats(ids)
    for record in records:
        record.__dict__["_params"] = params.get(record.id, {})
        record.__dict__["tags"] = dict(sorted(tags.get(record.id, {}).items()))
        record.__dict__["_stats"] = dict(sorted(stats.get(record.id, {}).items()))
    return records


def _fill_columns(columns: dict[str, list[Any]], prefix: str, ids: list[str], per_run: Mapping[str, Mapping[str, Any]],
                  convert: Any) -> None:
    """``columns[prefix + key][i]`` = run ``ids[i]``'s value of ``key`` (None where it has none)."""
    n = len(ids)
    for i, run_id in enumerate(ids):
        for key, value in per_run.get(run_id, {}).items():
            values = columns.get(prefix + key)
            if values is None:
                values = columns[prefix + key] = [None] * n
            values[i] = value if convert is None else convert(value)


def _as_objects(values: list[Any]) -> Any:
    """Param values as a 1-d object array (numpy would make nested lists a 2-d one); lists and
    dicts as JSON text, as the table shows them."""
    import numpy as np

    out = np.empty(len(values), dtype=object)
    kinds = set(map(type, values))
    out[:] = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in values] if list in kinds or dict in kinds else values
    return out


def _typed_param_column(values: list[Any]) -> Any:
    """Integers stay integers when some runs lack the param (nullable Int64, not 128.0)."""
    import pandas as pd

    present = [v for v in values if v is not None]
    if present and len(present) < len(values):
        if all(type(v) is int and -2**63 <= v < 2**63 for v in present):
            return pd.array(values, dtype="Int64")
        if all(type(v) is bool for v in present):
            return pd.array(values, dtype="boolean")
    return pd.Series(values, dtype=object).infer_objects() if present else values


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


def delete_run(run_id: str, *, store: Backend | str | os.PathLike[str] | None = None, force: bool = False) -> RunRecord:
    """Delete a run and its records; children lose their link to it. Artifact bytes no other run
    refers to are removed too. A run still being written by a live process cannot be deleted, nor
    one that registered model versions refer to unless ``force=True`` (the versions and their model
    files are then kept, marked as having lost their run)."""
    if not isinstance(force, bool):
        raise InvalidArgumentError("force", force, "pass True or False")
    record = get_run(run_id, store=store)
    if record.status == "running":
        raise InvalidArgumentError("run_id", record.id, "this run is still running in a live process; end it "
                                   "(or wait for it to finish) before deleting it")
    st = record._store
    versions = st.versions_of_runs([record.id])
    if versions and not force:
        raise RunInUseError(record.id, [(v.name, v.version) for v in versions])
    candidates = st.delete_runs([record.id])
    if candidates:
        st.collect_garbage(candidates)
    return record


def gc(*, store: Backend | str | os.PathLike[str] | None = None, grace: float | None = None) -> dict[str, int]:
    """Remove artifact bytes no run refers to. Blobs touched in the last ``grace`` seconds (default
    60) are kept: their records may still be queued in a live writer. Returns what was freed."""
    st = _store_for(store)
    if not st.exists():
        return {"blobs": 0, "bytes": 0}
    kwargs = {} if grace is None else {"grace": grace}
    blobs, freed = st.collect_garbage(None, **kwargs)  # type: ignore[call-arg]
    return {"blobs": blobs, "bytes": freed}
