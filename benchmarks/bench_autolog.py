"""Plain PyTorch loop: bare vs `autotrack.autolog()`, interleaved, per-step medians, as a ratio.

    python benchmarks/bench_autolog.py [--steps 2000] [--reps 7]

The loop is a small MLP (64-256-256-10, batch 64) on the CPU with torch.set_num_threads(1), with
loss.backward(), clip_grad_norm_ and a StepLR, so every autolog hook fires at every step:
train/loss, train/grad_norm, train/lr, per-layer norms every 50 steps. Each repetition runs both
modes in shuffled order; the figure is the median over repetitions of the per-rep ratio of median
step times (after 200 warm-up steps).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import autotrack  # noqa: E402


def loop(steps: int) -> list[float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=500)
    x = torch.randn(steps, 64, 64)
    y = torch.randint(0, 10, (steps, 64))
    times = []
    perf = time.perf_counter
    for i in range(steps):
        t0 = perf()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        times.append(perf() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warm = min(200, args.steps // 4)
    with tempfile.TemporaryDirectory() as tmp:
        autotrack.set_store(tmp)
        medians: dict[str, list[float]] = {"bare": [], "autolog": []}
        ratios = []
        for _ in range(args.reps):
            order = ["bare", "autolog"]
            random.shuffle(order)
            rep = {}
            for mode in order:
                if mode == "autolog":
                    autotrack.autolog(system_metrics=False)
                times = loop(args.steps)
                if mode == "autolog":
                    from autotrack.integrations.torch import current_run

                    run = current_run()
                    autotrack.autolog(disable=True)
                    assert run is not None and run.ended
                    assert len(autotrack.get_run(run.id).metric("train/loss")) == args.steps
                rep[mode] = statistics.median(times[warm:])
                medians[mode].append(rep[mode])
            ratios.append(rep["autolog"] / rep["bare"])
    print(f"plain PyTorch loop, {args.steps} steps x {args.reps} reps (median step after {warm} warm-up steps)")
    for mode, values in medians.items():
        print(f"  {mode:8s} {1000 * statistics.median(values):.3f} ms/step")
    print(f"  autolog / bare: {statistics.median(ratios):.3f}x  (per-rep ratios {', '.join(f'{r:.3f}' for r in ratios)})"
          "  target <= 1.03x")


if __name__ == "__main__":
    main()
