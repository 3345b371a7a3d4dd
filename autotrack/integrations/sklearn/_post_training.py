"""Post-training metrics and evaluation datasets: what user code does with a recorded estimator
after its fit, written into the fit's run.

* ``predict`` / ``predict_proba`` / ``decision_function`` of a recorded estimator (``Tracked``, a
  fit autolog recorded, an ``XGBClassifier``/``LGBMRegressor``... whose training XGBoost's or
  LightGBM's integration recorded), called from user code on data that is not its training data:
  the data gets a name in that run (``test``, then ``test_1``, ``test_2``... for each further
  distinct data, told apart by the content hash of :func:`autotrack.fingerprint`; the same data
  keeps its name) and an entry of that name in the run's ``data`` section (``role: "eval"``);
  the output is remembered (the last :data:`KEEP` outputs, held so that their ids stay theirs).
* a ``sklearn.metrics`` scoring function (:func:`metric_names`) called from user code with one of
  those outputs as its prediction argument (``y_pred``, ``y_score``, ``y_proba``, ...; a view of
  one, such as ``proba[:, 1]``, too): its value is logged as ``<dataset>/<function>``
  (``test/r2_score``).
* ``estimator.score(X, y)`` from user code on data that is not the training data:
  ``<dataset>/score``.

The fit's run has ended by then: it is reopened (``start_run(resume=...)``) and ended again,
under one lock. Nothing here changes a returned value or raises into the user's code (the
patches' safety policy; a failure is one warning). Calls made by autotrack itself (inside
``recording``) and by libraries (a scorer inside ``cross_val_score``, a search's scoring) are
not recorded, nor are predictions on the training data.

Users often bind a metric before autolog patches ``sklearn.metrics`` (``from sklearn.metrics
import r2_score`` at the top of a script): the names in user modules (``__main__``, modules
outside the standard library and installed packages) that hold an original metric function are
rebound to the patched one too.
"""

from __future__ import annotations

import inspect
import numbers
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from types import ModuleType
from typing import Any

import autotrack
from autotrack.integrations import _fitting
from autotrack.integrations._wrapped import inner_slot
from autotrack.integrations.base import (
    autolog_setting,
    disabled,
    fingerprint,
    log_data,
    patch,
    recording,
    report_failure,
)

from . import _grouping
from ._settings import INTEGRATION

#: how many recent predictions are remembered for metric calls
KEEP = 64
PREDICT_METHODS = ("predict", "predict_proba", "decision_function")
#: the parameters of sklearn.metrics functions that take a prediction
PREDICTION_ARGS = (
    "y_pred",
    "y_score",
    "y_proba",
    "y_prob",
    "probas_pred",
    "pred_decision",
    "labels_pred",
    "labels",
    "y2",
)
#: scoring functions of sklearn.metrics that do not end in _score, _error or _loss
EXTRA_METRICS = ("matthews_corrcoef",)
#: modules whose estimators' fits other integrations record (their fit is wrapped in _fitting)
THIRD_PARTY = ("xgboost.", "lightgbm.")

_explicit: bool | None = None  # the sklearn integration's own autolog(post_training_metrics=...)


def configure(value: bool | None) -> None:
    global _explicit
    _explicit = value


def enabled() -> bool:
    if disabled():
        return False
    return bool(_explicit if _explicit is not None else autolog_setting("post_training_metrics"))


# -- which estimator belongs to which run -----------------------------------------------------------


class Link:
    """A recorded estimator's run and the content hash of its training data."""

    __slots__ = ("run", "run_id", "train_hash")

    def __init__(self, run: autotrack.Run, train_hash: str | None) -> None:
        self.run = run
        self.run_id = run.id
        self.train_hash = train_hash


_links: weakref.WeakKeyDictionary[Any, Link] = weakref.WeakKeyDictionary()
#: id(output) -> (output, link, dataset name); the output is held so that its id is not reused
_predictions: OrderedDict[int, tuple[Any, Link, str]] = OrderedDict()
_datasets: dict[str, dict[str, str]] = {}  # run id -> {data hash: dataset name}
_lock = threading.Lock()  # the tables above
_write_lock = threading.Lock()  # reopening ended runs


def link(estimator: Any, run: autotrack.Run, train_hash: str | None) -> None:
    """``estimator`` was fitted in ``run`` on data whose content hash is ``train_hash``."""
    try:
        _links[estimator] = Link(run, train_hash)
    except TypeError:  # not weakly referencable / not hashable: no post-training metrics for it
        pass


def link_of(estimator: Any) -> Link | None:
    try:
        return _links.get(estimator)
    except TypeError:
        return None


def data_hash(X: Any) -> str | None:
    try:
        found = fingerprint(X).get("hash")
    except Exception:  # noqa: BLE001 - data we cannot fingerprint is not named
        return None
    return found if isinstance(found, str) else None


def _dataset(link: Link, X: Any) -> str | None:
    """The name of ``X`` in ``link``'s run (named, and its data entry logged, the first time);
    None for the training data and for data that cannot be fingerprinted."""
    if X is None:
        return None
    entry = fingerprint(X)
    found = entry.get("hash")
    if not isinstance(found, str) or found == link.train_hash:
        return None
    with _lock:
        names = _datasets.setdefault(link.run_id, {})
        name = names.get(found)
        if name is not None:
            return name
        name = names[found] = "test" if not names else f"test_{len(names)}"
    _write(link, lambda run: _log_eval_entry(run, link, name, entry))
    return name


def _log_eval_entry(run: autotrack.Run, link: Link, name: str, entry: dict[str, Any]) -> None:
    if not autolog_setting("log_datasets"):
        return
    if run is not link.run:  # reopened: the data section is replaced as a whole; keep what it held
        stored = autotrack.get_run(run.id).info("data") or {}
        for key, value in stored.items():
            if key != name and isinstance(value, dict):
                log_data(run, key, value if "hash" in value else {**value, "hash": None})
    log_data(run, name, entry, role="eval")


def _write(link: Link, write: Callable[[autotrack.Run], None]) -> None:
    """Write into ``link``'s run: directly while it is open, else reopened and ended again."""
    with _write_lock:
        run = link.run
        if not run.ended:
            write(run)
            return
        status = run.status if run.status in ("finished", "failed", "killed") else "finished"
        reopened = autotrack.start_run(resume=link.run_id, activate=False)
        try:
            write(reopened)
        finally:
            reopened.end(status)  # the fit's outcome stays what it was


def log_late_metric(link: Link, key: str, value: Any) -> None:
    _write(link, lambda run: run.log_metric(key, value))


# -- what the patches do ------------------------------------------------------------------------


def guarded_call(fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)``; a failure is one warning (``Tracked``'s delegated methods)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - never into the user's code
        report_failure("sklearn: post-training metrics", exc)


def predicted(estimator: Any, X: Any, output: Any, *, user: bool) -> None:
    """``estimator`` predicted ``output`` from ``X`` (``user``: the call came from user code)."""
    if not user or not enabled():
        return
    link = link_of(estimator)
    if link is None:
        return
    name = _dataset(link, X)
    if name is None:
        return
    # a view (XGBoost's predict_proba is a transposed stack): its owner too, so that another view
    # of the same memory (proba[:, 1], whose base is that owner) is told apart as well
    owner = getattr(output, "base", None)
    with _lock:
        for held in (output, owner) if owner is not None else (output,):
            _predictions[id(held)] = (held, link, name)
            _predictions.move_to_end(id(held))
        while len(_predictions) > KEEP:
            _predictions.popitem(last=False)


def scored(estimator: Any, X: Any, value: Any, *, user: bool) -> None:
    """``estimator.score(X, ...)`` returned ``value``."""
    if not user or not enabled():
        return
    link = link_of(estimator)
    if link is None or not _is_number(value):
        return
    name = _dataset(link, X)
    if name is not None:
        log_late_metric(link, f"{name}/score", value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _tracked(value: Any) -> tuple[Any, Link, str] | None:
    found = _predictions.get(id(value))
    if found is not None and found[0] is value:
        return found
    base = getattr(value, "base", None)  # a view: proba[:, 1]
    if base is not None:
        found = _predictions.get(id(base))
        if found is not None and found[0] is base:
            return found
    return None


_signatures: dict[str, inspect.Signature] = {}
#: code of the decorator wrappers around the patched metric functions (validate_params)
_wrapper_codes: set[Any] = set()


def _metric_called(
    name: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], value: Any
) -> None:
    if not any(_tracked(v) is not None for v in (*args, *kwargs.values())):
        return
    if not _grouping.called_from_user_code(skip=_wrapper_codes) or not _is_number(value):
        return
    signature = _signatures.get(name)
    if signature is None:
        signature = _signatures[name] = inspect.signature(function)
    arguments = signature.bind_partial(*args, **kwargs).arguments
    for param in PREDICTION_ARGS:
        if param in arguments:
            found = _tracked(arguments[param])
            if found is not None:
                _, link, dataset = found
                log_late_metric(link, f"{dataset}/{name}", value)
                return


# -- the patches --------------------------------------------------------------------------------


def _first_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("X")


def predict_replacement(method: str) -> Callable[..., Any]:
    def replacement(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if _links and link_of(self) is not None:  # an estimator nobody recorded: one lookup
            predicted(self, _first_arg(args, kwargs), result, user=_grouping.called_from_user_code())
        return result

    replacement.__name__ = f"autotrack_sklearn_{method}"
    return replacement


def score_replacement(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    if not _links or link_of(self) is None or not _grouping.called_from_user_code():
        return original(self, *args, **kwargs)
    with recording(INTEGRATION):  # its own predict and metric calls are not the user's
        value = original(self, *args, **kwargs)
    scored(self, _first_arg(args, kwargs), value, user=True)
    return value


score_replacement.__name__ = "autotrack_sklearn_score"


def third_party_fit(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    """``fit`` of an XGBoost/LightGBM scikit-learn-API estimator: link it to the run its training
    (recorded by that framework's integration) opened."""
    outer = _fitting.current()
    if outer is not None and outer.estimator is self:  # LGBMClassifier.fit -> super().fit
        return original(self, *args, **kwargs)
    token = _fitting.begin(self)
    try:
        result = original(self, *args, **kwargs)
        fitting = _fitting.current()
    finally:
        _fitting.end(token)
    run = getattr(fitting, "run", None)
    if run is not None:
        link(self, run, data_hash(_first_arg(args, kwargs)))
    return result


third_party_fit.__name__ = "autotrack_sklearn_third_party_fit"


def metric_names(module: ModuleType) -> list[str]:
    """The scoring functions of ``sklearn.metrics`` recorded after a fit."""
    return [
        name
        for name in getattr(module, "__all__", ())
        if (name.endswith(("_score", "_error", "_loss")) or name in EXTRA_METRICS)
        and inspect.isfunction(getattr(module, name, None))
    ]


def _metric_replacement(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def replacement(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        value = original(*args, **kwargs)
        if _predictions:  # no tracked prediction: nothing more than this check
            _metric_called(name, function, args, kwargs, value)
        return value

    replacement.__name__ = f"autotrack_sklearn_metric_{name}"
    return replacement


_metrics_patched = False


def metrics_unpatched() -> None:
    """The sklearn integration's patches were undone (``autolog`` starts afresh)."""
    global _metrics_patched
    _metrics_patched = False


def ensure_metrics() -> None:
    """``Tracked``'s first recorded fit: the metric functions are patched (once) as under autolog."""
    if not _metrics_patched and not disabled():
        module = sys.modules.get("sklearn.metrics")
        if module is not None:
            install_metrics(module)


def install_metrics(module: ModuleType) -> None:
    """Patch ``sklearn.metrics``' scoring functions. scikit-learn's are ``validate_params``
    wrappers: the function inside the wrapper is patched (its ``func`` cell, as the grouping does
    for the model-selection functions), so every reference -- a name bound before autolog, a
    pickled one -- reaches the patch and the public object stays the one pickle looks up. A
    function of another shape is patched as a module attribute, and the names user modules
    bound to it before autolog are rebound to the patched one."""
    global _metrics_patched
    _metrics_patched = True
    originals: dict[int, tuple[str, Any]] = {}
    for name in metric_names(module):
        function = getattr(module, name)
        if getattr(function, "__autotrack_patch__", None) == INTEGRATION:
            continue  # patched as a module attribute already
        slot = inner_slot(function)
        if slot is not None:
            _wrapper_codes.add(function.__code__)  # the wrapper's frame is not the caller's
            patch(INTEGRATION, slot, "func", _metric_replacement(name, slot.func))
            continue
        originals[id(function)] = (name, function)
        patch(INTEGRATION, module, name, _metric_replacement(name, function))
    if not originals:
        return
    for user_module in _user_modules():
        for attr, value in list(vars(user_module).items()):
            found = originals.get(id(value))
            if found is not None and found[1] is value:
                patch(INTEGRATION, user_module, attr, _metric_replacement(found[0], value))


def _user_modules() -> list[ModuleType]:
    """``__main__`` and the imported modules outside the standard library and installed packages
    (told apart by the file name first: no path is resolved for most modules)."""
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    out = []
    for name, module in list(sys.modules.items()):
        if not isinstance(module, ModuleType) or name.startswith("autotrack"):
            continue
        filename = getattr(module, "__file__", None)
        if name != "__main__" and (
            not isinstance(filename, str)
            or filename.startswith(prefixes)
            or "site-packages" in filename
            or "dist-packages" in filename
            or _grouping.is_library(filename)
        ):
            continue
        out.append(module)
    return out
