"""Overhead of autotrack's LightGBM callback against a bare ``lgb.train`` in the same process.

    python benchmarks/bench_lightgbm.py [--reps 7] [--rounds 200] [--rows 20000]

One ``lgb.train`` of ``--rounds`` rounds on ``--rows`` x 20 with an eval set (a fifth of that size)
evaluated every round, ``num_threads=1``, per measurement, in three modes: ``bare``,
``autotrack`` (``AutotrackCallback(log_model=False)``) and ``autotrack+model`` (the text model
stored too). Start-of-run capture runs as a user gets it. Repetitions are interleaved in a shuffled
order; figures are medians over repetitions of:

* ``iter_s``: the steady-state iteration time (median time between two iterations, iterations 10
  to the end; a stamp callback runs in every mode, autotrack's hook included in the interval);
* ``wall_s`` / ``cpu_s``: the whole ``lgb.train`` call (CPU includes autotrack's writer thread),
  i.e. steady state plus the fixed costs of a run: start (capture of hardware, environment,
  source) and end (model text, importance);
* ``hooks_s``: the time spent inside autotrack's callback on the training thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import autotrack  # noqa: E402
from _ratios import interleaved, ratios  # noqa: E402
from autotrack.integrations.lightgbm import AutotrackCallback  # noqa: E402


class TimedCallback(AutotrackCallback):
    seconds = 0.0

    def __call__(self, env: Any) -> None:
        start = time.perf_counter()
        try:
            super().__call__(env)
        finally:
            self.seconds += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    autotrack.set_store(Path(tempfile.mkdtemp(prefix="bench-lgb-")))
    rng = np.random.default_rng(0)
    n_val = args.rows // 5
    X = rng.standard_normal((args.rows + n_val, 20))
    y = (X @ rng.standard_normal(20) + rng.standard_normal(len(X)) > 0).astype(float)
    params = {"objective": "binary", "num_threads": 1, "verbose": -1, "seed": 0, "max_bin": 63}

    def train(callback: TimedCallback | None) -> dict[str, float]:
        dtrain = lgb.Dataset(X[:args.rows], y[:args.rows], params={"max_bin": 63})
        dval = lgb.Dataset(X[args.rows:], y[args.rows:], reference=dtrain)
        stamps: list[float] = []

        def stamp(env: Any) -> None:
            stamps.append(time.perf_counter())

        stamp.order = 0  # type: ignore[attr-defined]
        wall, cpu = time.perf_counter(), time.process_time()
        lgb.train(params, dtrain, args.rounds, valid_sets=[dval], valid_names=["val"],
                  callbacks=[stamp, callback] if callback else [stamp])
        out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
               "iter_s": statistics.median(b - a for a, b in zip(stamps[10:], stamps[11:]))}
        if callback is not None:
            out["hooks_s"] = callback.seconds
        return out

    train(None)  # warm-up
    samples = interleaved({"bare": lambda: train(None),
                           "autotrack": lambda: train(TimedCallback(log_model=False)),
                           "autotrack+model": lambda: train(TimedCallback())}, args.reps)
    ratios(samples, f"lgb.train: {args.rounds} rounds, {args.rows} x 20 + eval set, num_threads=1, "
                    f"{args.reps} interleaved repetitions")


if __name__ == "__main__":
    main()
