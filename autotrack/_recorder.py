"""The write path: an in-memory queue drained by one background writer thread per store.

A log call appends to a ``collections.deque`` (atomic under the GIL, no lock) and returns: a metric
point as a plain tuple, anything else as a typed record (``autotrack.store``). The writer wakes every
``interval`` seconds (and on ``flush``), drains the queue and hands everything to the backend as one
transaction. It knows no SQL.

Failures are of two kinds. A storage fault (``StoreError``: disk full, locked, read-only, deleted
folder) keeps the batch in memory for retry; only past ``max_pending`` points are the oldest dropped,
and then counted and reported. A record the backend refuses for its content (a poison value) is
isolated by splitting the batch, so it can never take other records with it; it alone is dropped,
counted and reported.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

from ._errors import StoreError
from ._patching import strict
from .store import HEARTBEAT_INTERVAL_S, Backend, Degraded, Heartbeat

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

    def __init__(self, backend: Backend, interval: float | None = None) -> None:
        self.backend = backend
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
        #: Records refused for their content (never retried), and the last reason.
        self.poisoned = 0
        self.last_poison: BaseException | None = None
        self._warned = False
        self._warned_poison = False
        self._degraded_runs: set[str] = set()
        self._flagged: set[str] = set()
        #: Called before every flush (integrations hand over device-side buffers here).
        self.before_flush: list[Callable[[], None]] = []

    @property
    def store(self) -> Backend:
        return self.backend

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

    def submit(self, record: Any) -> None:
        """Queue a record; it is written in the writer's next transaction, in order."""
        self.append(record)

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything queued before this call is stored. Returns False when the
        store could not be written within ``timeout`` (the data stays queued for retry)."""
        for hook in list(self.before_flush):
            try:
                hook()
            except Exception:  # noqa: BLE001 - a failing hook must not stop the flush
                pass
        marker = _FlushMarker()
        self.append(marker)
        if self._thread is None or not self._thread.is_alive() or threading.current_thread() is self._thread:
            self._drain()
        else:
            self._wake.set()
        ok = marker.done.wait(timeout)
        if not ok and strict():
            raise StoreError(f"could not write to the store at {self.backend.location}: {self.last_error!r}")
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
                f"not be written to {self.backend.location}: {self.last_error!r}",
                file=sys.stderr,
            )
        if self.poisoned:
            print(f"autotrack: {self.poisoned} records were refused by the store and not written "
                  f"(last: {self.last_poison!r})", file=sys.stderr)
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
                    self.backend.idle()
            except Exception as exc:  # noqa: BLE001 - the writer thread must never die
                self._on_failure(exc)

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
                heartbeat = self._heartbeat()
                if heartbeat is not None:
                    batch.append(heartbeat)
                if not batch:
                    for marker in markers:
                        marker.done.set()
                    return wrote
                try:
                    self._write(batch)
                except StoreError as exc:
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

    def _write(self, batch: list[Any]) -> None:
        """Write ``batch``; a record refused for its content is found by halving and dropped alone."""
        try:
            self.backend.write(batch)
            return
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a poison record, not a storage fault
            if len(batch) == 1:
                self._on_poison(batch[0], exc)
                return
        middle = len(batch) // 2
        self._write(batch[:middle])
        self._write(batch[middle:])

    def _on_poison(self, record: Any, exc: BaseException) -> None:
        self.poisoned += 1
        self.last_poison = exc
        run_id = record[0] if type(record) is tuple else getattr(record, "run_id", None)
        if not self._warned_poison:
            self._warned_poison = True
            warnings.warn(
                f"autotrack: the store refused a record of run {str(run_id)[:8]} ({type(exc).__name__}: {exc}); "
                "that record was dropped and counted, everything else was written.",
                RuntimeWarning,
                stacklevel=2,
            )
        if strict():
            print(f"autotrack: poison record dropped: {record!r:.200} ({exc!r})", file=sys.stderr)

    def _heartbeat(self) -> Heartbeat | None:
        now = time.time()
        if not self._live_runs or now - self._last_heartbeat < HEARTBEAT_INTERVAL_S:
            return None
        self._last_heartbeat = now
        return Heartbeat(tuple(self._live_runs), now)

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
                f"autotrack could not write to the store at {self.backend.location} ({exc}). "
                "Training continues; the data stays in memory and writing is retried. "
                "Affected runs are flagged 'degraded'.",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.dropped:
            print(
                f"autotrack: dropped {self.dropped} metric points that could not be written "
                f"to {self.backend.location}",
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
        from .store.sqlite import dumps

        self._flagged.update(run_ids)
        self.append(Degraded(tuple(run_ids), dumps({"reason": reason, **details})))

    def is_degraded(self, run_id: str) -> bool:
        return run_id in self._flagged or run_id in self._degraded_runs

    def unwritten(self) -> int:
        """Metric points still waiting to be written."""
        return sum(1 for item in list(self._pending) + list(self.queue) if type(item) is tuple)


_recorders: dict[int, Recorder] = {}
_recorders_lock = threading.Lock()


def recorder_for(backend: Backend) -> Recorder:
    key = id(backend)
    rec = _recorders.get(key)
    if rec is None or rec.pid != os.getpid() or rec.backend is not backend:
        with _recorders_lock:
            rec = _recorders.get(key)
            if rec is None or rec.pid != os.getpid() or rec.backend is not backend:
                rec = _recorders[key] = Recorder(backend)
    rec.start()
    return rec


def all_recorders() -> list[Recorder]:
    pid = os.getpid()
    return [rec for rec in list(_recorders.values()) if rec.pid == pid]


# -- fork safety ---------------------------------------------------------------------------------
# A fork while the writer is inside a transaction would copy a held database lock into the child,
# which then never gets the lock (SQLite's lock state is per process). So a fork waits (briefly)
# for the writers to finish their transaction, and the child starts with no recorder at all.

_held_for_fork: list[threading.Lock] = []


def _before_fork() -> None:
    for rec in all_recorders():
        if rec._drain_lock.acquire(timeout=2.0):
            _held_for_fork.append(rec._drain_lock)


def _after_fork_in_parent() -> None:
    while _held_for_fork:
        _held_for_fork.pop().release()


def _after_fork_in_child() -> None:
    global _recorders_lock
    _held_for_fork.clear()
    _recorders.clear()
    _recorders_lock = threading.Lock()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
