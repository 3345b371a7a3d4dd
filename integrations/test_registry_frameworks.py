"""The model registry end to end: register from each framework's integration (real tiny models),
load the version back through the safe loader and predict exactly what the original predicts; a
planted pickle payload never runs."""

from __future__ import annotations

import os

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import autotrack
from autotrack.integrations.sklearn import Tracked


# -- scikit-learn ---------------------------------------------------------------------------------


def test_sklearn_tracked_register_as_loads_back_predicting_the_same(store):
    X, y = load_iris(return_X_y=True)
    first = Tracked(LogisticRegression(max_iter=300), register_as="iris").fit(X, y)
    second = Tracked(RandomForestClassifier(n_estimators=5, random_state=0), register_as="iris").fit(X, y)
    assert (first.model_version_.version, second.model_version_.version) == (1, 2)
    assert second.model_version_.run_id == second.run_id_ and second.model_version_.framework == "sklearn"
    autotrack.set_alias("iris", "champion", 1)

    champion = autotrack.load_model("iris@champion")
    assert type(champion) is LogisticRegression
    np.testing.assert_array_equal(champion.predict_proba(X), first.predict_proba(X))
    # a forest holds a type outside skops' defaults: listed in the error, loaded once trusted
    with pytest.raises(autotrack.InvalidArgumentError, match=r"trusted=\['sklearn.tree._tree.Tree'\]"):
        autotrack.load_model("iris")
    latest = autotrack.load_model("iris", trusted=["sklearn.tree._tree.Tree"])
    assert type(latest) is RandomForestClassifier
    np.testing.assert_array_equal(latest.predict_proba(X), second.predict_proba(X))
    assert autotrack.get_model("iris").version(2).run().info("model")["class"].endswith("RandomForestClassifier")


def test_tracked_register_as_is_checked_before_fitting(store):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(autotrack.InvalidArgumentError, match="register_as"):
        Tracked(LogisticRegression(), register_as="iris", log_model=False).fit(X, y)
    assert autotrack.list_models() == []


# -- PyTorch and Lightning ------------------------------------------------------------------------


class TinyNet(torch.nn.Module):
    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_pytorch_state_dict_loads_into_the_module_the_caller_builds(store, tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(32, 3)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), x.sum(1, keepdim=True)).backward()
        opt.step()
    with autotrack.start_run() as run:
        run.set_info("model", {"class": f"{TinyNet.__module__}.TinyNet"})
        torch.save(net.state_dict(), tmp_path / "model.pt")
        run.log_artifact(tmp_path / "model.pt", "model.pt", "model")
    v = autotrack.register_model("tiny", run=run.id)
    assert v.framework == "pytorch" and v.meta["class"].endswith("TinyNet")

    with pytest.raises(autotrack.InvalidArgumentError, match=r"model=TinyNet\(\.\.\.\)"):
        autotrack.load_model("tiny")
    with pytest.raises(autotrack.InvalidArgumentError, match="holds the weights of .*TinyNet"):
        autotrack.load_model("tiny", model=torch.nn.Linear(3, 1))
    for given in (TinyNet, TinyNet()):
        loaded = autotrack.load_model("tiny", model=given)
        assert not loaded.training
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def _regressor_class():
    import lightning as L

    class Regressor(L.LightningModule):
        def __init__(self, hidden: int = 4, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Regressor


def test_lightning_register_best_as_registers_the_best_checkpoint(store, tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from autotrack.integrations.lightning import AutotrackCallback

    Regressor = _regressor_class()
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_top_k=2)
    callback = AutotrackCallback(register_best_as="regressor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = L.Trainer(max_epochs=3, callbacks=[ckpt, callback], logger=False, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=True)
        trainer.fit(Regressor(hidden=5), data, data)
    v = callback.model_version
    assert v.version == 1 and v.framework == "lightning" and v.run_id == callback.run.id
    assert v.artifact == os.path.basename(ckpt.best_model_path)
    assert v.meta["monitor"] == "val_loss" and v.meta["score"] == pytest.approx(float(ckpt.best_model_score))

    truth = Regressor.load_from_checkpoint(ckpt.best_model_path).eval()  # Lightning's own loader
    os.remove(ckpt.best_model_path)  # the version keeps its own copy of the bytes
    loaded = autotrack.load_model("regressor", model=Regressor)  # built with the recorded hidden=5
    assert loaded.hparams.hidden == 5
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), truth(x), rtol=0, atol=0)
    # the best by val_loss, not the last: Lightning's own record of the top-k scores says which
    best_path = min(ckpt.best_k_models, key=lambda p: float(ckpt.best_k_models[p]))
    assert os.path.basename(best_path) == v.artifact


def test_lightning_register_best_as_without_a_monitor_registers_the_final_weights(store, tmp_path):
    import lightning as L

    from autotrack.integrations.lightning import AutotrackCallback

    Regressor = _regressor_class()
    torch.manual_seed(1)
    x = torch.randn(16, 3)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    with pytest.raises(autotrack.InvalidArgumentError, match="register_best_as"):
        AutotrackCallback(register_best_as="a/b")
    callback = AutotrackCallback(register_best_as="final")
    module = Regressor(hidden=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = L.Trainer(max_epochs=2, callbacks=[callback], logger=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=tmp_path)  # its default ModelCheckpoint monitors nothing
        trainer.fit(module, data)
    v = callback.model_version
    assert (v.version, v.artifact, v.framework, v.run_id) == (1, "model.pt", "pytorch", callback.run.id)
    loaded = autotrack.load_model("final", model=Regressor(hidden=3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module.eval()(x), rtol=0, atol=0)


# -- XGBoost --------------------------------------------------------------------------------------


def test_xgboost_callback_register_as_loads_back_predicting_the_same(store):
    import xgboost as xgb

    from autotrack.integrations.xgboost import AutotrackCallback

    X, y = load_iris(return_X_y=True)
    dtrain = xgb.DMatrix(X, label=y)
    callback = AutotrackCallback(register_as="boost")
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, dtrain, num_boost_round=5,
                        evals=[(dtrain, "train")], callbacks=[callback], verbose_eval=False)
    v = callback.model_version
    assert v.version == 1 and v.framework == "xgboost" and v.format == "ubj" and v.artifact == "model.ubj"
    loaded = autotrack.load_model("boost")
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_array_equal(loaded.predict(dtrain), booster.predict(dtrain))
    with pytest.raises(autotrack.InvalidArgumentError, match="register_as"):
        AutotrackCallback(register_as="boost", log_model=False)


# -- never unpickled ------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling it creates the marker file


@pytest.mark.parametrize("artifact", ["model.skops", "model.pt", "model.ckpt", "model.ubj", "model.joblib"])
def test_a_planted_pickle_payload_never_runs_through_load_model(store, tmp_path, artifact):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"state_dict": _Payload(str(marker))})
    with autotrack.start_run() as run:
        run.log_bytes(payload, artifact, "model")
    v = autotrack.register_model("evil", run=run.id, artifact=artifact)
    with pytest.raises(autotrack.AutotrackError) as info:
        autotrack.load_model("evil", model=TinyNet)
    assert not marker.exists()
    assert "not" in str(info.value) or "allow_pickle" in str(info.value)
    if artifact == "model.joblib":
        assert info.value.argument == "allow_pickle"
    assert v.read_bytes() == payload
