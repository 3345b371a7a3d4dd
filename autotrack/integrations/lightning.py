"""Lightning: ``Trainer(callbacks=[AutotrackCallback()])`` and ``Trainer(logger=AutotrackLogger())``.

Works with ``import lightning`` and ``import pytorch_lightning`` (both, when both are installed: the
classes derive from each installed package's base class). The callback and the logger may be used
together; they then write one run.

Under DDP only global rank 0 records: one run, whose losses and gradient norms are rank 0's.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from autotrack._patching import guarded, report_failure
from autotrack.integrations.torch import (
    CheckpointRecorder,
    GradNormTracker,
    LossTracker,
    ScalarBuffer,
    lr_keys,
    model_info,
    optimizer_info,
)

try:
    from typing import override  # type: ignore[attr-defined]
except ImportError:  # Python < 3.12
    from typing_extensions import override

_packages: list[Any] = []
try:
    import lightning.pytorch as _lightning

    _packages.append(_lightning)
except ImportError:
    pass
try:
    import pytorch_lightning as _pytorch_lightning

    _packages.append(_pytorch_lightning)
except ImportError:
    pass
if not _packages:
    from autotrack._errors import MissingDependencyError

    raise MissingDependencyError("lightning", "lightning", "the Lightning callback")

if TYPE_CHECKING:
    from autotrack import Run

_CALLBACK_BASES = tuple(p.Callback for p in _packages)
_LOGGER_BASES = tuple(p.loggers.Logger for p in _packages)
_MODEL_CHECKPOINT = tuple(p.callbacks.ModelCheckpoint for p in _packages)
_EARLY_STOPPING = tuple(p.callbacks.EarlyStopping for p in _packages)

__all__ = ["AutotrackCallback", "AutotrackLogger"]


def _rank_zero() -> bool:
    """True unless a Lightning strategy has marked this process as a non-zero global rank."""
    for mod in ("lightning.fabric.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m.rank_zero_only, "rank", 0) != 0:
            return False
    return True


def _plain_hparams(params: Any) -> dict[str, Any]:
    if isinstance(params, Namespace):
        params = vars(params)
    return dict(params) if isinstance(params, Mapping) else {}


class _Session:
    """What the callback and the logger of one training share: the run and its recorders."""

    def __init__(self, run: Run | None, name: str | None, experiment: str | None,
                 tags: Mapping[str, Any] | None, copy_checkpoints: bool = False) -> None:
        self.run = run
        self.created = False
        self._attached_ref: tuple[str, str, str, str, str | None] | None = None
        self.kwargs = {"name": name, "experiment": experiment, "tags": dict(tags) if tags else None}
        self.copy_checkpoints = copy_checkpoints
        self._buffer: ScalarBuffer | None = None
        self._checkpoints: CheckpointRecorder | None = None
        self.flushers: list[Any] = []
        self.seen_checkpoints: dict[str, tuple[int, int]] = {}
        self.best: dict[int, str] = {}
        self.save_epochs: dict[int, int] = {}
        self.last_epoch: int | None = None

    # pickling (ddp_spawn sends the trainer, with its callbacks and loggers, to new processes)
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        ref = self.ref()
        state.pop("run")
        if ref is not None:
            state["_attached_ref"] = ref
        state.update(run=None, created=False, _buffer=None, _checkpoints=None, flushers=[])
        return state

    def ref(self) -> tuple[str, str, str, str, str | None] | None:
        """What another process needs to write into this run (DDP ranks, spawned processes)."""
        run = self.run
        if run is None or run.ended:
            return None
        return (run.id, str(run.store.root), run.name, run.experiment, run.parent_id)

    def ensure_run(self) -> Run:
        if self.run is None or (self.created and self.run.ended):
            if self._attached_ref is not None:
                self.run = self._attach(self._attached_ref)
                self.created = False
            else:
                import autotrack

                self.run = autotrack.start_run(**self.kwargs)
                self.created = True
            self._buffer = None
            self._checkpoints = None
            self.flushers = []
        return self.run

    @staticmethod
    def _attach(ref: tuple[str, str, str, str, str | None]) -> Run:
        """In a spawned process: write to the run the parent process owns (it stays its owner)."""
        from autotrack._run import Run, _stores
        from autotrack._store import Store

        run_id, root, name, experiment, parent = ref
        store = _stores.get(root) or Store(root)
        return Run(store, run_id, name, experiment, parent)

    @property
    def buffer(self) -> ScalarBuffer:
        if self._buffer is None:
            run = self.ensure_run()
            self._buffer = ScalarBuffer(run)
            self.flushers.append(self._buffer.flush)
            run.add_end_hook(lambda _run, _status: self.flush())
        return self._buffer

    def flush(self) -> None:
        """Hand everything batched (losses, norms, metrics) to the run."""
        for flush in self.flushers:
            flush()

    @property
    def checkpoints(self) -> CheckpointRecorder:
        if self._checkpoints is None:
            self._checkpoints = CheckpointRecorder(self.ensure_run(), copy=self.copy_checkpoints)
        return self._checkpoints

    def scan_checkpoints(self, cb: Any, epoch: int | None, fallback_step: int | None) -> None:
        """Record new or rewritten files of a ModelCheckpoint, mark the ones it deleted, flag the best."""
        recorder = self.checkpoints
        saved = getattr(cb, "_last_checkpoint_saved", "") or ""
        candidates = dict.fromkeys([*cb.best_k_models, cb.best_model_path, cb.last_model_path, saved])
        step = getattr(cb, "_last_global_step_saved", None)
        if not isinstance(step, int) or step < 0:
            step = fallback_step
        if step is not None and step in self.save_epochs:
            epoch = self.save_epochs[step]
        for path in candidates:
            if not path:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            sig = (st.st_mtime_ns, st.st_size)
            before = self.seen_checkpoints.get(path)
            if before == sig:
                continue
            if before is not None:  # the same file written again (last.ckpt): the old record is gone
                recorder.update(os.path.basename(path), {"overwritten": True})
                recorder.mark_deleted(os.path.basename(path))
            self.seen_checkpoints[path] = sig
            score = cb.best_k_models.get(path)
            if score is None and path == saved:
                score = cb.current_score
            metadata = {
                "path": os.path.abspath(path),
                "epoch": epoch,
                "global_step": step,
                "monitor": cb.monitor,
                "score": None if score is None else float(score),
                "best": path == cb.best_model_path,
                "last": path == cb.last_model_path,
            }
            recorder.record(path, os.path.basename(path), step=step, metadata=metadata)
        for path in list(self.seen_checkpoints):
            if path not in candidates and not os.path.exists(path):
                del self.seen_checkpoints[path]
                recorder.mark_deleted(os.path.basename(path))
        previous = self.best.get(id(cb))
        if cb.best_model_path and previous != cb.best_model_path:
            if previous:
                recorder.update(os.path.basename(previous), {"best": False})
            self.best[id(cb)] = cb.best_model_path

    def end(self, status: str, error: BaseException | None = None) -> None:
        run = self.run
        if run is None or run.ended:
            return
        self.flush()
        if self.created:
            run.end(status, error=error)  # type: ignore[arg-type]
        else:
            if self._checkpoints is not None:
                self._checkpoints.close()
            run.flush()


# -- the callback --------------------------------------------------------------------------------


class AutotrackCallback(*_CALLBACK_BASES):  # type: ignore[misc]
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
            first ModelCheckpoint with a ``monitor`` as that model's next version
            (``autotrack.register_model``); the version is in ``callback.model_version``.

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
        from autotrack import Run
        from autotrack._errors import InvalidArgumentError

        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError("run", run, "pass a Run from autotrack.start_run(), or None to start one")
        if not isinstance(per_layer_every, int) or per_layer_every < 0:
            raise InvalidArgumentError("per_layer_every", per_layer_every, "pass a whole number >= 0 (0 turns it off)")
        if per_layer not in ("parameter", "module"):
            raise InvalidArgumentError("per_layer", per_layer, "choose 'parameter' or 'module'")
        self._session = _Session(run, name, experiment, tags, copy_checkpoints)
        self.log_grad_norm = log_grad_norm
        self.per_layer_every = per_layer_every
        self.per_layer = per_layer
        self._on = False
        self._rank_sampler: tuple[Any, Run] | None = None
        self._framework_ctx: Any = None
        self.log_model = log_model
        if register_best_as is not None and not isinstance(register_best_as, str):
            raise InvalidArgumentError("register_best_as", register_best_as, "pass a model name (str), or None")
        self.register_best_as = register_best_as
        self.model_version: Any = None
        self._reset()

    def _reset(self) -> None:
        self._per_optimizer: dict[int, tuple[GradNormTracker | None, list[str]]] = {}
        self._loss: LossTracker | None = None
        self._loss_scale = 1.0
        self._scaler: Any = None
        self._ckpt_callbacks: list[Any] = []
        self._step_checkpointing = False
        self._ckpt_signatures: dict[int, tuple[Any, ...]] = {}
        self._wrapped_connector: Any = None
        self._fit_done = False
        self._best_checkpoint: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_per_optimizer={}, _loss=None, _scaler=None, _ckpt_callbacks=[],
                     _wrapped_connector=None, _on=False, _rank_sampler=None, _framework_ctx=None, model_version=None)
        return state

    @property
    def run(self) -> Run | None:
        """The run being written (None before training starts, and on ranks other than 0)."""
        return self._session.run

    # -- hooks (thin; each hands off to one method) ---------------------------------------

    @override
    @guarded("lightning callback setup")
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._enter_framework_recording()
        try:
            self._start(trainer, pl_module, stage)
        finally:  # every rank must reach the broadcast, whatever happened on rank 0
            if trainer.world_size > 1:
                self._share_run_with_ranks(trainer)

    @override
    @guarded("lightning callback on_fit_start")
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._record_model_and_optimizers(trainer, pl_module)

    @override
    @guarded("lightning callback on_train_start")
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._record_data(trainer)

    @override
    @guarded("lightning callback on_train_epoch_start")
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._session.ensure_run().log_metric("epoch", trainer.current_epoch, step=trainer.global_step)
            if self._ckpt_callbacks:  # saves of the previous epoch's end, before any can be deleted
                self._poll_checkpoints(trainer)

    @override
    @guarded("lightning callback on_before_backward")
    def on_before_backward(self, trainer: Any, pl_module: Any, loss: torch.Tensor) -> None:
        if self._on and self._loss is not None:
            self._add_loss(loss)

    @override
    @guarded("lightning callback on_before_optimizer_step")
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self._on:
            self._record_step(trainer, pl_module, optimizer)

    @override
    @guarded("lightning callback on_train_batch_end")
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._step_checkpointing:
            self._poll_checkpoints(trainer)

    @override
    @guarded("lightning callback on_save_checkpoint")
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self._on:
            self._session.save_epochs[trainer.global_step] = trainer.current_epoch

    @override
    @guarded("lightning callback on_train_epoch_end")
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._ckpt_callbacks:
            self._poll_checkpoints(trainer)

    @override
    @guarded("lightning callback on_validation_start")
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self._ckpt_callbacks:
            self._poll_checkpoints(trainer)

    @override
    @guarded("lightning callback on_validation_end")
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._ckpt_callbacks:
            self._poll_checkpoints(trainer)

    @override
    @guarded("lightning callback on_fit_end")
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._on:
            self._finish_fit(trainer)

    @override
    @guarded("lightning callback teardown")
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._exit_framework_recording()
        self._stop_rank_sampler()
        if self._on:
            run = self.run
            self._stop("finished", None)
            self._register_best(run)

    @override
    @guarded("lightning callback on_exception")
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._exit_framework_recording()
        self._stop_rank_sampler()
        if self._on:
            self._poll_checkpoints(trainer)
            self._stop("killed" if isinstance(exception, KeyboardInterrupt) else "failed", exception)

    # -- what the hooks do ----------------------------------------------------------------

    def _start(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._reset()
        self._on = bool(trainer.is_global_zero)
        if not self._on:
            return
        for logger in trainer.loggers:
            if isinstance(logger, AutotrackLogger):
                if logger._session.run is None and self._session.run is not None and not self._session.created:
                    logger._session.run = self._session.run
                self._session = logger._session
                break
        else:
            self._wrap_logged_metrics(trainer)
        run = self._session.ensure_run()
        run.step = trainer.global_step
        config = _trainer_config(trainer)
        run.set_info("config", {"trainer": config, "stage": stage})
        run.log_params({f"trainer.{k}": v for k, v in config.items()})
        hparams = _plain_hparams(getattr(pl_module, "hparams", {}))
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            hparams.update(_plain_hparams(getattr(datamodule, "hparams", {})))
        if hparams:
            run.log_params(hparams)
        self._ckpt_callbacks = [cb for cb in trainer.callbacks if isinstance(cb, _MODEL_CHECKPOINT)]
        # only checkpoints saved between training batches need a look after every batch
        self._step_checkpointing = any(getattr(cb, "_every_n_train_steps", 0) or getattr(cb, "_train_time_interval", None)
                                       for cb in self._ckpt_callbacks)

    def _enter_framework_recording(self) -> None:
        """While this callback records, the plain-PyTorch autolog's global optimizer hooks stay out
        (on every rank), so a training is never recorded twice."""
        if self._framework_ctx is not None:
            return
        try:
            from autotrack.integrations._torch_autolog import framework_recording  # type: ignore[import-not-found]
        except ImportError:
            return
        ctx = framework_recording()
        ctx.__enter__()
        self._framework_ctx = ctx

    def _exit_framework_recording(self) -> None:
        ctx, self._framework_ctx = self._framework_ctx, None
        if ctx is not None:
            ctx.__exit__(None, None, None)

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

    def _start_rank_sampler(self, trainer: Any, ref: tuple[str, str, str, str, str | None]) -> None:
        try:
            from autotrack._capture import settings  # type: ignore[attr-defined]
            from autotrack._capture.system import SystemSampler  # type: ignore[import-not-found]
        except ImportError:
            return
        config = settings()
        if not config.enabled or not config.system_metrics:
            return
        run = _Session._attach(ref)
        sampler = SystemSampler(_RankRun(run, trainer), config.system_metrics)  # type: ignore[arg-type]
        sampler.start()
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
            self._per_optimizer[id(opt)] = (tracker, keys[i])

    def _record_data(self, trainer: Any) -> None:
        """Fingerprints of the train/val datasets that have a length, when the capture module
        (``autotrack._capture.log_data``) is available."""
        try:
            from autotrack._capture import log_data  # type: ignore[attr-defined]
        except ImportError:
            return
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
                _call_log_data(log_data, run, name if len(loader_list) == 1 else f"{name}{j}", dataset)

    def _add_loss(self, loss: torch.Tensor) -> None:
        if self._scaler is not None:  # AMP: Lightning hands hooks the scaled loss
            scale = getattr(self._scaler, "_scale", None)  # a device tensor: dividing costs no sync
            if scale is not None:
                loss = loss.detach() / scale
        self._loss.add(loss, self._loss_scale)  # type: ignore[union-attr]

    def _record_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        step = trainer.global_step
        run = self._session.run
        run.step = step  # type: ignore[union-attr]
        if self._loss is not None:
            self._loss.step(step)
        entry = self._per_optimizer.get(id(optimizer))
        if entry is None:
            return
        tracker, keys = entry
        if tracker is not None:
            tracker.step(step)
        log = run.log_metric  # type: ignore[union-attr]
        for key, group in zip(keys, optimizer.param_groups):
            lr = group["lr"]
            log(key, lr if type(lr) is float else float(lr), step)

    def _poll_checkpoints(self, trainer: Any) -> None:
        signatures = self._ckpt_signatures
        for cb in self._ckpt_callbacks:
            sig = (getattr(cb, "_last_global_step_saved", None), cb.best_model_path, cb.last_model_path,
                   len(cb.best_k_models), id(cb.current_score))
            if signatures.get(id(cb)) != sig:
                signatures[id(cb)] = sig
                self._session.scan_checkpoints(cb, trainer.current_epoch, trainer.global_step)

    def _finish_fit(self, trainer: Any) -> None:
        self._poll_checkpoints(trainer)
        run = self._session.ensure_run()
        stoppers = [cb for cb in trainer.callbacks if isinstance(cb, _EARLY_STOPPING)]
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
        monitored = [cb for cb in self._ckpt_callbacks if cb.monitor and cb.best_model_path]
        self._best_checkpoint = monitored[0].best_model_path if monitored else None
        self._fit_done = True
        self._session.flush()

    def _register_best(self, run: Run | None) -> None:
        """Issue 18: register the best checkpoint (its run has ended or been flushed)."""
        if self.register_best_as is None or run is None or not self._fit_done:
            return
        import autotrack
        from autotrack import InvalidArgumentError

        if self._best_checkpoint is None:
            raise InvalidArgumentError(
                "register_best_as", self.register_best_as, "no ModelCheckpoint with a monitor saved a best "
                "checkpoint; add ModelCheckpoint(monitor='val_loss') to the Trainer's callbacks. HINT: did you call "
                "`self.log('val_loss', value)`?")
        self.model_version = autotrack.register_model(self.register_best_as, run=run,
                                                      artifact=os.path.basename(self._best_checkpoint))

    def _log_final_weights(self, trainer: Any, run: Run) -> None:
        import tempfile

        from autotrack._patching import suspended

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.pt")
            with suspended():  # not a checkpoint for the plain-PyTorch autolog's torch.save patch
                torch.save(trainer.lightning_module.state_dict(), path)
            run.log_artifact(path, "model.pt", "model", step=trainer.global_step,
                             metadata={"format": "torch state_dict", "load_with": "torch.load(path, weights_only=True)"})

    def _stop(self, status: str, error: BaseException | None) -> None:
        self._unwrap_logged_metrics()
        self._on = False
        self._session.end(status, error)

    # -- metrics the user logs with self.log ------------------------------------------------

    def _wrap_logged_metrics(self, trainer: Any) -> None:
        """Without an AutotrackLogger, see what Lightning hands its loggers (it computes that
        whether or not it has loggers) by wrapping ``log_metrics`` of this trainer's logger
        connector; undone in ``teardown``."""
        connector = getattr(trainer, "_logger_connector", None)
        original = getattr(connector, "log_metrics", None)
        if original is None or getattr(original, "__autotrack__", False):
            return
        session = self._session

        def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
            if metrics:
                _record_user_metrics(session, trainer, metrics, step)
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


def _record_user_metrics(session: _Session, trainer: Any, metrics: Mapping[str, Any], step: int | None) -> None:
    try:
        if step is None:
            if "step" in metrics:
                step = int(metrics["step"])
            else:
                step = trainer.fit_loop.epoch_loop._batches_that_stepped
        buffer = session.buffer
        for key, value in metrics.items():
            if key != "step":
                buffer.add(key, step, value if isinstance(value, torch.Tensor) else float(value))
    except Exception as exc:  # noqa: BLE001 - the user's call must go on
        report_failure("lightning: recording metrics logged with self.log", exc)


def _call_log_data(log_data: Any, run: Run, name: str, dataset: Any) -> None:
    """``log_data(run, name, obj)``, matched by parameter name so either argument order works."""
    import inspect

    kwargs: dict[str, Any] = {}
    placed = False
    for pname, p in inspect.signature(log_data).parameters.items():
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        if pname == "run":
            kwargs[pname] = run
        elif pname == "name":
            kwargs[pname] = name
        elif not placed and p.default is p.empty:
            kwargs[pname] = dataset
            placed = True
    log_data(**kwargs)


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


# -- the logger ----------------------------------------------------------------------------------


class AutotrackLogger(*_LOGGER_BASES):  # type: ignore[misc]
    """A Lightning Logger writing to an autotrack run: ``Trainer(logger=AutotrackLogger())``.

    Args: ``run`` (an existing run, never ended by the logger), else ``name``, ``experiment``,
    ``tags`` for the run it starts lazily on global rank 0; ``copy_checkpoints``.

    Logs: ``log_hyperparams`` -> params; ``log_metrics`` -> every metric Lightning hands it
    (what the user logs with ``self.log``, and ``epoch``) at Lightning's step; each checkpoint
    ModelCheckpoint saves -> an artifact of kind ``checkpoint``. Add :class:`AutotrackCallback` for
    losses, gradient norms, learning rates and the model/optimizer sections: both then write one run.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        experiment: str | None = None,
        tags: Mapping[str, Any] | None = None,
        copy_checkpoints: bool = False,
    ) -> None:
        from autotrack import Run
        from autotrack._errors import InvalidArgumentError

        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError("run", run, "pass a Run from autotrack.start_run(), or None to start one")
        super().__init__()
        self._session = _Session(run, name, experiment, tags, copy_checkpoints)

    @property
    @override
    def name(self) -> str:
        return "autotrack"

    @property
    @override
    def version(self) -> str:
        if not _rank_zero():
            return ""
        return self._session.ensure_run().name

    @property
    @override
    def save_dir(self) -> str | None:
        return None

    @property
    def experiment(self) -> Run | None:
        """The run (None on ranks other than 0)."""
        if not _rank_zero():
            return None
        return self._session.ensure_run()

    @property
    def run(self) -> Run | None:
        return self._session.run

    @override
    @guarded("lightning logger log_hyperparams")
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if _rank_zero():
            hparams = _plain_hparams(params)
            if hparams:
                self._session.ensure_run().log_params(hparams)

    @override
    @guarded("lightning logger log_metrics")
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not _rank_zero():
            return
        buffer = self._session.buffer
        if "epoch" in metrics:
            self._session.last_epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            buffer.add(key, step if step is not None else 0, value)

    @override
    @guarded("lightning logger after_save_checkpoint")
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if _rank_zero():
            self._session.scan_checkpoints(checkpoint_callback, self._session.last_epoch, None)

    @override
    @guarded("lightning logger finalize")
    def finalize(self, status: str) -> None:
        if not _rank_zero() or self._session.run is None:
            return
        if status == "success":
            self._session.end("finished")
        else:
            error = sys.exc_info()[1]
            killed = isinstance(error, KeyboardInterrupt)
            self._session.end("killed" if killed else "failed", error)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()  # the session drops its live handles itself


# -- autolog -------------------------------------------------------------------------------------


def autolog(*, disable: bool = False, grad_norm_every: int = 50, log_models: bool = True) -> None:
    """Give every Lightning ``Trainer`` created from now on an :class:`AutotrackCallback` (unless it
    has one already); ``autotrack.autolog()`` calls this when Lightning is imported. Each ``fit``
    then starts (and ends) its own run. ``disable=True`` undoes it."""
    from autotrack._patching import patch, unpatch

    if disable:
        unpatch("lightning")
        return
    options = {"per_layer_every": grad_norm_every, "log_model": log_models}

    def init(original: Any, trainer: Any, *args: Any, **kwargs: Any) -> None:
        original(trainer, *args, **kwargs)
        _add_callback(trainer, options)

    for package in _packages:
        patch("lightning", package.Trainer, "__init__", init)


def _add_callback(trainer: Any, options: dict[str, Any]) -> None:
    if not any(isinstance(cb, AutotrackCallback) for cb in trainer.callbacks):
        trainer.callbacks.append(AutotrackCallback(**options))
