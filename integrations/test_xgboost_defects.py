"""XGBoost: the defects of issues 13 and 15, each with a small training of the shape that broke."""

from __future__ import annotations

import os

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from xgboost.callback import EarlyStopping, TrainingCheckPoint

import autotrack
from autotrack.integrations.xgboost import AutotrackCallback, autolog, load_model

PARAMS = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1, "eval_metric": "logloss", "seed": 7}


@pytest.fixture(scope="module")
def data() -> tuple[xgb.DMatrix, xgb.DMatrix]:
    X, y = load_breast_cancer(return_X_y=True)
    noisy = np.random.default_rng(0).permutation(y[400:])  # a validation set that stops improving at once
    return xgb.DMatrix(X[:400], y[:400]), xgb.DMatrix(X[400:], noisy)


@pytest.fixture(autouse=True)
def _no_patches() -> Any:
    yield
    autolog(disable=True)


def _metric(run_id: str, key: str) -> tuple[list[int], list[float]]:
    steps, values, _ = autotrack.get_run(run_id).metric_arrays(key)
    return steps.tolist(), values.tolist()


@pytest.mark.parametrize("order", ["stopper first", "recorder first"])
def test_a_user_early_stopping_callback_keeps_the_final_round(store, data, order):
    dtrain, dval = data
    result: dict = {}
    cb = AutotrackCallback()
    stopper = EarlyStopping(rounds=2)
    callbacks = [stopper, cb] if order == "stopper first" else [cb, stopper]
    bst = xgb.train(PARAMS, dtrain, 50, evals=[(dval, "val")], evals_result=result, verbose_eval=False,
                    callbacks=callbacks)
    evaluated = result["val"]["logloss"]
    assert len(evaluated) < 50 and bst.num_boosted_rounds() == len(evaluated)
    steps, values = _metric(cb.run.id, "val/logloss")
    assert steps == list(range(len(evaluated))) and values == [float(v) for v in evaluated]


def test_autolog_with_a_user_early_stopping_callback_keeps_the_final_round(store, data):
    dtrain, dval = data
    autolog(log_models=False)
    result: dict = {}
    xgb.train(PARAMS, dtrain, 50, evals=[(dval, "val")], evals_result=result, verbose_eval=False,
              callbacks=[EarlyStopping(rounds=2)])
    (run_id,) = autotrack.runs()["id"]
    assert _metric(run_id, "val/logloss")[1] == [float(v) for v in result["val"]["logloss"]]


def test_continued_training_is_linked_to_the_run_that_made_the_model(store, data, tmp_path):
    dtrain, dval = data
    first = AutotrackCallback()
    bst = xgb.train(PARAMS, dtrain, 3, callbacks=[first])
    # in the same process, from the booster itself
    second = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 2, callbacks=[second], xgb_model=bst)
    assert autotrack.get_run(second.run.id).tags["autotrack.continued_from"] == first.run.id
    # from the stored file, as another process would load it
    (artifact,) = [a for a in autotrack.get_run(first.run.id).artifacts if a.kind == "model"]
    path = tmp_path / "restored.ubj"
    path.write_bytes(Path(artifact.path).read_bytes())
    third = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 2, callbacks=[third], xgb_model=str(path))
    assert autotrack.get_run(third.run.id).tags["autotrack.continued_from"] == first.run.id
    # a model autotrack never stored: no link
    plain = xgb.train(PARAMS, dtrain, 2)
    fourth = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 1, callbacks=[fourth], xgb_model=plain)
    assert "autotrack.continued_from" not in autotrack.get_run(fourth.run.id).tags
    assert plain.attr("autotrack_run_id") is None and bst.attr("autotrack_run_id") is None  # users' boosters untouched


def test_training_checkpoint_files_are_checkpoint_artifacts(store, data, tmp_path):
    dtrain, _ = data
    cb = AutotrackCallback(log_model=False)
    xgb.train(PARAMS, dtrain, 6, callbacks=[TrainingCheckPoint(tmp_path, name="ckpt", interval=2), cb])
    written = sorted(p for p in tmp_path.iterdir() if p.name.startswith("ckpt_"))
    assert written  # XGBoost wrote them
    artifacts = sorted((a for a in autotrack.get_run(cb.run.id).artifacts), key=lambda a: a.step)
    assert [a.kind for a in artifacts] == ["checkpoint"] * len(written)
    assert sorted(Path(a.path).name for a in artifacts) == [p.name for p in written]
    import hashlib

    for a in artifacts:
        assert a.sha256 == hashlib.sha256(Path(a.path).read_bytes()).hexdigest()
        assert a.step == int(Path(a.path).stem.split("_")[1])


def test_private_detail_training_checkpoint_attributes(tmp_path):
    cb = TrainingCheckPoint(tmp_path, name="x")
    assert cb._path == os.fspath(tmp_path) and cb._name == "x", (
        "TrainingCheckPoint no longer keeps _path/_name: update AutotrackCallback._log_checkpoints")


def test_private_detail_train_and_cv_keep_func_cells():
    from autotrack.integrations._wrapped import inner_slot

    for fn in (xgb.training.train, xgb.training.cv):
        assert inner_slot(fn) is not None, (
            f"xgboost.{fn.__name__} is no longer a wrapper with a 'func' cell: update install_call_capture")


def test_the_callback_reads_no_frame_of_xgboost_train(store, data, monkeypatch):
    import sys

    dtrain, dval = data
    calls = []
    real = sys._getframe

    def spy(depth: int = 0) -> Any:
        calls.append(depth)
        return real(depth + 1)

    monkeypatch.setattr(sys, "_getframe", spy)
    cb = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 2, evals=[(dval, "val")], verbose_eval=False, callbacks=[cb])
    monkeypatch.undo()
    assert calls == []
    rec = autotrack.get_run(cb.run.id)
    assert rec.params["num_boost_round"] == 2 and rec.params["max_depth"] == 2  # still has the call's arguments


def test_runs_carry_the_integration_tag(store, data):
    dtrain, _ = data
    cb = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 1, callbacks=[cb])
    autolog()
    xgb.train(PARAMS, dtrain, 1)
    autotrack.flush()
    assert [autotrack.get_run(i).tags["autotrack.integration"] for i in autotrack.runs()["id"]] == ["xgboost"] * 2


def test_load_model_reads_the_stored_booster_without_a_format_warning(store, data):
    dtrain, dval = data
    cb = AutotrackCallback()
    bst = xgb.train(PARAMS, dtrain, 3, callbacks=[cb])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_model(cb.run.id)
    np.testing.assert_array_equal(loaded.predict(dval), bst.predict(dval))


@pytest.mark.xfail(strict=True, reason="the core's blob store names files by sha256 without the artifact's "
                                       "suffix; needs the store to keep '.ubj' (lead: store/blobs)")
def test_the_stored_model_file_has_its_extension(store, data):
    dtrain, _ = data
    cb = AutotrackCallback()
    xgb.train(PARAMS, dtrain, 1, callbacks=[cb])
    (artifact,) = autotrack.get_run(cb.run.id).artifacts
    assert Path(artifact.path).suffix == ".ubj"
