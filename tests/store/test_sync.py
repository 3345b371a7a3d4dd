"""``autotrack sync`` from a local store into the team store: everything arrives, value for value,
once, whether it runs twice, is killed halfway, or copies a run that is still logging."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import autotrack
from autotrack.store.sync import sync

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_CAPTURE": "0", "AUTOTRACK_SYSTEM_METRICS": "0", **extra}


def _bits(values) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def assert_same_run(local: str, team: str, run_id: str) -> None:
    """Every field, param, tag, section, artifact and metric point of the run equal in both stores."""
    a, b = autotrack.get_run(run_id, store=local), autotrack.get_run(run_id, store=team)
    for field in ("id", "name", "experiment", "status", "start_time", "end_time", "parent_id", "pid", "host",
                  "error", "degraded", "note", "params", "tags", "sections", "metric_keys"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.metric_stats() == b.metric_stats() or _nan_equal(a.metric_stats(), b.metric_stats())
    for section in a.sections:
        assert a.info(section) == b.info(section)
    for key in a.metric_keys:
        sa, va, ta = a.metric_arrays(key)
        sb, vb, tb = b.metric_arrays(key)
        assert sa.tolist() == sb.tolist(), key
        assert _bits(va) == _bits(vb), key  # bit for bit: NaN, -0.0, inf
        assert ta.tolist() == tb.tolist(), key
    strip = lambda arts: [(x.name, x.kind, x.sha256, x.size, x.step, x.stored, x.metadata, x.deleted) for x in arts]  # noqa: E731
    assert strip(a.artifacts) == strip(b.artifacts)
    for art in a.artifacts:
        if not art.deleted:
            assert a.read_artifact(art.name) == b.read_artifact(art.name)


def _nan_equal(x, y) -> bool:
    return str(x) == str(y)


@pytest.fixture
def local(tmp_path) -> str:
    return str(tmp_path / "local-runs")


def _fill(local: str, tmp_path: Path) -> list[str]:
    """A local store with every kind of record: returns the run ids."""
    from autotrack import _run

    previous = _run._store_override
    autotrack.set_store(local)
    try:
        weights = tmp_path / "w.bin"
        weights.write_bytes(os.urandom(50_000))
        with autotrack.start_run(name="parent", experiment="sync", params={"lr": 0.01, "opt": {"name": "adam"}},
                                 tags={"team": "nlp"}) as parent:
            parent.set_info("config", {"epochs": 2})
            parent.set_note("## note")
            for s in range(2500):
                parent.log_metric("train/loss", 1.0 / (s + 1), step=s)
                if s % 700 == 0:
                    parent.flush()
            for s, v in zip([0, 5, 6, 100], [float("nan"), float("inf"), -0.0, 2.5]):
                parent.log_metric("odd", v, step=s)
            parent.log_artifact(weights, kind="checkpoint", step=3, metadata={"epoch": 1})
            parent.log_artifact(weights, name="ref.bin", copy=False)
            with autotrack.start_run(name="child", experiment="sync", parent=parent, params={"lr": 0.02}) as child:
                child.log_metric("val/acc", 0.9, step=0)
        with pytest.raises(RuntimeError):
            with autotrack.start_run(name="failed", experiment="sync") as failed:
                failed.log_metric("x", 1.0)
                raise RuntimeError("boom")
        return [parent.id, child.id, failed.id]
    finally:
        _run._store_override = previous


def test_sync_copies_everything_and_a_second_sync_copies_nothing(local, postgres_location, tmp_path):
    ids = _fill(local, tmp_path)
    first = sync(local, postgres_location)
    assert (first.runs_created, first.points, first.artifacts, first.blobs) == (3, 2500 + 4 + 1 + 1, 2, 1)
    for run_id in ids:
        assert_same_run(local, postgres_location, run_id)
    assert autotrack.get_run("child", store=postgres_location).parent_id == ids[0]
    assert autotrack.get_run("failed", store=postgres_location).status == "failed"
    second = sync(local, postgres_location)
    assert (second.runs_created, second.points, second.artifacts, second.blobs) == (0, 0, 0, 0)
    for run_id in ids:
        assert_same_run(local, postgres_location, run_id)
    # an edit made locally after the sync travels with the next one
    autotrack.get_run("parent", store=local).set_tags({"reviewed": "yes"})
    sync(local, postgres_location)
    assert autotrack.get_run("parent", store=postgres_location).tags == {"team": "nlp", "reviewed": "yes"}


def test_a_sync_killed_halfway_is_completed_by_the_next(local, postgres_location, tmp_path):
    ids = _fill(local, tmp_path)
    # the sync writes in small batches and is SIGKILLed after its 6th write
    body = textwrap.dedent("""
        import os, signal, sys
        from autotrack.store import sync as s
        from autotrack._run import store_for
        s.BATCH_POINTS = 300
        target = store_for(sys.argv[2])
        write = target.write
        calls = [0]
        def dying_write(records):
            write(records)
            calls[0] += 1
            if calls[0] == 6:
                os.kill(os.getpid(), signal.SIGKILL)
        target.write = dying_write
        s.sync(sys.argv[1], target)
        """)
    child = subprocess.run([sys.executable, "-c", body, local, postgres_location], env=_env(), capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    half = autotrack.get_run(ids[0], store=postgres_location)
    assert half.status != "finished"  # never claims to be complete
    assert 0 < len(half.metric("train/loss")) < 2500
    report = sync(local, postgres_location)
    assert report.points > 0
    for run_id in ids:
        assert_same_run(local, postgres_location, run_id)
    assert sync(local, postgres_location).points == 0


def test_a_live_run_synced_twice_while_it_logs_ends_with_exactly_its_points(local, postgres_location, tmp_path):
    body = textwrap.dedent("""
        import sys, time, autotrack
        autotrack.set_store(sys.argv[1])
        with autotrack.start_run(name="live", experiment="sync") as run:
            print(run.id, flush=True)
            for s in range(6000):
                run.log_metric("loss", 1.0 / (s + 1), step=s)
                run.log_metric("acc", s / 6000, step=s)
                if s % 500 == 0:
                    run.flush()
                    time.sleep(0.05)
            sys.stdin.readline()  # stay live until the test says so
        """)
    child = subprocess.Popen([sys.executable, "-c", body, local], env=_env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    run_id = child.stdout.readline().strip()
    seen = []
    for _ in range(2):
        time.sleep(0.4)
        sync(local, postgres_location)
        rec = autotrack.get_run(run_id, store=postgres_location)
        assert rec.status == "running"
        loss = rec.metric("loss")
        # a prefix of what was logged, each point once
        assert loss["step"].tolist() == list(range(len(loss)))
        assert loss["value"].tolist() == [1.0 / (s + 1) for s in range(len(loss))]
        seen.append(len(loss))
    assert 0 < seen[0] <= seen[1]
    child.stdin.write("\n")
    child.stdin.close()
    assert child.wait(60) == 0
    sync(local, postgres_location)
    assert_same_run(local, postgres_location, run_id)
    rec = autotrack.get_run(run_id, store=postgres_location)
    assert rec.status == "finished" and len(rec.metric("loss")) == 6000 and len(rec.metric("acc")) == 6000
    assert rec.metric("acc")["value"].tolist() == [s / 6000 for s in range(6000)]


def test_the_sync_command(local, postgres_location, pg_server, tmp_path):
    ids = _fill(local, tmp_path)
    done = subprocess.run([sys.executable, "-m", "autotrack", "sync", "--from", local, "--to", postgres_location],
                          env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 runs created" in done.stdout and pg_server.password not in done.stdout + done.stderr
    for run_id in ids:
        assert_same_run(local, postgres_location, run_id)
    again = subprocess.run([sys.executable, "-m", "autotrack", "sync", "--from", local, "--to", postgres_location],
                           env=_env(), capture_output=True, text=True)
    assert again.returncode == 0 and "0 runs created" in again.stdout and " 0 points" in again.stdout
    assert np.isnan(autotrack.get_run("parent", store=postgres_location).metric("odd")["value"][0])


@pytest.mark.parametrize("target_kind", ["postgres", "sqlite"])
def test_concurrent_syncs_of_one_store_copy_each_point_once(local, postgres_location, tmp_path, target_kind):
    """Four `autotrack sync` processes started together on the same runs: each run is copied under
    a lock on the target, so every point, artifact and run arrives exactly once."""
    ids = _fill(local, tmp_path)
    target = postgres_location if target_kind == "postgres" else str(tmp_path / "other-local")
    body = textwrap.dedent("""
        import sys, time
        from autotrack.store import sync as s
        s.BATCH_POINTS = 200  # many small writes: the copies overlap in time
        while time.time() < float(sys.argv[3]):
            time.sleep(0.005)
        print(s.sync(sys.argv[1], sys.argv[2]).points, flush=True)
        """)
    start = str(time.time() + 3.0)
    procs = [subprocess.Popen([sys.executable, "-c", body, local, target, start], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    copied = sorted(int(out.strip()) for out, _ in outs)
    assert sum(copied) == 2500 + 4 + 1 + 1, copied  # every point once, across the four
    for run_id in ids:
        assert_same_run(local, target, run_id)
    assert sync(local, target).points == 0


def test_sync_registers_the_local_model_versions_in_the_team_store_once(local, postgres_location, tmp_path):
    """Versions made from synced runs are registered there with their bytes, numbered by the team
    store (someone else's version 1 stays version 1), and a second sync registers nothing."""
    ids = _fill(local, tmp_path)
    mine = [autotrack.register_model("ranker", run=ids[0], artifact=name, store=local, tags={"from": name},
                                     description="local") for name in ("w.bin", "ref.bin")]
    assert [v.version for v in mine] == [1, 2]
    from autotrack import _run

    previous = _run._store_override
    autotrack.set_store(postgres_location)
    try:
        with autotrack.start_run(name="theirs") as theirs:
            theirs.log_artifact(tmp_path / "w.bin", name="theirs.bin")
    finally:
        _run._store_override = previous
    autotrack.register_model("ranker", run=theirs.id, artifact="theirs.bin", store=postgres_location)

    report = sync(local, postgres_location)
    assert report.model_versions == 2 and "2 model versions registered" in str(report)
    team = autotrack.get_model("ranker", store=postgres_location)
    by_artifact = {v.artifact: v for v in team.versions}
    assert sorted(v.version for v in team.versions) == [1, 2, 3]
    assert by_artifact["theirs.bin"].version == 1  # the team store's own numbering is kept
    for local_version in mine:
        there = by_artifact[local_version.artifact]
        assert (there.run_id, there.sha256, there.size, there.tags, there.description, there.created) == (
            local_version.run_id, local_version.sha256, local_version.size, local_version.tags,
            local_version.description, local_version.created)
        assert there.read_bytes() == local_version.read_bytes() == (tmp_path / "w.bin").read_bytes()
    assert sync(local, postgres_location).model_versions == 0
    assert len(autotrack.get_model("ranker", store=postgres_location).versions) == 3
