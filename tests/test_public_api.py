"""The public surface changes only on purpose, and importing it stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import autotrack

HEAVY = ["torch", "lightning", "pytorch_lightning", "sklearn", "xgboost", "lightgbm", "keras", "transformers",
         "pandas", "numpy"]


def test_import_leaves_frameworks_and_pandas_out():
    code = f"import sys, autotrack; print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_all_is_pinned():
    assert sorted(autotrack.__all__) == sorted(
        [
            "Artifact", "AutotrackError", "InvalidArgumentError", "MissingDependencyError", "QuerySyntaxError",
            "Run", "RunEndedError", "RunLockedError", "RunNotFoundError", "RunRecord", "StoreError",
            "StoreVersionError", "UnsafeArtifactNameError", "__version__", "active_run", "autolog", "count_runs", "delete_run", "end_run",
            "fingerprint", "flush", "gc", "get_run", "get_store", "log_artifact", "log_metric", "log_metrics", "log_param",
            "log_params", "runs", "seed_everything", "set_store", "set_tag", "set_tags", "start_run",
            # the model registry (issue 18)
            "AliasConflictError", "AliasMove", "ModelNotFoundError", "ModelVersion", "RegisteredModel",
            "RunInUseError", "get_model", "list_models", "load_model", "register_model", "rollback", "set_alias",
            # model signatures (issue 20)
            "check_input",
        ]
    )
    for name in autotrack.__all__:
        assert hasattr(autotrack, name), name


def test_errors_form_one_hierarchy():
    for name in autotrack.__all__:
        obj = getattr(autotrack, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, autotrack.AutotrackError), name
