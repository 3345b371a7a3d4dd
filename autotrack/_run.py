"""Runs: the public write API, the active-run stack and the process lifecycle hooks."""

from __future__ import annotations

import atexit
import os
import signal
import sqlite3
import sys
import threading
import time as _time_module
import traceback
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from . import _values
from ._errors import AutotrackError, InvalidArgumentError, RunEndedError
from ._names import generate_name
from ._patching import report_failure
from ._recorder import Recorder, all_recorders, recorder_for
from ._store import Store, dumps, process_start_time

Status = Literal["running", "finished", "failed", "killed", "crashed"]
END_STATUSES = ("finished", "failed", "killed", "crashed")
ARTIFACT_KINDS = ("checkpoint", "model", "report", "file")
DEFAULT_EXPERIMENT = "default"

_now = _time_module.time


# -- which store ------------------------------------------------------------------------------

_store_override: Store | None = None
_stores: dict[str, Store] = {}


def set_store(path: str | os.PathLike[str], *, durable: bool = False) -> Store:
    """Use the store folder at ``path`` for every run started from now on in this process.

    ``durable=True`` makes every transaction reach the disk before it commits (SQLite
    ``synchronous=FULL``): slower, but acknowledged writes survive a power loss, not only a crash.
    """
    global _store_override
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError("path", path, "pass a folder path, e.g. autotrack.set_store('./runs')")
    _store_override = Store(path, durable=durable)
    _stores[str(_store_override.root)] = _store_override
    return _store_override


def get_store() -> Store:
    """The store in use: ``set_store``'s, else ``$AUTOTRACK_DIR``, else ``./autotrack-runs``."""
    if _store_override is not None:
        return _store_override
    root = os.environ.get("AUTOTRACK_DIR") or "autotrack-runs"
    key = str(Path(root).expanduser().resolve())
    store = _stores.get(key)
    if store is None:
        durable = os.environ.get("AUTOTRACK_DURABLE") == "1"
        store = _stores[key] = Store(key, durable=durable)
    return store


# -- the run ----------------------------------------------------------------------------------

_active: list[Run] = []
_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_lock = threading.RLock()


class Run:
    """One training run being recorded. Create it with :func:`autotrack.start_run`.

    Log calls are cheap appends to an in-memory queue; a background thread writes them.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        name: str,
        experiment: str,
        parent_id: str | None,
        last_steps: dict[str, int] | None = None,
    ) -> None:
        self._store = store
        self._id = run_id
        self._name = name
        self._experiment = experiment
        self._parent_id = parent_id
        self._pid = os.getpid()
        self._status: Status = "running"
        self._ended = False
        self._keys: set[str] = set()
        self._last_step: dict[str, int] = dict(last_steps or {})
        self._on_end: list[Callable[[Run, str], None]] = []
        #: The current training step, set by integrations so that system metrics line up.
        self.step: int | None = None
        self._recorder = recorder_for(store)
        self._append = self._recorder.append
        self._recorder.watch(run_id)

    # -- identity --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    @property
    def experiment(self) -> str:
        return self._experiment

    @property
    def parent_id(self) -> str | None:
        return self._parent_id

    @property
    def status(self) -> Status:
        return self._status

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def store(self) -> Store:
        return self._store

    @property
    def degraded(self) -> bool:
        """Whether some writes for this run failed (they are retried; see the run's `degraded` record)."""
        return self._recorder.is_degraded(self._id)

    def __repr__(self) -> str:
        return f"Run(id={self._id!r}, name={self._name!r}, experiment={self._experiment!r}, status={self._status!r})"

    # -- metrics ---------------------------------------------------------------------------

    def log_metric(self, key: str, value: Any, step: int | None = None, time: float | None = None) -> None:
        """Record ``value`` for ``key`` at ``step`` (default: the key's previous step + 1).

        Accepts Python numbers, numpy scalars and 0-d tensors; NaN and +-inf are stored as they are.
        """
        if self._ended:
            raise RunEndedError(self._id, self._status, f"log metric {key!r}")
        if key not in self._keys:
            _values.check_key(key)
            self._keys.add(key)
        if type(value) is not float:
            value = _values.to_float(value, f"value of {key!r}")
        if step is None:
            step = self._last_step.get(key, -1) + 1
        elif type(step) is not int:
            step = _values.to_step(step)
        self._last_step[key] = step
        self._append((self._id, key, step, value, _now() if time is None else float(time)))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, time: float | None = None) -> None:
        """Record several metrics at one step and time."""
        if not isinstance(metrics, Mapping):
            raise InvalidArgumentError("metrics", metrics, "pass a dict of key -> number")
        t = _now() if time is None else float(time)
        for key, value in metrics.items():
            self.log_metric(key, value, step, t)

    # -- params, tags, sections ------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params; nested dicts become dotted keys, values keep their JSON type.

        Values that cannot be JSON-encoded are stored as their repr; very large ones as a
        truncated repr with the original length.
        """
        self._check_open("log params")
        if not isinstance(params, Mapping):
            raise InvalidArgumentError("params", params, "pass a dict of name -> value")
        rows = []
        for key, value in _values.flatten(params).items():
            key = _values.check_key(str(key) if not isinstance(key, str) else key, "param key")
            value = _redact(key, value)
            text, original = _values.encode_param(value)
            rows.append((self._id, key, text, original))
        if rows:
            self._append(_ParamsOp(rows))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open("set tags")
        if not isinstance(tags, Mapping):
            raise InvalidArgumentError("tags", tags, "pass a dict of name -> text")
        rows = [(self._id, _values.check_key(k, "tag key"), str(_redact(k, str(v)))) for k, v in tags.items()]
        if rows:
            self._append(_TagsOp(rows))

    def set_info(self, section: str, data: Mapping[str, Any]) -> None:
        """Store a captured section (``hardware``, ``model``, ...), replacing any earlier value."""
        self._check_open(f"set section {section!r}")
        _values.check_key(section, "section")
        if not isinstance(data, Mapping):
            raise InvalidArgumentError("data", data, "sections are dicts")
        self._append(_SectionOp(self._id, section, dumps(_values.jsonable(data))))

    # -- artifacts -------------------------------------------------------------------------

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        kind: str = "file",
        *,
        step: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        copy: bool = True,
    ) -> str:
        """Record a file. ``copy=True`` stores its contents (content-addressed, deduplicated);
        ``copy=False`` records a reference: path, sha256 and size. Returns the sha256."""
        self._check_open("log artifact")
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError("path", path, "pass the path of an existing file")
        source = Path(path)
        if not source.is_file():
            raise InvalidArgumentError("path", str(path), "no such file; pass the path of an existing file")
        if kind not in ARTIFACT_KINDS:
            raise InvalidArgumentError("kind", kind, f"choose one of {', '.join(ARTIFACT_KINDS)}")
        name = _values.check_artifact_name(source.name if name is None else name)
        if copy:
            blob = self._store.put_file(source)
            sha, size = blob.sha256, blob.size
        else:
            from ._store import file_sha256

            sha, size = file_sha256(source)
        self._record_artifact(name, kind, sha, size, step, str(source.resolve()), copy, metadata)
        return sha

    def log_bytes(self, data: bytes, name: str, kind: str = "file", *, step: int | None = None,
                  metadata: Mapping[str, Any] | None = None) -> str:
        self._check_open("log artifact")
        if kind not in ARTIFACT_KINDS:
            raise InvalidArgumentError("kind", kind, f"choose one of {', '.join(ARTIFACT_KINDS)}")
        name = _values.check_artifact_name(name)
        blob = self._store.put_bytes(bytes(data))
        self._record_artifact(name, kind, blob.sha256, blob.size, step, None, True, metadata)
        return blob.sha256

    def log_text(self, text: str, name: str, kind: str = "file") -> str:
        """Store a small text document as an artifact."""
        if not isinstance(text, str):
            raise InvalidArgumentError("text", text, "pass a str; for dicts use log_dict()")
        return self.log_bytes(text.encode("utf-8"), name, kind)

    def log_dict(self, data: Mapping[str, Any], name: str, kind: str = "file") -> str:
        """Store a dict as a JSON artifact."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError("data", data, "pass a dict")
        import json

        text = json.dumps(_values.jsonable(data), indent=2, allow_nan=True, ensure_ascii=False)
        return self.log_text(text, name, kind)

    def _record_artifact(self, name: str, kind: str, sha: str, size: int, step: int | None,
                         path: str | None, stored: bool, metadata: Mapping[str, Any] | None) -> None:
        meta = dumps(_values.jsonable(dict(metadata))) if metadata else None
        self._append(_ArtifactOp((self._id, name, kind, sha, size, step, path, int(stored), meta, _now())))

    def update_artifact(self, name: str, *, metadata: Mapping[str, Any] | None = None, deleted: bool | None = None) -> None:
        """Merge ``metadata`` into the newest artifact called ``name``, or mark it deleted."""
        meta = dumps(_values.jsonable(dict(metadata))) if metadata else None
        self._append(_ArtifactUpdateOp(self._id, name, meta, _now() if deleted else None))

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything logged so far is on disk (integrations' batched values too)."""
        _run_flush_hooks(self)
        recorder = self._recorder_here()
        return recorder.flush(timeout)

    def end(self, status: Status = "finished", *, error: BaseException | None = None) -> None:
        """End the run with ``status`` and write everything still queued. Ending twice is a no-op."""
        if status not in END_STATUSES:
            raise InvalidArgumentError("status", status, f"choose one of {', '.join(END_STATUSES)}")
        with _lock:
            if self._ended:
                return
            for hook in list(self._on_end):
                try:
                    hook(self, status)
                except Exception as exc:  # noqa: BLE001 - a failing hook must not lose the run
                    report_failure("a run end hook", exc)
            self._ended = True
            self._status = status
            if self in _active:
                _active.remove(self)
        error_json = dumps(_describe_error(error)) if error is not None else None
        recorder = self._recorder_here()
        recorder.append(_EndOp(self._id, status, _now(), error_json))
        recorder.unwatch(self._id)
        recorder.flush(10.0)

    def add_end_hook(self, hook: Callable[[Run, str], None]) -> None:
        """Call ``hook(run, status)`` just before the run ends (integrations flush device buffers here)."""
        self._on_end.append(hook)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.end("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("killed", error=exc)
        elif isinstance(exc, SystemExit):
            self.end("finished" if exc.code in (0, None) else "failed", error=None if exc.code in (0, None) else exc)
        else:
            self.end("failed", error=exc)

    # -- helpers ---------------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if self._ended:
            raise RunEndedError(self._id, self._status, action)

    def _recorder_here(self) -> Recorder:
        if self._pid != os.getpid():
            self._rebind()
        return self._recorder

    def _rebind(self) -> None:
        """After a fork: this process gets its own recorder and connection."""
        self._pid = os.getpid()
        self._recorder = recorder_for(self._store)
        self._append = self._recorder.append

    def _append_after_fork(self, item: Any) -> None:
        self._rebind()
        self._append(item)


def _redact(key: str, value: Any) -> Any:
    """Secrets never reach the store: a text value under a secret-looking name (``hub_token``,
    ``api_key``, ``password``...) is replaced, and credentials are cut out of URLs. Numbers stay
    (``pad_token_id=0`` is no secret)."""
    if not isinstance(value, str) or len(value) < 4:
        return value
    from ._capture.redact import REDACTED, is_secret_name, redact_url

    if is_secret_name(key.rsplit(".", 1)[-1]):
        return REDACTED
    return redact_url(value) if "@" in value and "://" in value else value


# -- write operations (run in the writer thread, inside its transaction) -----------------------


class _ParamsOp:
    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO params(run_id, key, value, original_length) VALUES (?, ?, ?, ?)", self.rows
        )


class _TagsOp:
    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT OR REPLACE INTO tags(run_id, key, value) VALUES (?, ?, ?)", self.rows)


class _SectionOp:
    __slots__ = ("row",)

    def __init__(self, run_id: str, name: str, value: str) -> None:
        self.row = (run_id, name, value)

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO sections(run_id, name, value) VALUES (?, ?, ?)", self.row)


class _ArtifactOp:
    __slots__ = ("row",)

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO artifacts(run_id, name, kind, sha256, size, step, path, stored, meta, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.row,
        )


class _ArtifactUpdateOp:
    __slots__ = ("run_id", "name", "meta", "deleted")

    def __init__(self, run_id: str, name: str, meta: str | None, deleted: float | None) -> None:
        self.run_id, self.name, self.meta, self.deleted = run_id, name, meta, deleted

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        import json

        row = conn.execute(
            "SELECT id, meta FROM artifacts WHERE run_id = ? AND name = ? ORDER BY id DESC LIMIT 1",
            (self.run_id, self.name),
        ).fetchone()
        if row is None:
            return
        meta = row[1]
        if self.meta is not None:
            merged = json.loads(meta) if meta else {}
            merged.update(json.loads(self.meta))
            meta = dumps(merged)
        conn.execute(
            "UPDATE artifacts SET meta = ?, deleted = coalesce(?, deleted) WHERE id = ?",
            (meta, self.deleted, row[0]),
        )


class _CreateRunOp:
    __slots__ = ("args",)

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        store.insert_run(conn, *self.args)


class _EndOp:
    __slots__ = ("row",)

    def __init__(self, run_id: str, status: str, end_time: float, error: str | None) -> None:
        self.row = (status, end_time, error, run_id)

    def __call__(self, store: Store, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE runs SET status = ?, end_time = ?, error = ? WHERE id = ?", self.row)


def _describe_error(error: BaseException) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {"type": type(error).__qualname__, "message": str(error), "traceback": tb[-8000:]}


# -- starting runs ------------------------------------------------------------------------------


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    parent: Run | str | None = None,
    resume: str | None = None,
    activate: bool = True,
) -> Run:
    """Start recording a run and make it the active run.

    ``parent`` defaults to the run active in this process, if any, so runs started inside another
    run's ``with`` block are its children. ``resume`` reopens an ended or crashed run by id: new
    points append after its last step per key. ``activate=False`` keeps the run off the
    active-run stack: module-level shortcuts and later ``start_run`` calls do not see it
    (integrations use it for group runs).
    """
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError("name", name, "run names are strings")
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise InvalidArgumentError("experiment", experiment, "experiment names are non-empty strings")
    store = get_store()
    _install_process_hooks()
    proc_start = process_start_time()
    if resume is not None:
        row = store.claim_run(resume, proc_start)
        run = Run(store, row[0], row[1], row[2], row[3], store.last_steps(row[0]))
    else:
        if parent is None:
            active = active_run()
            parent_id = active.id if active is not None else None
        elif isinstance(parent, Run):
            parent_id = parent.id
        elif isinstance(parent, str):
            parent_id = parent
        else:
            raise InvalidArgumentError("parent", parent, "pass a Run, a run id, or None")
        run_id = uuid.uuid4().hex
        run_name = name or generate_name()
        exp = experiment or os.environ.get("AUTOTRACK_EXPERIMENT") or DEFAULT_EXPERIMENT
        store.initialise()
        # Created by the writer thread like everything else: a slow or locked disk never blocks here.
        recorder_for(store).append(_CreateRunOp(run_id, run_name, exp, parent_id, _now(), proc_start))
        run = Run(store, run_id, run_name, exp, parent_id)
        if store.quarantined is not None:
            run._recorder.flag_degraded([run_id], f"the store's database was unreadable and moved to {store.quarantined}")
    with _lock:
        if activate:
            _active.append(run)
        _live_runs.add(run)
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    for hook in list(_start_hooks):
        try:
            hook(run)
        except Exception as exc:  # noqa: BLE001 - capture must never stop a run from starting
            report_failure("a run start hook", exc)
    return run


_start_hooks: list[Callable[[Run], None]] = []


def add_start_hook(hook: Callable[[Run], None]) -> None:
    """Call ``hook(run)`` on every new run (framework-free capture registers here)."""
    if hook not in _start_hooks:
        _start_hooks.append(hook)


_flush_hooks: list[Callable[[Run | None], None]] = []


def add_flush_hook(hook: Callable[[Run | None], None]) -> None:
    """Call ``hook(run)`` at ``run.flush()`` and ``hook(None)`` at ``autotrack.flush()``, before
    the queue is written (integrations hand over values they batch on the device here)."""
    if hook not in _flush_hooks:
        _flush_hooks.append(hook)


def _run_flush_hooks(run: Run | None) -> None:
    for hook in list(_flush_hooks):
        try:
            hook(run)
        except Exception as exc:  # noqa: BLE001 - flushing what is queued must go on
            report_failure("a flush hook", exc)


def active_run() -> Run | None:
    """The innermost run started in this process and not yet ended."""
    with _lock:
        for run in reversed(_active):
            if not run._ended:
                return run
    return None


def _require_active(action: str) -> Run:
    run = active_run()
    if run is None:
        raise AutotrackError(
            f"cannot {action}: no active run. Start one with `with autotrack.start_run(): ...` "
            "or call autotrack.autolog()."
        )
    return run


def log_metric(key: str, value: Any, step: int | None = None, time: float | None = None) -> None:
    _require_active("log a metric").log_metric(key, value, step, time)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, time: float | None = None) -> None:
    _require_active("log metrics").log_metrics(metrics, step, time)


def log_param(key: str, value: Any) -> None:
    _require_active("log a param").log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require_active("log params").log_params(params)


def set_tag(key: str, value: Any) -> None:
    _require_active("set a tag").set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active("set tags").set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None, kind: str = "file") -> str:
    return _require_active("log an artifact").log_artifact(path, name, kind)


def end_run(status: Status = "finished") -> None:
    run = active_run()
    if run is not None:
        run.end(status)


def flush(timeout: float | None = 30.0) -> bool:
    """Write everything queued in this process to disk (integrations' batched values too)."""
    _run_flush_hooks(None)
    return all([rec.flush(timeout) for rec in all_recorders()])


# -- process lifecycle ---------------------------------------------------------------------------

_hooks_pid: int | None = None
_exit_code: int | None = None
_uncaught: BaseException | None = None
_previous_sigterm: Any = None


def _install_process_hooks() -> None:
    """Once per process: end open runs at interpreter exit and on SIGTERM with the right status."""
    global _hooks_pid, _previous_sigterm
    if _hooks_pid == os.getpid():
        return
    _hooks_pid = os.getpid()
    atexit.register(_at_exit)
    previous_excepthook = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        global _uncaught
        _uncaught = exc
        previous_excepthook(exc_type, exc, tb)

    sys.excepthook = excepthook
    previous_exit = sys.exit

    def exit_(code: Any = None) -> None:
        global _exit_code
        _exit_code = 0 if code is None else (code if isinstance(code, int) else 1)
        previous_exit(code)

    sys.exit = exit_  # type: ignore[assignment]
    if threading.current_thread() is threading.main_thread():
        try:
            _previous_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):  # not the main interpreter, or signals unavailable
            pass


def _owned_open_runs() -> list[Run]:
    pid = os.getpid()
    return [run for run in list(_live_runs) if run._pid == pid and not run._ended]


def _on_sigterm(signum: int, frame: Any) -> None:
    previous = _previous_sigterm
    if os.getpid() == _hooks_pid and previous is not signal.SIG_IGN:
        for run in reversed(_owned_open_runs()):
            try:
                run.end("killed", error=None)
            except Exception:  # noqa: BLE001 - we are being terminated; do what we can
                pass
    if callable(previous):
        previous(signum, frame)
    elif previous is signal.SIG_IGN:
        return
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _at_exit() -> None:
    if os.getpid() != _hooks_pid:
        return
    uncaught = _uncaught
    if uncaught is not None:
        status: Status = "killed" if isinstance(uncaught, KeyboardInterrupt) else "failed"
    else:
        status = "finished" if not _exit_code else "failed"
    for run in reversed(_owned_open_runs()):
        try:
            run.end(status, error=uncaught)
        except Exception:  # noqa: BLE001
            pass
    for rec in all_recorders():
        rec.close(timeout=10.0)


def _after_fork_in_child() -> None:
    # The parent's writer thread does not exist here: a run inherited from the parent gets its own
    # recorder (and connection) the first time this child logs to it, and never before.
    global _lock
    _lock = threading.RLock()
    for run in list(_live_runs):
        run._append = run._append_after_fork


os.register_at_fork(after_in_child=_after_fork_in_child)
