"""Evaluation plots of classifier fits (confusion matrix, ROC and precision-recall curves): real
trainings, the stored arrays checked against ``sklearn.metrics`` computed here on the fitted
model's own predictions."""

from __future__ import annotations

import inspect
import io
import json
import os
import sys
from importlib.util import find_spec

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC

import autotrack
from autotrack.integrations import _evalplots
from autotrack.integrations import lightgbm as at_lightgbm
from autotrack.integrations import xgboost as at_xgboost
from autotrack.integrations.sklearn import Tracked

PLOTS = ("confusion_matrix", "roc_curve", "precision_recall_curve")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    autotrack.autolog(disable=True)


def plots_of(run_id: str) -> tuple[autotrack.RunRecord, dict[str, dict]]:
    """The run (after every pending figure is stored) and its plot JSON documents by name."""
    autotrack.flush()
    rec = autotrack.get_run(run_id)
    docs = {
        a.name: json.loads(rec.read_artifact(a.name))
        for a in rec.artifacts
        if a.name.endswith(".json") and (a.metadata or {}).get("plot")
    }
    return rec, docs


def floats(values: list) -> np.ndarray:
    return np.array([float(v) for v in values])  # "Infinity" / "NaN" as the JSON writes them


def check_plots(
    docs: dict[str, dict],
    prefix: str,
    y_true,
    y_pred,
    proba,
    classes,
    sample_weight=None,
) -> None:
    """The three documents of ``prefix`` equal what sklearn.metrics computes on these predictions."""
    cm = docs[f"{prefix}/confusion_matrix.json"]
    assert cm["labels"] == np.asarray(classes).tolist()
    np.testing.assert_array_equal(
        np.array(cm["matrix"]),
        skm.confusion_matrix(y_true, y_pred, labels=classes, sample_weight=sample_weight),
    )
    roc, pr = (
        docs[f"{prefix}/roc_curve.json"],
        docs[f"{prefix}/precision_recall_curve.json"],
    )
    if len(classes) == 2:
        assert roc["pos_label"] == np.asarray(classes)[1].item() and roc["multiclass"] is None
        targets = [(classes[1], proba[:, 1])]
    else:
        assert roc["multiclass"] == "one-vs-rest" and roc["pos_label"] is None
        targets = [(c, proba[:, i]) for i, c in enumerate(classes)]
    assert [c["label"] for c in roc["curves"]] == [np.asarray(t[0]).item() for t in targets]
    for (label, score), rc, pc in zip(targets, roc["curves"], pr["curves"]):
        positive = np.asarray(y_true) == label
        fpr, tpr, thresholds = skm.roc_curve(y_true, score, pos_label=label, sample_weight=sample_weight)
        precision, recall, pr_thresholds = skm.precision_recall_curve(
            y_true, score, pos_label=label, sample_weight=sample_weight
        )
        assert rc["points"] == len(fpr) and pc["points"] == len(precision)
        ri = np.array(rc.get("index", range(len(fpr))))
        pi = np.array(pc.get("index", range(len(precision))))
        np.testing.assert_array_equal(floats(rc["fpr"]), fpr[ri])
        np.testing.assert_array_equal(floats(rc["tpr"]), tpr[ri])
        np.testing.assert_array_equal(floats(rc["thresholds"]), thresholds[ri])
        np.testing.assert_array_equal(floats(pc["precision"]), precision[pi])
        np.testing.assert_array_equal(floats(pc["recall"]), recall[pi])
        np.testing.assert_array_equal(floats(pc["thresholds"]), pr_thresholds[pi[pi < len(pr_thresholds)]])
        assert rc["auc"] == pytest.approx(skm.roc_auc_score(positive, score, sample_weight=sample_weight), abs=1e-12)
        assert pc["average_precision"] == pytest.approx(
            skm.average_precision_score(positive, score, sample_weight=sample_weight),
            abs=1e-12,
        )


HAVE_MATPLOTLIB = find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed (the PNG twins)")


def check_pngs(rec: autotrack.RunRecord, prefix: str) -> None:
    """The PNG twin of each plot, or (without matplotlib) the JSON's word that there is none."""
    if not HAVE_MATPLOTLIB:
        meta = {a.name: a.metadata for a in rec.artifacts}
        for plot in PLOTS:
            assert f"{prefix}/{plot}.png" not in meta
            assert meta[f"{prefix}/{plot}.json"]["png"] == "none: matplotlib is not installed"
        return
    from PIL import Image

    for plot in PLOTS:
        data = rec.read_artifact(f"{prefix}/{plot}.png")
        assert data.startswith(PNG_SIGNATURE)
        image = Image.open(io.BytesIO(data))
        image.verify()
        assert image.format == "PNG" and min(image.size) >= 200
        kinds = {a.kind for a in rec.artifacts if a.name.startswith(f"{prefix}/{plot}.")}
        assert kinds == {"report"}


# -- scikit-learn ---------------------------------------------------------------------------------


def test_binary_logistic_regression_with_string_labels(store):
    X, y01 = make_classification(n_samples=400, n_features=8, flip_y=0.1, random_state=0)
    y = np.array(["no", "yes"])[y01]
    model = Tracked(LogisticRegression(max_iter=500)).fit(X, y)
    rec, docs = plots_of(model.run_id_)
    est = model.estimator_
    assert list(est.classes_) == ["no", "yes"]
    check_plots(docs, "train", y, est.predict(X), est.predict_proba(X), est.classes_)
    assert docs["train/roc_curve.json"]["pos_label"] == "yes"
    # the plots' AUC is the training metric's: the same predictions
    assert docs["train/roc_curve.json"]["curves"][0]["auc"] == pytest.approx(rec.summary["train/roc_auc"], abs=1e-12)
    assert docs["train/roc_curve.json"]["curves"][0]["thresholds"][0] == "Infinity"
    check_pngs(rec, "train")
    assert rec.status == "finished"


def test_multiclass_iris_under_autolog_one_vs_rest(store):
    X, y = load_iris(return_X_y=True)
    autotrack.autolog()
    est = LogisticRegression(max_iter=1000).fit(X, y)
    autotrack.autolog(disable=True)
    rec, docs = plots_of("latest")
    assert rec.tags["autotrack.integration"] == "sklearn"
    check_plots(docs, "train", y, est.predict(X), est.predict_proba(X), est.classes_)
    assert np.array(docs["train/confusion_matrix.json"]["matrix"]).shape == (3, 3)
    assert len(docs["train/roc_curve.json"]["curves"]) == 3
    check_pngs(rec, "train")


def test_random_forest_with_eval_set_and_sample_weight(store):
    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, val = order[:100], order[100:]
    w = rng.uniform(0.5, 2.0, size=len(train))
    model = Tracked(
        RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1),
        eval_set=(X[val], y[val]),
    ).fit(X[train], y[train], sample_weight=w)
    rec, docs = plots_of(model.run_id_)
    est = model.estimator_
    # the forest's labels come from the same pass as its probabilities; they equal predict()
    check_plots(
        docs,
        "train",
        y[train],
        est.predict(X[train]),
        est.predict_proba(X[train]),
        est.classes_,
        w,
    )
    check_plots(
        docs,
        "val",
        y[val],
        est.predict(X[val]),
        est.predict_proba(X[val]),
        est.classes_,
    )
    assert docs["train/confusion_matrix.json"]["weighted"] is True
    assert docs["val/confusion_matrix.json"]["weighted"] is False
    assert docs["val/roc_curve.json"]["data"] == "val"
    check_pngs(rec, "train")
    check_pngs(rec, "val")


def test_long_curves_are_thinned_keeping_points_of_the_full_curve(store):
    X, y = make_classification(n_samples=20_000, n_features=20, n_informative=3, flip_y=0.3, random_state=1)
    model = Tracked(LogisticRegression(max_iter=500), log_model=False).fit(X, y)
    rec, docs = plots_of(model.run_id_)
    est = model.estimator_
    proba = est.predict_proba(X)
    check_plots(docs, "train", y, est.predict(X), proba, est.classes_)  # kept points == full curve at index
    pr = docs["train/precision_recall_curve.json"]["curves"][0]
    roc = docs["train/roc_curve.json"]["curves"][0]
    precision, recall, _ = skm.precision_recall_curve(y, proba[:, 1])
    assert pr["points"] == len(precision) > 10 * _evalplots.MAX_POINTS
    assert pr["thinned"] is True and len(pr["precision"]) <= _evalplots.MAX_POINTS
    assert pr["index"][0] == 0 and pr["index"][-1] == len(precision) - 1  # both ends kept
    assert roc["thinned"] is (roc["points"] > _evalplots.MAX_POINTS)
    # evenly along the curve: between two kept points the curve runs at most length / (MAX_POINTS - 3)
    # before its last step (a single step of the full curve may be longer; it is kept whole)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(recall), np.diff(precision)))])
    kept = np.array(pr["index"])
    spacing = s[-1] / (_evalplots.MAX_POINTS - 3)
    assert (s[kept[1:] - 1] - s[kept[:-1]]).max() <= spacing * (1 + 1e-9)
    assert len(rec.read_artifact("train/precision_recall_curve.json")) < 100_000


def test_classifier_without_predict_proba_gets_the_confusion_matrix_only(store):
    X, y = load_iris(return_X_y=True)
    model = Tracked(LinearSVC(max_iter=5000)).fit(X, y)
    _rec, docs = plots_of(model.run_id_)
    assert set(docs) == {"train/confusion_matrix.json"}
    np.testing.assert_array_equal(
        np.array(docs["train/confusion_matrix.json"]["matrix"]),
        skm.confusion_matrix(y, model.estimator_.predict(X)),
    )


def test_a_class_missing_from_the_eval_set_has_no_curve(store):
    X, y = load_iris(return_X_y=True)
    keep = y != 2
    model = Tracked(LogisticRegression(max_iter=1000), eval_set=(X[keep], y[keep])).fit(X, y)
    _rec, docs = plots_of(model.run_id_)
    roc = docs["val/roc_curve.json"]
    assert [c["label"] for c in roc["curves"]] == [0, 1]
    assert roc["skipped"] == {"2": "no positive samples"}
    assert np.array(docs["val/confusion_matrix.json"]["matrix"])[2].sum() == 0


def test_a_regressor_gets_no_plots(store):
    X, y = make_classification(n_samples=100, random_state=0)
    model = Tracked(Ridge()).fit(X, y.astype(float))
    autotrack.flush()
    rec = autotrack.get_run(model.run_id_)
    assert "train/r2" in rec.summary
    assert not [a for a in rec.artifacts if (a.metadata or {}).get("plot") or a.name.startswith("train/")]


# -- XGBoost and LightGBM's scikit-learn classifiers -------------------------------------------


def test_xgb_classifier_with_eval_set(store):
    X, y = load_breast_cancer(return_X_y=True)
    X_train, y_train, X_val, y_val = X[:400], y[:400], X[400:], y[400:]
    clf = xgb.XGBClassifier(
        n_estimators=5,
        max_depth=2,
        n_jobs=1,
        callbacks=[at_xgboost.AutotrackCallback()],
    )
    clf.fit(X_train, y_train, eval_set=[(X_train, y_train), (X_val, y_val)], verbose=False)
    rec, docs = plots_of(autotrack.get_run("latest").id)
    assert rec.tags["autotrack.integration"] == "xgboost" and rec.status == "finished"
    assert "validation_1/logloss" in rec.summary  # the eval set's metrics carry the same name
    check_plots(
        docs,
        "train",
        y_train,
        clf.predict(X_train),
        clf.predict_proba(X_train),
        clf.classes_,
    )
    check_plots(
        docs,
        "validation_1",
        y_val,
        clf.predict(X_val),
        clf.predict_proba(X_val),
        clf.classes_,
    )
    assert not any(name.startswith("validation_0/") for name in docs)  # the training data again
    check_pngs(rec, "validation_1")


def test_xgb_classifier_multiclass_under_autolog(store):
    X, y = load_iris(return_X_y=True)
    autotrack.autolog()
    clf = xgb.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1).fit(
        X[::2], y[::2], eval_set=[(X[1::2], y[1::2])], verbose=False
    )
    autotrack.autolog(disable=True)
    rec, docs = plots_of("latest")
    assert rec.tags["autotrack.integration"] == "xgboost"
    check_plots(
        docs,
        "validation_0",
        y[1::2],
        clf.predict(X[1::2]),
        clf.predict_proba(X[1::2]),
        clf.classes_,
    )


def test_lgbm_classifier_with_eval_set_and_names(store):
    X, y = load_iris(return_X_y=True)
    clf = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1, n_jobs=1)
    clf.fit(
        X[::2],
        y[::2],
        eval_set=[(X[1::2], y[1::2])],
        eval_names=["holdout"],
        callbacks=[at_lightgbm.AutotrackCallback()],
    )
    rec, docs = plots_of("latest")
    assert rec.tags["autotrack.integration"] == "lightgbm" and rec.status == "finished"
    assert "holdout/multi_logloss" in rec.summary
    check_plots(
        docs,
        "train",
        y[::2],
        clf.predict(X[::2]),
        clf.predict_proba(X[::2]),
        clf.classes_,
    )
    check_plots(
        docs,
        "holdout",
        y[1::2],
        clf.predict(X[1::2]),
        clf.predict_proba(X[1::2]),
        clf.classes_,
    )
    check_pngs(rec, "holdout")


def test_lgbm_binary_under_autolog(store):
    X, y = load_breast_cancer(return_X_y=True)
    autotrack.autolog()
    eval_kw = (
        {"eval_X": (X[400:],), "eval_y": (y[400:],)}  # LightGBM 4.6+ (eval_set deprecated there)
        if "eval_X" in inspect.signature(lgb.LGBMModel.fit).parameters
        else {"eval_set": [(X[400:], y[400:])]}
    )
    clf = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X[:400], y[:400], **eval_kw)
    autotrack.autolog(disable=True)
    _rec, docs = plots_of("latest")
    check_plots(
        docs,
        "valid_0",
        y[400:],
        clf.predict(X[400:]),
        clf.predict_proba(X[400:]),
        clf.classes_,
    )


def test_boosting_regressors_get_no_plots(store):
    X, y = load_breast_cancer(return_X_y=True)
    xgb.XGBRegressor(n_estimators=2, n_jobs=1, callbacks=[at_xgboost.AutotrackCallback()]).fit(X, y.astype(float))
    lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, y.astype(float), callbacks=[at_lightgbm.AutotrackCallback()])
    autotrack.flush()
    for rec in (autotrack.get_run(i) for i in autotrack.runs()["id"]):
        assert rec.status == "finished"
        assert [a.kind for a in rec.artifacts] == ["model"]


# -- switches, missing matplotlib, failures --------------------------------------------------------


def test_autolog_log_plots_false(store):
    X, y = load_iris(return_X_y=True)
    autotrack.autolog(log_plots=False)
    LogisticRegression(max_iter=1000).fit(X, y)
    xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(X, y)
    autotrack.autolog(disable=True)
    autotrack.flush()
    runs = [autotrack.get_run(i) for i in autotrack.runs()["id"]]
    assert len(runs) == 2
    for rec in runs:
        assert not [a for a in rec.artifacts if (a.metadata or {}).get("plot")]
    with pytest.raises(autotrack.InvalidArgumentError, match="log_plots"):
        autotrack.autolog(log_plots="no")


def test_without_matplotlib_the_json_is_stored_and_no_png(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees when it is absent
    X, y = load_iris(return_X_y=True)
    model = Tracked(LogisticRegression(max_iter=1000)).fit(X, y)
    rec, docs = plots_of(model.run_id_)
    assert set(docs) == {f"train/{p}.json" for p in PLOTS}
    assert not [a for a in rec.artifacts if a.name.endswith(".png")]
    meta = {a.name: a.metadata for a in rec.artifacts}
    assert meta["train/roc_curve.json"]["png"] == "none: matplotlib is not installed"


def test_a_failing_plot_is_one_warning_and_the_run_keeps_its_metrics(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")

    def broken(*args, **kwargs):
        raise ValueError("roc_curve exploded")

    monkeypatch.setattr(skm, "roc_curve", broken)
    X, y = load_iris(return_X_y=True)
    with pytest.warns(RuntimeWarning, match="roc_curve exploded") as caught:
        model = Tracked(LogisticRegression(max_iter=1000)).fit(X, y)
    assert len([w for w in caught if "autotrack" in str(w.message)]) == 1
    rec, docs = plots_of(model.run_id_)
    assert rec.status == "finished"
    assert rec.summary["train/accuracy"] == pytest.approx(skm.accuracy_score(y, model.estimator_.predict(X)))
    assert "train evaluation plots" in rec.tags["autotrack.recording_error"]
    assert not docs  # nothing half-written
    assert model.predict(X).shape == y.shape


@needs_matplotlib
def test_a_figure_worker_that_cannot_start_is_one_warning_and_the_json_stays(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    _evalplots._renderer.stop()  # the next figure starts a worker: with no interpreter to run it
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    X, y = load_iris(return_X_y=True)

    def fit_and_wait():
        model = Tracked(LogisticRegression(max_iter=1000)).fit(X, y)
        return plots_of(model.run_id_)

    with pytest.warns(RuntimeWarning, match="nonexistent") as caught:
        rec, docs = fit_and_wait()
    monkeypatch.undo()
    _evalplots._renderer.stop()  # forget the failure: later figures start a worker again
    assert "could not start" in {a.name: a.metadata for a in rec.artifacts}["train/roc_curve.json"]["png"]
    assert len([w for w in caught if "autotrack" in str(w.message)]) == 1
    assert set(docs) == {f"train/{p}.json" for p in PLOTS}
    assert not [a for a in rec.artifacts if a.name.endswith(".png")]
    assert rec.status == "finished" and "train/accuracy" in rec.summary


@needs_matplotlib
def test_a_busy_figure_worker_never_holds_up_the_fit(store, monkeypatch):
    """Figures are queued for the worker, not written to its pipe by the training thread: with a
    worker that reads nothing (a pipe full after the first figure), fits still return at once."""
    import subprocess
    import time

    _evalplots._renderer.stop()
    stalled = []

    def start_stalled_worker(self):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        stalled.append(proc)
        self.proc = proc
        if self.feeder is None or not self.feeder.is_alive():
            import threading

            self.feeder = threading.Thread(target=self._feed, daemon=True)
            self.feeder.start()

    monkeypatch.setattr(_evalplots._Renderer, "_start", start_stalled_worker)
    X, y = make_classification(n_samples=20_000, n_features=8, random_state=0)  # curves of ~1,000 points
    try:
        started = time.perf_counter()
        for _ in range(3):  # 9 figures of tens of kB each: far more than a pipe's 64 kB
            Tracked(LogisticRegression(max_iter=200), log_model=False).fit(X, y)
        took = time.perf_counter() - started
        assert len(_evalplots._renderer.jobs) == 9  # all waiting for the stalled worker
        assert took < 30, took  # a blocking write would have waited for the worker forever
    finally:
        for proc in stalled:
            proc.kill()
        monkeypatch.undo()
        for job in _evalplots._renderer.jobs.values():
            job.done.set()  # nothing later waits for these figures
        _evalplots._renderer.jobs.clear()
        _evalplots._renderer.stop(timeout=0.5)


@needs_matplotlib
def test_a_figure_the_worker_cannot_draw_is_one_warning(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    with autotrack.start_run("by hand") as run:
        _evalplots._renderer.submit(run, "odd/roc_curve.png", {"plot": "roc_curve"}, '{"plot": "roc_curve"}')
        with pytest.warns(RuntimeWarning, match="drawing roc_curve.png failed.*KeyError"):
            autotrack.flush()
    assert autotrack.get_run(run.id).artifacts == []


@needs_matplotlib
def test_drawing_leaves_pyplot_and_rcparams_alone(store):
    import matplotlib

    def settings():
        # not rcParams["backend"]: reading it resolves the backend (imports pyplot)
        return {k: matplotlib.rcParams[k] for k in list(matplotlib.rcParams.keys()) if k != "backend"}

    pyplot_before = "matplotlib.pyplot" in sys.modules
    before = settings()
    X, y = load_iris(return_X_y=True)
    model = Tracked(LogisticRegression(max_iter=1000)).fit(X, y)
    rec, _ = plots_of(model.run_id_)
    check_pngs(rec, "train")
    assert settings() == before
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_before
