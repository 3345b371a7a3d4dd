"""Task metrics after a fit, with ``sklearn.metrics``' definitions (the ones users compare against),
and iteration curves as step metrics.

Each metric is computed and logged on its own: one that raises (an estimator's odd output, labels
the metric cannot take) is reported through ``fail`` and the others are still recorded. Predictions
are made once per data set and shared by every metric and the evaluation plots. The eleven label
metrics (accuracy, balanced accuracy, precision/recall/F1 averaged three ways) come from one
confusion matrix (:func:`label_scores`, checked against scikit-learn's functions by the tests); data
it leaves to scikit-learn (labels outside ``classes_``, odd weights) goes through those functions.
Log loss is scikit-learn's definition on the probabilities of the true classes (:func:`_log_loss`),
ROC AUC the area under the evaluation plots' own ``roc_curve`` when they are made (otherwise
scikit-learn's ``roc_auc_score``); the tests hold both to scikit-learn's functions.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.utils import get_tags

import autotrack
from autotrack.integrations import _evalplots

SILHOUETTE_MAX = 2000
Fail = Callable[[str, BaseException], None]


def log_task_metrics(run: autotrack.Run, est: Any, X: Any, y: Any, prefix: str, fail: Fail,
                     sample_weight: Any = None, plots: bool = False) -> None:
    """``<prefix>/<metric>`` of ``est`` on ``(X, y)``, weighted by ``sample_weight`` when the fit
    was (the scores then mean what the fit optimised). ``plots``: a classifier's evaluation plots
    of the same predictions too (:mod:`autotrack.integrations._evalplots`)."""
    kind = get_tags(est).estimator_type
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    failed: list[tuple[str, BaseException]] = []  # reported after the block that silences warnings
    made: dict[str, Any] = {}  # the classifier's predictions, shared with the plots

    def note(what: str, exc: BaseException) -> None:
        failed.append((what, exc))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # predicting on the training data may warn; that is not the user's fit
        if kind == "classifier" and y is not None:
            computed = _classifier(est, X, y, prefix, note, w, made)
        elif kind == "regressor" and y is not None:
            computed = _regressor(est, X, y, prefix, note, w)
        elif kind == "clusterer":
            computed = _clusterer(est, X, prefix, note)
        else:
            computed = []
        docs = None
        if plots and made.get("y_pred") is not None and made.get("classes") is not None:
            docs = _evalplots.plot_docs(prefix, made["y_true"], made["y_pred"], made["scores"], made["classes"],
                                        note, w)
            made["curves"] = (docs or {}).get("roc_curve")
        now = time.time()
        for key, compute in computed:
            try:
                run.log_metric(f"{prefix}/{key}", compute(), step=0, time=now)
            except Exception as exc:  # noqa: BLE001 - one metric failing leaves the others
                note(f"metric {prefix}/{key}", exc)
    if docs is not None:
        _evalplots.store_plots(run, prefix, docs, note)
    for what, exc in failed:
        fail(what, exc)


def _predict(what: str, fn: Callable[[], Any], fail: Fail) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        fail(what, exc)
        return None


_ARGMAX_PREDICTORS = {"sklearn.ensemble": ("RandomForestClassifier", "ExtraTreesClassifier",
                                             "HistGradientBoostingClassifier"),
                      "sklearn.tree": ("DecisionTreeClassifier", "ExtraTreeClassifier")}


def _argmax_predictors() -> tuple[type, ...]:
    """Classifiers whose ``predict`` is by definition ``classes_[argmax(predict_proba)]``: one pass
    over the data gives both (a forest's prediction pass is the costly part). Taken from the
    modules already imported: an estimator of a module the script did not import is none of them."""
    out = []
    for module_name, names in _ARGMAX_PREDICTORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            out.extend(cls for cls in (getattr(module, n, None) for n in names) if cls is not None)
    return tuple(out)


#: rows below which a forest's prediction pass is not worth splitting
SPLIT_ROWS = 8192


def _by_row_blocks(est: Any, predict: Callable[[Any], Any], X: Any) -> Any:
    """``predict(X)``; for a single-job forest on many rows, over blocks of rows in threads, one per
    core the process may use (at most 4). Each row's prediction is the same sum over the same trees
    in the same order, so the result is bit for bit the one pass's, and the trees' traversal runs
    without the GIL: the pass on the training data (the costly part of the metrics, 2-3 % of a
    forest's fit) takes about half the time on two cores. Whole-forest parallelism (``n_jobs``)
    the user chose is left as it is."""
    ensemble = sys.modules.get("sklearn.ensemble")
    if ensemble is None or type(est) not in (ensemble.RandomForestClassifier, ensemble.ExtraTreesClassifier) \
            or getattr(est, "n_jobs", None) not in (None, 1):
        return predict(X)
    if isinstance(X, np.ndarray):
        take = X.__getitem__
    elif type(X).__name__ == "DataFrame" and hasattr(X, "iloc"):
        take = X.iloc.__getitem__
    else:
        return predict(X)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    blocks = min(cores, 4)
    if blocks < 2 or len(X) < SPLIT_ROWS:
        return predict(X)
    edges = np.linspace(0, len(X), blocks + 1).astype(int)
    with ThreadPoolExecutor(blocks, thread_name_prefix="autotrack-predict") as pool:
        parts = list(pool.map(lambda i: np.asarray(predict(take(slice(edges[i], edges[i + 1])))), range(blocks)))
    return np.concatenate(parts)


def _classifier(est: Any, X: Any, y: Any, prefix: str, fail: Fail, w: np.ndarray | None = None,
                made: dict[str, Any] | None = None) -> list[tuple[str, Callable[[], float]]]:
    y_true = np.asarray(y)
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true.ravel()
    if y_true.ndim != 1 or not hasattr(est, "predict"):
        return []
    classes = getattr(est, "classes_", None)
    proba = None
    if hasattr(est, "predict_proba") and classes is not None and np.ndim(classes) == 1:
        proba = _predict(f"{prefix} predict_proba", lambda: np.asarray(_by_row_blocks(est, est.predict_proba, X)), fail)
        if proba is not None and (proba.ndim != 2 or proba.shape[1] != len(classes)):
            proba = None
    if proba is not None and type(est) in _argmax_predictors():
        y_pred = np.asarray(classes).take(np.argmax(proba, axis=1))
    else:
        y_pred = _predict(f"{prefix} predict", lambda: np.asarray(est.predict(X)), fail)
    if made is not None and classes is not None and np.ndim(classes) == 1:
        made.update(y_true=y_true, y_pred=y_pred, classes=classes, scores=proba)
    out: list[tuple[str, Callable[[], float]]] = []
    if y_pred is not None:
        binary = (classes is not None and np.ndim(classes) == 1 and len(classes) == 2
                  and np.isin(y_true, classes).all())
        names = [*LABEL_METRICS, *(BINARY_METRICS if binary else ())]
        scores = None
        if classes is not None and np.ndim(classes) == 1:
            try:
                scores = label_scores(y_true, y_pred, np.asarray(classes), w)
            except Exception:  # noqa: BLE001 - sklearn.metrics' own functions below say what is wrong
                scores = None
        if scores is not None:
            out += [(name, lambda name=name: scores[name]) for name in names]
        else:
            out += _sklearn_label_metrics(y_true, y_pred, classes, w, names)
    if proba is not None and _are_probabilities(proba):
        labels = np.asarray(classes)
        if np.isin(y_true, labels).all():  # labels the estimator never saw: log loss is undefined
            out.append(("log_loss", lambda: _log_loss(y_true, proba, labels, w)))
            if len(np.unique(y_true)) == len(labels) >= 2:  # every class present: ROC AUC is defined
                out.append(("roc_auc", lambda: _roc_auc(y_true, proba, labels, w, made)))
    return out


def _usable_weights(w: np.ndarray, n: int) -> bool:
    """Weights the direct computations take: one per row, finite, non-negative, a positive sum
    (anything else goes to scikit-learn's functions, which say what is wrong with it)."""
    return bool(w.shape == (n,) and np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0)


def _sorted(labels: np.ndarray) -> bool:
    try:
        return bool(np.all(labels[:-1] < labels[1:]))
    except TypeError:
        return False


def _log_loss(y_true: np.ndarray, proba: np.ndarray, labels: np.ndarray, w: np.ndarray | None) -> float:
    """``sklearn.metrics.log_loss(y_true, proba, labels=labels, sample_weight=w)``: the mean of
    ``-log`` of each row's probability of its true class, clipped to ``[eps, 1 - eps]`` of the
    probabilities' dtype (the definition of scikit-learn 1.6 to 1.9), without its input checks
    (a label binarizer and a one-hot matrix: ~5 ms on 20,000 rows). Input those checks are for
    (probabilities outside [0, 1], labels not in order, odd weights) goes to scikit-learn."""
    floating = proba.dtype in (np.float16, np.float32, np.float64)
    p = proba if floating else proba.astype(np.float64)
    usable = w is None or _usable_weights(w, len(y_true))
    if not (len(labels) >= 2 and _sorted(labels) and usable and p.min() >= 0 and p.max() <= 1):
        return float(skm.log_loss(y_true, proba, labels=labels, sample_weight=w))
    rows = p[np.arange(len(y_true)), np.searchsorted(labels, y_true)]
    eps = np.finfo(p.dtype).eps
    return float(np.average(-np.log(np.clip(rows, eps, 1 - eps)), weights=w))


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, labels: np.ndarray, w: np.ndarray | None,
             made: dict[str, Any] | None) -> float:
    """``roc_auc_score`` (one-vs-rest, macro average, for more than two classes): the area under
    each class's ``roc_curve``, which the evaluation plots have already made when they are on
    (the same call on the same scores: the same numbers); otherwise scikit-learn's function."""
    curves = (made or {}).get("curves")
    if curves and not curves["skipped"] and len(curves["curves"]) == (1 if len(labels) == 2 else len(labels)) \
            and _sorted(labels) and all(isinstance(c["auc"], float) for c in curves["curves"]):
        return float(np.mean([c["auc"] for c in curves["curves"]]))
    if len(labels) == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1], sample_weight=w))
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels, sample_weight=w))



#: label metrics of every classifier, and (``BINARY_METRICS``) of the positive class ``classes_[1]``
#: of a binary one
LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                 "precision_weighted", "recall_weighted", "f1_weighted")
BINARY_METRICS = ("precision", "recall", "f1")


def label_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray,
                 w: np.ndarray | None) -> dict[str, float] | None:
    """The label metrics from one confusion matrix, with ``sklearn.metrics``' definitions:
    ``accuracy_score``, ``balanced_accuracy_score`` and ``precision_recall_fscore_support(
    zero_division=0)`` averaged ``macro``/``weighted`` over the labels present in ``y_true`` or
    ``y_pred`` (scikit-learn's ``unique_labels``), and ``binary`` of ``classes[1]``; weighted by
    ``w`` like them. Eleven scikit-learn calls each check their input and build the same matrix
    again: ~40 ms on 20,000 rows, 2-3 % of a one-second forest fit; this is ~1 ms. None (the
    caller then uses scikit-learn's functions) when a label is outside ``classes`` or the weights
    are not finite and non-negative with a positive sum."""
    counts = _evalplots.confusion_matrix(y_true, y_pred, classes, None)
    if int(counts.sum()) != len(y_true) or len(y_true) == 0:
        return None  # a label outside classes_: scikit-learn decides what that means
    cm = counts.astype(np.float64)
    if w is not None:
        if not _usable_weights(w, len(y_true)):
            return None
        cm = _evalplots.confusion_matrix(y_true, y_pred, classes, w).astype(np.float64)
    present = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    tp_all, true_all, pred_all = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    tp, true, pred = tp_all[present], true_all[present], pred_all[present]
    if not (true > 0).any():
        return None

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b != 0)  # zero_division=0

    precision, recall, f1 = ratio(tp, pred), ratio(tp, true), ratio(2 * tp, true + pred)
    out = {
        "accuracy": float(tp_all.sum() / cm.sum()),
        "balanced_accuracy": float(np.mean(tp[true > 0] / true[true > 0])),  # classes never true: left out
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_weighted": float(np.average(precision, weights=true)),
        "recall_weighted": float(np.average(recall, weights=true)),
        "f1_weighted": float(np.average(f1, weights=true)),
    }
    if len(classes) == 2:
        one = slice(1, 2)
        out["precision"] = float(ratio(tp_all[one], pred_all[one])[0])
        out["recall"] = float(ratio(tp_all[one], true_all[one])[0])
        out["f1"] = float(ratio(2 * tp_all[one], true_all[one] + pred_all[one])[0])
    return out


def _sklearn_label_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Any, w: np.ndarray | None,
                           names: list[str]) -> list[tuple[str, Callable[[], float]]]:
    """The label metrics by ``sklearn.metrics``' functions, for data :func:`label_scores` leaves
    to them (labels outside ``classes_``, odd weights): they say what is wrong, metric by metric."""
    prf: dict[str, Any] = {}

    def averaged(average: str, which: int) -> Callable[[], float]:
        def value() -> float:
            if average not in prf:
                kwargs = {"pos_label": classes[1]} if average == "binary" else {}
                prf[average] = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                                   zero_division=0, sample_weight=w, **kwargs)
            return float(prf[average][which])
        return value

    functions: dict[str, Callable[[], float]] = {
        "accuracy": lambda: float(skm.accuracy_score(y_true, y_pred, sample_weight=w)),
        "balanced_accuracy": lambda: float(skm.balanced_accuracy_score(y_true, y_pred, sample_weight=w)),
    }
    for average, suffix in (("macro", "_macro"), ("weighted", "_weighted"), ("binary", "")):
        for which, name in enumerate(("precision", "recall", "f1")):
            functions[name + suffix] = averaged(average, which)
    return [(name, functions[name]) for name in names]


def _are_probabilities(proba: np.ndarray) -> bool:
    proba = proba.astype(np.float64, copy=False)
    return bool(np.allclose(proba.sum(axis=1), 1.0, rtol=np.sqrt(np.finfo(np.float64).eps)))


def _regressor(est: Any, X: Any, y: Any, prefix: str, fail: Fail,
               w: np.ndarray | None = None) -> list[tuple[str, Callable[[], float]]]:
    if not hasattr(est, "predict"):
        return []
    y_pred = _predict(f"{prefix} predict", lambda: est.predict(X), fail)
    if y_pred is None:
        return []
    y_true = np.asarray(y)
    if np.ndim(y_pred) != y_true.ndim and y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true.ravel()
    out = [("rmse", lambda: float(skm.root_mean_squared_error(y_true, y_pred, sample_weight=w))),
           ("mae", lambda: float(skm.mean_absolute_error(y_true, y_pred, sample_weight=w))),
           ("mape", lambda: float(skm.mean_absolute_percentage_error(y_true, y_pred, sample_weight=w)))]
    if len(y_true) >= 2:
        out.append(("r2", lambda: float(skm.r2_score(y_true, y_pred, sample_weight=w))))
    return out


def _clusterer(est: Any, X: Any, prefix: str, fail: Fail) -> list[tuple[str, Callable[[], float]]]:
    training = prefix == "train"
    out: list[tuple[str, Callable[[], float]]] = []
    if training and getattr(est, "inertia_", None) is not None:
        out.append(("inertia", lambda: float(est.inertia_)))
    labels = getattr(est, "labels_", None) if training else None
    if labels is None and hasattr(est, "predict"):
        labels = _predict(f"{prefix} predict", lambda: est.predict(X), fail)
    if labels is None:
        return out
    labels = np.asarray(labels)
    n = len(labels)
    if 2 <= len(np.unique(labels)) <= n - 1:
        def silhouette() -> float:
            if n <= SILHOUETTE_MAX:
                return float(skm.silhouette_score(X, labels))
            return float(skm.silhouette_score(X, labels, sample_size=SILHOUETTE_MAX, random_state=0))

        out.append(("silhouette", silhouette))
    return out


def final_estimator(est: Any) -> Any:
    for _ in range(8):
        if hasattr(est, "best_estimator_"):
            est = est.best_estimator_
        elif hasattr(est, "estimator_") and type(est).__name__ == "Tracked":
            est = est.estimator_
        elif isinstance(getattr(est, "steps", None), list) and est.steps:
            est = est.steps[-1][1]
        else:
            break
    return est


def log_curves(run: autotrack.Run, est: Any) -> None:
    final = final_estimator(est)
    ensemble = sys.modules.get("sklearn.ensemble")  # not imported: final is no GradientBoosting
    boosting = ensemble is not None and isinstance(
        final, (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor))
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
