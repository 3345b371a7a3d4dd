"""``autotrack.autolog()``: turn on every installed framework's autologging with one line.

The integrations come from the registry (``autotrack._integrations``: the built-in ones and the
``autotrack.integrations`` entry points); this module names no framework. Frameworks the script has
already imported are patched at once; the others when (and only if) the script imports them,
through a post-import hook on ``sys.meta_path``. autotrack never imports a framework the script
does not. Every integration's ``autolog`` is called with the same keywords (``disable``,
``log_models``, ``log_every_n_steps``, ``grad_norm_every``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from . import _integrations
from ._errors import InvalidArgumentError
from ._imports import cancel, when_imported
from ._patching import patch, report_failure, unpatch

_options: dict[str, Any] = {}
_enabled: set[str] = set()
#: integrations the user switched off (sticky: a later plain ``autolog()`` keeps them off)
_switched_off: set[str] = set()
_lock = threading.RLock()


def autolog(
    *,
    disable: bool = False,
    log_models: bool = True,
    log_every_n_steps: int | None = None,
    grad_norm_every: int = 50,
    exclude: Sequence[str] = (),
    seeds: bool = True,
    system_metrics: bool | float = True,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    log_datasets: bool = True,
    post_training_metrics: bool = True,
    log_input_examples: bool = True,
    log_plots: bool = True,
    **switches: bool,
) -> None:
    """Record every training in this process with no other change to the code.

    Args:
        disable: undo every patch autolog made -- and those of integration-level ``autolog()``
            calls -- and stop watching imports; forgets earlier switches.
        log_models: store fitted models / final weights as artifacts.
        log_every_n_steps: record per-step training metrics every N steps (default: every step).
        grad_norm_every: per-layer gradient norms every N optimizer steps (the global norm is
            recorded every step).
        exclude: names of integrations to switch off, e.g. ``exclude=["lightning"]``.
        **switches: ``<integration>=False`` switches one off, ``=True`` back on (the registered
            names: ``pytorch``, ``lightning``, ``sklearn``, ``xgboost``, ``lightgbm``, ``keras``,
            ``transformers`` and any third-party
            integration's). A switch holds until changed: a later ``autolog()`` keeps it.
        seeds: record seeds set through ``random``, numpy and the frameworks' seeders.
        system_metrics: sample machine metrics (True: every 5 s; a number: that interval; False: off).
        experiment: the experiment autologged runs belong to.
        run_name: the name of the first top-level run autolog starts (the next ones get
            ``NAME-2``, ``NAME-3`` ...); runs inside it keep their own names. Also
            ``AUTOTRACK_RUN_NAME`` and ``autotrack run --name``.
        tags: tags given to every run an integration starts while autolog is on (the
            integration's own tags win on a clash).
        log_datasets: False: no data fingerprints (the ``data`` section) on autologged runs.
        post_training_metrics: record ``sklearn.metrics`` calls and ``score()`` on recorded
            estimators' predictions of other data in the fit's run (scikit-learn, XGBoost and
            LightGBM estimators).
        log_input_examples: store a few input rows with each stored model (secret filter applied).
        log_plots: evaluation plots (confusion matrix, ROC and precision-recall curves: JSON
            arrays, and PNGs when matplotlib is installed) of recorded classifier fits
            (scikit-learn, XGBoost's and LightGBM's scikit-learn classifiers).

    ``AUTOTRACK_DISABLE=1`` in the environment turns it all off.
    """
    if disable:
        _disable_all()
        return
    if os.environ.get("AUTOTRACK_DISABLE") == "1":
        return
    if not isinstance(grad_norm_every, int) or isinstance(grad_norm_every, bool) or grad_norm_every < 1:
        raise InvalidArgumentError("grad_norm_every", grad_norm_every, "pass a positive number of optimizer steps, e.g. 50")
    if log_every_n_steps is not None and (not isinstance(log_every_n_steps, int) or isinstance(log_every_n_steps, bool)
                                          or log_every_n_steps < 1):
        raise InvalidArgumentError("log_every_n_steps", log_every_n_steps, "pass a positive number of steps, or None")
    if not (isinstance(system_metrics, bool) or (isinstance(system_metrics, (int, float)) and system_metrics > 0)):
        raise InvalidArgumentError("system_metrics", system_metrics, "pass True, False, or an interval in seconds")
    if isinstance(exclude, str):
        raise InvalidArgumentError("exclude", exclude, "pass a list of integration names, e.g. exclude=['lightning']")
    wanted = _switches({**{name: False for name in exclude}, **switches})
    if run_name is not None and (not isinstance(run_name, str) or not run_name.strip()):
        raise InvalidArgumentError("run_name", run_name, "pass a non-empty name, or None for generated names")
    if tags is not None and (not isinstance(tags, Mapping) or not all(isinstance(k, str) and k for k in tags)):
        raise InvalidArgumentError("tags", tags, "pass a dict of tag name -> value, e.g. tags={'team': 'vision'}")
    for name, flag in (("log_datasets", log_datasets), ("post_training_metrics", post_training_metrics),
                       ("log_input_examples", log_input_examples), ("log_plots", log_plots)):
        if not isinstance(flag, bool):
            raise InvalidArgumentError(name, flag, f"pass {name}=True or {name}=False")
    if experiment is not None:
        os.environ["AUTOTRACK_EXPERIMENT"] = experiment
    if run_name is not None:
        os.environ["AUTOTRACK_RUN_NAME"] = run_name
    with _lock:
        _options.clear()
        _options.update(log_models=log_models, log_every_n_steps=log_every_n_steps, grad_norm_every=grad_norm_every,
                        tags=dict(tags or {}), log_datasets=log_datasets, post_training_metrics=post_training_metrics,
                        log_input_examples=log_input_examples, log_plots=log_plots)
        for name, on in wanted.items():
            (_switched_off.discard if on else _switched_off.add)(name)
        _configure_capture(system_metrics, seeds)
        _record_script_arguments()
        for integration in _integrations.integrations():
            if integration.name in _switched_off:
                _switch_off(integration)
            else:
                _watch(integration)


def _switches(given: dict[str, Any]) -> dict[str, bool]:
    """``{registered name: on}`` from the keywords given (aliases resolved, names checked)."""
    out: dict[str, bool] = {}
    for key, value in given.items():
        integration = _integrations.find(key)
        if integration is None:
            known = ", ".join(sorted(i.name for i in _integrations.integrations()))
            raise InvalidArgumentError(key, value, f"autolog() takes a switch per registered integration: {known}")
        if not isinstance(value, bool):
            raise InvalidArgumentError(key, value, f"pass {key}=True or {key}=False")
        out[integration.name] = value
    return out


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


def _imported(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and not _initialising(module)


def _initialising(module: ModuleType | None) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _integration_initialising(integration: _integrations.Integration) -> bool:
    """Whether the integration's own module (or a package above it) is still executing: its
    framework import fired the hook from inside it. Enabling waits for that module to finish."""
    name = integration.autolog_module
    while name:
        if _initialising(sys.modules.get(name)):
            return True
        name = name.rpartition(".")[0]
    return False


def _call_autolog(integration: _integrations.Integration, **options: Any) -> None:
    fn = _integrations.resolve(integration.autolog)
    fn(**{k: v for k, v in options.items() if k in integration.options})


def _enable(integration: _integrations.Integration) -> None:
    name = integration.name
    with _lock:
        if name in _enabled or name in _in_progress or name in _switched_off:
            return  # also: an integration importing its own framework while being enabled
        if not any(_imported(m) for m in integration.modules) or _integration_initialising(integration):
            return  # called again once the framework / the integration module has finished importing
        _in_progress.add(name)
        try:
            _call_autolog(integration, disable=False, **_options)
        except Exception as exc:  # noqa: BLE001 - one framework's failure must not stop the others
            report_failure(f"autolog for {name}", exc)
            return
        finally:
            _in_progress.discard(name)
        _enabled.add(name)


def _switch_off(integration: _integrations.Integration) -> None:
    """The user switched ``integration`` off: undo it, and tell it (now, or when its framework is
    imported) with ``autolog(disable=True)``."""
    with _lock:
        _unwatch(integration.name)
        _enabled.discard(integration.name)
        callback = _watchers.setdefault(integration.name, lambda module: _off_now(integration))
        _watched[integration.name] = integration.modules
        for module in integration.modules:
            when_imported(module, callback)


def _off_now(integration: _integrations.Integration) -> None:
    if integration.name not in _switched_off or not any(_imported(m) for m in integration.modules):
        return
    try:
        _call_autolog(integration, disable=True)
    except Exception as exc:  # noqa: BLE001
        report_failure(f"switching off autolog for {integration.name}", exc)


def _disable_all() -> None:
    """Undo everything: every integration whose module is loaded is told ``autolog(disable=True)``
    (also those the user turned on directly, not through here), then its patches are removed."""
    with _lock:
        for integration in _integrations.integrations():
            _unwatch(integration.name)
            module = integration.autolog_module
            loaded = module in sys.modules if module else integration.name in _enabled
            if loaded and any(_imported(m) for m in integration.modules):
                try:
                    _call_autolog(integration, disable=True)
                except Exception as exc:  # noqa: BLE001
                    report_failure(f"disabling autolog for {integration.name}", exc)
            unpatch(integration.name)
        _enabled.clear()
        _switched_off.clear()
        _options.clear()
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

_watchers: dict[str, Callable[[ModuleType], None]] = {}  # integration -> its post-import callback
_watched: dict[str, tuple[str, ...]] = {}  # integration -> the module names it waits for


def _watch(integration: _integrations.Integration) -> None:
    """Enable ``integration`` now if its framework is imported, else right after that import. Its
    own module is watched too: when the framework import happened inside it (``from
    autotrack.integrations.x import ...`` before the framework), enabling waits until it is done."""
    _unwatch(integration.name)
    callback = _watchers.setdefault(integration.name, lambda module: _enable(integration))
    names = list(integration.modules)
    if integration.autolog_module:
        names.append(integration.autolog_module)
    _watched[integration.name] = tuple(names)
    for name in names:
        if name == integration.autolog_module and name in sys.modules and not _initialising(sys.modules[name]):
            continue
        when_imported(name, callback)


def _unwatch(name: str) -> None:
    callback = _watchers.pop(name, None)
    if callback is not None:
        for module in _watched.pop(name, ()):
            cancel(module, callback)
