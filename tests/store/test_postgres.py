"""What only the team store has to prove: many processes at once on one server, crash status across
hosts, the password kept out of everything, a read-only role, and artifacts in an S3 bucket.

Real servers (tests/_servers.py); values are read back through the public API and compared with
what the test logged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

import autotrack
from autotrack import StoreError
from autotrack.store import Heartbeat, NewRun, Owner

ROOT = Path(__file__).resolve().parents[2]


def _env(location: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STORE": location, "AUTOTRACK_CAPTURE": "0",
            "AUTOTRACK_SYSTEM_METRICS": "0", **extra}


def _password_free(pg_server, *texts: str) -> None:
    for text in texts:
        assert pg_server.password not in text


@pytest.fixture
def pg_backend(postgres_location):
    """The PostgreSQL store in use for the test (these tests are about PostgreSQL only)."""
    from autotrack import _run

    previous = _run._store_override
    st = autotrack.set_store(postgres_location)
    yield st
    while (run := autotrack.active_run()) is not None:
        run.end()
    autotrack.flush()
    _run._store_override = previous


# -- many processes --------------------------------------------------------------------------------


def test_forty_processes_migrate_once_and_lose_no_point(pg_server, postgres_location):
    """40 writers start at once on an empty database: one of them migrates, all of them write."""
    body = textwrap.dedent("""
        import sys, autotrack
        i = int(sys.argv[1])
        with autotrack.start_run(name=f"w{i}", experiment="forty") as run:
            for s in range(3000):
                run.log_metric("loss", i + s / 1e4, step=s)
                if s % 1000 == 999:
                    run.flush()
        """)
    procs = [subprocess.Popen([sys.executable, "-c", body, str(i)], env=_env(postgres_location),
                              stderr=subprocess.PIPE, text=True) for i in range(40)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for e in errors if e][:3]
    assert not any(errors), [e for e in errors if e][:3]  # no lock or connection warnings either
    with pg_server.admin(postgres_location.rsplit("/", 1)[1]) as conn:
        assert conn.execute("SELECT version, count(*) FROM autotrack_schema GROUP BY version ORDER BY version").fetchall() == [
            (1, 1), (2, 1)]
    frame = autotrack.runs(experiment="forty", store=postgres_location)
    assert len(frame) == 40 and set(frame["status"]) == {"finished"}
    for name in frame["name"]:
        i = int(name[1:])
        loss = autotrack.get_run(name, store=postgres_location).metric("loss")
        assert loss["step"].tolist() == list(range(3000))
        assert loss["value"].tolist() == [i + s / 1e4 for s in range(3000)]


def test_sigkill_keeps_every_point_logged_a_second_before_and_reads_crashed(postgres_location):
    body = textwrap.dedent("""
        import autotrack, time
        run = autotrack.start_run(name="victim")
        print(run.id, flush=True)
        s = 0
        while True:
            run.log_metric("x", float(s), step=s, time=time.time())
            s += 1
            time.sleep(0.002)
        """)
    child = subprocess.Popen([sys.executable, "-c", body], env=_env(postgres_location), stdout=subprocess.PIPE, text=True)
    run_id = child.stdout.readline().strip()
    time.sleep(3.0)
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    child.wait()
    rec = autotrack.get_run(run_id, store=postgres_location)
    assert rec.status == "crashed"  # same host: the pid check tells at once
    x = rec.metric("x")
    assert len(x) > 100
    # what is there is exactly what was logged (every step once, value = step), with no gap ...
    assert x["step"].tolist() == list(range(len(x)))
    assert x["value"].tolist() == [float(s) for s in range(len(x))]
    # ... and it reaches at least to one second before the kill
    assert x["time"].iloc[-1] >= killed_at - 1.0


def test_a_run_of_another_host_reads_crashed_only_when_its_heartbeat_is_stale(pg_backend):
    from autotrack.store import STALE_AFTER_S

    now = time.time()
    pg_backend.write([
        NewRun("a" * 32, "fresh", "hosts", None, now - 1000, Owner(4242, "gpu-box-17", None)),
        NewRun("b" * 32, "stale", "hosts", None, now - 1000, Owner(4242, "gpu-box-17", None)),
        Heartbeat(("a" * 32,), now - 5),
        Heartbeat(("b" * 32,), now - STALE_AFTER_S - 5),
    ])
    assert autotrack.get_run("fresh").status == "running"  # a slow writer is not a dead one
    assert autotrack.get_run("stale").status == "crashed"
    assert autotrack.runs(status="crashed")["name"].tolist() == ["stale"]
    assert autotrack.runs(where="status = 'running'")["name"].tolist() == ["fresh"]


def test_a_forked_child_opens_its_own_connection(pg_backend):
    run = autotrack.start_run(name="parent")
    run.log_metric("x", 1.0, step=0)
    run.flush()
    pid = os.fork()
    if pid == 0:  # the child writes a run of its own through a connection of its own
        code = 0
        try:
            with autotrack.start_run(name="child") as child:
                child.log_metric("y", 2.0, step=0)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.log_metric("x", 3.0, step=1)  # the parent's connection still works
    run.end()
    assert autotrack.get_run("parent").metric("x")["value"].tolist() == [1.0, 3.0]
    assert autotrack.get_run("child").summary == {"y": 2.0}


# -- the password ----------------------------------------------------------------------------------


def test_the_password_never_shows(pg_server, pg_backend, postgres_location, tmp_path, capsys):
    assert pg_server.password in postgres_location
    _password_free(pg_server, pg_backend.location, repr(pg_backend))
    # a script given the URL in its environment and its argv, with full capture (environment, source)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sys, autotrack
        with autotrack.start_run(name="p", params={"store": sys.argv[2]}) as run:
            run.log_metric("x", 1.0)
        """))
    env = _env(postgres_location, AUTOTRACK_CAPTURE="1", DATABASE_URL=postgres_location)
    done = subprocess.run([sys.executable, str(script), "--store", postgres_location], env=env, capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _password_free(pg_server, done.stdout, done.stderr)
    rec = autotrack.get_run("p")
    assert rec.params["store"].endswith(pg_backend.location.split("@")[1]) and rec.sections  # no credentials
    _password_free(pg_server, json.dumps(rec.to_dict(), default=str))
    # a wrong password, an unreachable server: clear errors, no password in them
    wrong = postgres_location.replace(pg_server.password, pg_server.password[::-1])
    with pytest.raises(StoreError, match="password authentication failed") as err:
        autotrack.runs(store=wrong)
    _password_free(pg_server, str(err.value))
    assert pg_server.password[::-1] not in str(err.value)
    closed = f"postgresql://u:{pg_server.password}@127.0.0.1:1/db"
    with pytest.raises(StoreError, match="127.0.0.1") as err:
        autotrack.runs(store=closed)
    _password_free(pg_server, str(err.value))
    result = subprocess.run([sys.executable, "-m", "autotrack", "runs", "--store", wrong], capture_output=True,
                            text=True, env=_env(wrong))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    _password_free(pg_server, result.stdout, result.stderr)
    out = capsys.readouterr()
    _password_free(pg_server, out.out, out.err)


def test_password_from_pgpassword(pg_server, postgres_location, monkeypatch):
    without = postgres_location.replace(f":{pg_server.password}@", "@")
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    from autotrack import _run

    previous = _run._store_override
    try:
        autotrack.set_store(without)
        with autotrack.start_run(name="env-pw") as run:
            run.log_metric("x", 1.0)
    finally:
        _run._store_override = previous
    assert autotrack.get_run("env-pw", store=without).summary == {"x": 1.0}


# -- a read-only role ------------------------------------------------------------------------------


def test_a_read_only_role_reads_everything_and_writes_nothing(pg_server, pg_backend, postgres_location, tmp_path):
    with autotrack.start_run(name="first", experiment="ro", params={"lr": 0.1}) as a:
        for s in range(10):
            a.log_metric("val/loss", 1.0 / (s + 1), step=s)
    with autotrack.start_run(name="second", experiment="ro", params={"lr": 0.01}) as b:
        b.log_metric("val/loss", 0.5, step=0)
    database = postgres_location.rsplit("/", 1)[1]
    with pg_server.admin(database) as conn:
        conn.execute("CREATE ROLE viewer LOGIN PASSWORD 'viewer-pw-77'")
        conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO viewer')
        conn.execute("GRANT USAGE ON SCHEMA public TO viewer")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO viewer")
    viewer = pg_server.url(database, user="viewer", password="viewer-pw-77")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "autotrack", *args, "--store", viewer], capture_output=True,
                              text=True, env=_env(viewer), cwd=tmp_path)

    listing = cli("runs", "--json")
    assert listing.returncode == 0, listing.stderr
    assert {r["name"] for r in json.loads(listing.stdout)} == {"first", "second"}
    shown = cli("show", "first", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["params"] == {"lr": 0.1}
    diff = cli("diff", "first", "second")
    assert diff.returncode == 0 and "lr" in diff.stdout, diff.stderr
    report = cli("report", "first", "second", "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    assert a.id in (tmp_path / "r.html").read_text()
    assert autotrack.get_run("first", store=viewer).metric("val/loss")["value"].tolist() == [1.0 / (s + 1) for s in range(10)]
    # writes: a clear error naming the missing privilege, no password in it
    for args in (("rm", "first", "--yes"),):
        result = cli(*args)
        assert result.returncode != 0
        assert "privilege" in result.stderr and "viewer" in result.stderr, result.stderr
        assert "viewer-pw-77" not in result.stderr + result.stdout
    with pytest.raises(StoreError, match="INSERT/UPDATE privilege") as err:
        autotrack.get_run("first", store=viewer).set_tags({"k": "v"})
    assert "viewer-pw-77" not in str(err.value)
    assert autotrack.get_run("first").tags == {}


# -- artifacts in S3 -------------------------------------------------------------------------------


def test_artifacts_in_s3_round_trip_deduplicated_and_verified(s3_server, s3_artifacts, pg_backend, tmp_path,
                                                               monkeypatch):
    from autotrack.store import s3 as s3mod

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)  # the smallest part S3 allows
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # three parts
    small = tmp_path / "small.txt"
    small.write_text("hello")
    st = pg_backend
    assert st.blobs.location == s3_artifacts
    with autotrack.start_run(name="s3") as run:
        sha_big = run.log_artifact(big, kind="checkpoint")
        run.log_artifact(small)
        run.log_artifact(small, name="again.txt")
        run.log_dict({"a": 1}, "d.json")
    rec = autotrack.get_run("s3")
    assert rec.read_artifact("big.bin") == big.read_bytes()
    assert rec.read_artifact("again.txt") == b"hello"
    assert json.loads(rec.read_artifact("d.json")) == {"a": 1}
    client = s3_server.client()
    bucket = s3_artifacts.split("/")[2]
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) == 3 and f"runs/{sha_big[:2]}/{sha_big}" in keys  # small.txt stored once
    head = client.head_object(Bucket=bucket, Key=f"runs/{sha_big[:2]}/{sha_big}")
    assert "-" in head["ETag"]  # a multipart upload's ETag
    # damaged in the bucket: the read says so instead of returning wrong bytes
    client.put_object(Bucket=bucket, Key=f"runs/{sha_big[:2]}/{sha_big}", Body=b"not the checkpoint")
    with pytest.raises(StoreError, match="big.bin"):
        autotrack.get_run("s3").read_artifact("big.bin")
    assert not st.blobs.verify(sha_big)
    # deleting the run frees its blobs in the bucket, except the one rewritten after its record was
    # made (someone may be storing it again); a full gc past the grace period takes that one too
    autotrack.delete_run(rec.id)
    left = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert left == [f"runs/{sha_big[:2]}/{sha_big}"]
    time.sleep(1.1)
    assert autotrack.gc(grace=0.0) == {"blobs": 1, "bytes": len(b"not the checkpoint")}
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


@pytest.fixture
def unreachable_bucket(monkeypatch):
    monkeypatch.setenv("AUTOTRACK_ARTIFACTS", "s3://nowhere/x")
    monkeypatch.setenv("AUTOTRACK_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    monkeypatch.delenv("AUTOTRACK_STRICT", raising=False)  # the user's mode: a warning, not an error
    from autotrack import _patching

    monkeypatch.setattr(_patching, "_warned", set())  # one warning per place: count ours, leave others theirs


def test_a_failing_bucket_never_raises_into_training(unreachable_bucket, pg_backend, tmp_path):
    assert pg_backend.blobs.location == "s3://nowhere/x"
    f = tmp_path / "model.pt"
    f.write_bytes(b"weights")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autotrack.start_run(name="lost") as run:
            sha = run.log_artifact(f, kind="model")
            run.log_text("notes", "notes.txt")
            run.log_metric("x", 1.0)
    messages = [str(w.message) for w in caught if "artifact" in str(w.message)]
    assert len(messages) == 1 and "very-secret-value" not in messages[0]
    rec = autotrack.get_run("lost")
    assert rec.status == "finished" and rec.summary == {"x": 1.0}
    by_name = {a.name: a for a in rec.artifacts}
    assert by_name["model.pt"].sha256 == sha and not by_name["model.pt"].stored
    assert "could not be stored" in by_name["model.pt"].metadata["lost"]
    assert "lost" in by_name["notes.txt"].metadata
    assert rec.read_artifact("model.pt") == b"weights"  # by reference, the file is still there


def test_doctor_on_the_team_store(pg_server, pg_backend, postgres_location):
    with autotrack.start_run(name="d") as run:
        run.log_metric("x", 1.0)
    done = subprocess.run([sys.executable, "-m", "autotrack", "doctor", "--json", "--store", postgres_location],
                          capture_output=True, text=True, env=_env(postgres_location))
    assert done.returncode == 0, done.stderr
    _password_free(pg_server, done.stdout, done.stderr)
    store = json.loads(done.stdout)["store"]
    assert store["schema_current"] and store["integrity"] == "ok" and store["path"] == pg_backend.location


def test_a_schema_1_team_store_migrates_forward_to_the_registry(pg_server, postgres_location, tmp_path, monkeypatch):
    """A database written before the registry (schema 1) gains its tables in place, once."""
    import autotrack.store.postgres as pg
    from autotrack import _run

    monkeypatch.setattr(pg, "SCHEMA_VERSION", 1)  # the code of before the registry
    old = pg.PostgresBackend(postgres_location)
    monkeypatch.setattr(_run, "_store_override", old)
    path = tmp_path / "model.bin"
    path.write_bytes(b"v1 era")
    with autotrack.start_run(name="old") as run:
        run.log_metric("loss", 0.5)
        run.log_artifact(path, "model.bin", "model")
    with pg_server.admin(postgres_location.rsplit("/", 1)[1]) as conn:
        assert conn.execute("SELECT max(version) FROM autotrack_schema").fetchone()[0] == 1
        assert conn.execute("SELECT to_regclass('alias_history')").fetchone()[0] is None
    monkeypatch.undo()

    previous = _run._store_override
    try:
        autotrack.set_store(postgres_location)  # this code: schema 2
        v = autotrack.register_model("legacy", run=run.id)
        assert (v.version, v.sha256, v.read_bytes()) == (1, autotrack.get_run("old").artifacts[0].sha256, b"v1 era")
        assert autotrack.get_run("old").metric("loss")["value"].tolist() == [0.5]
        autotrack.set_alias("legacy", "prod", 1)
        assert autotrack.get_model("legacy").aliases == {"prod": 1}
    finally:
        _run._store_override = previous
    with pg_server.admin(postgres_location.rsplit("/", 1)[1]) as conn:
        assert conn.execute("SELECT version, count(*) FROM autotrack_schema GROUP BY version ORDER BY version").fetchall() == [
            (1, 1), (2, 1)]
