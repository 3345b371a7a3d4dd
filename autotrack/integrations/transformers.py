"""Hugging Face Transformers: :class:`AutotrackCallback` records one ``Trainer.train()``;
:func:`autolog` gives every ``Trainer`` the callback.

    from autotrack.integrations.transformers import AutotrackCallback
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[AutotrackCallback()])

What lands in the run (written by the main process only: ``state.is_world_process_zero``), step =
``state.global_step``, at every logging step of the Trainer (``logging_steps``), exactly the values
of ``trainer.state.log_history``:

=========================================  ===============================================
Trainer's log key                          autotrack key
=========================================  ===============================================
``loss``                                   ``train/loss``
``grad_norm`` (the Trainer's own, before   ``train/grad_norm``
clipping)
``learning_rate``                          ``train/lr``
``epoch``                                  ``epoch``
``eval_loss``, ``eval_<m>``                ``val/loss``, ``val/<m>`` (``metric_key_prefix="test"``:
                                           ``test/<m>``)
``train_loss`` (mean over the training)    ``train/loss_mean``
``train_runtime``, ``train_<m>``           ``train/runtime``, ``train/<m>``
anything else (``total_flos``, user keys)  unchanged
=========================================  ===============================================

* params: the ``TrainingArguments`` (``args.to_dict()``) with ``hub_token`` and every
  secret-looking field (``*_token``, ``*secret*``, ``*password*``, ``*api_key*``, values shaped
  like a Hugging Face token) left out -- the ``config`` section lists the names left out -- and
  the model config under ``model_config.``; ``tokenizer.name`` and ``tokenizer.vocab_size``.
* sections: ``model`` (the architecture from :func:`autotrack.integrations.torch.model_info`, the
  model's class and config, ``peft``: each adapter's config when the model is a PEFT model, and
  ``tokenizer``: class, name, vocabulary size), ``optimizer`` (the Trainer's optimizer and
  scheduler), ``config`` (world size, versions, filtered argument names), ``data`` (fingerprints
  of the train and eval datasets).
* artifacts: every checkpoint the Trainer saves, by reference (no copy; hashed in the
  background), kind ``checkpoint``, named ``checkpoint-<step>/<weights file>``, with metadata
  ``step``, ``epoch``, ``folder``, ``files`` and ``best`` (``state.best_model_checkpoint``);
  checkpoints the Trainer rotates away are marked deleted.

Evaluations after training (``trainer.evaluate()`` after ``trainer.train()``) are appended to the
run the callback recorded the training in.

``Trainer.hyperparameter_search`` under autolog: one run per trial, children of one run for the
search. With the Optuna backend and autotrack's Optuna integration on (``autotrack.autolog()``
with Optuna installed) the study is that parent and each training writes into its trial's run
(the study's params, values and states; see :mod:`autotrack.integrations.optuna`). Otherwise
(another backend, or the Optuna integration switched off) autolog starts the parent itself:
params ``search.backend``, ``search.direction``, ``search.n_trials``, then ``best.<hyperparameter>``,
metric ``search/best_objective`` and tag ``best_trial``; each trial's run has tags ``trial`` (0,
1, ...) and ``state`` (``complete`` / ``fail``) as an Optuna trial's.
"""

from __future__ import annotations

import contextvars
import enum
import inspect
import os
import re
from collections.abc import Mapping
from typing import Any

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as _exc:  # pragma: no cover - exercised only without transformers
    from autotrack import MissingDependencyError

    raise MissingDependencyError("transformers", "transformers", "the Transformers integration") from _exc

import autotrack
from autotrack import InvalidArgumentError, Run
from autotrack.integrations.base import (
    autolog_tags,
    guarded,
    hosted_run,
    integration_enabled,
    log_data,
    patch,
    recording,
    report_failure,
    unpatch,
)

try:
    from typing import override  # type: ignore[attr-defined]
except ImportError:  # Python < 3.12
    from typing_extensions import override

__all__ = ["AutotrackCallback", "autolog", "metric_key"]

#: The weights file of a checkpoint folder, the first one present.
INTEGRATION = "transformers"
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "adapter_model.bin", "pytorch_model.bin.index.json", "trainer_state.json")
_PREFIXES = {"eval": "val", "test": "test", "predict": "predict", "train": "train"}
_RENAMED = {"loss": "train/loss", "grad_norm": "train/grad_norm", "learning_rate": "train/lr", "epoch": "epoch",
            "train_loss": "train/loss_mean"}


def metric_key(name: str) -> str:
    """The Trainer's log key -> autotrack's key (the table in this module's docstring)."""
    if name in _RENAMED:
        return _RENAMED[name]
    prefix, sep, rest = name.partition("_")
    if sep and rest and prefix in _PREFIXES:
        return f"{_PREFIXES[prefix]}/{rest}"
    return name


class AutotrackCallback(TrainerCallback):
    """Record a ``Trainer`` training into ``run``, or into a run it starts (and ends) itself.

    Args:
        run: an open :class:`autotrack.Run` to record into. ``None`` (default): a new run is
            started when training starts (a child of the active run, if any) and ended when it ends.
        log_checkpoints: record the checkpoints the Trainer saves (by reference).

    The keys it records are listed in this module's docstring. It never changes ``control``.
    """

    def __init__(self, run: Run | None = None, *, log_checkpoints: bool = True) -> None:
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError(
                "run", run, "pass a run from autotrack.start_run(), or None to let the callback start one"
            )
        if not isinstance(log_checkpoints, bool):
            raise InvalidArgumentError("log_checkpoints", log_checkpoints, "pass True or False")
        self.log_checkpoints = log_checkpoints
        self._given_run = run
        self._parent_id: str | None = None
        self._run: Run | None = run
        self._owns_run = False
        self._active = False
        self._checkpoints: Any = None  # autotrack.integrations.torch.CheckpointRecorder
        self._probe: Any = None  # autotrack.integrations.torch.signature.ForwardProbe, while training
        self._recorded: dict[str, str] = {}  # checkpoint folder -> artifact name
        self._deleted: set[str] = set()  # folders the Trainer rotated away
        self._best: str | None = None
        self._framework_ctx: recording | None = None
        self._epoch_step = -1  # the step of the last `epoch` point (train and eval logs both carry it)
        self._eval_data_logged = False

    @property
    def run(self) -> Run | None:
        """The run this callback records into (``None`` until training starts, unless one was given)."""
        return self._run

    # -- the Trainer's events: thin ---------------------------------------------------------------

    @override
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._start(args, state, kwargs)

    @override
    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            self._log(state, logs)

    @override
    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._active and not self._eval_data_logged:
            self._log_eval_data(kwargs.get("eval_dataloader"))

    @override
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._active and self._checkpoints is not None:
            self._record_checkpoint(args, state)

    @override
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._active:
            self._finish(state)

    # -- what each event does ------------------------------------------------------------------------

    @guarded("transformers callback: start of training")
    def _start(self, args: Any, state: Any, objects: Mapping[str, Any]) -> None:
        self._active = False
        run = self._run = self._open_run()
        self._active = True
        self._recorded, self._best, self._epoch_step, self._eval_data_logged = {}, None, -1, False
        self._deleted: set[str] = set()
        self._enter_framework_recording()
        if self.log_checkpoints:
            from autotrack.integrations.torch import CheckpointRecorder

            self._checkpoints = CheckpointRecorder(run, copy=False)
        model = objects.get("model")
        if self.log_checkpoints and model is not None and hasattr(model, "register_forward_hook"):
            from autotrack.integrations.torch.signature import ForwardProbe

            # the checkpoints' signature: the model's first forward in training, labels left out
            self._probe = ForwardProbe(model, drop_inputs=("labels", "label", "num_items_in_batch"),
                                       drop_outputs=("loss",))
        training_args, filtered = _training_arguments(args)
        params: dict[str, Any] = dict(training_args)
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            params["model_config"] = _plain_config(config)
        tokenizer = _tokenizer_info(objects.get("processing_class"))
        if tokenizer:
            params["tokenizer"] = {"name": tokenizer.get("name"), "vocab_size": tokenizer.get("vocab_size")}
        run.log_params(params)
        if model is not None:
            run.set_info("model", self._model_section(model, tokenizer))
        optimizer, scheduler = objects.get("optimizer"), objects.get("lr_scheduler")
        if optimizer is not None:
            run.set_info("optimizer", _optimizer_section(model, optimizer, scheduler))
        run.set_info("config", {"transformers_version": transformers.__version__,
                                "world_size": int(getattr(args, "world_size", 1)),
                                "max_steps": state.max_steps, "num_train_epochs": state.num_train_epochs,
                                "filtered_args": filtered})
        self._log_data(objects)

    def _open_run(self) -> Run:
        given = self._given_run
        self._owns_run = given is None
        if given is None:
            hosted = hosted_run(self._parent_id)
            if hosted is not None:  # a sweep's trial (an Optuna study under autolog): this training is its record
                self._owns_run = False
                hosted.set_tags({**autolog_tags(), "autotrack.training": INTEGRATION})
                return hosted
            tags, name = {**autolog_tags(), "autotrack.integration": INTEGRATION}, None
            search = _search.get()
            if search is not None:  # a trial of a search autolog records (hyperparameter_search)
                tags.update(trial=search["trials"], state="running")
                name = f"{search['name']}-trial-{search['trials']}"
                search["trials"] += 1
            return autotrack.start_run(name, parent=self._parent_id, tags=tags)
        if given.ended:
            raise InvalidArgumentError(
                "run", given, "this run has ended; pass an open run, or None to let the callback start one"
            )
        return given

    @guarded("transformers callback: metrics")
    def _log(self, state: Any, logs: Mapping[str, Any]) -> None:
        run = self._run
        if run is None:
            return
        reopened = None
        if not self._active and run.ended:  # an evaluation after training: append it to that run
            if not self._owns_run:
                return
            reopened = run = self._run = autotrack.start_run(resume=run.id, activate=False)
        step = int(state.global_step)
        run.step = step
        metrics = {metric_key(k): v for k, v in logs.items() if _is_number(v)}
        if "epoch" in metrics:
            if self._epoch_step == step:
                del metrics["epoch"]
            self._epoch_step = step
        run.log_metrics(metrics, step=step)
        if reopened is not None:
            reopened.end("finished")

    @guarded("transformers callback: checkpoint")
    def _record_checkpoint(self, args: Any, state: Any) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder) and folder not in self._recorded:
            files = sorted(os.listdir(folder))
            weights = next((f for f in WEIGHT_FILES if f in files), None)
            if weights is not None:
                name = f"{os.path.basename(folder)}/{weights}"
                self._recorded[folder] = name
                signature = self._probe.metadata(where="transformers: model signature") if self._probe else {}
                self._checkpoints.record(os.path.join(folder, weights), name, step=int(state.global_step),
                                         metadata={"step": int(state.global_step), "epoch": state.epoch,
                                                   "folder": os.path.abspath(folder), "files": files,
                                                   "best": False, **signature})
        self._update_checkpoints(state)

    def _update_checkpoints(self, state: Any) -> None:
        """Flag the best checkpoint; mark the ones the Trainer rotated away as deleted."""
        best = state.best_model_checkpoint
        best = os.path.abspath(best) if best else None
        if best != self._best:
            previous = next((n for f, n in self._recorded.items() if os.path.abspath(f) == self._best), None)
            if previous is not None:
                self._checkpoints.update(previous, {"best": False})
            current = next((n for f, n in self._recorded.items() if os.path.abspath(f) == best), None)
            if current is not None:
                self._checkpoints.update(current, {"best": True, "metric": state.best_metric})
            self._best = best
        for folder, name in self._recorded.items():
            if folder not in self._deleted and not os.path.isdir(folder):
                self._deleted.add(folder)
                self._checkpoints.mark_deleted(name)

    @guarded("transformers callback: end of training")
    def _finish(self, state: Any) -> None:
        try:
            if self._checkpoints is not None:
                self._update_checkpoints(state)
                if self._run is not None:
                    self._run.set_tags({"best_model_checkpoint": state.best_model_checkpoint or ""})
        finally:
            self._close("finished")

    def _close(self, status: str, error: BaseException | None = None) -> None:
        self._active = False
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()
        self._exit_framework_recording()
        if self._owns_run and self._run is not None and not self._run.ended:
            if _search.get() is not None:
                self._run.set_tags({"state": "complete" if status == "finished" else "fail"})
            self._run.end(status, error=error)  # type: ignore[arg-type]

    def _abort(self, error: BaseException) -> None:
        """Training raised (called by autolog): end the run this callback started as failed/killed."""
        if self._active:
            self._close("killed" if isinstance(error, KeyboardInterrupt) else "failed", error)

    def _model_section(self, model: Any, tokenizer: Mapping[str, Any]) -> dict[str, Any]:
        from autotrack.integrations.torch import model_info

        section: dict[str, Any] = {**model_info(model), "class": f"{type(model).__module__}.{type(model).__qualname__}"}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            section["config"] = _plain_config(config)
            section["model_type"] = getattr(config, "model_type", None)
            section["name_or_path"] = getattr(config, "_name_or_path", None) or None
        peft = getattr(model, "peft_config", None)
        if isinstance(peft, Mapping) and peft:
            section["peft"] = {name: _plain_config(cfg) for name, cfg in peft.items()}
            section["active_adapters"] = list(getattr(model, "active_adapters", None) or [])
        if tokenizer:
            section["tokenizer"] = dict(tokenizer)
        return section

    @guarded("transformers callback: data fingerprints")
    def _log_data(self, objects: Mapping[str, Any]) -> None:
        self._log_dataset("train", objects.get("train_dataloader"), "train")
        if objects.get("eval_dataloader") is not None:
            self._log_eval_data(objects.get("eval_dataloader"))

    @guarded("transformers callback: eval data fingerprint")
    def _log_eval_data(self, loader: Any) -> None:
        self._eval_data_logged = True
        self._log_dataset("eval", loader, "eval")

    def _log_dataset(self, name: str, loader: Any, role: str) -> None:
        dataset = getattr(loader, "dataset", None)
        if dataset is None or self._run is None:
            return
        try:
            entry = autotrack.fingerprint(dataset)
        except InvalidArgumentError:  # an iterable dataset: no length, nothing to sample
            entry = {"type": f"{type(dataset).__module__}.{type(dataset).__qualname__}", "hash": None,
                     "hash_method": "not hashed: autotrack.fingerprint() cannot read this dataset"}
        log_data(self._run, name, {**entry, "role": role})

    # -- staying out of the plain-PyTorch autolog's way -------------------------------------------

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

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        given = state["_given_run"]
        state.update(_given_run=None, _run=None, _owns_run=False, _active=False, _checkpoints=None, _probe=None,
                     _framework_ctx=None, _parent_id=given.id if given is not None else self._parent_id)
        return state


# -- reading the Trainer's objects --------------------------------------------------------------------

_SECRET_WORDS = {"token", "secret", "password", "passwd", "credential", "credentials", "apikey", "auth"}
_NOT_SECRET_AFTER_TOKEN = {"id", "ids", "type", "types", "len", "length"}
_HF_TOKEN = re.compile(r"^hf_[A-Za-z0-9]{20,}$")


def is_secret_field(name: str, value: Any = None) -> bool:
    """A field that may hold a credential: ``hub_token``, ``*_secret``, ``password``, ``api_key``...
    (``pad_token_id`` and ``include_tokens_per_second`` are not), or a value shaped like an HF token."""
    parts = name.lower().split("_")
    for i, part in enumerate(parts):
        if part in _SECRET_WORDS:
            following = parts[i + 1] if i + 1 < len(parts) else None
            if not (part == "token" and following in _NOT_SECRET_AFTER_TOKEN):
                return True
        if part == "key" and i and parts[i - 1] in ("api", "access", "secret", "private"):
            return True
    return isinstance(value, str) and bool(_HF_TOKEN.match(value))


def _training_arguments(args: Any) -> tuple[dict[str, Any], list[str]]:
    values = args.to_dict() if hasattr(args, "to_dict") else dict(vars(args))
    kept, filtered = {}, []
    for name, value in values.items():
        if is_secret_field(name, value):
            filtered.append(name)
        else:
            kept[name] = value
    return kept, sorted(filtered)


def _plain_config(config: Any) -> dict[str, Any]:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    return {k: _plain(v) for k, v in data.items() if not k.startswith("_") and not is_secret_field(k, v)}


def _plain(value: Any) -> Any:
    """Enums by their value (PEFT's ``PeftType.LORA`` -> ``"LORA"``), sets as sorted lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return value


def _tokenizer_info(tokenizer: Any) -> dict[str, Any]:
    if tokenizer is None:
        return {}
    inner = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
    info: dict[str, Any] = {"class": type(tokenizer).__name__,
                            "name": getattr(inner, "name_or_path", None) or None}
    try:
        info["vocab_size"] = len(inner)  # added tokens included
        info["base_vocab_size"] = int(inner.vocab_size)
    except (TypeError, AttributeError, NotImplementedError):
        pass
    max_length = getattr(inner, "model_max_length", None)
    if isinstance(max_length, int) and max_length < 10**9:
        info["model_max_length"] = max_length
    return info


def _optimizer_section(model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    from autotrack.integrations.torch import optimizer_info

    return optimizer_info([optimizer], model, [scheduler] if scheduler is not None else ())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- autolog ------------------------------------------------------------------------------------------


def autolog(*, disable: bool = False, log_models: bool = True, log_every_n_steps: int | None = None,
            grad_norm_every: int = 50) -> None:
    """Give every ``transformers.Trainer`` an :class:`AutotrackCallback` (unless it has one).
    ``log_models=False``: no checkpoints recorded. ``disable=True`` undoes it.

    ``log_every_n_steps`` and ``grad_norm_every`` are accepted (the autolog contract every
    integration shares) and do not apply here (the Trainer's ``logging_steps`` decide).
    """
    if not isinstance(disable, bool):
        raise InvalidArgumentError("disable", disable, "pass True or False")
    if not isinstance(log_models, bool):
        raise InvalidArgumentError("log_models", log_models, "pass True or False")
    unpatch("transformers")
    if disable:
        return

    def init(original: Any, self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _add_callback(self, log_models)

    patch("transformers", transformers.Trainer, "__init__", init)
    patch("transformers", transformers.Trainer, "train", _train)
    patch("transformers", transformers.Trainer, "hyperparameter_search", _hyperparameter_search)


def _add_callback(trainer: Any, log_models: bool) -> None:
    if not any(isinstance(cb, AutotrackCallback) for cb in trainer.callback_handler.callbacks):
        trainer.add_callback(AutotrackCallback(log_checkpoints=log_models))


def _train(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return original(self, *args, **kwargs)
    except BaseException as exc:
        for cb in self.callback_handler.callbacks:
            if isinstance(cb, AutotrackCallback):
                cb._abort(exc)
        raise


#: The search autolog records around ``hyperparameter_search`` (None outside one): ``trials``
#: counts the trials started, for their ``trial`` tag.
_search: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("autotrack_transformers_search",
                                                                              default=None)


def _hyperparameter_search(original: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
    """One parent run for the search, unless the Optuna integration records the study itself."""
    try:
        call = inspect.signature(original).bind(self, *args, **kwargs).arguments
        backend = call.get("backend")
        if backend is None:
            from transformers.hyperparameter_search import default_hp_search_backend

            backend = default_hp_search_backend()
        backend = str(getattr(backend, "value", backend))
        if backend == "optuna":
            import optuna  # noqa: F401 - imported here (transformers would), so that autolog can switch its integration on

            if integration_enabled("optuna"):
                return original(self, *args, **kwargs)  # the study is the parent, each trial hosts its training
        direction = call.get("direction", "minimize")
        parent = autotrack.start_run(tags={**autolog_tags(), "autotrack.integration": INTEGRATION,
                                           "autotrack.search": backend},
                                     params={"search.backend": backend, "search.n_trials": call.get("n_trials", 20),
                                             "search.direction": direction if isinstance(direction, str)
                                             else list(direction)})
    except Exception as exc:  # noqa: BLE001 - the search runs unrecorded rather than not at all
        report_failure("transformers: starting the hyperparameter search's run", exc)
        return original(self, *args, **kwargs)
    token = _search.set({"trials": 0, "name": parent.name})
    try:
        best = original(self, *args, **kwargs)
    except BaseException as exc:
        parent.end("killed" if isinstance(exc, KeyboardInterrupt) else "failed", error=exc)
        raise
    finally:
        _search.reset(token)
    try:
        hyperparameters = getattr(best, "hyperparameters", None) or {}
        parent.log_params({f"best.{k}": v for k, v in hyperparameters.items()})
        objective = getattr(best, "objective", None)
        if isinstance(objective, (int, float)):
            parent.log_metric("search/best_objective", float(objective), step=0)
        if getattr(best, "run_id", None) is not None:
            parent.set_tags({"best_trial": str(best.run_id)})
    except Exception as exc:  # noqa: BLE001
        report_failure("transformers: recording the search's best trial", exc)
    finally:
        parent.end("finished")
    return best
