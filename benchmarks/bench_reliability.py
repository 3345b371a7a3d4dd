"""Figures for the README's guarantees, each measured here in child processes.

    python benchmarks/bench_reliability.py

* data lost on SIGKILL: how far before the kill the newest stored point was logged (5 trials);
* flush at exit: wall time from the last log call to process exit with 100k points queued,
  against the same process logging nothing (the ratio is the cost of the flush);
* 40 concurrent writers (8 ranks + 32 sweep processes) on one fresh store: aggregate points/s
  and the same figure for a single writer, as a ratio.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(store: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store),
            "AUTOTRACK_CAPTURE": "0", "AUTOTRACK_SYSTEM_METRICS": "0"}


def sigkill_loss(folder: Path, trials: int = 5) -> list[float]:
    gaps = []
    for trial in range(trials):
        store = folder / f"kill{trial}"
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import time, autotrack
            run = autotrack.start_run()
            print("go", flush=True)
            i = 0
            while True:
                run.log_metric("t", time.time(), step=i)
                i += 1
                if i % 100 == 0:
                    time.sleep(0.001)
            """)], env=_env(store), stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        time.sleep(1.5 + 0.1 * trial)
        killed = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait()
        conn = sqlite3.connect(store / "autotrack.db")
        import struct

        (blob,) = conn.execute("SELECT last_value FROM metric_keys").fetchone()
        gaps.append(killed - struct.unpack("<d", blob)[0])
    return gaps


def exit_flush(folder: Path, points: int = 100_000, repeats: int = 5) -> tuple[float, float]:
    body = textwrap.dedent(f"""
        import sys, time, autotrack
        run = autotrack.start_run()
        n = int(sys.argv[1])
        for i in range(n):
            run.log_metric("x", i * 0.5, step=i)
        sys.stdout.write(repr(time.time())); sys.stdout.flush()
        """)
    with_points, without = [], []
    for r in range(repeats):
        for n, sink in ((points, with_points), (0, without)):
            proc = subprocess.Popen([sys.executable, "-c", body, str(n)], env=_env(folder / f"exit{r}-{n}"),
                                    stdout=subprocess.PIPE, text=True)
            out, _ = proc.communicate()
            sink.append(time.time() - float(out))
    return statistics.median(with_points), statistics.median(without)


def writers(folder: Path, n_proc: int, points: int) -> float:
    store = folder / f"writers{n_proc}"
    body = textwrap.dedent(f"""
        import sys, autotrack
        with autotrack.start_run(name=sys.argv[1]) as run:
            for i in range({points}):
                run.log_metric("loss", i * 1e-3, step=i)
        """)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", body, f"w{i}"], env=_env(store), stderr=subprocess.PIPE, text=True)
             for i in range(n_proc)]
    errors = [p.communicate()[1] for p in procs]
    elapsed = time.perf_counter() - start
    assert all(p.returncode == 0 for p in procs), errors
    (total,) = sqlite3.connect(store / "autotrack.db").execute("SELECT sum(count) FROM metric_keys").fetchone()
    assert total == n_proc * points, (total, n_proc * points)
    return total / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="autotrack-rel-") as tmp:
        folder = Path(tmp)
        gaps = sigkill_loss(folder)
        flush, bare = exit_flush(folder)
        one = writers(folder, 1, 200_000)
        many = writers(folder, 40, 20_000)
    print(f"SIGKILL: newest stored point was logged {1000 * statistics.median(gaps):.0f} ms before the kill "
          f"(median of {len(gaps)}, max {1000 * max(gaps):.0f} ms; flush interval 250 ms)")
    print(f"exit with 100k points queued: {flush:.2f} s from last log call to exit vs {bare:.2f} s with none "
          f"(flush adds {flush - bare:.2f} s)")
    print(f"1 writer: {one:,.0f} points/s; 40 writers at once: {many:,.0f} points/s aggregate "
          f"({many / one:.2f}x one writer), no lock errors, no lost points")


if __name__ == "__main__":
    main()
