"""Checkpoint files as artifacts of kind ``checkpoint``, and loading a run's weights safely."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from autotrack.integrations.base import (
    InvalidArgumentError,
    log_artifact_reference,
    record_missing_artifact,
    report_failure,
)

if TYPE_CHECKING:
    from autotrack import Run


# -- checkpoints ---------------------------------------------------------------------------------


class CheckpointRecorder:
    """Records checkpoint files as artifacts of kind ``checkpoint`` from a background thread.

    ``record`` returns at once; a worker thread hashes the file (or copies it into the store when
    ``copy=True``) and logs it. Updates (``mark_deleted``, ``update``) are queued behind the records
    they refer to, so they apply in order. :meth:`close` waits for the queue; it is registered as an
    end hook of the run, so the run never ends with a checkpoint still being hashed.
    """

    def __init__(self, run: Run, copy: bool = False) -> None:
        self.run = run
        self.copy = copy
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.missing: list[str] = []
        run.add_end_hook(lambda _run, _status: self.close())

    def record(self, path: str, name: str, *, step: int | None, metadata: Mapping[str, Any]) -> None:
        self._put(("record", (path, name, step, dict(metadata))))

    def update(self, name: str, metadata: Mapping[str, Any]) -> None:
        self._put(("update", (name, dict(metadata))))

    def mark_deleted(self, name: str) -> None:
        self._put(("deleted", (name,)))

    def _put(self, item: tuple[str, tuple[Any, ...]]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="autotrack-checkpoints", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._do(*item)
            except Exception as exc:  # noqa: BLE001 - reported, never raised into training
                try:
                    report_failure("recording a checkpoint", exc)
                except Exception:  # noqa: BLE001 - strict mode: keep the worker alive, remember it
                    self.error = exc
            finally:
                self._queue.task_done()

    error: BaseException | None = None

    def _do(self, action: str, args: tuple[Any, ...]) -> None:
        if self.run.ended:
            return
        if action == "record":
            path, name, step, metadata = args
            try:
                if self.copy:
                    self.run.log_artifact(path, name, "checkpoint", step=step, metadata=metadata)
                else:
                    log_artifact_reference(self.run, path, name, "checkpoint", step=step, metadata=metadata)
            except InvalidArgumentError:
                if os.path.exists(path):
                    raise
                # deleted before it could be hashed: keep the record (path, no sha256), marked deleted
                self.missing.append(path)
                record_missing_artifact(self.run, name, "checkpoint", path, step=step, metadata=metadata)
        elif action == "update":
            self.run.update_artifact(args[0], metadata=args[1])
        elif action == "deleted":
            self.run.update_artifact(args[0], deleted=True)

    def wait(self) -> None:
        """Block until every queued record and update is done."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def close(self) -> None:
        self.wait()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=30)
            self._thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def load_weights(run_id: str, name: str = "model.pt", *, store: Any = None) -> Any:
    """Load a weights artifact of a run (default: the final ``model.pt``) safely.

    The bytes are checked against the recorded sha256, then read with
    ``torch.load(..., weights_only=True)``: tensors and plain containers only, never arbitrary
    pickled objects, so a planted ``__reduce__`` payload cannot run.
    """
    import io

    from autotrack import get_run

    data = get_run(run_id, store=store).read_artifact(name)
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
