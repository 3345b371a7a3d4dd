"""What the callback and the logger of one training share: the run, its recorders, the key map."""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import autotrack
from autotrack.integrations.base import RunRef, RunSlot, attach_run, run_ref, warn_once
from autotrack.integrations.torch import CheckpointRecorder, ScalarBuffer

if TYPE_CHECKING:
    from autotrack import Run

INTEGRATION = "lightning"
#: Where autotrack's own series go when the user logs a key autotrack writes too.
ASIDE = "autotrack/"


def plain_hparams(params: Any) -> dict[str, Any]:
    if isinstance(params, Namespace):
        params = vars(params)
    return dict(params) if isinstance(params, Mapping) else {}


def own_key(key: str) -> bool:
    """Whether autotrack's callback writes ``key`` itself."""
    return key == "train/loss" or key.startswith(("train/grad_norm", "train/lr", "grad_norm/"))


class Session:
    """The run of one training (shared by the callback and the logger) and its recorders."""

    def __init__(self, run: Run | None, name: str | None, experiment: str | None,
                 tags: Mapping[str, Any] | None, copy_checkpoints: bool = False) -> None:
        self.slot = RunSlot(INTEGRATION, run, name=name, experiment=experiment, tags=tags)
        self._attached_ref: RunRef | None = None
        #: the run active where the trainer was pickled (ddp_spawn): the parent of a new run
        self._parent_ref: RunRef | None = None
        self._pickled_in: int | None = None
        self.copy_checkpoints = copy_checkpoints
        self._buffer: ScalarBuffer | None = None
        self._checkpoints: CheckpointRecorder | None = None
        self.flushers: list[Any] = []
        self.seen_checkpoints: dict[str, tuple[int, int]] = {}
        self.best: dict[int, str] = {}
        self.save_epochs: dict[int, int] = {}
        self.last_epoch: int | None = None
        #: keys the user logs that autotrack writes too: autotrack's own move to ASIDE + key
        self.user_keys: set[str] = set()
        #: the lowest step metrics are written at (a test stage writing into a fit's run: its last step)
        self.step_floor = 0

    @property
    def run(self) -> Run | None:
        return self.slot.run

    @run.setter
    def run(self, run: Run | None) -> None:
        self.slot.run = run

    @property
    def created(self) -> bool:
        return self.slot.created

    # pickling (ddp_spawn sends the trainer, with its callbacks and loggers, to new processes)
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        ref = self.ref()
        if ref is not None:
            state["_attached_ref"] = ref
        elif self.slot.run is None:
            state["_parent_ref"] = run_ref(autotrack.active_run())
        state["_pickled_in"] = os.getpid()
        slot = RunSlot(INTEGRATION, None)
        slot.kwargs = dict(self.slot.kwargs)
        state.update(slot=slot, _buffer=None, _checkpoints=None, flushers=[])
        return state

    def ref(self) -> RunRef | None:
        """What another process needs to write into this run (DDP ranks, spawned processes)."""
        return run_ref(self.slot.run)

    def ensure_run(self) -> Run:
        slot = self.slot
        if slot.run is None or ((slot.created or slot.hosted) and slot.run.ended):
            if self._attached_ref is not None:
                slot.run = attach_run(self._attached_ref)  # the parent process stays its owner
                slot.created = False
            else:
                parent = None
                if self._parent_ref is not None and self._pickled_in != os.getpid():
                    # a spawned process: the run belongs in the store and under the run of the
                    # process that launched it
                    if autotrack.get_store().location != self._parent_ref.store:
                        autotrack.set_store(self._parent_ref.store)
                    parent = self._parent_ref.id
                slot.get(parent=parent)
            self.reset_recorders()
        return slot.run  # type: ignore[return-value]

    def reset_recorders(self) -> None:
        """A new run: the batching buffer and the checkpoint recorder start afresh for it."""
        self._buffer = None
        self._checkpoints = None
        self.flushers = []

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

    # -- key collisions ---------------------------------------------------------------------

    def claim(self, key: str) -> None:
        """The user logs ``key``: if autotrack writes it too, autotrack's own series moves aside."""
        if key in self.user_keys or not own_key(key):
            return
        self.user_keys.add(key)
        warn_once(f"lightning key {key}", f"the LightningModule logs {key!r}, which autotrack also records; "
                  f"the run keeps your values under {key!r} and autotrack's own under {ASIDE + key!r}.")

    def key(self, key: str) -> str:
        """The key autotrack's own value of ``key`` is written under."""
        if not self.user_keys:
            return key
        if key in self.user_keys or (key.startswith("grad_norm/") and "train/grad_norm" in self.user_keys):
            return ASIDE + key
        return key

    def end(self, status: str, error: BaseException | None = None) -> None:
        run = self.slot.run
        if run is None or run.ended:
            return
        self.flush()
        if not self.slot.created and self._checkpoints is not None:
            self._checkpoints.close()
        self.slot.end(status, error)
