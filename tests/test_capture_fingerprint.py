"""Data fingerprints and the data section."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import autotrack
from autotrack._capture import log_data
from autotrack._errors import InvalidArgumentError

ROOT = Path(__file__).resolve().parents[1]
# the module (the package attribute of the same name is the function)
fpmod = importlib.import_module("autotrack._capture.fingerprint")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0")


def test_file_fingerprint_matches_size_and_changes_with_content(tmp_path):
    f = tmp_path / "train.csv"
    f.write_bytes(b"a,b\n1,2\n" * 1000)
    fp = autotrack.fingerprint(f)
    assert fp["type"] == "file" and fp["bytes"] == f.stat().st_size == 8000
    assert fp["hash_method"] == "full"
    assert autotrack.fingerprint(str(f))["hash"] == fp["hash"]
    f.write_bytes(b"a,b\n1,2\n" * 999 + b"a,b\n1,3\n")
    assert autotrack.fingerprint(f)["hash"] != fp["hash"]


def test_folder_fingerprint(tmp_path):
    d = tmp_path / "images"
    (d / "cats").mkdir(parents=True)
    (d / "cats" / "1.png").write_bytes(b"\x89PNG one")
    (d / "2.png").write_bytes(b"\x89PNG two")
    fp = autotrack.fingerprint(d)
    assert fp["type"] == "folder" and fp["files"] == 2 and fp["bytes"] == 16
    (d / "2.png").rename(d / "3.png")  # same bytes, different names -> different data
    assert autotrack.fingerprint(d)["hash"] != fp["hash"]


def test_missing_path_and_unsupported_objects_raise(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no such file"):
        autotrack.fingerprint(tmp_path / "nope")
    with pytest.raises(InvalidArgumentError, match="fingerprint"):
        autotrack.fingerprint(object())


def test_large_file_is_sampled_and_the_method_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(fpmod, "SAMPLE_ABOVE_BYTES", 1 << 20)
    f = tmp_path / "big.bin"
    data = bytearray(os.urandom(4 << 20))
    f.write_bytes(data)
    fp = autotrack.fingerprint(f)
    assert fp["hash_method"].startswith("sampled")
    data[-1] ^= 0xFF  # the last block is always read
    f.write_bytes(data)
    assert autotrack.fingerprint(f)["hash"] != fp["hash"]


def test_numpy_array(tmp_path):
    np = pytest.importorskip("numpy")
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    fp = autotrack.fingerprint(a)
    assert fp["shape"] == [4, 6] and fp["dtype"] == "float32" and fp["bytes"] == a.nbytes
    assert autotrack.fingerprint(a.copy())["hash"] == fp["hash"]
    assert autotrack.fingerprint(np.asfortranarray(a))["hash"] == fp["hash"]  # same data, other layout
    assert autotrack.fingerprint(a.reshape(6, 4))["hash"] != fp["hash"]
    assert autotrack.fingerprint(a.astype(np.float64))["hash"] != fp["hash"]
    b = a.copy()
    b[3, 5] += 1
    assert autotrack.fingerprint(b)["hash"] != fp["hash"]


def test_large_numpy_array_is_sampled(monkeypatch):
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(fpmod, "SAMPLE_ABOVE_BYTES", 1 << 20)
    a = np.random.default_rng(0).random((4096, 64))  # 2 MiB
    fp = autotrack.fingerprint(a)
    assert fp["hash_method"].startswith("sampled")
    b = a.copy()
    b[-1, 0] += 1  # the last row is always sampled
    assert autotrack.fingerprint(b)["hash"] != fp["hash"]


def test_same_data_same_fingerprint_across_processes(tmp_path):
    np = pytest.importorskip("numpy")
    code = ("import json, numpy as np, autotrack;"
            "print(json.dumps(autotrack.fingerprint(np.arange(1000, dtype=np.int64).reshape(100, 10))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "random"}
    outs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(2)]
    here = autotrack.fingerprint(np.arange(1000, dtype=np.int64).reshape(100, 10))
    assert outs[0] == outs[1] == here


def test_pandas_frame_and_series():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]})
    fp = autotrack.fingerprint(df)
    assert fp["rows"] == 3 and fp["columns"] == ["x", "city"]
    assert fp["dtypes"] == {c: str(t) for c, t in df.dtypes.items()}
    assert fp["bytes"] == int(df.memory_usage(index=True).sum())
    assert autotrack.fingerprint(df.copy())["hash"] == fp["hash"]
    changed = df.copy()
    changed.loc[2, "city"] = "d"
    assert autotrack.fingerprint(changed)["hash"] != fp["hash"]
    s = autotrack.fingerprint(df["x"])
    assert s["type"] == "pandas.Series" and s["rows"] == 3 and s["name"] == "x"


def test_torch_tensor_and_dataset():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    fp = autotrack.fingerprint(t)
    assert fp["shape"] == [3, 4] and fp["dtype"] == "float32" and fp["bytes"] == 48
    assert autotrack.fingerprint(t.clone())["hash"] == fp["hash"]
    assert autotrack.fingerprint(t.t().contiguous().t())["hash"] == fp["hash"]
    assert autotrack.fingerprint(t + 1)["hash"] != fp["hash"]
    assert autotrack.fingerprint(t.to(torch.bfloat16))["dtype"] == "bfloat16"
    ds = TensorDataset(t, torch.zeros(3))
    dfp = autotrack.fingerprint(ds)
    assert dfp["length"] == 3 and dfp["bytes"] == 48 + 12
    lfp = autotrack.fingerprint(DataLoader(ds, batch_size=2))
    assert lfp["hash"] == dfp["hash"] and lfp["loader"]["batch_size"] == 2 and lfp["loader"]["batches"] == 2


def test_generic_dataset_with_length():
    class Squares:
        def __init__(self, n: int, bump: int = 0) -> None:
            self.n, self.bump = n, bump

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> tuple[int, int]:
            if not 0 <= i < self.n:
                raise IndexError(i)
            return (i, i * i + (self.bump if i == self.n - 1 else 0))

    fp = autotrack.fingerprint(Squares(1000))
    assert fp["length"] == 1000 and fp["hash_method"] == "16 sampled items"
    assert autotrack.fingerprint(Squares(1000))["hash"] == fp["hash"]
    assert autotrack.fingerprint(Squares(1000, bump=1))["hash"] != fp["hash"]
    assert autotrack.fingerprint(Squares(5))["hash_method"] == "every item"


def test_xgboost_dmatrix():
    xgb = pytest.importorskip("xgboost")
    np = pytest.importorskip("numpy")
    X = np.arange(20, dtype=np.float32).reshape(5, 4) + 1
    fp = autotrack.fingerprint(xgb.DMatrix(X, label=np.arange(5)))
    assert fp["rows"] == 5 and fp["columns"] == 4
    assert autotrack.fingerprint(xgb.DMatrix(X, label=np.arange(5)))["hash"] == fp["hash"]
    assert autotrack.fingerprint(xgb.DMatrix(X, label=np.arange(5) + 1))["hash"] != fp["hash"]
    X2 = X.copy()
    X2[0, 0] = 99
    assert autotrack.fingerprint(xgb.DMatrix(X2, label=np.arange(5)))["hash"] != fp["hash"]


def test_log_data_merges_entries_into_the_data_section(store, tmp_path):
    f1 = tmp_path / "train.txt"
    f1.write_text("train rows\n")
    f2 = tmp_path / "val.txt"
    f2.write_text("validation rows\n")
    with autotrack.start_run() as run:
        log_data(run, "train", f1)
        log_data(run, "validation", f2, role="eval")
        log_data(run, "train", f1)  # logging again replaces that entry only
    data = autotrack.get_run(run.id).info("data")
    assert set(data) == {"train", "validation"}
    assert data["train"]["hash"] == autotrack.fingerprint(f1)["hash"]
    assert data["validation"]["role"] == "eval"
    assert data["validation"]["bytes"] == f2.stat().st_size
