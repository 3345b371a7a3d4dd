"""ModelCheckpoint saves as artifacts of kind ``checkpoint`` (new, rewritten, deleted, best)."""

from __future__ import annotations

import os
from typing import Any

from autotrack.integrations.lightning.session import Session


def last_saved(cb: Any) -> tuple[str, int | None]:
    """The path and global step of ModelCheckpoint's last save (private attributes: see
    ``PRIVATE_ATTRIBUTES`` in this package)."""
    path = getattr(cb, "_last_checkpoint_saved", "") or ""
    step = getattr(cb, "_last_global_step_saved", None)
    return path, step if isinstance(step, int) and step >= 0 else None


def saves_between_batches(cb: Any) -> bool:
    """Whether ``cb`` saves every N training steps or every time interval (private attributes)."""
    return bool(getattr(cb, "_every_n_train_steps", 0) or getattr(cb, "_train_time_interval", None))


def signature(cb: Any) -> tuple[Any, ...]:
    return (last_saved(cb)[1], cb.best_model_path, cb.last_model_path, len(cb.best_k_models), id(cb.current_score))


def scan(session: Session, cb: Any, epoch: int | None, fallback_step: int | None) -> None:
    """Record new or rewritten files of a ModelCheckpoint, mark the ones it deleted, flag the best."""
    recorder = session.checkpoints
    saved, step = last_saved(cb)
    candidates = dict.fromkeys([*cb.best_k_models, cb.best_model_path, cb.last_model_path, saved])
    if step is None:
        step = fallback_step
    if step is not None and step in session.save_epochs:
        epoch = session.save_epochs[step]
    for path in candidates:
        if not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        sig = (st.st_mtime_ns, st.st_size)
        before = session.seen_checkpoints.get(path)
        if before == sig:
            continue
        if before is not None:  # the same file written again (last.ckpt): the old record is gone
            recorder.update(os.path.basename(path), {"overwritten": True})
            recorder.mark_deleted(os.path.basename(path))
        session.seen_checkpoints[path] = sig
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
    for path in list(session.seen_checkpoints):
        if path not in candidates and not os.path.exists(path):
            del session.seen_checkpoints[path]
            recorder.mark_deleted(os.path.basename(path))
    previous = session.best.get(id(cb))
    if cb.best_model_path and previous != cb.best_model_path:
        if previous:
            recorder.update(os.path.basename(previous), {"best": False})
        session.best[id(cb)] = cb.best_model_path
