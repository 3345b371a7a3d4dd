"""Framework-free capture, done for every run at its start.

``capture_at_start(run)`` (registered with ``autotrack._run.add_start_hook``) writes the sections
``hardware``, ``environment``, ``source`` (plus the ``source/git.diff`` and ``source/<script>``
artifacts) and ``seeds``, then starts the system-metrics sampler, which the run's end stops.
At the run's end, ``capture_at_end`` writes the ``imports`` section (the distributions the program
imported) and, for code outside git, stores the local modules the entry script imported
(``source/model.py``, ...) and lists them in ``source["local_modules"]``. The shapes of all
sections are in :mod:`autotrack._sections`.

A run started with ``AUTOTRACK_REPRODUCES=<run id>`` in the environment (``autotrack reproduce
--run`` sets it) gets the tag ``reproduces=<run id>``.

A child run started while its parent is open in this process (sweep trials, search candidates)
reuses its parent's sections and artifacts instead of capturing again, and gets no sampler of its
own: the parent's system metrics cover the same process.

Settings: :func:`configure`, or the environment: ``AUTOTRACK_CAPTURE=0`` turns start capture off,
``AUTOTRACK_SYSTEM_METRICS=0`` turns the sampler off, ``AUTOTRACK_SYSTEM_METRICS=<seconds>`` sets
its interval.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._errors import InvalidArgumentError
from .._patching import report_failure
from .fingerprint import fingerprint, log_data
from .seeds import disable_seed_capture, enable_seed_capture, seed_everything

if TYPE_CHECKING:
    from .._run import Run
    from .system import SystemSampler

__all__ = [
    "Settings",
    "capture_at_start",
    "configure",
    "disable_seed_capture",
    "enable_seed_capture",
    "fingerprint",
    "log_data",
    "sampler_for",
    "seed_everything",
    "settings",
]


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    #: Seconds between system-metric samples; None turns the sampler off.
    system_metrics: float | None = 5.0
    hardware: bool = True
    environment: bool = True
    packages: bool = True
    source: bool = True
    entry_script: bool = True
    #: Extra environment variable names to capture (exact names; credentials are still refused).
    env_allow: tuple[str, ...] = field(default_factory=tuple)


_settings = Settings()


def configure(
    *,
    enabled: bool = True,
    system_metrics: float | bool | None = 5.0,
    hardware: bool = True,
    environment: bool = True,
    packages: bool = True,
    source: bool = True,
    entry_script: bool = True,
    env_allow: tuple[str, ...] | list[str] = (),
) -> Settings:
    """Set what every run captures at its start (for runs started from now on in this process).

    ``system_metrics`` is the sampling interval in seconds, or False/None for no sampler.
    ``env_allow`` adds environment variable names to the allow-list. The environment variables
    ``AUTOTRACK_CAPTURE=0`` and ``AUTOTRACK_SYSTEM_METRICS`` override these settings.
    """
    global _settings
    if system_metrics is True:
        system_metrics = 5.0
    if system_metrics is False or system_metrics is None:
        interval = None
    elif isinstance(system_metrics, (int, float)) and system_metrics > 0:
        interval = float(system_metrics)
    else:
        raise InvalidArgumentError("system_metrics", system_metrics,
                                   "pass the sampling interval in seconds (> 0), or False to turn it off")
    if isinstance(env_allow, str):
        raise InvalidArgumentError("env_allow", env_allow, "pass a list of variable names, e.g. ['MY_VAR']")
    _settings = Settings(bool(enabled), interval, bool(hardware), bool(environment), bool(packages),
                         bool(source), bool(entry_script), tuple(env_allow))
    return _settings


def settings() -> Settings:
    """The settings in effect, environment overrides applied."""
    s = _settings
    if os.environ.get("AUTOTRACK_CAPTURE", "").strip().lower() in ("0", "false", "no", "off"):
        s = replace(s, enabled=False)
    env = os.environ.get("AUTOTRACK_SYSTEM_METRICS", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        s = replace(s, system_metrics=None)
    elif env:
        try:
            value = float(env)
            if value > 0:
                s = replace(s, system_metrics=value)
        except ValueError:
            pass
    return s


# -- per-run state ---------------------------------------------------------------------------------------

#: the environment variable naming the run a reproduction reruns (``autotrack reproduce --run``)
REPRODUCES_ENV = "AUTOTRACK_REPRODUCES"

_lock = threading.Lock()
_captured: weakref.WeakKeyDictionary[Run, dict[str, Any]] = weakref.WeakKeyDictionary()
_samplers: weakref.WeakKeyDictionary[Run, SystemSampler] = weakref.WeakKeyDictionary()


def sampler_for(run: Run) -> SystemSampler | None:
    """The sampler recording ``run``'s system metrics, if any (tests and benchmarks)."""
    return _samplers.get(run)


def _live_parent(run: Run) -> Run | None:
    if run.parent_id is None:
        return None
    from .. import _run

    with _run._lock:
        for other in list(_run._live_runs):
            if other.id == run.parent_id and not other.ended and other._pid == os.getpid():
                return other
    return None


def capture_at_start(run: Run) -> None:
    """Write the start-of-run sections of ``run`` and start its system-metrics sampler."""
    s = settings()
    if not s.enabled:
        return
    parent = _live_parent(run)
    inherited = _captured.get(parent) if parent is not None else None
    if inherited is not None:
        _reuse(run, inherited)
    else:
        _capture(run, s)
        run.add_end_hook(capture_at_end)
    original = os.environ.get(REPRODUCES_ENV, "").strip()
    if original:
        run.set_tag("reproduces", original)
    _write_seeds(run)
    if s.system_metrics and (parent is None or sampler_for(parent) is None):
        _start_sampler(run, s.system_metrics)


def _capture(run: Run, s: Settings) -> None:
    record: dict[str, Any] = {"sections": {}, "artifacts": []}

    def section(name: str, build: Any) -> None:
        try:
            data = build()
        except Exception as exc:  # noqa: BLE001 - one failing part never stops the others
            report_failure(f"capture of the {name} section", exc)
            return
        run.set_info(name, data)
        record["sections"][name] = data

    if s.hardware:
        from .hardware import capture_hardware

        section("hardware", capture_hardware)
    if s.environment:
        from .environment import capture_environment

        section("environment", lambda: capture_environment(s.packages, s.env_allow))
    if s.source:
        from .source import capture_source

        texts: dict[str, str] = {}

        def build_source() -> dict[str, Any]:
            data, found = capture_source(include_script=s.entry_script)
            texts.update(found)
            return data

        section("source", build_source)
        for name, text in texts.items():
            try:
                payload = text.encode("utf-8")
                kind_meta = {"captured": "source"}
                sha = run.log_bytes(payload, name, "file", metadata=kind_meta)
                record["artifacts"].append((name, sha, len(payload), kind_meta))
            except Exception as exc:  # noqa: BLE001
                report_failure(f"storing the {name} artifact", exc)
    with _lock:
        _captured[run] = record


def capture_at_end(run: Run, status: str) -> None:
    """Write the ``imports`` section and, outside git, the local modules of the entry script."""
    s = settings()
    with _lock:
        record = _captured.get(run)
    if s.environment and s.packages:
        try:
            from .environment import imported_section

            run.set_info("imports", imported_section())
        except Exception as exc:  # noqa: BLE001
            report_failure("capture of the imports section", exc)
    source = record["sections"].get("source") if record else None
    if not s.source or not isinstance(source, dict):
        return
    git = source.get("git") if isinstance(source.get("git"), dict) else {}
    script = source.get("script")
    if git.get("available") or not script:
        return  # in git the commit holds the modules; no entry script: no folder to look in
    try:
        from pathlib import Path

        from .source import local_modules

        stored = {name for name, *_ in record["artifacts"]} if record else set()
        entries, texts = local_modules(Path(script), stored)
        for name, text in texts.items():
            payload = text.encode("utf-8")
            meta = {"captured": "source"}
            sha = run.log_bytes(payload, name, "file", metadata=meta)
            if record is not None:
                record["artifacts"].append((name, sha, len(payload), meta))
        if entries:
            source = {**source, "local_modules": entries}
            run.set_info("source", source)
            if record is not None:
                record["sections"]["source"] = source
    except Exception as exc:  # noqa: BLE001
        report_failure("storing the local modules of the entry script", exc)


def _reuse(run: Run, record: dict[str, Any]) -> None:
    """Give a child run its parent's sections and artifact records (same process, same moment)."""
    from .._values import jsonable
    from ..store import Section
    from ..store.sqlite import dumps

    # encoded once per parent, not once per child (a sweep starts hundreds of children)
    texts = record.setdefault("encoded", {})
    for name, data in record["sections"].items():
        cached = texts.get(name)
        if cached is None or cached[0] is not data:
            cached = texts[name] = (data, dumps(jsonable(data)))
        run._append(Section(run.id, name, cached[1]))
    for name, sha, size, meta in record["artifacts"]:
        run._record_artifact(name, "file", sha, size, None, None, True, meta)
    with _lock:
        _captured[run] = record


def _write_seeds(run: Run) -> None:
    from .seeds import has_seeds, seeds_section

    if has_seeds():
        run.set_info("seeds", seeds_section())


def _start_sampler(run: Run, interval: float) -> None:
    from .system import SystemSampler

    sampler = SystemSampler(run, interval)
    with _lock:
        _samplers[run] = sampler
    run.add_end_hook(_stop_sampler)
    sampler.start()


def _stop_sampler(run: Run, status: str) -> None:
    with _lock:
        sampler = _samplers.pop(run, None)  # the sampler refers to the run: drop it to free both
    if sampler is not None:
        sampler.stop()


def _register() -> None:
    from .._run import add_start_hook

    add_start_hook(capture_at_start)


_register()
