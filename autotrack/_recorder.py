"""The write path: an in-memory queue drained by one background writer thread per store.

A log call appends a tuple to a ``collections.deque`` (atomic under the GIL, no lock) and
returns. The writer wakes every ``interval`` seconds (and on ``flush``), drains the queue and
writes everything in one transaction. A write that fails (disk full, database locked, read-only
store) keeps its points in memory and is retried; only past ``max_pending`` points are the oldest
dropped, and then counted and reported — never silently.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

from ._errors import StoreError
from ._patching import strict
from ._store import HEARTBEAT_INTERVAL_S, Store, dumps

DEFAULT_INTERVAL_S = 0.25
MAX_BATCH = 200_000
MAX_PENDING = 5_000_000
CHECKPOINT_WHEN_IDLE_S = 2.0


class _FlushMarker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


def _flush_interval() -> float:
    try:
        value = float(os.environ.get("AUTOTRACK_FLUSH_INTERVAL", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return min(max(value, 0.01), 1.0)


class Recorder:
    """Buffers writes for one store and owns the writer thread that persists them."""

    def __init__(self, store: Store, interval: float | None = None) -> None:
        self.store = store
        self.interval = _flush_interval() if interval is None else interval
        self.queue: deque[Any] = deque()
        self.append: Callable[[Any], None] = self.queue.append
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pending: list[Any] = []
        self._live_runs: dict[str, float] = {}
        self._last_heartbeat = 0.0
        self._last_write = 0.0
        self.pid = os.getpid()
        self.failures = 0
        self.last_error: BaseException | None = None
        self.dropped = 0
        self._warned = False
        self._degraded_runs: set[str] = set()
        self._flagged: set[str] = set()

    # -- public --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="autotrack-writer", daemon=True)
            self._thread.start()

    def watch(self, run_id: str) -> None:
        """Keep ``run_id``'s heartbeat fresh while it runs in this process."""
        self._live_runs[run_id] = time.time()

    def unwatch(self, run_id: str) -> None:
        self._live_runs.pop(run_id, None)

    def submit(self, op: Callable[[Store, sqlite3.Connection], None]) -> None:
        """Queue a write operation; it runs in the writer's next transaction, in order."""
        self.append(op)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything queued before this call is on disk. Returns False when the
        store could not be written within ``timeout`` (the data stays queued for retry)."""
        marker = _FlushMarker()
        self.append(marker)
        if self._thread is None or not self._thread.is_alive() or threading.current_thread() is self._thread:
            self._drain()
        else:
            self._wake.set()
        ok = marker.done.wait(timeout)
        if not ok and strict():
            raise StoreError(f"could not write to the store at {self.store.root}: {self.last_error!r}")
        return ok

    def close(self, timeout: float = 10.0) -> bool:
        """Write everything still queued and stop the writer thread. When the store is failing,
        wait at most 2 s more, then say how many points could not be written."""
        try:
            ok = self.flush(min(timeout, 2.0) if self.failures else timeout)
        except StoreError:
            ok = False
        if not ok:
            print(
                f"autotrack: {self.unwritten()} metric points (and {self.dropped} dropped earlier) could "
                f"not be written to {self.store.root}: {self.last_error!r}",
                file=sys.stderr,
            )
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        self._thread = None
        return ok

    # -- the writer ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                wrote = self._drain()
                if wrote:
                    self._last_write = time.monotonic()
                elif self._last_write and time.monotonic() - self._last_write > CHECKPOINT_WHEN_IDLE_S:
                    self._last_write = 0.0
                    self._checkpoint()
            except Exception as exc:  # noqa: BLE001 - the writer thread must never die
                self._on_failure(exc)

    def _checkpoint(self) -> None:
        """Fold the WAL back into the database once writing pauses, so it stays small while
        readers poll a long run."""
        try:
            self.store.connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass

    def _drain(self) -> bool:
        """Write what is queued. Returns whether anything was written."""
        wrote = False
        with self._drain_lock:
            if os.getpid() != self.pid:  # a forked child never writes with its parent's state
                return False
            while True:
                batch = self._pending
                self._pending = []
                markers: list[_FlushMarker] = []
                pop = self.queue.popleft
                try:
                    while len(batch) < MAX_BATCH:
                        item = pop()
                        if type(item) is _FlushMarker:
                            markers.append(item)
                        else:
                            batch.append(item)
                except IndexError:
                    pass
                heartbeat = self._heartbeat_op()
                if heartbeat is not None:
                    batch.append(heartbeat)
                if not batch:
                    for marker in markers:
                        marker.done.set()
                    return wrote
                try:
                    self.store.write_batch(self.store.connection(), batch)
                except (sqlite3.Error, OSError, StoreError) as exc:
                    if heartbeat is not None:
                        batch.pop()
                    self._keep_for_retry(batch, markers)
                    self._on_failure(exc)
                    return wrote
                wrote = True
                if self.failures:
                    self._recovered()
                for marker in markers:
                    marker.done.set()
                if not self.queue:
                    return wrote

    def _heartbeat_op(self) -> Callable[[Store, sqlite3.Connection], None] | None:
        now = time.time()
        if not self._live_runs or now - self._last_heartbeat < HEARTBEAT_INTERVAL_S:
            return None
        self._last_heartbeat = now
        ids = list(self._live_runs)

        def heartbeat(store: Store, conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                [(now, run_id) for run_id in ids],
            )

        return heartbeat

    def _keep_for_retry(self, batch: list[Any], markers: list[_FlushMarker]) -> None:
        excess = len(batch) + len(self.queue) - MAX_PENDING
        if excess > 0:
            kept = []
            for item in batch:
                if excess > 0 and type(item) is tuple:
                    excess -= 1
                    self.dropped += 1
                else:
                    kept.append(item)
            batch = kept
        self._pending = batch
        # markers wait for the retry; put them back behind the pending data
        for marker in markers:
            self.queue.appendleft(marker)

    def _on_failure(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = exc
        self._degraded_runs.update(self._live_runs)
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"autotrack could not write to the store at {self.store.root} ({exc}). "
                "Training continues; the data stays in memory and writing is retried. "
                "Affected runs are flagged 'degraded'.",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.dropped:
            print(
                f"autotrack: dropped {self.dropped} metric points that could not be written "
                f"to {self.store.root}",
                file=sys.stderr,
            )
        time.sleep(min(0.05 * self.failures, 1.0))

    def _recovered(self) -> None:
        self.flag_degraded(
            list(self._degraded_runs),
            repr(self.last_error),
            failed_writes=self.failures,
            dropped_points=self.dropped,
        )
        self.failures = 0
        self._warned = False
        self._degraded_runs.clear()

    def flag_degraded(self, run_ids: list[str], reason: str, **details: Any) -> None:
        """Record on each run that some of its writes failed, and why (written when possible)."""
        self._flagged.update(run_ids)
        text = dumps({"reason": reason, **details})

        def flag(store: Store, conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE runs SET degraded = ? WHERE id = ?", [(text, r) for r in run_ids])

        self.append(flag)

    def is_degraded(self, run_id: str) -> bool:
        return run_id in self._flagged or run_id in self._degraded_runs

    def unwritten(self) -> int:
        """Metric points still waiting to be written."""
        return sum(1 for item in list(self._pending) + list(self.queue) if type(item) is tuple)


_recorders: dict[str, Recorder] = {}
_recorders_lock = threading.Lock()


def recorder_for(store: Store) -> Recorder:
    key = str(store.root)
    rec = _recorders.get(key)
    if rec is None or rec.pid != os.getpid():
        with _recorders_lock:
            rec = _recorders.get(key)
            if rec is None or rec.pid != os.getpid():
                rec = _recorders[key] = Recorder(store)
    rec.start()
    return rec


def all_recorders() -> list[Recorder]:
    pid = os.getpid()
    return [rec for rec in _recorders.values() if rec.pid == pid]


def _after_fork_in_child() -> None:
    # Threads do not survive fork and locks may be held: start clean. Run objects inherited from
    # the parent get a fresh recorder (and connection) of their own if the child logs.
    global _recorders_lock
    _recorders.clear()
    _recorders_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
