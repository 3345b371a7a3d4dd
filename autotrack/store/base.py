"""The storage seam: one narrow interface for records and one for artifact bytes.

Everything above this package — ``Run`` and the recorder on the write side, ``runs()`` /
``get_run()`` and the CLI, report and UI on the read side — talks to a :class:`Backend` and never
knows which one runs. A backend takes typed records in (:mod:`autotrack.store._records`) and gives
typed rows out; no SQL text, connection or cursor crosses this line. Artifact bytes go through a
:class:`BlobStore` of their own (a local content-addressed folder, or an S3-compatible bucket).

Implementations: :mod:`autotrack.store.sqlite` (the default, embedded) and
:mod:`autotrack.store.postgres` (the team store). ``tests/store/`` runs one contract suite over
every implementation.
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from ._records import (
    AliasMoveRow,
    AliasRow,
    ArtifactRow,
    KeyStats,
    ModelVersionRow,
    NewModelVersion,
    Owner,
    Record,
    RunQuery,
    RunRow,
    SetAlias,
    StoredBlob,
    StoreHealth,
)

if TYPE_CHECKING:
    import numpy as np


class BlobStore(abc.ABC):
    """Content-addressed artifact bytes: a blob is named by the sha256 of its contents."""

    #: Where the blobs live, for messages (a folder path or ``s3://bucket/prefix``).
    location: str

    @abc.abstractmethod
    def put_file(self, source: str) -> StoredBlob:
        """Store a file's contents (idempotent: identical contents are stored once)."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes) -> StoredBlob: ...

    @abc.abstractmethod
    def open(self, sha256: str) -> IO[bytes]:
        """A readable binary stream of the blob. Raises ``FileNotFoundError`` when it is missing."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def delete(self, sha256: str) -> int:
        """Remove a blob; returns the bytes freed (0 when it was not there)."""

    @abc.abstractmethod
    def list(self) -> Iterator[tuple[str, int]]:
        """Every stored blob as ``(sha256, size)``."""

    def local_path(self, sha256: str) -> str | None:
        """A path on this machine holding the blob, when the store has one (local folders)."""
        return None

    def read(self, sha256: str) -> bytes:
        with self.open(sha256) as f:
            return f.read()

    def verify(self, sha256: str) -> bool:
        """Whether the blob exists and its contents still hash to its name."""
        import hashlib

        try:
            stream = self.open(sha256)
        except (FileNotFoundError, OSError):
            return False
        digest = hashlib.sha256()
        with stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == sha256


class Backend(abc.ABC):
    """A store of runs. Thread-safe; every process opens its own connections (none crosses a fork)."""

    #: A short human-readable location (a folder path, or a URL with the password removed).
    location: str
    #: The artifact bytes of this store.
    blobs: BlobStore
    #: Whether this handle may write (a read-only store is still fully readable).
    writable: bool = True

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store has been created (reading an absent store gives no runs, not an error)."""

    @abc.abstractmethod
    def initialise(self) -> None:
        """Create the store if needed and migrate its schema forward (once per process)."""

    def close(self) -> None:
        """Release this process's connections (a later call reopens them)."""

    def idle(self) -> None:
        """Called by the writer when writing pauses (SQLite folds its WAL back into the database)."""

    # -- the write path ----------------------------------------------------------------------

    @abc.abstractmethod
    def write(self, records: Sequence[Record]) -> None:
        """Apply ``records`` in order, in one transaction: all of them or none."""

    @contextlib.contextmanager
    def copy_lock(self, run_id: str) -> Iterator[None]:
        """Held while a run is copied into this store (``autotrack sync``): two copiers of one run
        take turns, so neither writes points the other has just written. Blocks until free."""
        yield

    @abc.abstractmethod
    def claim_run(self, run_id: str, owner: Owner, alive: Any) -> RunRow:
        """Reopen a run for writing by ``owner`` (resume), atomically. ``alive(row) -> bool`` tells
        whether the run's current owner may still be writing; if so, ``RunLockedError``."""

    @abc.abstractmethod
    def delete_runs(self, run_ids: Sequence[str]) -> dict[str, float]:
        """Delete runs and every record of theirs; children lose their link to them; registered
        model versions of theirs are kept, with ``run_deleted`` set (their blobs stay referenced:
        a blob a model version names is never garbage). Returns the
        stored blobs no run refers to any more, each with the newest time a deleted record of it was
        made (candidates for :meth:`collect_garbage`: a blob touched after that time is being stored
        again by someone else and is kept)."""

    @abc.abstractmethod
    def collect_garbage(self, candidates: Mapping[str, float] | None = None, grace: float = 60.0) -> tuple[int, int]:
        """Delete stored blobs no artifact refers to: only ``candidates`` (from :meth:`delete_runs`), or
        all of them when None, sparing blobs touched in the last ``grace`` seconds (their records may
        still be queued by a live writer). Safe against a concurrent writer adding the same blob.
        Returns ``(blobs, bytes)`` freed."""

    # -- the read path -----------------------------------------------------------------------

    @abc.abstractmethod
    def find_runs(self, query: RunQuery, crashed: Sequence[str] = ()) -> list[RunRow]:
        """Runs matching ``query``, filtered, sorted and paged by the store. ``crashed`` lists the
        ids of ``running`` runs whose owner is gone, so ``status`` filters see the effective status."""

    @abc.abstractmethod
    def count_runs(self, query: RunQuery, crashed: Sequence[str] = ()) -> int: ...

    @abc.abstractmethod
    def running_runs(self) -> list[RunRow]:
        """Runs whose stored status is ``running`` (the reader checks which are still alive)."""

    @abc.abstractmethod
    def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]: ...

    @abc.abstractmethod
    def match_runs(self, ref: str, limit: int = 5) -> tuple[list[RunRow], list[RunRow]]:
        """``(runs whose id starts with ref, runs named ref)``, at most ``limit`` of each."""

    @abc.abstractmethod
    def latest_run(self) -> RunRow | None: ...

    @abc.abstractmethod
    def all_run_ids(self) -> list[str]: ...

    @abc.abstractmethod
    def params(self, run_ids: Sequence[str]) -> dict[str, dict[str, tuple[str, int | None]]]:
        """Per run: key -> (value as JSON text, original length when truncated)."""

    @abc.abstractmethod
    def tags(self, run_ids: Sequence[str]) -> dict[str, dict[str, str]]: ...

    @abc.abstractmethod
    def stats(self, run_ids: Sequence[str]) -> dict[str, dict[str, KeyStats]]:
        """Per run: metric key -> its stats (last, min, max, count, last step)."""

    def param_columns(self, run_ids: Sequence[str]) -> dict[str, tuple[list[str], list[Any]]]:
        """Per param key, the runs that have it and their values (decoded from the stored JSON):
        what a table of many runs needs, one list per column, no dict per run. Backends read it
        grouped by key in the database."""
        out: dict[str, tuple[list[str], list[Any]]] = {}
        for rid, per_run in self.params(run_ids).items():
            for key, (text, _) in per_run.items():
                ids, values = out.setdefault(key, ([], []))
                ids.append(rid)
                values.append(json.loads(text))
        return out

    def last_value_columns(self, run_ids: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """Per metric key, the runs that have a value of it and each one's last value (float64)."""
        import numpy as np

        out: dict[str, tuple[list[str], list[float]]] = {}
        for rid, per_key in self.stats(run_ids).items():
            for key, stat in per_key.items():
                if stat.last is not None:
                    ids, values = out.setdefault(key, ([], []))
                    ids.append(rid)
                    values.append(stat.last)
        return {key: (ids, np.array(values, dtype=float)) for key, (ids, values) in out.items()}

    @abc.abstractmethod
    def metric(self, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(steps, values, times)`` of one key in logged order, or None when the run has no such key.
        Raises ``StoreError`` naming the run, key and step range when a stored chunk is damaged."""

    def metric_since(self, run_id: str, key: str, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The points of one key from the ``start``-th on (0-based, in logged order): what a copy
        holding the first ``start`` of them lacks (``autotrack sync``). A backend may skip whole
        chunks; this default reads the key and slices."""
        arrays = self.metric(run_id, key)
        if arrays is None:
            return None
        steps, values, times = arrays
        return steps[start:], values[start:], times[start:]

    @abc.abstractmethod
    def last_steps(self, run_id: str) -> dict[str, int]: ...

    @abc.abstractmethod
    def sections(self, run_id: str) -> dict[str, str]:
        """Section name -> JSON text."""

    @abc.abstractmethod
    def artifacts(self, run_id: str) -> list[ArtifactRow]: ...

    @abc.abstractmethod
    def artifact(self, artifact_id: int) -> ArtifactRow | None: ...

    @abc.abstractmethod
    def children(self, run_id: str) -> list[RunRow]: ...

    @abc.abstractmethod
    def health(self, verify: bool = False) -> StoreHealth:
        """Schema version, integrity, counts; ``verify`` also checks every chunk and section checksum."""

    # -- the model registry -------------------------------------------------------------------
    # Versions are numbered per model name by the store; the alias history is append-only: no
    # method here (or anywhere) updates or deletes a history entry.

    @abc.abstractmethod
    def register_version(self, record: NewModelVersion) -> ModelVersionRow:
        """Add the next version of ``record.name`` (1 for a new name), numbered atomically: writers
        registering the same name at once get distinct, consecutive numbers."""

    @abc.abstractmethod
    def set_alias(self, move: SetAlias) -> AliasMoveRow | None:
        """Point an alias at an existing version and append the move to the alias history, in one
        transaction; None (and nothing recorded) when the alias already points there. Raises ``ModelNotFoundError`` when the version does not exist and
        ``AliasConflictError`` when ``move.check_expected`` and the alias points elsewhere."""

    @abc.abstractmethod
    def model_names(self) -> list[str]:
        """Every registered model name, sorted."""

    @abc.abstractmethod
    def model_versions(self, name: str) -> list[ModelVersionRow]:
        """The versions of one model, oldest first (empty when the name is unknown)."""

    @abc.abstractmethod
    def model_version(self, name: str, version: int) -> ModelVersionRow | None: ...

    @abc.abstractmethod
    def model_aliases(self, name: str) -> list[AliasRow]:
        """The aliases of one model and the version each points at, sorted by alias."""

    @abc.abstractmethod
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMoveRow]:
        """The moves of one model's aliases (or of one alias), oldest first."""

    @abc.abstractmethod
    def versions_of_runs(self, run_ids: Sequence[str]) -> list[ModelVersionRow]:
        """Model versions made from these runs (the delete guard asks this)."""
