"""autotrack: complete, free and crash-safe experiment tracking (a local SQLite store by default).

    import autotrack
    autotrack.autolog()                       # or a callback / wrapper per framework
    with autotrack.start_run(name="baseline", experiment="house-prices") as run:
        run.log_params({"lr": 0.01})
        run.log_metric("val/rmse", 0.41, step=3)
    autotrack.runs(experiment="house-prices")  # a pandas DataFrame

Importing autotrack imports no ML framework and not pandas.
"""

from __future__ import annotations

from ._errors import (
    AutotrackError,
    InvalidArgumentError,
    AliasConflictError,
    MissingDependencyError,
    ModelNotFoundError,
    QuerySyntaxError,
    RunEndedError,
    RunLockedError,
    RunInUseError,
    RunNotFoundError,
    StoreError,
    StoreVersionError,
    UnsafeArtifactNameError,
)
from ._autolog import autolog
from ._query import Artifact, RunRecord, count_runs, delete_run, gc, get_run, runs
from ._registry import (
    AliasMove,
    ModelVersion,
    RegisteredModel,
    get_model,
    list_models,
    load_model,
    register_model,
    rollback,
    set_alias,
)
from ._run import (
    Run,
    active_run,
    end_run,
    flush,
    get_store,
    log_artifact,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_store,
    set_tag,
    set_tags,
    start_run,
)

from ._signature import check_input
from ._capture import fingerprint, seed_everything  # also registers the start-of-run capture

__version__ = "0.1.0"

__all__ = [
    "AliasConflictError",
    "AliasMove",
    "Artifact",
    "AutotrackError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "ModelVersion",
    "QuerySyntaxError",
    "RegisteredModel",
    "Run",
    "RunEndedError",
    "RunInUseError",
    "RunLockedError",
    "RunNotFoundError",
    "RunRecord",
    "StoreError",
    "StoreVersionError",
    "UnsafeArtifactNameError",
    "__version__",
    "active_run",
    "autolog",
    "check_input",
    "count_runs",
    "delete_run",
    "end_run",
    "fingerprint",
    "flush",
    "gc",
    "get_model",
    "get_run",
    "get_store",
    "list_models",
    "load_model",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "register_model",
    "rollback",
    "runs",
    "seed_everything",
    "set_alias",
    "set_store",
    "set_tag",
    "set_tags",
    "start_run",
]
