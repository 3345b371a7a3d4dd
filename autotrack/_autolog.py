"""``autotrack.autolog()``: turn on every installed framework's autologging with one line.

Frameworks the script has already imported are patched at once; the others when (and only if)
the script imports them, through a post-import hook on ``sys.meta_path``. autotrack never imports
a framework the script does not.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from ._errors import InvalidArgumentError
from ._imports import cancel, when_imported
from ._patching import patch, report_failure, unpatch

#: framework switch -> (modules whose import triggers it, integration module)
FRAMEWORKS: dict[str, tuple[tuple[str, ...], str]] = {
    "pytorch": (("torch",), "autotrack.integrations.torch"),
    "lightning": (("lightning", "pytorch_lightning"), "autotrack.integrations.lightning"),
    "sklearn": (("sklearn",), "autotrack.integrations.sklearn"),
    "xgboost": (("xgboost",), "autotrack.integrations.xgboost"),
    "lightgbm": (("lightgbm",), "autotrack.integrations.lightgbm"),
    "keras": (("keras",), "autotrack.integrations.keras"),
    "transformers": (("transformers",), "autotrack.integrations.transformers"),
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
    lightgbm: bool = True,
    keras: bool = True,
    transformers: bool = True,
    seeds: bool = True,
    log_models: bool = True,
    system_metrics: bool | float = True,
    grad_norm_every: int = 50,
    experiment: str | None = None,
) -> None:
    """Record every training in this process with no other change to the code.

    Args:
        disable: undo every patch autolog made (and stop watching imports).
        pytorch, lightning, sklearn, xgboost, lightgbm, keras, transformers: switch one framework off.
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
    switches = {"pytorch": pytorch, "lightning": lightning, "sklearn": sklearn, "xgboost": xgboost,
                "lightgbm": lightgbm, "keras": keras, "transformers": transformers}
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


# -- waiting for frameworks the script imports later ----------------------------------------------

_watchers: dict[str, Callable[[ModuleType], None]] = {}  # framework -> its post-import callback


def _watch(modules: Sequence[str], framework: str) -> None:
    callback = _watchers.setdefault(framework, lambda module: _enable(framework))
    for name in modules:
        when_imported(name, callback)


def _unwatch(framework: str) -> None:
    callback = _watchers.pop(framework, None)
    if callback is not None:
        for name in FRAMEWORKS[framework][0]:
            cancel(name, callback)
