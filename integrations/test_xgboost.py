"""End-to-end suite of the XGBoost integration: real tiny trainings, asserted against what XGBoost
itself reports (evals_result, save_config, get_score, predict)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import numpy as np
import pytest
import xgboost as xgb
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris

import autotrack
from autotrack.integrations.xgboost import AutotrackCallback, autolog

ROOT = Path(__file__).resolve().parents[1]
IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
PARAMS = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1,
          "eval_metric": ["logloss", "auc"], "seed": 7}


@pytest.fixture(scope="module")
def data() -> tuple[xgb.DMatrix, xgb.DMatrix, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    names = [f"x{i}" for i in range(X.shape[1])]
    return (xgb.DMatrix(X[:400], y[:400], feature_names=names),
            xgb.DMatrix(X[400:], y[400:], feature_names=names), X[400:])


@pytest.fixture(autouse=True)
def _no_patches() -> Any:
    yield
    autolog(disable=True)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def train(dtrain: xgb.DMatrix, dval: xgb.DMatrix, rounds: int = 6, **kwargs: Any) -> tuple[xgb.Booster, dict]:
    evals_result: dict = {}
    bst = xgb.train(PARAMS, dtrain, rounds, evals=[(dtrain, "train"), (dval, "val")],
                    evals_result=evals_result, verbose_eval=False, **kwargs)
    return bst, evals_result


def assert_metrics_equal(rec: autotrack.RunRecord, evals_result: dict, first_step: int = 0) -> None:
    assert evals_result
    for data_name, metrics in evals_result.items():
        for metric, history in metrics.items():
            steps, values, _ = rec.metric_arrays(f"{data_name}/{metric}")
            assert steps.tolist() == list(range(first_step, first_step + len(history)))
            assert values.tolist() == [float(v) for v in history]


def test_iteration_metrics_equal_evals_result_every_iteration(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    bst, evals_result = train(dtrain, dval, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    assert set(evals_result) == {"train", "val"}
    assert_metrics_equal(rec, evals_result)
    steps, seconds, _ = rec.metric_arrays("iteration_time")
    assert steps.tolist() == list(range(bst.num_boosted_rounds()))
    assert (seconds > 0).all() and (seconds < 60).all()


def test_config_is_the_complete_save_config_and_user_params_are_marked(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    bst, _ = train(dtrain, dval, rounds=4, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    truth = json.loads(bst.save_config())
    stored = {k[len("xgboost."):]: v for k, v in rec.params.items() if k.startswith("xgboost.")}
    assert stored == flatten(truth)
    for key, value in PARAMS.items():
        assert rec.params[key] == value
    assert rec.params["num_boost_round"] == 4
    config = rec.info("config")
    assert config["user_params"] == sorted(PARAMS)
    assert config["device"] == truth["learner"]["generic_param"]["device"]
    assert config["nthread"] == int(truth["learner"]["generic_param"]["nthread"]) == 1
    assert config["num_boost_round"] == 4 and config["start_round"] == 0


def test_params_as_a_list_of_pairs_keep_repeated_keys(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    pairs = [("objective", "binary:logistic"), ("eval_metric", "auc"), ("eval_metric", "logloss"), ("nthread", 1)]
    evals_result: dict = {}
    xgb.train(pairs, dtrain, 2, evals=[(dval, "val")], evals_result=evals_result, verbose_eval=False, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.params["eval_metric"] == ["auc", "logloss"]
    assert_metrics_equal(rec, evals_result)


def test_importance_of_every_type_equals_get_score(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    bst, _ = train(dtrain, dval, callbacks=[cb])
    model = autotrack.get_run(cb.run.id).info("model")
    assert set(model["importance"]) == set(IMPORTANCE_TYPES)
    for kind in IMPORTANCE_TYPES:
        assert model["importance"][kind] == bst.get_score(importance_type=kind)
    assert model["num_boosted_rounds"] == bst.num_boosted_rounds()
    assert model["feature_names"] == bst.feature_names


def test_stored_model_predicts_identically(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    bst, _ = train(dtrain, dval, callbacks=[cb])
    (artifact,) = [a for a in autotrack.get_run(cb.run.id).artifacts if a.kind == "model"]
    assert artifact.name == "model.ubj" and artifact.step == bst.num_boosted_rounds() - 1
    loaded = xgb.Booster(model_file=bytearray(Path(artifact.path).read_bytes()))
    np.testing.assert_array_equal(loaded.predict(dval), bst.predict(dval))


def test_log_model_false_stores_no_model(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback(log_model=False)
    train(dtrain, dval, callbacks=[cb])
    assert autotrack.get_run(cb.run.id).artifacts == []


def test_data_section_fingerprints_every_dmatrix(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    train(dtrain, dval, callbacks=[cb])
    section = autotrack.get_run(cb.run.id).info("data")
    assert set(section) == {"train", "val"}  # dtrain is also the eval set "train"
    for entry, dmatrix, role in [(section["train"], dtrain, "train"), (section["val"], dval, "eval")]:
        assert (entry["rows"], entry["columns"], entry["role"]) == (dmatrix.num_row(), dmatrix.num_col(), role)
        assert entry["feature_names"] == dmatrix.feature_names
        assert entry["nonmissing"] == dmatrix.num_nonmissing()
        assert entry["hash"] == autotrack.fingerprint(dmatrix)["hash"]
    assert section["train"]["hash"] != section["val"]["hash"]


def test_large_dmatrix_is_described_but_not_hashed(store, data, monkeypatch):
    from autotrack.integrations import xgboost as integration

    dtrain, dval, _ = data
    monkeypatch.setattr(integration, "HASH_LIMIT", dval.num_nonmissing())
    cb = AutotrackCallback()
    train(dtrain, dval, rounds=1, callbacks=[cb])
    section = autotrack.get_run(cb.run.id).info("data")
    assert section["train"]["hash"] is None and section["train"]["hash_method"].startswith("not hashed")
    assert section["train"]["rows"] == dtrain.num_row()
    assert section["val"]["hash"] == autotrack.fingerprint(dval)["hash"]


def test_without_the_capture_the_data_section_has_the_cheap_facts(store, data, monkeypatch):
    from autotrack.integrations import xgboost as integration

    dtrain, dval, _ = data
    monkeypatch.setattr(integration, "_capture_fingerprint", None)
    monkeypatch.setattr(integration, "_capture_log_data", None)
    cb = AutotrackCallback()
    train(dtrain, dval, rounds=1, callbacks=[cb])
    section = autotrack.get_run(cb.run.id).info("data")
    assert {name: (e["rows"], e["columns"], e["feature_names"], e["hash"]) for name, e in section.items()} == {
        "train": (dtrain.num_row(), dtrain.num_col(), dtrain.feature_names, None),
        "val": (dval.num_row(), dval.num_col(), dval.feature_names, None),
    }


def test_training_data_not_evaluated_is_named_train(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False, callbacks=[cb])
    section = autotrack.get_run(cb.run.id).info("data")
    assert {name: entry["role"] for name, entry in section.items()} == {"train": "train", "val": "eval"}
    assert section["train"]["rows"] == dtrain.num_row()


def test_early_stopping_best_iteration_and_score(store, data):
    dtrain, dval, _ = data
    cb = AutotrackCallback()
    bst, evals_result = train(dtrain, dval, rounds=60, callbacks=[cb], early_stopping_rounds=2)
    assert bst.num_boosted_rounds() < 60  # it did stop early
    rec = autotrack.get_run(cb.run.id)
    assert rec.summary["best_iteration"] == bst.best_iteration
    assert rec.summary["best_score"] == bst.best_score
    assert rec.info("model")["best_iteration"] == bst.best_iteration
    assert rec.params["early_stopping_rounds"] == 2
    assert_metrics_equal(rec, evals_result)


def test_callback_never_changes_training(store, data):
    dtrain, dval, X_val = data
    plain, plain_result = train(dtrain, dval, rounds=40, early_stopping_rounds=3)
    tracked, tracked_result = train(dtrain, dval, rounds=40, early_stopping_rounds=3, callbacks=[AutotrackCallback()])
    assert tracked_result == plain_result
    assert tracked.num_boosted_rounds() == plain.num_boosted_rounds()
    assert tracked.best_iteration == plain.best_iteration
    np.testing.assert_array_equal(tracked.predict(dval), plain.predict(dval))
    assert tracked.save_raw("ubj") == plain.save_raw("ubj")


def test_hooks_return_what_xgboost_expects(store, data):
    dtrain, _, _ = data
    bst = xgb.train(PARAMS, dtrain, 1)
    cb = AutotrackCallback()
    assert cb.before_training(bst) is bst
    assert cb.before_iteration(bst, 0, {}) is False
    assert cb.after_iteration(bst, 0, {"train": {"logloss": [0.5]}}) is False
    assert cb.after_training(bst) is bst
    assert autotrack.get_run(cb.run.id).summary["train/logloss"] == 0.5


def test_sklearn_api(store):
    X, y = load_iris(return_X_y=True)
    cb = AutotrackCallback()
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, eval_metric="mlogloss", callbacks=[cb])
    clf.fit(X[::2], y[::2], eval_set=[(X[1::2], y[1::2])], verbose=False)
    rec = autotrack.get_run(cb.run.id)
    assert_metrics_equal(rec, clf.evals_result())
    assert rec.params["num_boost_round"] == 5 and rec.params["max_depth"] == 2
    assert rec.info("data")["train"]["rows"] == len(X[::2])
    assert rec.info("data")["validation_0"]["rows"] == len(X[1::2])
    loaded = xgb.XGBClassifier()
    loaded.load_model(bytearray(Path(rec.artifacts[0].path).read_bytes()))
    np.testing.assert_array_equal(loaded.get_booster().predict(xgb.DMatrix(X)), clf.get_booster().predict(xgb.DMatrix(X)))
    # sklearn clones deep-copy the callback; the copy records its own run
    clone(clf).fit(X, y)
    assert len(autotrack.runs()) == 2


def test_cv_records_one_run_with_mean_and_std(store, data):
    dtrain, _, _ = data
    cb = AutotrackCallback()
    result = xgb.cv(PARAMS, dtrain, 5, nfold=3, callbacks=[cb], seed=1)
    assert len(autotrack.runs()) == 1
    rec = autotrack.get_run(cb.run.id)
    for column in result.columns:  # e.g. test-auc-mean, train-logloss-std
        data_name, metric, stat = column.split("-")
        key = f"{data_name}/{metric}" + ("/std" if stat == "std" else "")
        steps, values, _ = rec.metric_arrays(key)
        assert steps.tolist() == list(range(5))
        np.testing.assert_array_equal(values, result[column].to_numpy())
    assert rec.info("config")["nfold"] == 3
    assert rec.info("model")["folds"] == 3
    assert rec.params["eval_metric"] == PARAMS["eval_metric"]


def test_continued_training_continues_steps(store, data):
    dtrain, dval, _ = data
    with autotrack.start_run() as run:
        first, first_result = train(dtrain, dval, rounds=4, callbacks=[AutotrackCallback(run)])
        second, second_result = train(dtrain, dval, rounds=3, callbacks=[AutotrackCallback(run)], xgb_model=first)
    assert second.num_boosted_rounds() == 7
    rec = autotrack.get_run(run.id)
    assert rec.status == "finished"  # the callbacks did not end a run they were given
    steps, values, _ = rec.metric_arrays("val/auc")
    assert steps.tolist() == list(range(7))
    assert values.tolist() == first_result["val"]["auc"] + second_result["val"]["auc"]
    assert rec.info("config")["start_round"] == 4
    # with its own run: the new run's steps start after the model's rounds
    cb = AutotrackCallback()
    _, result = train(dtrain, dval, rounds=2, callbacks=[cb], xgb_model=second)
    assert_metrics_equal(autotrack.get_run(cb.run.id), result, first_step=7)


def test_gblinear_records_weight_importance(store, data):
    dtrain, _, _ = data
    cb = AutotrackCallback()
    bst = xgb.train({"booster": "gblinear", "objective": "binary:logistic", "nthread": 1}, dtrain, 3, callbacks=[cb])
    assert autotrack.get_run(cb.run.id).info("model")["importance"] == {"weight": bst.get_score(importance_type="weight")}


def test_autolog_adds_the_callback_and_disable_undoes_it(store, data):
    dtrain, dval, _ = data
    originals = (xgb.train, xgb.training.train, xgb.sklearn.train, xgb.cv)
    autolog()
    assert xgb.train is not originals[0] and xgb.sklearn.train is not originals[2]
    bst, evals_result = train(dtrain, dval, rounds=3)
    (run_id,) = autotrack.runs()["id"]
    rec = autotrack.get_run(run_id)
    assert rec.status == "finished"
    assert_metrics_equal(rec, evals_result)
    assert [a.kind for a in rec.artifacts] == ["model"]
    X, y = load_iris(return_X_y=True)
    xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(X, y)  # the sklearn API goes through xgboost.train
    xgb.cv(PARAMS, dtrain, 2, nfold=2)
    assert len(autotrack.runs()) == 3
    explicit = AutotrackCallback()  # a call that already has one gets no second callback
    train(dtrain, dval, rounds=2, callbacks=[explicit])
    assert len(autotrack.runs()) == 4
    autolog(disable=True)
    assert (xgb.train, xgb.training.train, xgb.sklearn.train, xgb.cv) == originals
    train(dtrain, dval, rounds=2)
    assert len(autotrack.runs()) == 4


def test_autotrack_autolog_patches_xgboost(store, data):
    dtrain, dval, _ = data
    autotrack.autolog(pytorch=False, lightning=False, sklearn=False, log_models=False, system_metrics=False, seeds=False)
    try:
        _, evals_result = train(dtrain, dval, rounds=2)
    finally:
        autotrack.autolog(disable=True)
    (run_id,) = autotrack.runs()["id"]
    rec = autotrack.get_run(run_id)
    assert_metrics_equal(rec, evals_result)
    assert rec.artifacts == []  # log_models=False reached the xgboost autolog
    assert xgb.train is xgb.training.train  # undone


def test_autolog_log_models_false(store, data):
    dtrain, dval, _ = data
    autolog(log_models=False)
    train(dtrain, dval, rounds=2)
    (run_id,) = autotrack.runs()["id"]
    assert autotrack.get_run(run_id).artifacts == []


def test_autolog_run_ends_failed_and_the_error_passes_through(store, data):
    dtrain, _, _ = data
    error = RuntimeError("objective exploded")

    def objective(predt: np.ndarray, d: xgb.DMatrix) -> Any:
        raise error

    autolog()
    with pytest.raises(RuntimeError) as caught:
        xgb.train({"nthread": 1}, dtrain, 3, obj=objective)
    assert caught.value is error
    (run_id,) = autotrack.runs()["id"]
    rec = autotrack.get_run(run_id)
    assert rec.status == "failed" and rec.error["message"] == "objective exploded"


def test_autolog_predictions_identical(store, data):
    dtrain, dval, _ = data
    plain, _ = train(dtrain, dval, rounds=5)
    autolog()
    tracked, _ = train(dtrain, dval, rounds=5)
    np.testing.assert_array_equal(tracked.predict(dval), plain.predict(dval))


def test_own_failure_is_a_warning_not_a_training_error(store, data, monkeypatch):
    dtrain, dval, _ = data
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    ended = autotrack.start_run()
    ended.end()
    plain, _ = train(dtrain, dval, rounds=3)
    with pytest.warns(RuntimeWarning, match="autotrack: xgboost callback"):
        tracked, _ = train(dtrain, dval, rounds=3, callbacks=[AutotrackCallback(ended)])
    np.testing.assert_array_equal(tracked.predict(dval), plain.predict(dval))


def test_an_ended_run_is_refused_with_a_clear_error(store, data):
    dtrain, dval, _ = data
    ended = autotrack.start_run()
    ended.end()
    with pytest.raises(autotrack.InvalidArgumentError, match="run=.*has ended"):
        train(dtrain, dval, rounds=2, callbacks=[AutotrackCallback(ended)])


def test_constructor_checks_its_arguments():
    with pytest.raises(autotrack.InvalidArgumentError, match="run"):
        AutotrackCallback("my-run")  # type: ignore[arg-type]
    with pytest.raises(autotrack.InvalidArgumentError, match="log_model"):
        AutotrackCallback(log_model="yes")  # type: ignore[arg-type]
    with pytest.raises(autotrack.InvalidArgumentError, match="disable"):
        autolog(disable="yes")  # type: ignore[arg-type]


def test_callback_pickles_without_its_live_run(store, data):
    dtrain, dval, _ = data
    with autotrack.start_run() as parent:
        copy = pickle.loads(pickle.dumps(AutotrackCallback(parent)))
        assert copy.run is None
        train(dtrain, dval, rounds=2, callbacks=[copy])
    assert copy.run.parent_id == parent.id  # a copy in another process records a child run
    assert autotrack.get_run(copy.run.id).status == "finished"


_WORKER = textwrap.dedent("""
    import json, sys
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer
    from autotrack.integrations.xgboost import AutotrackCallback
    args, part, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    X, y = load_breast_cancer(return_X_y=True)
    with xgb.collective.CommunicatorContext(**args):
        dm = xgb.DMatrix(X[part::2], y[part::2])
        result, cb = {}, AutotrackCallback()
        xgb.train({"objective": "binary:logistic", "nthread": 1, "max_depth": 2}, dm, 4,
                  evals=[(dm, "train")], callbacks=[cb], evals_result=result, verbose_eval=False)
        json.dump({"rank": xgb.collective.get_rank(), "world": xgb.collective.get_world_size(),
                   "result": result, "run": cb.run.id if cb.run else None}, open(out, "w"))
""")


def test_collective_two_workers_one_run_written_by_rank_zero(store, tmp_path):
    from xgboost.tracker import RabitTracker

    tracker = RabitTracker(n_workers=2, host_ip="127.0.0.1")
    tracker.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store.root)}
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(tracker.worker_args()), str(i), str(out)],
                                env=env) for i, out in enumerate(outs)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    tracker.wait_for(30)
    reports = sorted((json.loads(out.read_text()) for out in outs), key=lambda r: r["rank"])
    assert [(r["rank"], r["world"]) for r in reports] == [(0, 2), (1, 2)]
    assert reports[1]["run"] is None
    (run_id,) = autotrack.runs()["id"]
    assert run_id == reports[0]["run"]
    rec = autotrack.get_run(run_id)
    assert_metrics_equal(rec, reports[0]["result"])
    assert rec.info("config")["world_size"] == 2
