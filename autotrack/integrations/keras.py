"""Keras 3: :class:`AutotrackCallback` records one ``Model.fit``; :func:`autolog` adds it to every
``Model.fit`` call. Tested with the torch backend (``KERAS_BACKEND=torch``); nothing here is
specific to one backend except that the per-batch loss stays a tensor until it is copied out.

    from autotrack.integrations.keras import AutotrackCallback
    model.fit(x, y, validation_split=0.2, epochs=5, callbacks=[AutotrackCallback()])

What lands in the run (step = global batch: 0 for the first batch of the fit, counting on across
epochs and, with a run passed in, across fits):

* every batch: ``train/loss`` (the loss of that batch as the model computed it, through
  ``Model.compute_loss``, not Keras's running mean over the epoch) and ``train/lr`` (the learning
  rate the optimizer used for that batch, schedules included);
* every epoch, at the step of its last batch: ``epoch``; Keras's epoch logs renamed to the keys the
  other integrations use: ``loss`` -> ``train/loss_epoch``, any other training metric ``m`` ->
  ``train/m``, ``val_loss`` -> ``val/loss``, ``val_m`` -> ``val/m`` (exactly ``History.history``);
* params: the fit arguments (``fit.epochs``, ``fit.batch_size``, ...), the loss
  (``compile.loss``) and the optimizer's ``get_config()`` under ``optimizer.``;
* sections: ``model`` (class, name, total/trainable/non-trainable parameter counts, one entry per
  layer with its class, parameter count and output shape, and ``model.summary()``'s text),
  ``optimizer`` (class and config), ``config`` (backend, Keras version, steps per epoch),
  ``data`` (autotrack's fingerprint of ``x``, ``y`` and the validation data, when they are arrays,
  tensors or DataFrames);
* artifact ``model.keras`` (kind ``model``, ``keras.saving.load_model`` reads it).

A model whose ``train_step`` does not call ``compute_loss`` records no per-batch ``train/loss``
(the epoch values still come from Keras's logs). The callback never stops or changes training.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

try:
    import keras
except ImportError as _exc:  # pragma: no cover - exercised only without keras
    from autotrack import MissingDependencyError

    raise MissingDependencyError("keras", "keras", "the Keras integration") from _exc

import autotrack
from autotrack import InvalidArgumentError, Run
from autotrack.integrations.base import (
    RunSlot,
    data_schema,
    first_rows,
    guarded,
    log_data,
    model_io,
    patch,
    recording,
    unpatch,
)

__all__ = ["AutotrackCallback", "autolog"]

INTEGRATION = "keras"
MODEL_NAME = "model.keras"
FIT_ARGS = ("batch_size", "epochs", "validation_split", "shuffle", "initial_epoch", "steps_per_epoch",
            "validation_steps", "validation_batch_size", "validation_freq")


try:
    from typing import override  # type: ignore[attr-defined]
except ImportError:  # Python < 3.12
    from typing_extensions import override


class AutotrackCallback(keras.callbacks.Callback):
    """Record a Keras ``Model.fit`` into ``run``, or into a run it starts (and ends) itself.

    Args:
        run: an open :class:`autotrack.Run` to record into. ``None`` (default): a new run is
            started when training starts (a child of the active run, if any) and ended when it ends.
        log_model: store the trained model as the artifact ``model.keras`` (kind ``model``).
        flush_every: per-batch values kept on the device and copied out together every this many.

    The keys it records are listed in this module's docstring.
    """

    def __init__(self, run: Run | None = None, *, log_model: bool = True, flush_every: int = 100) -> None:
        super().__init__()
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError(
                "run", run, "pass a run from autotrack.start_run(), or None to let the callback start one"
            )
        if not isinstance(log_model, bool):
            raise InvalidArgumentError("log_model", log_model, "pass True or False")
        if not isinstance(flush_every, int) or isinstance(flush_every, bool) or flush_every < 1:
            raise InvalidArgumentError("flush_every", flush_every, "pass a positive number of batches, e.g. 100")
        self.log_model = log_model
        self.flush_every = flush_every
        self._slot = RunSlot(INTEGRATION, run)  # a given run is never ended here
        self._parent_id: str | None = None
        self._run: Run | None = run
        self._active = False
        self._buffer: Any = None  # autotrack.integrations.torch.ScalarBuffer, or None off torch
        self._step = -1  # the global batch last recorded
        self._batch_loss: Any = None  # set by the compute_loss wrapper during the batch
        self._lr: Any = None
        self._input: tuple[Any, Any] | None = None  # (schema, first rows) of fit's x, for the signature
        self._framework_ctx: recording | None = None

    @property
    def run(self) -> Run | None:
        """The run this callback records into (``None`` until training starts, unless one was given)."""
        return self._run

    # -- Keras's hooks: thin -----------------------------------------------------------------

    @override
    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._start()

    @override
    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._active:
            self._read_lr()

    @override
    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._active:
            self._log_batch()

    @override
    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._active:
            self._log_epoch(epoch, logs or {})

    @override
    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._active:
            self._finish()

    # -- what each hook does ---------------------------------------------------------------------

    @guarded("keras callback: start of training")
    def _start(self) -> None:
        self._active = False
        model = self.model
        fit = _fit_arguments(model)
        run = self._run = self._open_run()
        self._active = True
        self._enter_framework_recording()
        self._buffer = _scalar_buffer(run, self.flush_every)
        self._wrap_compute_loss(model)
        optimizer = getattr(model, "optimizer", None)
        opt_config = _optimizer_config(optimizer)
        params: dict[str, Any] = {f"fit.{k}": fit[k] for k in FIT_ARGS if k in fit}
        loss = getattr(model, "loss", None)
        if loss is not None:
            params["compile.loss"] = loss if isinstance(loss, str) else getattr(loss, "name", repr(loss))
        if opt_config:
            params["optimizer"] = {"class": type(optimizer).__name__, **opt_config}
            run.set_info("optimizer", {"class": f"{type(optimizer).__module__}.{type(optimizer).__qualname__}",
                                       "config": opt_config})
        run.log_params(params)
        run.set_info("model", _model_info(model))
        run.set_info("config", {"backend": keras.backend.backend(), "keras_version": keras.__version__,
                                "epochs": self.params.get("epochs"), "steps_per_epoch": self.params.get("steps")})
        self._log_data(fit)
        self._input = _training_input(fit.get("x")) if self.log_model else None

    def _open_run(self) -> Run:
        slot = self._slot
        if slot.given is None and (slot.run is None or slot.run.ended):  # each fit is a run of its own
            self._step = -1
        return slot.open(parent=self._parent_id)

    def _wrap_compute_loss(self, model: Any) -> None:
        """The loss of each batch, as a tensor: wrap this model's ``compute_loss`` for the fit."""
        original = model.compute_loss
        recorder = self

        def compute_loss(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)
            recorder._batch_loss = loss
            return loss

        compute_loss.__autotrack_original__ = original  # type: ignore[attr-defined]
        object.__setattr__(model, "compute_loss", compute_loss)

    @staticmethod
    def _unwrap_compute_loss(model: Any) -> None:
        current = model.__dict__.get("compute_loss")
        if current is not None and hasattr(current, "__autotrack_original__"):
            del model.__dict__["compute_loss"]

    @guarded("keras callback: learning rate")
    def _read_lr(self) -> None:
        self._batch_loss = None
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return
        lr = getattr(optimizer.learning_rate, "value", optimizer.learning_rate)
        self._lr = lr.detach().clone() if hasattr(lr, "detach") else float(lr)  # the tensor changes in place

    @guarded("keras callback: batch metrics")
    def _log_batch(self) -> None:
        step = self._step = self._step + 1
        assert self._run is not None
        self._run.step = step
        loss, self._batch_loss = self._batch_loss, None
        if loss is not None:
            self._add("train/loss", step, loss)
        if self._lr is not None:
            self._add("train/lr", step, self._lr)

    def _add(self, key: str, step: int, value: Any) -> None:
        if self._buffer is not None:
            self._buffer.add(key, step, value)
        else:
            assert self._run is not None
            self._run.log_metric(key, float(keras.ops.convert_to_numpy(value)), step)

    @guarded("keras callback: epoch metrics")
    def _log_epoch(self, epoch: int, logs: Mapping[str, Any]) -> None:
        run = self._run
        assert run is not None
        step = max(self._step, 0)
        now = time.time()
        metrics = {"epoch": epoch}
        for name, value in logs.items():
            key = epoch_key(name)
            if key is not None:
                metrics[key] = value
        run.log_metrics(metrics, step=step, time=now)

    @guarded("keras callback: end of training")
    def _finish(self) -> None:
        try:
            if self._buffer is not None:
                self._buffer.flush()
            model = self.model
            self._unwrap_compute_loss(model)
            if self.log_model:
                self._log_model(model)
        finally:
            self._close()

    def _log_model(self, model: Any) -> None:
        assert self._run is not None
        with tempfile.TemporaryDirectory(prefix="autotrack-keras-") as folder:
            path = os.path.join(folder, MODEL_NAME)
            model.save(path)
            metadata = {"format": "keras", "keras_version": keras.__version__, "backend": keras.backend.backend()}
            if self._input is not None:  # the signature: predict() on the first training rows, after fit
                schema, rows = self._input
                self._input = None
                metadata.update(model_io(rows, lambda r: _predict_keeping_history(model, r), input_schema=schema,
                                         where="keras: model signature"))
            self._run.log_artifact(path, MODEL_NAME, "model", step=max(self._step, 0), metadata=metadata)

    def _close(self, status: str = "finished", error: BaseException | None = None) -> None:
        self._active = False
        self._exit_framework_recording()
        if self.model is not None:
            self._unwrap_compute_loss(self.model)
        if self._slot.created and self._buffer is not None and status == "finished":
            self._buffer.flush()
        self._slot.end(status, error)

    def _abort(self, error: BaseException) -> None:
        """Training raised (called by autolog): end the run this callback started as failed/killed."""
        run = self._slot.run
        if self._active or (self._slot.created and run is not None and not run.ended):
            self._close("killed" if isinstance(error, KeyboardInterrupt) else "failed", error)

    @guarded("keras callback: data fingerprints")
    def _log_data(self, fit: Mapping[str, Any]) -> None:
        assert self._run is not None
        for name, role in (("x", "train"), ("y", "train"), ("val_x", "eval"), ("val_y", "eval")):
            value = fit.get(name)
            if value is None:
                continue
            try:
                entry = autotrack.fingerprint(value)
            except InvalidArgumentError:  # a generator, a tf.data pipeline, a PyDataset...
                entry = {"type": f"{type(value).__module__}.{type(value).__qualname__}", "hash": None,
                         "hash_method": "not hashed: autotrack.fingerprint() cannot read this type"}
            log_data(self._run, name, {**entry, "role": role})

    # -- staying out of the plain-PyTorch autolog's way (Keras's torch backend calls backward) ----

    def _enter_framework_recording(self) -> None:
        """While this callback records, the plain-PyTorch autolog's hooks (``backward``, optimizer
        steps, ``torch.save``) stay out: one training is never recorded twice. Context-local."""
        if self._framework_ctx is None:
            self._framework_ctx = recording(INTEGRATION)
            self._framework_ctx.enter()

    def _exit_framework_recording(self) -> None:
        ctx, self._framework_ctx = self._framework_ctx, None
        if ctx is not None:
            ctx.exit()

    # -- pickling / copying: drop the live handles -------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        given = self._slot.given
        state.update(_slot=RunSlot(INTEGRATION), _run=None, _active=False, _buffer=None, _batch_loss=None,
                     _lr=None, _framework_ctx=None, _model=None, _input=None,
                     _parent_id=given.id if given is not None else self._parent_id)
        return state


def epoch_key(name: str) -> str | None:
    """Keras's epoch log name -> autotrack's key (``None``: recorded per batch already)."""
    if name in ("learning_rate", "lr"):
        return None
    if name.startswith("val_"):
        return f"val/{name[4:]}"
    return "train/loss_epoch" if name == "loss" else f"train/{name}"


# -- reading the model ----------------------------------------------------------------------------------


def _training_input(x: Any) -> tuple[Any, Any] | None:
    """Schema and a copy of the first rows of ``fit``'s ``x`` (an array, tensor, DataFrame or a
    dict/tuple of them); None for a generator or dataset (no rows taken from it)."""
    if x is None:
        return None
    schema = data_schema(x)
    if schema is None:
        return None
    rows = first_rows(x)
    return schema, rows.copy() if hasattr(rows, "copy") else rows


def _fit_arguments(model: Any) -> dict[str, Any]:
    """The locals of the running ``fit`` of ``model`` (its data after any validation split)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
            return dict(frame.f_locals)
        frame = frame.f_back  # type: ignore[assignment]
    return {}


def _optimizer_config(optimizer: Any) -> dict[str, Any]:
    if optimizer is None or not hasattr(optimizer, "get_config"):
        return {}
    config = dict(optimizer.get_config())
    lr = config.get("learning_rate")
    if isinstance(lr, Mapping):  # a schedule: its class and config
        config["learning_rate"] = {"class": lr.get("class_name"), **(lr.get("config") or {})}
    return config


def _model_info(model: Any) -> dict[str, Any]:
    trainable = sum(int(_size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(_size(w)) for w in model.non_trainable_weights)
    layers = []
    for layer in model.layers:
        entry: dict[str, Any] = {"name": layer.name, "class": type(layer).__name__,
                                 "params": int(layer.count_params()) if layer.built else 0,
                                 "trainable": bool(layer.trainable)}
        try:
            entry["output_shape"] = list(layer.output.shape)
        except (AttributeError, ValueError, RuntimeError):
            pass
        layers.append(entry)
    lines: list[str] = []
    try:
        model.summary(print_fn=lambda text, **_: lines.append(text))
    except Exception:  # noqa: BLE001 - a summary is nice to have, never needed
        pass
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "name": model.name,
            "total_params": trainable + non_trainable, "trainable_params": trainable,
            "non_trainable_params": non_trainable, "layers": layers, "summary": "\n".join(lines)}


def _size(weight: Any) -> int:
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n


def _scalar_buffer(run: Run, flush_every: int) -> Any:
    """The torch integration's device-side buffer under the torch backend, else None (log at once)."""
    if keras.backend.backend() != "torch":
        return None
    from autotrack.integrations.torch import ScalarBuffer

    return ScalarBuffer(run, flush_every=flush_every)


# -- autolog ------------------------------------------------------------------------------------------


def autolog(*, disable: bool = False, log_models: bool = True, log_every_n_steps: int | None = None,
            grad_norm_every: int = 50) -> None:
    """Add an :class:`AutotrackCallback` to every ``keras.Model.fit`` call that has none.
    ``disable=True`` undoes it.

    ``log_every_n_steps`` and ``grad_norm_every`` are accepted (the autolog contract every
    integration shares) and do not apply here (Keras: every batch).
    """
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    if not isinstance(log_models, bool):
        raise InvalidArgumentError("log_models", log_models, "pass True or False")
    unpatch("keras")
    if disable:
        return

    def with_callback(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
        return _fit_with_callback(original, log_models, self, args, kwargs)

    patch("keras", keras.Model, "fit", with_callback)


def _predict_keeping_history(model: Any, rows: Any) -> Any:
    """``model.predict(rows)`` at the end of ``fit``, leaving ``model.history`` as ``fit`` set it:
    ``fit`` returns ``model.history``, and in Keras 3.0 ``predict`` replaces it with the History of
    its own callback list (``fit`` then returned an empty one; later releases leave it)."""
    kept = getattr(model, "history", None)
    try:
        return model.predict(rows, verbose=0)
    finally:
        if kept is not None and getattr(model, "history", None) is not kept:
            model.history = kept


def _fit_with_callback(original: Any, log_models: bool, model: Any, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
    if len(args) > 5:  # callbacks given by position: fit(x, y, batch_size, epochs, verbose, callbacks)
        args, kwargs = args[:5], {**kwargs, "callbacks": args[5]}
    callbacks = kwargs.get("callbacks")
    listed = list(callbacks) if isinstance(callbacks, (list, tuple)) else None
    if listed is None and callbacks is not None:  # a CallbackList the user built: leave it alone
        return original(model, *args, **kwargs)
    if any(isinstance(cb, AutotrackCallback) for cb in listed or ()):
        return original(model, *args, **kwargs)
    callback = AutotrackCallback(log_model=log_models)
    kwargs["callbacks"] = [*(listed or ()), callback]
    try:
        return original(model, *args, **kwargs)
    except BaseException as exc:
        callback._abort(exc)
        raise
