"""Evaluation plots of a fitted classifier on one data set: confusion matrix, ROC curve and
precision-recall curve, stored as artifacts of kind ``report``.

For each data set (``train``, ``val``, an eval set's name) three JSON artifacts hold the raw
arrays, exactly what ``sklearn.metrics`` returns on the predictions the training metrics made:

* ``<data>/confusion_matrix.json`` -- ``confusion_matrix(y_true, y_pred, labels=classes_)``: rows
  are true labels, columns predicted labels, both in the order of ``labels`` (= ``classes_``);
* ``<data>/roc_curve.json`` -- ``roc_curve`` with ``auc``: for a binary classifier one curve, of
  ``classes_[1]`` (scikit-learn's ``pos_label``) scored by ``predict_proba[:, 1]`` (or
  ``decision_function``); for more classes one curve per class, one-vs-rest, scored by that
  class's column. A class with no positive or no negative sample in the data has no curve
  (``skipped`` says why);
* ``<data>/precision_recall_curve.json`` -- ``precision_recall_curve`` with average precision
  (``average_precision_score``'s definition, computed on that curve), same convention.

Curves longer than :data:`MAX_POINTS` points are thinned: the kept points are points of the full
curve, unchanged (their positions in it are in ``index``), chosen evenly along the curve's length so
that its shape is kept; ``points`` is the full length and AUC / average precision are computed on the
full curve. Non-finite numbers (``roc_curve``'s first threshold is ``inf``) are written as the strings
``"Infinity"``, ``"-Infinity"`` and ``"NaN"``, which Python's ``float()`` and JavaScript's ``Number()``
read back. A fit with ``sample_weight`` gets weighted plots, like its training metrics.

Each JSON artifact has a PNG twin (``<data>/roc_curve.png`` ...) drawn with matplotlib when it is
installed (silently none otherwise). Drawing costs ~0.1 s a figure and holds the GIL, so it happens in
one worker process (:mod:`autotrack.integrations._plotdraw`, started on first use), off the training's
path and out of its interpreter, on matplotlib's object API with the Agg canvas (never ``pyplot``: the
user's figures and settings are not touched). A thread stores the PNGs it sends back (also into a run
that has ended meanwhile). ``run.flush()`` and ``autotrack.flush()`` wait for a run's pending figures,
interpreter exit for up to :data:`EXIT_WAIT_S` seconds; while more than :data:`MAX_PENDING` figures
wait, new ones are not drawn (a tight loop of small fits does not pile up work) and the JSON's artifact
metadata (``png``) says so. A worker that cannot start or dies is one warning; the JSON stays.
"""

from __future__ import annotations

import atexit
import base64
import contextvars
import importlib.util
import inspect
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autotrack.integrations.base import (
    Run,
    autolog_setting,
    register_buffer,
    report_failure,
)

#: longest curve stored point by point; longer ones are thinned to about this many points
MAX_POINTS = 1000
#: more classes than this: the confusion matrix is stored, the per-class curves are not
MAX_CURVE_CLASSES = 50
#: figures waiting to be drawn beyond which new ones are skipped
MAX_PENDING = 24
#: how long interpreter exit waits for figures still being drawn
EXIT_WAIT_S = 10.0
KIND = "report"
PLOTS = ("confusion_matrix", "roc_curve", "precision_recall_curve")
FORMAT = "autotrack.eval_plot/1"
NONFINITE = (
    'non-finite numbers are the strings "Infinity", "-Infinity" and "NaN" '
    "(float() and JavaScript's Number() read them)"
)

Fail = Callable[[str, BaseException], None]


def enabled() -> bool:
    """``autotrack.autolog(log_plots=False)`` switches the plots off (on when autolog was not called)."""
    return bool(autolog_setting("log_plots", True))


# -- the arrays ---------------------------------------------------------------------------------


def classifier_plots(
    y_true: Any, y_pred: Any, scores: Any, classes: Any, sample_weight: Any = None
) -> dict[str, dict[str, Any]]:
    """The three plots' JSON documents (``scores``: ``predict_proba`` (n, k), a binary
    classifier's 1-d ``decision_function``, or None for the confusion matrix alone)."""
    from sklearn import metrics as skm

    labels = np.asarray(classes)
    y_true = np.asarray(y_true)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    header = {
        "format": FORMAT,
        "labels": _jsonable(labels.tolist()),
        "weighted": w is not None,
        "nonfinite": NONFINITE,
    }
    cm = confusion_matrix(y_true, np.asarray(y_pred), labels, w)
    out = {
        "confusion_matrix": {
            "plot": "confusion_matrix",
            **header,
            "rows": "true label",
            "columns": "predicted label",
            "matrix": _jsonable(cm.tolist()),
        }
    }
    targets = _targets(labels, scores)
    if not targets:
        return out
    roc: list[dict[str, Any]] = []
    pr: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for label, score in targets:
        positive = y_true == label
        npos = int(positive.sum())
        if npos == 0 or npos == len(y_true):
            skipped[str(label)] = "no positive samples" if npos == 0 else "no negative samples"
            continue
        fpr, tpr, thresholds = skm.roc_curve(positive, score, sample_weight=w)
        roc.append(
            {
                "label": _jsonable(label),
                "auc": _num(skm.auc(fpr, tpr)),
                **_thinned({"fpr": fpr, "tpr": tpr, "thresholds": thresholds}, "fpr", "tpr"),
            }
        )
        precision, recall, pr_thresholds = skm.precision_recall_curve(positive, score, sample_weight=w)
        curve = _thinned({"precision": precision, "recall": recall}, "recall", "precision")
        kept = np.asarray(curve.get("index", range(len(precision))), dtype=int)
        curve["thresholds"] = _floats(pr_thresholds[kept[kept < len(pr_thresholds)]])
        pr.append(
            {
                "label": _jsonable(label),
                # average_precision_score's definition, on the curve already made (no third sort)
                "average_precision": _num(-np.sum(np.diff(recall) * precision[:-1])),
                **curve,
            }
        )
    convention = (
        {"pos_label": _jsonable(labels[1]), "multiclass": None}
        if len(labels) == 2
        else {"pos_label": None, "multiclass": "one-vs-rest"}
    )
    common = {**header, **convention, "max_points": MAX_POINTS, "skipped": skipped}
    out["roc_curve"] = {"plot": "roc_curve", **common, "curves": roc}
    out["precision_recall_curve"] = {
        "plot": "precision_recall_curve",
        **common,
        "curves": pr,
    }
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=labels, sample_weight=w)``, by one
    ``bincount`` (without its input checks: ~10 ms on 20,000 rows). Rows or predictions with a label
    outside ``labels`` are left out, as there; labels that cannot be ordered go to scikit-learn."""
    k = len(labels)
    try:
        order = np.argsort(labels, kind="stable")
        ranked = labels[order]
        codes = []
        for values in (y_true, y_pred):
            pos = np.clip(np.searchsorted(ranked, values), 0, k - 1)
            codes.append((order[pos], ranked[pos] == values))
    except TypeError:  # mixed label types numpy cannot sort
        from sklearn import metrics as skm

        return skm.confusion_matrix(y_true, y_pred, labels=labels, sample_weight=w)
    (t, t_ok), (p, p_ok) = codes
    keep = t_ok & p_ok
    weights = None if w is None else w[keep]
    counts = np.bincount(t[keep] * k + p[keep], weights=weights, minlength=k * k)
    return counts.reshape(k, k).astype(np.int64 if w is None else np.float64)


def _targets(labels: np.ndarray, scores: Any) -> list[tuple[Any, np.ndarray]]:
    """(class, its score column) for each curve to draw."""
    if scores is None or len(labels) < 2:
        return []
    s = np.asarray(scores, dtype=float)
    if len(labels) == 2:
        if s.ndim == 2 and s.shape[1] == 2:
            return [(labels[1], s[:, 1])]
        return [(labels[1], s.ravel())] if s.ndim == 1 else []
    if s.ndim != 2 or s.shape[1] != len(labels) or len(labels) > MAX_CURVE_CLASSES:
        return []
    return [(label, s[:, i]) for i, label in enumerate(labels)]


def _thinned(arrays: dict[str, np.ndarray], x: str, y: str) -> dict[str, Any]:
    """``arrays`` as JSON lists, thinned to about MAX_POINTS points evenly spaced along the curve
    ``(x, y)`` (first and last kept; each kept point unchanged)."""
    n = len(arrays[x])
    out: dict[str, Any] = {"points": n, "thinned": n > MAX_POINTS}
    if n <= MAX_POINTS:
        out.update({k: _floats(v) for k, v in arrays.items()})
        return out
    xs, ys = np.asarray(arrays[x], dtype=float), np.asarray(arrays[y], dtype=float)
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    if not np.isfinite(length[-1]) or length[-1] <= 0:
        index = np.linspace(0, n - 1, MAX_POINTS).round().astype(int)
    else:
        index = np.searchsorted(length, np.linspace(0.0, length[-1], MAX_POINTS - 2))
    index = np.unique(np.concatenate([[0, n - 1], np.clip(index, 0, n - 1)]))
    out.update({k: _floats(np.asarray(v)[index]) for k, v in arrays.items()})
    out["index"] = index.tolist()
    return out


def _num(value: Any) -> Any:
    v = float(value)
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _floats(values: Any) -> list[Any]:
    a = np.asarray(values, dtype=float)
    if np.isfinite(a).all():
        return a.tolist()
    return [_num(v) for v in a.tolist()]


def _jsonable(value: Any) -> Any:
    """Labels and counts as JSON values (numpy scalars unwrapped, non-finite floats as strings)."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _num(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


# -- logging ------------------------------------------------------------------------------------


def log_classifier_plots(
    run: Run,
    prefix: str,
    y_true: Any,
    y_pred: Any,
    scores: Any,
    classes: Any,
    fail: Fail,
    sample_weight: Any = None,
) -> None:
    """Store the three plots of one data set in ``run`` (JSON now, PNG in the background). A
    failure is reported through ``fail`` and nothing else of the run is affected."""
    docs = plot_docs(prefix, y_true, y_pred, scores, classes, fail, sample_weight)
    if docs is not None:
        store_plots(run, prefix, docs, fail)


def plot_docs(prefix: str, y_true: Any, y_pred: Any, scores: Any, classes: Any, fail: Fail,
              sample_weight: Any = None) -> dict[str, dict[str, Any]] | None:
    """:func:`classifier_plots` with scikit-learn's warnings silenced; None (reported through
    ``fail``) when they cannot be made."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's, on data it finds odd: not the user's
            return classifier_plots(y_true, y_pred, scores, classes, sample_weight)
    except Exception as exc:  # noqa: BLE001 - a plot failing leaves the run and its metrics
        fail(f"{prefix} evaluation plots", exc)
        return None


def store_plots(run: Run, prefix: str, docs: dict[str, dict[str, Any]], fail: Fail) -> None:
    """The documents of :func:`plot_docs` as JSON artifacts of ``run``, each with its PNG twin."""
    try:
        for name, doc in docs.items():
            doc["data"] = prefix
            text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
            png = _renderer.submit(run, f"{prefix}/{name}.png", doc, text)
            run.log_bytes(
                text.encode("utf-8"),
                f"{prefix}/{name}.json",
                KIND,
                metadata={"plot": name, "data": prefix, "format": FORMAT, "png": png},
            )
    except Exception as exc:  # noqa: BLE001 - a plot failing leaves the run and its metrics
        fail(f"{prefix} evaluation plots", exc)


def log_estimator_plots(
    run: Run,
    est: Any,
    X: Any,
    y: Any,
    prefix: str,
    fail: Fail,
    sample_weight: Any = None,
) -> None:
    """For an integration that has made no predictions yet (XGBoost's and LightGBM's scikit-learn
    classifiers): one ``predict_proba`` pass, the label of each row its highest-scoring class
    (what their ``predict`` returns), then :func:`log_classifier_plots`."""
    try:
        classes = getattr(est, "classes_", None)
        if classes is None or y is None or np.ndim(classes) != 1:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # predicting the training data may warn (feature names...)
            proba = np.asarray(est.predict_proba(X))
        if proba.ndim != 2 or proba.shape[1] != len(classes):
            return
        y_pred = np.asarray(classes).take(np.argmax(proba, axis=1))
        y_true = np.asarray(y)
        if y_true.ndim == 2 and y_true.shape[1] == 1:
            y_true = y_true.ravel()
    except Exception as exc:  # noqa: BLE001
        fail(f"{prefix} evaluation plots", exc)
        return
    log_classifier_plots(run, prefix, y_true, y_pred, proba, classes, fail, sample_weight)


def log_fit_plots(
    run: Run,
    est: Any,
    X: Any,
    y: Any,
    eval_sets: Sequence[tuple[str, Any, Any, Any]],
    sample_weight: Any,
    integration: str,
) -> None:
    """``train`` plots of ``(X, y)`` and one set per ``(name, X, y, weight)`` eval set; failures are one
    warning each (``AUTOTRACK_STRICT=1``: raised)."""

    def fail(what: str, exc: BaseException) -> None:
        report_failure(f"{integration}: {what}", exc)

    log_estimator_plots(run, est, X, y, "train", fail, sample_weight)
    for name, X_eval, y_eval, w_eval in eval_sets:
        if X_eval is X and y_eval is y:
            continue  # the training data again: its plots are the train ones
        log_estimator_plots(run, est, X_eval, y_eval, name, fail, w_eval)


class ClassifierFits:
    """The evaluation plots of a scikit-learn-API classifier's ``fit`` whose training another
    integration's callback records (``XGBClassifier``, ``LGBMClassifier``): :meth:`fit` wraps the
    ``fit``; inside it, a callback that would end its run hands the run over instead
    (:meth:`handed`); once ``fit`` has returned, the plots of the training data and of each eval set
    go into the first callback's run, and then each callback's run is ended (``end``).

    ``eval_sets(bound)``: ``(name, X, y, weight)`` of each eval set, from the call's bound arguments."""

    def __init__(self, integration: str, eval_sets: Callable[[dict[str, Any]], list[tuple[str, Any, Any, Any]]],
                 end: Callable[[Any], None]) -> None:
        self.integration = integration
        self.eval_sets = eval_sets
        self.end = end
        #: inside a wrapped fit: the callbacks that recorded its training (their runs stay open)
        self._pending: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
            f"autotrack_{integration}_classifier_fit", default=None)
        self._signatures: dict[int, inspect.Signature] = {}

    def handed(self, callback: Any) -> bool:
        """``callback``'s training ended inside a wrapped fit: its run is ended by :meth:`fit`."""
        pending = self._pending.get()
        if pending is None:
            return False
        pending.append(callback)
        return True

    def fit(self, original: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        if self._pending.get() is not None or not enabled():
            return original(model, *args, **kwargs)
        pending: list[Any] = []
        token = self._pending.set(pending)
        try:
            result = original(model, *args, **kwargs)
        except BaseException as exc:
            self._pending.reset(token)
            for callback in pending:
                callback._abort(exc)
            raise
        self._pending.reset(token)
        try:
            if pending and pending[0]._run is not None:
                fn = getattr(original, "original", original)
                signature = self._signatures.get(id(fn))
                if signature is None:
                    signature = self._signatures[id(fn)] = inspect.signature(fn)
                bound = signature.bind(model, *args, **kwargs).arguments
                log_fit_plots(pending[0]._run, model, bound.get("X"), bound.get("y"), self.eval_sets(bound),
                              bound.get("sample_weight"), self.integration)
        finally:
            for callback in pending:
                self.end(callback)
        return result


# -- the PNGs, drawn in a worker process ------------------------------------------------------------


def matplotlib_available() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


class _Job:
    """One figure to draw; registered as a buffer so that ``run.flush()`` waits for it."""

    _oldest = None  # never handed over by the buffers' own thread: the renderer does it

    def __init__(self, run: Run, name: str, doc: dict[str, Any]) -> None:
        self.run, self.name, self.doc = run, name, doc
        self.done = threading.Event()

    def flush(self) -> None:
        self.done.wait(EXIT_WAIT_S)


class _Renderer:
    """One worker process per process that draws (started on first use, again after a fork or
    when it died), fed through its stdin; a reader thread stores what it sends back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outbox: queue.SimpleQueue[tuple[subprocess.Popen[bytes], bytes]] = queue.SimpleQueue()
        self.feeder: threading.Thread | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.jobs: dict[int, _Job] = {}
        self.next_id = 0
        self.hooked = False
        self.broken: str | None = None  # why this process draws no PNGs (the worker could not start)

    def submit(self, run: Run, name: str, doc: dict[str, Any], text: str) -> str:
        """Queue a PNG of ``doc`` (``text``: its JSON); returns what the JSON's metadata says about it."""
        if not matplotlib_available():
            return "none: matplotlib is not installed"
        with self.lock:
            if self.pid != os.getpid():  # first use, or a forked child: a worker of its own
                self.proc, self.jobs, self.pid = None, {}, os.getpid()
                self.outbox, self.feeder = queue.SimpleQueue(), None  # the parent's queue and thread are not ours
            if len(self.jobs) >= MAX_PENDING:
                return f"skipped: {MAX_PENDING} figures were waiting to be drawn"
            if self.broken is not None:
                return self.broken
            if self.proc is None or self.proc.poll() is not None:
                try:
                    self._start()
                except (
                    OSError,
                    ValueError,
                ) as exc:  # no interpreter to run it: no PNGs in this process
                    self.broken = f"none: the figure worker could not start ({type(exc).__name__}: {exc})"[:300]
                    report_failure("starting the figure worker", exc)
                    return self.broken
            job = _Job(run, name, doc)
            self.next_id += 1
            key, proc = self.next_id, self.proc
            self.jobs[key] = job
            register_buffer(job)
        # handed to the feeder thread: a figure's JSON is larger than a pipe's buffer, and writing
        # it here would make the training wait while the worker draws the figure before it
        self.outbox.put((proc, b'{"id":%d,"doc":%s}\n' % (key, text.encode("utf-8"))))
        return name

    def _feed(self) -> None:
        """Write queued figures to their worker's stdin (this thread alone writes there)."""
        while True:
            proc, line = self.outbox.get()
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except (OSError, ValueError, AttributeError):  # the worker died: its reader fails what it had
                pass

    def _start(self) -> None:
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plotdraw.py")
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, worker],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.proc = proc
        threading.Thread(target=self._read, args=(proc,), name="autotrack-plots", daemon=True).start()
        if self.feeder is None or not self.feeder.is_alive():  # one per process (a forked child starts its own)
            self.feeder = threading.Thread(target=self._feed, name="autotrack-plots-feed", daemon=True)
            self.feeder.start()
        if not self.hooked:
            self.hooked = True
            atexit.register(self.stop)

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                job = self.jobs.pop(reply.get("id"), None)
            if job is not None:
                self._store(job, reply)
        # the worker ended: what it still had will not be drawn
        with self.lock:
            if self.proc is proc:
                self.proc = None
            lost = list(self.jobs.items()) if self.proc is None else []
            for key, _ in lost:
                self.jobs.pop(key, None)
        for _, job in lost:
            self._store(job, {"error": f"the figure worker exited (code {proc.wait()})"})

    def _store(self, job: _Job, reply: dict[str, Any]) -> None:
        try:
            if "png" not in reply:
                raise RuntimeError(reply.get("error") or "no figure")
            blob = job.run.store.blobs.put_bytes(base64.b64decode(reply["png"]))
            meta = {
                "plot": job.doc.get("plot"),
                "data": job.doc.get("data"),
                "format": "png",
            }
            job.run.record_artifact(job.name, KIND, blob.sha256, blob.size, None, None, True, meta)
        except Exception as exc:  # noqa: BLE001 - a background thread cannot raise to anyone
            try:
                report_failure(f"drawing {job.name.rsplit('/', 1)[-1]}", exc)
            except Exception:  # noqa: BLE001, S110 - strict mode: keep the thread alive
                pass
        finally:
            job.done.set()

    def stop(self, timeout: float = EXIT_WAIT_S) -> None:
        """Let the figures already queued be drawn (up to ``timeout``), then end the worker (at
        interpreter exit; tests too)."""
        deadline = time.monotonic() + timeout
        while self.pid == os.getpid() and self.jobs and self.proc is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            proc, self.proc = (self.proc, None) if self.pid == os.getpid() else (None, None)
            self.broken = None
        if proc is not None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(2.0)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


_renderer = _Renderer()
