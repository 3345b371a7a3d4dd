"""``Trainer(logger=AutotrackLogger())``: what Lightning hands its loggers, into an autotrack run."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from autotrack import Run
from autotrack.integrations.base import InvalidArgumentError, guarded
from autotrack.integrations.lightning import checkpoints
from autotrack.integrations.lightning._packages import LOGGER_BASES, rank_zero
from autotrack.integrations.lightning.session import Session, plain_hparams

try:
    from typing import override  # type: ignore[attr-defined]
except ImportError:  # Python < 3.12
    from typing_extensions import override


class AutotrackLogger(*LOGGER_BASES):  # type: ignore[misc]
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
        if run is not None and not isinstance(run, Run):
            raise InvalidArgumentError("run", run, "pass a Run from autotrack.start_run(), or None to start one")
        super().__init__()
        self._session = Session(run, name, experiment, tags, copy_checkpoints)

    @property
    @override
    def name(self) -> str:
        return "autotrack"

    @property
    @override
    def version(self) -> str:
        if not rank_zero():
            return ""
        return self._session.ensure_run().name

    @property
    @override
    def save_dir(self) -> str | None:
        return None

    @property
    def experiment(self) -> Run | None:
        """The run (None on ranks other than 0)."""
        if not rank_zero():
            return None
        return self._session.ensure_run()

    @property
    def run(self) -> Run | None:
        return self._session.run

    @override
    @guarded("lightning logger log_hyperparams")
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if rank_zero():
            hparams = plain_hparams(params)
            if hparams:
                self._session.ensure_run().log_params(hparams)

    @override
    @guarded("lightning logger log_metrics")
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not rank_zero():
            return
        buffer = self._session.buffer
        if "epoch" in metrics:
            self._session.last_epoch = int(metrics["epoch"])
        for key, value in metrics.items():
            buffer.add(key, step if step is not None else 0, value)  # the user's keys win (Session.claim)

    @override
    @guarded("lightning logger after_save_checkpoint")
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if rank_zero():
            checkpoints.scan(self._session, checkpoint_callback, self._session.last_epoch, None)

    @override
    @guarded("lightning logger finalize")
    def finalize(self, status: str) -> None:
        if not rank_zero() or self._session.run is None:
            return
        if status == "success":
            self._session.end("finished")
        else:
            error = sys.exc_info()[1]
            killed = isinstance(error, KeyboardInterrupt)
            self._session.end("killed" if killed else "failed", error)

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()  # the session drops its live handles itself
