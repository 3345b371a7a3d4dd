"""The store contract: what every backend must do, checked through the public API.

Each test runs once per backend (``backend`` fixture, tests/store/conftest.py). Expected values are
computed independently in the test (numpy, plain Python filtering and sorting of what was logged),
never read from the store under test.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import autotrack
from autotrack import InvalidArgumentError, RunNotFoundError

ROOT = Path(__file__).resolve().parents[2]


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


# -- write / read round trips ---------------------------------------------------------------------


def test_round_trip_of_every_kind_of_record(backend, tmp_path):
    values = [0.5, float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1e308]
    steps = [0, 3, 4, 10, 11, 12, 100]
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(os.urandom(4096))
    with autotrack.start_run(name="rt", experiment="contract") as run:
        run.log_params({"lr": 0.01, "batch_size": 128, "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
                        "amp": True, "note": None})
        run.set_tags({"team": "vision", "stage": "dev"})
        run.set_info("config", {"epochs": 3, "nested": {"a": [1, 2]}})
        for step, value in zip(steps, values):
            run.log_metric("odd", value, step=step)
        for step in range(1000):
            run.log_metric("train/loss", 1.0 / (step + 1), step=step)
        sha = run.log_artifact(artifact, kind="checkpoint", step=7, metadata={"epoch": 1})
        ref = run.log_artifact(artifact, name="by-reference.bin", copy=False)
    rec = autotrack.get_run(run.id)
    assert (rec.name, rec.experiment, rec.status) == ("rt", "contract", "finished")
    assert rec.params == {"lr": 0.01, "batch_size": 128, "optimizer.name": "adam", "optimizer.betas": [0.9, 0.999],
                          "amp": True, "note": None}
    assert rec.tags == {"team": "vision", "stage": "dev"}
    assert rec.info("config") == {"epochs": 3, "nested": {"a": [1, 2]}}
    odd = rec.metric("odd")
    assert odd["step"].tolist() == steps
    assert [_bits(v) for v in odd["value"]] == [_bits(v) for v in values]  # bit for bit, NaN and -0.0 too
    loss = rec.metric("train/loss")
    assert loss["step"].tolist() == list(range(1000))
    assert loss["value"].tolist() == [1.0 / (s + 1) for s in range(1000)]
    assert loss["time"].is_monotonic_increasing
    by_name = {a.name: a for a in rec.artifacts}
    assert by_name["weights.bin"].sha256 == sha and by_name["weights.bin"].stored
    assert by_name["weights.bin"].kind == "checkpoint" and by_name["weights.bin"].step == 7
    assert by_name["weights.bin"].metadata == {"epoch": 1}
    assert rec.read_artifact("weights.bin") == artifact.read_bytes()
    assert by_name["by-reference.bin"].sha256 == ref and not by_name["by-reference.bin"].stored
    assert rec.read_artifact("by-reference.bin") == artifact.read_bytes()


def test_stats_come_from_the_store_and_match_the_points(backend):
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    values[[10, 200]] = np.nan
    with autotrack.start_run() as run:
        for i, v in enumerate(values):
            run.log_metric("val/loss", float(v), step=2 * i)
            if i % 97 == 0:
                run.flush()  # several chunks
    stats = autotrack.get_run(run.id).metric_stats()["val/loss"]
    assert stats["count"] == 500
    assert stats["last_step"] == 998
    assert stats["last"] == values[-1]
    assert stats["min"] == np.nanmin(values) and stats["max"] == np.nanmax(values)


def test_reading_never_drives_the_writer(backend):
    run = autotrack.start_run(name="unflushed")
    run.log_metric("x", 1.0)
    time.sleep(0)  # no flush: what is only queued is not guaranteed visible...
    run.flush()  # ...an explicit flush makes it so
    assert autotrack.get_run(run.id).summary == {"x": 1.0}
    run.end()


def test_integer_params_stay_integers_when_some_runs_lack_them(backend):
    with autotrack.start_run(params={"batch_size": 128, "lr": 0.1}):
        pass
    with autotrack.start_run(params={"lr": 0.2}):
        pass
    frame = autotrack.runs()
    assert str(frame["params.batch_size"].dtype) == "Int64"
    assert sorted(frame["params.batch_size"].dropna().tolist()) == [128]
    assert frame["params.batch_size"].isna().sum() == 1


# -- where, order_by, paging ---------------------------------------------------------------------------


@pytest.fixture
def thirty_runs(backend):
    """30 finished runs and a failed one with params/metrics/tags; returns what was logged."""
    logged = []
    rng = np.random.default_rng(1)
    for i in range(30):
        lr = float(10 ** rng.uniform(-4, -1))
        params = {"lr": lr, "depth": int(i % 4), "arch": ["resnet18", "resnet50", "vit"][i % 3]}
        if i % 5 == 0:
            params.pop("depth")
        metrics = {"val/loss": float(rng.uniform(0.1, 2.0))}
        if i % 7 == 0:
            metrics["val/acc"] = float(rng.uniform(0.5, 1.0))
        with autotrack.start_run(name=f"r{i:02d}", experiment="sweep", params=params,
                                 tags={"group": "a" if i % 2 else "b"}) as run:
            for key, value in metrics.items():
                run.log_metric(key, value + 1.0, step=0)
                run.log_metric(key, value, step=1)
        logged.append({"id": run.id, "name": run.name, "status": "finished", **params, **metrics,
                       "group": "a" if i % 2 else "b"})
    with pytest.raises(ValueError):
        with autotrack.start_run(name="broken", experiment="sweep", params={"lr": 0.5}):
            raise ValueError("boom")
    logged.append({"id": autotrack.get_run("broken").id, "name": "broken", "status": "failed", "lr": 0.5})
    return logged


def _ids(frame):
    return frame["id"].tolist()


@pytest.mark.parametrize(
    ("where", "truth"),
    [
        ("params.lr < 0.01", lambda r: r["lr"] < 0.01),
        ("params.lr < 0.01 and status = 'finished'", lambda r: r["lr"] < 0.01 and r["status"] == "finished"),
        ("lr >= 0.001 or params.depth = 3", lambda r: r["lr"] >= 0.001 or r.get("depth") == 3),
        ("not params.depth = 3", lambda r: not r.get("depth") == 3),  # missing depth: not(false) = true
        ("params.depth is null", lambda r: "depth" not in r),
        ("params.depth in (1, 2)", lambda r: r.get("depth") in (1, 2)),
        ("params.arch like 'RESNET%'", lambda r: str(r.get("arch", "")).startswith("resnet")),
        ("params.arch not in ('vit')", lambda r: r.get("arch") != "vit"),
        ("metrics.val/loss < 1.0", lambda r: "val/loss" in r and r["val/loss"] < 1.0),
        ("metrics.val/acc is not null and tags.group = 'a'", lambda r: "val/acc" in r and r["group"] == "a"),
        ("status = 'failed'", lambda r: r["status"] == "failed"),
        # each run logged value + 1 then value: min is the value, max the value + 1
        ("min(metrics.val/loss) < 1.0", lambda r: "val/loss" in r and r["val/loss"] < 1.0),
        ("max(metrics.val/loss) > 2.5 or MIN(metrics.val/acc) > 0.9",
         lambda r: ("val/loss" in r and r["val/loss"] + 1 > 2.5) or ("val/acc" in r and r["val/acc"] > 0.9)),
        ("name like 'r1%' and (params.depth > 1 or params.depth < 1)",
         lambda r: r["name"].startswith("r1") and r.get("depth") is not None and r["depth"] != 1),
    ],
)
def test_where_is_evaluated_by_the_store(thirty_runs, where, truth):
    expected = {r["id"] for r in thirty_runs if truth(r)}
    assert set(_ids(autotrack.runs(where=where))) == expected
    assert autotrack.count_runs(where=where) == len(expected)


def test_order_by_and_paging_in_the_store(thirty_runs):
    with_loss = [r for r in thirty_runs if "val/loss" in r]
    best = sorted(with_loss, key=lambda r: r["val/loss"])
    frame = autotrack.runs(order_by="metrics.val/loss", limit=5)
    assert _ids(frame) == [r["id"] for r in best[:5]]
    frame = autotrack.runs(order_by="metrics.val/loss DESC", limit=4, offset=3)
    assert _ids(frame) == [r["id"] for r in best[::-1][3:7]]
    # runs without the metric come last whatever the direction
    assert _ids(autotrack.runs(order_by="metrics.val/loss DESC"))[-1] == thirty_runs[-1]["id"]
    assert _ids(autotrack.runs(order_by="min(metrics.val/loss)"))[-1] == thirty_runs[-1]["id"]
    with_acc = sorted((r for r in thirty_runs if "val/acc" in r), key=lambda r: r["val/acc"])
    for descending in (False, True):
        got = _ids(autotrack.runs(order_by="metrics.val/acc" + (" DESC" if descending else "")))
        assert got[:len(with_acc)] == [r["id"] for r in (with_acc[::-1] if descending else with_acc)]
        assert set(got[len(with_acc):]) == {r["id"] for r in thirty_runs if "val/acc" not in r}
    top = _ids(autotrack.runs(where="parent_id is null", limit=3))  # newest first, from the start-time order
    assert top == _ids(autotrack.runs())[:3] == [r["id"] for r in thirty_runs[::-1][:3]]
    by_lr = sorted(thirty_runs, key=lambda r: (r["lr"], ))
    assert _ids(autotrack.runs(order_by="params.lr")) == [r["id"] for r in by_lr]
    both = sorted(thirty_runs, key=lambda r: (r.get("depth") is None, -(r.get("depth") or 0), r["lr"]))
    assert _ids(autotrack.runs(order_by="params.depth DESC, params.lr")) == [r["id"] for r in both]
    assert _ids(autotrack.runs(order_by="min(metrics.val/loss)", limit=5)) == [r["id"] for r in best[:5]]
    assert _ids(autotrack.runs(order_by="max(metrics.val/loss) DESC", limit=3)) == [r["id"] for r in best[::-1][:3]]


def test_order_by_a_column_nobody_has_is_a_clear_error(thirty_runs):
    with pytest.raises(InvalidArgumentError, match="metrics.val/loss"):
        autotrack.runs(order_by="metrics.val/los")


def test_experiment_and_status_filters(thirty_runs):
    assert len(autotrack.runs(experiment="sweep")) == 31
    assert len(autotrack.runs(experiment="other")) == 0
    assert _ids(autotrack.runs(status="failed")) == [thirty_runs[-1]["id"]]


# -- edits --------------------------------------------------------------------------------------------


def test_edits_of_an_ended_run_never_touch_status_or_times(backend):
    with autotrack.start_run(name="old") as run:
        run.log_metric("x", 1.0)
    before = autotrack.get_run(run.id)
    time.sleep(0.05)
    rec = autotrack.get_run(run.id)
    rec.set_tags({"reviewed": "yes", "api_key": "sk-live-0123456789abcdef"})
    rec.set_note("## Findings\nlr too high")
    rec.rename("renamed")
    after = autotrack.get_run(run.id)
    assert after.tags == {"reviewed": "yes", "api_key": "***"}  # the secret filter applies to edits
    assert after.note == "## Findings\nlr too high" and after.name == "renamed"
    assert (after.status, after.start_time, after.end_time, after.duration) == \
        (before.status, before.start_time, before.end_time, before.duration)
    with pytest.raises(InvalidArgumentError):
        rec.set_tags({"bad\x00key": "v"})
    rec.set_tags({}, remove=["reviewed"])
    assert autotrack.get_run(run.id).tags == {"api_key": "***"}


def test_edits_of_a_live_run_go_in_order_with_what_it_logs(backend):
    run = autotrack.start_run()
    run.set_tags({"a": "1"})
    run.flush()
    autotrack.get_run(run.id).set_tags({"a": "2"})  # queued behind the run's own writes
    run.end()
    rec = autotrack.get_run(run.id)
    assert rec.tags == {"a": "2"} and rec.status == "finished"


# -- ids, names, latest ------------------------------------------------------------------------------


def test_get_run_by_prefix_name_and_latest(backend):
    with autotrack.start_run(name="first") as a:
        pass
    time.sleep(0.01)
    with autotrack.start_run(name="second") as b:
        pass
    assert autotrack.get_run(a.id[:10]).id == a.id
    assert autotrack.get_run("second").id == b.id
    assert autotrack.get_run("latest").id == b.id
    with pytest.raises(RunNotFoundError):
        autotrack.get_run("no-such-run")


# -- many writers, crashes ---------------------------------------------------------------------------


def _env(location: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STORE": location, "AUTOTRACK_CAPTURE": "0",
            "AUTOTRACK_SYSTEM_METRICS": "0"}


def test_concurrent_writers_lose_nothing(backend_location):
    body = textwrap.dedent("""
        import sys, autotrack
        i = int(sys.argv[1])
        with autotrack.start_run(name=f"w{i}", experiment="many") as run:
            for s in range(2000):
                run.log_metric("loss", i + s / 1e4, step=s)
        """)
    procs = [subprocess.Popen([sys.executable, "-c", body, str(i)], env=_env(backend_location),
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    frame = autotrack.runs(experiment="many", store=backend_location)
    assert len(frame) == 6 and set(frame["status"]) == {"finished"}
    for name in frame["name"]:
        i = int(name[1:])
        values = autotrack.get_run(name, store=backend_location).metric("loss")["value"].tolist()
        assert values == [i + s / 1e4 for s in range(2000)]


def test_killed_writer_reads_crashed_and_keeps_what_it_flushed(backend_location):
    body = textwrap.dedent("""
        import autotrack, time
        run = autotrack.start_run(name="victim")
        for s in range(100):
            run.log_metric("x", float(s), step=s)
        run.flush()
        print("ready", flush=True)
        time.sleep(60)
        """)
    child = subprocess.Popen([sys.executable, "-c", body], env=_env(backend_location), stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    assert autotrack.get_run("victim", store=backend_location).status == "running"
    child.send_signal(signal.SIGKILL)
    child.wait()
    rec = autotrack.get_run("victim", store=backend_location)
    assert rec.status == "crashed"
    assert rec.metric("x")["value"].tolist() == [float(s) for s in range(100)]
    assert _ids(autotrack.runs(status="crashed", store=backend_location)) == [rec.id]
    assert _ids(autotrack.runs(where="status = 'crashed'", store=backend_location)) == [rec.id]
    assert autotrack.runs(status="running", store=backend_location).empty


def test_a_live_run_cannot_be_deleted(backend):
    run = autotrack.start_run()
    run.flush()
    with pytest.raises(InvalidArgumentError, match="still running"):
        autotrack.delete_run(run.id)
    run.end()
    autotrack.delete_run(run.id)
    with pytest.raises(RunNotFoundError):
        autotrack.get_run(run.id)


# -- artifacts and garbage collection ----------------------------------------------------------------


def test_deleting_runs_frees_blobs_no_other_run_uses(backend, tmp_path):
    shared, own = tmp_path / "shared.bin", tmp_path / "own.bin"
    shared.write_bytes(b"shared" * 1000)
    own.write_bytes(b"own" * 1000)
    with autotrack.start_run() as a:
        sha_shared = a.log_artifact(shared)
        sha_own = a.log_artifact(own)
    with autotrack.start_run() as b:
        b.log_artifact(shared)
    blobs = backend.blobs
    autotrack.delete_run(a.id)
    assert not blobs.exists(sha_own)  # nobody refers to it any more
    assert blobs.exists(sha_shared)  # b still does
    assert autotrack.get_run(b.id).read_artifact("shared.bin") == shared.read_bytes()
    autotrack.delete_run(b.id)
    assert not blobs.exists(sha_shared)


def test_gc_spares_a_blob_a_writer_is_adding_right_now(backend, tmp_path):
    payload = os.urandom(1 << 16)
    f = tmp_path / "same.bin"
    f.write_bytes(payload)
    with autotrack.start_run() as a:
        sha = a.log_artifact(f)
    autotrack.delete_run(a.id)  # the blob goes...
    assert not backend.blobs.exists(sha)
    run = autotrack.start_run()
    stop = threading.Event()
    swept = []

    def sweep() -> None:
        while not stop.is_set():
            swept.append(autotrack.gc(grace=0.0)["blobs"])

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        for i in range(30):  # ...and comes back while a full sweep with no grace runs in a loop
            run.log_artifact(f, name=f"copy{i}.bin")
            run.flush()
    finally:
        stop.set()
        sweeper.join()
    run.end()
    rec = autotrack.get_run(run.id)
    for i in range(30):
        assert rec.read_artifact(f"copy{i}.bin") == payload


def test_gc_reports_what_it_freed(backend, tmp_path):
    with autotrack.start_run():
        pass
    orphan = backend.blobs.put_bytes(b"nobody refers to me")
    assert autotrack.gc(grace=3600)["blobs"] == 0  # too fresh: it may belong to a queued record
    assert autotrack.gc(grace=0.0) == {"blobs": 1, "bytes": len(b"nobody refers to me")}
    assert not backend.blobs.exists(orphan.sha256)


def test_status_stays_true_to_how_the_run_ended(backend):
    with pytest.raises(KeyboardInterrupt):
        with autotrack.start_run(name="ctrl-c"):
            raise KeyboardInterrupt
    assert autotrack.get_run("ctrl-c").status == "killed"


def test_numeric_comparison_of_params_of_every_stored_type(backend):
    """`params.x < 1` compares numbers, numeric strings and booleans as numbers, on both backends
    alike (SQLite converts JSON numbers itself and the rest through the store's function)."""
    values = {"int": 0, "float": 0.5, "neg": -2.5, "big": 10**12, "numeric text": "0.25", "sci text": "1e-3",
              "true": True, "false": False, "nan": float("nan"), "inf": float("inf"), "word": "fast",
              "list": [0.1], "none": None}
    ids = {}
    for label, value in values.items():
        with autotrack.start_run(name=label, params={"x": value}) as run:
            pass
        ids[run.id] = label

    def as_number(v):
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, (int, float)):
            return float(v)
        try:
            return float(v) if isinstance(v, str) else None
        except ValueError:
            return None

    for where, test in (("params.x < 1", lambda n: n < 1), ("params.x >= 1", lambda n: n >= 1),
                        ("params.x = 0", lambda n: n == 0)):
        expected = set()
        for label, value in values.items():
            n = as_number(value)
            if n is not None and n == n and test(n):
                expected.add(label)
        got = {ids[i] for i in autotrack.runs(where=where)["id"]}
        assert got == expected, where


def test_a_large_tables_concurrent_column_reads_build_the_same_frame(backend, monkeypatch):
    """From `CONCURRENT_READS_FROM` runs on, `runs()` reads params, last values and tags on reader
    threads (their own connections): the frame is the one the sequential reads build."""
    from autotrack import _query

    for i in range(6):
        with autotrack.start_run(params={"i": i, "lr": 10.0 ** -i, "opt": ["sgd", "adam"][i % 2]},
                                 tags={"team": "a" if i < 3 else "b"}) as run:
            run.log_metric("loss", 1.0 / (i + 1), step=0)
            if i % 2:
                run.log_metric("acc", 0.1 * i, step=3)
    autotrack.flush()
    monkeypatch.setattr(_query, "CONCURRENT_READS_FROM", 10**9)
    sequential = autotrack.runs(order_by="params.i")
    monkeypatch.setattr(_query, "CONCURRENT_READS_FROM", 1)
    concurrent = autotrack.runs(order_by="params.i")
    assert _query._READERS is not None and _query._READERS[0] == os.getpid()  # the threaded path ran
    pd.testing.assert_frame_equal(concurrent, sequential)
    assert list(concurrent["params.i"]) == list(range(6)) and concurrent["tags.team"].tolist() == list("aaabbb")
    assert concurrent["metrics.acc"].isna().tolist() == [True, False] * 3


def test_table_columns_read_in_sql_equal_the_per_run_reads(backend):
    """`runs()` builds its columns from `param_columns` / `last_value_columns` (grouped by key in
    the database): the same values as the per-run reads (`params`, `stats`), which the base
    class's own implementation of both is built on -- every stored param type included."""
    from autotrack.store.base import Backend

    values = {"int": 3, "float": 0.5, "big": 10**30, "text": "a,b", "true": True, "nan": float("nan"),
              "inf": float("-inf"), "list": [1, [2, "x"]], "none": None}
    ids, logged = [], []
    for i in range(4):
        logged.append({k: v for j, (k, v) in enumerate(values.items()) if (i + j) % 4})
        with autotrack.start_run(params=logged[-1]) as run:
            run.log_metric("loss", 1.0 / (i + 1), step=0)
            run.log_metric("loss", float("nan") if i == 2 else 0.1 * i, step=1)
            if i % 2:
                run.log_metric("acc", 0.5 + i, step=0)
        ids.append(run.id)
    autotrack.flush()
    st = autotrack.get_store()
    for read in ("param_columns", "last_value_columns"):
        ours = getattr(st, read)(ids)
        base = getattr(Backend, read)(st, ids)
        assert set(ours) == set(base), read
        for key in ours:
            got = dict(zip(*ours[key]))
            want = dict(zip(*base[key]))
            assert set(got) == set(want), (read, key)
            for rid in got:
                a, b = got[rid], want[rid]
                assert (a != a and b != b) or a == b, (read, key, a, b)
    # ids the backends join with commas: one that holds a comma (a run synced from elsewhere could)
    # takes the per-run path and keeps its values
    from autotrack.store import NewRun, Params, Points, this_owner

    odd = "odd,id"
    st.write([NewRun(odd, "odd", "default", None, time.time(), this_owner()),
              Params(odd, (("int", "7", None),)), Points(odd, "loss", [0], [0.25], [time.time()])])
    assert st.param_columns([ids[1], odd])["int"] == ([ids[1], odd], [3, 7])
    assert dict(zip(*st.last_value_columns([ids[1], odd])["loss"])) == {ids[1]: 0.1, odd: 0.25}
    frame = autotrack.runs().set_index("id")
    for run_id, params in zip(ids, logged):
        for key, value in values.items():
            cell = frame.loc[run_id, f"params.{key}"]
            if key not in params or value is None:
                assert cell is None or cell is pd.NA or cell != cell, (key, cell)
            elif isinstance(value, (list, dict)):
                assert cell == json.dumps(value), key  # lists and dicts are shown as JSON text
            elif isinstance(value, float) and value != value:
                assert cell != cell, key
            else:
                assert cell == value, (key, cell)
    assert [frame.loc[i, "metrics.loss"] for i in ids[:2]] == [0.0, pytest.approx(0.1)]
    assert np.isnan(frame.loc[ids[2], "metrics.loss"]) and np.isnan(frame.loc[ids[0], "metrics.acc"])
