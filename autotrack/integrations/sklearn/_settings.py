"""The settings one recorded fit runs with (``Tracked``'s params, or autolog's arguments)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotrack.integrations.base import InvalidArgumentError

INTEGRATION = "sklearn"


@dataclass(frozen=True)
class Settings:
    run_name: str | None = None
    experiment: str | None = None
    tags: Mapping[str, Any] | None = None
    log_model: bool = True
    log_metrics: bool = True
    log_data: bool = True
    eval_set: Any = None
    max_child_runs: int | None = None
    #: store the models of standalone transformers (a MinMaxScaler fitted for a plot); autolog: False
    log_transformer_models: bool = True
    #: store the first training rows with the model (its ``input_example``); the signature always
    log_input_examples: bool = True


def check_settings(s: Settings) -> None:
    if s.run_name is not None and not isinstance(s.run_name, str):
        raise InvalidArgumentError("run_name", s.run_name, "pass a str, or None for a name from the estimator and data")
    if s.experiment is not None and (not isinstance(s.experiment, str) or not s.experiment.strip()):
        raise InvalidArgumentError("experiment", s.experiment, "pass a non-empty str, or None for the default")
    if s.tags is not None and not isinstance(s.tags, Mapping):
        raise InvalidArgumentError("tags", s.tags, "pass a dict of name -> text")
    for name in ("log_model", "log_metrics", "log_data", "log_transformer_models", "log_input_examples"):
        if not isinstance(getattr(s, name), bool):
            raise InvalidArgumentError(name, getattr(s, name), "pass True or False")
    if s.eval_set is not None and not (isinstance(s.eval_set, (tuple, list)) and len(s.eval_set) == 2):
        raise InvalidArgumentError("eval_set", s.eval_set, "pass a pair (X_val, y_val), or None")
    cap = s.max_child_runs
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 0):
        raise InvalidArgumentError("max_child_runs", cap, "pass an int >= 0, or None to record every candidate")
