"""The one surface integrations are written against (built-in and third-party alike).

This is the only module under ``autotrack/integrations`` that imports private core modules; every
integration imports from here and from the public ``autotrack`` package, nothing else. What it
offers:

Registering
    ``register_integration(name, modules=("keras",), autolog="pkg.mod:autolog", seeds=..., fingerprint=...)``
    -- ``autotrack.autolog()`` turns the integration on when one of ``modules`` is imported and
    accepts ``name`` as a switch (``autolog(keras=False)``, ``exclude=["keras"]``). Third-party
    packages register through the entry-point group ``autotrack.integrations``: the entry point
    names a function that calls :func:`register_integration` (or returns an :class:`Integration`,
    or a dict of its arguments); loading it must not import the framework.

The autolog contract
    ``def autolog(*, disable=False, log_models=True, log_every_n_steps=None, grad_norm_every=50)``
    -- keyword-only, the same for every integration; ``autotrack.autolog()`` always passes all of
    :data:`AUTOLOG_OPTIONS` (an integration ignores what does not apply to it).
    ``disable=True`` undoes the integration's patches; it is also called when the user switches
    the integration off, so an integration may keep a lower-level one out of its framework's
    trainings (Lightning keeps the plain-PyTorch hooks out of ``Trainer.fit``).

Runs
    :class:`RunSlot` -- the constructor shape every integration shares: an optional existing run,
    else one created lazily (parent = the caller's active run, tag ``autotrack.integration``),
    ended only if the slot created it. :func:`run_ref` / :func:`attach_run` carry a run into a
    spawned process (``ddp_spawn``) without making that process its owner. Metrics, params, tags,
    sections and artifacts go through the public :class:`autotrack.Run` methods;
    :func:`log_artifact_reference` (``copy=False``), :func:`record_missing_artifact`,
    ``run.update_artifact`` for artifact metadata. :func:`host_training` / :func:`hosted_run`: a
    sweep's trial run taken over by the training inside it (one trial, one record). A top-level run started without a name gets
    the user's ``AUTOTRACK_RUN_NAME`` (``autotrack run --name``); an integration that picks a
    name of its own asks :func:`default_run_name` first.

The model registry
    :func:`register_model_loader` -- ``register_model_loader(framework, "pkg.mod:load", formats=(...),
    suffixes={".ext": format})``: how ``autotrack.load_model`` reads a registered version of
    ``framework`` (``load(version, data, *, model, trusted, allow_pickle)``; never unpickle unless
    ``allow_pickle=True``). The core names no framework: every loader, the built-in ones too, comes
    from here. :func:`check_model_name` validates a ``register_as``-style argument early.

Device-side values
    :func:`register_buffer` -- an object with ``run``, ``flush()`` and ``_oldest`` (the time its
    oldest value has waited, or None) is flushed by a background thread after :data:`MAX_AGE_S`
    and by ``run.flush()`` / ``autotrack.flush()``. (torch's ``ScalarBuffer`` is built on it.)

Data and seeds
    :func:`fingerprint`, :func:`log_data`, :func:`register_fingerprinter` and the hashing helpers
    (:class:`Hasher`, :func:`sample_offsets`, :func:`hash_buffer`, :func:`fingerprint_sequence`);
    :func:`patch_seeder` / :func:`seed_recorder` for an integration's seed hook.

Imports
    :func:`when_imported` / :func:`cancel_when_imported` -- run a callback once a module has been
    imported (now, if it is already), never importing it; :func:`when_submodules_imported` /
    :func:`cancel_submodules` -- told of each submodule of a package as it finishes executing
    (patch a framework's classes as they are defined instead of importing all of them).

Model signatures and input examples
    :func:`model_io` -- the metadata every stored model (artifact of kind ``model``) gets:
    ``signature`` (input schema of the training data, output schema of a prediction on its first
    rows) and ``input_example`` (those rows as JSON, secret filter applied, at most 64 KiB; none
    under ``autotrack.autolog(log_input_examples=False)``). Pass it to ``log_bytes`` /
    ``log_artifact`` as ``metadata``; it never raises (our failures: :func:`report_failure`).
    :func:`data_schema`, :func:`columns_schema` (a table that is not a DataFrame, e.g. an XGBoost
    ``DMatrix``) and :func:`first_rows` are its parts. See :mod:`autotrack._signature`.

Patching and "already recorded"
    :func:`patch` / :func:`unpatch` with the safety policy (the framework's exceptions pass through
    untouched; our failures become one warning per place, :func:`report_failure`; under
    ``AUTOTRACK_STRICT=1`` they raise; every patch can be undone); :func:`guarded` for callback
    hooks; :class:`recording` / :func:`being_recorded` -- one context-local "this call is already
    being recorded" flag (a ``ContextVar``: threads and tasks each have their own).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import autotrack
from autotrack import Run

# -- the core, in one place ---------------------------------------------------------------------
from autotrack._capture.fingerprint import (
    BLOCK_BYTES,
    SAMPLE_ABOVE_BYTES,
    SAMPLE_BLOCKS,
    Hasher,
    fingerprint,
    hash_buffer,
    qualname,
    register_fingerprinter,
    safe_len,
    sample_offsets,
)
from autotrack._capture.fingerprint import log_data as _store_data_entry
from autotrack._capture.fingerprint import sequence as fingerprint_sequence
from autotrack._capture.seeds import patch_seeder, record_seed, seed_recorder
from autotrack._errors import InvalidArgumentError, MissingDependencyError
from autotrack._imports import cancel as cancel_when_imported
from autotrack._imports import (
    cancel_submodules,
    when_imported,
    when_submodules_imported,
)
from autotrack._integrations import (
    AUTOLOG_OPTIONS,
    Integration,
    integrations,
    register_integration,
    unregister_integration,
)
from autotrack._patching import (
    being_recorded,
    disabled,
    guarded,
    patch,
    patched,
    recording,
    report_failure,
    strict,
    suspended,
    unpatch,
)
from autotrack._redact import redact_url
from autotrack._registry import ModelLoader, check_model_name, register_model_loader
from autotrack._run import add_flush_hook, default_run_name
from autotrack._signature import EXAMPLE_ROWS, columns_schema
from autotrack._signature import head as first_rows
from autotrack._signature import model_io as _model_io
from autotrack._signature import schema as data_schema

__all__ = [
    "AUTOLOG_OPTIONS",
    "BLOCK_BYTES",
    "EXAMPLE_ROWS",
    "MAX_AGE_S",
    "SAMPLE_ABOVE_BYTES",
    "SAMPLE_BLOCKS",
    "Hasher",
    "Integration",
    "InvalidArgumentError",
    "MissingDependencyError",
    "ModelLoader",
    "Run",
    "RunRef",
    "RunSlot",
    "attach_run",
    "autolog_options",
    "autolog_setting",
    "autolog_tags",
    "being_recorded",
    "cancel_submodules",
    "cancel_when_imported",
    "check_model_name",
    "columns_schema",
    "data_schema",
    "default_run_name",
    "disabled",
    "fingerprint",
    "fingerprint_sequence",
    "first_rows",
    "guarded",
    "hash_buffer",
    "host_training",
    "hosted_run",
    "integration_enabled",
    "integrations",
    "log_artifact_reference",
    "log_data",
    "model_io",
    "patch",
    "patch_seeder",
    "patched",
    "qualname",
    "record_missing_artifact",
    "record_seed",
    "recording",
    "redact_url",
    "register_buffer",
    "register_fingerprinter",
    "register_integration",
    "register_model_loader",
    "report_failure",
    "run_ref",
    "safe_len",
    "sample_offsets",
    "seed_recorder",
    "start_system_sampler",
    "store_lock",
    "strict",
    "suspended",
    "unpatch",
    "unregister_integration",
    "warn_once",
    "when_imported",
    "when_submodules_imported",
    "withdraw_training",
]


INTEGRATION_TAG = "autotrack.integration"


def autolog_options() -> dict[str, Any]:
    """The options of the last ``autotrack.autolog()`` call (empty when it was not called)."""
    from autotrack import _autolog

    return dict(_autolog._options)


def autolog_setting(name: str, default: Any = True) -> Any:
    """One option of the last ``autotrack.autolog()`` call (``default`` when it was not given, or
    autolog was not called): ``post_training_metrics``, ``log_input_examples``, ``log_datasets``..."""
    from autotrack import _autolog

    return _autolog._options.get(name, default)


def integration_enabled(name: str) -> bool:
    """Whether ``autotrack.autolog()`` has switched the integration ``name`` on (its framework is
    imported and its ``autolog`` ran)."""
    from autotrack import _autolog

    return name in _autolog.enabled_frameworks()


def autolog_tags() -> dict[str, Any]:
    """``autotrack.autolog(tags=...)``: the tags every run an integration starts gets (an
    integration's own tags and the user's callback tags are applied after them and win)."""
    from autotrack import _autolog

    return dict(_autolog._options.get("tags") or {})


def log_data(run: Run, name: str, obj: Any, **extra: Any) -> dict[str, Any] | None:
    """Fingerprint ``obj`` into ``run``'s ``data`` section as ``name`` (see
    :func:`autotrack._capture.fingerprint.log_data`); nothing, and None, while
    ``autotrack.autolog(log_datasets=False)`` is on."""
    if not autolog_setting("log_datasets"):
        return None
    return _store_data_entry(run, name, obj, **extra)


def model_io(inputs: Any, predict: Any = None, *, outputs: Any = None, log_example: bool | None = None,
             input_schema: Mapping[str, Any] | None = None, example_rows: Any = None,
             where: str = "model signature") -> dict[str, Any]:
    """``{"signature": ..., "input_example": ...}`` for a stored model's metadata (see
    :func:`autotrack._signature.model_io`): ``inputs`` is the training data (or a batch of it),
    ``predict`` is called once on its first rows inside ``recording(...)`` (or pass the
    ``outputs`` the model already produced). ``log_example`` defaults to
    ``autotrack.autolog(log_input_examples=...)``. Never raises: a failure of ours is reported
    (:func:`report_failure`, ``where``) and the model is stored without a signature (``{}``)."""
    if log_example is None:
        log_example = bool(autolog_setting("log_input_examples"))
    try:
        with recording("autotrack.signature"):
            return _model_io(inputs, predict, outputs=outputs, log_example=log_example,
                             input_schema=dict(input_schema) if input_schema is not None else None,
                             example_rows=example_rows)
    except Exception as exc:  # noqa: BLE001 - a signature never costs the user the model file
        report_failure(where, exc)
        return {}


# -- runs ---------------------------------------------------------------------------------------


class RunSlot:
    """The run an integration writes to: ``run`` when given (never ended here), else one started
    on first use with ``name``/``experiment``/``tags`` plus ``autotrack.integration=<integration>``
    (its parent is the run active in the caller's context), and ended by :meth:`end`."""

    def __init__(self, integration: str, run: Run | None = None, *, name: str | None = None,
                 experiment: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError("run", run, "pass a Run from autotrack.start_run(), or None to start one")
        self.integration = integration
        self.run = run
        self.created = False
        self.kwargs: dict[str, Any] = {"name": name, "experiment": experiment, "tags": dict(tags) if tags else None}
        #: The run is a sweep's trial that this slot's training took over (:func:`hosted_run`).
        self.hosted = False

    def get(self, *, parent: Run | str | None = None) -> Run:
        """The run, started now if there is none yet (or the one this slot created or took over
        has ended). A sweep's trial waiting for its training (:func:`hosted_run`) is taken over
        instead of starting a child of it."""
        if self.run is None or ((self.created or self.hosted) and self.run.ended):
            tags = {**autolog_tags(), INTEGRATION_TAG: self.integration, **(self.kwargs["tags"] or {})}
            hosted = hosted_run(parent)
            if hosted is not None:
                self.run, self.created, self.hosted = hosted, False, True
                hosted.set_tags({**autolog_tags(), "autotrack.training": self.integration, **(self.kwargs["tags"] or {})})
                return hosted
            self.run = autotrack.start_run(self.kwargs["name"], experiment=self.kwargs["experiment"], tags=tags,
                                           parent=parent)
            self.created, self.hosted = True, False
        return self.run

    def open(self, *, parent: Run | str | None = None) -> Run:
        """At the start of a training call: the given run (an ended one is a clear error), else a
        run of its own for this call (the one the previous call started has ended by now)."""
        if self.run is not None and not self.created and not self.hosted and self.run.ended:
            raise InvalidArgumentError("run", self.run,
                                       "this run has ended; pass an open run, or None to let the callback start one")
        return self.get(parent=parent)

    @property
    def given(self) -> Run | None:
        """The run the user passed in, if any (never ended here)."""
        return None if self.created or self.hosted else self.run

    def __getstate__(self) -> dict[str, Any]:
        """A pickled or copied slot (sklearn clones, worker processes) holds no live run: it starts
        its own on first use."""
        return {**self.__dict__, "run": None, "created": False, "hosted": False}

    def end(self, status: str = "finished", error: BaseException | None = None) -> None:
        """End the run if this slot created it; else only flush what was logged to it."""
        run = self.run
        if run is None or run.ended:
            return
        if self.created:
            run.end(status, error=error)  # type: ignore[arg-type]
        else:
            run.flush()


def store_lock(name: str) -> Any:
    """``with store_lock(name):`` -- an exclusive lock called ``name`` on the current store, held
    across processes and hosts that share it (a file lock in a local store, an advisory lock on
    PostgreSQL); for what several workers must do once (a sweep's parent run)."""
    return autotrack.get_store().copy_lock(name)


_hosts: set[str] = set()
_hosts_lock = threading.Lock()


def host_training(run: Run) -> None:
    """Offer ``run`` (a sweep's trial, active in this context) to the next training started while
    it is the active run: that training writes into it -- loss curves, model, checkpoints -- so
    one trial is one complete record, instead of making a child run. Taken once; a second
    training in the same trial is a child of it as usual."""
    with _hosts_lock:
        _hosts.add(run.id)


def withdraw_training(run: Run) -> None:
    """Withdraw the offer of :func:`host_training` (the trial ended with no training taking it)."""
    with _hosts_lock:
        _hosts.discard(run.id)


def hosted_run(parent: Run | str | None = None) -> Run | None:
    """The active run, taken now, when a sweep offered it (:func:`host_training`) and no training
    has taken it yet; else None. An integration that would start a run (under ``parent``, when it
    names one: then only if that is the offered run) asks this first, and then neither ends the
    run it got nor treats it as the user's (the sweep ends it)."""
    active = autotrack.active_run()
    if active is None or parent not in (None, active, active.id):
        return None
    with _hosts_lock:
        if active.id not in _hosts:
            return None
        _hosts.discard(active.id)
    return active


@dataclass(frozen=True)
class RunRef:
    """What another process needs to write into a run (picklable): ``attach_run(ref)``."""

    id: str
    store: str
    name: str
    experiment: str
    parent_id: str | None


def run_ref(run: Run | None) -> RunRef | None:
    if run is None or run.ended:
        return None
    # the store's location, never a password: a team-store URL is reopened with PGPASSWORD or ~/.pgpass
    return RunRef(run.id, run.store.location, run.name, run.experiment, run.parent_id)


def attach_run(ref: RunRef) -> Run:
    """In another process (a spawned DDP rank): a handle writing into the run ``ref`` names. This
    process does not own it: it is not on the active-run stack and its exit does not end it."""
    from autotrack import _run

    return _run.Run(_run.store_at(ref.store), ref.id, ref.name, ref.experiment, ref.parent_id)


def log_artifact_reference(run: Run, path: str, name: str, kind: str, *, step: int | None = None,
                           metadata: Mapping[str, Any] | None = None) -> str:
    """Record a file by reference (path, sha256, size; not copied into the store)."""
    return run.log_artifact(path, name, kind, step=step, metadata=metadata, copy=False)


def record_missing_artifact(run: Run, name: str, kind: str, path: str, *, step: int | None = None,
                            metadata: Mapping[str, Any] | None = None) -> None:
    """Record an artifact whose file was deleted before it could be hashed: kept with its path,
    no sha256, marked deleted."""
    run._record_artifact(name, kind, None, None, step, os.path.abspath(path), False,  # type: ignore[arg-type]
                         {**(metadata or {}), "deleted_before_hashing": True})
    run.update_artifact(name, deleted=True)


# -- buffers of device-side values --------------------------------------------------------------

#: Longest time a value waits in a registered buffer before the background thread hands it to
#: its run: the recorder's crash-safety promise holds for batched values too.
MAX_AGE_S = 0.1


class _Buffers:
    """Every live buffer: flushed by one daemon thread once its oldest value is MAX_AGE_S old, and
    by ``run.flush()`` / ``autotrack.flush()`` (a core flush hook)."""

    def __init__(self) -> None:
        self.items: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.hooked = False

    def register(self, item: Any) -> None:
        with self.lock:
            self.items.add(item)
            if not self.hooked:
                add_flush_hook(self.flush_for)
                self.hooked = True
            if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._loop, name="autotrack-device-buffers", daemon=True)
                self.thread.start()

    def flush_for(self, run: Run | None) -> None:
        for item in list(self.items):
            if run is None or item.run is run or getattr(item.run, "id", None) == run.id:
                item.flush()

    def _loop(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.time()
            for item in list(self.items):
                oldest = item._oldest
                if oldest is not None and now - oldest >= MAX_AGE_S:
                    try:
                        item.flush()
                    except Exception as exc:  # noqa: BLE001 - a background thread cannot raise to anyone
                        if not item.run.ended:
                            try:
                                report_failure("flushing buffered metrics", exc)
                            except Exception:  # noqa: BLE001, S110 - strict mode: keep the thread alive
                                pass


_buffers = _Buffers()


def register_buffer(item: Any) -> None:
    """Flush ``item`` (``run``, ``flush()``, ``_oldest``) in the background and on every flush."""
    _buffers.register(item)


# -- system metrics on other ranks ---------------------------------------------------------------


def start_system_sampler(run: Any) -> Any:
    """Start sampling system metrics into ``run`` (any object with ``id``, ``ended``, ``step`` and
    ``log_metrics``) at the configured interval; returns the sampler (``.stop()``) or None when
    sampling is off."""
    from autotrack._capture import settings
    from autotrack._capture.system import SystemSampler

    config = settings()
    if not config.enabled or not config.system_metrics:
        return None
    sampler = SystemSampler(run, config.system_metrics)
    sampler.start()
    return sampler


# -- warnings that are not failures ------------------------------------------------------------

_warned: set[str] = set()


def warn_once(where: str, message: str) -> None:
    """Warn ``message`` once per ``where`` (e.g. a key collision), never raising."""
    if where in _warned:
        return
    _warned.add(where)
    warnings.warn(f"autotrack: {message}", UserWarning, stacklevel=3)
