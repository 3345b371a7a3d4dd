"""Overhead of autotrack's XGBoost callback, side by side with a bare run and MLflow's autolog.

    python benchmarks/bench_xgboost.py [--reps 7] [--rounds 200] [--rows 50000] [--nthread 1]

One ``xgb.train`` of ``--rounds`` rounds on ``--rows`` x ``--cols`` (plus an eval set of a fifth of
that size, evaluated every round) per measurement, in these modes:

* ``bare``               no tracking;
* ``autotrack``          ``AutotrackCallback(log_model=False)``;
* ``autotrack+model``    ``AutotrackCallback()`` (stores the UBJSON model);
* ``mlflow``, ``mlflow+model``  ``mlflow.xgboost.autolog(log_models=False/True)`` into a SQLite
  tracking store, when mlflow is importable. MLflow runs in a child process so that its patches
  never touch the other modes; that process also measures its own ``bare`` baseline.

autotrack runs with its defaults (start-of-run capture of hardware, environment, source and the
system-metrics sampler included), as a user gets it; ``--no-capture`` turns those off to isolate the
callback. Repetitions are interleaved (every repetition runs every mode, in a shuffled order) and each figure
is a median: wall time, and CPU time of the process (which includes autotrack's writer thread and is
steadier on a shared machine). Ratios are against ``bare`` in the same process. Run and tracking
stores live in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

ROOT = Path(__file__).resolve().parents[1]


def make_data(rows: int, cols: int) -> tuple[xgb.DMatrix, xgb.DMatrix]:
    rng = np.random.default_rng(0)
    n_val = rows // 5
    X = rng.standard_normal((rows + n_val, cols), dtype=np.float32)
    y = (X @ rng.standard_normal(cols) + rng.standard_normal(rows + n_val) > 0).astype(np.float32)
    return xgb.DMatrix(X[:rows], y[:rows]), xgb.DMatrix(X[rows:], y[rows:])


def timed_train(args: argparse.Namespace, dtrain: xgb.DMatrix, dval: xgb.DMatrix,
                callbacks: list[Any] | None) -> dict[str, float]:
    params = {"objective": "binary:logistic", "max_depth": 6, "nthread": args.nthread, "seed": 0}
    wall, cpu = time.perf_counter(), time.process_time()
    xgb.train(params, dtrain, args.rounds, evals=[(dval, "val")], verbose_eval=False, callbacks=callbacks)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


# -- the MLflow child process: reads a mode per line, answers with one JSON timing line ------------


def mlflow_worker(args: argparse.Namespace) -> None:
    import logging
    import warnings

    import mlflow
    import mlflow.xgboost

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{args.store}/mlflow.db")
    mlflow.search_runs(search_all_experiments=True)  # create the database before timing anything
    dtrain, dval = make_data(args.rows, args.cols)
    print("ready", flush=True)
    for line in sys.stdin:
        mode = line.strip()
        if mode == "bare":
            mlflow.xgboost.autolog(disable=True)
        else:
            mlflow.xgboost.autolog(log_models=mode == "mlflow+model", silent=True)
        print(json.dumps(timed_train(args, dtrain, dval, None)), flush=True)


class MlflowProcess:
    def __init__(self, args: argparse.Namespace, store: str) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--mlflow-worker", "--store", store, "--rows", str(args.rows),
                   "--cols", str(args.cols), "--rounds", str(args.rounds), "--nthread", str(args.nthread)]
        # cwd: MLflow puts its artifact folder (./mlruns) there
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=store)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def measure(self, mode: str) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(mode + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


# -- the benchmark --------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import autotrack
    from autotrack.integrations.xgboost import AutotrackCallback

    store = tempfile.mkdtemp(prefix="bench-xgb-")
    autotrack.set_store(Path(store) / "autotrack")
    dtrain, dval = make_data(args.rows, args.cols)
    class TimedCallback(AutotrackCallback):
        """Adds up the time spent inside autotrack's hooks: its direct cost on the training thread."""

        seconds = 0.0

        def before_training(self, model: Any) -> Any:
            return self._timed(super().before_training, model)

        def before_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return self._timed(super().before_iteration, model, epoch, evals_log)

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return self._timed(super().after_iteration, model, epoch, evals_log)

        def after_training(self, model: Any) -> Any:
            return self._timed(super().after_training, model)

        def _timed(self, hook: Callable[..., Any], *args: Any) -> Any:
            start = time.perf_counter()
            try:
                return hook(*args)
            finally:
                self.seconds += time.perf_counter() - start

    hooks: list[TimedCallback] = []

    def tracked(log_model: bool) -> list[Any]:
        hooks.append(TimedCallback(log_model=log_model))
        return hooks[-1:]

    here: dict[str, Callable[[], list[Any] | None]] = {
        "bare": lambda: None,
        "autotrack": lambda: tracked(False),
        "autotrack+model": lambda: tracked(True),
    }
    child = MlflowProcess(args, store) if find_spec("mlflow") and not args.no_mlflow else None
    modes = [("here", m) for m in here] + ([("mlflow", m) for m in ("bare", "mlflow", "mlflow+model")] if child else [])
    timed_train(args, dtrain, dval, None)  # warm-up (thread pools, first allocations)
    if child:
        child.measure("bare")
    samples: dict[tuple[str, str], list[dict[str, float]]] = {m: [] for m in modes}
    order = random.Random(0)
    for rep in range(args.reps):
        order.shuffle(modes)
        for process, mode in modes:
            if process == "here":
                sample = timed_train(args, dtrain, dval, here[mode]())
                if mode != "bare":
                    sample["hooks"] = hooks[-1].seconds
            else:
                sample = child.measure(mode)  # type: ignore[union-attr]
            samples[(process, mode)].append(sample)
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    if child:
        child.close()
    shutil.rmtree(store, ignore_errors=True)
    return report(args, samples)


def report(args: argparse.Namespace, samples: dict[tuple[str, str], list[dict[str, float]]]) -> dict[str, Any]:
    medians = {key: {kind: statistics.median(s.get(kind, 0.0) for s in runs) for kind in ("wall", "cpu", "hooks")}
               for key, runs in samples.items()}
    minima = {key: min(s["wall"] for s in runs) for key, runs in samples.items()}
    rows = []
    capture = "off" if args.no_capture else "on (autotrack's defaults)"
    print(f"\nxgb.train: {args.rounds} rounds, {args.rows} x {args.cols} + eval set {args.rows // 5} rows, "
          f"nthread={args.nthread}, {args.reps} interleaved repetitions (medians); start capture {capture}\n")
    print(f"{'mode':<17}{'process':<8}{'wall s':>8}{'cpu s':>8}{'min wall':>9}{'wall ratio':>11}{'cpu ratio':>10}"
          f"{'min ratio':>10}{'hooks s':>9}{'hooks/bare':>11}")
    for (process, mode), m in sorted(medians.items(), key=lambda kv: (kv[0][0] != "here", kv[0][1])):
        base = medians[(process, "bare")]
        row = {"mode": mode, "process": process, **m, "min_wall": minima[(process, mode)],
               "wall_ratio": m["wall"] / base["wall"], "cpu_ratio": m["cpu"] / base["cpu"],
               "min_wall_ratio": minima[(process, mode)] / minima[(process, "bare")],
               "hooks_ratio": m["hooks"] / base["wall"]}
        rows.append(row)
        hooks = f"{m['hooks']:>9.4f}{row['hooks_ratio']:>11.4f}" if process == "here" and mode != "bare" else ""
        print(f"{mode:<17}{process:<8}{m['wall']:>8.3f}{m['cpu']:>8.3f}{row['min_wall']:>9.3f}{row['wall_ratio']:>11.3f}"
              f"{row['cpu_ratio']:>10.3f}{row['min_wall_ratio']:>10.3f}{hooks}")
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "store"}
    return {"config": config, "results": rows}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--cols", type=int, default=30)
    parser.add_argument("--nthread", type=int, default=0, help="XGBoost threads (0: every core)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow comparison")
    parser.add_argument("--no-capture", action="store_true",
                        help="turn autotrack's start-of-run capture and system metrics off (the callback alone)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--mlflow-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.mlflow_worker:
        mlflow_worker(arguments)
    else:
        if arguments.no_capture:
            os.environ.update(AUTOTRACK_CAPTURE="0", AUTOTRACK_SYSTEM_METRICS="0")
        result = main(arguments)
        if arguments.json:
            arguments.json.write_text(json.dumps(result, indent=2))
