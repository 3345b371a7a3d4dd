"""scikit-learn: the :class:`Tracked` meta-estimator and :func:`autolog`.

    from autotrack.integrations.sklearn import Tracked, autolog, load_model
    clf = Tracked(RandomForestClassifier(), experiment="churn").fit(X, y)   # one fit, one run
    autolog()                                                               # or: every user fit is a run

What one fit records (run id in ``Tracked.run_id_``):

* params: ``estimator.get_params(deep=True)`` (nested estimators as their class name); tags
  ``estimator`` (class path), ``sklearn_version``, ``autotrack.integration=sklearn``;
* section ``model``: class, repr, structure (pipelines, column transformers, meta-estimators),
  ``n_features_in``, ``classes``; section ``data``: entries ``train`` (X), ``train_y``,
  ``validation`` and ``validation_y`` (the ``eval_set``), each with type, shape, dtypes, feature
  names and a content ``hash`` (the core's ``fingerprint`` when it has one);
* metrics, on the training data under ``train/`` and on ``eval_set`` under ``val/``:
  classifiers ``accuracy``, ``balanced_accuracy``, ``precision_macro``, ``recall_macro``,
  ``f1_macro``, ``precision_weighted``, ``recall_weighted``, ``f1_weighted``, and with
  ``predict_proba`` ``log_loss`` and ``roc_auc`` (one-vs-rest macro for several classes);
  regressors ``r2``, ``rmse``, ``mae``, ``mape``; clusterers ``inertia`` (when the estimator has
  ``inertia_``) and ``silhouette`` (exact up to 2,000 samples, else on a fixed sample of 2,000);
  ``train/fit_time`` (seconds) and ``train/n_iter``;
* iteration curves as step metrics (step = iteration, from 0): MLP ``loss_curve_`` ->
  ``train/loss`` and ``validation_scores_`` -> ``val/score``; GradientBoosting ``train_score_`` ->
  ``train/loss``; HistGradientBoosting ``train_score_`` -> ``train/score`` and
  ``validation_score_`` -> ``val/score``;
* the fitted estimator as an artifact of kind ``model`` (``model.skops``; ``model.joblib``, flagged
  ``safe_to_load: false``, when skops cannot serialise it); read it back with :func:`load_model`;
* searches (``GridSearchCV``, ``RandomizedSearchCV``, halving searches): params ``best.*``, metric
  ``cv/best_score``, and one child run per candidate (params of ``cv_results_["params"]``; metrics
  ``cv/mean_test_score``, ``cv/std_test_score``, ``cv/rank_test_score``, ``cv/mean_fit_time``, ... and
  ``cv/split_test_score`` with step = split), all candidates unless ``max_child_runs`` caps them;
* ``Tracked.score(X, y)`` on data other than the training data: ``test/score`` in the fit's run.

Not recorded: ``partial_fit`` (delegated; a run per batch would flood the store). When recording
itself fails, the fit still returns normally, the run gets the tag ``autotrack.recording_error``
and one warning is shown (``AUTOTRACK_STRICT=1`` raises instead). ``AUTOTRACK_DISABLE=1`` turns
off autolog's patches and makes ``Tracked`` a plain wrapper.

Which fits become runs (the grouping rule):

1. A fit that starts while another recorded fit is in progress in the same thread (a pipeline's
   steps, a search's candidates and refit, a meta-estimator's inner estimators) makes no run of
   its own: it belongs to the outer run.
2. A fit called by user code makes a run. "User code" is the first calling frame outside
   autotrack that is not in the standard library, in ``site-packages``/``dist-packages``, or in
   scikit-learn/joblib.
3. A fit called from scikit-learn's model selection (``cross_validate``, ``cross_val_score``,
   ``learning_curve``, a search's ``fit`` when that fit is not itself recorded, ...) becomes a child
   of one group run per such call (tag ``autotrack.group``: the function's name). The group run
   ends when that call returns.
4. Otherwise, a fit called from inside another library (or in a worker thread with no user frame
   above it) makes no run under :func:`autolog`; a :class:`Tracked` fit is explicit and always
   makes a run (without a group when no user frame is found, e.g. ``n_jobs`` worker threads).
   In worker processes (joblib's loky backend) autolog's patches are absent, and Tracked's runs
   are standalone runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import sysconfig
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

import autotrack
from autotrack._errors import InvalidArgumentError
from autotrack._patching import disabled, patch, report_failure, suspended, unpatch

try:  # the core's data fingerprints (capture), when this autotrack has them
    from autotrack._capture import fingerprint as _capture_fingerprint
    from autotrack._capture import log_data as _capture_log_data
except ImportError:  # pragma: no cover - depends on the core's version
    _capture_fingerprint = _capture_log_data = None

__all__ = ["Tracked", "autolog", "load_model"]

_INTEGRATION = "sklearn"
_SILHOUETTE_MAX = 2000
_FINGERPRINT_MAX_BYTES = 256 * 2**20


# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    run_name: str | None = None
    experiment: str | None = None
    tags: Mapping[str, Any] | None = None
    log_model: bool = True
    log_metrics: bool = True
    log_data: bool = True
    eval_set: Any = None
    max_child_runs: int | None = None


def _check_settings(s: _Settings) -> None:
    if s.run_name is not None and not isinstance(s.run_name, str):
        raise InvalidArgumentError("run_name", s.run_name, "pass a str, or None for a generated name")
    if s.experiment is not None and (not isinstance(s.experiment, str) or not s.experiment.strip()):
        raise InvalidArgumentError("experiment", s.experiment, "pass a non-empty str, or None for the default")
    if s.tags is not None and not isinstance(s.tags, Mapping):
        raise InvalidArgumentError("tags", s.tags, "pass a dict of name -> text")
    for name in ("log_model", "log_metrics", "log_data"):
        if not isinstance(getattr(s, name), bool):
            raise InvalidArgumentError(name, getattr(s, name), "pass True or False")
    if s.eval_set is not None and not (isinstance(s.eval_set, (tuple, list)) and len(s.eval_set) == 2):
        raise InvalidArgumentError("eval_set", s.eval_set, "pass a pair (X_val, y_val), or None")
    cap = s.max_child_runs
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 0):
        raise InvalidArgumentError("max_child_runs", cap, "pass an int >= 0, or None to record every candidate")


# -- which fits become runs ---------------------------------------------------------------------


class _Depth(threading.local):
    value = 0


_depth = _Depth()
_OWN_FILES = {os.path.realpath(f) for f in (__file__, sys.modules["autotrack._patching"].__file__)}
_own_cache: dict[str, bool] = {}


def _is_own(filename: str) -> bool:
    own = _own_cache.get(filename)
    if own is None:
        own = _own_cache[filename] = os.path.realpath(filename) in _OWN_FILES
    return own


def _library_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    try:
        import site

        roots.update(os.path.realpath(p) for p in site.getsitepackages())
        roots.add(os.path.realpath(site.getusersitepackages()))
    except Exception:  # noqa: BLE001, S110 - some embedded interpreters lack site's helpers
        pass
    for module in (sklearn, sys.modules.get("joblib")):
        if module is not None and getattr(module, "__file__", None):
            roots.add(os.path.dirname(os.path.realpath(module.__file__)))
    return tuple(sorted(r + os.sep for r in roots if r))


_roots: tuple[str, ...] | None = None
_file_kinds: dict[str, bool] = {}
_MODEL_SELECTION = os.path.join(os.path.dirname(os.path.realpath(sklearn.__file__)), "model_selection") + os.sep


def _is_library(filename: str) -> bool:
    known = _file_kinds.get(filename)
    if known is None:
        global _roots
        if _roots is None:
            _roots = _library_roots()
        real = os.path.realpath(filename) if not filename.startswith("<") else filename
        known = filename.startswith("<frozen ") or real.startswith(_roots) or "site-packages" in real.split(
            os.sep
        ) or "dist-packages" in real.split(os.sep)
        _file_kinds[filename] = known
    return known


def _caller() -> tuple[str, Any, Any]:
    """Who called the fit: ``("user", None, None)``, ``("library", entry, cv)`` or ``("worker", ...)``.

    ``entry`` is the library frame called directly by user code; ``cv`` the outermost frame of
    scikit-learn's model selection between the two, if any.
    """
    frame = sys._getframe(2)
    while frame is not None and _is_own(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None or not _is_library(frame.f_code.co_filename):
        return ("user", None, None)
    entry = cv = None
    while frame is not None and _is_library(frame.f_code.co_filename):
        if os.path.realpath(frame.f_code.co_filename).startswith(_MODEL_SELECTION):
            cv = frame
        entry = frame
        frame = frame.f_back
    if frame is None:
        return ("worker", None, None)
    return ("library", entry, cv)


_GROUP_KEY = "__autotrack_group__"


class _Group:
    """Lives in the locals of the model-selection call; when that call returns, the group run ends."""

    def __init__(self, run: autotrack.Run) -> None:
        self.run = run
        weakref.finalize(self, _end_group, run)


def _end_group(run: autotrack.Run) -> None:
    try:
        run.end("finished")
    except Exception as exc:  # noqa: BLE001 - runs in a finalizer
        report_failure("sklearn: ending a cross-validation group run", exc)


def _group_run(entry: Any, cv: Any, estimator: Any, settings: _Settings) -> autotrack.Run | None:
    if entry.f_code.co_name == "<module>":  # a module's namespace outlives any call: no group
        return None
    local_vars = entry.f_locals
    group = local_vars.get(_GROUP_KEY)
    if isinstance(group, _Group) and not group.run.ended:
        return group.run
    owner = cv.f_locals.get("self")
    what = type(owner).__name__ if cv.f_code.co_name == "fit" and owner is not None else cv.f_code.co_name
    run = autotrack.start_run(
        f"{what}-{type(estimator).__name__}" if settings.run_name is None else settings.run_name,
        experiment=settings.experiment,
        tags={"autotrack.group": what, "autotrack.integration": _INTEGRATION, "estimator": _class_path(estimator)},
        activate=False,  # the group is a container: runs the user starts meanwhile are not its children
    )
    local_vars[_GROUP_KEY] = _Group(run)
    return run


# -- recording one fit --------------------------------------------------------------------------


def _record(estimator: Any, call: Callable[[], Any], X: Any, y: Any, settings: _Settings, *,
            explicit: bool) -> tuple[Any, autotrack.Run | None, str | None]:
    """Run ``call`` (the estimator's fit) inside a run when the grouping rule says so.
    Returns the fit's result, the run (None when no run was made) and the training data's hash."""
    if _depth.value > 0 or disabled():  # AUTOTRACK_DISABLE=1 turns Tracked into its inner estimator too
        return _nested(call), None, None
    run = None
    try:
        kind, entry, cv = _caller()
        if kind != "user" and cv is None and not explicit:
            return _nested(call), None, None
        parent = _group_run(entry, cv, estimator, settings) if cv is not None else None
        tags = {"estimator": _class_path(estimator), "sklearn_version": sklearn.__version__,
                "autotrack.integration": _INTEGRATION, **(settings.tags or {})}
        run = autotrack.start_run(settings.run_name, experiment=settings.experiment, tags=tags, parent=parent)
    except Exception as exc:  # noqa: BLE001 - recording must never stop the user's fit
        report_failure("sklearn: starting a run", exc)
        if run is None:
            return _nested(call), None, None
    _depth.value += 1
    start = time.perf_counter()
    try:
        result = call()
    except BaseException as exc:
        _depth.value -= 1
        try:
            run.end("killed" if isinstance(exc, KeyboardInterrupt) else "failed", error=exc)
        except Exception as ours:  # noqa: BLE001 - the user's exception is the one to see
            report_failure("sklearn: ending a failed run", ours)
        raise
    fit_time = time.perf_counter() - start
    _depth.value -= 1
    train_hash = None
    try:
        with suspended():
            train_hash = _log_fit(run, estimator, X, y, settings, fit_time)
    except Exception as exc:  # noqa: BLE001
        try:  # a flag on the run: what is missing from it, and why
            run.set_tags({"autotrack.recording_error": f"{type(exc).__name__}: {exc}"[:500]})
        finally:
            run.end("finished")
        report_failure("sklearn: recording a fit", exc)
    run.end("finished")
    return result, run, train_hash


def _nested(call: Callable[[], Any]) -> Any:
    _depth.value += 1
    try:
        return call()
    finally:
        _depth.value -= 1


def _log_fit(run: autotrack.Run, est: Any, X: Any, y: Any, settings: _Settings, fit_time: float) -> str | None:
    """Record a finished fit; returns the training data's hash when it computed one."""
    train_hash = None
    run.log_params(_params(est))
    run.set_info("model", _model_info(est))
    if settings.log_data:
        entries = {"train": X, "train_y": y}
        if settings.eval_set is not None:
            entries.update(validation=settings.eval_set[0], validation_y=settings.eval_set[1])
        described = {name: _describe(obj) for name, obj in entries.items() if obj is not None}
        _log_data(run, described)
        train_hash = described["train"].get("hash")
    run.log_metric("train/fit_time", fit_time, step=0)
    if settings.log_metrics:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # predicting on the training data may warn; that is not the user's fit
            _log_task_metrics(run, est, X, y, "train")
            _log_curves(run, est)
            if settings.eval_set is not None:
                _log_task_metrics(run, est, settings.eval_set[0], settings.eval_set[1], "val")
    if _is_search(est):
        _log_search(run, est, settings)
    if settings.log_model:
        model = getattr(est, "best_estimator_", None) if _is_search(est) else est
        if model is not None:
            _log_model(run, model)
    return train_hash


def _class_path(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    public = module.split("._")[0] if module.startswith("sklearn.") else module
    return f"{public}.{cls.__qualname__}"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, type) or callable(value):
        return getattr(value, "__qualname__", repr(value))
    return value


def _params(est: Any) -> dict[str, Any]:
    try:
        params = est.get_params(deep=True)
    except Exception:  # noqa: BLE001 - a third-party estimator with a broken get_params
        return {}
    return {k: _plain(v) for k, v in params.items()}


def _is_search(est: Any) -> bool:
    return hasattr(est, "cv_results_") and hasattr(est, "best_params_") or (
        hasattr(est, "cv_results_") and type(est).__name__.endswith("SearchCV")
    )


def _structure(est: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"class": _class_path(est)}
    if depth > 8 or not hasattr(est, "get_params"):
        return out
    try:
        params = est.get_params(deep=False)
    except Exception:  # noqa: BLE001
        return out
    for key, value in params.items():
        if hasattr(value, "get_params") and not isinstance(value, type):
            out[key] = _structure(value, depth + 1)
        elif isinstance(value, list) and value and all(
            isinstance(t, tuple) and len(t) >= 2 and isinstance(t[0], str) for t in value
        ):
            items = []
            for item in value:
                node = {"name": item[0]}
                step = item[1]
                node.update(_structure(step, depth + 1) if hasattr(step, "get_params") else {"value": str(step)})
                if len(item) > 2:
                    node["columns"] = repr(item[2])[:200]
                items.append(node)
            out[key] = items
    return out


def _model_info(est: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"framework": "scikit-learn", "sklearn_version": sklearn.__version__,
                            "class": _class_path(est), "repr": repr(est)[:4000], "structure": _structure(est)}
    n_features = getattr(est, "n_features_in_", None)
    if n_features is not None:
        info["n_features_in"] = int(n_features)
    classes = getattr(est, "classes_", None)
    if classes is not None and np.ndim(classes) == 1:
        info["classes"] = [_plain(c) for c in list(classes)[:1000]]
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        info["feature_names_in"] = [str(n) for n in list(names)[:1000]]
    return info


# -- data ---------------------------------------------------------------------------------------


def _log_data(run: autotrack.Run, entries: dict[str, dict[str, Any]]) -> None:
    if _capture_log_data is not None:
        for name, entry in entries.items():
            _capture_log_data(run, name, entry)
    else:
        run.set_info("data", entries)


def _describe(data: Any) -> dict[str, Any]:
    """Type, shape, dtypes, feature names and content hash of one input (section ``data``)."""
    out: dict[str, Any] | None = None
    if _capture_fingerprint is not None:
        try:
            out = dict(_capture_fingerprint(data))
        except Exception:  # noqa: BLE001 - objects it cannot describe: described below
            out = None
    if out is None:
        out = {"type": f"{type(data).__module__}.{type(data).__qualname__}"}
        digest = _fingerprint(data)
        if digest is not None:
            out["hash"] = digest
    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "dtypes"):  # a pandas-like DataFrame
        out["shape"] = list(data.shape)
        out["feature_names"] = [str(c) for c in list(columns)[:1000]]
        out.setdefault("dtypes", {str(c): str(t) for c, t in list(data.dtypes.items())[:1000]})
    elif hasattr(data, "dtype") and hasattr(data, "shape"):  # ndarray, Series, sparse matrix
        out["shape"] = list(data.shape)
        out.setdefault("dtype", str(data.dtype))
        if getattr(data, "name", None) is not None:
            out["name"] = str(data.name)
        if hasattr(data, "nnz"):
            out["nnz"] = int(data.nnz)
    elif "shape" not in out:
        try:
            arr = np.asarray(data)
            out["shape"] = list(arr.shape)
            out.setdefault("dtype", str(arr.dtype))
        except Exception:  # noqa: BLE001, S110 - anything array-like may be passed to fit
            pass
    return out


def _fingerprint(data: Any) -> str | None:
    """A content hash, ``blake2b_128:<hex>`` (used when the core's fingerprint cannot describe ``data``)."""
    if _capture_fingerprint is not None:
        try:
            fp = _capture_fingerprint(data)
            if isinstance(fp, Mapping) and isinstance(fp.get("hash"), str):
                return fp["hash"]
        except Exception:  # noqa: BLE001, S110 - fall back to our own
            pass
    try:
        h = hashlib.blake2b(digest_size=16)
        if hasattr(data, "columns") and hasattr(data, "dtypes"):
            import pandas as pd

            h.update(repr(list(data.columns)).encode())
            values = pd.util.hash_pandas_object(data, index=False).to_numpy()
            _hash_array(h, values)
        elif hasattr(data, "indptr") and hasattr(data, "indices"):  # scipy sparse (CSR/CSC)
            h.update(repr((data.format, data.shape)).encode())
            for part in (data.data, data.indices, data.indptr):
                _hash_array(h, np.asarray(part))
        elif hasattr(data, "tocsr") and hasattr(data, "nnz"):
            return _fingerprint(data.tocsr())
        else:
            arr = np.asarray(data)
            if arr.dtype == object:
                h.update(repr(arr.shape).encode())
                h.update("\x00".join(map(str, arr.ravel()[:1_000_000])).encode())
            else:
                _hash_array(h, arr)
        return f"blake2b_128:{h.hexdigest()}"
    except Exception:  # noqa: BLE001 - a fingerprint is a nicety
        return None


def _hash_array(h: Any, arr: np.ndarray) -> None:
    h.update(repr((arr.dtype.str, arr.shape)).encode())
    if arr.nbytes > _FINGERPRINT_MAX_BYTES and arr.ndim >= 1 and len(arr) > 1:
        step = int(np.ceil(arr.nbytes / _FINGERPRINT_MAX_BYTES))
        arr = arr[::step]
        h.update(b"sampled:%d" % step)
    h.update(np.ascontiguousarray(arr).data)


# -- metrics ------------------------------------------------------------------------------------


def _log_task_metrics(run: autotrack.Run, est: Any, X: Any, y: Any, prefix: str) -> None:
    kind = get_tags(est).estimator_type
    if kind == "classifier" and y is not None:
        values = _classifier_metrics(est, X, y)
    elif kind == "regressor" and y is not None:
        values = _regressor_metrics(est, X, y)
    elif kind == "clusterer":
        values = _clusterer_metrics(est, X, training=prefix == "train")
    else:
        return
    if values:
        run.log_metrics({f"{prefix}/{k}": v for k, v in values.items()}, step=0)


def _argmax_predictors() -> tuple[type, ...]:
    """Classifiers whose ``predict`` is by definition ``classes_[argmax(predict_proba)]``: for
    them one pass over the data gives both (a forest's prediction pass is the costly part)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.ensemble._forest import ForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    return (ForestClassifier, DecisionTreeClassifier, HistGradientBoostingClassifier)


def _classifier_metrics(est: Any, X: Any, y: Any) -> dict[str, float]:
    """The metrics computed with numpy from one confusion matrix and one probability matrix;
    the definitions are scikit-learn's (``zero_division=0``, ROC AUC one-vs-rest macro), and the
    suite checks them against ``sklearn.metrics``."""
    y_true = np.asarray(y)
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true.ravel()
    if y_true.ndim != 1 or not hasattr(est, "predict"):
        return {}
    classes = getattr(est, "classes_", None)
    proba = None
    if hasattr(est, "predict_proba") and classes is not None and np.ndim(classes) == 1:
        proba = np.asarray(est.predict_proba(X))
        if proba.ndim != 2 or proba.shape[1] != len(classes):
            proba = None
    if proba is not None and isinstance(est, _argmax_predictors()):
        y_pred = np.asarray(classes).take(np.argmax(proba, axis=1))
    else:
        y_pred = np.asarray(est.predict(X))
    try:
        labels, codes = np.unique(np.concatenate([y_true, y_pred.ravel()]), return_inverse=True)
    except TypeError:  # mixed label types
        return {}
    codes = codes.ravel()
    n, k = len(y_true), len(labels)
    cm = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    true_count, pred_count = cm.sum(axis=1).astype(float), cm.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_count > 0, tp / pred_count, 0.0)
        recall = np.where(true_count > 0, tp / true_count, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    weights = true_count / true_count.sum()
    out = {
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(recall[true_count > 0].mean()),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_weighted": float(precision @ weights),
        "recall_weighted": float(recall @ weights),
        "f1_weighted": float(f1 @ weights),
    }
    if proba is not None:
        out.update(_probability_metrics(y_true, proba, np.asarray(classes)))
    return out


def _probability_metrics(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    try:
        index = np.searchsorted(classes, y_true)
    except TypeError:
        return {}
    index = np.clip(index, 0, len(classes) - 1)
    if not np.array_equal(classes[index], y_true):  # labels the estimator never saw
        return {}
    proba = proba.astype(np.float64, copy=False)
    eps = np.finfo(proba.dtype).eps
    if not np.allclose(proba.sum(axis=1), 1.0, rtol=np.sqrt(eps)):
        return {}  # not probabilities: log loss and multiclass ROC AUC are undefined
    out = {"log_loss": float(-np.mean(np.log(np.clip(proba[np.arange(len(index)), index], eps, 1 - eps))))}
    present = np.bincount(index, minlength=len(classes)) > 0
    if len(classes) == 2 and present.all():
        out["roc_auc"] = _binary_auc(index == 1, proba[:, 1])
    elif len(classes) > 2 and present.all():
        out["roc_auc"] = float(np.mean([_binary_auc(index == c, proba[:, c]) for c in range(len(classes))]))
    return out


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with mid-ranks for ties (= the trapezoidal area)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _regressor_metrics(est: Any, X: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )

    if not hasattr(est, "predict"):
        return {}
    y_pred = est.predict(X)
    y_true = np.asarray(y)
    if np.ndim(y_pred) != y_true.ndim and y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true.ravel()
    out = {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mape": float(mean_absolute_percentage_error(y_true, y_pred)),
    }
    if len(y_true) >= 2:
        out["r2"] = float(r2_score(y_true, y_pred))
    return out


def _clusterer_metrics(est: Any, X: Any, *, training: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    if training and getattr(est, "inertia_", None) is not None:
        out["inertia"] = float(est.inertia_)
    labels = getattr(est, "labels_", None) if training else None
    if labels is None and hasattr(est, "predict"):
        labels = est.predict(X)
    if labels is None:
        return out
    labels = np.asarray(labels)
    n = len(labels)
    n_labels = len(np.unique(labels))
    if 2 <= n_labels <= n - 1:
        from sklearn.metrics import silhouette_score

        try:
            if n <= _SILHOUETTE_MAX:
                out["silhouette"] = float(silhouette_score(X, labels))
            else:
                out["silhouette"] = float(silhouette_score(X, labels, sample_size=_SILHOUETTE_MAX, random_state=0))
        except (ValueError, TypeError):  # non-numeric X (e.g. a pipeline's raw input)
            pass
    return out


def _final(est: Any) -> Any:
    for _ in range(8):
        if hasattr(est, "best_estimator_"):
            est = est.best_estimator_
        elif hasattr(est, "estimator_") and isinstance(est, Tracked):
            est = est.estimator_
        elif hasattr(est, "steps") and isinstance(getattr(est, "steps", None), list) and est.steps:
            est = est.steps[-1][1]
        else:
            break
    return est


def _log_curves(run: autotrack.Run, est: Any) -> None:
    final = _final(est)
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    boosting = isinstance(final, (GradientBoostingClassifier, GradientBoostingRegressor))
    curves = (
        ("loss_curve_", "train/loss"),
        ("validation_scores_", "val/score"),
        ("train_score_", "train/loss" if boosting else "train/score"),
        ("validation_score_", "val/score"),
    )
    for attr, key in curves:
        values = getattr(final, attr, None)
        if values is None:
            continue
        now = time.time()
        for step, value in enumerate(values):
            if value is not None:
                run.log_metric(key, value, step=step, time=now)
    n_iter = getattr(final, "n_iter_", None)
    if n_iter is not None:
        try:
            run.log_metric("train/n_iter", int(np.max(n_iter)), step=0)
        except (TypeError, ValueError):
            pass


# -- search CV ----------------------------------------------------------------------------------


def _log_search(parent: autotrack.Run, search: Any, settings: _Settings) -> None:
    best_params = getattr(search, "best_params_", None)
    if isinstance(best_params, Mapping):
        parent.log_params({"best": {k: _plain(v) for k, v in best_params.items()}})
    best_score = getattr(search, "best_score_", None)
    if best_score is not None:
        parent.log_metric("cv/best_score", best_score, step=0)
    results = search.cv_results_
    candidates = list(results["params"])
    n = len(candidates)
    cap = n if settings.max_child_runs is None else min(n, int(settings.max_child_runs))
    parent.set_tags({"autotrack.candidates": n, "autotrack.candidate_runs": cap})
    summary_keys = [k for k in results if k.startswith(("mean_", "std_", "rank_"))]
    split_keys: dict[str, list[tuple[int, str]]] = {}
    for key in results:
        if key.startswith("split") and "_" in key:
            head, rest = key.split("_", 1)
            if head[5:].isdigit():
                split_keys.setdefault(rest, []).append((int(head[5:]), key))
    for i in range(cap):
        child = autotrack.start_run(
            f"{parent.name}-candidate-{i}", experiment=parent.experiment, parent=parent,
            params={k: _plain(v) for k, v in candidates[i].items()},
            tags={"autotrack.candidate": i, "autotrack.integration": _INTEGRATION},
        )
        try:
            now = time.time()
            for key in summary_keys:
                value = results[key][i]
                if value is not np.ma.masked:
                    child.log_metric(f"cv/{key}", value, step=0, time=now)
            for rest, keys in split_keys.items():
                for split, key in keys:
                    value = results[key][i]
                    if value is not np.ma.masked:
                        child.log_metric(f"cv/split_{rest}", value, step=split, time=now)
        finally:
            child.end("finished")


# -- model artifacts ----------------------------------------------------------------------------


def _log_model(run: autotrack.Run, model: Any) -> None:
    meta: dict[str, Any] = {"class": _class_path(model), "sklearn_version": sklearn.__version__}
    data, name, problem = None, None, None
    try:
        import skops
        import skops.io as sio

        data = sio.dumps(model)
        untrusted = list(sio.get_untrusted_types(data=data))
        unloadable = [t for t in untrusted if "<lambda>" in t or "<locals>" in t]
        if unloadable:  # skops writes these, but cannot import them back
            problem, data = f"skops cannot load {unloadable}", None
        else:
            meta.update(format="skops", skops_version=skops.__version__, safe_to_load=True, untrusted_types=untrusted)
            name = "model.skops"
    except Exception as exc:  # noqa: BLE001 - skops missing, or a type it cannot write
        problem = f"skops: {type(exc).__name__}: {exc}"[:500]
    if data is None:
        try:
            import joblib

            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            data = buffer.getvalue()
            meta.update(format="joblib", safe_to_load=False, skops_error=problem)
            name = "model.joblib"
        except Exception as exc:  # noqa: BLE001 - e.g. a lambda: the user's model cannot be serialised
            reason = f"{problem}; joblib: {type(exc).__name__}: {exc}"[:500]
            run.set_tags({"autotrack.model_not_saved": reason})
            warnings.warn(f"autotrack: the fitted {type(model).__name__} could not be stored ({reason}); "
                          "the run has everything else.", RuntimeWarning, stacklevel=2)
            return
    run.log_bytes(data, name, kind="model", metadata=meta)


def load_model(run_id: str, *, trusted: list[str] | None = None, allow_pickle: bool = False,
               name: str | None = None) -> Any:
    """Load the model stored by a run (its newest artifact of kind ``model``, or ``name``).

    A ``skops`` file is loaded with skops' check of untrusted types: any type outside skops' safe
    defaults must be listed in ``trusted`` (review them first), else an error lists them. A
    ``joblib`` file is a pickle, which can run arbitrary code: it is loaded only with
    ``allow_pickle=True``.
    """
    record = autotrack.get_run(run_id)
    models = [a for a in record.artifacts if a.kind == "model" and not a.deleted and (name is None or a.name == name)]
    if not models:
        raise InvalidArgumentError(
            "run_id", run_id, "this run stored no model artifact; fit with Tracked(..., log_model=True) or autolog()"
        )
    artifact = models[-1]
    data = Path(artifact.path).read_bytes()  # type: ignore[arg-type]
    if artifact.sha256 and hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise InvalidArgumentError("run_id", run_id, f"the stored bytes of {artifact.name} do not match their sha256")
    fmt = artifact.metadata.get("format") or ("skops" if artifact.name.endswith(".skops") else "joblib")
    if fmt == "skops":
        import skops.io as sio

        untrusted = list(sio.get_untrusted_types(data=data))
        missing = [t for t in untrusted if t not in set(trusted or ())]
        if missing:
            raise InvalidArgumentError(
                "trusted", trusted,
                f"the model holds types skops does not trust by default: {missing}. Review them, then pass "
                f"trusted={missing!r}",
            )
        return sio.loads(data, trusted=untrusted)
    if not allow_pickle:
        raise InvalidArgumentError(
            "allow_pickle", allow_pickle,
            f"{artifact.name} is a pickle (joblib), which runs arbitrary code when loaded; pass "
            "allow_pickle=True only if you trust whoever wrote this store",
        )
    import joblib

    return joblib.load(io.BytesIO(data))


def _log_late_metric(run_id: str, store_root: str | None, key: str, value: Any) -> None:
    """Append a point to a run that has ended (``Tracked.score`` after ``fit``)."""
    from autotrack import _run as core
    from autotrack._recorder import recorder_for

    store = core.get_store()
    if store_root is not None and str(store.root) != store_root:
        store = core._stores.get(store_root) or core.Store(store_root)
    with _late_lock:
        step = _late_steps.get((run_id, key))
        if step is None:
            step = store.last_steps(run_id).get(key, -1)
        step += 1
        _late_steps[(run_id, key)] = step
    recorder_for(store).append((run_id, key, step, float(value), time.time()))


_late_lock = threading.Lock()
_late_steps: dict[tuple[str, str], int] = {}


# -- the meta-estimator -------------------------------------------------------------------------


def _estimator_has(attr: str) -> Callable[[Any], bool]:
    def check(self: Tracked) -> bool:
        getattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator, attr)
        return True

    return check


class Tracked(MetaEstimatorMixin, BaseEstimator):
    """Wrap an estimator so that each ``fit`` is recorded as one autotrack run.

    Scikit-learn cannot tell it from the estimator it wraps: it has the same methods (delegated
    with ``available_if``), the same tags, and fits a clone in ``estimator_``.

    Parameters
    ----------
    estimator : the estimator to fit and record (cloned by ``fit``).
    run_name, experiment, tags : the run's name (generated when None), experiment and extra tags.
    log_model : store the fitted estimator as an artifact of kind ``model`` (skops).
    log_metrics : compute task metrics on the training data (and on ``eval_set``) after fit.
    log_data : record shape, dtypes, feature names and fingerprint of X and y (section ``data``).
    eval_set : ``(X_val, y_val)``: the same metrics on it under ``val/``.
    max_child_runs : for a search CV, record at most this many candidates as child runs
        (None: all).
    register_as : a model name: after each fit, register the stored model as the next version of
        that model (``autotrack.register_model``); the version is in ``model_version_``.

    Attributes
    ----------
    estimator_ : the fitted clone.
    run_id_ : id of the run of the last fit (None when the fit was nested in a recorded fit).
    model_version_ : the :class:`autotrack.ModelVersion` registered by the last fit (``register_as``).
    """

    def __init__(self, estimator: Any, *, run_name: str | None = None, experiment: str | None = None,
                 tags: Mapping[str, Any] | None = None, log_model: bool = True, log_metrics: bool = True,
                 log_data: bool = True, eval_set: Any = None, max_child_runs: int | None = None,
                 register_as: str | None = None) -> None:
        self.estimator = estimator
        self.run_name = run_name
        self.experiment = experiment
        self.tags = tags
        self.log_model = log_model
        self.log_metrics = log_metrics
        self.log_data = log_data
        self.eval_set = eval_set
        self.max_child_runs = max_child_runs
        self.register_as = register_as

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Tracked:
        """Fit a clone of ``estimator`` on ``X, y`` (``fit_params`` passed through) and record it."""
        self._fit("fit", X, y, fit_params)
        return self

    @available_if(_estimator_has("fit_transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self._fit("fit_transform", X, y, fit_params)

    @available_if(_estimator_has("fit_predict"))
    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self._fit("fit_predict", X, y, fit_params)

    @available_if(_estimator_has("partial_fit"))
    def partial_fit(self, X: Any, y: Any = None, **fit_params: Any) -> Tracked:
        """Delegated without recording (a run per batch would flood the store)."""
        if not hasattr(self, "estimator_"):
            self.estimator_ = clone(self.estimator)
            self.run_id_ = None
        self.estimator_.partial_fit(X, y, **fit_params)
        return self

    def _fit(self, method: str, X: Any, y: Any, fit_params: dict[str, Any]) -> Any:
        settings = _Settings(self.run_name, self.experiment, self.tags, self.log_model, self.log_metrics,
                             self.log_data, self.eval_set, self.max_child_runs)
        _check_settings(settings)
        if self.register_as is not None and (not isinstance(self.register_as, str) or not self.log_model):
            raise InvalidArgumentError("register_as", self.register_as, "pass a model name (str) with log_model=True, "
                                       "or None not to register")
        self.estimator_ = clone(self.estimator)
        fitted = getattr(self.estimator_, method)
        result, run, train_hash = _record(self.estimator_, lambda: fitted(X, y, **fit_params), X, y, settings,
                                          explicit=True)
        self.run_id_ = run.id if run is not None else None
        self._run_store = str(run.store.root) if run is not None else None
        # tells test data from the training data in score()
        self._train_fingerprint = train_hash or (_fingerprint(X) if run is not None else None)
        if self.register_as is not None and run is not None:  # issue 18: opt-in registration
            self.model_version_ = autotrack.register_model(self.register_as, run=run)
        return result

    # -- delegated methods ------------------------------------------------------------------

    @available_if(_estimator_has("predict"))
    def predict(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict(X, **kwargs)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_proba(X, **kwargs)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X, **kwargs)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.decision_function(X, **kwargs)

    @available_if(_estimator_has("score_samples"))
    def score_samples(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.score_samples(X, **kwargs)

    @available_if(_estimator_has("transform"))
    def transform(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.transform(X, **kwargs)

    @available_if(_estimator_has("inverse_transform"))
    def inverse_transform(self, X: Any, **kwargs: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.inverse_transform(X, **kwargs)

    @available_if(_estimator_has("score"))
    def score(self, X: Any, y: Any = None, **kwargs: Any) -> float:
        """The inner estimator's score; on data other than the training data it is also
        recorded in the fit's run as ``test/score`` (step = how many times before)."""
        check_is_fitted(self)
        value = self.estimator_.score(X, y, **kwargs)
        run_id = getattr(self, "run_id_", None)
        if run_id is not None:
            try:
                if _fingerprint(X) != getattr(self, "_train_fingerprint", None):
                    _log_late_metric(run_id, getattr(self, "_run_store", None), "test/score", value)
            except Exception as exc:  # noqa: BLE001
                report_failure("sklearn: recording test/score", exc)
        return value

    @available_if(_estimator_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features: Any = None) -> Any:
        check_is_fitted(self)
        return self.estimator_.get_feature_names_out(input_features)

    @available_if(_estimator_has("set_output"))
    def set_output(self, *, transform: str | None = None) -> Tracked:
        self.estimator.set_output(transform=transform)
        if hasattr(self, "estimator_"):
            self.estimator_.set_output(transform=transform)
        return self

    # -- delegated attributes ---------------------------------------------------------------

    @property
    def classes_(self) -> Any:
        return self.estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self) -> Any:
        return self.estimator_.feature_names_in_

    # -- sklearn protocol -------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimator_")

    def __sklearn_tags__(self) -> Any:
        tags = deepcopy(get_tags(self.estimator))
        tags.array_api_support = False  # the recorded metrics are computed with numpy
        return tags

    def _sk_visual_block_(self) -> Any:
        from sklearn.utils._repr_html.estimator import _VisualBlock

        inner = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        return _VisualBlock("serial", [inner], names=[f"estimator: {type(inner).__name__}"],
                            name_details=[str(inner)], dash_wrapped=True)


# -- autolog ------------------------------------------------------------------------------------

_autolog_settings = _Settings()
_FIT_METHODS = ("fit", "fit_transform", "fit_predict")


def autolog(disable: bool = False, *, log_models: bool = True, log_metrics: bool = True, log_data: bool = True,
            max_child_runs: int | None = None, experiment: str | None = None) -> None:
    """Record every scikit-learn fit that user code makes, as if the estimator were ``Tracked``.

    Patches ``fit``, ``fit_transform`` and ``fit_predict`` of every scikit-learn estimator (and
    of the mixins that provide them, so estimators built on scikit-learn's mixins are included).
    Which fits become runs: see this module's docstring. ``autolog(disable=True)`` undoes it.
    """
    global _autolog_settings
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    unpatch(_INTEGRATION)
    if disable:
        return
    settings = _Settings(experiment=experiment, log_model=log_models, log_metrics=log_metrics,
                         log_data=log_data, max_child_runs=max_child_runs)
    _check_settings(settings)
    _autolog_settings = settings
    if log_models:
        try:  # importing skops.io scans all of scikit-learn (seconds): pay it here, not in a fit
            import skops.io  # noqa: F401
        except ImportError:
            pass
    for owner, name in _patch_targets():
        patch(_INTEGRATION, owner, name, _make_replacement(name))


def _patch_targets() -> list[tuple[Any, str]]:
    """(owner, name) pairs: the class defining each fit method of every scikit-learn estimator.
    Methods behind ``available_if`` (``Pipeline.fit_transform``) are patched inside their
    descriptor (its ``fn``), so ``hasattr`` keeps telling the truth."""
    from sklearn.utils import all_estimators
    from sklearn.utils._available_if import _AvailableIfDescriptor

    classes = [cls for _, cls in all_estimators()]
    try:
        from sklearn.model_selection._search import BaseSearchCV

        classes.append(BaseSearchCV)
    except ImportError:  # pragma: no cover
        pass
    seen: set[int] = set()
    targets: list[tuple[Any, str]] = []
    for cls in classes:
        for name in _FIT_METHODS:
            owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
            if owner is None or not owner.__module__.startswith("sklearn"):
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


def _make_replacement(method: str) -> Callable[..., Any]:
    def replacement(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
        if _depth.value > 0:
            return _nested(lambda: original(self, *args, **kwargs))
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        result, _, _ = _record(self, lambda: original(self, *args, **kwargs), X, y, _autolog_settings,
                               explicit=False)
        return result

    replacement.__name__ = f"autotrack_sklearn_{method}"
    return replacement
