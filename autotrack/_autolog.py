"""``autotrack.autolog()``: turn on every installed framework's autologging with one line.

Frameworks the script has already imported are patched at once; the others when (and only if)
the script imports them, through a post-import hook on ``sys.meta_path``. autotrack never imports
a framework the script does not.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from ._errors import InvalidArgumentError
from ._patching import patch, report_failure, unpatch

#: framework switch -> (modules whose import triggers it, integration module)
FRAMEWORKS: dict[str, tuple[tuple[str, ...], str]] = {
    "pytorch": (("torch",), "autotrack.integrations.torch"),
    "lightning": (("lightning", "pytorch_lightning"), "autotrack.integrations.lightning"),
    "sklearn": (("sklearn",), "autotrack.integrations.sklearn"),
    "xgboost": (("xgboost",), "autotrack.integrations.xgboost"),
}

_options: dict[str, Any] = {}
_enabled: set[str] = set()
_lock = threading.RLock()


def autolog(
    *,
    disable: bool = False,
    pytorch: bool = True,
    lightning: bool = True,
    sklearn: bool = True,
    xgboost: bool = True,
    seeds: bool = True,
    log_models: bool = True,
    system_metrics: bool | float = True,
    grad_norm_every: int = 50,
    experiment: str | None = None,
) -> None:
    """Record every training in this process with no other change to the code.

    Args:
        disable: undo every patch autolog made (and stop watching imports).
        pytorch, lightning, sklearn, xgboost: switch one framework off.
        seeds: record seeds set through ``random``, numpy, torch and Lightning.
        log_models: store fitted models / final weights as artifacts.
        system_metrics: sample machine metrics (True: every 5 s; a number: that interval; False: off).
        grad_norm_every: per-layer gradient norms every N optimizer steps (the global norm is
            recorded every step).
        experiment: the experiment autologged runs belong to.

    ``AUTOTRACK_DISABLE=1`` in the environment turns it all off.
    """
    if disable:
        _disable_all()
        return
    if os.environ.get("AUTOTRACK_DISABLE") == "1":
        return
    if not isinstance(grad_norm_every, int) or isinstance(grad_norm_every, bool) or grad_norm_every < 1:
        raise InvalidArgumentError("grad_norm_every", grad_norm_every, "pass a positive number of optimizer steps, e.g. 50")
    if not (isinstance(system_metrics, bool) or (isinstance(system_metrics, (int, float)) and system_metrics > 0)):
        raise InvalidArgumentError("system_metrics", system_metrics, "pass True, False, or an interval in seconds")
    if experiment is not None:
        os.environ["AUTOTRACK_EXPERIMENT"] = experiment
    switches = {"pytorch": pytorch, "lightning": lightning, "sklearn": sklearn, "xgboost": xgboost}
    with _lock:
        _options.clear()
        _options.update(log_models=log_models, grad_norm_every=grad_norm_every)
        _configure_capture(system_metrics, seeds)
        _record_script_arguments()
        for framework in FRAMEWORKS:
            if not switches.get(framework, True):
                _disable(framework)
                continue
            modules, _ = FRAMEWORKS[framework]
            if any(m in sys.modules for m in modules):
                _enable(framework)
            else:
                _watch(modules, framework)


def enabled_frameworks() -> set[str]:
    return set(_enabled)


def _configure_capture(system_metrics: bool | float, seeds: bool) -> None:
    try:
        from . import _capture
    except ImportError:
        return
    interval = 5.0 if system_metrics is True else (system_metrics or None)
    try:
        _capture.configure(system_metrics=interval)
        if seeds:
            _capture.enable_seed_capture()
    except Exception as exc:  # noqa: BLE001 - capture settings must not stop autolog
        report_failure("autolog capture settings", exc)


_in_progress: set[str] = set()


def _enable(framework: str) -> None:
    with _lock:
        if framework in _enabled or framework in _in_progress:
            return  # also: an integration importing its own framework while being enabled
        _in_progress.add(framework)
        _, module_name = FRAMEWORKS[framework]
        try:
            module = importlib.import_module(module_name)
            module.autolog(**_supported(module.autolog, _options))
        except Exception as exc:  # noqa: BLE001 - one framework's failure must not stop the others
            report_failure(f"autolog for {framework}", exc)
            return
        finally:
            _in_progress.discard(framework)
        _enabled.add(framework)


def _supported(fn: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def _disable(framework: str) -> None:
    with _lock:
        _unwatch(framework)
        if framework not in _enabled:
            return
        _, module_name = FRAMEWORKS[framework]
        module = sys.modules.get(module_name)
        try:
            if module is not None:
                module.autolog(disable=True)
        finally:
            unpatch(framework)
            _enabled.discard(framework)


def _disable_all() -> None:
    for framework in FRAMEWORKS:
        _disable(framework)
    unpatch("script")
    _script_params.clear()
    try:
        from . import _capture

        _capture.disable_seed_capture()
    except ImportError:
        pass


# -- argparse results as params ------------------------------------------------------------------

_script_params: dict[str, Any] = {}


def _record_script_arguments() -> None:
    """Parsed command-line arguments become params of the runs autolog records."""
    import argparse

    from ._run import add_start_hook

    patch("script", argparse.ArgumentParser, "parse_known_args", _parse_known_args)
    add_start_hook(_apply_script_params)


def _parse_known_args(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    namespace, extras = original(self, *args, **kwargs)
    params = {k: v for k, v in vars(namespace).items() if not k.startswith("_")}
    _script_params.update(params)
    from ._run import active_run

    run = active_run()
    if run is not None and params:
        run.log_params(params)
    return namespace, extras


def _apply_script_params(run: Any) -> None:
    if _script_params and run.parent_id is None:
        run.log_params(dict(_script_params))


# -- the post-import hook ---------------------------------------------------------------------

_watched: dict[str, str] = {}  # module name -> framework


def _watch(modules: Sequence[str], framework: str) -> None:
    for name in modules:
        _watched[name] = framework
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _unwatch(framework: str) -> None:
    for name in [n for n, f in _watched.items() if f == framework]:
        del _watched[name]
    if not _watched and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the real loader of a watched module so that, once the
    module has executed, that framework's autolog is enabled."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        framework = _watched.get(fullname)
        if framework is None or getattr(self._busy, "name", None) == fullname:
            return None
        self._busy.name = fullname
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None:
                for finder in sys.meta_path:
                    if finder is self or not hasattr(finder, "find_spec"):
                        continue
                    spec = finder.find_spec(fullname, path, target)
                    if spec is not None:
                        break
        finally:
            self._busy.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(spec.loader, framework)
        return spec


class _NotifyingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, framework: str) -> None:
        self._loader = loader
        self._framework = framework

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # the module keeps its real loader for anything that inspects it later
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        if self._framework in _watched.values():
            _enable(self._framework)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_finder = _PostImportFinder()
