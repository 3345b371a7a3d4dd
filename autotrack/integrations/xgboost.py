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
* artifact ``model.ubj`` (kind ``model``, UBJSON, ``xgboost.Booster(model_file=...)`` reads it;
  :func:`load_model` reads it back). The stored copy carries the booster attribute
  ``autotrack_run_id``; the user's booster is not changed.
* tag ``autotrack.integration=xgboost``; continued training (``xgb_model=``) of a model this
  integration produced (in this process, or loaded from a stored ``model.ubj``) gets the tag
  ``autotrack.continued_from`` (that run's id);
* every file a ``TrainingCheckPoint`` callback of the same training writes: an artifact of kind
  ``checkpoint`` (by reference: path, sha256, size), step = its round.

The final round is recorded even when a callback before this one stops training (XGBoost stops
asking the callbacks that follow): ``after_training`` logs what ``evals_log`` holds beyond the
rounds recorded.

How the call's arguments reach the callback: ``xgboost.train`` and ``xgboost.cv`` are wrappers
(``_deprecate_positional_args``) holding the function in a closure cell named ``func``; the
integration patches that cell (once, when a callback is created or autolog is turned on), so every
reference to ``xgboost.train`` passes its bound arguments to the callbacks in a context variable.
No frame is read.

Private XGBoost details used (each guarded by a test in ``integrations/test_xgboost_defects.py``):

* the ``func`` cell of the ``_deprecate_positional_args`` wrapper of ``train``/``cv``;
* ``TrainingCheckPoint``'s ``_path`` and ``_name`` (where it writes);
* under ``xgb.cv``, the pack of fold boosters' ``cvfolds`` (``[0].bst``).
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import json
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import xgboost
from xgboost.callback import EarlyStopping, TrainingCallback, TrainingCheckPoint

import autotrack
from autotrack import Run
from autotrack.integrations import _evalplots
from autotrack.integrations._fitting import training_run
from autotrack.integrations._wrapped import inner_slot
from autotrack.integrations.base import (
    InvalidArgumentError,
    autolog_tags,
    columns_schema,
    fingerprint,
    guarded,
    log_data,
    model_io,
    patch,
    patched,
    unpatch,
)

#: the data fingerprints (names kept for the suite, which can switch them off)
_capture_fingerprint: Any = fingerprint
_capture_log_data: Any = log_data

if TYPE_CHECKING:
    from typing_extensions import override
    from xgboost.training import _PackedBooster

    #: What XGBoost hands a callback: the Booster, or under ``xgb.cv`` its pack of fold boosters.
    Model = Union[xgboost.Booster, _PackedBooster]
else:
    Model = Any

    def override(fn: Any) -> Any:
        return fn


__all__ = ["AutotrackCallback", "autolog", "load_model"]

INTEGRATION = "xgboost"
CALLS = "xgboost_calls"  # the patch group passing train/cv arguments to callbacks
PLOTS = "xgboost_plots"  # the patch group adding evaluation plots to XGBClassifier fits
RUN_ATTR = "autotrack_run_id"

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
        if register_as is not None and (not isinstance(register_as, str) or not log_model):
            raise InvalidArgumentError("register_as", register_as, "pass a model name (str) with log_model=True, "
                                       "or None not to register")
        self.register_as = register_as
        self.model_version: autotrack.ModelVersion | None = None
        super().__init__()
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError(
                "run", run, "pass a run from autotrack.start_run(), or None to let the callback start one"
            )
        if not isinstance(log_model, bool):
            raise InvalidArgumentError("log_model", log_model, "pass True or False")
        self.log_model = log_model
        self._given_run = run
        self._parent_id: str | None = None  # the given run's id, in a pickled or deep-copied callback
        self._run: Run | None = run
        self._owns_run = False
        self._active = False
        self._first_step = 0
        self._step = -1
        self._round_start = 0.0
        self._history: EvalsLog | None = None  # XGBoost's evals_log: the same dict every round
        self._rounds_logged = 0
        self._checkpoints: dict[str, float] = {}
        self._call: _TrainingCall = _TrainingCall()
        install_call_capture()

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
        training_run(self._run)  # an XGBClassifier/XGBRegressor fit: post-training metrics go to this run
        self._first_step = booster.num_boosted_rounds() if isinstance(model, xgboost.Booster) else 0
        self._step = self._first_step - 1
        self._history, self._rounds_logged, self._checkpoints = None, 0, {}
        self._started_at = time.time() - 1.0  # files older than this training are not its checkpoints
        self._active = True
        call = self._call = _current_call.get() or _TrainingCall()
        config = json.loads(booster.save_config())
        self._run.log_params({**call.params_to_log(), "xgboost": config})
        source = _producer(call.xgb_model, booster) if self._first_step else None
        if source is not None and source != self._run.id:
            self._run.set_tags({"autotrack.continued_from": source})
        self._run.set_info("config", self._config_section(config, call, model))
        self._log_data(call)

    def _open_run(self) -> Run:
        given = self._given_run
        self._owns_run = given is None
        if given is None:
            return autotrack.start_run(parent=self._parent_id, tags={**autolog_tags(), "autotrack.integration": INTEGRATION})
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
        self._history = evals_log
        step = self._step = run.step = self._first_step + epoch
        now = time.time()
        self._log_round(evals_log, -1, step, now)
        run.log_metric("iteration_time", seconds, step, now)
        self._rounds_logged = max(self._rounds_logged, _rounds(evals_log))
        self._log_checkpoints()

    def _log_round(self, evals_log: EvalsLog, index: int, step: int, now: float) -> None:
        run = self._run
        assert run is not None
        for data, metrics in evals_log.items():
            for metric, history in metrics.items():
                value = history[index]
                if isinstance(value, tuple):  # xgb.cv: (mean, std) over folds
                    run.log_metric(f"{data}/{metric}", value[0], step, now)
                    run.log_metric(f"{data}/{metric}/std", value[1], step, now)
                else:
                    run.log_metric(f"{data}/{metric}", value, step, now)

    def _log_missed_rounds(self) -> None:
        """Rounds XGBoost evaluated but did not show this callback (a callback before it stopped
        training): they are in ``evals_log``, which XGBoost fills before asking any callback."""
        history = self._history
        if history is None:
            return
        total = _rounds(history)
        now = time.time()
        for index in range(self._rounds_logged, total):
            self._step = self._first_step + index
            self._log_round(history, index, self._step, now)
        self._rounds_logged = total

    def _log_checkpoints(self) -> None:
        """Files written by the training's ``TrainingCheckPoint`` callbacks, as artifacts of kind
        ``checkpoint`` (by reference), step = the round in the file name."""
        run = self._run
        assert run is not None
        for cb in self._call.callbacks:
            if not isinstance(cb, TrainingCheckPoint):
                continue
            folder, prefix = Path(cb._path), f"{cb._name}_"
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                stem = path.stem
                if not (path.is_file() and stem.startswith(prefix) and stem[len(prefix):].isdigit()):
                    continue
                mtime = path.stat().st_mtime
                key = str(path.resolve())
                if self._checkpoints.get(key) == mtime or mtime < self._started_at:
                    continue
                self._checkpoints[key] = mtime
                run.log_artifact(path, f"checkpoints/{path.name}", "checkpoint", step=int(stem[len(prefix):]),
                                 metadata={"format": path.suffix.lstrip("."), "writer": "xgboost.TrainingCheckPoint"},
                                 copy=False)

    @guarded("xgboost callback after_training")
    def _finish(self, model: Model) -> None:
        try:
            self._log_missed_rounds()
            self._log_checkpoints()
            self._log_outcome(model)
        finally:
            self._active = False
            if self._run is not None and _classifier_fits.handed(self):
                pass  # XGBClassifier.fit stores its evaluation plots, then ends the run
            elif self._owns_run and self._run is not None:
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
                        "num_boosted_rounds": model.num_boosted_rounds(), **best,
                        **_model_signature(model, self._call.dtrain)}
            run.log_bytes(_stored_bytes(model, run.id), MODEL_NAME, "model", step=max(self._step, 0), metadata=metadata)
            if self.register_as is not None:  # opt-in registration (model versioning)
                self.model_version = autotrack.register_model(self.register_as, run=run, artifact=MODEL_NAME)
        _produced[model] = run.id

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
        state.update(_given_run=None, _run=None, _owns_run=False, _active=False, model_version=None, _call=_TrainingCall(), _history=None,
                     _checkpoints={},
                     _parent_id=given.id if given is not None else self._parent_id)
        return state


# -- the stored model's signature -------------------------------------------------------------------

#: ``X`` as the user passed it to a scikit-learn API ``fit`` (set by autolog's patch of those fits).
_sklearn_input: contextvars.ContextVar[Any] = contextvars.ContextVar("autotrack_xgboost_sklearn_input", default=None)


def _model_signature(booster: xgboost.Booster, dtrain: Any) -> dict[str, Any]:
    """``signature`` and ``input_example`` of the stored booster: from ``X`` as given to the
    scikit-learn API's ``fit`` (under autolog), else from the training ``DMatrix`` (its columns
    with XGBoost's feature types; rows only when it can give its data back, which a
    ``QuantileDMatrix`` cannot). The output schema is ``Booster.predict`` on the first rows."""
    raw = _sklearn_input.get()
    if raw is not None:
        return model_io(raw, booster.inplace_predict, where="xgboost: model signature")
    names, types = booster.feature_names, booster.feature_types
    table = columns_schema(names, types, booster.num_features())
    rows = _dmatrix_rows(dtrain, names) if dtrain is not None else None
    if rows is None:
        return model_io(None, input_schema=table, where="xgboost: model signature")
    count = min(5, int(dtrain.num_row()))

    def predict(_rows: Any) -> Any:
        return booster.predict(dtrain.slice(list(range(count))))

    return model_io(rows, predict, input_schema=table, where="xgboost: model signature")


def _dmatrix_rows(dtrain: xgboost.DMatrix, names: Any) -> Any:
    """The first rows of a DMatrix as a dense frame (named columns) or array, missing values as
    NaN; None when the DMatrix cannot give its data back."""
    import numpy as np

    try:
        data = dtrain.get_data()[:5]
    except Exception:  # noqa: BLE001 - QuantileDMatrix and external-memory ones keep no rows
        return None
    dense = np.full(data.shape, np.nan, dtype=np.float32)
    for i in range(data.shape[0]):
        start, end = data.indptr[i], data.indptr[i + 1]
        dense[i, data.indices[start:end]] = data.data[start:end]
    if names:
        import pandas as pd

        return pd.DataFrame(dense, columns=list(names))
    return dense


def _remember_input(original: Any, self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
    if _sklearn_input.get() is not None:  # XGBRFClassifier.fit -> XGBClassifier.fit: the outer one
        return original(self, X, *args, **kwargs)
    token = _sklearn_input.set(X)
    try:
        return original(self, X, *args, **kwargs)
    finally:
        _sklearn_input.reset(token)


def _patch_sklearn_fits() -> None:
    from xgboost import sklearn as xgb_sklearn

    for cls in (xgb_sklearn.XGBModel, xgb_sklearn.XGBClassifier, xgb_sklearn.XGBRFClassifier,
                xgb_sklearn.XGBRFRegressor, xgb_sklearn.XGBRanker):
        if "fit" in cls.__dict__:
            patch(INTEGRATION, cls, "fit", _remember_input, inside_recording=True)


# -- what xgboost.train / xgboost.cv was called with ----------------------------------------------


@dataclass
class _TrainingCall:
    """The arguments of the ``xgboost.train``/``xgboost.cv`` call being run, as the patched call
    bound them (all empty when the callback is driven some other way)."""

    function: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int | None = None
    dtrain: xgboost.DMatrix | None = None
    evals: list[tuple[xgboost.DMatrix, str]] = field(default_factory=list)
    early_stopping: EarlyStopping | None = None
    callbacks: list[Any] = field(default_factory=list)
    xgb_model: Any = None

    @classmethod
    def bind(cls, function: str, original: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _TrainingCall:
        bound = _signature(original).bind(*args, **kwargs)
        bound.apply_defaults()
        local = bound.arguments
        params = _params_dict(local.get("params") or {})
        if function == "cv" and local.get("metrics"):  # cv moves eval_metric out of params
            params.setdefault("eval_metric", list(local["metrics"]))
        callbacks = list(local.get("callbacks") or ())
        stoppers = [cb for cb in callbacks if isinstance(cb, EarlyStopping)]
        stopper = stoppers[0] if stoppers else None
        if stopper is None and local.get("early_stopping_rounds"):
            stopper = EarlyStopping(rounds=local["early_stopping_rounds"], maximize=bool(local.get("maximize")))
        return cls(function, params, local.get("num_boost_round"), local.get("dtrain"),
                   list(local.get("evals") or ()), stopper, callbacks, local.get("xgb_model"))

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


_signatures: dict[int, inspect.Signature] = {}


def _signature(fn: Any) -> inspect.Signature:
    sig = _signatures.get(id(fn))
    if sig is None:
        sig = _signatures[id(fn)] = inspect.signature(fn)
    return sig


_current_call: contextvars.ContextVar[_TrainingCall | None] = contextvars.ContextVar("autotrack_xgboost_call",
                                                                                     default=None)


def _capturing(function: str, inner: Any) -> Any:
    def replacement(original: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _TrainingCall.bind(function, inner, args, kwargs)
        except TypeError:  # arguments xgboost itself will reject: let it say so
            return original(*args, **kwargs)
        token = _current_call.set(call)
        try:
            return original(*args, **kwargs)
        finally:
            _current_call.reset(token)

    replacement.__name__ = f"autotrack_xgboost_{function}_arguments"
    return replacement


def install_call_capture() -> None:
    """Patch (once) the ``func`` cell of ``xgboost.train`` and ``xgboost.cv``: their bound
    arguments reach the callbacks of that call. Without the cell (a release that changed the
    wrapper) callbacks record without them (the guard test says so). Also ``XGBClassifier.fit``,
    for the evaluation plots of its fits."""
    if not patched(PLOTS):
        patch(PLOTS, xgboost.XGBClassifier, "fit", _classifier_fits.fit)
    if patched(CALLS):
        return
    for name in ("train", "cv"):
        slot = inner_slot(getattr(xgboost.training, name))
        if slot is not None:
            patch(CALLS, slot, "func", _capturing(name, slot.func))


# -- evaluation plots of XGBClassifier fits --------------------------------------------------------

def _eval_sets(bound: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """``(name, X, y, weight)`` of each ``eval_set`` of an ``XGBModel.fit`` call (``validation_<i>``,
    XGBoost's names)."""
    evals = list(bound.get("eval_set") or ())
    weights = list(bound.get("sample_weight_eval_set") or ())
    return [(f"validation_{i}", X_eval, y_eval, weights[i] if i < len(weights) else None)
            for i, (X_eval, y_eval) in enumerate(evals)]


def _end_own_run(callback: AutotrackCallback) -> None:
    if callback._owns_run and callback._run is not None:
        callback._run.end("finished")


#: XGBClassifier fits: their evaluation plots, then the run ends
_classifier_fits = _evalplots.ClassifierFits(INTEGRATION, _eval_sets, _end_own_run)


def _rounds(evals_log: EvalsLog) -> int:
    return max((len(history) for metrics in evals_log.values() for history in metrics.values()), default=0)


#: boosters this integration recorded in this process -> the run that produced them
_produced: weakref.WeakKeyDictionary[xgboost.Booster, str] = weakref.WeakKeyDictionary()


def _producer(xgb_model: Any, booster: xgboost.Booster) -> str | None:
    """The run that produced the model training continues from: a booster recorded in this
    process, or a stored ``model.ubj`` (its ``autotrack_run_id`` attribute, which the booster
    XGBoost built from it keeps)."""
    if isinstance(xgb_model, xgboost.Booster) and xgb_model in _produced:
        return _produced[xgb_model]
    return booster.attr(RUN_ATTR)


def _stored_bytes(model: xgboost.Booster, run_id: str) -> bytes:
    """The booster as UBJSON, with the attribute naming the run (on a copy: the user's booster is
    left as it is)."""
    copy = xgboost.Booster(model_file=bytearray(model.save_raw("ubj")))
    copy.set_attr(**{RUN_ATTR: run_id})
    return bytes(copy.save_raw("ubj"))


def load_model(run_id: str) -> xgboost.Booster:
    """The booster a run stored (its newest ``model`` artifact), read from its bytes."""
    record = autotrack.get_run(run_id)
    models = [a for a in record.artifacts if a.kind == "model" and not a.deleted]
    if not models:
        raise InvalidArgumentError("run_id", run_id, "this run stored no model; train with AutotrackCallback(log_model=True)")
    return xgboost.Booster(model_file=bytearray(record.read_artifact(models[-1].name)))  # verified, any store


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


def autolog(*, disable: bool = False, log_models: bool = True, **_other_integrations_options: Any) -> None:
    """Add an :class:`AutotrackCallback` to every ``xgboost.train`` and ``xgboost.cv`` call that has
    none (the scikit-learn API goes through ``xgboost.train``). ``disable=True`` undoes it.
    Options of other integrations (``log_every_n_steps``, ...) are accepted and ignored."""
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    if not isinstance(log_models, bool):
        raise InvalidArgumentError("log_models", log_models, "pass True or False")
    unpatch(INTEGRATION)
    if disable:
        return
    install_call_capture()

    def with_callback(original: Any, *args: Any, **kwargs: Any) -> Any:
        return _call_with_callback(original, log_models, args, kwargs)

    for module, name in _TARGETS:
        patch(INTEGRATION, importlib.import_module(module), name, with_callback)
    _patch_sklearn_fits()  # X as given, for the stored model's signature and input example


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


# -- the model registry's loader (registered in autotrack.integrations) ---------------------------


def load_registered(version: autotrack.ModelVersion, data: bytes, **_options: Any) -> xgboost.Booster:
    """A registered XGBoost version as a ``Booster``, read from UBJSON (or JSON); nothing unpickled."""
    if data[:1] != b"{":  # UBJSON and JSON models both open an object; anything else is not a model
        raise autotrack.StoreError(f"the model file of {version.ref} is not an XGBoost UBJSON/JSON model; "
                                   "it was not loaded")
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgboost.core.XGBoostError as exc:
        raise autotrack.StoreError(f"the model file of {version.ref} could not be read by XGBoost: "
                                   f"{str(exc)[:300]}") from None
    return booster
