"""``autolog()``: every scikit-learn fit that user code makes is recorded as if it were ``Tracked``.

Patched (integration ``sklearn``): ``fit``, ``fit_transform`` and ``fit_predict`` of the class
defining each of them for every scikit-learn estimator (so estimators built on scikit-learn's
mixins are included), and the same methods of subclasses that override a patched one (a user's
``class ChildMod(LogisticRegression)``, existing ones at once, new ones when their class is
created): the outermost ``fit`` is the one recorded, after it returns. Plus the grouping entry
points (see ``_grouping``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator

from autotrack.integrations.base import InvalidArgumentError, patch, report_failure, unpatch

from . import _grouping
from ._record import record
from ._settings import INTEGRATION, Settings, check_settings

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
_settings = Settings(log_transformer_models=False)
_hooked: dict[str, Any] = {}  # the __init_subclass__ we replaced on BaseEstimator ({} when none)


def autolog(*, disable: bool = False, log_models: bool = True, log_metrics: bool = True, log_data: bool = True,
            max_child_runs: int | None = None, experiment: str | None = None, run_name: str | None = None,
            log_transformer_models: bool = False, **_other_integrations_options: Any) -> None:
    global _settings
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    settings = Settings(run_name=run_name, experiment=experiment, log_model=log_models, log_metrics=log_metrics,
                        log_data=log_data, max_child_runs=max_child_runs,
                        log_transformer_models=log_transformer_models)
    if not disable:
        check_settings(settings)
    _unhook_subclasses()
    unpatch(INTEGRATION)
    _grouping.uninstall_groups()
    if disable:
        return
    _settings = settings
    if log_models:
        try:  # importing skops.io scans all of scikit-learn (seconds): pay it here, not in a fit
            import skops.io  # noqa: F401
        except ImportError:
            pass
    _grouping.install_groups(searches=False)
    searches = _grouping.search_classes()
    search_fit = _grouping.search_fit_replacement(_record_search)
    for owner in searches:
        patch(INTEGRATION, owner, "fit", search_fit)
    for owner, name in patch_targets(skip=searches):
        patch(INTEGRATION, owner, name, _replacement(name))
    for cls in _subclasses(BaseEstimator):
        _patch_overrides(cls)
    _hook_subclasses()


def patch_targets(skip: list[type] = ()) -> list[tuple[Any, str]]:  # type: ignore[assignment]
    """(owner, name) pairs: the class defining each fit method of every scikit-learn estimator.
    Methods behind ``available_if`` (``Pipeline.fit_transform``) are patched inside their
    descriptor (its private ``fn``), so ``hasattr`` keeps telling the truth."""
    from sklearn.utils import all_estimators
    from sklearn.utils._available_if import _AvailableIfDescriptor

    seen: set[int] = set()
    targets: list[tuple[Any, str]] = []
    for _, cls in all_estimators():
        for name in FIT_METHODS:
            owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
            if owner is None or owner in skip or not owner.__module__.startswith("sklearn"):
                continue
            value = owner.__dict__[name]
            if isinstance(value, _AvailableIfDescriptor):
                target: tuple[Any, str] = (value, "fn")
            elif callable(value) and not isinstance(value, (staticmethod, classmethod)):
                target = (owner, name)
            else:  # a property (FeatureAgglomeration.fit_predict): leave it alone
                continue
            key = id(target[0].__dict__[target[1]])
            if key not in seen:
                seen.add(key)
                targets.append(target)
    return targets


def _fit_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    return (args[0] if args else kwargs.get("X")), (args[1] if len(args) > 1 else kwargs.get("y"))


def _replacement(method: str) -> Callable[..., Any]:
    def replacement(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        X, y = _fit_args(args, kwargs)
        result, _, _ = record(self, lambda: original(self, *args, **kwargs), X, y, _settings, explicit=False)
        return result

    replacement.__name__ = f"autotrack_sklearn_{method}"
    return replacement


def _record_search(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    X, y = _fit_args(args, kwargs)
    result, _, _ = record(self, lambda: original(self, *args, **kwargs), X, y, _settings, explicit=True)
    return result


# -- subclasses that override a patched fit -----------------------------------------------------


def _subclasses(root: type) -> list[type]:
    out, todo, seen = [], [root], set()
    while todo:
        for sub in todo.pop().__subclasses__():
            if id(sub) not in seen:
                seen.add(id(sub))
                out.append(sub)
                todo.append(sub)
    return out


def _patch_overrides(cls: type) -> None:
    for name in FIT_METHODS:
        own = cls.__dict__.get(name)
        if own is None or not callable(own) or isinstance(own, (staticmethod, classmethod, property)):
            continue
        if getattr(own, "__autotrack_patch__", None) == INTEGRATION:
            continue
        if any(getattr(base.__dict__.get(name), "__autotrack_patch__", None) == INTEGRATION for base in cls.__mro__[1:]):
            patch(INTEGRATION, cls, name, _replacement(name))


def _on_new_subclass(cls: type, **kwargs: Any) -> None:
    previous = _hooked.get("previous")
    if previous is not None:
        previous.__func__(cls, **kwargs)
    else:
        super(BaseEstimator, cls).__init_subclass__(**kwargs)
    try:
        _patch_overrides(cls)
    except Exception as exc:  # noqa: BLE001 - defining the user's class must not fail because of us
        report_failure("sklearn: patching a new estimator class", exc)


def _hook_subclasses() -> None:
    if _hooked:
        return
    _hooked["previous"] = BaseEstimator.__dict__.get("__init_subclass__")
    BaseEstimator.__init_subclass__ = classmethod(_on_new_subclass)  # type: ignore[assignment]


def _unhook_subclasses() -> None:
    if not _hooked:
        return
    previous = _hooked.pop("previous")
    if previous is not None:
        BaseEstimator.__init_subclass__ = previous  # type: ignore[method-assign]
    else:
        del BaseEstimator.__init_subclass__
