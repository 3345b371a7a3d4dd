"""The data that crosses the storage seam: typed records in, typed rows out.

Producers (``Run``, the recorder, the edit API) build these records and hand them to a
:class:`~autotrack.store.Backend`; readers (``runs()``, ``get_run()``, the CLI, the UI) get rows
back. Nothing else crosses: no SQL text, no connection, no cursor.

Metric points are the one exception to "a record per write": they are queued as plain 5-tuples
``(run_id, key, step, value, time)`` (:data:`MetricPoint`), because a log call must cost well under
a microsecond, and the recorder groups them into :class:`Points` before a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

Status = Literal["running", "finished", "failed", "killed", "crashed"]
END_STATUSES: tuple[str, ...] = ("finished", "failed", "killed", "crashed")
STATUSES: tuple[str, ...] = ("running", *END_STATUSES)

#: ``(run_id, key, step, value, time)`` as queued by ``Run.log_metric``.
MetricPoint = tuple[str, str, int, float, float]


# -- records in --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    """Who writes a run: enough to tell, on the same host, whether that process still lives."""

    pid: int
    host: str
    proc_start: float | None = None
    #: Extra identity facts (boot id, pid namespace, start ticks) as JSON text, or None.
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class NewRun:
    run_id: str
    name: str
    experiment: str
    parent_id: str | None
    start_time: float
    owner: Owner


@dataclass(frozen=True, slots=True)
class EndRun:
    run_id: str
    status: str
    end_time: float
    #: The error as JSON text (type, message, traceback), already secret-filtered.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Params:
    run_id: str
    #: ``(key, value as JSON text, original length when the value was truncated)``
    rows: tuple[tuple[str, str, int | None], ...]


@dataclass(frozen=True, slots=True)
class Tags:
    run_id: str
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RemoveTags:
    run_id: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    run_id: str
    name: str
    #: The section as JSON text.
    value: str


@dataclass(frozen=True, slots=True)
class Points:
    """Consecutive points of one key of one run, in the order they were logged."""

    run_id: str
    key: str
    steps: list[int]
    values: list[float]
    times: list[float]


@dataclass(frozen=True, slots=True)
class ArtifactAdd:
    run_id: str
    name: str
    kind: str
    sha256: str | None
    size: int | None
    step: int | None
    #: The original file's path (a reference, or where a copy was taken from).
    path: str | None
    stored: bool
    meta: str | None
    created: float


@dataclass(frozen=True, slots=True)
class ArtifactUpdate:
    """Merge ``meta`` (JSON text) into the newest artifact ``name`` of the run, or mark it deleted."""

    run_id: str
    name: str
    meta: str | None = None
    deleted: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    run_ids: tuple[str, ...]
    time: float


@dataclass(frozen=True, slots=True)
class Degraded:
    run_ids: tuple[str, ...]
    #: Why, as JSON text (reason, failed writes, dropped points).
    detail: str


@dataclass(frozen=True, slots=True)
class Note:
    run_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Rename:
    run_id: str
    name: str


@dataclass(frozen=True, slots=True)
class NewModelVersion:
    """Register a version of model ``name``; the store assigns its number (1, 2, ...) atomically."""

    name: str
    run_id: str
    #: The run's artifact it was made from (its name), and the stored bytes' sha256 and size.
    artifact: str
    sha256: str
    size: int
    #: ``sklearn``, ``pytorch``, ``xgboost`` ...
    framework: str
    #: How to load it, as JSON text: ``format`` (skops, joblib, torch, ubj), class, versions.
    meta: str | None
    #: The version's tags as JSON text (an object of str -> str), or None.
    tags: str | None
    description: str | None
    created: float
    user: str
    host: str


@dataclass(frozen=True, slots=True)
class SetAlias:
    """Point ``alias`` of model ``name`` at ``version``, appending the move to the alias history in
    the same transaction. With ``check_expected``, the move happens only while the alias still
    points at ``expected`` (None: unset); otherwise the store raises ``AliasConflictError``."""

    name: str
    alias: str
    version: int
    #: ``set`` or ``rollback``
    action: str
    reason: str | None
    user: str
    host: str
    time: float
    expected: int | None = None
    check_expected: bool = False


Record = Union[
    NewRun, EndRun, Params, Tags, RemoveTags, Section, Points, ArtifactAdd, ArtifactUpdate,
    Heartbeat, Degraded, Note, Rename,
]


# -- rows out ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as stored. ``status`` is the stored status; a reader turns a ``running`` run whose
    owner is gone into ``crashed`` (see :func:`autotrack.store.effective_status`)."""

    id: str
    name: str
    experiment: str
    status: str
    start_time: float
    end_time: float | None
    parent_id: str | None
    pid: int | None
    host: str | None
    proc_start: float | None
    heartbeat: float | None
    error: str | None
    degraded: str | None
    note: str | None = None
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class KeyStats:
    """Per metric key of a run: computed by the store as points arrive (NaN ignored in min/max)."""

    key: str
    count: int
    last_step: int | None
    last: float | None
    last_time: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    id: int
    run_id: str
    name: str
    kind: str
    sha256: str | None
    size: int | None
    step: int | None
    path: str | None
    stored: bool
    meta: str | None
    created: float
    deleted: float | None


@dataclass(frozen=True, slots=True)
class ModelVersionRow:
    """One registered model version as stored. ``run_deleted`` is when its run was deleted with
    ``force=True`` (the version record and its bytes are kept), else None."""

    name: str
    version: int
    run_id: str
    artifact: str
    sha256: str
    size: int
    framework: str
    meta: str | None
    tags: str | None
    description: str | None
    created: float
    user: str
    host: str
    run_deleted: float | None


@dataclass(frozen=True, slots=True)
class AliasRow:
    name: str
    alias: str
    version: int
    #: When the alias was last moved.
    time: float


@dataclass(frozen=True, slots=True)
class AliasMoveRow:
    """One entry of the append-only alias history. ``seq`` orders the moves of the whole store."""

    seq: int
    name: str
    alias: str
    from_version: int | None
    to_version: int
    action: str
    reason: str | None
    user: str
    host: str
    time: float


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int


@dataclass(slots=True)
class RunQuery:
    """What ``runs()`` asks the store for. ``where`` is a parsed expression (``autotrack._where``),
    compiled by each backend to parameterised SQL; ``order`` is ``[(column, ascending), ...]``."""

    experiments: list[str] | None = None
    statuses: list[str] | None = None
    where: tuple[Any, ...] | None = None
    order: list[tuple[str, bool]] = field(default_factory=lambda: [("start", False)])
    limit: int | None = None
    offset: int = 0
    parent_id: str | None = None
    run_ids: list[str] | None = None


@dataclass(frozen=True, slots=True)
class StoreHealth:
    location: str
    exists: bool
    schema_version: int | None
    integrity: str | None
    runs: int = 0
    running: int = 0
    crashed: int = 0
    experiments: int = 0
    damaged: tuple[str, ...] = ()
    error: str | None = None
