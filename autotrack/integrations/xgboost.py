"""XGBoost: :class:`AutotrackCallback` records one training run; :func:`autolog` adds it to every
``xgboost.train`` and ``xgboost.cv`` call (and so to the scikit-learn API).

    from autotrack.integrations.xgboost import AutotrackCallback
    bst = xgb.train(params, dtrain, evals=[(dtrain, "train"), (dval, "val")],
                    callbacks=[AutotrackCallback()])

What lands in the run (rank 0 only when training is distributed):

* metrics, step = boosting round (continuing after the rounds of an ``xgb_model=`` it resumes):
  ``<data>/<metric>`` for every eval set and metric, exactly XGBoost's ``evals_result``
  (under ``xgb.cv`` the mean over folds, plus ``<data>/<metric>/std``); ``iteration_time``
  (seconds of one round: update and evaluation); ``best_iteration`` and ``best_score`` once, at the
  end, when early stopping set them.
* params: the user's params as given (``max_depth``, ``eta``, ...), ``num_boost_round``,
  ``early_stopping_rounds``, and the complete configuration from ``Booster.save_config()``
  (defaults included) flattened under ``xgboost.`` (``xgboost.learner.generic_param.nthread``).
  The section ``config`` lists which params the user gave (``user_params``).
* sections: ``config`` (device, nthread, user_params, early stopping, start round, folds, world
  size, xgboost version), ``model`` (booster, rounds, features, best iteration and score, feature
  importance of every type), ``data`` (one entry per DMatrix, named as in ``evals``, the training
  one ``train`` otherwise: the capture's fingerprint (rows, columns, feature names and types,
  content hash), the non-missing count and its role, ``train`` or ``eval``).
* artifact ``model.ubj`` (kind ``model``, UBJSON, ``xgboost.Booster(model_file=...)`` reads it).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import xgboost
from xgboost.callback import EarlyStopping, TrainingCallback

import autotrack
from autotrack._errors import InvalidArgumentError
from autotrack._patching import guarded, patch, unpatch
from autotrack._run import Run

try:  # the capture's data fingerprints, where that part of autotrack is present
    from autotrack._capture import fingerprint as _capture_fingerprint
    from autotrack._capture import log_data as _capture_log_data
except ImportError:
    _capture_fingerprint = _capture_log_data = None

if TYPE_CHECKING:
    from typing_extensions import override
    from xgboost.training import _PackedBooster

    #: What XGBoost hands a callback: the Booster, or under ``xgb.cv`` its pack of fold boosters.
    Model = Union[xgboost.Booster, _PackedBooster]
else:
    Model = Any

    def override(fn: Any) -> Any:
        return fn


__all__ = ["AutotrackCallback", "autolog"]

EvalsLog = TrainingCallback.EvalsLog
IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
MODEL_NAME = "model.ubj"
#: DMatrix objects with more non-missing values than this are described but not hashed: hashing
#: needs a copy of the data (~8 bytes per value), 20 million values ~ 160 MB and ~0.2 s.
HASH_LIMIT = 20_000_000


class AutotrackCallback(TrainingCallback):
    """Record an XGBoost training into ``run``, or into a run it starts (and ends) itself.

    Args:
        run: an open :class:`autotrack.Run` to record into. ``None`` (default): a new run is
            started when training starts (a child of the active run, if any) and ended when it ends.
        log_model: store the trained booster as the artifact ``model.ubj`` (kind ``model``).
        register_as: a model name: register ``model.ubj`` as its next version at the end of
            training (``autotrack.register_model``; early stopping's best iteration is inside the
            booster). The version is in ``callback.model_version``.

    The keys it records are listed in this module's docstring. It never changes training:
    ``after_iteration`` returns ``False`` and ``after_training`` returns the model it was given.
    """

    def __init__(self, run: Run | None = None, *, log_model: bool = True, register_as: str | None = None) -> None:
        super().__init__()
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError(
                "run", run, "pass a run from autotrack.start_run(), or None to let the callback start one"
            )
        if not isinstance(log_model, bool):
            raise InvalidArgumentError("log_model", log_model, "pass True or False")
        if register_as is not None and (not isinstance(register_as, str) or not log_model):
            raise InvalidArgumentError("register_as", register_as, "pass a model name (str) with log_model=True, "
                                       "or None not to register")
        self.log_model = log_model
        self.register_as = register_as
        self.model_version: autotrack.ModelVersion | None = None
        self._given_run = run
        self._parent_id: str | None = None  # the given run's id, in a pickled or deep-copied callback
        self._run: Run | None = run
        self._owns_run = False
        self._active = False
        self._first_step = 0
        self._step = -1
        self._round_start = 0.0

    @property
    def run(self) -> Run | None:
        """The run this callback records into (``None`` until training starts, unless one was given)."""
        return self._run

    # -- XGBoost's hooks: thin, and returning exactly what the contract says ------------------

    @override
    def before_training(self, model: Model) -> Model:
        self._start(model)
        return model

    @override
    def before_iteration(self, model: Model, epoch: int, evals_log: EvalsLog) -> bool:
        self._round_start = time.perf_counter()
        return False

    @override
    def after_iteration(self, model: Model, epoch: int, evals_log: EvalsLog) -> bool:
        if self._active:
            self._log_iteration(epoch, evals_log)
        return False

    @override
    def after_training(self, model: Model) -> Model:
        if self._active:
            self._finish(model)
        return model

    # -- what each hook does --------------------------------------------------------------------

    @guarded("xgboost callback before_training")
    def _start(self, model: Model) -> None:
        self._active = False
        if xgboost.collective.get_rank() != 0:
            return  # distributed training: rank 0 records the one run
        booster = _booster(model)
        self._run = self._open_run()
        self._first_step = booster.num_boosted_rounds() if isinstance(model, xgboost.Booster) else 0
        self._step = self._first_step - 1
        self._active = True
        call = _TrainingCall.find()
        config = json.loads(booster.save_config())
        self._run.log_params({**call.params_to_log(), "xgboost": config})
        self._run.set_info("config", self._config_section(config, call, model))
        self._log_data(call)

    def _open_run(self) -> Run:
        given = self._given_run
        self._owns_run = given is None
        if given is None:
            return autotrack.start_run(parent=self._parent_id)
        if given.ended:
            raise InvalidArgumentError(
                "run", given, "this run has ended; pass an open run, or None to let the callback start one"
            )
        return given

    @guarded("xgboost callback after_iteration")
    def _log_iteration(self, epoch: int, evals_log: EvalsLog) -> None:
        seconds = time.perf_counter() - self._round_start
        run = self._run
        assert run is not None
        step = self._step = run.step = self._first_step + epoch
        now = time.time()
        for data, metrics in evals_log.items():
            for metric, history in metrics.items():
                value = history[-1]
                if isinstance(value, tuple):  # xgb.cv: (mean, std) over folds
                    run.log_metric(f"{data}/{metric}", value[0], step, now)
                    run.log_metric(f"{data}/{metric}/std", value[1], step, now)
                else:
                    run.log_metric(f"{data}/{metric}", value, step, now)
        run.log_metric("iteration_time", seconds, step, now)

    @guarded("xgboost callback after_training")
    def _finish(self, model: Model) -> None:
        try:
            self._log_outcome(model)
        finally:
            self._active = False
            if self._owns_run and self._run is not None:
                self._run.end("finished")

    def _log_outcome(self, model: Model) -> None:
        run = self._run
        assert run is not None
        booster = _booster(model)
        config = json.loads(booster.save_config())
        run.log_params({"xgboost": config})  # again: training settles some values (base_score, num_trees)
        best = _best(model)
        if best:
            run.log_metrics(best, step=max(self._step, 0))
        if not isinstance(model, xgboost.Booster):  # xgb.cv: no single model to describe
            run.set_info("model", {"folds": len(model.cvfolds), "num_boosted_rounds": booster.num_boosted_rounds(), **best})
            return
        run.set_info("model", {**_describe_booster(model, config), **best, "importance": _importance(model, config)})
        if self.log_model:
            metadata = {"format": "ubj", "xgboost_version": xgboost.__version__,
                        "num_boosted_rounds": model.num_boosted_rounds(), **best}
            run.log_bytes(bytes(model.save_raw("ubj")), MODEL_NAME, "model", step=max(self._step, 0), metadata=metadata)
            if self.register_as is not None:  # issue 18: opt-in registration
                self.model_version = autotrack.register_model(self.register_as, run=run, artifact=MODEL_NAME)

    def _abort(self, error: BaseException) -> None:
        """Training raised (called by autolog): end the run this callback started as failed/killed."""
        if self._owns_run and self._run is not None and not self._run.ended:
            self._active = False
            self._run.end("killed" if isinstance(error, KeyboardInterrupt) else "failed", error=error)

    def _config_section(self, config: dict[str, Any], call: _TrainingCall, model: Model) -> dict[str, Any]:
        generic = config.get("learner", {}).get("generic_param", {})
        section: dict[str, Any] = {
            "device": generic.get("device"),
            "nthread": int(generic.get("nthread", 0)),  # 0: XGBoost's default, every core
            "function": f"xgboost.{call.function}" if call.function else None,
            "user_params": sorted(call.params),
            "num_boost_round": call.num_boost_round,
            "start_round": self._first_step,
            "world_size": xgboost.collective.get_world_size(),
            "xgboost_version": xgboost.__version__,
        }
        if call.early_stopping is not None:
            es = call.early_stopping
            section["early_stopping"] = {"rounds": es.rounds, "data": es.data, "metric": es.metric_name,
                                         "maximize": es.maximize, "save_best": es.save_best}
        if not isinstance(model, xgboost.Booster):
            section["nfold"] = len(model.cvfolds)
        return section

    @guarded("xgboost callback: data fingerprints")
    def _log_data(self, call: _TrainingCall) -> None:
        described: dict[int, dict[str, Any]] = {}  # one fingerprint per DMatrix, however often named
        entries = {}
        for name, (dmatrix, role) in call.data().items():
            if id(dmatrix) not in described:
                described[id(dmatrix)] = _describe_dmatrix(dmatrix)
            entries[name] = {**described[id(dmatrix)], "role": role}
        assert self._run is not None
        if _capture_log_data is not None:  # keeps entries other code logged into the section
            for name, entry in entries.items():
                _capture_log_data(self._run, name, entry)
        elif entries:
            self._run.set_info("data", entries)

    # -- pickling (sklearn clones, dask and joblib workers): drop the live run handle ---------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        given = state["_given_run"]
        state.update(_given_run=None, _run=None, _owns_run=False, _active=False, model_version=None,
                     _parent_id=given.id if given is not None else self._parent_id)
        return state


# -- what xgboost.train / xgboost.cv was called with ----------------------------------------------


@dataclass
class _TrainingCall:
    """The arguments of the ``xgboost.train``/``xgboost.cv`` call being run.

    XGBoost hands a callback only the model; the rest (num_boost_round, the DMatrix objects, early
    stopping) is read from the frame of that call, found up the stack. Absent (all empty) when the
    callback is driven some other way.
    """

    function: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int | None = None
    dtrain: xgboost.DMatrix | None = None
    evals: list[tuple[xgboost.DMatrix, str]] = field(default_factory=list)
    early_stopping: EarlyStopping | None = None

    @classmethod
    def find(cls) -> _TrainingCall:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name in ("train", "cv") and frame.f_globals.get("__name__") == "xgboost.training":
                return cls.from_locals(frame.f_code.co_name, frame.f_locals)
            frame = frame.f_back  # type: ignore[assignment]
        return cls()

    @classmethod
    def from_locals(cls, function: str, local: Mapping[str, Any]) -> _TrainingCall:
        params = _params_dict(local.get("params") or {})
        if function == "cv" and local.get("metrics"):  # cv moves eval_metric out of params
            params.setdefault("eval_metric", list(local["metrics"]))
        stoppers = [cb for cb in local.get("callbacks") or () if isinstance(cb, EarlyStopping)]
        return cls(function, params, local.get("num_boost_round"), local.get("dtrain"),
                   list(local.get("evals") or ()), stoppers[0] if stoppers else None)

    def data(self) -> dict[str, tuple[xgboost.DMatrix, str]]:
        """name -> (DMatrix, role): each eval set by its name, the training DMatrix as ``train`` (or
        by its eval name when it is also evaluated)."""
        entries = {name: (dmatrix, "eval") for dmatrix, name in self.evals}
        if self.dtrain is not None:
            name = next((n for d, n in self.evals if d is self.dtrain), None)
            name = name or ("train" if "train" not in entries else "dtrain")
            entries[name] = (self.dtrain, "train")
        return entries

    def params_to_log(self) -> dict[str, Any]:
        out = dict(self.params)
        if self.num_boost_round is not None:
            out["num_boost_round"] = self.num_boost_round
        if self.early_stopping is not None:
            out["early_stopping_rounds"] = self.early_stopping.rounds
        return out


def _params_dict(params: Any) -> dict[str, Any]:
    """Booster params as a dict; a list of pairs with repeated keys (eval_metric) keeps every value."""
    if isinstance(params, Mapping):
        return dict(params)
    out: dict[str, Any] = {}
    for key, value in params:
        if key not in out:
            out[key] = value
        else:  # a repeated key: keep every value
            out[key] = [*out[key], value] if isinstance(out[key], list) else [out[key], value]
    return out


# -- reading the model ------------------------------------------------------------------------------


def _booster(model: Model) -> xgboost.Booster:
    return model if isinstance(model, xgboost.Booster) else model.cvfolds[0].bst


def _best(model: Model) -> dict[str, Any]:
    """best_iteration and best_score as early stopping set them on the model (empty without it)."""
    iteration, score = model.attr("best_iteration"), model.attr("best_score")
    best: dict[str, Any] = {}
    if iteration is not None:
        best["best_iteration"] = int(iteration)
    if score is not None:
        best["best_score"] = float(score)
    return best


def _describe_booster(booster: xgboost.Booster, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "booster": config["learner"]["gradient_booster"]["name"],
        "objective": config["learner"]["objective"]["name"],
        "num_boosted_rounds": booster.num_boosted_rounds(),
        "num_features": booster.num_features(),
        "feature_names": booster.feature_names,
        "feature_types": booster.feature_types,
    }


def _importance(booster: xgboost.Booster, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Feature importance of every type XGBoost defines for this booster (gblinear: weight only)."""
    linear = config["learner"]["gradient_booster"]["name"] == "gblinear"
    return {kind: booster.get_score(importance_type=kind) for kind in (("weight",) if linear else IMPORTANCE_TYPES)}


def _describe_dmatrix(dmatrix: xgboost.DMatrix) -> dict[str, Any]:
    """The capture's fingerprint (with a content hash) when autotrack has it and the DMatrix is small
    enough to copy out (``get_data()`` materialises it), else the cheap facts."""
    nonmissing = dmatrix.num_nonmissing()
    if _capture_fingerprint is not None and nonmissing <= HASH_LIMIT:
        info = _capture_fingerprint(dmatrix)
    else:
        info = {"type": f"{type(dmatrix).__module__}.{type(dmatrix).__qualname__}", "rows": dmatrix.num_row(),
                "columns": dmatrix.num_col(), "feature_names": dmatrix.feature_names,
                "feature_types": dmatrix.feature_types, "hash": None,
                "hash_method": "not hashed: " + (f"more than {HASH_LIMIT} values" if _capture_fingerprint
                                                 else "autotrack's capture is not installed")}
    return {**info, "nonmissing": nonmissing}


# -- autolog ----------------------------------------------------------------------------------------

_TARGETS = (("xgboost", "train"), ("xgboost.training", "train"), ("xgboost.sklearn", "train"),
            ("xgboost", "cv"), ("xgboost.training", "cv"))


def autolog(disable: bool = False, log_models: bool = True) -> None:
    """Add an :class:`AutotrackCallback` to every ``xgboost.train`` and ``xgboost.cv`` call that has
    none (the scikit-learn API goes through ``xgboost.train``). ``disable=True`` undoes it."""
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    if not isinstance(log_models, bool):
        raise InvalidArgumentError("log_models", log_models, "pass True or False")
    unpatch("xgboost")
    if disable:
        return

    def with_callback(original: Any, *args: Any, **kwargs: Any) -> Any:
        return _call_with_callback(original, log_models, args, kwargs)

    for module, name in _TARGETS:
        patch("xgboost", importlib.import_module(module), name, with_callback)


def _call_with_callback(original: Any, log_models: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    callbacks = list(kwargs.get("callbacks") or ())  # keyword-only in both train and cv
    if any(isinstance(cb, AutotrackCallback) for cb in callbacks):
        return original(*args, **kwargs)
    callback = AutotrackCallback(log_model=log_models)
    kwargs["callbacks"] = [*callbacks, callback]
    try:
        return original(*args, **kwargs)
    except BaseException as exc:
        callback._abort(exc)
        raise
