"""End-to-end suite of the LightGBM integration: real tiny trainings on a bundled scikit-learn
dataset, asserted against what LightGBM itself reports (record_evaluation / evals_result_,
feature_importance, best_iteration, predict)."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

lgb = pytest.importorskip("lightgbm", reason="lightgbm is not installed (pip install 'autotrack[lightgbm]')")

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes

import autotrack
from autotrack.integrations.lightgbm import AutotrackCallback, autolog

def eval_data(X: Any, y: Any) -> dict[str, Any]:
    """One eval set as this LightGBM takes it: ``eval_X``/``eval_y`` (4.6+; ``eval_set`` is
    deprecated there) or ``eval_set`` (before)."""
    if "eval_X" in inspect.signature(lgb.LGBMModel.fit).parameters:
        return {"eval_X": (X,), "eval_y": (y,)}
    return {"eval_set": [(X, y)]}


PARAMS = {"objective": "binary", "metric": ["auc", "binary_logloss"], "num_leaves": 7, "learning_rate": 0.3,
          "num_threads": 1, "verbose": -1, "seed": 7}


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(autouse=True)
def _no_patches() -> Any:
    yield
    autolog(disable=True)


def datasets(xy: tuple[np.ndarray, np.ndarray], **kwargs: Any) -> tuple[Any, Any]:
    X, y = xy
    dtrain = lgb.Dataset(X[:400], y[:400], **kwargs)
    return dtrain, lgb.Dataset(X[400:], y[400:], reference=dtrain, **kwargs)


def train(xy: Any, rounds: int = 6, callbacks: list[Any] | None = None, **kwargs: Any) -> tuple[Any, dict]:
    dtrain, dval = datasets(xy)
    evals: dict = {}
    booster = lgb.train(PARAMS, dtrain, rounds, valid_sets=[dtrain, dval], valid_names=["train", "val"],
                        callbacks=[*(callbacks or []), lgb.record_evaluation(evals)], **kwargs)
    return booster, evals


def assert_metrics_equal(rec: autotrack.RunRecord, evals: dict) -> None:
    assert evals
    for data, metrics in evals.items():
        for metric, history in metrics.items():
            frame = rec.metric(f"{data}/{metric}")
            assert frame["step"].tolist() == list(range(len(history)))
            assert frame["value"].tolist() == [float(v) for v in history]


def test_iteration_metrics_equal_record_evaluation(store, xy):
    cb = AutotrackCallback()
    booster, evals = train(xy, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    assert set(evals) == {"train", "val"}
    assert_metrics_equal(rec, evals)
    assert rec.metric("iteration_time")["step"].tolist() == list(range(6))
    assert "best_iteration" not in rec.metric_keys  # no early stopping: none chosen


def test_params_and_effective_config(store, xy):
    cb = AutotrackCallback()
    booster, _ = train(xy, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.params["num_leaves"] == 7 and rec.params["metric"] == ["auc", "binary_logloss"]
    assert rec.params["num_iterations"] == 6
    # the effective config: LightGBM's own defaults appear, with the values it used
    assert rec.params["lightgbm.num_leaves"] == 7
    assert rec.params["lightgbm.learning_rate"] == 0.3
    assert rec.params["lightgbm.max_bin"] == 255  # a default nobody passed
    assert rec.params["lightgbm.boosting"] == "gbdt"
    config = rec.info("config")
    assert config["function"] == "lightgbm.train"
    assert config["user_params"] == sorted(PARAMS)
    assert config["num_boost_round"] == 6 and config["lightgbm_version"] == lgb.__version__


def test_feature_importance_split_and_gain(store, xy):
    cb = AutotrackCallback()
    booster, _ = train(xy, callbacks=[cb])
    model = autotrack.get_run(cb.run.id).info("model")
    names = booster.feature_name()
    for kind in ("split", "gain"):
        expected = dict(zip(names, booster.feature_importance(importance_type=kind).tolist()))
        assert model["importance"][kind] == pytest.approx(expected)
    assert model["num_trees"] == booster.num_trees() == 6
    assert model["num_features"] == 30 and model["objective"] == "binary sigmoid:1"


def test_model_artifact_predicts_identically(store, xy):
    cb = AutotrackCallback()
    booster, _ = train(xy, callbacks=[cb])
    (artifact,) = [a for a in autotrack.get_run(cb.run.id).artifacts if a.name == "model.txt"]
    assert artifact.kind == "model"
    loaded = lgb.Booster(model_file=str(artifact.path))
    X = xy[0][400:]
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X))


def test_log_model_false_stores_no_model(store, xy):
    cb = AutotrackCallback(log_model=False)
    train(xy, callbacks=[cb])
    assert autotrack.get_run(cb.run.id).artifacts == []


def test_early_stopping_best_iteration_and_the_stopping_iteration_recorded(store, xy):
    cb = AutotrackCallback()
    booster, evals = train(xy, rounds=200, callbacks=[cb, lgb.early_stopping(3, verbose=False)])
    assert booster.best_iteration < 200 and len(evals["val"]["auc"]) < 200
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    assert_metrics_equal(rec, evals)  # every iteration, the one that stopped training included
    assert rec.summary["best_iteration"] == booster.best_iteration
    model = rec.info("model")
    assert model["best_iteration"] == booster.best_iteration
    assert model["best_score"] == {d: dict(m) for d, m in booster.best_score.items()}
    assert rec.info("config")["early_stopping"] == {"rounds": 3}
    (artifact,) = rec.artifacts  # the model as LightGBM keeps it: up to the best iteration
    loaded = lgb.Booster(model_file=str(artifact.path))
    assert loaded.num_trees() == booster.best_iteration


def test_data_section_without_autolog_has_the_cheap_facts(store, xy):
    cb = AutotrackCallback()
    train(xy, callbacks=[cb])
    data = autotrack.get_run(cb.run.id).info("data")
    assert data["train"]["role"] == "train" and data["val"]["role"] == "eval"
    assert (data["train"]["rows"], data["val"]["rows"]) == (400, 169)
    assert data["train"]["hash"] is None and "free_raw_data" in data["train"]["hash_method"]


def test_data_section_with_raw_data_kept_is_the_fingerprint(store, xy):
    X, y = xy
    dtrain, dval = datasets(xy, free_raw_data=False)
    cb = AutotrackCallback()
    lgb.train(PARAMS, dtrain, 3, valid_sets=[dval], valid_names=["val"], callbacks=[cb])
    data = autotrack.get_run(cb.run.id).info("data")
    assert data["train"]["hash"] == autotrack.fingerprint(X[:400])["hash"]
    assert data["val"]["hash"] == autotrack.fingerprint(X[400:])["hash"]


def test_callback_never_changes_training(store, xy):
    plain, _ = train(xy)
    tracked, _ = train(xy, callbacks=[AutotrackCallback()])
    assert plain.model_to_string() == tracked.model_to_string()


def test_cv_records_one_run_with_mean_and_std(store, xy):
    X, y = xy
    cb = AutotrackCallback()
    result = lgb.cv({**PARAMS, "metric": "auc"}, lgb.Dataset(X, y), 4, nfold=3, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    assert rec.metric("valid/auc")["value"].tolist() == pytest.approx(result["valid auc-mean"])
    assert rec.metric("valid/auc/std")["value"].tolist() == pytest.approx(result["valid auc-stdv"])
    assert rec.info("config")["nfold"] == 3 and rec.info("model")["folds"] == 3
    assert rec.params["cv.nfold"] == 3


def test_sklearn_api_with_the_callback(store, xy):
    X, y = load_diabetes(return_X_y=True)
    cb = AutotrackCallback()
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=5, verbose=-1, n_jobs=1)
    model.fit(X[:300], y[:300], **eval_data(X[300:], y[300:]), eval_names=["val"], callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.metric("val/l2")["value"].tolist() == pytest.approx(model.evals_result_["val"]["l2"])
    config = rec.info("config")
    assert config["estimator"] == "lightgbm.sklearn.LGBMRegressor"
    assert "n_estimators" in config["user_params"] and "max_depth" not in config["user_params"]  # defaults are not "given"
    assert rec.params["num_leaves"] == 5


def test_autolog_sklearn_api_fingerprints_the_raw_data(store, xy):
    X, y = xy
    autolog()
    model = lgb.LGBMClassifier(n_estimators=4, verbose=-1, n_jobs=1)
    model.fit(X[:400], y[:400], **eval_data(X[400:], y[400:]), eval_names=["val"])
    (row,) = autotrack.runs().itertuples()
    rec = autotrack.get_run(row.id)
    assert rec.status == "finished"
    assert rec.metric("val/binary_logloss")["value"].tolist() == pytest.approx(
        model.evals_result_["val"]["binary_logloss"])
    data = rec.info("data")
    assert data["train"]["hash"] == autotrack.fingerprint(X[:400])["hash"]
    assert data["val"]["hash"] == autotrack.fingerprint(X[400:])["hash"]
    assert rec.info("model")["importance"]["split"] == pytest.approx(
        dict(zip(model.booster_.feature_name(), model.feature_importances_.tolist())))


def test_autolog_early_stopping_through_params(store, xy):
    autolog()
    dtrain, dval = datasets(xy)
    booster = lgb.train({**PARAMS, "early_stopping_round": 3}, dtrain, 200, valid_sets=[dval],
                        valid_names=["val"])
    (row,) = autotrack.runs().itertuples()
    rec = autotrack.get_run(row.id)
    assert rec.summary["best_iteration"] == booster.best_iteration < 200
    assert rec.info("model")["best_iteration"] == booster.best_iteration


def test_autolog_cv_and_disable(store, xy):
    X, y = xy
    autolog()
    lgb.cv({**PARAMS, "metric": "auc"}, lgb.Dataset(X, y), 3, nfold=3)
    assert len(autotrack.runs()) == 1
    autolog(disable=True)
    lgb.cv({**PARAMS, "metric": "auc"}, lgb.Dataset(X, y), 3, nfold=3)
    assert len(autotrack.runs()) == 1


def test_autotrack_autolog_patches_lightgbm(store, xy):
    autotrack.autolog(pytorch=False, lightning=False, sklearn=False, xgboost=False, system_metrics=False)
    try:
        train(xy, rounds=3)
    finally:
        autotrack.autolog(disable=True)
    (row,) = autotrack.runs().itertuples()
    assert autotrack.get_run(row.id).metric("val/auc")["step"].tolist() == [0, 1, 2]


def test_autolog_keeps_the_users_callback_and_run(store, xy):
    autolog()
    with autotrack.start_run(name="outer") as run:
        train(xy, rounds=3, callbacks=[AutotrackCallback(run)])
    (row,) = autotrack.runs().itertuples()
    assert row.id == run.id and autotrack.get_run(run.id).metric("val/auc")["step"].tolist() == [0, 1, 2]


def test_given_run_stays_open_and_own_run_is_a_child(store, xy):
    with autotrack.start_run() as run:
        mine = AutotrackCallback(run)
        train(xy, rounds=2, callbacks=[mine])
        assert not run.ended
        child = AutotrackCallback()
        train(xy, rounds=2, callbacks=[child])
    assert autotrack.get_run(child.run.id).status == "finished"
    assert child.run.parent_id == run.id


def test_autolog_run_ends_failed_and_the_error_passes_through(store, xy):
    autolog()

    def explode(env: Any) -> None:
        if env.iteration == 1:
            raise ValueError("user callback failed")

    with pytest.raises(ValueError, match="user callback failed"):
        train(xy, rounds=4, callbacks=[explode])
    (row,) = autotrack.runs().itertuples()
    assert autotrack.get_run(row.id).status == "failed"


def test_own_failure_is_a_warning_not_a_training_error(store, xy, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    import autotrack.integrations.lightgbm as integration

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(integration, "_importance", broken)
    cb = AutotrackCallback()
    plain, _ = train(xy, rounds=3)
    with pytest.warns(RuntimeWarning, match="autotrack: lightgbm callback: end of training.*boom"):
        booster, evals = train(xy, rounds=3, callbacks=[cb])
    assert booster.model_to_string() == plain.model_to_string() and len(evals["val"]["auc"]) == 3
    assert autotrack.get_run(cb.run.id).status == "finished"  # the run still ends


def test_constructor_checks_its_arguments():
    with pytest.raises(autotrack.InvalidArgumentError, match="run"):
        AutotrackCallback(run="abc")  # type: ignore[arg-type]
    with pytest.raises(autotrack.InvalidArgumentError, match="log_model"):
        AutotrackCallback(log_model="yes")  # type: ignore[arg-type]


def test_an_ended_run_is_refused_with_a_clear_error(store, xy):
    run = autotrack.start_run()
    run.end()
    with pytest.raises(autotrack.InvalidArgumentError, match="ended"):
        train(xy, rounds=2, callbacks=[AutotrackCallback(run)])


def test_callback_pickles_without_its_live_run(store, xy):
    with autotrack.start_run() as run:
        cb = AutotrackCallback(run)
        copy = pickle.loads(pickle.dumps(cb))
    assert copy.run is None and copy._parent_id == run.id
