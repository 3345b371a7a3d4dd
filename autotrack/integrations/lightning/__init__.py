"""Lightning: ``Trainer(callbacks=[AutotrackCallback()])`` and ``Trainer(logger=AutotrackLogger())``.

Works with ``import lightning`` and ``import pytorch_lightning`` (both, when both are installed: the
classes derive from each installed package's base class). The callback and the logger may be used
together; they then write one run. Runs carry the tag ``autotrack.integration=lightning``.

Under DDP only global rank 0 records: one run, whose losses and gradient norms are rank 0's.

Keys never collide: when the LightningModule logs (``self.log``) a key the callback records too
(``train/loss``, ``train/grad_norm``, ``train/lr``, ``grad_norm/...``), the run keeps the user's
series under that key and the callback's own moves to ``autotrack/<key>``, with one warning naming
both keys.

Modules: ``callback``, ``logger``, ``session`` (the run both share), ``checkpoints``
(ModelCheckpoint saves), ``autologging``, ``seeds`` (the ``seed_everything`` seed hook).

Private Lightning/torch attributes used, where Lightning has no public API (each guarded by
``integrations/test_private_attributes.py``, which fails clearly when a release changes it):

* ``ModelCheckpoint._last_checkpoint_saved``, ``ModelCheckpoint._last_global_step_saved`` -- the
  path and step of the last save (``last_model_path`` is only the ``save_last`` file);
* ``ModelCheckpoint._every_n_train_steps``, ``ModelCheckpoint._train_time_interval`` -- whether it
  saves between batches;
* ``Trainer._logger_connector.log_metrics`` -- what Lightning hands its loggers, seen without an
  :class:`AutotrackLogger`;
* ``trainer.fit_loop.epoch_loop._batches_that_stepped`` -- the step Lightning logs at when it
  passes none;
* ``GradScaler._scale`` -- the AMP scale as a device tensor (``get_scale()`` synchronises).
"""

from __future__ import annotations

from autotrack.integrations.lightning.autologging import autolog
from autotrack.integrations.lightning.callback import AutotrackCallback
from autotrack.integrations.lightning.logger import AutotrackLogger

PRIVATE_ATTRIBUTES = (
    "ModelCheckpoint._last_checkpoint_saved",
    "ModelCheckpoint._last_global_step_saved",
    "ModelCheckpoint._every_n_train_steps",
    "ModelCheckpoint._train_time_interval",
    "Trainer._logger_connector.log_metrics",
    "Trainer.fit_loop.epoch_loop._batches_that_stepped",
    "GradScaler._scale",
)

__all__ = ["AutotrackCallback", "AutotrackLogger", "autolog"]
