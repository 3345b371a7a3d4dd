"""The ``seeds`` section: which seeds the program set, and ``seed_everything``.

With seed capture on (``autotrack.autolog()`` turns it on), calls to ``random.seed``,
``numpy.random.seed``, ``numpy.random.default_rng`` -- and the seeders of frameworks whose
integration registers a seed hook (``seeds=`` of ``register_integration``; torch's
``manual_seed`` and Lightning's ``seed_everything`` this way) -- are recorded: into every open run of this process, and remembered for runs
started later. The section reads::

    {"random": 42, "numpy": 42, "torch": 42, "lightning": 42,     # the last seed of each
     "numpy_default_rng": [7],                                     # seeds of generators made
     "calls": [{"function": "random.seed", "seed": 42, "time": ...}, ...]}

Modules not yet imported when capture is enabled are patched when the program imports them.

Only calls made by the user's code are recorded (each call records its ``caller``, ``file:line``):
libraries seeding their own generators (scipy.stats builds its docstrings with
``numpy.random.default_rng``) are not the program's seeds. A library's own seeding entry point
(Lightning's ``seed_everything``) counts when the user's code calls it; the seeders it calls in turn
do not. Seeds that are objects (a numpy ``Generator`` passed to ``default_rng``) are stored as a
stable description, never as a repr with a memory address.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .._imports import cancel, when_imported
from .._patching import being_recorded, patch, recording, report_failure, unpatch

INTEGRATION = "seeds"
MAX_CALLS = 100

_lock = threading.RLock()
_state: dict[str, Any] = {"calls": []}
_enabled = False


# -- recording ----------------------------------------------------------------------------------


def _jsonable_seed(seed: Any) -> Any:
    if seed is None or isinstance(seed, (bool, int, float, str)):
        return seed
    if isinstance(seed, (bytes, bytearray)):
        return seed.hex()
    item = getattr(seed, "item", None)
    if callable(item):
        try:
            return item()
        except Exception:  # noqa: BLE001 - arrays of seeds: described below
            pass
    # a Generator -> its BitGenerator -> its SeedSequence, whose entropy is the seed
    seq = seed if hasattr(seed, "entropy") else getattr(getattr(seed, "bit_generator", seed), "seed_seq", None)
    entropy = getattr(seq, "entropy", None)
    if isinstance(entropy, int):
        return entropy
    from .._describe import stable_description

    return stable_description(seed)


def user_caller(skip: int = 1) -> str | None:
    """``file:line`` of the nearest frame outside autotrack, when it is the user's code; None
    when that frame belongs to the interpreter, an installed package or a frozen module."""
    from pathlib import Path

    from .source import is_installed_code

    own = str(Path(__file__).resolve().parents[1]) + os.sep
    frame = sys._getframe(skip)
    while frame is not None:
        file = frame.f_code.co_filename
        if not (file.startswith(own) or file.startswith("<frozen")):
            break
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    file = frame.f_code.co_filename
    if file.startswith("<"):  # <string>, <stdin>: code typed or exec'ed by the user
        return f"{file}:{frame.f_lineno}"
    try:
        if is_installed_code(Path(file)):
            return None
    except (OSError, ValueError):
        return None
    return f"{file}:{frame.f_lineno}"


def record_seed(source: str, function: str, seed: Any, caller: str | None = None) -> None:
    """Remember that ``function`` seeded ``source`` with ``seed`` and update the open runs."""
    value = _jsonable_seed(seed)
    with _lock:
        if source == "numpy_default_rng":
            seen = _state.setdefault(source, [])
            if value not in seen:
                seen.append(value)
                del seen[:-MAX_CALLS]
        else:
            _state[source] = value
        calls = _state["calls"]
        call = {"function": function, "seed": value, "time": time.time()}
        if caller:
            call["caller"] = caller
        calls.append(call)
        del calls[:-MAX_CALLS]
        section = seeds_section()
    _write_to_open_runs(section)


def seeds_section() -> dict[str, Any]:
    """The seeds recorded in this process so far (a copy)."""
    with _lock:
        out = {k: (list(v) if isinstance(v, list) else v) for k, v in _state.items()}
        out["calls"] = [dict(c) for c in _state["calls"]]
        return out


def has_seeds() -> bool:
    with _lock:
        return len(_state) > 1 or bool(_state["calls"])


def reset() -> None:
    """Forget the seeds recorded so far (tests)."""
    with _lock:
        _state.clear()
        _state["calls"] = []


def _write_to_open_runs(section: dict[str, Any]) -> None:
    from .. import _run

    runs = _run.active_runs()
    for run in runs:
        try:
            run.set_info("seeds", section)
        except Exception as exc:  # noqa: BLE001 - e.g. the run ended in between
            if not run.ended:
                report_failure("recording a seed", exc)


# -- seed_everything ----------------------------------------------------------------------------------


def seed_everything(seed: int, *, workers: bool = False) -> int:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every GPU), set
    ``PYTHONHASHSEED`` for child processes, and record the seed in the ``seeds`` section.

    numpy and torch are seeded when installed. ``workers=True`` also sets ``PL_SEED_WORKERS=1``
    so Lightning seeds its data-loader workers. Returns ``seed``.
    """
    from .._errors import InvalidArgumentError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InvalidArgumentError("seed", seed, "pass an int between 0 and 2**32 - 1, e.g. seed_everything(42)")
    import importlib

    with recording(INTEGRATION):  # our own calls to patched seeders are not separate records
        random.seed(seed)
        os.environ["PYTHONHASHSEED"] = str(seed)
        os.environ["PL_GLOBAL_SEED"] = str(seed)
        if workers:
            os.environ["PL_SEED_WORKERS"] = "1"
        seeded = ["random"]
        for name in ("numpy", "torch"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue  # not installed (or broken): nothing of it to seed
            if name == "numpy":
                module.random.seed(seed)
            else:
                module.manual_seed(seed)  # also seeds every CUDA device (lazily)
            seeded.append(name)
    with _lock:
        _state["seed_everything"] = seed
        _state["seeded"] = seeded
    record_seed("autotrack", "autotrack.seed_everything", seed)
    return seed


# -- patches ----------------------------------------------------------------------------------------------


def seed_recorder(source: str, function: str, seed_from_result: bool = False) -> Callable[..., Any]:
    """A ``patch`` replacement recording the seed a seeder was called with (or returned) as
    ``source``; integrations' seed hooks patch their framework's seeders with it."""

    def replacement(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if being_recorded() == INTEGRATION:
            return result  # a seeder called by seed_everything: recorded as part of that call
        if seed_from_result:
            seed = result
        elif args:
            seed = args[0]
        else:
            seed = kwargs.get("seed", kwargs.get("a"))
        if source == "numpy_default_rng" and seed is None:
            return result  # an unseeded generator is not a seed
        caller = user_caller()
        if caller is None:
            return result  # a library seeding its own generator, not the program's seed
        record_seed(source, function, seed, caller)
        return result

    return replacement


def patch_seeder(owner: Any, name: str, source: str, function: str, *, seed_from_result: bool = False) -> None:
    """Record every call of ``owner.name`` as a seed of ``source`` (undone by disable_seed_capture)."""
    patch(INTEGRATION, owner, name, seed_recorder(source, function, seed_from_result), inside_recording=True)


def _patch_module(name: str) -> None:
    module = sys.modules.get(name)
    if module is None:
        return
    if name == "random":
        patch_seeder(module, "seed", "random", "random.seed")
    elif name == "numpy.random":
        patch_seeder(module, "seed", "numpy", "numpy.random.seed")
        patch_seeder(module, "default_rng", "numpy_default_rng", "numpy.random.default_rng")


_WATCHED = ("random", "numpy.random")
_hooks: list[tuple[str, Callable[[Any], None]]] = []  # (module, callback) of integrations' seed hooks


def _on_import(module: Any) -> None:
    if _enabled:
        _patch_module(module.__name__)


def _patch_loaded() -> None:
    for name in _WATCHED:
        if name in sys.modules:
            try:
                _patch_module(name)
            except Exception as exc:  # noqa: BLE001
                report_failure(f"seed capture of {name}", exc)


def _integration_hook(name: str, target: Any) -> Callable[[Any], None]:
    def install(module: Any) -> None:
        if not _enabled:
            return
        from .._integrations import resolve

        try:
            resolve(target)(module)
        except Exception as exc:  # noqa: BLE001 - one framework's seeders must not stop the rest
            report_failure(f"seed capture of {name}", exc)

    return install


def _watch_integrations() -> None:
    from .._integrations import integrations

    if _hooks:
        return
    for integration in integrations():
        if integration.seeds is None:
            continue
        callback = _integration_hook(integration.name, integration.seeds)
        for module in integration.modules:
            _hooks.append((module, callback))
    for module, callback in list(_hooks):
        when_imported(module, callback)


def enable_seed_capture() -> None:
    """Record seeds set through the patched functions (``autotrack.autolog()`` calls this).
    Modules imported later are patched right after their import."""
    global _enabled
    with _lock:
        _enabled = True
        _patch_loaded()
        for name in _WATCHED:
            if name not in sys.modules:
                when_imported(name, _on_import)
        try:
            _watch_integrations()
        except Exception as exc:  # noqa: BLE001
            report_failure("seed capture of the integrations", exc)


def disable_seed_capture() -> None:
    """Undo every seed patch and stop watching imports."""
    global _enabled
    with _lock:
        _enabled = False
        unpatch(INTEGRATION)
        for name in _WATCHED:
            cancel(name, _on_import)
        for module, callback in _hooks:
            cancel(module, callback)
        _hooks.clear()


def seed_capture_enabled() -> bool:
    return _enabled
