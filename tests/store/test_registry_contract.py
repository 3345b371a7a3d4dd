"""The model registry's store contract: every backend numbers versions per name (distinct under 8
concurrent registering processes), moves aliases with the exact append-only history, rolls back,
keeps a forced-deleted run's versions, and its database refuses any edit of the history.

Each test runs once per backend (``backend`` / ``backend_location``, tests/store/conftest.py).
Expected values are written out in the test, never read from the store under test."""

from __future__ import annotations

import getpass
import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import autotrack
from autotrack.store import HOST

ROOT = Path(__file__).resolve().parents[2]


def _run_with_file(tmp_path: Path, content: bytes, name: str = "weights.bin", **params) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    with autotrack.start_run(params=params) as run:
        run.log_artifact(path, name, "model")
    return run.id


def test_versions_are_numbered_per_name_with_their_bytes_and_lineage(backend, tmp_path):
    a = _run_with_file(tmp_path, b"first", lr=0.1)
    b = _run_with_file(tmp_path, b"second!", lr=0.2)
    v1 = autotrack.register_model("churn", run=a, tags={"team": "growth"}, description="baseline")
    v2 = autotrack.register_model("churn", run=b)
    other = autotrack.register_model("fraud", run=a)
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert (v1.sha256, v1.size) == (hashlib.sha256(b"first").hexdigest(), 5)
    assert (v2.sha256, v2.size) == (hashlib.sha256(b"second!").hexdigest(), 7)
    assert v1.tags == {"team": "growth"} and v1.description == "baseline" and v2.tags == {}
    assert v1.user == getpass.getuser() and v1.host == HOST and not v1.run_deleted
    assert v1.run().params == {"lr": 0.1} and v2.run().id == b
    model = autotrack.get_model("churn")
    assert [(v.version, v.run_id) for v in model.versions] == [(1, a), (2, b)]
    assert model.version(2).read_bytes() == b"second!"
    assert [m.name for m in autotrack.list_models()] == ["churn", "fraud"]
    st = autotrack.get_store()
    assert st.model_version("churn", 3) is None and st.model_version("churn", 2**63) is None
    assert [(r.name, r.version) for r in st.versions_of_runs([a])] == [("churn", 1), ("fraud", 1)]


def test_alias_moves_and_rollbacks_give_the_exact_history(backend, tmp_path):
    for i in range(4):
        autotrack.register_model("churn", run=_run_with_file(tmp_path, f"v{i}".encode()))
    assert autotrack.set_alias("churn", "champion", 1).from_version is None
    autotrack.set_alias("churn", "champion", 2, reason="better auc")
    autotrack.set_alias("churn", "champion", 3)
    assert autotrack.set_alias("churn", "champion", 3) is None  # already there: not a move
    autotrack.set_alias("churn", "staging", 4)
    back = autotrack.rollback("churn", "champion", reason="v3 regressed")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    assert autotrack.rollback("churn", "champion").to_version == 1  # a rollback of a rollback goes further back
    with pytest.raises(autotrack.InvalidArgumentError, match="held no version before version 1"):
        autotrack.rollback("churn", "champion")
    autotrack.rollback("churn", "champion", to=4)
    with pytest.raises(autotrack.ModelNotFoundError, match="no version 9"):
        autotrack.set_alias("churn", "champion", 9)

    model = autotrack.get_model("churn")
    assert model.aliases == {"champion": 4, "staging": 4}
    assert [(h.alias, h.from_version, h.to_version, h.action, h.reason) for h in model.history] == [
        ("champion", None, 1, "set", None),
        ("champion", 1, 2, "set", "better auc"),
        ("champion", 2, 3, "set", None),
        ("staging", None, 4, "set", None),
        ("champion", 3, 2, "rollback", "v3 regressed"),
        ("champion", 2, 1, "rollback", None),
        ("champion", 1, 4, "rollback", None),
    ]
    assert all(h.user == getpass.getuser() and h.host == HOST for h in model.history)
    seqs, times = [h.seq for h in model.history], [h.time for h in model.history]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7 and times == sorted(times)
    assert model.version("champion").version == 4 and model.latest.aliases == ("champion", "staging")
    only = autotrack.get_store().alias_history("churn", "staging")
    assert [(m.from_version, m.to_version) for m in only] == [(None, 4)]


def test_rollback_refuses_when_the_alias_moved_meanwhile(backend, tmp_path, monkeypatch):
    from autotrack import _registry

    for i in range(3):
        autotrack.register_model("m", run=_run_with_file(tmp_path, f"{i}".encode()))
    autotrack.set_alias("m", "prod", 1)
    autotrack.set_alias("m", "prod", 2)
    st = autotrack.get_store()
    real = st.alias_history

    def stale_history(name, alias=None):  # someone moves the alias between our read and our write
        rows = real(name, alias)
        st.set_alias(_registry.SetAlias("m", "prod", 3, "set", None, "other", "h", time.time()))
        return rows

    monkeypatch.setattr(st, "alias_history", stale_history)
    with pytest.raises(autotrack.AliasConflictError, match="points at version 3, not 2"):
        autotrack.rollback("m", "prod")
    monkeypatch.undo()
    assert autotrack.get_model("m").aliases == {"prod": 3}
    assert [(h.to_version, h.user) for h in autotrack.get_model("m").history][-1] == (3, "other")


def test_a_forced_delete_keeps_the_versions_their_bytes_and_the_history(backend, tmp_path):
    rid = _run_with_file(tmp_path, b"keep me")
    autotrack.register_model("churn", run=rid)
    autotrack.register_model("churn", run=rid)
    autotrack.set_alias("churn", "prod", 2)
    with pytest.raises(autotrack.RunInUseError, match="model 'churn' version 1, model 'churn' version 2"):
        autotrack.delete_run(rid)
    before = autotrack.get_model("churn").history
    autotrack.delete_run(rid, force=True)
    autotrack.gc(grace=0)
    with pytest.raises(autotrack.RunNotFoundError):
        autotrack.get_run(rid)
    model = autotrack.get_model("churn")
    assert [(v.version, v.run_deleted) for v in model.versions] == [(1, True), (2, True)]
    assert model.latest.read_bytes() == b"keep me"  # not garbage: versions refer to it
    assert model.history == before
    with pytest.raises(autotrack.ModelNotFoundError, match="was deleted"):
        model.latest.run()


def _env(location: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_STORE": location, "AUTOTRACK_CAPTURE": "0",
            "AUTOTRACK_SYSTEM_METRICS": "0"}


def test_eight_processes_registering_at_once_get_distinct_numbers(backend, backend_location, tmp_path):
    rid = _run_with_file(tmp_path, b"shared")
    go = tmp_path / "go"
    body = textwrap.dedent("""
        import os, sys, time, autotrack
        autotrack.get_store().initialise()          # connected and migrated before the start line
        print("ready", flush=True)
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.001)
        print(autotrack.register_model("race", run=sys.argv[1]).version, flush=True)
        """)
    procs = [subprocess.Popen([sys.executable, "-c", body, rid, str(go)], env=_env(backend_location),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()  # all eight register at once
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    numbers = sorted(int(out.strip()) for out, _ in outputs)
    assert numbers == list(range(1, 9))
    versions = autotrack.get_model("race").versions
    assert [v.version for v in versions] == list(range(1, 9)) and {v.run_id for v in versions} == {rid}


def test_the_database_refuses_any_edit_of_the_alias_history(backend, backend_location, tmp_path):
    autotrack.register_model("m", run=_run_with_file(tmp_path, b"1"))
    autotrack.register_model("m", run=_run_with_file(tmp_path, b"2"))
    autotrack.set_alias("m", "prod", 1)
    autotrack.set_alias("m", "prod", 2)
    before = autotrack.get_model("m").history
    statements = ["UPDATE alias_history SET to_version = 1", "DELETE FROM alias_history"]
    if backend_location.startswith("postgresql://"):
        import psycopg

        statements.append("TRUNCATE alias_history")
        with psycopg.connect(backend_location, autocommit=True) as conn:  # the store's own role
            for statement in statements:
                with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
                    conn.execute(statement)
    else:
        conn = sqlite3.connect(backend.db_path)
        for statement in statements:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
        conn.close()
    assert autotrack.get_model("m").history == before
    # and no SQL in either backend updates or deletes it
    import inspect

    import autotrack.store.postgres as pg
    import autotrack.store.sqlite as sq

    for module in (sq, pg):
        source = inspect.getsource(module)
        assert "UPDATE alias_history" not in source and "DELETE FROM alias_history" not in source
