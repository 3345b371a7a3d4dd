"""``autolog()``: every scikit-learn fit that user code makes is recorded as if it were ``Tracked``.

Patched (integration ``sklearn``): ``fit``, ``fit_transform`` and ``fit_predict`` of the class
defining each of them for every scikit-learn estimator class (so estimators built on
scikit-learn's mixins are included), and the same methods of subclasses that override a patched
one (a user's ``class ChildMod(LogisticRegression)``). Plus the grouping entry points (see
``_grouping``), once ``sklearn.model_selection`` is imported.

Nothing is imported to find the estimators (``all_estimators()`` imports all of scikit-learn, its
test packages and torch): the classes already defined are patched when autolog is turned on, and
the others as they are defined -- scikit-learn's own right after their module has executed (a
post-import hook on ``sklearn.*``, so that what a class's ``__init_subclass__`` chain adds to it,
``set_output``'s wrapper of ``fit_transform``, is in place), every other class (a user's, a
third-party package's) when it is created (a hook on ``BaseEstimator.__init_subclass__``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils._available_if import _AvailableIfDescriptor

from autotrack.integrations.base import (
    InvalidArgumentError,
    autolog_setting,
    autolog_tags,
    cancel_submodules,
    cancel_when_imported,
    patch,
    report_failure,
    unpatch,
    when_imported,
    when_submodules_imported,
)

from . import _grouping, _post_training
from ._settings import INTEGRATION, Settings, check_settings

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
_post_training_on = False  # post-training metrics: predict/score/fit patches of classes, sklearn.metrics
_settings = Settings(log_transformer_models=False)
_hooked: dict[str, Any] = {}  # the __init_subclass__ we replaced on BaseEstimator ({} when none)


def autolog(*, disable: bool = False, log_models: bool = True, log_metrics: bool = True, log_data: bool = True,
            max_child_runs: int | None = None, experiment: str | None = None, run_name: str | None = None,
            log_transformer_models: bool = False, tags: Mapping[str, Any] | None = None,
            log_input_examples: bool | None = None, post_training_metrics: bool | None = None,
            **_other_integrations_options: Any) -> None:
    global _settings, _post_training_on
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    if post_training_metrics is not None and not isinstance(post_training_metrics, bool):
        raise InvalidArgumentError("post_training_metrics", post_training_metrics,
                                   "pass True or False, or None to follow autotrack.autolog(post_training_metrics=)")
    # autotrack.autolog(tags=, log_datasets=) apply here as in every integration
    tags = {**autolog_tags(), **(tags or {})} if tags is None or isinstance(tags, Mapping) else tags
    settings = Settings(run_name=run_name, experiment=experiment, tags=tags or None, log_model=log_models,
                        log_metrics=log_metrics, log_data=log_data and bool(autolog_setting("log_datasets")),
                        max_child_runs=max_child_runs,
                        log_transformer_models=log_transformer_models,
                        log_input_examples=bool(autolog_setting("log_input_examples") if log_input_examples is None
                                                else log_input_examples))
    if not disable:
        check_settings(settings)
    _unhook()
    unpatch(INTEGRATION)
    _post_training.metrics_unpatched()
    _grouping.uninstall_groups()
    _post_training_on = False
    if disable:
        _post_training.configure(None)
        return
    _settings = settings  # skops is imported by the first model saved, not here
    _post_training.configure(post_training_metrics)
    _post_training_on = _post_training.enabled()
    when_imported("sklearn.model_selection", _install_groups)
    if _post_training_on:
        when_imported("sklearn.metrics", _post_training.install_metrics)
    for cls in _subclasses(BaseEstimator):
        patch_class(cls)
    when_submodules_imported("sklearn", _on_sklearn_module)
    _hooked["previous"] = BaseEstimator.__dict__.get("__init_subclass__")
    BaseEstimator.__init_subclass__ = classmethod(_on_new_subclass)  # type: ignore[assignment]


def _install_groups(_module: ModuleType) -> None:
    _grouping.install_groups(searches=False)


def _is_search(owner: type) -> bool:
    """Whether ``owner`` is one of scikit-learn's searches (``BaseSearchCV`` or below it), told by
    the MRO's names so that no module is imported to ask."""
    return any(k.__name__ == "BaseSearchCV" and k.__module__.startswith("sklearn.") for k in owner.__mro__)


def patch_class(cls: type) -> None:
    """Patch what recording ``cls``'s fits needs: for each fit method, the scikit-learn class that
    defines it (behind ``available_if``, ``Pipeline.fit_transform``, inside its descriptor, so that
    ``hasattr`` keeps telling the truth), or ``cls``'s own override of a patched one."""
    for name in FIT_METHODS:
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is None:
            continue
        if owner.__module__.startswith("sklearn"):
            _patch_method(owner, name)
        elif owner is cls and any(getattr(base.__dict__.get(name), "__autotrack_patch__", None) == INTEGRATION
                                  for base in cls.__mro__[1:]
                                  if not base.__module__.startswith(_post_training.THIRD_PARTY)):
            own = cls.__dict__[name]
            if callable(own) and not isinstance(own, (staticmethod, classmethod, property)):
                patch(INTEGRATION, cls, name, _replacement(name))
    if _post_training_on:
        _patch_predictions(cls)


def _patch_predictions(cls: type) -> None:
    """Post-training metrics: ``predict``/``predict_proba``/``decision_function``/``score`` of the
    scikit-learn, XGBoost or LightGBM class defining each, and ``fit`` of XGBoost's and LightGBM's
    scikit-learn-API estimators (their integrations record the training; this links the run)."""
    for name in (*_post_training.PREDICT_METHODS, "score", "fit"):
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if owner is None:
            continue
        module = owner.__module__
        if name == "fit":
            if module.startswith(_post_training.THIRD_PARTY):
                _patch_plain(owner, name, _post_training.third_party_fit)
        elif module.startswith(("sklearn.", *_post_training.THIRD_PARTY)):
            replacement = (_post_training.score_replacement if name == "score"
                           else _post_training.predict_replacement(name))
            _patch_plain(owner, name, replacement)


def _patch_plain(owner: type, name: str, replacement: Callable[..., Any]) -> None:
    value = owner.__dict__[name]
    if getattr(getattr(value, "fn", value), "__autotrack_patch__", None) == INTEGRATION:
        return  # patched already (cheap: no wrapper is built)
    if isinstance(value, _AvailableIfDescriptor):
        patch(INTEGRATION, value, "fn", replacement)
    elif callable(value) and not isinstance(value, (staticmethod, classmethod)):
        patch(INTEGRATION, owner, name, replacement)


def _patch_method(owner: type, name: str) -> None:
    value = owner.__dict__[name]
    if isinstance(value, _AvailableIfDescriptor):
        target: tuple[Any, str] = (value, "fn")
    elif callable(value) and not isinstance(value, (staticmethod, classmethod)):
        target = (owner, name)
    else:  # a property (FeatureAgglomeration.fit_predict): leave it alone
        return
    if name == "fit" and _is_search(owner):
        patch(INTEGRATION, *target, _grouping.search_fit_replacement(_record_search))
    else:
        patch(INTEGRATION, *target, _replacement(name))  # patch() leaves a patched method as it is


def _fit_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    return (args[0] if args else kwargs.get("X")), (args[1] if len(args) > 1 else kwargs.get("y"))


def _replacement(method: str) -> Callable[..., Any]:
    def replacement(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        from ._record import (
            record,  # sklearn.metrics and the recording code: on the first fit
        )

        X, y = _fit_args(args, kwargs)
        result, _, _ = record(self, lambda: original(self, *args, **kwargs), X, y, _settings, explicit=False,
                              sample_weight=kwargs.get("sample_weight"))
        return result

    replacement.__name__ = f"autotrack_sklearn_{method}"
    return replacement


def _record_search(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    from ._record import record

    X, y = _fit_args(args, kwargs)
    result, _, _ = record(self, lambda: original(self, *args, **kwargs), X, y, _settings, explicit=True,
                          sample_weight=kwargs.get("sample_weight"))
    return result


# -- classes defined after autolog ----------------------------------------------------------------


def _subclasses(root: type) -> list[type]:
    out, todo, seen = [], [root], set()
    while todo:
        for sub in todo.pop().__subclasses__():
            if id(sub) not in seen:
                seen.add(id(sub))
                out.append(sub)
                todo.append(sub)
    return out


def _on_sklearn_module(module: ModuleType) -> None:
    """A scikit-learn module has executed: patch the estimator classes it defines."""
    name = module.__name__
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == name and issubclass(value, BaseEstimator):
            patch_class(value)


def _on_new_subclass(cls: type, **kwargs: Any) -> None:
    previous = _hooked.get("previous")
    if previous is not None:
        previous.__func__(cls, **kwargs)
    else:
        super(BaseEstimator, cls).__init_subclass__(**kwargs)
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("sklearn.") and _initialising(module):
        return  # patched once its module has executed (_on_sklearn_module)
    try:
        patch_class(cls)
    except Exception as exc:  # noqa: BLE001 - defining the user's class must not fail because of us
        report_failure("sklearn: patching a new estimator class", exc)


def _initialising(name: str) -> bool:
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _unhook() -> None:
    cancel_when_imported("sklearn.model_selection", _install_groups)
    cancel_when_imported("sklearn.metrics", _post_training.install_metrics)
    cancel_submodules("sklearn", _on_sklearn_module)
    if not _hooked:
        return
    previous = _hooked.pop("previous")
    if previous is not None:
        BaseEstimator.__init_subclass__ = previous  # type: ignore[method-assign]
    else:
        del BaseEstimator.__init_subclass__
