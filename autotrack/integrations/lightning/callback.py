"""``Trainer(callbacks=[AutotrackCallback()])``: a Lightning training recorded into an autotrack run."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch

import autotrack
from autotrack import Run
from autotrack.integrations.base import (
    InvalidArgumentError,
    check_model_name,
    RunRef,
    attach_run,
    guarded,
    log_data,
    recording,
    report_failure,
    start_system_sampler,
    suspended,
)
from autotrack.integrations.lightning import checkpoints
from autotrack.integrations.lightning._packages import CALLBACK_BASES, EARLY_STOPPING, MODEL_CHECKPOINT
from autotrack.integrations.lightning.logger import AutotrackLogger
from autotrack.integrations.lightning.session import ASIDE, INTEGRATION, Session, plain_hparams
from autotrack.integrations.torch import GradNormTracker, LossTracker, lr_keys, model_info, optimizer_info
from autotrack.integrations.torch.signature import ForwardProbe

try:
    from typing import override  # type: ignore[attr-defined]
except ImportError:  # Python < 3.12
    from typing_extensions import override

#: One label for every hook: a fault is one warning per fit, not one per hook.
HOOKS = "lightning callback"
#: The run of each LightningModule's last fit (a run the callback started): a later
#: ``trainer.test/validate/predict`` of the same module, by any Trainer, writes into it.
_fit_runs: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class AutotrackCallback(*CALLBACK_BASES):  # type: ignore[misc]
    """Records a Lightning training into an autotrack run.

    Args:
        run: an existing run to write to (it is never ended by the callback). Default: a new run
            is started when training starts and ended when it stops.
        name, experiment, tags: for the run the callback starts.
        log_grad_norm: record gradient norms.
        per_layer_every: every how many optimizer steps to record per-layer norms (0: never).
        per_layer: ``"parameter"`` or ``"module"``: what a per-layer norm is taken over.
        copy_checkpoints: copy checkpoint files into the store instead of recording a reference.
        log_model: at the end of a successful fit, store the LightningModule's final ``state_dict``
            as an artifact ``model.pt`` of kind ``model`` (``autotrack.autolog()`` turns it on).
        register_best_as: a model name: when fit succeeds, register the best checkpoint of the
            first ModelCheckpoint that has a ``monitor`` (by that monitored metric) as the model's
            next version (``autotrack.register_model``). Without such a ModelCheckpoint (none, or
            only Lightning's default one, which monitors nothing) the final weights are registered
            instead, as the ``model.pt`` state dict ``log_model`` stores. The version is in
            ``callback.model_version``; load it with ``autotrack.load_model(name, model=MyModule)``.

    Logged keys (steps are global optimizer steps, ``trainer.global_step`` before the step):

    * ``train/loss`` -- mean of the micro-batch losses of each optimizer step (under
      ``accumulate_grad_batches`` the mean over the accumulated batches, un-scaled under AMP);
    * ``train/grad_norm`` -- L2 norm of all gradients of the stepping optimizer, before clipping
      (``train/grad_norm/opt<i>`` for several optimizers);
    * ``grad_norm/<parameter>`` (or ``grad_norm/<module>``) -- every ``per_layer_every`` steps;
    * ``train/lr`` -- the lr each step used; ``train/lr/<group>`` for several param groups,
      ``train/lr/opt<i>[/<group>]`` for several optimizers;
    * ``epoch`` -- at the start of each training epoch;
    * every metric logged with ``self.log``, under its own key at the step Lightning logs it at
      (``log_every_n_steps``; epoch-level metrics at the end of the epoch), also with ``logger=False``;
    * params: the LightningModule's and DataModule's hyperparameters, ``trainer.*`` settings,
      ``early_stopping.*``; sections ``model``, ``optimizer``, ``config`` (trainer settings,
      EarlyStopping and ModelCheckpoint state at the end of fit), ``data`` (fingerprints of the
      train/validation datasets that have a length, when ``autotrack._capture`` is present); tags
      ``grad_nonfinite/first_step`` and ``grad_nonfinite/params`` if gradients become non-finite;
    * artifacts of kind ``checkpoint`` for every ModelCheckpoint save (metadata: path, epoch,
      global_step, monitor, score, best, last; deleted checkpoints are marked deleted).

    ``trainer.test()`` / ``validate()`` / ``predict()`` of a module this callback fitted in the
    same process (with the same Trainer or another one) reopens the fit's run and adds what that
    stage logs (``test_loss`` ...) at the fit's last step or later, leaving its params, sections
    and status as they were (a stage that raises is named in the tag ``autotrack.<stage>_error``).
    A module that was not fitted here (loaded from a checkpoint) gets a run of its own.

    Losses, norms and ``self.log`` tensors reach the run in batches (every 100 optimizer steps,
    at the end of fit and when training fails), so nothing converts a tensor inside the step.
    Under DDP global rank 0 records everything above, so losses and gradient norms are rank 0's;
    the other ranks only add their system metrics as ``system/rank<r>/...`` (when the capture
    module and its system-metrics sampler are on).
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        experiment: str | None = None,
        tags: Mapping[str, Any] | None = None,
        log_grad_norm: bool = True,
        per_layer_every: int = 50,
        per_layer: str = "parameter",
        copy_checkpoints: bool = False,
        log_model: bool = False,
        register_best_as: str | None = None,
    ) -> None:
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError("run", run, "pass a Run from autotrack.start_run(), or None to start one")
        if not isinstance(per_layer_every, int) or per_layer_every < 0:
            raise InvalidArgumentError("per_layer_every", per_layer_every, "pass a whole number >= 0 (0 turns it off)")
        if per_layer not in ("parameter", "module"):
            raise InvalidArgumentError("per_layer", per_layer, "choose 'parameter' or 'module'")
        self._session = Session(run, name, experiment, tags, copy_checkpoints)
        self.log_grad_norm = log_grad_norm
        self.per_layer_every = per_layer_every
        self.per_layer = per_layer
        self._on = False
        self._rank_sampler: tuple[Any, Run] | None = None
        self._recording: recording | None = None
        self.log_model = log_model
        if register_best_as is not None:
            check_model_name(register_best_as, "register_best_as")
        self.register_best_as = register_best_as
        #: the version ``register_best_as`` registered at the end of the last successful fit
        self.model_version: autotrack.ModelVersion | None = None
        self._reset()

    def _reset(self) -> None:
        self._per_optimizer: dict[int, tuple[GradNormTracker | None, Sequence[str]]] = {}
        self._loss: LossTracker | None = None
        self._loss_scale = 1.0
        self._scaler: Any = None
        self._ckpt_callbacks: list[Any] = []
        self._step_checkpointing = False
        self._ckpt_signatures: dict[int, tuple[Any, ...]] = {}
        self._wrapped_connector: Any = None
        self._wrapped_module: Any = None
        self._keys_seen = 0
        #: (stage, the run's status before) while a later stage writes into a fit's run
        self._reopened: tuple[str, str] | None = None
        probe = getattr(self, "_probe", None)
        if probe is not None:
            probe.close()
        self._probe: ForwardProbe | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_per_optimizer={}, _loss=None, _scaler=None, _ckpt_callbacks=[],
                     _wrapped_connector=None, _wrapped_module=None, _on=False, _rank_sampler=None, _recording=None,
                     model_version=None, _probe=None)
        return state

    @property
    def run(self) -> Run | None:
        """The run being written (None before training starts, and on ranks other than 0)."""
        return self._session.run

    # -- hooks (thin; each hands off to one method) ---------------------------------------

    @override
    @guarded(HOOKS)
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._enter_framework_recording()
        try:
            self._start(trainer, pl_module, stage)
        finally:  # every rank must reach the broadcast, whatever happened on rank 0
            if trainer.world_size > 1:
                self._share_run_with_ranks(trainer)

    @override
    @guarded(HOOKS)
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._record_model_and_optimizers(trainer, pl_module)

    @override
    @guarded(HOOKS)
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._record_data(trainer)

    @override
    @guarded(HOOKS)
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._session.ensure_run().log_metric("epoch", trainer.current_epoch, step=trainer.global_step)
            if self._ckpt_callbacks:  # saves of the previous epoch's end, before any can be deleted
                self._poll_checkpoints(trainer)

    @override
    @guarded(HOOKS)
    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
        if self._on and self._loss is not None:
            self._add_loss(loss)

    @override
    @guarded(HOOKS)
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._on:
            self._record_step(trainer, pl_module, optimizer)

    @override
    @guarded(HOOKS)
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._step_checkpointing:
            self._poll_checkpoints(trainer)
        if self._probe is not None and not self._probe.fired and self._probe.rows is None:
            self._probe.offer_batch(batch)  # forward() was not called in the step: keep its first rows

    @override
    @guarded(HOOKS)
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self._on:
            self._session.save_epochs[trainer.global_step] = trainer.current_epoch

    @override
    @guarded(HOOKS)
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._ckpt_callbacks:
            self._poll_checkpoints(trainer)

    @override
    @guarded(HOOKS)
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self._ckpt_callbacks:
            self._poll_checkpoints(trainer)

    @override
    @guarded(HOOKS)
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._ckpt_callbacks:
            self._poll_checkpoints(trainer)

    @override
    @guarded(HOOKS)
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._finish_fit(trainer)

    @override
    @guarded(HOOKS)
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._exit_framework_recording()
        self._stop_rank_sampler()
        if self._on:
            self._stop("finished", None)

    @override
    @guarded(HOOKS)
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._exit_framework_recording()
        self._stop_rank_sampler()
        if self._on:
            self._poll_checkpoints(trainer)
            self._stop("killed" if isinstance(exception, KeyboardInterrupt) else "failed", exception)

    # -- what the hooks do ----------------------------------------------------------------

    def _start(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Start (or adopt) the run on global rank 0. Until it has succeeded every other hook is a
        no-op, so one fault here is one warning, not one per hook."""
        self._reset()
        self._on = False
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, AutotrackLogger):
                if logger._session.run is None and self._session.run is not None and not self._session.created:
                    logger._session.run = self._session.run
                self._session = logger._session
                break
        else:
            self._wrap_logged_metrics(trainer)
        if stage != "fit" and self._reopen_fit_run(pl_module, stage):
            self._watch_user_keys(pl_module)
            self._on = True
            return
        run = self._session.ensure_run()
        if stage == "fit" and self._session.created:
            _fit_runs[pl_module] = run.id
        run.step = trainer.global_step
        config = _trainer_config(trainer)
        run.set_info("config", {"trainer": config, "stage": str(getattr(stage, "value", stage))})
        run.log_params({f"trainer.{k}": v for k, v in config.items()})
        hparams = plain_hparams(getattr(pl_module, "hparams", {}))
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            hparams.update(plain_hparams(getattr(datamodule, "hparams", {})))
        if hparams:
            run.log_params(hparams)
        self._ckpt_callbacks = [cb for cb in trainer.callbacks if isinstance(cb, MODEL_CHECKPOINT)]
        # only checkpoints saved between training batches need a look after every batch
        self._step_checkpointing = any(checkpoints.saves_between_batches(cb) for cb in self._ckpt_callbacks)
        self._watch_user_keys(pl_module)
        if (self.log_model or self.register_best_as is not None) and stage == "fit":  # the stored model's signature
            self._probe = ForwardProbe(pl_module)
        self._on = True

    def _reopen_fit_run(self, pl_module: Any, stage: str) -> bool:
        """After ``fit``: reopen the run of this module's fit for a test/validate/predict stage.
        False (a run of its own, as before) when the module was not fitted here, the user gave
        the run, or the fit's run cannot be reopened."""
        run_id = _fit_runs.get(pl_module)
        slot = self._session.slot
        if run_id is None or (slot.run is not None and not slot.run.ended):
            return False  # an open run (the user's, or one still recording) takes the metrics as before
        try:
            status = autotrack.get_run(run_id).status
            run = autotrack.start_run(resume=run_id)
        except Exception as exc:  # noqa: BLE001 - the stage is recorded in a run of its own instead
            report_failure(f"lightning: reopening the fit's run for {stage}", exc)
            return False
        slot.run, slot.created, slot.hosted = run, True, False
        self._session.reset_recorders()
        self._session.step_floor = run.last_step or 0
        self._reopened = (stage, status if status in ("finished", "failed", "killed") else "finished")
        return True

    def _enter_framework_recording(self) -> None:
        """While this callback records, other integrations' hooks (the plain-PyTorch autolog's
        optimizer hooks, its ``torch.save`` patch) stay out, on every rank: a training is never
        recorded twice. Context-local: a fit in another thread is not affected."""
        if self._recording is None:
            self._recording = recording(INTEGRATION)
            self._recording.enter()

    def _exit_framework_recording(self) -> None:
        ctx, self._recording = self._recording, None
        if ctx is not None:
            ctx.exit()

    def _watch_user_keys(self, pl_module: Any) -> None:
        """See the keys the user logs with ``self.log`` (``log_dict`` calls it too) as they are
        logged, before autotrack's own values of the step are written: a key autotrack writes as
        well moves autotrack's own series aside (``Session.claim``). Undone at teardown."""
        original = getattr(pl_module, "log", None)
        if original is None or getattr(original, "__autotrack__", False):
            return
        session = self._session

        def log(name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                session.claim(name)
            except Exception as exc:  # noqa: BLE001 - the user's call must go on
                report_failure("lightning: watching the keys logged with self.log", exc)
            return original(name, value, *args, **kwargs)

        log.__autotrack__ = True  # type: ignore[attr-defined]
        pl_module.__dict__["log"] = log
        self._wrapped_module = pl_module

    def _unwatch_user_keys(self) -> None:
        module, self._wrapped_module = self._wrapped_module, None
        if module is not None and getattr(module.__dict__.get("log"), "__autotrack__", False):
            del module.__dict__["log"]

    def _share_run_with_ranks(self, trainer: Any) -> None:
        """DDP: rank 0 sends its run to the other ranks, which record their system metrics into it
        as ``system/rank<r>/...`` (rank 0's own are the capture module's ``system/...``)."""
        ref = self._session.ref() if self._on else None
        try:
            ref = trainer.strategy.broadcast(ref, src=0)
        except Exception as exc:  # noqa: BLE001 - never break the user's process group setup
            report_failure("lightning: sharing the run with the other ranks", exc)
            return
        if not trainer.is_global_zero and ref is not None:
            self._start_rank_sampler(trainer, ref)

    def _start_rank_sampler(self, trainer: Any, ref: RunRef) -> None:
        run = attach_run(ref)
        sampler = start_system_sampler(_RankRun(run, trainer))
        if sampler is not None:
            self._rank_sampler = (sampler, run)

    def _stop_rank_sampler(self) -> None:
        pair, self._rank_sampler = self._rank_sampler, None
        if pair is not None:
            sampler, run = pair
            sampler.stop()
            run.flush()

    def _record_model_and_optimizers(self, trainer: Any, pl_module: Any) -> None:
        run = self._session.ensure_run()
        run.set_info("model", model_info(pl_module))
        plugin = getattr(trainer, "precision_plugin", None)
        scaler = getattr(plugin, "scaler", None)
        run.set_info("optimizer", optimizer_info(trainer.optimizers, pl_module, trainer.lr_scheduler_configs, scaler))
        if scaler is not None and scaler.is_enabled():
            self._scaler = scaler
        buffer = self._session.buffer
        self._loss = LossTracker(buffer)
        automatic = pl_module.automatic_optimization
        self._loss_scale = float(trainer.accumulate_grad_batches) if automatic else 1.0
        names = {id(p): n for n, p in pl_module.named_parameters()}
        keys = lr_keys(trainer.optimizers)
        multi = len(trainer.optimizers) > 1
        for i, opt in enumerate(trainer.optimizers):
            opt = getattr(opt, "optimizer", opt)
            tracker = None
            if self.log_grad_norm:
                params = [(names.get(id(p), f"opt{i}.param{j}"), p)
                          for j, p in enumerate(p for g in opt.param_groups for p in g["params"])]
                tracker = GradNormTracker(params, self._session.ensure_run(), per_layer_every=self.per_layer_every,
                                          per=self.per_layer,
                                          key=f"train/grad_norm/opt{i}" if multi else "train/grad_norm")
                self._session.flushers.append(tracker.flush)
            self._per_optimizer[id(opt)] = (tracker, ("train/loss", *keys[i]))  # one step's row: loss, rates

    def _record_data(self, trainer: Any) -> None:
        """Fingerprints of the train/val datasets that have a length."""
        run = self._session.ensure_run()
        for name, loaders in (("train", trainer.train_dataloader),
                              ("validation", getattr(trainer, "val_dataloaders", None))):
            if loaders is None:
                continue
            loader_list = loaders if isinstance(loaders, (list, tuple)) else [loaders]
            for j, loader in enumerate(loader_list):
                dataset = getattr(loader, "dataset", None)
                if dataset is None or not hasattr(dataset, "__len__"):
                    continue
                log_data(run, name if len(loader_list) == 1 else f"{name}{j}", dataset)

    def _add_loss(self, loss: torch.Tensor) -> None:
        if self._scaler is not None:  # AMP: Lightning hands hooks the scaled loss
            scale = getattr(self._scaler, "_scale", None)  # private, a device tensor: no sync (PRIVATE_ATTRIBUTES)
            if scale is not None:
                loss = loss.detach() / scale
        self._loss.add(loss, self._loss_scale)  # type: ignore[union-attr]

    def _record_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        step = trainer.global_step
        run = self._session.run
        run.step = step  # type: ignore[union-attr]
        if len(self._session.user_keys) != self._keys_seen:
            self._move_own_keys_aside()
        loss = self._loss.take() if self._loss is not None else None  # the first optimizer's step takes it
        entry = self._per_optimizer.get(id(optimizer))
        if entry is None:
            if loss is not None:
                self._session.buffer.add(self._loss.key, step, loss)  # type: ignore[union-attr]
            return
        tracker, keys = entry
        if tracker is not None:
            tracker.step(step)
        # loss and learning rates in one call (a rate that is a tensor stays on the device)
        self._session.buffer.add_step(step, keys, (loss, *[g["lr"] for g in optimizer.param_groups]))

    def _move_own_keys_aside(self) -> None:
        """The user logs keys autotrack writes too: autotrack's own series move to ``autotrack/...``."""
        session = self._session
        self._keys_seen = len(session.user_keys)
        if self._loss is not None:
            self._loss.key = session.key("train/loss")  # also the first key of each row below
        for opt_id, (tracker, keys) in list(self._per_optimizer.items()):
            if tracker is not None:
                tracker.key = session.key(tracker.key)
                aside = session.key("grad_norm/x") != "grad_norm/x"
                tracker.layer_prefix = ASIDE + "grad_norm/" if aside else "grad_norm/"
                tracker._names.clear()
            self._per_optimizer[opt_id] = (tracker, [session.key(k) for k in keys])

    def _poll_checkpoints(self, trainer: Any) -> None:
        signatures = self._ckpt_signatures
        for cb in self._ckpt_callbacks:
            sig = checkpoints.signature(cb)
            if signatures.get(id(cb)) != sig:
                signatures[id(cb)] = sig
                checkpoints.scan(self._session, cb, trainer.current_epoch, trainer.global_step)

    def _finish_fit(self, trainer: Any) -> None:
        self._poll_checkpoints(trainer)
        run = self._session.ensure_run()
        stoppers = [cb for cb in trainer.callbacks if isinstance(cb, EARLY_STOPPING)]
        if stoppers or self._ckpt_callbacks:
            config = {"trainer": _trainer_config(trainer), "stage": "fit"}
            if stoppers:
                config["early_stopping"] = [_early_stopping_info(cb) for cb in stoppers]
                run.log_params({f"early_stopping.{k}": v for k, v in config["early_stopping"][0].items()})
            config["model_checkpoint"] = [
                {"dirpath": cb.dirpath, "monitor": cb.monitor, "mode": cb.mode, "save_top_k": cb.save_top_k,
                 "best_model_path": cb.best_model_path,
                 "best_model_score": None if cb.best_model_score is None else float(cb.best_model_score)}
                for cb in self._ckpt_callbacks
            ]
            run.set_info("config", config)
        if self.log_model:
            self._log_final_weights(trainer, run)
        self._session.flush()
        if self.register_best_as is not None:
            self._register_best(trainer, run)

    def _register_best(self, trainer: Any, run: Run) -> None:
        """``register_best_as``: the best checkpoint of the first ModelCheckpoint with a monitor,
        else the final weights, as the model's next version."""
        monitored = [cb for cb in self._ckpt_callbacks if cb.monitor and cb.best_model_path]
        if monitored:
            if self._session._checkpoints is not None:
                self._session._checkpoints.wait()  # the best checkpoint's record is in the run
            artifact = os.path.basename(monitored[0].best_model_path)
            meta = self._probe.metadata(where="lightning: model signature") if self._probe is not None else {}
            if meta:  # the registered checkpoint gets the signature model.pt would have
                run.update_artifact(artifact, metadata=meta)
        else:
            if not self.log_model:
                self._log_final_weights(trainer, run)
            artifact = "model.pt"
        self.model_version = autotrack.register_model(self.register_best_as, run=run, artifact=artifact)

    def _log_final_weights(self, trainer: Any, run: Run) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.pt")
            with suspended():  # not a checkpoint for the plain-PyTorch autolog's torch.save patch
                torch.save(trainer.lightning_module.state_dict(), path)
            metadata = {"format": "torch state_dict", "load_with": "torch.load(path, weights_only=True)"}
            if self._probe is not None:
                metadata.update(self._probe.metadata(where="lightning: model signature"))
            run.log_artifact(path, "model.pt", "model", step=trainer.global_step, metadata=metadata)

    def _stop(self, status: str, error: BaseException | None) -> None:
        self._unwrap_logged_metrics()
        self._unwatch_user_keys()
        self._on = False
        reopened, self._reopened = self._reopened, None
        if reopened is not None:  # a stage after fit: the fit's run keeps its status
            stage, before = reopened
            run = self._session.run
            if error is not None and run is not None and not run.ended:
                run.set_tags({f"autotrack.{stage}_error": f"{type(error).__name__}: {error}"[:500]})
            status, error = before, None
            self._session.step_floor = 0
        self._session.end(status, error)

    # -- metrics the user logs with self.log ------------------------------------------------

    def _wrap_logged_metrics(self, trainer: Any) -> None:
        """Without an AutotrackLogger, see what Lightning hands its loggers (it computes that
        whether or not it has loggers) by wrapping ``log_metrics`` of this trainer's logger
        connector (private: ``PRIVATE_ATTRIBUTES``); undone in ``teardown``."""
        connector = getattr(trainer, "_logger_connector", None)
        original = getattr(connector, "log_metrics", None)
        if original is None or getattr(original, "__autotrack__", False):
            return
        session = self._session

        def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
            if metrics:
                record_user_metrics(session, trainer, metrics, step)
            return original(metrics, step)

        log_metrics.__autotrack__ = True  # type: ignore[attr-defined]
        connector.log_metrics = log_metrics
        self._wrapped_connector = connector

    def _unwrap_logged_metrics(self) -> None:
        connector, self._wrapped_connector = self._wrapped_connector, None
        if connector is not None and "log_metrics" in connector.__dict__:
            del connector.log_metrics


class _RankRun:
    """The run as a system sampler on a rank other than 0 sees it: keys become ``system/rank<r>/...``,
    steps are that rank's global step."""

    def __init__(self, run: Run, trainer: Any) -> None:
        self._run = run
        self._trainer = trainer
        self._prefix = f"system/rank{trainer.global_rank}/"

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def ended(self) -> bool:
        return self._run.ended

    @property
    def step(self) -> int:
        return self._trainer.global_step

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, time: float | None = None) -> None:
        prefix = self._prefix
        self._run.log_metrics({prefix + k.removeprefix("system/"): v for k, v in metrics.items()}, step=step, time=time)


def record_user_metrics(session: Session, trainer: Any, metrics: Mapping[str, Any], step: int | None) -> None:
    try:
        if step is None:
            if "step" in metrics:
                step = int(metrics["step"])
            else:
                step = trainer.fit_loop.epoch_loop._batches_that_stepped
        step = max(step, session.step_floor)  # a test after fit: at the fit's last step or later
        buffer = session.buffer
        for key, value in metrics.items():
            if key != "step":
                buffer.add(key, step, value if isinstance(value, torch.Tensor) else float(value))
    except Exception as exc:  # noqa: BLE001 - the user's call must go on
        report_failure("lightning: recording metrics logged with self.log", exc)


def _trainer_config(trainer: Any) -> dict[str, Any]:
    strategy = trainer.strategy
    clip = trainer.gradient_clip_algorithm
    return {
        "max_epochs": trainer.max_epochs,
        "min_epochs": trainer.min_epochs,
        "max_steps": trainer.max_steps,
        "precision": str(trainer.precision),
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "gradient_clip_val": trainer.gradient_clip_val,
        "gradient_clip_algorithm": getattr(clip, "value", clip),
        "accelerator": type(trainer.accelerator).__name__,
        "devices": trainer.num_devices,
        "device_ids": list(trainer.device_ids),
        "strategy": getattr(strategy, "strategy_name", None) or type(strategy).__name__,
        "num_nodes": trainer.num_nodes,
        "world_size": trainer.world_size,
        "val_check_interval": trainer.val_check_interval,
        "check_val_every_n_epoch": trainer.check_val_every_n_epoch,
        "log_every_n_steps": trainer.log_every_n_steps,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "benchmark": bool(torch.backends.cudnn.benchmark),
    }


def _early_stopping_info(cb: Any) -> dict[str, Any]:
    best = cb.best_score
    return {
        "monitor": cb.monitor,
        "mode": cb.mode,
        "patience": cb.patience,
        "min_delta": abs(float(cb.min_delta)),
        "stopped_epoch": cb.stopped_epoch,
        "wait_count": cb.wait_count,
        "best_score": None if best is None else float(best),
    }


