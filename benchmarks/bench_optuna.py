"""What recording an Optuna study costs per trial.

    python benchmarks/bench_optuna.py [--trials 200] [--reps 7]

Each repetition runs, in a shuffled order, the same study (TPESampler with a seed, one float and
one categorical param, five reported intermediate values per trial, a trivial objective so that
only the tracking shows) three ways: bare ``study.optimize``; with ``AutotrackCallback()``; under
``autotrack.autolog()`` (each trial's run started before the objective and active inside it).
Prints the median wall time per trial and the added milliseconds per trial against bare
(target: < 5 ms). Each mode writes to its own fresh local store.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

import autotrack  # noqa: E402
from _ratios import interleaved  # noqa: E402
from autotrack.integrations import optuna as at_optuna  # noqa: E402


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    value = 0.0
    for step in range(5):
        value = (x - 2) ** 2 + (step if kind == "a" else 0.5 * step)
        trial.report(value, step)
    return value


def one(mode: str, trials: int) -> dict[str, float]:
    autotrack.set_store(tempfile.mkdtemp(prefix=f"bench-optuna-{mode}-"))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=trials))
    callbacks = [at_optuna.AutotrackCallback()] if mode == "callback" else None
    if mode == "autolog":
        at_optuna.autolog()
    t0 = time.perf_counter()
    try:
        study.optimize(objective, n_trials=trials, callbacks=callbacks)
        if callbacks:
            callbacks[0].end()
        autotrack.flush()
    finally:
        if mode == "autolog":
            at_optuna.autolog(disable=True)
    return {"ms_per_trial": (time.perf_counter() - t0) * 1000 / trials}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    one("callback", 5)  # warm imports and the store code once
    modes = {m: (lambda m=m: one(m, args.trials)) for m in ("bare", "callback", "autolog")}
    samples = interleaved(modes, args.reps)
    medians = {m: statistics.median(s["ms_per_trial"] for s in runs) for m, runs in samples.items()}
    print(f"\n{args.trials} trials (random sampling, 5 reported values each), median of {args.reps} interleaved reps")
    for mode, ms in medians.items():
        spread = [s["ms_per_trial"] for s in samples[mode]]
        extra = "" if mode == "bare" else f"   +{ms - medians['bare']:.2f} ms/trial over bare (target < 5)"
        print(f"  {mode:<9} {ms:7.2f} ms/trial (min {min(spread):.2f}, max {max(spread):.2f}){extra}")


if __name__ == "__main__":
    main()
