"""Runs: the public write API and the active-run stack.

Every write goes through here and through the recorder: a log call validates and secret-filters
its input, builds a typed record (``autotrack.store``) and queues it; the writer thread stores it.
Edits of existing runs (tags, notes, names — live or ended) use the same validation and filters and
are written at once (``edit_run``). Nothing here knows SQL or which backend is in use.

The active run is per context (``contextvars``): each thread, and each asyncio task, has its own
stack, so a run started in one thread never becomes the parent of a run another thread starts. A
thread that should log into a run started elsewhere joins it on purpose::

    def worker(run):
        with run.activate():                # the run is active in this thread; not ended on exit
            autotrack.log_metric("worker/items", 10)
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time as _time_module
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from . import _lifecycle, _redact, _values
from ._errors import AutotrackError, InvalidArgumentError, RunEndedError, StoreError
from ._names import generate_name
from ._patching import report_failure
from ._recorder import Recorder, all_recorders, recorder_for
from .store import (
    ArtifactAdd,
    ArtifactUpdate,
    Backend,
    EndRun,
    NewRun,
    Note,
    Params,
    RemoveTags,
    Rename,
    Section,
    Tags,
    is_url,
    open_backend,
    row_alive,
    this_owner,
)
from .store.sqlite import dumps

Status = Literal["running", "finished", "failed", "killed", "crashed"]
END_STATUSES = ("finished", "failed", "killed", "crashed")
ARTIFACT_KINDS = ("checkpoint", "model", "report", "file")
DEFAULT_EXPERIMENT = "default"
DEFAULT_DIR = "autotrack-runs"

_now = _time_module.time


# -- which store ------------------------------------------------------------------------------

_store_override: Backend | None = None
_backends: dict[str, Backend] = {}
_backends_lock = threading.Lock()
_stores = _backends  # the name integrations used before the SDK


def _location_key(location: str | os.PathLike[str]) -> str:
    if is_url(location):
        return str(location)
    return str(Path(location).expanduser().resolve())


def store_for(location: str | os.PathLike[str] | Backend | None = None, *, durable: bool | None = None) -> Backend:
    """The backend for ``location`` (one object per location and process), or the store in use."""
    if location is None:
        return get_store()
    if isinstance(location, Backend):
        return location
    if not isinstance(location, (str, os.PathLike)):
        raise InvalidArgumentError("store", location, "pass a folder path or a postgresql:// URL")
    key = _location_key(location)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            if durable is None:
                durable = os.environ.get("AUTOTRACK_DURABLE") == "1"
            backend = _backends[key] = open_backend(key, durable=durable)
    return backend


def store_at(location: str) -> Backend:
    """The open backend whose key or ``location`` is ``location``, else a new one for it."""
    with _backends_lock:
        found = _backends.get(location) or next((b for b in _backends.values() if b.location == location), None)
    if _store_override is not None and _store_override.location == location:
        return _store_override
    return found if found is not None else store_for(location)


def set_store(location: str | os.PathLike[str], *, durable: bool = False) -> Backend:
    """Use the store at ``location`` for every run started from now on in this process: a folder
    (the embedded SQLite store) or a ``postgresql://user@host:5432/db`` URL (the team store).

    ``durable=True`` makes every transaction reach the disk before it commits: slower, but
    acknowledged writes survive a power loss, not only a crash.
    """
    global _store_override
    if not isinstance(location, (str, os.PathLike)):
        raise InvalidArgumentError("location", location, "pass a folder path, e.g. autotrack.set_store('./runs'), "
                                   "or a postgresql:// URL")
    key = _location_key(location)
    with _backends_lock:
        backend = open_backend(key, durable=durable)
        _backends[key] = backend
    _store_override = backend
    return backend


def get_store() -> Backend:
    """The store in use: ``set_store``'s, else ``$AUTOTRACK_STORE`` (a folder or URL), else
    ``$AUTOTRACK_DIR``, else ``./autotrack-runs``."""
    if _store_override is not None:
        return _store_override
    return store_for(os.environ.get("AUTOTRACK_STORE") or os.environ.get("AUTOTRACK_DIR") or DEFAULT_DIR)


# -- the run ----------------------------------------------------------------------------------

_active: contextvars.ContextVar[tuple[Run, ...]] = contextvars.ContextVar("autotrack_active_runs", default=())
_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_lock = threading.RLock()


class Run:
    """One training run being recorded. Create it with :func:`autotrack.start_run`.

    Log calls are cheap appends to an in-memory queue; a background thread writes them.
    """

    def __init__(
        self,
        store: Backend,
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
        self._keys: dict[str, str] = {}  # key as logged -> key as stored (checked, surrogates escaped)
        self._redactions: list[dict[str, Any]] = []
        self._last_step: dict[str, int] = dict(last_steps or {})
        self._on_end: list[Callable[[Run, str], None]] = []
        #: The current training step, set by integrations so that system metrics line up.
        self.step: int | None = None
        self._recorder = recorder_for(store)
        self._append = self._recorder.append
        self._recorder.watch(run_id)

    # -- identity --------------------------------------------------------------------------

    @property
    def last_step(self) -> int | None:
        """The highest step any metric of this run has been logged at (a resumed run's included),
        or None before the first point."""
        return max(self._last_step.values(), default=None)

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
    def store(self) -> Backend:
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
        stored_key = self._keys.get(key)
        if stored_key is None:
            stored_key = self._keys[key] = _values.check_key(key)
        if type(value) is not float:
            value = _values.to_float(value, f"value of {key!r}")
        if step is None:
            step = self._last_step.get(key, -1) + 1
        elif type(step) is not int or step >= 0x8000000000000000 or step < -0x8000000000000000:
            step = _values.check_step(step)
        self._last_step[key] = step
        self._append((self._id, stored_key, step, value, _now() if time is None else float(time)))

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
        rows, found = param_rows(params)
        if rows:
            self._append(Params(self._id, rows))
        self._note_redactions(found)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open("set tags")
        rows, found = tag_rows(tags)
        if rows:
            self._append(Tags(self._id, rows))
        self._note_redactions(found)

    def _note_redactions(self, found: list[dict[str, Any]]) -> None:
        """Keep the ``redactions`` section: where a value was replaced (never the value)."""
        if found:
            self._redactions = _redact.describe([*self._redactions, *found])
            self._append(Section(self._id, "redactions", dumps({"values": self._redactions})))

    def set_info(self, section: str, data: Mapping[str, Any]) -> None:
        """Store a captured section (``hardware``, ``model``, ...), replacing any earlier value."""
        self._check_open(f"set section {section!r}")
        _values.check_key(section, "section")
        if not isinstance(data, Mapping):
            raise InvalidArgumentError("data", data, "sections are dicts")
        self._append(Section(self._id, section, dumps(_values.jsonable(data))))

    def set_note(self, markdown: str) -> None:
        """Attach a Markdown note to the run (replacing an earlier one)."""
        self._append(Note(self._id, note_text(markdown)))

    def rename(self, name: str) -> None:
        self._name = run_name(name)
        self._append(Rename(self._id, self._name))

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
        ``copy=False`` records a reference: path, sha256 and size. Returns the sha256.

        When the contents cannot be stored (disk full, read-only store) the artifact is recorded as a
        reference marked ``lost`` with the reason, and one warning is shown: nothing raises.
        """
        self._check_open("log artifact")
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError("path", path, "pass the path of an existing file")
        source = Path(path)
        if not source.is_file():
            raise InvalidArgumentError("path", str(path), "no such file; pass the path of an existing file")
        if kind not in ARTIFACT_KINDS:
            raise InvalidArgumentError("kind", kind, f"choose one of {', '.join(ARTIFACT_KINDS)}")
        name = _values.check_artifact_name(source.name if name is None else name)
        meta = dict(metadata) if metadata else {}
        stored = copy
        if copy:
            try:
                blob = self._store.blobs.put_file(str(source))
                sha, size = blob.sha256, blob.size
            except OSError as exc:
                try:
                    sha, size = file_sha256(source)
                except FileNotFoundError:
                    raise InvalidArgumentError("path", str(path), "the file was deleted while it was being stored") from None
                stored = False
                meta["lost"] = f"the contents could not be stored: {exc}"
                report_failure("storing an artifact's contents", exc)
        else:
            sha, size = file_sha256(source)
        self.record_artifact(name, kind, sha, size, step, str(source.resolve()), stored, meta or None)
        return sha

    def log_bytes(self, data: bytes, name: str, kind: str = "file", *, step: int | None = None,
                  metadata: Mapping[str, Any] | None = None) -> str:
        self._check_open("log artifact")
        if kind not in ARTIFACT_KINDS:
            raise InvalidArgumentError("kind", kind, f"choose one of {', '.join(ARTIFACT_KINDS)}")
        name = _values.check_artifact_name(name)
        data = bytes(data)
        try:
            blob = self._store.blobs.put_bytes(data)
        except OSError as exc:  # like log_artifact: a failing artifact store never raises into training
            import hashlib

            meta = {**(dict(metadata) if metadata else {}), "lost": f"the contents could not be stored: {exc}"}
            sha = hashlib.sha256(data).hexdigest()
            report_failure("storing an artifact's contents", exc)
            self.record_artifact(name, kind, sha, len(data), step, None, False, meta)
            return sha
        self.record_artifact(name, kind, blob.sha256, blob.size, step, None, True, metadata)
        return blob.sha256

    def log_text(self, text: str, name: str, kind: str = "file") -> str:
        """Store a small text document as an artifact."""
        if not isinstance(text, str):
            raise InvalidArgumentError("text", text, "pass a str; for dicts use log_dict()")
        return self.log_bytes(text.encode("utf-8", "surrogateescape"), name, kind)

    def log_dict(self, data: Mapping[str, Any], name: str, kind: str = "file") -> str:
        """Store a dict as a JSON artifact."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError("data", data, "pass a dict")
        import json

        text = json.dumps(_values.jsonable(data), indent=2, allow_nan=True, ensure_ascii=False)
        return self.log_text(text, name, kind)

    def record_artifact(self, name: str, kind: str, sha: str | None, size: int | None, step: int | None,
                        path: str | None, stored: bool, metadata: Mapping[str, Any] | None) -> None:
        """Record an artifact whose bytes are already stored (or that is kept by reference)."""
        meta = dumps(_values.jsonable(dict(metadata))) if metadata else None
        self._append(ArtifactAdd(self._id, name, kind, sha, size, step, path, bool(stored), meta, _now()))

    _record_artifact = record_artifact  # the name integrations used before the SDK

    def update_artifact(self, name: str, *, metadata: Mapping[str, Any] | None = None, deleted: bool | None = None) -> None:
        """Merge ``metadata`` into the newest artifact called ``name``, or mark it deleted."""
        meta = dumps(_values.jsonable(dict(metadata))) if metadata else None
        self._append(ArtifactUpdate(self._id, name, meta, _now() if deleted else None))

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything logged so far is stored (integrations' device-side buffers too)."""
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
            _pop_active(self)
        error_json = dumps(describe_error(error)) if error is not None else None
        recorder = self._recorder_here()
        recorder.append(EndRun(self._id, status, _now(), error_json))
        recorder.unwatch(self._id)
        # A store that is failing already said so; do not make every end wait for it.
        recorder.flush(0.5 if recorder.failing else 10.0)

    def add_end_hook(self, hook: Callable[[Run, str], None]) -> None:
        """Call ``hook(run, status)`` just before the run ends (integrations flush device buffers here)."""
        self._on_end.append(hook)

    @contextlib.contextmanager
    def activate(self) -> Iterator[Run]:
        """Make this run the active run in the current thread or task, without ending it on exit:
        how a worker thread logs into a run started by another thread."""
        token = _active.set(_active.get() + (self,))
        try:
            yield self
        finally:
            _active.reset(token)

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


_STEP_LIMIT = 2**63


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# -- validation shared by every write (live runs and edits of stored ones) ---------------------


def param_rows(params: Mapping[str, Any]) -> tuple[tuple[tuple[str, str, int | None], ...], list[dict[str, Any]]]:
    """Params as stored: flattened, keys checked, text made storable, secrets replaced (``found``
    says where, never what), values JSON-encoded (a truncated repr with the original length when huge)."""
    if not isinstance(params, Mapping):
        raise InvalidArgumentError("params", params, "pass a dict of name -> value")
    found: list[dict[str, Any]] = []
    clean = _redact.redact_mapping(_values.safe_params(params), found=found, where="params")
    return tuple((key, *_values.encode_param(value)) for key, value in clean.items()), found


def tag_rows(tags: Mapping[str, Any]) -> tuple[tuple[tuple[str, str], ...], list[dict[str, Any]]]:
    if not isinstance(tags, Mapping):
        raise InvalidArgumentError("tags", tags, "pass a dict of name -> text")
    found: list[dict[str, Any]] = []
    clean = {_values.check_key(k, "tag key"): _values.safe_tag(v) for k, v in tags.items()}
    return tuple((k, str(v)) for k, v in _redact.redact_mapping(clean, found=found, where="tags").items()), found


def note_text(markdown: Any) -> str:
    if not isinstance(markdown, str):
        raise InvalidArgumentError("markdown", markdown, "pass the note as a str (Markdown)")
    if len(markdown) > 100_000:
        raise InvalidArgumentError("markdown", f"<{len(markdown)} characters>", "keep notes under 100,000 characters")
    return _redact.redact_text(_values.safe_text(markdown))


def run_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError("name", name, "run names are non-empty strings")
    return _values.check_key(_values.safe_text(name.strip()), "run name")


def describe_error(error: BaseException) -> dict[str, Any]:
    """The error of a failed run as stored: type, message and traceback, secret-filtered."""
    return _redact.describe_error(error)


def edit_run(backend: Backend, run_id: str, records: list[Any]) -> None:
    """Write edits of a stored run (tags, note, name). A run live in this process gets them through
    its own queue, in order with what it logs; any other run at once, in one transaction. Status,
    end time and duration are never touched."""
    for run in list(_live_runs):
        if run.id == run_id and run._store is backend and not run._ended and run._pid == os.getpid():
            recorder = run._recorder_here()
            for record in records:
                recorder.append(record)
            if not recorder.flush(10.0):
                raise StoreError(f"could not write to the store at {backend.location}: {recorder.last_error!r}")
            return
    backend.write(records)


def edit_tags(backend: Backend, run_id: str, tags: Mapping[str, Any], remove: tuple[str, ...] = ()) -> None:
    records: list[Any] = []
    rows, found = tag_rows(tags)
    if rows:
        records.append(Tags(run_id, rows))
    if found:
        import json

        previous = json.loads(backend.sections(run_id).get("redactions") or "{}").get("values", [])
        records.append(Section(run_id, "redactions", dumps({"values": _redact.describe([*previous, *found])})))
    if remove:
        records.append(RemoveTags(run_id, tuple(_values.check_key(k, "tag key") for k in remove)))
    if records:
        edit_run(backend, run_id, records)


def edit_note(backend: Backend, run_id: str, markdown: str) -> None:
    edit_run(backend, run_id, [Note(run_id, note_text(markdown))])


def edit_name(backend: Backend, run_id: str, name: str) -> None:
    edit_run(backend, run_id, [Rename(run_id, run_name(name))])


# -- starting runs ------------------------------------------------------------------------------


_named_runs = 0
#: Runs this process has started (``autotrack run`` says so when a script started none).
runs_started = 0


def _count_started() -> None:
    global runs_started
    runs_started += 1


def default_run_name() -> str | None:
    """The name ``AUTOTRACK_RUN_NAME`` (``autotrack run --name``, ``autolog(run_name=...)``) gives
    the top-level runs this process starts without a name of their own: the first gets it as it
    is, the next ``NAME-2``, ``NAME-3`` ... so each stays findable by name. None when unset."""
    global _named_runs
    base = os.environ.get("AUTOTRACK_RUN_NAME")
    if not base:
        return None
    with _lock:
        _named_runs += 1
        return base if _named_runs == 1 else f"{base}-{_named_runs}"


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
    """Start recording a run and make it the active run of this thread (or task).

    ``parent`` defaults to the active run, if any, so runs started inside another run's ``with``
    block are its children. ``resume`` reopens an ended or crashed run by id: new points append
    after its last step per key. ``activate=False`` keeps the run off the active-run stack:
    module-level shortcuts and later ``start_run`` calls do not see it (integrations use it for
    group runs).
    """
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError("name", name, "run names are strings")
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise InvalidArgumentError("experiment", experiment, "experiment names are non-empty strings")
    store = get_store()
    _lifecycle.install(_owned_open_runs, _close_recorders)
    owner = this_owner()
    if resume is not None:
        row = store.claim_run(resume, owner, row_alive)
        run = Run(store, row.id, row.name, row.experiment, row.parent_id, store.last_steps(row.id))
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
        if not name and parent_id is None:
            name = default_run_name()
        run_name_ = _values.check_key(_values.safe_text(name), "run name") if name else generate_name()
        exp = experiment or os.environ.get("AUTOTRACK_EXPERIMENT") or DEFAULT_EXPERIMENT
        problem = None
        try:
            store.initialise()
        except StoreError as exc:  # the recorder retries and warns; training goes on
            problem = exc
        # Created by the writer thread like everything else: a slow or locked disk never blocks here.
        recorder = recorder_for(store)
        recorder.append(NewRun(run_id, run_name_, exp, parent_id, _now(), owner))
        run = Run(store, run_id, run_name_, exp, parent_id)
        quarantined = getattr(store, "quarantined", None)
        if quarantined is not None:
            recorder.flag_degraded([run_id], f"the store's database was unreadable and moved to {quarantined}")
        if problem is not None:
            report_failure("opening the store", problem)
    with _lock:
        _live_runs.add(run)
        _count_started()
    if activate:
        _active.set(_active.get() + (run,))
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


def _pop_active(run: Run) -> None:
    stack = _active.get()
    if run in stack:
        _active.set(tuple(r for r in stack if r is not run))


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
    """The innermost run active in this thread (or task) and not yet ended."""
    for run in reversed(_active.get()):
        if not run._ended:
            return run
    return None


def active_runs() -> list[Run]:
    """Every run active in this thread (or task), outermost first."""
    return [run for run in _active.get() if not run._ended and run._pid == os.getpid()]


def live_runs() -> list[Run]:
    """Every run this process has open, in any thread."""
    return _owned_open_runs()


def _require_active(action: str) -> Run:
    run = active_run()
    if run is None:
        raise AutotrackError(
            f"cannot {action}: no active run. Start one with `with autotrack.start_run(): ...` "
            "or call autotrack.autolog(); in another thread, join a run with `with run.activate(): ...`."
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
    """Write everything queued in this process to the store (integrations' device buffers too)."""
    _run_flush_hooks(None)
    return all([rec.flush(timeout) for rec in all_recorders()])


# -- process lifecycle (see _lifecycle.py) -------------------------------------------------------


def _owned_open_runs() -> list[Run]:
    pid = os.getpid()
    return [run for run in list(_live_runs) if run._pid == pid and not run._ended]


def _close_recorders() -> None:
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
