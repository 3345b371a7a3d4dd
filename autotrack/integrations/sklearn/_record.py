"""Recording one fit: start the run, describe the data, call the fit, record what it made.

Every piece is recorded on its own (params, the model section, each data entry, each metric, the
curves, the search's candidates, the model file): a piece that fails is named in the run's tag
``autotrack.recording_error`` and reported once (``AUTOTRACK_STRICT=1`` raises), and the others
are still recorded. The data is described before the fit, because a step may change ``X`` in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sklearn
from sklearn.utils import get_tags

import autotrack
from autotrack.integrations import _evalplots
from autotrack.integrations.base import (
    being_recorded,
    default_run_name,
    disabled,
    hosted_run,
    log_data,
    recording,
    report_failure,
)

from . import _describe, _grouping, _metrics, _models, _post_training, _search
from ._settings import INTEGRATION, Settings


def nested(call: Callable[[], Any]) -> Any:
    """A fit that makes no run: what it calls is not recorded either."""
    with recording(INTEGRATION):
        return call()


def record(estimator: Any, call: Callable[[], Any], X: Any, y: Any, settings: Settings, *,
           explicit: bool, sample_weight: Any = None) -> tuple[Any, autotrack.Run | None, str | None]:
    """Run ``call`` (the estimator's fit) inside a run when the grouping rules say so. Returns the
    fit's result, the run (None when no run was made) and the training data's hash. The training
    metrics use the fit's ``sample_weight``, as the fit did."""
    if being_recorded() is not None or disabled():  # AUTOTRACK_DISABLE=1 makes Tracked a plain wrapper
        return nested(call), None, None
    group = _grouping.current_group()
    if not explicit and group is None and not _grouping.called_from_user_code():
        return nested(call), None, None  # a library's own fit
    described: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    if settings.log_data:
        described = _describe_inputs(X, y, settings, failures)
    run = token = hosted = None
    try:
        parent = group.run_for(estimator, settings) if group is not None else _grouping.parent_run()
        tags = {"estimator": _describe.class_path(estimator), "sklearn_version": sklearn.__version__,
                "autotrack.integration": INTEGRATION, **(settings.tags or {})}
        name = (settings.run_name or (default_run_name() if parent is None else None)
                or _describe.default_name(estimator, described.get("train")))
        hosted = hosted_run() if group is None else None  # a sweep's trial: this fit is its training
        if hosted is not None:
            run = hosted  # it keeps its integration tag (the sweep's); the sweep ends it
            run.set_tags({**{k: v for k, v in tags.items() if k != "autotrack.integration"},
                          "autotrack.training": INTEGRATION})
        else:
            run = autotrack.start_run(name, experiment=settings.experiment, tags=tags, parent=parent)
        token = _grouping.started(run)
    except Exception as exc:  # noqa: BLE001 - recording must never stop the user's fit
        report_failure("sklearn: starting a run", exc)
        if run is None:
            return nested(call), None, None
    try:
        start = time.perf_counter()
        try:
            with recording(INTEGRATION):
                result = call()
        except BaseException as exc:
            try:
                if hosted is None:
                    run.end("killed" if isinstance(exc, KeyboardInterrupt) else "failed", error=exc)
            except Exception as ours:  # noqa: BLE001 - the user's exception is the one to see
                report_failure("sklearn: ending a failed run", ours)
            raise
        fit_time = time.perf_counter() - start
        with recording(INTEGRATION):  # our predict/score calls are not fits to record
            log_fit(run, estimator, X, y, settings, fit_time, described, failures, sample_weight)
        _end(run, failures, keep_open=hosted is not None)
    finally:
        if token is not None:
            _grouping.finished(token)
    train = described.get("train")
    train_hash = train.get("hash") if train else None
    if _post_training.enabled():  # what user code scores the fitted estimator with goes to this run
        try:
            _post_training.link(estimator, run, train_hash or _post_training.data_hash(X))
        except Exception as exc:  # noqa: BLE001
            report_failure("sklearn: linking the estimator to its run", exc)
    return result, run, train_hash


def _end(run: autotrack.Run, failures: list[str], *, keep_open: bool = False) -> None:
    try:
        if failures:  # a flag on the run: what is missing from it, and why
            run.set_tags({"autotrack.recording_error": "; ".join(failures)[:2000]})
    finally:
        if keep_open:
            run.flush()
        else:
            run.end("finished")


def _piece(failures: list[str], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one piece failing leaves the others
        _failed(failures, what, exc)
        return None


def _failed(failures: list[str], what: str, exc: BaseException) -> None:
    failures.append(f"{what}: {type(exc).__name__}: {exc}"[:500])
    report_failure(f"sklearn: recording the {what}", exc)


def _describe_inputs(X: Any, y: Any, settings: Settings, failures: list[str]) -> dict[str, dict[str, Any]]:
    entries = {"train": X, "train_y": y}
    if settings.eval_set is not None:
        entries.update(validation=settings.eval_set[0], validation_y=settings.eval_set[1])
    out = {}
    for name, obj in entries.items():
        if obj is not None:
            entry = _piece(failures, f"data entry {name}", _describe.describe, obj)
            if entry is not None:
                out[name] = entry
    return out


def log_fit(run: autotrack.Run, est: Any, X: Any, y: Any, settings: Settings, fit_time: float,
            described: dict[str, dict[str, Any]], failures: list[str], sample_weight: Any = None) -> None:
    """Record a finished fit, one guarded piece at a time."""
    _piece(failures, "params", _log_params, run, est)
    _piece(failures, "model section", lambda: run.set_info("model", _describe.model_info(est)))
    for name, entry in described.items():
        _piece(failures, f"data entry {name}", log_data, run, name, entry)
    _piece(failures, "fit time", run.log_metric, "train/fit_time", fit_time, 0)

    def fail(what: str, exc: BaseException) -> None:
        _failed(failures, what, exc)

    if settings.log_metrics:
        plots = _evalplots.enabled()  # a classifier's plots, of the predictions its metrics make
        _piece(failures, "training metrics", _metrics.log_task_metrics, run, est, X, y, "train", fail, sample_weight,
               plots)
        _piece(failures, "iteration curves", _metrics.log_curves, run, est)
        if settings.eval_set is not None:
            _piece(failures, "validation metrics", _metrics.log_task_metrics, run, est, settings.eval_set[0],
                   settings.eval_set[1], "val", fail, None, plots)
    search = _search.is_search(est)
    if search:
        _piece(failures, "search candidates", _search.log_search, run, est, settings)
    if settings.log_model and (settings.log_transformer_models or not _standalone_transformer(est)):
        model = getattr(est, "best_estimator_", None) if search else est
        if model is not None:
            _piece(failures, "model file", _models.log_model, run, model, X, settings.log_input_examples)


def _log_params(run: autotrack.Run, est: Any) -> None:
    params = _describe.params(est)
    try:
        run.log_params(params)
    except Exception:  # noqa: BLE001 - find the param that cannot be stored; keep the rest
        for key, value in params.items():
            try:
                run.log_params({key: value})
            except Exception:  # noqa: BLE001
                run.log_params({key: repr(value)[:1000]})


def _standalone_transformer(est: Any) -> bool:
    """A transformer on its own (a scaler, a PCA): neither a predictor nor a clusterer, nor a
    pipeline or search ending in one."""
    final = _metrics.final_estimator(est)
    try:
        kind = get_tags(final).estimator_type
    except Exception:  # noqa: BLE001 - a third-party estimator without tags
        return False
    return kind is None and hasattr(final, "transform") and not hasattr(final, "predict")
