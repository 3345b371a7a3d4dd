"""Optuna: every trial of a study recorded, whatever its outcome, and warm starts from past runs.

A study is a parent run (tag ``autotrack.integration=optuna``): its sampler and pruner with their
settings, directions, study name and storage URL (credentials removed) as params; per trial, the
trial's value (``optuna/value``) and the best value so far (``optuna/best_value``) at step =
trial number. Each trial is a child run with the tags the scikit-learn search candidates carry
too -- ``trial`` (its number) and ``state`` (``complete``, ``pruned``, ``fail``) -- its params,
each param's distribution (section ``optuna``), its value(s), every value ``trial.report``
received as ``optuna/intermediate_value`` at its step, the step it was pruned at (tag
``pruned_step``), the exception of a failed trial (the run ends ``failed`` with it) and its
duration (``optuna/duration_s``).

Two ways in:

* ``study.optimize(objective, callbacks=[AutotrackCallback()])`` records each trial when it ends
  (from Optuna's own record of it).
* ``autotrack.autolog()`` patches ``Study.optimize``: each trial's run is started before the
  objective runs and is the active run inside it, so a training in the objective -- a
  scikit-learn fit, a Lightning ``Trainer.fit``, a plain PyTorch loop, a Keras or LightGBM fit
  -- writes into the trial's run (one trial, one record) instead of a run of its own.

Several processes optimizing one study through a shared Optuna storage write into one parent
run: the first to start creates it (under a lock on the autotrack store) and stores its id in the
study's user attribute ``autotrack.run_id``; the others write into it.

:func:`enqueue_from_runs` adds past runs as completed trials, so the sampler starts from what is
known.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import autotrack
from autotrack.integrations.base import (
    InvalidArgumentError,
    Run,
    RunRef,
    attach_run,
    autolog_tags,
    guarded,
    host_training,
    patch,
    redact_url,
    report_failure,
    store_lock,
    unpatch,
    withdraw_training,
)

INTEGRATION = "optuna"
#: The study's user attribute holding its parent run's id (shared by every worker process).
RUN_ID_ATTR = "autotrack.run_id"
#: A trial's user attribute naming the run it was made from (:func:`enqueue_from_runs`).
FROM_RUN_ATTR = "autotrack.from_run"
_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "fail"}

__all__ = ["AutotrackCallback", "autolog", "enqueue_from_runs"]


class AutotrackCallback:
    """Record a study and its trials: ``study.optimize(objective, callbacks=[AutotrackCallback()])``.

    Args:
        run: the study's run (never ended here); default: found through the study's
            ``autotrack.run_id`` attribute, else started on the first trial (its parent is the run
            active in the caller's context).
        name: name of a study run started here (default: the study's name).
        experiment: experiment of the runs started here.
        tags: extra tags of the study run.
    """

    def __init__(self, run: Run | None = None, *, name: str | None = None, experiment: str | None = None,
                 tags: Mapping[str, Any] | None = None) -> None:
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError("run", run, "pass a Run from autotrack.start_run(), or None to let the callback start one")
        if tags is not None and not isinstance(tags, Mapping):
            raise InvalidArgumentError("tags", tags, "pass a dict of name -> text, or None")
        self._given = run
        self._name = name
        self._experiment = experiment
        self._tags = dict(tags or {})
        self._studies: dict[int, _StudyRecord] = {}
        self._lock = threading.Lock()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        try:
            record = self._record_for(study)
            record.trial_ended(study, trial, None)
        except Exception as exc:  # noqa: BLE001 - recording must never stop the study
            report_failure("optuna: recording a trial", exc)

    def _record_for(self, study: optuna.Study) -> _StudyRecord:
        with self._lock:
            record = self._studies.get(id(study))
            if record is None:
                record = self._studies[id(study)] = _StudyRecord.open(
                    study, self._given, name=self._name, experiment=self._experiment, tags=self._tags)
            return record

    def end(self) -> None:
        """End the study runs this callback started (also done at interpreter exit)."""
        with self._lock:
            records, self._studies = list(self._studies.values()), {}
        for record in records:
            record.close()


class _StudyRecord:
    """The study's run and the trial runs still open, for one process."""

    def __init__(self, run: Run, owned: bool) -> None:
        self.run = run
        self.owned = owned
        self.trials: dict[int, tuple[Run, float]] = {}  # number -> (run, perf_counter at start)
        self.errors: dict[int, BaseException] = {}
        self.best_number: int | None = None
        self.lock = threading.Lock()

    @classmethod
    def open(cls, study: optuna.Study, given: Run | None, *, name: str | None = None, experiment: str | None = None,
             tags: Mapping[str, Any] | None = None) -> _StudyRecord:
        if given is not None:
            return cls(given, owned=False)
        store = autotrack.get_store()
        # one parent for every worker on this study: created under a lock on the autotrack store
        key = hashlib.sha256(f"{_storage_url(study)}\0{study.study_name}".encode()).hexdigest()[:32]
        with store_lock(f"optuna-{key}"):
            run_id = _study_attrs(study).get(RUN_ID_ATTR)
            if isinstance(run_id, str):
                try:
                    rec = autotrack.get_run(run_id, store=store)
                except Exception:  # noqa: BLE001 - a parent in another store: start our own
                    rec = None
                if rec is not None:
                    return cls(attach_run(RunRef(rec.id, store.location, rec.name, rec.experiment, rec.parent_id)),
                               owned=False)
            # a study Optuna named itself ("no-name-<uuid>") gets a generated run name instead
            own_name = None if study.study_name.startswith("no-name-") else study.study_name
            run = autotrack.start_run(name or own_name, experiment=experiment, activate=False,
                                      tags={**autolog_tags(), "autotrack.integration": INTEGRATION,
                                            "autotrack.study": study.study_name,
                                            **(tags or {})},
                                      params=_study_params(study))
            run.flush()  # in the store before its id is published to the other workers
            study.set_user_attr(RUN_ID_ATTR, run.id)
        return cls(run, owned=True)

    def trial_started(self, trial: optuna.Trial) -> Run:
        run = autotrack.start_run(f"{self.run.name}-trial-{trial.number}", experiment=self.run.experiment,
                                  parent=self.run.id, activate=False,
                                  tags={**autolog_tags(), "autotrack.integration": INTEGRATION, "trial": trial.number,
                                        "state": "running"})
        with self.lock:
            self.trials[trial.number] = (run, time.perf_counter())
        return run

    def trial_failed(self, number: int, error: BaseException) -> None:
        with self.lock:
            self.errors[number] = error

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial, error: BaseException | None) -> None:
        with self.lock:
            run, started = self.trials.pop(trial.number, (None, None))
            error = error or self.errors.pop(trial.number, None)
        if run is None:
            run = autotrack.start_run(f"{self.run.name}-trial-{trial.number}", experiment=self.run.experiment,
                                      parent=self.run.id, activate=False,
                                      tags={**autolog_tags(), "autotrack.integration": INTEGRATION, "trial": trial.number})
        else:
            withdraw_training(run)
        state = _STATES.get(trial.state, trial.state.name.lower())
        duration = (trial.duration.total_seconds() if trial.duration is not None
                    else time.perf_counter() - started if started is not None else None)
        tags: dict[str, Any] = {"trial": trial.number, "state": state}
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            tags["pruned_step"] = max(trial.intermediate_values)
        if error is not None:
            tags["error"] = f"{type(error).__name__}: {error}"[:500]
        run.set_tags(tags)
        if trial.params:
            run.log_params(dict(trial.params))
        run.set_info("optuna", {
            "study": study.study_name, "number": trial.number, "state": state,
            "distributions": {k: _distribution(d) for k, d in trial.distributions.items()},
            "intermediate_values": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
            "pruned_step": tags.get("pruned_step"), "user_attrs": _plain(trial.user_attrs),
            "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        })
        for step, value in sorted(trial.intermediate_values.items()):
            run.log_metric("optuna/intermediate_value", value, step=step)
        values = trial.values or []
        for i, value in enumerate(values):
            key = "optuna/value" if len(values) == 1 else f"optuna/value_{i}"
            run.log_metric(key, value, step=trial.number)
            self.run.log_metric(key, value, step=trial.number)
        if duration is not None:
            run.log_metric("optuna/duration_s", duration, step=trial.number)
        best = _best_trial(study)
        if best is not None and best.value is not None:
            self.run.log_metric("optuna/best_value", best.value, step=trial.number)
            if best.number != self.best_number:
                self.best_number = best.number
                self.run.set_tags({"best_trial": best.number})
        if trial.state == TrialState.FAIL:
            run.end("failed", error=error if isinstance(error, Exception) else RuntimeError("the trial failed"))
        else:
            run.end("finished")

    def close(self, error: BaseException | None = None) -> None:
        with self.lock:
            left, self.trials = list(self.trials.values()), {}
        for run, _ in left:  # trials whose exception Optuna re-raised: no callback saw them end
            withdraw_training(run)
            run.set_tags({"state": "fail"})
            run.end("failed", error=error if isinstance(error, Exception) else RuntimeError("the study stopped"))
        if self.owned and not self.run.ended:
            if error is not None and isinstance(error, Exception):
                self.run.end("failed", error=error)
            elif isinstance(error, KeyboardInterrupt):
                self.run.end("killed")
            else:
                self.run.end("finished")
        else:
            self.run.flush()


# -- autolog ---------------------------------------------------------------------------------------


def autolog(*, disable: bool = False, log_models: bool = True, log_every_n_steps: int | None = None,
            grad_norm_every: int = 50) -> None:
    """Record every ``Study.optimize`` (see the module doc); ``disable=True`` undoes it. The
    other keywords are the autolog contract every integration shares; they do not apply here."""
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    unpatch(INTEGRATION)
    if disable:
        return
    patch(INTEGRATION, optuna.study.Study, "optimize", _optimize)


def _optimize(original: Any, study: optuna.Study, func: Any, *args: Any, **kwargs: Any) -> Any:
    callbacks = list(kwargs.get("callbacks") or ())
    if any(isinstance(cb, AutotrackCallback) for cb in callbacks):
        return original(study, func, *args, **kwargs)  # the user's own callback records it
    try:
        record = _StudyRecord.open(study, None, experiment=None)
    except Exception as exc:  # noqa: BLE001 - the study runs unrecorded rather than not at all
        report_failure("optuna: starting the study's run", exc)
        return original(study, func, *args, **kwargs)

    def objective(trial: optuna.Trial) -> Any:
        run = _start_trial(record, trial)
        if run is None:
            return func(trial)
        try:
            with run.activate():  # the training inside writes into the trial's run
                return func(trial)
        except BaseException as exc:
            record.trial_failed(trial.number, exc)
            raise

    def after(study_: optuna.Study, trial: FrozenTrial) -> None:
        try:
            record.trial_ended(study_, trial, None)
        except Exception as exc:  # noqa: BLE001
            report_failure("optuna: recording a trial", exc)

    kwargs["callbacks"] = [*callbacks, after]
    error: BaseException | None = None
    try:
        return original(study, objective, *args, **kwargs)
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            record.close(error)
        except Exception as exc:  # noqa: BLE001
            report_failure("optuna: ending the study's run", exc)


@guarded("optuna: starting a trial's run")
def _start_trial(record: _StudyRecord, trial: optuna.Trial) -> Run:
    run = record.trial_started(trial)
    host_training(run)
    return run


# -- warm start ------------------------------------------------------------------------------------


def enqueue_from_runs(study: optuna.Study, where: str | None = None, metric: str | None = None, *,
                      experiment: str | None = None,
                      distributions: Mapping[str, optuna.distributions.BaseDistribution] | None = None,
                      store: Any = None) -> dict[str, int]:
    """Add the runs matching ``where`` (and ``experiment``) to ``study`` as completed trials whose
    value is the run's last ``metric``, so the sampler starts from what is already known.

    ``distributions`` (name -> Optuna distribution) defaults to those of the study's trials. A run
    is skipped (and counted) when it lacks a param or the metric, when a param falls outside its
    distribution, or when it was added before (by this function, to this study). Returns
    ``{"added": n, "skipped": m}``.
    """
    if not isinstance(study, optuna.Study):
        raise InvalidArgumentError("study", study, "pass an optuna.Study")
    if not isinstance(metric, str) or not metric:
        raise InvalidArgumentError("metric", metric, "name the metric that is the objective's value, e.g. 'val/loss'")
    if len(study.directions) != 1:
        raise InvalidArgumentError("study", study.study_name, "warm starts take single-objective studies")
    if distributions is None:
        distributions = {}
        for t in study.get_trials(deepcopy=False):
            distributions.update(t.distributions)
    if not distributions:
        raise InvalidArgumentError("distributions", None, "the study has no trials to take distributions from; pass "
                                   "distributions={'lr': optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}")
    frame = autotrack.runs(experiment=experiment, where=where, store=store)
    done = {t.user_attrs.get(FROM_RUN_ATTR) for t in study.get_trials(deepcopy=False)}
    added = skipped = 0
    for _, row in frame.iterrows():
        value = row.get(f"metrics.{metric}")
        params = {name: row.get(f"params.{name}") for name in distributions}
        if (row["id"] in done or not _is_number(value)
                or not all(_inside(distributions[n], v) for n, v in params.items())):
            skipped += 1
            continue
        params = {n: _native(distributions[n], v) for n, v in params.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dict(distributions), value=float(value),
                                                  user_attrs={FROM_RUN_ATTR: row["id"]}))
        added += 1
    return {"added": added, "skipped": skipped}


# -- helpers ---------------------------------------------------------------------------------------


def _study_attrs(study: optuna.Study) -> dict[str, Any]:
    return dict(study._storage.get_study_user_attrs(study._study_id))  # fresh from the storage, not cached


def _storage_url(study: optuna.Study) -> str:
    storage = study._storage
    url = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "url", None)
    return redact_url(str(url)) if url else type(storage).__name__


def _study_params(study: optuna.Study) -> dict[str, Any]:
    params: dict[str, Any] = {"study_name": study.study_name, "storage": _storage_url(study),
                              "directions": [d.name.lower() for d in study.directions]}
    for role, obj in (("sampler", study.sampler), ("pruner", getattr(study, "pruner", None))):
        if obj is None:
            continue
        settings = {k.lstrip("_"): v for k, v in vars(obj).items() if isinstance(v, (bool, int, float, str)) or v is None}
        seed = getattr(getattr(obj, "_rng", None), "_seed", None)  # a seeded sampler keeps it in its lazy RNG
        if isinstance(seed, int):
            settings["seed"] = seed
        params[role] = {"class": type(obj).__name__, **settings}
    return params


def _distribution(d: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(d).__name__}
    for attr in ("low", "high", "log", "step", "choices"):
        if hasattr(d, attr):
            value = getattr(d, attr)
            out[attr] = list(value) if isinstance(value, tuple) else value
    return out


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    if len(study.directions) != 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def _plain(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v if isinstance(v, (bool, int, float, str)) or v is None else repr(v) for k, v in attrs.items()}


def _is_number(value: Any) -> bool:
    try:
        return value is not None and float(value) == float(value)  # not NaN
    except (TypeError, ValueError):
        return False


def _inside(d: Any, value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return False
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return value in d.choices
    if not _is_number(value) or isinstance(value, bool):
        return False
    v = float(value)
    if isinstance(d, optuna.distributions.IntDistribution) and v != int(v):
        return False
    if not d.low <= v <= d.high:
        return False
    step = getattr(d, "step", None)
    return step is None or abs((v - d.low) / step - round((v - d.low) / step)) < 1e-8


def _native(d: Any, value: Any) -> Any:
    if isinstance(d, optuna.distributions.IntDistribution):
        return int(value)
    if isinstance(d, optuna.distributions.FloatDistribution):
        return float(value)
    return value
