"""Cost of the framework-free capture.

    python benchmarks/bench_capture.py [--sampler-seconds 16]

Prints:
* capture at run start (hardware, environment with every installed package, source with git and
  the entry script, seeds): ``start_run`` time with capture minus ``start_run`` time with
  ``AUTOTRACK_CAPTURE=0`` in the same process, for the first run of a fresh process (cold: imports
  psutil, scans packages, tries NVML) and for later runs (warm), plus the time of each part.
  Target: < 300 ms.
* the system-metrics sampler's CPU cost as a fraction of one core at the default 5 s interval,
  measured as the sampler thread's own CPU time (``time.thread_time``) per sample, divided by the
  interval; and confirmed over a real run at the default interval. Target: < 1 %.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's autotrack, whatever is installed

COLD = r"""
import json, os, sys, time
os.environ["AUTOTRACK_SYSTEM_METRICS"] = "0"
import autotrack
autotrack.set_store(sys.argv[1])
os.environ["AUTOTRACK_CAPTURE"] = "0"
t = time.perf_counter(); r = autotrack.start_run(); base = time.perf_counter() - t; r.end()
os.environ["AUTOTRACK_CAPTURE"] = "1"
t = time.perf_counter(); r = autotrack.start_run(); full = time.perf_counter() - t; r.end()
print(json.dumps({"base": base, "full": full}))
"""


def cold(store: Path, repeats: int) -> list[float]:
    out = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(repeats):
        res = subprocess.run([sys.executable, "-c", COLD, str(store / f"cold{i}")], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        d = json.loads(res.stdout.strip().splitlines()[-1])
        out.append((d["full"] - d["base"]) * 1000)
    return out


def warm(store: Path, repeats: int) -> tuple[list[float], dict[str, float]]:
    import autotrack
    from autotrack._capture.environment import capture_environment
    from autotrack._capture.hardware import capture_hardware
    from autotrack._capture.source import capture_source

    autotrack.set_store(store / "warm")
    os.environ["AUTOTRACK_SYSTEM_METRICS"] = "0"
    with autotrack.start_run():  # first run: caches, store creation
        pass
    deltas = []
    for _ in range(repeats):
        os.environ["AUTOTRACK_CAPTURE"] = "0"
        t = time.perf_counter()
        r = autotrack.start_run()
        base = time.perf_counter() - t
        r.end()
        os.environ["AUTOTRACK_CAPTURE"] = "1"
        t = time.perf_counter()
        r = autotrack.start_run()
        full = time.perf_counter() - t
        r.end()
        deltas.append((full - base) * 1000)
    parts = {}
    for name, fn in (("hardware", capture_hardware), ("environment (packages cached)", capture_environment),
                     ("source (git + script)", capture_source)):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        parts[name] = statistics.median(times)
    return deltas, parts


def sampler_cost(store: Path, seconds: float) -> dict[str, float]:
    import autotrack
    from autotrack import _capture

    os.environ.pop("AUTOTRACK_CAPTURE", None)
    # many samples at a short interval: CPU time per sample
    os.environ["AUTOTRACK_SYSTEM_METRICS"] = "0.05"
    autotrack.set_store(store / "sampler")
    run = autotrack.start_run()
    sampler = _capture.sampler_for(run)
    while sampler.samples < 60:
        time.sleep(0.05)
    run.end()
    per_sample = sampler.cpu_seconds / sampler.samples
    # a real run at the default interval
    os.environ.pop("AUTOTRACK_SYSTEM_METRICS", None)
    _capture.configure()
    run = autotrack.start_run()
    sampler = _capture.sampler_for(run)
    assert sampler.interval == 5.0
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    run.end()
    return {
        "per_sample_ms": per_sample * 1000,
        "fraction_at_5s": per_sample / 5.0,
        "real_samples": sampler.samples,
        "real_fraction": sampler.cpu_seconds / elapsed,
        "real_seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sampler-seconds", type=float, default=16.0)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--warm", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        c = cold(store, args.cold)
        w, parts = warm(store, args.warm)
        s = sampler_cost(store, args.sampler_seconds)
    import autotrack._capture.environment as env

    packages = len(env.installed_packages())
    print(f"capture at run start, cold (first run of a process, {packages} packages): "
          f"median {statistics.median(c):.0f} ms, max {max(c):.0f} ms over {len(c)} processes (target < 300 ms)")
    print(f"capture at run start, warm (later runs): median {statistics.median(w):.0f} ms, "
          f"max {max(w):.0f} ms over {len(w)} runs")
    for name, ms in parts.items():
        print(f"  {name}: {ms:.1f} ms")
    print(f"sampler: {s['per_sample_ms']:.2f} ms CPU per sample -> {s['fraction_at_5s'] * 100:.3f} % of one core "
          f"at the default 5 s interval (target < 1 %)")
    print(f"sampler, real run at 5 s for {s['real_seconds']:.0f} s: {s['real_samples']} samples, "
          f"{s['real_fraction'] * 100:.3f} % of one core")


if __name__ == "__main__":
    main()
