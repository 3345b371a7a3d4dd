"""Core recorder benchmarks, every figure from one run, speeds as ratios against a baseline.

    python benchmarks/bench_core.py [--points 1000000]

Prints:
* ``log_metric`` call latency (median ns over many calls),
* sustained end-to-end throughput (points/s from the log call through the writer to disk) as a
  ratio of a raw ``sqlite3.executemany`` into a WAL table with the same synchronous setting (the
  physical reference),
* bytes on disk per point,
* time to read back 1M points of one key,
* ``import autotrack`` time against ``python -c pass``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

import autotrack  # noqa: E402


def raw_executemany(folder: Path, n: int) -> float:
    """Points/s for the physical reference: one executemany of n rows into a WAL table."""
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE m (run TEXT, key TEXT, step INTEGER, value REAL, time REAL)")
    now = time.time()
    rows = [("r", "train/loss", i, i * 0.5, now) for i in range(n)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def log_latency_ns(run: autotrack.Run, calls: int = 200_000, batch: int = 1000) -> float:
    log = run.log_metric
    samples = []
    perf = time.perf_counter_ns
    for b in range(calls // batch):
        t0 = perf()
        for i in range(batch):
            log("lat", 0.5, i)
        samples.append((perf() - t0) / batch)
        if b % 20 == 0:
            run.flush()
    return statistics.median(samples)


def end_to_end(n: int) -> tuple[float, str]:
    run = autotrack.start_run(name="throughput")
    log = run.log_metric
    start = time.perf_counter()
    for i in range(n):
        log("train/loss", i * 0.5, i)
    run.flush(timeout=120)
    elapsed = time.perf_counter() - start
    run.end()
    return n / elapsed, run.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="autotrack-bench-"))
    try:
        autotrack.set_store(folder / "store")
        raw = raw_executemany(folder, args.points)
        with autotrack.start_run(name="latency") as run:
            latency = log_latency_ns(run)
        ours, run_id = end_to_end(args.points)
        db = folder / "store" / "autotrack.db"
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN ('metric_chunks', 'sqlite_autoindex_metric_chunks_1')"
        ).fetchone()[0] if _has_dbstat(conn) else None
        conn.close()
        total = args.points + 200_000  # the latency run logged 200k points too
        rec = autotrack.get_run(run_id)
        reads = []
        for _ in range(5):
            t0 = time.perf_counter()
            frame = rec.metric("train/loss")
            reads.append(time.perf_counter() - t0)
        assert len(frame) == args.points
        bare = _import_time("pass")
        imp = _import_time("import autotrack")

        print(f"log_metric median latency      {latency:8.0f} ns/call        (target <= 2000 ns)")
        print(f"end-to-end throughput          {ours:12,.0f} points/s")
        print(f"raw executemany (WAL)          {raw:12,.0f} points/s")
        print(f"throughput ratio               {ours / raw:8.2f}x raw          (target >= 0.5x)")
        if pages:
            print(f"bytes on disk per point        {pages / total:8.1f} B  (metric tables)")
        print(f"database file per point        {db.stat().st_size / total:8.1f} B  (whole file)")
        print(f"read {args.points:,} points of one key {statistics.median(reads):8.3f} s             (target < 0.5 s)")
        print(f"import autotrack               {1000 * (imp - bare):8.1f} ms over `python -c pass` ({1000 * bare:.0f} ms)  (target < 100 ms)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _has_dbstat(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1")
        return True
    except sqlite3.OperationalError:
        return False


def _import_time(code: str, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    main()
