"""LightGBM: :class:`AutotrackCallback` records one training run; :func:`autolog` adds it to every
``lightgbm.train`` and ``lightgbm.cv`` call (and so to ``LGBMClassifier``/``LGBMRegressor.fit``).

    from autotrack.integrations.lightgbm import AutotrackCallback
    booster = lgb.train(params, dtrain, valid_sets=[dtrain, dval], valid_names=["train", "val"],
                        callbacks=[AutotrackCallback()])

What lands in the run:

* metrics, step = boosting iteration (continuing after the iterations of an ``init_model``):
  ``<data>/<metric>`` for every eval set and metric, exactly LightGBM's ``evals_result_`` /
  ``record_evaluation`` (under ``lgb.cv`` the mean over folds, plus ``<data>/<metric>/std``);
  ``iteration_time`` (seconds between two iterations); ``best_iteration`` once, at the end, when
  early stopping set it (LightGBM's own, 1-based value: the best step is ``best_iteration - 1``).
* params: the params as LightGBM received them (the scikit-learn API's translated ones included)
  and the complete effective configuration (defaults included, as the model file lists it)
  flattened under ``lightgbm.`` (``lightgbm.num_leaves``). The ``config`` section lists which
  params the user gave (``user_params``), the training function, early stopping and versions.
* sections: ``model`` (objective, iterations, trees, features, best iteration and score, feature
  importance ``split`` and ``gain``), ``data`` (one entry per Dataset, named as in
  ``valid_names``, the training one ``train`` otherwise: autotrack's fingerprint of the raw data,
  plus rows, columns and role). LightGBM frees a Dataset's raw data when it builds it; under
  :func:`autolog` the raw data is fingerprinted just before training. The callback alone sees the
  built Dataset, so unless ``free_raw_data=False`` its entry has the cheap facts and ``hash: None``.
* artifact ``model.txt`` (kind ``model``, LightGBM's text format: ``lgb.Booster(model_file=...)``).

The run ends when training does: at the last iteration, or when LightGBM's early stopping stops it.
A callback never stops or changes training.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

try:
    import lightgbm
    from lightgbm.callback import CallbackEnv, EarlyStopException
except ImportError as _exc:  # pragma: no cover - exercised only without lightgbm
    from autotrack import MissingDependencyError

    raise MissingDependencyError("lightgbm", "lightgbm", "the LightGBM integration") from _exc

import autotrack
from autotrack import InvalidArgumentError, Run
from autotrack.integrations import _evalplots
from autotrack.integrations._fitting import training_run
from autotrack.integrations.base import (
    RunSlot,
    columns_schema,
    data_schema,
    first_rows,
    guarded,
    log_data,
    model_io,
    patch,
    patched,
    unpatch,
)

if TYPE_CHECKING:
    from typing_extensions import override

    Model = Union[lightgbm.Booster, lightgbm.CVBooster]
else:
    Model = Any

    def override(fn: Any) -> Any:
        return fn


__all__ = ["AutotrackCallback", "autolog"]

INTEGRATION = "lightgbm"
MODEL_NAME = "model.txt"
IMPORTANCE_TYPES = ("split", "gain")
#: Our callback runs after ``record_evaluation`` (order 20) and before ``early_stopping`` (30),
#: so the iteration at which early stopping stops is recorded too.
ORDER = 25


class AutotrackCallback:
    """Record a LightGBM training into ``run``, or into a run it starts (and ends) itself.

    Args:
        run: an open :class:`autotrack.Run` to record into. ``None`` (default): a new run is
            started at the first iteration (a child of the active run, if any) and ended when
            training ends.
        log_model: store the trained booster as the artifact ``model.txt`` (kind ``model``).

    Pass it in ``callbacks=`` of ``lgb.train``, ``lgb.cv`` or ``LGBMModel.fit``. The keys it records
    are listed in this module's docstring. Calling it returns ``None`` and never stops training.
    """

    def __init__(self, run: Run | None = None, *, log_model: bool = True) -> None:
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError(
                "run", run, "pass a run from autotrack.start_run(), or None to let the callback start one"
            )
        if not isinstance(log_model, bool):
            raise InvalidArgumentError("log_model", log_model, "pass True or False")
        self.log_model = log_model
        self.order = ORDER  # an instance attribute: LightGBM overwrites a missing one
        install_classifier_plots()
        self.before_iteration = False
        self._slot = RunSlot(INTEGRATION, run)  # a given run is never ended here
        self._parent_id: str | None = None  # the given run's id, in a pickled or copied callback
        self._run: Run | None = run
        self._active = False
        self._finished = False
        self._deferred = False  # autolog ends the training itself, with the returned model
        self._prepared: dict[str, Any] | None = None  # data fingerprinted by autolog before training
        self._call: _TrainingCall | None = None
        self._model: Model | None = None  # the model being trained, until training ends
        self._raw_input: Any = None  # the training data as given (autolog, before LightGBM frees it)
        self._input: tuple[Any, Any] | None = None  # (schema, first rows) of the training data
        self._step = -1
        self._last_time = 0.0

    @property
    def run(self) -> Run | None:
        """The run this callback records into (``None`` until training starts, unless one was given)."""
        return self._run

    # -- LightGBM's hook: thin ----------------------------------------------------------------

    def __call__(self, env: CallbackEnv) -> None:
        if env.iteration == env.begin_iteration:
            self._start(env)
        if self._active:
            self._log_iteration(env)
            if env.iteration == env.end_iteration - 1 and not self._deferred:
                self._finish(env.model, None, env.evaluation_result_list)

    # -- what the hook does ---------------------------------------------------------------------

    @guarded("lightgbm callback: start of training")
    def _start(self, env: CallbackEnv) -> None:
        self._active = self._finished = False
        call = self._call = _TrainingCall.find()
        self._run = self._slot.open(parent=self._parent_id)
        training_run(self._run)  # an LGBMClassifier/LGBMRegressor fit: post-training metrics go to this run
        self._active = True
        self._step = env.begin_iteration - 1
        self._last_time = call.started or time.perf_counter()
        params = dict(env.params)
        run = self._run
        run.log_params({**params, **call.extra_params(), "lightgbm": _effective_config(_booster(env.model))})
        run.set_info("config", self._config_section(env, call))
        self._log_data(call)
        self._input = self._training_input(call) if self.log_model else None
        if not self._deferred:
            call.watch_early_stopping(self)

    @guarded("lightgbm callback: iteration metrics")
    def _log_iteration(self, env: CallbackEnv) -> None:
        now_perf = time.perf_counter()
        seconds, self._last_time = now_perf - self._last_time, now_perf
        run = self._run
        assert run is not None
        step = self._step = run.step = env.iteration
        self._model = env.model
        now = time.time()
        for result in env.evaluation_result_list or ():
            (data, metric), value = _names(result[0], result[1]), result[2]
            run.log_metric(f"{data}/{metric}", value, step, now)
            if len(result) > 4 and result[4] is not None:  # lgb.cv: (data, metric, mean, maximize, std)
                run.log_metric(f"{data}/{metric}/std", result[4], step, now)
        run.log_metric("iteration_time", seconds, step, now)

    @guarded("lightgbm callback: end of training")
    def _finish(self, model: Model | None, best_iteration: int | None, results: Any = None) -> None:
        if not self._active:
            return
        try:
            self._log_outcome(model, best_iteration, results)
        finally:
            self._active, self._finished, self._model, self._call = False, True, None, None
            if self._run is not None and _classifier_fits.handed(self):
                pass  # LGBMClassifier.fit stores its evaluation plots, then ends the run
            elif self._slot.created:
                self._slot.end("finished")

    def _log_outcome(self, model: Model | None, best_iteration: int | None, results: Any) -> None:
        run = self._run
        assert run is not None
        if model is None:
            return
        if best_iteration is None:
            best_iteration = int(getattr(model, "best_iteration", 0) or 0)
        step = max(self._step, 0)
        if best_iteration > 0:
            run.log_metric("best_iteration", best_iteration, step)
        if isinstance(model, lightgbm.CVBooster):  # lgb.cv: describe the folds, keep no single model
            booster = model.boosters[0]
            run.set_info("model", {"folds": len(model.boosters), "num_trees": booster.num_trees(),
                                   "best_iteration": best_iteration or None})
            return
        best_score: dict[str, dict[str, float]] = {}
        if results is not None:  # what lgb.train is about to set as booster.best_score
            for result in results:
                data, metric = _names(result[0], result[1])
                best_score.setdefault(data, {})[metric] = float(result[2])
        else:
            best_score = {d: dict(m) for d, m in (getattr(model, "best_score", None) or {}).items()}
        # The model as LightGBM hands it back: lgb.train reloads its booster from this text, so the
        # importance read from it is exactly what the returned booster reports.
        text = model.model_to_string(num_iteration=best_iteration if best_iteration > 0 else None)
        stored = lightgbm.Booster(model_str=text)
        run.set_info("model", {**_describe_booster(stored, text), "best_iteration": best_iteration or None,
                               "best_score": best_score, "importance": _importance(stored)})
        if self.log_model:
            metadata = {"format": "lightgbm text", "lightgbm_version": lightgbm.__version__,
                        "num_trees": stored.num_trees(), "best_iteration": best_iteration or None}
            metadata.update(self._signature(stored))
            run.log_bytes(text.encode("utf-8"), MODEL_NAME, "model", step=step, metadata=metadata)

    def _training_input(self, call: _TrainingCall) -> tuple[Any, Any] | None:
        """Schema and first rows of the training data as the user gave it: autolog's copy, the
        ``X`` of a scikit-learn API ``fit``, or the Dataset's data when LightGBM kept it."""
        data = self._raw_input
        if data is None:
            data = call.raw_input
        if data is None:
            data = getattr(call.local.get("train_set"), "data", None)
        self._raw_input = None
        if data is None or isinstance(data, (str, os.PathLike)):  # a file LightGBM read itself
            return None
        rows = first_rows(data)
        return data_schema(data), rows.copy() if hasattr(rows, "copy") else rows

    def _signature(self, stored: lightgbm.Booster) -> dict[str, Any]:
        """The stored model's ``signature`` (output: ``Booster.predict`` on the first training rows)
        and ``input_example``; only the feature names when the training data was not at hand."""
        if self._input is None:
            return model_io(None, input_schema=columns_schema(stored.feature_name(), None, stored.num_feature()),
                            where="lightgbm: model signature")
        schema, rows = self._input
        self._input = None
        return model_io(rows, stored.predict, input_schema=schema, where="lightgbm: model signature")

    def _abort(self, error: BaseException) -> None:
        """Training raised (called by autolog): end the run this callback started as failed/killed."""
        self._active = False
        if self._slot.created:
            self._slot.end("killed" if isinstance(error, KeyboardInterrupt) else "failed", error)

    def _config_section(self, env: CallbackEnv, call: _TrainingCall) -> dict[str, Any]:
        section: dict[str, Any] = {
            "function": f"lightgbm.{call.function}" if call.function else None,
            "estimator": call.estimator,
            "user_params": sorted(call.user_params),
            "num_boost_round": env.end_iteration - env.begin_iteration,
            "start_iteration": env.begin_iteration,
            "lightgbm_version": lightgbm.__version__,
        }
        stopping = call.early_stopping_rounds(env.params)
        if stopping:
            section["early_stopping"] = {"rounds": stopping}
        if isinstance(env.model, lightgbm.CVBooster):
            section["nfold"] = len(env.model.boosters)
        return section

    @guarded("lightgbm callback: data fingerprints")
    def _log_data(self, call: _TrainingCall) -> None:
        entries = self._prepared if self._prepared is not None else _describe_datasets(call.datasets())
        assert self._run is not None
        for name, entry in entries.items():
            _log_data_entry(self._run, name, entry)

    # -- pickling (sklearn clones, dask workers): drop the live run handle ------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        given = self._slot.given
        state.update(_slot=RunSlot(INTEGRATION), _run=None, _active=False, _call=None, _prepared=None, _model=None,
                     _raw_input=None, _input=None,
                     _parent_id=given.id if given is not None else self._parent_id)
        return state


class _StopWatch:
    """Stands in for LightGBM's early-stopping callback in this training's callback list: calls it,
    and when it stops training, ends the record with the best iteration it chose."""

    def __init__(self, inner: Any, recorder: AutotrackCallback) -> None:
        self.inner = inner
        self.recorder = recorder
        self.order = getattr(inner, "order", 30)
        self.before_iteration = False

    def __call__(self, env: CallbackEnv) -> None:
        try:
            self.inner(env)
        except EarlyStopException as stop:
            self.recorder._finish(env.model, stop.best_iteration + 1, stop.best_score)
            raise


# -- what lightgbm.train / lightgbm.cv was called with --------------------------------------------


@dataclass
class _TrainingCall:
    """The arguments of the ``lightgbm.train``/``lightgbm.cv`` call being run, read from its frame
    up the stack (LightGBM hands a callback only the model and params). Empty when the callback is
    driven some other way."""

    function: str | None = None
    local: Mapping[str, Any] = field(default_factory=dict)
    estimator: str | None = None
    user_params: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    #: ``X`` of the scikit-learn API's ``fit`` (for the stored model's signature)
    raw_input: Any = None

    @classmethod
    def find(cls) -> _TrainingCall:
        frame = sys._getframe(1)
        found = cls()
        while frame is not None:
            module = frame.f_globals.get("__name__")
            name = frame.f_code.co_name
            if found.function is None and name in ("train", "cv") and module == "lightgbm.engine":
                found.function, found.local = name, frame.f_locals
            elif name == "fit" and module == "lightgbm.sklearn" and "self" in frame.f_locals:
                estimator = frame.f_locals["self"]
                found.estimator = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
                found.user_params = _changed_params(estimator)
                found.raw_input = frame.f_locals.get("X")
                break
            frame = frame.f_back  # type: ignore[assignment]
        if found.estimator is None:
            params = found.local.get("params")  # LightGBM's working copy, num_iterations added
            found.user_params = {k: v for k, v in (params or {}).items() if k != "num_iterations"}
        return found

    def datasets(self) -> dict[str, tuple[Any, str]]:
        """name -> (Dataset, role) as LightGBM names them in its eval results."""
        return _named_datasets(self.function, self.local.get("train_set"), self.local.get("valid_sets"),
                               self.local.get("valid_names"), bool(self.local.get("eval_train_metric")))

    def extra_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.function == "cv":
            for key in ("nfold", "stratified", "shuffle", "seed"):
                if key in self.local:
                    out[f"cv.{key}"] = self.local[key]
        return out

    def early_stopping_rounds(self, params: Mapping[str, Any]) -> int | None:
        for cb in self.local.get("callbacks_after_iter") or ():
            rounds = getattr(getattr(cb, "inner", cb), "stopping_rounds", None)
            if isinstance(rounds, int):
                return rounds
        return None

    def watch_early_stopping(self, recorder: AutotrackCallback) -> None:
        """Wrap the early-stopping callbacks of this training so that the record ends when one stops
        it (the list is LightGBM's own, sorted once per training; nothing else in it changes)."""
        callbacks = self.local.get("callbacks_after_iter")
        if not isinstance(callbacks, list):
            return
        for i, cb in enumerate(callbacks):
            if hasattr(cb, "stopping_rounds") and not isinstance(cb, _StopWatch):
                callbacks[i] = _StopWatch(cb, recorder)


def _changed_params(estimator: Any) -> dict[str, Any]:
    """The estimator's params that differ from its class's defaults: what the user set."""
    params = estimator.get_params(deep=False)
    try:
        defaults = type(estimator)().get_params(deep=False)
    except Exception:  # noqa: BLE001 - a subclass that needs arguments: every param counts as given
        return params
    return {k: v for k, v in params.items() if k not in defaults or not _same(defaults[k], v)}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # noqa: BLE001 - arrays and other objects without a plain ==
        return False


def _named_datasets(function: str | None, train_set: Any, valid_sets: Any, valid_names: Any,
                    eval_train: bool = False) -> dict[str, tuple[Any, str]]:
    entries: dict[str, tuple[Any, str]] = {}
    if function == "cv":
        if train_set is not None:
            entries["train"] = (train_set, "train")
        return entries
    if isinstance(valid_sets, lightgbm.Dataset):
        valid_sets = [valid_sets]
    if isinstance(valid_names, str):
        valid_names = [valid_names]
    train_name = None
    for i, dataset in enumerate(valid_sets or ()):
        name = valid_names[i] if valid_names is not None and len(valid_names) > i else None
        if dataset is train_set:
            train_name = name or "training"
            continue
        entries[name or f"valid_{i}"] = (dataset, "eval")
    if train_set is not None:
        name = train_name or ("train" if "train" not in entries else "training")
        entries[name] = (train_set, "train")
    return entries


# -- reading the model and the data -----------------------------------------------------------------


def _booster(model: Model) -> lightgbm.Booster:
    return model.boosters[0] if isinstance(model, lightgbm.CVBooster) else model


def _effective_config(booster: lightgbm.Booster) -> dict[str, Any]:
    """Every parameter LightGBM used, defaults included: the ``parameters:`` block of the model file."""
    text = booster.model_to_string(num_iteration=1)  # one tree: the parameters block is the same
    start, end = text.find("\nparameters:\n"), text.find("\nend of parameters")
    config: dict[str, Any] = {}
    if start < 0 or end < 0:
        return config
    for line in text[start + len("\nparameters:\n"):end].splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]") and ": " in line:
            key, _, value = line[1:-1].partition(": ")
            config[key] = _parse_value(value)
    return config


def _parse_value(value: str) -> Any:
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def _describe_booster(booster: lightgbm.Booster, text: str) -> dict[str, Any]:
    header = dict(line.split("=", 1) for line in text[:text.find("\nTree=")].splitlines() if "=" in line)
    return {
        "objective": header.get("objective"),
        "num_class": int(header.get("num_class", 1)),
        "num_iterations": booster.current_iteration(),
        "num_trees": booster.num_trees(),
        "num_features": booster.num_feature(),
        "feature_names": booster.feature_name(),
    }


def _importance(booster: lightgbm.Booster) -> dict[str, dict[str, float]]:
    names = booster.feature_name()
    return {kind: {n: float(v) for n, v in zip(names, booster.feature_importance(importance_type=kind))}
            for kind in IMPORTANCE_TYPES}


def _describe_datasets(named: Mapping[str, tuple[Any, str]]) -> dict[str, dict[str, Any]]:
    described: dict[int, dict[str, Any]] = {}  # one fingerprint per Dataset, however often named
    entries = {}
    for name, (dataset, role) in named.items():
        if id(dataset) not in described:
            described[id(dataset)] = _describe_dataset(dataset)
        entries[name] = {**described[id(dataset)], "role": role}
    return entries


def _describe_dataset(dataset: Any) -> dict[str, Any]:
    """autotrack's fingerprint of the raw data while LightGBM still holds it, else the built
    Dataset's cheap facts."""
    raw = getattr(dataset, "data", None)
    info: dict[str, Any]
    if raw is not None:
        info = autotrack.fingerprint(raw)
    else:
        info = {"type": "lightgbm.Dataset", "hash": None,
                "hash_method": "not hashed: LightGBM had freed the raw data (free_raw_data=True); "
                               "autolog() fingerprints it before training"}
    if getattr(dataset, "_handle", None) is not None:  # built: LightGBM knows its shape
        info.update(rows=dataset.num_data(), columns=dataset.num_feature())
    return info


def _log_data_entry(run: Run, name: str, entry: dict[str, Any]) -> None:
    log_data(run, name, entry if entry.get("hash") is not None else {**entry, "hash": None})


# -- evaluation plots of LGBMClassifier fits -------------------------------------------------------

PLOTS = "lightgbm_plots"  # the patch group adding evaluation plots to LGBMClassifier fits
def install_classifier_plots() -> None:
    """Patch (once) ``LGBMClassifier.fit`` for the evaluation plots of its fits."""
    if not patched(PLOTS):
        patch(PLOTS, lightgbm.LGBMClassifier, "fit", _classifier_fits.fit)


def _eval_sets(bound: Mapping[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """``(name, X, y, weight)`` of each eval set of an ``LGBMModel.fit`` call (``eval_set`` or
    ``eval_X``/``eval_y``)."""
    pairs = bound.get("eval_set")
    if pairs is None and bound.get("eval_X") is not None:
        xs, ys = bound["eval_X"], bound.get("eval_y")
        xs, ys = (list(xs), list(ys)) if isinstance(xs, tuple) else ([xs], [ys])
        pairs = list(zip(xs, ys))
    if isinstance(pairs, tuple):
        pairs = [pairs]
    names = list(bound.get("eval_names") or ())
    weights = list(bound.get("eval_sample_weight") or ())
    return [(names[i] if i < len(names) else f"valid_{i}", X_eval, y_eval, weights[i] if i < len(weights) else None)
            for i, (X_eval, y_eval) in enumerate(pairs or ())]


def _end_own_run(callback: AutotrackCallback) -> None:
    if callback._slot.created:
        callback._slot.end("finished")


#: LGBMClassifier fits: their evaluation plots, named as LightGBM names the eval sets (``eval_names``,
#: else ``valid_<i>``); the run ends after them
_classifier_fits = _evalplots.ClassifierFits(INTEGRATION, _eval_sets, _end_own_run)


# -- autolog ------------------------------------------------------------------------------------------

_TARGETS = (("lightgbm", "train"), ("lightgbm.engine", "train"), ("lightgbm.sklearn", "train"),
            ("lightgbm", "cv"), ("lightgbm.engine", "cv"))


def autolog(*, disable: bool = False, log_models: bool = True, log_every_n_steps: int | None = None,
            grad_norm_every: int = 50) -> None:
    """Add an :class:`AutotrackCallback` to every ``lightgbm.train`` and ``lightgbm.cv`` call that has
    none (the scikit-learn API goes through ``lightgbm.train``). ``disable=True`` undoes it.

    ``log_every_n_steps`` and ``grad_norm_every`` are accepted (the autolog contract every
    integration shares) and do not apply here (LightGBM logs every iteration).
    """
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    if not isinstance(log_models, bool):
        raise InvalidArgumentError("log_models", log_models, "pass True or False")
    unpatch("lightgbm")
    if disable:
        return

    install_classifier_plots()
    signatures = {name: inspect.signature(getattr(lightgbm.engine, name)) for name in ("train", "cv")}

    def replacement(name: str) -> Any:
        def with_callback(original: Any, *args: Any, **kwargs: Any) -> Any:
            return _call_with_callback(original, name, signatures[name], log_models, args, kwargs)
        return with_callback

    for module, name in _TARGETS:
        patch("lightgbm", importlib.import_module(module), name, replacement(name))


def _call_with_callback(original: Any, function: str, signature: inspect.Signature, log_models: bool,
                        args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = signature.bind(*args, **kwargs)
    callbacks = list(bound.arguments.get("callbacks") or ())
    ours = [cb for cb in callbacks if isinstance(cb, AutotrackCallback)]
    callback = ours[0] if ours else AutotrackCallback(log_model=log_models)
    if not ours:
        bound.arguments["callbacks"] = [*callbacks, callback]
    callback._deferred = True
    a = bound.arguments
    callback._prepared = _prepare_data(function, a.get("train_set"), a.get("valid_sets"), a.get("valid_names"))
    if function == "train":  # the data as given, before LightGBM frees it (the model's signature)
        callback._raw_input = getattr(a.get("train_set"), "data", None)
    try:
        result = original(*bound.args, **bound.kwargs)
    except BaseException as exc:
        callback._abort(exc)
        raise
    callback._finish(callback._model, None)  # the Booster / CVBooster, best_iteration now set
    return result


@guarded("lightgbm autolog: data fingerprints")
def _prepare_data(function: str, train_set: Any, valid_sets: Any, valid_names: Any) -> dict[str, Any] | None:
    return _describe_datasets(_named_datasets(function, train_set, valid_sets, valid_names))


def _names(data: str, metric: str) -> tuple[str, str]:
    """``(eval set, metric)`` of one evaluation result. LightGBM before 4.1 reports ``lgb.cv``'s as
    ``("cv_agg", "valid auc")``; later ones as ``("valid", "auc")`` -- the keys are the same for both."""
    if data == "cv_agg" and " " in metric:
        data, metric = metric.split(" ", 1)
    return data, metric


# A callback is usually made in the call (``model.fit(X, y, callbacks=[AutotrackCallback()])``),
# after ``fit`` was looked up: the patch must be in place before, so importing this module makes it
# (it does nothing unless a callback of this module recorded the fit).
install_classifier_plots()
