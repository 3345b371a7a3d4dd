"""Post-training metrics and evaluation datasets (issue #20): what user code computes with a
recorded estimator's predictions after its fit lands in the fit's run. Real fits; every value is
checked against ``sklearn.metrics`` (or numpy) computed here on an untracked copy."""

from __future__ import annotations

import os

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge

# bound before any autolog, as scripts do: its calls must be recorded all the same
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import autotrack
from autotrack.integrations import sklearn as at_sklearn
from autotrack.integrations.sklearn import Tracked

ROOT = Path(__file__).resolve().parents[1]


def _classification() -> tuple[np.ndarray, ...]:
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # scaled: LogisticRegression converges in a few ms
    return X[:400], y[:400], X[400:], y[400:]


def _regression() -> tuple[np.ndarray, ...]:
    X, y = load_diabetes(return_X_y=True)
    return X[:300], y[:300], X[300:], y[300:]


def _post(rec: autotrack.RunRecord) -> dict[str, float]:
    """The run's post-training metrics (every key under a dataset name test, test_1, ...)."""
    return {k: v for k, v in rec.summary.items() if k.split("/")[0].startswith("test")}


def _only_run() -> autotrack.RunRecord:
    autotrack.flush()
    frame = autotrack.runs()
    assert len(frame) == 1, frame[["name", "parent_id"]]
    return autotrack.get_run(frame["id"].iloc[0])


@pytest.fixture
def autologged(store):
    at_sklearn.autolog(log_models=False)
    yield store
    at_sklearn.autolog(disable=True)


def test_metrics_on_predictions_of_test_data_are_recorded_with_sklearn_values(autologged):
    X, y, X_test, y_test = _classification()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    pred = model.predict(X_test)
    proba = model.predict_proba(X_test)
    margin = model.decision_function(X_test)
    got = {
        "accuracy_score": accuracy_score(y_test, pred),  # a name bound before autolog
        "f1_score": skm.f1_score(y_test, pred),
        "precision_score": skm.precision_score(y_test, y_pred=pred),
        "recall_score": skm.recall_score(y_true=y_test, y_pred=pred),
        "balanced_accuracy_score": skm.balanced_accuracy_score(y_test, pred),
        "matthews_corrcoef": skm.matthews_corrcoef(y_test, pred),
        "log_loss": skm.log_loss(y_test, proba),
        "roc_auc_score": skm.roc_auc_score(y_test, proba[:, 1]),  # a view of predict_proba's output
        "average_precision_score": skm.average_precision_score(y_test, y_score=margin),
    }
    score = model.score(X_test, y_test)
    # the truth, from untracked copies of the same predictions
    p, pr, m = pred.copy(), proba.copy(), margin.copy()
    truth = {
        "accuracy_score": float(np.mean(p == y_test)),
        "f1_score": skm.f1_score(y_test, p),
        "precision_score": skm.precision_score(y_test, p),
        "recall_score": skm.recall_score(y_test, p),
        "balanced_accuracy_score": skm.balanced_accuracy_score(y_test, p),
        "matthews_corrcoef": skm.matthews_corrcoef(y_test, p),
        "log_loss": skm.log_loss(y_test, pr),
        "roc_auc_score": skm.roc_auc_score(y_test, pr[:, 1]),
        "average_precision_score": skm.average_precision_score(y_test, m),
    }
    assert got == pytest.approx(truth, rel=1e-12)
    rec = _only_run()
    assert _post(rec) == pytest.approx({**{f"test/{k}": v for k, v in truth.items()},
                                        "test/score": float(np.mean(p == y_test))}, rel=1e-12)
    assert score == pytest.approx(truth["accuracy_score"])
    assert all(len(rec.metric(k)) == 1 for k in _post(rec))  # the truth computed above added nothing
    entry = rec.info("data")["test"]
    assert entry["role"] == "eval" and entry["hash"] == autotrack.fingerprint(X_test)["hash"]
    assert rec.info("data")["train"]["hash"] == autotrack.fingerprint(X)["hash"]
    assert rec.status == "finished" and "train/accuracy" in rec.summary


def test_same_data_keeps_its_name_and_other_data_gets_the_next_one(autologged):
    X, y, X_test, y_test = _regression()
    model = Ridge(alpha=0.5).fit(X, y)
    first = skm.r2_score(y_test, model.predict(X_test))
    again = skm.r2_score(y_test, model.predict(X_test.copy()))  # same content, another object: same name
    half = slice(0, 60)
    other = skm.r2_score(y_test[half], model.predict(X_test[half]))
    other_mse = skm.mean_squared_error(y_test[half], model.predict(X_test[half]))
    third = model.score(X_test[60:], y_test[60:])
    rec = _only_run()
    np.testing.assert_allclose(rec.metric("test/r2_score")["value"], [first, again])
    assert first == again == pytest.approx(skm.r2_score(y_test, model.predict(X_test).copy()))
    assert rec.summary["test_1/r2_score"] == pytest.approx(other)
    assert rec.summary["test_1/mean_squared_error"] == pytest.approx(
        float(np.mean((y_test[half] - X_test[half] @ model.coef_ - model.intercept_) ** 2)))
    assert other_mse == pytest.approx(rec.summary["test_1/mean_squared_error"])
    assert rec.summary["test_2/score"] == pytest.approx(third)
    data = rec.info("data")
    assert {k: v.get("role") for k, v in data.items() if k.startswith("test")} == {
        "test": "eval", "test_1": "eval", "test_2": "eval"}
    assert data["test"]["hash"] == autotrack.fingerprint(X_test)["hash"]
    assert data["test_1"]["hash"] == autotrack.fingerprint(X_test[half])["hash"]
    assert set(data) >= {"train", "train_y"}  # the training entries survive the reopened run


def test_predictions_of_the_training_data_are_not_recorded(autologged):
    X, y, _, _ = _classification()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    accuracy_score(y, model.predict(X))
    skm.log_loss(y, model.predict_proba(X))
    model.score(X, y)
    rec = _only_run()
    assert _post(rec) == {}
    assert not any(v.get("role") == "eval" for v in rec.info("data").values())


@pytest.mark.parametrize("where", ["autotrack.autolog", "sklearn.autolog"])
def test_post_training_metrics_false_records_nothing(store, where):
    X, y, X_test, y_test = _classification()
    if where == "autotrack.autolog":
        autotrack.autolog(post_training_metrics=False, log_models=False, system_metrics=False, seeds=False)
    else:
        at_sklearn.autolog(log_models=False, post_training_metrics=False)
    try:
        model = LogisticRegression(max_iter=1000).fit(X, y)
        accuracy_score(y_test, model.predict(X_test))
        model.score(X_test, y_test)
        tracked = Tracked(LogisticRegression(max_iter=1000), log_model=False).fit(X, y)
        accuracy_score(y_test, tracked.predict(X_test))
        tracked.score(X_test, y_test)
    finally:
        (autotrack.autolog if where == "autotrack.autolog" else at_sklearn.autolog)(disable=True)
    autotrack.flush()
    records = [autotrack.get_run(i) for i in autotrack.runs()["id"]]
    assert len(records) == 2 and all("train/accuracy" in r.summary for r in records)
    assert all(_post(r) == {} and "test" not in r.info("data") for r in records)


def test_bad_option_values_are_clear_errors(store):
    with pytest.raises(autotrack.InvalidArgumentError, match="post_training_metrics") as caught:
        autotrack.autolog(post_training_metrics="yes")
    assert caught.value.value == "yes"
    with pytest.raises(autotrack.InvalidArgumentError, match="post_training_metrics") as caught:
        at_sklearn.autolog(post_training_metrics=1)
    assert caught.value.value == 1


def test_a_metric_imported_before_autolog_is_recorded_in_process(store):
    """``from sklearn.metrics import accuracy_score`` ran when this module was imported, before
    autolog; the name this module holds is recorded once autolog is on, and plain again after."""
    X, y, X_test, y_test = _classification()
    at_sklearn.autolog(log_models=False)
    try:
        model = LogisticRegression(max_iter=1000).fit(X, y)
        pred = model.predict(X_test)
        value = accuracy_score(y_test, pred)
    finally:
        at_sklearn.autolog(disable=True)
    accuracy_score(y_test, pred)  # autolog is off: not recorded
    rec = _only_run()
    assert value == pytest.approx(float(np.mean(pred == y_test)))
    assert list(rec.metric("test/accuracy_score")["value"]) == [value]


SCRIPT = """
    from sklearn.metrics import accuracy_score, log_loss   # imported first, as scripts do
    {autolog}
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:400], y[:400])
    pred = model.predict(X[400:])
    print("accuracy", repr(accuracy_score(y[400:], pred)), repr(float((pred == y[400:]).mean())))
    print("log_loss", repr(log_loss(y[400:], model.predict_proba(X[400:]))))
"""


@pytest.mark.parametrize("how", ["autotrack run", "autolog() after the import"])
def test_a_metric_imported_first_in_a_script_is_recorded(tmp_path, how):
    script = tmp_path / "train.py"
    autolog = "import autotrack; autotrack.autolog(log_models=False)" if how != "autotrack run" else ""
    script.write_text(textwrap.dedent(SCRIPT.format(autolog=autolog)))
    store = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_SYSTEM_METRICS": "0"}
    command = ["-m", "autotrack", "run", str(script)] if how == "autotrack run" else [str(script)]
    done = subprocess.run([sys.executable, *command], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    printed = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in done.stdout.splitlines()
               if line.split() and line.split()[0] in ("accuracy", "log_loss")}
    assert printed["accuracy"][0] == printed["accuracy"][1]
    frame = autotrack.runs(store=store)
    fits = [autotrack.get_run(i, store=store) for i in frame["id"]]
    fit = next(r for r in fits if r.tags.get("autotrack.integration") == "sklearn")
    assert _post(fit) == pytest.approx({"test/accuracy_score": printed["accuracy"][0],
                                        "test/log_loss": printed["log_loss"][0]}, rel=1e-12)
    assert fit.info("data")["test"]["role"] == "eval"


def test_xgboost_classifier_and_lightgbm_regressor(store):
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    autotrack.autolog(log_models=False, system_metrics=False, seeds=False)
    try:
        X, y, X_test, y_test = _classification()
        clf = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
        proba = clf.predict_proba(X_test)
        xgb_got = {"test/log_loss": skm.log_loss(y_test, proba),
                   "test/roc_auc_score": skm.roc_auc_score(y_test, proba[:, 1]),
                   "test/accuracy_score": accuracy_score(y_test, clf.predict(X_test)),
                   "test/score": clf.score(X_test, y_test)}
        accuracy_score(y, clf.predict(X))  # its training data: not recorded
        Xr, yr, Xr_test, yr_test = _regression()
        reg = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(Xr, yr)
        lgb_got = {"test/r2_score": skm.r2_score(yr_test, reg.predict(Xr_test)),
                   "test/mean_absolute_error": skm.mean_absolute_error(yr_test, reg.predict(Xr_test))}
    finally:
        autotrack.autolog(disable=True)
    # the truth: the boosters' own predictions, untracked
    p = clf.get_booster().inplace_predict(X_test)
    xgb_truth = {"test/log_loss": skm.log_loss(y_test, np.c_[1 - p, p]),
                 "test/roc_auc_score": skm.roc_auc_score(y_test, p),
                 "test/accuracy_score": float(np.mean((p > 0.5) == y_test)),
                 "test/score": float(np.mean((p > 0.5) == y_test))}
    r = reg.booster_.predict(Xr_test)
    lgb_truth = {"test/r2_score": skm.r2_score(yr_test, r),
                 "test/mean_absolute_error": float(np.mean(np.abs(yr_test - r)))}
    assert xgb_got == pytest.approx(xgb_truth, rel=1e-6) and lgb_got == pytest.approx(lgb_truth, rel=1e-9)
    autotrack.flush()
    runs = {autotrack.get_run(i).tags["autotrack.integration"]: autotrack.get_run(i) for i in autotrack.runs()["id"]}
    assert set(runs) == {"xgboost", "lightgbm"}
    assert _post(runs["xgboost"]) == pytest.approx(xgb_got, rel=1e-12)
    assert _post(runs["lightgbm"]) == pytest.approx(lgb_got, rel=1e-12)
    assert runs["xgboost"].info("data")["test"]["hash"] == autotrack.fingerprint(X_test)["hash"]
    assert runs["lightgbm"].info("data")["test"]["role"] == "eval"


def test_cross_val_score_and_a_search_inside_add_no_metrics(autologged):
    X, y, X_test, y_test = _classification()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    pred = model.predict(X_test)
    value = accuracy_score(y_test, pred)
    # scikit-learn's own scoring of the recorded estimator and of its clones, on other data
    cross_val_score(model, X_test, y_test, cv=3)
    cross_val_score(model, X_test, y_test, cv=3, scoring=skm.make_scorer(accuracy_score))
    GridSearchCV(model, {"C": [0.1, 1.0]}, cv=2, scoring="roc_auc").fit(X_test, y_test)
    autotrack.flush()
    records = [autotrack.get_run(i) for i in autotrack.runs()["id"]]
    fit = next(r for r in records if r.name.startswith("LogisticRegression-400"))
    assert _post(fit) == {"test/accuracy_score": value}
    assert len(fit.metric("test/accuracy_score")) == 1
    assert len(records) > 3  # the groups and the search were recorded, as runs of their own
    assert all(_post(r) == {} for r in records if r.id != fit.id)


def test_returned_values_are_identical_with_and_without_autotrack(store):
    X, y, X_test, y_test = _classification()

    def evaluate() -> list:
        model = LogisticRegression(max_iter=1000).fit(X, y)
        pred, proba = model.predict(X_test), model.predict_proba(X_test)
        return [pred, proba, model.decision_function(X_test), model.score(X_test, y_test),
                accuracy_score(y_test, pred), skm.f1_score(y_test, pred), skm.log_loss(y_test, proba),
                skm.roc_auc_score(y_test, proba[:, 1])]

    plain = evaluate()
    at_sklearn.autolog(log_models=False)
    try:
        recorded = evaluate()
    finally:
        at_sklearn.autolog(disable=True)
    assert len(_post(_only_run())) == 5
    for a, b in zip(plain, recorded):
        assert type(a) is type(b)
        np.testing.assert_array_equal(a, b)


def test_tracked_uses_the_same_mechanism(store):
    """``Tracked`` without autolog: its predictions and scores are named as autolog's."""
    X, y, X_test, y_test = _regression()
    tracked = Tracked(Ridge(alpha=0.5), log_model=False).fit(X, y)
    pred = tracked.predict(X_test)
    r2 = skm.r2_score(y_test, pred)
    score = tracked.score(X_test, y_test)
    other = tracked.score(X_test[:50], y_test[:50])
    tracked.score(X, y)  # training data
    rec = autotrack.get_run(tracked.run_id_)
    autotrack.flush()
    rec = autotrack.get_run(tracked.run_id_)
    truth = skm.r2_score(y_test, X_test @ tracked.estimator_.coef_ + tracked.estimator_.intercept_)
    assert r2 == pytest.approx(truth) and score == pytest.approx(truth)
    assert _post(rec) == pytest.approx({"test/r2_score": truth, "test/score": truth, "test_1/score": other})
    assert rec.info("data")["test_1"]["hash"] == autotrack.fingerprint(X_test[:50])["hash"]
