"""Overhead of autotrack's Keras callback (torch backend) against a bare ``Model.fit``.

    KERAS_BACKEND=torch python benchmarks/bench_keras.py [--reps 5] [--epochs 3] [--rows 4096]

A 32-256-256-10 MLP, batch 64, ``--epochs`` epochs with a validation split, per measurement, in two
modes: ``bare`` and ``autotrack`` (``AutotrackCallback()``: per-batch loss and learning rate,
epoch metrics, sections, the saved ``.keras`` model). Repetitions are interleaved; figures are
medians over repetitions of:

* ``step_s``: the steady-state step time: the median time between the starts of two batches, from
  the second epoch on (a stamp callback, first in the list, runs in both modes; autotrack's batch
  hooks fall inside the interval);
* ``batch_hooks_s``: time inside autotrack's batch hooks per step (its direct cost per step);
* ``wall_s`` / ``cpu_s``: the whole ``fit`` (steady state plus a run's fixed costs: start capture,
  sections, saving the model).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import autotrack  # noqa: E402
from _ratios import interleaved, ratios  # noqa: E402
from autotrack.integrations.keras import AutotrackCallback  # noqa: E402


class Stamps(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.stamps: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.epoch >= 1:
            self.stamps.append(time.perf_counter())

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.epoch >= 1:
            self.stamps.append(float("nan"))  # the validation pass is no step


class TimedCallback(AutotrackCallback):
    """Adds up the time spent in autotrack's per-batch hooks: their direct cost on the training thread."""

    seconds = 0.0

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        start = time.perf_counter()
        super().on_train_batch_begin(batch, logs)
        self.seconds += time.perf_counter() - start

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        start = time.perf_counter()
        super().on_train_batch_end(batch, logs)
        self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steady on a shared machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    autotrack.set_store(Path(tempfile.mkdtemp(prefix="bench-keras-")))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, 32)).astype("float32")
    y = rng.integers(0, 10, args.rows)

    def fit(tracked: bool) -> dict[str, float]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        stamps = Stamps()
        ours = TimedCallback()
        callbacks = [stamps, ours] if tracked else [stamps]
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(X, y, batch_size=64, epochs=args.epochs, validation_split=0.1, verbose=0, callbacks=callbacks)
        steps = [b - a for a, b in zip(stamps.stamps, stamps.stamps[1:]) if a == a and b == b]
        out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
               "step_s": statistics.median(steps)}
        if tracked:
            out["batch_hooks_s"] = ours.seconds / (args.epochs * len(steps) / max(args.epochs - 1, 1))
        return out

    fit(False)  # warm-up
    samples = interleaved({"bare": lambda: fit(False), "autotrack": lambda: fit(True)}, args.reps)
    ratios(samples, f"Keras {keras.__version__} ({keras.backend.backend()}): 32-256-256-10 MLP, batch 64, "
                    f"{args.epochs} epochs of {args.rows} rows, {args.threads} torch thread(s), "
                    f"{args.reps} interleaved repetitions (medians; batch_hooks_s ratio: to bare's step_s)",
           base_for={"batch_hooks_s": "step_s"})


if __name__ == "__main__":
    main()
