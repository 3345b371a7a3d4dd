"""Model signatures and input examples of every stored model, through real trainings: the
recorded input/output schema equals the training data's own dtypes/shapes and the output of the
model the test predicts with itself; the input example equals the first rows (a token value
redacted, a secret-named column left out); log_input_examples=False stores none; check_input
rejects a frame with a missing column or a wrong dtype, naming it, and accepts the right one."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pandas as pd
import pytest

import autotrack

TOKEN = "hf_" + "aB3dE5gH7jK9" * 2  # a Hugging Face token shape


def model_artifact(run_id: str):
    models = [a for a in autotrack.get_run(run_id).artifacts if a.kind == "model"]
    assert len(models) == 1, models
    return models[0]


def latest_model():
    autotrack.flush()
    return model_artifact(autotrack.get_run("latest").id)


def table(n: int = 60, *, text: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    X = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.normal(50, 10, n),
        "city": pd.Categorical(rng.choice(["oslo", "rome", "lima"], n)),
    })
    if text:
        X["note"] = [TOKEN if i == 1 else f"visit {i % 3}" for i in range(n)]
        X["api_key"] = [f"k-{i}" for i in range(n)]
    y = ((X["income"] > 50) ^ (X["age"] > 50)).to_numpy().astype("int64")
    return X, y


def columns_of(X: pd.DataFrame) -> dict:
    return {"type": "dataframe", "n_columns": X.shape[1],
            "columns": [{"name": str(c), "dtype": str(X[c].dtype)} for c in X.columns]}


def output_of(pred, kind: str = "array") -> dict:
    out = {"type": kind, "shape": [-1, *pred.shape[1:]], "dtype": str(pred.dtype).removeprefix("torch.")}
    if pred.ndim == 2:
        out["n_columns"] = pred.shape[1]
    return out


def records(X: pd.DataFrame, columns: list[str], n: int = 5) -> list[dict]:
    return [{c: X[c].iloc[i].item() if hasattr(X[c].iloc[i], "item") else X[c].iloc[i] for c in columns}
            for i in range(n)]


def assert_validates(source, X: pd.DataFrame, missing: str, retyped: str, to: str) -> None:
    assert autotrack.check_input(source, X) is X
    with pytest.raises(autotrack.InvalidArgumentError, match=f"column '{missing}'.*is missing") as err:
        autotrack.check_input(source, X.drop(columns=[missing]))
    assert err.value.argument == "X"
    with pytest.raises(autotrack.InvalidArgumentError, match=f"column '{retyped}' has dtype") as err:
        autotrack.check_input(source, X.assign(**{retyped: X[retyped].astype(to)}))
    assert err.value.argument == f"X['{retyped}']"


# -- scikit-learn ----------------------------------------------------------------------------------


def test_sklearn_dataframe_of_mixed_dtypes(store):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from autotrack.integrations.sklearn import Tracked

    X, y = table()
    pipe = make_pipeline(
        ColumnTransformer([("num", "passthrough", ["age", "income"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "note"])]),
        LogisticRegression(max_iter=500))
    model = Tracked(pipe, register_as="churn").fit(X, y)
    art = model_artifact(model.run_id_)
    assert art.signature["inputs"] == columns_of(X)
    assert art.signature["outputs"] == output_of(model.estimator_.predict(X.iloc[:5]))
    kept = ["age", "income", "city", "note"]
    truth = records(X, kept)
    truth[1]["note"] = "***"  # the token shape, redacted
    assert art.input_example == {"format": "records", "columns": kept, "data": truth, "dropped": ["api_key"],
                                 "rows": 5}
    version = model.model_version_
    assert version.signature == art.signature and version.input_example == art.input_example
    assert_validates("churn", X, "city", "age", "float64")
    assert_validates(version, X, "income", "income", "str")


def test_sklearn_numpy_array_and_no_example(store):
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from autotrack.integrations.sklearn import Tracked

    X, y = load_iris(return_X_y=True)
    model = Tracked(RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, y)
    art = model_artifact(model.run_id_)
    assert art.signature == {"inputs": {"type": "array", "shape": [-1, 4], "dtype": "float64", "n_columns": 4},
                             "outputs": output_of(model.estimator_.predict(X[:5]))}
    assert art.input_example == {"format": "array", "data": X[:5].tolist(), "rows": 5}
    assert autotrack.check_input(art, X[:2]) is not None
    with pytest.raises(autotrack.InvalidArgumentError, match="dimension 1 has size 3; the model expects 4"):
        autotrack.check_input(art, X[:, :3])

    quiet = Tracked(RandomForestClassifier(n_estimators=5, random_state=0), log_input_examples=False).fit(X, y)
    art = model_artifact(quiet.run_id_)
    assert art.input_example is None and "input_example" not in art.metadata
    assert art.signature["inputs"]["shape"] == [-1, 4]


def test_sklearn_autolog_honours_log_input_examples(store):
    from sklearn.linear_model import LinearRegression

    X, _ = table(text=False)
    X = X[["age", "income"]]
    target = X["income"] * 2.0
    autotrack.autolog(log_input_examples=False, exclude=["pytorch", "lightning", "keras", "transformers",
                                                          "xgboost", "lightgbm", "optuna"])
    try:
        est = LinearRegression().fit(X, target)
    finally:
        autotrack.autolog(disable=True)
    art = latest_model()
    assert art.signature["inputs"] == columns_of(X)
    assert art.signature["outputs"] == output_of(est.predict(X.iloc[:5]))
    assert art.input_example is None


# -- XGBoost --------------------------------------------------------------------------------------


def test_xgboost_sklearn_api_dataframe(store):
    xgb = pytest.importorskip("xgboost")
    from autotrack.integrations.xgboost import autolog

    X, y = table(text=False)
    autolog()
    try:
        model = xgb.XGBClassifier(n_estimators=4, max_depth=2, enable_categorical=True, nthread=1).fit(X, y)
    finally:
        autolog(disable=True)
    art = latest_model()
    assert art.signature["inputs"] == columns_of(X)
    assert art.signature["outputs"] == output_of(model.get_booster().inplace_predict(X.iloc[:5]))
    assert art.input_example == {"format": "records", "columns": list(X.columns), "data": records(X, list(X.columns)),
                                 "rows": 5}
    assert_validates(art, X, "city", "age", "float64")


def test_xgboost_native_dmatrix(store):
    xgb = pytest.importorskip("xgboost")
    from autotrack.integrations.xgboost import AutotrackCallback

    X, y = table(text=False)
    data = X[["age", "income"]].to_numpy("float64")
    dtrain = xgb.DMatrix(data, y, feature_names=["age", "income"], feature_types=["int", "float"])
    bst = xgb.train({"objective": "binary:logistic", "nthread": 1}, dtrain, 3, callbacks=[AutotrackCallback()])
    art = latest_model()
    assert art.signature["inputs"] == {"type": "columns", "n_columns": 2,
                                       "columns": [{"name": "age", "dtype": "int"}, {"name": "income", "dtype": "float"}]}
    assert art.signature["outputs"] == output_of(bst.predict(xgb.DMatrix(data[:5], feature_names=["age", "income"],
                                                                         feature_types=["int", "float"])))
    rows = data[:5].astype("float32").tolist()  # a DMatrix keeps float32
    assert art.input_example["data"] == [{"age": r[0], "income": r[1]} for r in rows]
    assert autotrack.check_input(art, X[["age", "income"]]) is not None
    with pytest.raises(autotrack.InvalidArgumentError, match="column 'age'"):
        autotrack.check_input(art, X[["income"]])


# -- LightGBM -------------------------------------------------------------------------------------


def test_lightgbm_sklearn_api_dataframe(store):
    lgb = pytest.importorskip("lightgbm")
    from autotrack.integrations.lightgbm import AutotrackCallback

    X, y = table(text=False)
    model = lgb.LGBMClassifier(n_estimators=4, num_leaves=4, verbose=-1).fit(X, y, callbacks=[AutotrackCallback()])
    art = latest_model()
    assert art.signature["inputs"] == columns_of(X)
    assert art.signature["outputs"] == output_of(model.booster_.predict(X.iloc[:5]))
    assert art.input_example["data"] == records(X, list(X.columns))
    assert_validates(art, X, "income", "age", "float64")


def test_lightgbm_train_under_autolog(store):
    lgb = pytest.importorskip("lightgbm")
    from autotrack.integrations.lightgbm import autolog

    X, y = table(text=False)
    data = X[["age", "income"]].to_numpy("float64")
    autolog()
    try:
        booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(data, y), 3)
    finally:
        autolog(disable=True)
    art = latest_model()
    assert art.signature["inputs"] == {"type": "array", "shape": [-1, 2], "dtype": "float64", "n_columns": 2}
    assert art.signature["outputs"] == output_of(booster.predict(data[:5]))
    assert art.input_example["data"] == data[:5].tolist()


# -- PyTorch --------------------------------------------------------------------------------------


def _torch_training(batches: int = 4):
    import torch

    torch.manual_seed(0)
    X = torch.randn(16 * batches, 6)
    y = torch.randint(0, 3, (16 * batches,))
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with autotrack.start_run() as run:
        for i in range(0, len(X), 16):
            loss = torch.nn.functional.cross_entropy(model(X[i:i + 16]), y[i:i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return run, X, model


@pytest.mark.parametrize("examples", [True, False])
def test_plain_pytorch_autolog(store, examples):
    torch = pytest.importorskip("torch")

    autotrack.autolog(log_input_examples=examples, exclude=["lightning", "keras", "transformers", "sklearn",
                                                            "xgboost", "lightgbm", "optuna"])
    try:
        run, X, model = _torch_training()
    finally:
        autotrack.autolog(disable=True)
    art = model_artifact(run.id)
    with torch.no_grad():
        out = model(X[:5])
    assert art.signature == {"inputs": {"type": "tensor", "shape": [-1, 6], "dtype": "float32", "n_columns": 6},
                             "outputs": output_of(out, "tensor")}
    if examples:  # the first forward after autolog found the model: the second batch's first rows
        assert art.input_example == {"format": "array", "data": X[16:21].tolist(), "rows": 5}
    else:
        assert art.input_example is None
    with pytest.raises(autotrack.InvalidArgumentError, match="dimension 1 has size 5"):
        autotrack.check_input(art, X[:, :5])
    autotrack.check_input(art, X[:3])


# -- Lightning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("calls_forward", [True, False])
def test_lightning_callback(store, calls_forward):
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning.pytorch")
    from autotrack.integrations.lightning import AutotrackCallback

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            out = self(x) if calls_forward else self.net(x)  # without forward: the first batch's rows
            return torch.nn.functional.cross_entropy(out, y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x = torch.randn(32, 8)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    module = Net()
    callback = AutotrackCallback(log_model=True)
    L.Trainer(max_epochs=1, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
              enable_model_summary=False, enable_checkpointing=False, callbacks=[callback]).fit(module, loader)
    art = model_artifact(callback.run.id)
    with torch.no_grad():
        out = module(x[:5])
    assert art.signature == {"inputs": {"type": "tensor", "shape": [-1, 8], "dtype": "float32", "n_columns": 8},
                             "outputs": output_of(out, "tensor")}
    np.testing.assert_allclose(np.array(art.input_example["data"]), x[:5].numpy(), rtol=0, atol=0)
    assert module.training  # the no-grad forward put the module back in training mode


# -- Keras ----------------------------------------------------------------------------------------


def test_keras_callback(store):
    keras = pytest.importorskip("keras")
    from autotrack.integrations.keras import AutotrackCallback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[AutotrackCallback()])
    art = latest_model()
    assert art.signature == {"inputs": {"type": "array", "shape": [-1, 4], "dtype": "float32", "n_columns": 4},
                             "outputs": output_of(model.predict(x[:5], verbose=0))}
    assert art.input_example["data"] == x[:5].tolist()
    with pytest.raises(autotrack.InvalidArgumentError, match="dimension 1 has size 2"):
        autotrack.check_input(art, x[:, :2])


def test_lightning_registered_best_checkpoint_has_the_signature(store, tmp_path):
    torch = pytest.importorskip("torch")
    L = pytest.importorskip("lightning.pytorch")
    from autotrack.integrations.lightning import AutotrackCallback

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x, y = torch.randn(24, 6), torch.randint(0, 3, (24,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
    ckpt = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="train_loss_epoch", save_top_k=1)
    callback = AutotrackCallback(register_best_as="net")
    L.Trainer(max_epochs=2, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
              enable_model_summary=False, callbacks=[callback, ckpt]).fit(Net(), loader)
    version = callback.model_version
    assert version.artifact.endswith(".ckpt")
    assert version.signature == {"inputs": {"type": "tensor", "shape": [-1, 6], "dtype": "float32", "n_columns": 6},
                                 "outputs": {"type": "tensor", "shape": [-1, 3], "dtype": "float32", "n_columns": 3}}
    np.testing.assert_array_equal(np.array(version.input_example["data"]), x[:5].numpy())
    with pytest.raises(autotrack.InvalidArgumentError, match="dimension 1 has size 4"):
        autotrack.check_input("net", x[:, :4])


# -- Transformers (checkpoints: the Trainer stores no other model) ----------------------------------


def test_transformers_checkpoints_carry_the_signature(store, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    from autotrack.integrations.transformers import AutotrackCallback

    class Rows(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(1, 20, (12, 7), generator=g)
            self.labels = (self.ids[:, 0] > 10).long()

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": self.ids[i], "attention_mask": torch.ones(7, dtype=torch.long), "labels": self.labels[i]}

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=16,
                                                     max_position_embeddings=8, num_labels=2))
    data = Rows()
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", num_train_epochs=1,
                             per_device_train_batch_size=4, save_strategy="epoch", use_cpu=True, disable_tqdm=True)
    callback = AutotrackCallback()
    Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    checkpoint = next(a for a in autotrack.get_run(callback.run.id).artifacts if a.kind == "checkpoint")
    tokens = {"type": "tensor", "shape": [-1, 7], "dtype": "int64", "n_columns": 7}
    with torch.no_grad():
        logits = model(input_ids=data.ids[:2], attention_mask=torch.ones(2, 7, dtype=torch.long)).logits
    assert checkpoint.signature == {"inputs": {"type": "dict", "fields": {"input_ids": tokens, "attention_mask": tokens}},
                                    "outputs": {"type": "dict", "fields": {"logits": output_of(logits, "tensor")}}}
    example = checkpoint.input_example["data"]
    rows = example["input_ids"]["data"]
    assert len(rows) == 4 and all(row in data.ids.tolist() for row in rows)  # a shuffled first batch's rows
    assert example["attention_mask"]["data"] == [[1] * 7] * 4
