"""Start-up cost of autolog: whole tiny scripts as separate processes, plain vs ``autotrack run``
vs ``autotrack.autolog()`` at the script's top.

    python benchmarks/bench_startup.py [--reps 5] [--only sklearn,xgboost,torch]

Scripts: scikit-learn LogisticRegression on iris; XGBoost 20 rounds on 500 x 8; a plain torch
loop of 20 steps on a 2-layer MLP. Each repetition runs every (script, mode) once, in a shuffled
order, so that drift on a shared machine hits them all alike. Prints, per script and mode, the
median wall time of the whole process (interpreter start-up included), min-max, the ratio to
the plain median and the seconds added. The recorded run is included in the autolog modes
(start capture, the fit's metrics, the model file): that is what a user's script pays.
A second table runs the scripts with ``autolog(log_models=False)`` to show what storing the model
costs (skops' own import, ~0.5 s here, is paid by the first scikit-learn model stored).
BLAS/OpenMP threads are pinned to 1.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = {
    "sklearn": (
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X, y = load_iris(return_X_y=True)\n"
        "LogisticRegression(max_iter=300).fit(X, y)\n"
    ),
    "xgboost": (
        "import numpy as np\n"
        "import xgboost as xgb\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(500, 8)); y = (X[:, 0] > 0).astype(int)\n"
        "d = xgb.DMatrix(X, label=y)\n"
        "xgb.train({'objective': 'binary:logistic', 'nthread': 1}, d, 20, evals=[(d, 'train')], verbose_eval=False)\n"
    ),
    "torch": (
        "import torch\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "X, y = torch.randn(64, 8), torch.randn(64, 1)\n"
        "for _ in range(20):\n"
        "    opt.zero_grad(); loss = torch.nn.functional.mse_loss(model(X), y); loss.backward(); opt.step()\n"
    ),
}
MODES = ("plain", "autotrack run", "autolog()")


def _write(folder: Path, name: str, mode: str, log_models: bool) -> list[str]:
    body = SCRIPTS[name]
    if mode == "autolog()":
        body = f"import autotrack\nautotrack.autolog(log_models={log_models})\n" + body
    path = folder / f"{name}_{mode.replace(' ', '_').strip('()')}_{int(log_models)}.py"
    path.write_text(body)
    if mode == "autotrack run":
        return [sys.executable, "-m", "autotrack", "run", str(path)]
    return [sys.executable, str(path)]


def _time(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, check=False, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def bench(names: list[str], reps: int, log_models: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(folder / "store"),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("AUTOTRACK_DISABLE", None)
    modes = MODES if log_models else ("plain", "autolog()")  # `autotrack run` has no log_models switch
    jobs = {(n, m): _write(folder, n, m, log_models) for n in names for m in modes}
    for command in jobs.values():  # warm the file cache and .pyc files once
        _time(command, env, folder)
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    order = list(jobs)
    rng = random.Random(0)
    for rep in range(reps):
        rng.shuffle(order)
        for key in order:
            samples[key].append(_time(jobs[key], env, folder))
        print(f"repetition {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    print(f"\nwhole-process wall time, median of {reps} interleaved runs (log_models={log_models})\n")
    print(f"{'script':<10}{'mode':<16}{'median s':>10}{'min-max s':>16}{'ratio':>8}{'added s':>9}")
    for name in names:
        base = statistics.median(samples[(name, "plain")])
        for mode in modes:
            values = samples[(name, mode)]
            median = statistics.median(values)
            print(f"{name:<10}{mode:<16}{median:>10.3f}{f'{min(values):.2f}-{max(values):.2f}':>16}"
                  f"{median / base:>8.3f}{median - base:>+9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated scripts: sklearn,xgboost,torch")
    parser.add_argument("--no-model-table", action="store_true", help="skip the log_models=False table")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    for n in names:
        if n not in SCRIPTS:
            raise SystemExit(f"--only: unknown script {n!r}; choose from {', '.join(SCRIPTS)}")
    bench(names, args.reps, log_models=True)
    if not args.no_model_table:
        bench(names, args.reps, log_models=False)


if __name__ == "__main__":
    main()
