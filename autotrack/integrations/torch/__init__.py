"""PyTorch: the building blocks any PyTorch training shares (the Lightning callback uses them) and
the one-line autolog for plain PyTorch loops.

* :func:`model_info` -- section ``model``: module tree, parameter counts, shapes, dtypes, sizes.
* :func:`optimizer_info` -- section ``optimizer``: optimizers, param groups, schedulers, GradScaler.
* :class:`ScalarBuffer` -- 0-d tensors (losses, user metrics) reach the run without a host-device
  synchronisation inside the step: on an accelerator they are copied into a preallocated device
  buffer, copied out in one transfer every ``flush_every`` values, at ``run.flush()`` /
  ``autotrack.flush()`` -- or by a background thread once the oldest has waited
  ``base.MAX_AGE_S`` (0.1 s), so batching never weakens crash safety.
* :class:`GradNormTracker` -- ``train/grad_norm`` (global L2 norm of all gradients from one fused
  ``torch._foreach_norm`` per step) at every optimizer step, ``grad_norm/<name>`` every
  ``per_layer_every`` steps, and the first step with non-finite gradients; batched the same way.
* :class:`LossTracker` -- ``train/loss`` per optimizer step (the mean of the micro-batch losses
  accumulated since the previous step).
* :func:`lr_keys` -- ``train/lr`` (``train/lr/<group>``) keys of each param group.
* :class:`CheckpointRecorder` -- checkpoint files as artifacts of kind ``checkpoint``, hashed in a
  background thread, by reference unless ``copy=True``; :func:`load_weights`.
* :func:`autolog` -- the plain-PyTorch autolog (:mod:`.autologging`).

Modules: ``describe`` (sections), ``buffers``, ``checkpoints``, ``autologging``, ``data``
(fingerprints of tensors and datasets), ``seeds`` (the ``torch.manual_seed`` seed hook).

Private torch attributes used (each guarded by ``integrations/test_private_attributes.py``):

* ``GradScaler._scale`` -- the scale as a device tensor (``get_scale()`` synchronises);
* ``torch._foreach_norm`` -- one fused kernel for every gradient norm of a step.
"""

from __future__ import annotations

from autotrack.integrations.torch.autologging import autolog, current_run
from autotrack.integrations.torch.buffers import GradNormTracker, LossTracker, ScalarBuffer
from autotrack.integrations.torch.checkpoints import CheckpointRecorder, load_weights
from autotrack.integrations.torch.describe import (
    MAX_MODULES,
    MAX_PARAMETERS,
    MAX_REPR_CHARS,
    lr_keys,
    model_info,
    optimizer_info,
    parameter_names,
)

PRIVATE_ATTRIBUTES = ("torch.amp.GradScaler._scale", "torch._foreach_norm")

__all__ = [
    "MAX_MODULES",
    "MAX_PARAMETERS",
    "MAX_REPR_CHARS",
    "CheckpointRecorder",
    "GradNormTracker",
    "LossTracker",
    "ScalarBuffer",
    "autolog",
    "current_run",
    "load_weights",
    "lr_keys",
    "model_info",
    "optimizer_info",
    "parameter_names",
]
