"""Overhead of recording scikit-learn fits: bare vs Tracked vs autolog vs MLflow's sklearn autolog.

    python benchmarks/bench_sklearn.py [--reps-lr 15] [--reps-rf 5] [--no-mlflow]

Data: make_classification(20,000 x 20). Models: LogisticRegression(max_iter=1000) and
RandomForestClassifier(n_estimators=50, n_jobs=1). Variants, interleaved rep by rep so that drift
on a shared machine hits them all alike:

* ``bare``: ``est.fit(X, y)``;
* ``tracked``, ``tracked_nomodel``: ``Tracked(est).fit`` with log_model on / off (each fit a run,
  ended and flushed to the store before the timer stops);
* ``autolog``: ``autotrack.integrations.sklearn.autolog()`` and a plain ``est.fit``;
* ``mlflow``, ``mlflow_nomodel``: ``mlflow.sklearn.autolog(log_models=True/False)`` in a separate
  worker process (its patches never touch this one), which times its own ``bare`` fit too so its
  ratio is against a baseline in the same process.

Prints medians (seconds), the ratio to the same process's bare median, and the added seconds.
On a shared machine the fit time itself wanders by more than the overhead, so for autotrack's
variants it also prints the *paired* overhead: wall time of the call minus the inner fit's own
time recorded in the same run (``train/fit_time``), median over reps. BLAS/OpenMP threads are
pinned to 1 in both processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(n_samples=20_000, n_features=20, n_informative=10, random_state=0)


def make_model(name: str):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "lr":
        return LogisticRegression(max_iter=1000)
    if name == "rf15":  # a fit of about 1 s here
        return RandomForestClassifier(n_estimators=15, n_jobs=1, random_state=0)
    return RandomForestClassifier(n_estimators=50, n_jobs=1, random_state=0)


NAMES = {"lr": "LogisticRegression", "rf15": "RandomForestClassifier(15)", "rf": "RandomForestClassifier(50)"}


# -- the MLflow worker: a separate process, commands on stdin, timings on stdout -----------------


def mlflow_worker() -> None:
    import warnings

    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)
    import mlflow
    import mlflow.sklearn

    folder = tempfile.mkdtemp(prefix="bench-mlflow-")
    os.chdir(folder)  # MLflow puts artifacts under ./mlruns: keep them out of the repository
    mlflow.set_tracking_uri("sqlite:///" + os.path.join(folder, "mlflow.db"))
    X, y = make_data()
    current = None
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        variant, model = line.split()
        if variant != current:
            if variant == "bare":
                mlflow.sklearn.autolog(disable=True)
            else:
                mlflow.sklearn.autolog(log_models=variant == "mlflow", silent=True)
            current = variant
        est = make_model(model)
        start = time.perf_counter()
        est.fit(X, y)
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


class MlflowWorker:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": ROOT, "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        json.loads(self._read())

    def _read(self) -> str:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the mlflow worker died")
            if line.startswith("{"):
                return line

    def fit(self, variant: str, model: str) -> float:
        self.proc.stdin.write(f"{variant} {model}\n")
        self.proc.stdin.flush()
        return json.loads(self._read())["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- the benchmark ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps-lr", type=int, default=15)
    parser.add_argument("--reps-rf", type=int, default=5)
    parser.add_argument("--reps-rf15", type=int, default=7)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mlflow_worker()
        return
    sys.path.insert(0, ROOT)
    import autotrack
    from autotrack.integrations import sklearn as at_sklearn
    from autotrack.integrations.sklearn import Tracked

    autotrack.set_store(tempfile.mkdtemp(prefix="bench-autotrack-"))
    capture = sys.modules.get("autotrack._capture")
    capture_on = capture is not None and os.environ.get("AUTOTRACK_CAPTURE") != "0"
    where = f"on, {os.path.dirname(capture.__file__)}" if capture_on else "off"
    print(f"autotrack from {os.path.dirname(autotrack.__file__)}; start-of-run capture: {where}")
    X, y = make_data()
    worker = None
    if not args.no_mlflow:
        try:
            import mlflow  # noqa: F401

            worker = MlflowWorker()
        except ImportError:
            print("mlflow is not installed: its columns are skipped")

    paired: dict[tuple[str, str], list[float]] = {}

    def run_here(variant: str, model: str) -> float:
        est = make_model(model)
        if variant == "autolog":
            at_sklearn.autolog(log_models=True)
        try:
            if variant.startswith("tracked"):
                est = Tracked(est, log_model=variant == "tracked")
            start = time.perf_counter()
            est.fit(X, y)
            wall = time.perf_counter() - start
        finally:
            if variant == "autolog":
                at_sklearn.autolog(disable=True)
        if variant != "bare":
            newest = autotrack.runs().sort_values("start")["id"].iloc[-1]
            inner = autotrack.get_run(newest).summary["train/fit_time"]
            paired.setdefault((model, variant), []).append(wall - inner)
        return wall

    here = ["bare", "tracked", "tracked_nomodel", "autolog"]
    there = ["bare", "mlflow", "mlflow_nomodel"] if worker else []
    results: dict[str, dict[str, list[float]]] = {}
    for model, reps in (("lr", args.reps_lr), ("rf15", args.reps_rf15), ("rf", args.reps_rf)):
        if reps <= 0:
            continue
        times: dict[str, list[float]] = {v: [] for v in here}
        times.update({f"mlflow-process:{v}": [] for v in there})
        run_here("tracked", model)  # warm-up: imports (skops.io: seconds, once), first store writes
        for key in [k for k in paired if k[0] == model]:
            del paired[key]  # the warm-up is not a rep
        if worker:
            worker.fit("mlflow", model)
        for _ in range(reps):
            for v in here:
                times[v].append(run_here(v, model))
            for v in there:
                times[f"mlflow-process:{v}"].append(worker.fit(v, model))
        results[model] = times
    if worker:
        worker.close()

    report = {}
    for model, times in results.items():
        med = {v: statistics.median(t) for v, t in times.items()}
        print(f"\n{NAMES[model]} on 20k x 20 ({len(next(iter(times.values())))} interleaved reps, medians)")
        print(f"  {'variant':<32}{'seconds':>9}{'ratio':>8}{'added s':>9}{'paired s':>10}{'paired %':>10}")
        rows = {}
        for v, m in med.items():
            base = med["mlflow-process:bare"] if v.startswith("mlflow-process") else med["bare"]
            rows[v] = {"median_s": m, "ratio": m / base, "added_s": m - base}
            line = f"  {v:<32}{m:>9.3f}{m / base:>8.2f}{m - base:>9.3f}"
            if (model, v) in paired:
                over = statistics.median(paired[(model, v)])
                rows[v]["paired_overhead_s"] = over
                line += f"{over:>10.3f}{100 * over / med['bare']:>9.1f}%"
            print(line)
        report[model] = rows
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
