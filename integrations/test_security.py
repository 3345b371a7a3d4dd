"""Nothing is unpickled by default: planted `__reduce__` payloads in stored models never run."""

from __future__ import annotations

import pickle

import pytest

import autotrack


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_torch_weights_are_loaded_without_running_pickled_code(store, tmp_path):
    torch = pytest.importorskip("torch")
    from autotrack.integrations.torch import load_weights

    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pt"
    torch.save({"weight": torch.ones(2), "trap": _Payload(str(marker))}, evil)
    with autotrack.start_run() as run:
        run.log_artifact(evil, kind="model")
    with pytest.raises(pickle.UnpicklingError):
        load_weights(run.id)
    assert not marker.exists()

    good = tmp_path / "good.pt"
    torch.save({"weight": torch.arange(3.0)}, good)
    with autotrack.start_run() as run2:
        run2.log_artifact(good, name="model.pt", kind="model")
    assert torch.equal(load_weights(run2.id)["weight"], torch.arange(3.0))


def test_sklearn_pickle_fallback_is_never_loaded_unless_asked(store, tmp_path):
    pytest.importorskip("sklearn")
    import joblib

    from autotrack.integrations.sklearn import load_model

    marker = tmp_path / "pwned"
    evil = tmp_path / "model.joblib"
    joblib.dump(_Payload(str(marker)), evil)
    with autotrack.start_run() as run:
        run.log_artifact(evil, kind="model", metadata={"format": "joblib", "safe_to_load": False})
    with pytest.raises(autotrack.InvalidArgumentError, match="allow_pickle"):
        load_model(run.id)
    assert not marker.exists()


def test_skops_model_with_untrusted_types_is_refused(store, tmp_path):
    pytest.importorskip("sklearn")
    skops_io = pytest.importorskip("skops.io")

    from autotrack.integrations.sklearn import load_model

    marker = tmp_path / "pwned"
    path = tmp_path / "model.skops"
    skops_io.dump({"trap": _Payload(str(marker))}, path)
    with autotrack.start_run() as run:
        run.log_artifact(path, kind="model", metadata={"format": "skops"})
    with pytest.raises(Exception, match="(?i)untrusted|trusted"):
        load_model(run.id)
    assert not marker.exists()


def test_planted_secrets_reach_no_output_and_no_file(tmp_path):
    """Secrets in the environment and in argv: not in anything autotrack prints (run, show, runs,
    doctor, diff) nor in any byte of any file the store holds."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    secrets = {
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYzz9s3cr3t",
        "HF_TOKEN": "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
        "MY_SERVICE_PASSWORD": "correct-horse-battery-staple-42",
    }
    hub_token = "hubtok_5f4dcc3b5aa765d61d8327deb882cf99"
    script = tmp_path / "train.py"
    script.write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('--hub_token')\n"
                      "p.add_argument('--lr', type=float)\nargs = p.parse_args()\nimport autotrack\n"
                      "with autotrack.start_run() as run:\n    run.log_metric('loss', 0.5)\nprint('done')\n")
    store = tmp_path / "store"
    env = {**os.environ, **secrets, "PYTHONPATH": str(root), "AUTOTRACK_DIR": str(store),
           "AUTOTRACK_CAPTURE": "1", "AUTOTRACK_SYSTEM_METRICS": "0"}
    outputs = []
    for args in (["run", str(script), f"--hub_token={hub_token}", "--lr", "0.1"],
                 ["run", str(script), "--hub_token", hub_token, "--lr", "0.2"],
                 ["runs", "--json"], ["show", "latest"], ["show", "latest", "--json"], ["doctor", "--json"]):
        done = subprocess.run([sys.executable, "-m", "autotrack", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        outputs.append(done.stdout + done.stderr)
    ids = autotrack.runs(store=store)["id"].tolist()
    assert len(ids) == 2
    diff = subprocess.run([sys.executable, "-m", "autotrack", "diff", *ids, "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    outputs.append(diff.stdout + diff.stderr)
    rec = autotrack.get_run(ids[0], store=store)
    assert "--hub_token" in " ".join(rec.info("source")["argv"])  # the flag is kept, its value is not
    everything = "\n".join(outputs).encode()
    for path in store.rglob("*"):
        if path.is_file():
            everything += path.read_bytes()
    for value in [*secrets.values(), hub_token]:
        assert value.encode() not in everything, value
