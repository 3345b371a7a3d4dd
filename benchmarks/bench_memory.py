"""Memory autotrack adds, each figure from its own fresh process.

    python benchmarks/bench_memory.py [--steps 100000] [--queued 5000000]

Prints:
* peak RSS of a plain-PyTorch training loop of ``--steps`` optimizer steps (a 64-64-1 MLP on one
  fixed batch) bare and under ``autotrack.autolog()``, and the difference: what recording the run
  (loss, gradient norm and learning rate every step, per-layer norms every 50) costs in memory;
* RSS while ``--queued`` points wait behind a stalled store (another connection holds the SQLite
  database's write lock, so the writer cannot commit and keeps retrying), per queued point, and
  whether every point reached the disk once the lock was released.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TRAIN = textwrap.dedent("""
    import json, resource, sys, time
    mode, steps = sys.argv[1], int(sys.argv[2])
    import torch
    if mode == "autolog":
        import autotrack
        autotrack.autolog(system_metrics=False)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 64), torch.randn(32, 1)
    for _ in range(200):  # warm up the allocator and torch's lazy state first
        opt.zero_grad(); torch.nn.functional.mse_loss(model(x), y).backward(); opt.step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    elapsed = time.perf_counter() - t0
    if mode == "autolog":
        import autotrack
        autotrack.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kib": peak, "before_kib": before, "seconds": elapsed}))
""")

STALLED = textwrap.dedent("""
    import json, sqlite3, sys, time
    import psutil
    store, n = sys.argv[1], int(sys.argv[2])
    import autotrack
    autotrack.set_store(store)
    run = autotrack.start_run(name="stalled")
    run.log_metric("warm", 0.0, 0)
    run.flush()
    from autotrack.store.sqlite import DB_NAME
    lock = sqlite3.connect(f"{store}/{DB_NAME}", isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")  # the writer can no longer commit: its batches stay queued
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    for s in range(n):
        run.log_metric("train/loss", s * 1e-6, s)
    logging_s = time.perf_counter() - t0
    time.sleep(2.0)  # the writer has tried (and failed) at least once meanwhile
    rss1 = psutil.Process().memory_info().rss
    lock.execute("ROLLBACK")
    lock.close()
    t1 = time.perf_counter()
    ok = run.flush(timeout=600)
    drain_s = time.perf_counter() - t1
    run.end()
    stored = len(autotrack.get_run(run.id).metric("train/loss"))
    print(json.dumps({"rss_before": rss0, "rss_queued": rss1, "logging_s": logging_s, "drain_s": drain_s,
                      "flushed": ok, "stored": stored, "degraded": autotrack.get_run(run.id).degraded}))
""")


def _child(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "AUTOTRACK_CAPTURE": "0", "AUTOTRACK_SYSTEM_METRICS": "0"}
    with tempfile.TemporaryDirectory(prefix="autotrack-bench-mem-") as folder:
        env["AUTOTRACK_DIR"] = os.path.join(folder, "runs")
        out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True,
                             cwd=folder)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=5_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    print(f"plain PyTorch, {args.steps} optimizer steps; peak RSS (MiB), median of {args.reps} interleaved")
    peaks: dict[str, list[float]] = {"bare": [], "autolog": []}
    for _ in range(args.reps):
        for mode in peaks:
            r = _child(TRAIN, mode, str(args.steps))
            peaks[mode].append(r["peak_kib"] / 1024)
            print(f"  {mode:<8} peak {r['peak_kib'] / 1024:7.1f} MiB   ({r['seconds']:.1f} s of steps)", flush=True)
    med = {m: sorted(v)[len(v) // 2] for m, v in peaks.items()}
    print(f"  median: bare {med['bare']:.1f} MiB, autolog {med['autolog']:.1f} MiB, added {med['autolog'] - med['bare']:.1f} MiB")

    with tempfile.TemporaryDirectory(prefix="autotrack-bench-stall-") as folder:
        r = _child(STALLED, os.path.join(folder, "store"), str(args.queued))
    per_point = (r["rss_queued"] - r["rss_before"]) / args.queued
    print(f"\n{args.queued:,} points queued behind a stalled store:")
    print(f"  RSS added while queued: {(r['rss_queued'] - r['rss_before']) / 2**20:.0f} MiB ({per_point:.0f} bytes a point)")
    print(f"  logging took {r['logging_s']:.2f} s; after the lock was released the queue drained in {r['drain_s']:.1f} s")
    print(f"  stored afterwards: {r['stored']:,} of {args.queued:,} points (flushed: {r['flushed']}; degraded: {r['degraded']})")


if __name__ == "__main__":
    main()
