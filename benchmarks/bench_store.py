"""Store benchmarks: ingest and search on SQLite and PostgreSQL, side by side in one run.

    python benchmarks/bench_store.py [--points 1000000] [--runs 10000] [--pg URL] [--mlflow-python PATH]

Without ``--pg`` a throw-away PostgreSQL server is started from the local binaries (tests/_servers.py).
Prints:

* ingest: the recorder's batches (20 keys, 5-tuples) through ``Backend.write`` into PostgreSQL, as
  a ratio of a raw binary ``COPY`` of the very chunks it produced into the same table (the physical
  reference); the same batches into SQLite; and end to end (log calls -> writer -> flushed) on both;
* 40 processes writing one PostgreSQL store at once: aggregate points/s;
* search over ``--runs`` runs x 50 params x 20 metric keys: ``runs(order_by="metrics.val/loss",
  limit=50)`` and ``runs(where="params.lr < 0.01")`` on both backends (the SQL part alone and the
  whole DataFrame), and MLflow's ``search_runs`` over the same data in its own SQLite database when
  a Python with mlflow is given (``--mlflow-python``, or ``$MLFLOW_PYTHON``). MLflow params are
  strings, so its ``lr`` filter runs on a metric holding the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("AUTOTRACK_CAPTURE", "0")
os.environ.setdefault("AUTOTRACK_SYSTEM_METRICS", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import autotrack  # noqa: E402
from autotrack.store import EndRun, NewRun, Params, Points, this_owner  # noqa: E402
from autotrack.store import open_backend  # noqa: E402

KEYS = 20


def _batches(points: int, per_batch: int = 100_000) -> list[list[tuple]]:
    """What the recorder hands the backend: lists of (run, key, step, value, time), keys interleaved."""
    per_key = per_batch // KEYS
    out, step, now = [], 0, time.time()
    while step * KEYS < points:
        batch = [("bench", f"k{k:02d}", s, s * 0.5 + k, now + s) for s in range(step, step + per_key) for k in range(KEYS)]
        out.append(batch)
        step += per_key
    return out


def ingest(location: str, points: int) -> float:
    """Points/s of Backend.write with the recorder's batches (one transaction each)."""
    backend = open_backend(location)
    backend.write([NewRun("bench", "bench", "bench", None, time.time(), this_owner())])
    batches = _batches(points)
    start = time.perf_counter()
    for batch in batches:
        backend.write(batch)
    return sum(map(len, batches)) / (time.perf_counter() - start)


def raw_copy(url: str) -> float:
    """Points/s of a binary COPY of the chunks ``ingest`` produced, into the same table."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT key_id, seq, n, first_step, steps, vals, times, crc FROM metric_chunks").fetchall()
        n = sum(r[2] for r in rows)
        with conn.transaction(), conn.cursor() as cur:
            start = time.perf_counter()
            with cur.copy("COPY metric_chunks (key_id, seq, n, first_step, steps, vals, times, crc)"
                          " FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int4", "int4", "int8", "bytea", "bytea", "bytea", "int8"])
                for r in rows:
                    copy.write_row((r[0] + 10**12, *r[1:]))
            elapsed = time.perf_counter() - start
    return n / elapsed


def end_to_end(location: str, points: int) -> float:
    """Points/s from log_metric calls to everything flushed."""
    from autotrack import _run

    previous = _run._store_override
    autotrack.set_store(location)
    try:
        run = autotrack.start_run(name="e2e")
        start = time.perf_counter()
        log = run.log_metric
        for s in range(points // KEYS):
            for k in range(KEYS):
                log(f"k{k:02d}", s * 0.5, step=s)
        run.flush(timeout=600)
        elapsed = time.perf_counter() - start
        run.end()
    finally:
        _run._store_override = previous
    return points / elapsed


def forty_writers(url: str, per_process: int = 20_000) -> float:
    body = textwrap.dedent(f"""
        import autotrack, sys
        with autotrack.start_run(name="w" + sys.argv[1]) as run:
            for s in range({per_process} // 4):
                for k in range(4):
                    run.log_metric(f"k{{k}}", s * 0.5, step=s)
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STORE": url}
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", body, str(i)], env=env) for i in range(40)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a writer failed")
    return 40 * per_process / (time.perf_counter() - start)


# -- search at scale -----------------------------------------------------------------------------


def make_runs(n_runs: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_runs):
        params = {f"p{j:02d}": int(rng.integers(0, 1000)) for j in range(48)}
        params["lr"] = float(10 ** rng.uniform(-4, -1))
        params["arch"] = ["resnet18", "resnet50", "vit"][i % 3]
        metrics = {f"m{j:02d}": float(rng.normal()) for j in range(19)}
        metrics["val/loss"] = float(rng.uniform(0.1, 2.0))
        out.append({"id": f"{i:032x}", "params": params, "metrics": metrics, "start": 1.7e9 + i})
    return out


def fill(location: str, runs: list[dict]) -> None:
    backend = open_backend(location)
    owner = this_owner()
    for i in range(0, len(runs), 500):
        records: list = []
        for r in runs[i:i + 500]:
            records.append(NewRun(r["id"], f"run{r['id'][-5:]}", "scale", None, r["start"], owner))
            records.append(Params(r["id"], tuple((k, json.dumps(v), None) for k, v in r["params"].items())))
            for key, value in r["metrics"].items():
                records.append(Points(r["id"], key, [0, 1], [value + 1.0, value], [r["start"], r["start"] + 1]))
            records.append(EndRun(r["id"], "finished", r["start"] + 10))
        backend.write(records)


def search(location: str, runs: list[dict]) -> dict[str, float]:
    from autotrack._query import _crashed, _query, runs as runs_frame

    backend = open_backend(location)
    expected_best = [r["id"] for r in sorted(runs, key=lambda r: r["metrics"]["val/loss"])[:50]]
    expected_lr = {r["id"] for r in runs if r["params"]["lr"] < 0.01}
    out = {}
    for label, kwargs in (("order_by", {"order_by": "metrics.val/loss", "limit": 50}),
                          ("where", {"where": "params.lr < 0.01"})):
        query = _query(None, None, kwargs.get("where"), kwargs.get("order_by"), kwargs.get("limit"), None)
        query.order = [("metrics.val/loss", True)] if label == "order_by" else query.order
        best = min(_timed(lambda: backend.find_runs(query, _crashed(backend))) for _ in range(3))
        out[f"{label} sql"] = best
        frame_time = min(_timed(lambda: runs_frame(store=location, **kwargs)) for _ in range(2))
        out[f"{label} frame"] = frame_time
        frame = runs_frame(store=location, **kwargs)
        got = frame["id"].tolist()
        assert (got == expected_best) if label == "order_by" else (set(got) == expected_lr), label
    return out


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


#: MLflow's database filled with the runs of ``sys.argv[2]`` (its tables bulk-loaded), shared with bench_scale
MLFLOW_LOAD = r"""
import json, sqlite3, sys, time, uuid
import mlflow
from mlflow.tracking import MlflowClient
folder, data_file = sys.argv[1], sys.argv[2]
runs = json.load(open(data_file))
uri = f"sqlite:///{folder}/mlflow.db"
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment("scale")
# bulk-load MLflow's own tables (its client would take hours for this many runs)
conn = sqlite3.connect(f"{folder}/mlflow.db")
for r in runs:
    rid = r["id"]
    conn.execute("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status,"
                 " start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time)"
                 " VALUES (?, ?, 'LOCAL', '', '', 'u', 'FINISHED', ?, ?, '', 'active', '', ?, NULL)",
                 (rid, rid[-5:], int(r["start"] * 1000), int(r["start"] * 1000) + 10000, int(exp)))
    conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                     [(k, str(v), rid) for k, v in r["params"].items()])
    metrics = dict(r["metrics"], lr=r["params"]["lr"])
    rows = []
    for k, v in metrics.items():
        rows.append((k, v + 1.0, int(r["start"] * 1000), rid, 0, 0))
        rows.append((k, v, int(r["start"] * 1000) + 1000, rid, 1, 0))
    conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
                     [(k, v, int(r["start"] * 1000) + 1000, 1, 0, rid) for k, v in metrics.items()])
conn.commit()
conn.close()
mlflow.set_tracking_uri(uri)
"""

MLFLOW_SCRIPT = MLFLOW_LOAD + r"""
def timed(fn):
    best = None
    for _ in range(2):
        t = time.perf_counter(); res = fn(); e = time.perf_counter() - t
        best = e if best is None else min(best, e)
    return best, res
t1, df1 = timed(lambda: mlflow.search_runs([exp], order_by=["metrics.`val/loss` ASC"], max_results=50))
t2, df2 = timed(lambda: mlflow.search_runs([exp], filter_string="metrics.lr < 0.01", max_results=50000))
print(json.dumps({"order_by": t1, "where": t2, "n_where": len(df2), "version": mlflow.__version__,
                  "best": df1["run_id"].tolist()}))
"""


def run_mlflow(python: str, script: str, runs: list[dict], folder: Path) -> dict | None:
    """Run ``script`` (``MLFLOW_LOAD`` + queries printing one JSON line) with ``python`` on ``runs``;
    its JSON, or None (said in a line) when it failed."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "runs.json"
    data.write_text(json.dumps(runs))
    path = folder / "mlflow_bench.py"
    path.write_text(script)
    done = subprocess.run([python, str(path), str(folder), str(data)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"(mlflow column skipped: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def mlflow_search(python: str, runs: list[dict], folder: Path) -> dict | None:
    result = run_mlflow(python, MLFLOW_SCRIPT, runs, folder)
    if result is None:
        return None
    expected = [r["id"] for r in sorted(runs, key=lambda r: r["metrics"]["val/loss"])[:50]]
    assert result["best"] == expected and result["n_where"] == sum(r["params"]["lr"] < 0.01 for r in runs), "mlflow"
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--pg", help="a PostgreSQL URL whose database this benchmark may fill (default: start a server)")
    parser.add_argument("--mlflow-python", default=os.environ.get("MLFLOW_PYTHON"))
    parser.add_argument("--skip-forty", action="store_true")
    args = parser.parse_args()
    server = None
    if args.pg is None:
        import _servers

        server = _servers.start_postgres()
        new_db = server.new_database
    else:
        import psycopg

        def new_db(prefix: str = "b") -> str:
            name = f"{prefix}_{os.getpid()}_{time.time_ns()}"
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return args.pg.rsplit("/", 1)[0] + "/" + name
    tmp = Path(tempfile.mkdtemp(prefix="autotrack-bench-store-"))
    os.environ["AUTOTRACK_ARTIFACTS"] = str(tmp / "blobs")
    try:
        print(f"== ingest, {args.points:,} points in batches of 100,000 over {KEYS} keys")
        pg = new_db("ingest")
        pg_write = ingest(pg, args.points)
        copy = raw_copy(pg)
        lite_write = ingest(str(tmp / "ingest-sqlite"), args.points)
        print(f"PostgreSQL Backend.write   {pg_write:12,.0f} points/s = {pg_write / copy:.2f}x a raw binary COPY of the same chunks ({copy:,.0f}/s)")
        print(f"SQLite Backend.write       {lite_write:12,.0f} points/s")
        pg_e2e = end_to_end(new_db("e2e"), args.points)
        lite_e2e = end_to_end(str(tmp / "e2e-sqlite"), args.points)
        print(f"end to end (log -> flushed): PostgreSQL {pg_e2e:,.0f} points/s, SQLite {lite_e2e:,.0f} points/s "
              f"(PostgreSQL = {pg_e2e / lite_e2e:.2f}x SQLite)")
        if not args.skip_forty:
            rate = forty_writers(new_db("forty"))
            print(f"40 processes into one PostgreSQL store: {rate:,.0f} points/s aggregate (incl. interpreter start)")
        print(f"\n== search, {args.runs:,} runs x 50 params x 20 metric keys (seconds, best of 3 / 2)")
        runs = make_runs(args.runs)
        pg_scale = new_db("scale")
        fill(pg_scale, runs)
        fill(str(tmp / "scale-sqlite"), runs)
        results = {"SQLite": search(str(tmp / "scale-sqlite"), runs), "PostgreSQL": search(pg_scale, runs)}
        n_lr = sum(r["params"]["lr"] < 0.01 for r in runs)
        ml = mlflow_search(args.mlflow_python, runs, tmp) if args.mlflow_python else None
        if ml is None and not args.mlflow_python:
            print("(mlflow column skipped: pass --mlflow-python or set MLFLOW_PYTHON)")
        columns = ["SQLite", "PostgreSQL"] + ([f"MLflow {ml['version']}"] if ml else [])
        print(f"{'query':64s}" + "".join(f"{c:>16s}" for c in columns))
        for label, text in (("order_by", 'runs(order_by="metrics.val/loss", limit=50)'),
                            ("where", f'runs(where="params.lr < 0.01") [{n_lr:,} rows]')):
            for part, suffix in (("sql", " store query"), ("frame", " DataFrame")):
                cells = [results["SQLite"][f"{label} {part}"], results["PostgreSQL"][f"{label} {part}"]]
                if ml:
                    cells.append(ml[label] if part == "frame" else float("nan"))
                print(f"{text + suffix:64s}" + "".join(f"{c:16.3f}" for c in cells))
        if ml:
            print("(MLflow: search_runs, which returns its DataFrame; its lr filter is on a metric, params being text)")
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
