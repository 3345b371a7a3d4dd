"""End-to-end suite of the Keras 3 integration on the torch backend (no TensorFlow): a real tiny
MLP trained for 2 epochs, asserted against Keras's own record (``History``) and against values the
test computes itself."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest

keras = pytest.importorskip("keras", reason="keras is not installed (pip install 'autotrack[keras]')")
if keras.backend.backend() != "torch":
    pytest.skip(f"these tests run Keras on the torch backend, not {keras.backend.backend()!r}",
                allow_module_level=True)

import numpy as np
import torch

import autotrack
from autotrack.integrations.keras import AutotrackCallback, autolog, epoch_key

BATCH, EPOCHS = 16, 2


@pytest.fixture(autouse=True)
def _no_patches() -> Any:
    yield
    autolog(disable=True)


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4)).astype("float32")
    return X, (X[:, 0] + X[:, 1] > 0).astype("int64") + (X[:, 2] > 1).astype("int64")


def mlp(lr: Any = 1e-2) -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")], name="mlp")
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model: Any, xy: Any, **kwargs: Any) -> Any:
    X, y = xy
    kwargs.setdefault("validation_split", 0.2)
    return model.fit(X, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False, **kwargs)


STEPS = 4  # 64 training rows / 16 per batch


def test_epoch_metrics_equal_history(store, xy):
    cb = AutotrackCallback()
    history = fit(mlp(), xy, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, values in history.history.items():
        frame = rec.metric(epoch_key(name))
        assert frame["value"].tolist() == pytest.approx(values, rel=1e-6)
        assert frame["step"].tolist() == [STEPS - 1, 2 * STEPS - 1]  # the last batch of each epoch
    assert rec.metric("epoch")["value"].tolist() == [0, 1]


def test_batch_loss_is_each_batchs_loss(store, xy):
    """train/loss per batch, checked two ways: its epoch mean is Keras's epoch loss, and the first
    batch's loss is the loss of the untrained model on the first 16 rows, computed here."""
    X, y = xy
    model = mlp()
    initial = keras.ops.convert_to_numpy(model(X[:BATCH]))
    expected_first = float(keras.losses.sparse_categorical_crossentropy(y[:BATCH], initial).numpy().mean())
    cb = AutotrackCallback()
    history = fit(model, xy, callbacks=[cb])
    frame = autotrack.get_run(cb.run.id).metric("train/loss")
    assert frame["step"].tolist() == list(range(EPOCHS * STEPS))
    losses = frame["value"].to_numpy()
    assert losses[0] == pytest.approx(expected_first, rel=1e-5)
    for epoch in range(EPOCHS):
        assert losses[epoch * STEPS:(epoch + 1) * STEPS].mean() == pytest.approx(history.history["loss"][epoch], rel=1e-5)
    assert "compute_loss" not in model.__dict__  # the per-fit wrapper is gone


def test_learning_rate_every_batch_follows_a_schedule(store, xy):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    cb = AutotrackCallback()
    fit(mlp(schedule), xy, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    lrs = rec.metric("train/lr")["value"].tolist()
    assert lrs == pytest.approx([0.1 * 0.5 ** i for i in range(EPOCHS * STEPS)], rel=1e-5)
    assert rec.info("optimizer")["config"]["learning_rate"]["class"] == "ExponentialDecay"


def test_params_optimizer_and_model_sections(store, xy):
    cb = AutotrackCallback()
    model = mlp()
    fit(model, xy, callbacks=[cb])
    rec = autotrack.get_run(cb.run.id)
    assert rec.params["fit.batch_size"] == BATCH and rec.params["fit.epochs"] == EPOCHS
    assert rec.params["fit.validation_split"] == 0.2
    assert rec.params["compile.loss"] == "sparse_categorical_crossentropy"
    assert rec.params["optimizer.class"] == "Adam"
    assert rec.params["optimizer.learning_rate"] == pytest.approx(1e-2)
    assert rec.params["optimizer.beta_1"] == pytest.approx(0.9)
    info = rec.info("model")
    assert info["total_params"] == model.count_params() == 4 * 8 + 8 + 8 * 3 + 3
    assert info["trainable_params"] == info["total_params"] and info["non_trainable_params"] == 0
    assert [(l["name"], l["class"], l["params"]) for l in info["layers"]] == [("hidden", "Dense", 40), ("out", "Dense", 27)]
    assert info["layers"][0]["output_shape"] == [None, 8]
    assert "hidden (Dense)" in info["summary"]
    assert rec.info("config")["backend"] == "torch" and rec.info("config")["steps_per_epoch"] == STEPS


def test_data_fingerprints_after_the_validation_split(store, xy):
    X, y = xy
    cb = AutotrackCallback()
    fit(mlp(), xy, callbacks=[cb])
    data = autotrack.get_run(cb.run.id).info("data")
    assert data["x"]["hash"] == autotrack.fingerprint(X[:64])["hash"] and data["x"]["role"] == "train"
    assert data["y"]["hash"] == autotrack.fingerprint(y[:64])["hash"]
    assert data["val_x"]["hash"] == autotrack.fingerprint(X[64:])["hash"] and data["val_x"]["role"] == "eval"


def test_saved_model_predicts_identically(store, xy, tmp_path):
    cb = AutotrackCallback()
    model = mlp()
    fit(model, xy, callbacks=[cb])
    (artifact,) = autotrack.get_run(cb.run.id).artifacts
    assert (artifact.name, artifact.kind) == ("model.keras", "model")
    copy = Path(shutil.copy(artifact.path, tmp_path / "model.keras"))  # Keras wants the suffix
    loaded = keras.saving.load_model(copy)
    X = xy[0][:8]
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)


def test_log_model_false(store, xy):
    cb = AutotrackCallback(log_model=False)
    fit(mlp(), xy, callbacks=[cb])
    assert autotrack.get_run(cb.run.id).artifacts == []


def test_callback_never_changes_training(store, xy):
    plain = mlp()
    fit(plain, xy)
    tracked = mlp()
    fit(tracked, xy, callbacks=[AutotrackCallback()])
    for a, b in zip(plain.get_weights(), tracked.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_given_run_stays_open_and_steps_continue_over_fits(store, xy):
    model = mlp()
    with autotrack.start_run() as run:
        cb = AutotrackCallback(run, log_model=False)
        fit(model, xy, callbacks=[cb])
        fit(model, xy, callbacks=[cb])
        assert not run.ended
    steps = autotrack.get_run(run.id).metric("train/loss")["step"].tolist()
    assert steps == list(range(2 * EPOCHS * STEPS))


def test_autolog_records_every_fit_and_disable_undoes_it(store, xy):
    autolog()
    history = fit(mlp(), xy)
    (row,) = autotrack.runs().itertuples()
    rec = autotrack.get_run(row.id)
    assert rec.status == "finished"
    assert rec.metric("val/loss")["value"].tolist() == pytest.approx(history.history["val_loss"], rel=1e-6)
    autolog(disable=True)
    fit(mlp(), xy)
    assert len(autotrack.runs()) == 1


def test_autotrack_autolog_with_pytorch_autolog_records_one_run(store, xy):
    """Keras's torch backend calls backward(); the plain-PyTorch autolog must not record it too."""
    autotrack.autolog(lightning=False, sklearn=False, xgboost=False, lightgbm=False, transformers=False,
                      system_metrics=False)
    try:
        fit(mlp(), xy)
        # and a plain torch loop afterwards is still recorded by the PyTorch autolog
        net = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            net(torch.ones(3, 2)).sum().backward()
            opt.step()
    finally:
        autotrack.autolog(disable=True)
    autotrack.flush()
    recs = [autotrack.get_run(r.id) for r in autotrack.runs().itertuples()]
    assert len(recs) == 2
    keras_run = next(r for r in recs if "val/loss" in r.metric_keys)
    assert keras_run.metric("train/loss")["step"].tolist() == list(range(EPOCHS * STEPS))


def test_autolog_keeps_the_users_callback(store, xy):
    autolog()
    with autotrack.start_run() as run:
        fit(mlp(), xy, callbacks=[AutotrackCallback(run, log_model=False)])
    assert len(autotrack.runs()) == 1


def test_autolog_run_ends_failed_and_the_error_passes_through(store, xy):
    autolog()

    class Explode(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 1:
                raise ValueError("user callback failed")

    with pytest.raises(ValueError, match="user callback failed"):
        fit(mlp(), xy, callbacks=[Explode()])
    (row,) = autotrack.runs().itertuples()
    assert autotrack.get_run(row.id).status == "failed"


def test_own_failure_is_a_warning_not_a_training_error(store, xy, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    import autotrack.integrations.keras as integration

    def broken(model: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(integration, "_model_info", broken)
    plain = mlp()
    fit(plain, xy)
    tracked = mlp()
    with pytest.warns(RuntimeWarning, match="autotrack: keras callback: start of training.*boom"):
        fit(tracked, xy, callbacks=[AutotrackCallback()])
    for a, b in zip(plain.get_weights(), tracked.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_constructor_checks_its_arguments():
    with pytest.raises(autotrack.InvalidArgumentError, match="run"):
        AutotrackCallback(run="abc")  # type: ignore[arg-type]
    with pytest.raises(autotrack.InvalidArgumentError, match="log_model"):
        AutotrackCallback(log_model=1)  # type: ignore[arg-type]
    with pytest.raises(autotrack.InvalidArgumentError, match="flush_every"):
        AutotrackCallback(flush_every=0)


def test_callback_pickles_without_its_live_run(store):
    with autotrack.start_run() as run:
        copy = pickle.loads(pickle.dumps(AutotrackCallback(run)))
    assert copy.run is None and copy._parent_id == run.id
