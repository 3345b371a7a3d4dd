"""Model signatures and input examples, framework-free (autotrack._signature through base.model_io):
schemas against the data's own shapes and dtypes, the secret filter and size cap of the example,
and check_input's errors; stored and read back through a real store and the registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import autotrack
from autotrack import _signature
from autotrack.integrations.base import data_schema, model_io

TOKEN = "ghp_" + "x1Y2z3" * 6  # a GitHub token shape


def frame(n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.normal(size=n),
        "city": pd.Categorical(rng.choice(["oslo", "rome"], n)),
        "flag": rng.integers(0, 2, n).astype(bool),
        "note": [TOKEN if i == 2 else f"n{i}" for i in range(n)],
        "db_password": [f"pw{i}" for i in range(n)],
    })


def test_dataframe_schema_is_the_frames_own_dtypes():
    X = frame()
    got = data_schema(X)
    assert got == {"type": "dataframe", "n_columns": X.shape[1],
                   "columns": [{"name": c, "dtype": str(X[c].dtype)} for c in X.columns]}


@pytest.mark.parametrize("shape,dtype", [((7, 3), "float32"), ((7,), "int64"), ((7, 2, 5), "uint8")])
def test_array_schema_has_a_free_batch_dimension(shape, dtype):
    got = data_schema(np.zeros(shape, dtype=dtype))
    assert got["type"] == "array" and got["dtype"] == dtype
    assert got["shape"] == [-1, *shape[1:]]
    assert got.get("n_columns") == (shape[1] if len(shape) == 2 else None)


def test_dict_and_tuple_inputs_are_schemas_of_their_parts():
    ids, mask = np.zeros((4, 9), "int64"), np.ones((4, 9), "bool")
    assert data_schema({"input_ids": ids, "mask": mask}) == {
        "type": "dict", "fields": {"input_ids": data_schema(ids), "mask": data_schema(mask)}}
    assert data_schema((ids, mask)) == {"type": "sequence", "items": [data_schema(ids), data_schema(mask)]}


def test_example_is_the_first_rows_with_secrets_filtered(monkeypatch):
    X = frame()
    meta = model_io(X, lambda rows: rows["income"].to_numpy() * 2, log_example=True)
    example = meta["input_example"]
    kept = ["age", "income", "city", "flag", "note"]
    assert example["columns"] == kept and example["dropped"] == ["db_password"] and example["rows"] == 5
    truth = [{c: X[c].iloc[i].item() if hasattr(X[c].iloc[i], "item") else X[c].iloc[i] for c in kept}
             for i in range(5)]
    truth[2]["note"] = "***"
    assert example["data"] == truth
    assert TOKEN not in json.dumps(meta)
    assert meta["signature"]["outputs"] == {"type": "array", "shape": [-1], "dtype": "float64"}


def test_an_environment_secret_in_an_array_example_is_redacted(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-42")
    rows = np.array([["a", "s3cr3t-value-42"], ["b", "c"]], dtype=object)
    example = model_io(rows)["input_example"]
    assert example["data"] == [["a", "***"], ["b", "c"]]


def test_no_example_when_switched_off_and_the_signature_stays():
    meta = model_io(np.ones((9, 2)), log_example=False)
    assert "input_example" not in meta and meta["signature"]["inputs"]["shape"] == [-1, 2]


def test_the_example_is_capped_in_size():
    wide = np.arange(5 * 3000, dtype="float64").reshape(5, 3000)
    got = _signature.input_example(wide, max_bytes=40_000)
    example = got["input_example"]
    assert 1 <= example["rows"] < 5 and example["data"] == wide[:example["rows"]].tolist()
    assert len(json.dumps(example)) <= 40_000 + 20
    huge = _signature.input_example(np.zeros((5, 20_000)), max_bytes=10_000)
    assert "input_example" not in huge and "one row is" in huge["input_example_omitted"]


def test_a_failing_predict_leaves_the_outputs_empty_with_the_reason():
    def predict(rows):
        raise ValueError("needs a fitted scaler")

    sig = model_io(np.ones((3, 2)), predict)["signature"]
    assert sig["outputs"] is None and "needs a fitted scaler" in sig["outputs_error"]


def test_check_input_names_the_missing_column_and_the_wrong_dtype():
    X = frame()
    sig = model_io(X)["signature"]
    assert autotrack.check_input(sig, X) is X
    assert autotrack.check_input(sig, X.assign(extra=1)) is not None  # extra columns are fine
    assert autotrack.check_input(sig, X.assign(income=X["age"])) is not None  # ints where floats go
    with pytest.raises(autotrack.InvalidArgumentError, match=r"column 'income' \(float64\) is missing") as err:
        autotrack.check_input(sig, X.drop(columns=["income"]))
    assert err.value.argument == "X"
    with pytest.raises(autotrack.InvalidArgumentError, match=r"has dtype float64; the model expects int64") as err:
        autotrack.check_input(sig, X.assign(age=X["age"] + 0.5))
    assert err.value.argument == "X['age']" and err.value.value == "float64"
    with pytest.raises(autotrack.InvalidArgumentError, match="expects bool"):
        autotrack.check_input(sig, X.assign(flag=X["note"]))


def test_check_input_on_arrays_names_the_dimension():
    sig = model_io(np.zeros((10, 4), "float32"))["signature"]
    autotrack.check_input(sig, np.ones((2, 4), "float64"))
    with pytest.raises(autotrack.InvalidArgumentError, match="dimension 1 has size 3; the model expects 4"):
        autotrack.check_input(sig, np.ones((2, 3)))
    with pytest.raises(autotrack.InvalidArgumentError, match="takes 2-D input"):
        autotrack.check_input(sig, np.ones(4))
    with pytest.raises(autotrack.InvalidArgumentError, match="expects float32"):
        autotrack.check_input(sig, np.array([["a"] * 4]))
    with pytest.raises(autotrack.InvalidArgumentError, match="invalid model="):
        autotrack.check_input(42, np.ones((1, 4)))


def test_stored_signature_reads_back_from_the_run_and_the_registry(store):
    X = frame()
    with autotrack.start_run() as run:
        run.log_bytes(b"weights", "model.bin", "model", metadata={"format": "bin", **model_io(X, len)})
    rec = autotrack.get_run(run.id)
    art = rec.artifacts[0]
    assert art.signature["inputs"] == data_schema(X) and art.input_example["rows"] == 5
    assert autotrack.check_input(rec, X) is X
    version = autotrack.register_model("churn", run=rec, artifact="model.bin")
    assert version.signature == art.signature and version.input_example == art.input_example
    autotrack.set_alias("churn", "champion", version.version)
    with pytest.raises(autotrack.InvalidArgumentError, match="'city'"):
        autotrack.check_input("churn@champion", X.drop(columns=["city"]))
    with autotrack.start_run() as bare:
        bare.log_bytes(b"w", "old.bin", "model")
    with pytest.raises(autotrack.InvalidArgumentError, match="stored without an input signature"):
        autotrack.check_input(autotrack.get_run(bare.id), X)
