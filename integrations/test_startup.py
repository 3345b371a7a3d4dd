"""Start-up of autolog (issue 22): a pure scikit-learn or XGBoost script under autolog imports no
framework the same script does not import on its own, and none of scikit-learn's test packages.

Each script runs three ways in its own process -- plain, ``autotrack.autolog()`` at its top, and
``autotrack run`` -- and prints which frameworks are in ``sys.modules`` at its end (after the fit
was recorded and its model stored). The plain run is the truth. Timings live in
``benchmarks/bench_startup.py``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "xgboost", "lightgbm", "keras", "tensorflow", "transformers", "lightning",
              "pytorch_lightning", "jax", "skops", "sklearn", "optuna", "mlflow")

REPORT = textwrap.dedent("""
    import json as _json, sys as _sys
    _report = {"frameworks": sorted(f for f in %r if f in _sys.modules),
               "sklearn_tests": sorted(m for m in _sys.modules
                                       if m.startswith("sklearn.") and "tests" in m.split("."))}
    if "autotrack" in _sys.modules:
        import autotrack as _at
        _at.flush()
        _runs = _at.runs()
        _report["runs"] = [[n, sorted(a.name for a in _at.get_run(i).artifacts if a.kind == "model")]
                           for i, n in zip(_runs["id"], _runs["name"])]
    print("REPORT " + _json.dumps(_report))
    """) % (FRAMEWORKS,)

SKLEARN = textwrap.dedent("""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=300).fit(X, y)
    """)

SKLEARN_IMPORT_ONLY = "import sklearn.ensemble\nimport sklearn.linear_model\n"

XGBOOST = textwrap.dedent("""
    import numpy as np
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] > 0).astype(int)
    d = xgb.DMatrix(X, label=y)
    xgb.train({"objective": "binary:logistic", "nthread": 1}, d, 20, evals=[(d, "train")], verbose_eval=False)
    """)

AUTOLOG = "import autotrack\nautotrack.autolog()\n"


def _run(tmp_path: Path, body: str, mode: str) -> dict:
    script = tmp_path / f"script_{mode}.py"
    script.write_text((AUTOLOG if mode == "autolog" else "") + body + REPORT)
    store = tmp_path / f"store_{mode}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_SYSTEM_METRICS": "0"}
    env.pop("AUTOTRACK_DISABLE", None)
    command = [sys.executable, "-m", "autotrack", "run", str(script)] if mode == "run" else [sys.executable, str(script)]
    done = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.mark.parametrize("mode", ["autolog", "run"])
def test_sklearn_script_under_autolog_imports_no_other_framework(tmp_path, mode):
    plain = _run(tmp_path, SKLEARN, "plain")
    logged = _run(tmp_path, SKLEARN, mode)
    assert plain["frameworks"] == ["sklearn"]
    # skops is the model file's format: imported to write the model, and only then
    assert logged["frameworks"] == ["sklearn", "skops"]
    assert logged["sklearn_tests"] == [] == plain["sklearn_tests"]
    assert logged["runs"] == [["LogisticRegression-150x4", ["model.skops"]]]  # still recorded in full


@pytest.mark.parametrize("mode", ["autolog", "run"])
def test_sklearn_imports_under_autolog_add_nothing_before_a_fit(tmp_path, mode):
    plain = _run(tmp_path, SKLEARN_IMPORT_ONLY, "plain")
    logged = _run(tmp_path, SKLEARN_IMPORT_ONLY, mode)
    assert logged["frameworks"] == plain["frameworks"] == ["sklearn"]
    assert logged["sklearn_tests"] == []
    assert logged["runs"] == []


@pytest.mark.parametrize("mode", ["autolog", "run"])
def test_xgboost_script_under_autolog_imports_no_other_framework(tmp_path, mode):
    pytest.importorskip("xgboost")
    plain = _run(tmp_path, XGBOOST, "plain")
    logged = _run(tmp_path, XGBOOST, mode)
    assert "xgboost" in plain["frameworks"]
    assert logged["frameworks"] == plain["frameworks"]  # XGBoost imports scikit-learn itself; nothing more
    assert logged["sklearn_tests"] == []
    assert logged["runs"] == [[logged["runs"][0][0], ["model.ubj"]]]


def test_skops_trusts_the_same_types_when_imported_by_autotrack(tmp_path):
    """skops' import is guarded (its package walk may not import sklearn's test packages and
    array-API shims); the list of scikit-learn types it trusts must not change by that."""
    pytest.importorskip("skops")
    code = textwrap.dedent("""
        import json, sys
        if sys.argv[1] == "guarded":
            from autotrack.integrations.sklearn._models import skops_io
            skops_io()
        else:
            import skops.io
        from skops.io import _trusted_types
        print(json.dumps({"types": sorted(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES),
                          "torch": "torch" in sys.modules,
                          "tests": sum("tests" in m.split(".") for m in sys.modules if m.startswith("sklearn."))}))
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = {}
    for how in ("guarded", "plain"):
        done = subprocess.run([sys.executable, "-c", code, how], check=False, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        out[how] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["guarded"]["types"] == out["plain"]["types"]
    assert len(out["guarded"]["types"]) > 100
    assert out["guarded"]["torch"] is False and out["guarded"]["tests"] == 0
    if out["plain"]["torch"]:  # what the guard is for, where torch is installed
        assert out["plain"]["tests"] > 0
