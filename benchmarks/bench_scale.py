"""Reading a large store: 10,000 (or 100,000) runs x 50 params x 20 metric keys x 1,000 points.

    python benchmarks/bench_scale.py [--runs 10000] [--points 1000] [--no-pg] [--pg URL] [--mlflow-python PATH]

One store is filled on SQLite and (unless ``--no-pg``) on PostgreSQL -- a throw-away server from
the local binaries, or ``--pg``'s database -- through ``Backend.write``, with the chunks the recorder
writes (each key's ``--points`` steps in one chunk). Then, on each, best of 3 (the CLI: of 2):

* ``runs(where="params.lr < 0.01 and params.arch = 'vit'", order_by="metrics.val/loss")``: the whole
  DataFrame, and with ``limit=50``; checked against the generated data;
* ``get_run(id).metric("val/loss")``: one run's full series as a DataFrame;
* ``autotrack runs --limit 50 --store ...`` as a whole process (interpreter start-up included);
* bytes on disk per stored point (SQLite: the database file; PostgreSQL: ``pg_database_size``).

MLflow (``--mlflow-python`` or ``$MLFLOW_PYTHON``: a Python with mlflow) runs the same where and
order_by through ``search_runs`` on its own SQLite database holding the same runs, params and last
metric values (bulk-loaded into its tables: its client would take hours). Its params are text, so
its ``lr`` filter is on a metric holding the same values; its metrics table gets the last two points
of each key only, which favours it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import autotrack  # noqa: E402
from autotrack.store import EndRun, NewRun, Params, Points, open_backend, this_owner  # noqa: E402
from bench_store import MLFLOW_LOAD, make_runs, run_mlflow  # noqa: E402

WHERE = "params.lr < 0.01 and params.arch = 'vit'"
ORDER = "metrics.val/loss"


def fill(location: str, runs: list[dict], points: int) -> int:
    """Write ``runs`` with ``points`` steps per key (the last one the run's value); returns the
    number of points stored."""
    backend = open_backend(location)
    owner = this_owner()
    steps = list(range(points))
    ramp = np.linspace(1.0, 0.0, points)
    total = 0
    for i in range(0, len(runs), 100):
        records: list = []
        for r in runs[i:i + 100]:
            records.append(NewRun(r["id"], f"run{r['id'][-5:]}", "scale", None, r["start"], owner))
            records.append(Params(r["id"], tuple((k, json.dumps(v), None) for k, v in r["params"].items())))
            times = (r["start"] + np.arange(points) * 0.01).tolist()
            for key, value in r["metrics"].items():
                records.append(Points(r["id"], key, steps, (value + ramp).tolist(), times))
                total += points
            records.append(EndRun(r["id"], "finished", r["start"] + 10))
        backend.write(records)
    backend.close()
    return total


def expected(runs: list[dict]) -> list[str]:
    hits = [r for r in runs if r["params"]["lr"] < 0.01 and r["params"]["arch"] == "vit"]
    return [r["id"] for r in sorted(hits, key=lambda r: r["metrics"]["val/loss"])]


def best_of(n: int, fn):  # noqa: ANN001, ANN201
    times, result = [], None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(location: str, runs: list[dict], points: int) -> dict[str, float]:
    truth = expected(runs)
    out: dict[str, float] = {}
    out["where+order_by"], frame = best_of(3, lambda: autotrack.runs(where=WHERE, order_by=ORDER, store=location))
    assert frame["id"].tolist() == truth, "where + order_by: wrong rows or order"
    out["where+order_by, limit 50"], top = best_of(
        3, lambda: autotrack.runs(where=WHERE, order_by=ORDER, limit=50, store=location))
    assert top["id"].tolist() == truth[:50]
    autotrack.set_store(location)
    one = runs[len(runs) // 2]
    out["get_run().metric()"], series = best_of(3, lambda: autotrack.get_run(one["id"]).metric("val/loss"))
    assert len(series) == points and series["value"].iloc[-1] == one["metrics"]["val/loss"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "autotrack", "runs", "--limit", "50", "--store", location]
    out["CLI runs --limit 50"], done = best_of(2, lambda: subprocess.run(cli, capture_output=True, text=True, env=env, check=False))
    assert done.returncode == 0, done.stderr
    out["rows"] = len(frame)
    return out


MLFLOW_SCRIPT = MLFLOW_LOAD + r"""
def best(fn, n=3):
    out = None
    for _ in range(n):
        t = time.perf_counter(); res = fn(); e = time.perf_counter() - t
        out = (e, res) if out is None or e < out[0] else out
    return out
query = "metrics.lr < 0.01 and params.arch = 'vit'"
t1, df = best(lambda: mlflow.search_runs([exp], filter_string=query, order_by=["metrics.`val/loss` ASC"],
                                          max_results=100000))
t2, top = best(lambda: mlflow.search_runs([exp], filter_string=query, order_by=["metrics.`val/loss` ASC"],
                                           max_results=50))
some = runs[len(runs) // 2]["id"]
t3, hist = best(lambda: client.get_metric_history(some, "val/loss"))
print(json.dumps({"where+order_by": t1, "where+order_by, limit 50": t2, "get_metric_history": t3,
                  "ids": df["run_id"].tolist(), "version": mlflow.__version__}))
"""


def mlflow_side(python: str, runs: list[dict], folder: Path) -> dict | None:
    result = run_mlflow(python, MLFLOW_SCRIPT, runs, folder)
    if result is None:
        return None
    assert result["ids"] == expected(runs), "MLflow returned other rows"
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000, help="points per metric key and run")
    parser.add_argument("--pg", help="a PostgreSQL URL whose database this benchmark may fill (default: start a server)")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--mlflow-python", default=os.environ.get("MLFLOW_PYTHON"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="autotrack-bench-scale-"))
    os.environ["AUTOTRACK_ARTIFACTS"] = str(tmp / "blobs")
    runs = make_runs(args.runs)
    server = None
    stores: dict[str, str] = {"SQLite": str(tmp / "sqlite")}
    try:
        if not args.no_pg:
            if args.pg is None:
                import _servers

                server = _servers.start_postgres()
                stores["PostgreSQL"] = server.new_database("scale")
            else:
                stores["PostgreSQL"] = args.pg
        results: dict[str, dict[str, float]] = {}
        for name, location in stores.items():
            start = time.perf_counter()
            total = fill(location, runs, args.points)
            took = time.perf_counter() - start
            results[name] = measure(location, runs, args.points)
            if name == "SQLite":
                size = sum(p.stat().st_size for p in Path(location).rglob("*") if p.is_file())
            else:
                import psycopg

                with psycopg.connect(location) as conn:
                    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            results[name]["bytes/point"] = size / total
            print(f"{name}: {total:,} points of {args.runs:,} runs written in {took:.0f} s "
                  f"({total / took:,.0f} points/s); {size / 2**30:.2f} GiB on disk", flush=True)
        ml = mlflow_side(args.mlflow_python, runs, tmp / "mlflow") if args.mlflow_python else None
        if ml is None and not args.mlflow_python:
            print("(MLflow column skipped: pass --mlflow-python or set MLFLOW_PYTHON)")
        rows = results["SQLite"]["rows"]
        columns = [*results, *([f"MLflow {ml['version']}"] if ml else [])]
        print(f"\n{args.runs:,} runs x 50 params x 20 keys x {args.points:,} points; seconds, best of 3 (CLI: of 2)")
        print(f"{'':52s}" + "".join(f"{c:>16s}" for c in columns))
        labels = {
            "where+order_by": f'runs(where=..., order_by=...) [{rows:,} rows]',
            "where+order_by, limit 50": "the same, limit=50",
            "get_run().metric()": f'get_run(id).metric("val/loss") [{args.points:,} points]',
            "CLI runs --limit 50": "autotrack runs --limit 50 (whole process)",
            "bytes/point": "bytes on disk per point",
        }
        for key, text in labels.items():
            cells = [results[n][key] for n in results]
            if ml:
                cells.append(ml.get({"get_run().metric()": "get_metric_history"}.get(key, key), float("nan")))
            fmt = "{:16.1f}" if key == "bytes/point" else "{:16.4f}"
            print(f"{text:52s}" + "".join(fmt.format(c) for c in cells))
        print(f"(where: {WHERE!r}; MLflow: search_runs with the same filter on a metric lr, get_metric_history)")
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
