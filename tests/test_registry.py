"""The model registry without any ML framework: numbering, aliases, the append-only history,
rollback, lineage, the delete guard, the CLI, the loader registry. Framework round trips are in
integrations/test_registry_frameworks.py; the store contract cases on every backend in
tests/store/test_registry_contract.py."""

from __future__ import annotations

import getpass
import hashlib
import inspect
import json
import multiprocessing
import sqlite3

import pytest
from click.testing import CliRunner

import autotrack
from autotrack import _registry
from autotrack._cli import cli
from autotrack._cli_models import models_command
from autotrack.store import HOST, Backend

cli.add_command(models_command)


def _run_with_file(tmp_path, content: bytes, name: str = "weights.bin", **params) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    with autotrack.start_run(params=params) as run:
        run.log_artifact(path, name, "model")
    return run.id


def test_versions_are_numbered_per_name_and_link_to_their_run(store, tmp_path):
    a = _run_with_file(tmp_path, b"first", lr=0.1)
    b = _run_with_file(tmp_path, b"second", lr=0.2)
    v1 = autotrack.register_model("churn", run=a, tags={"team": "growth"}, description="baseline")
    v2 = autotrack.register_model("churn", run=b)
    other = autotrack.register_model("fraud", run=a)
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    assert v1.sha256 == hashlib.sha256(b"first").hexdigest() and v1.size == 5
    assert v1.tags == {"team": "growth"} and v1.description == "baseline"
    assert v1.user == getpass.getuser() and v1.host == HOST
    assert v1.run().params == {"lr": 0.1} and v2.run().id == b  # lineage
    model = autotrack.get_model("churn")
    assert [v.version for v in model.versions] == [1, 2] and model.latest.run_id == b
    assert [m.name for m in autotrack.list_models()] == ["churn", "fraud"]


def test_the_bytes_are_kept_even_when_the_original_file_changes(store, tmp_path):
    path = tmp_path / "ref.bin"
    path.write_bytes(b"original")
    with autotrack.start_run() as run:
        run.log_artifact(path, "ref.bin", "checkpoint", copy=False)
    v = autotrack.register_model("m", run=run.id, artifact="ref.bin")
    path.write_bytes(b"changed")
    assert autotrack.get_model("m").latest.read_bytes() == b"original"
    assert v.sha256 == hashlib.sha256(b"original").hexdigest()


def test_alias_moves_and_rollbacks_give_the_exact_history(store, tmp_path):
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
    times = [h.time for h in model.history]
    assert times == sorted(times)
    assert model.version("champion").version == 4 and model.latest.aliases == ("champion", "staging")


def test_rollback_refuses_when_the_alias_moved_meanwhile(store, tmp_path, monkeypatch):
    for i in range(3):
        autotrack.register_model("m", run=_run_with_file(tmp_path, f"{i}".encode()))
    autotrack.set_alias("m", "prod", 1)
    autotrack.set_alias("m", "prod", 2)
    st = autotrack.get_store()
    real = st.alias_history

    def stale_history(name, alias=None):  # someone moves the alias between our read and our write
        rows = real(name, alias)
        st.set_alias(_registry.SetAlias("m", "prod", 3, "set", None, "other", "h", 0.0))
        return rows

    monkeypatch.setattr(st, "alias_history", stale_history)
    with pytest.raises(autotrack.AliasConflictError, match="points at version 3, not 2"):
        autotrack.rollback("m", "prod")
    assert autotrack.get_model("m").aliases == {"prod": 3}


def test_bad_input_names_argument_value_and_fix(store, tmp_path):
    rid = _run_with_file(tmp_path, b"x")
    autotrack.register_model("m", run=rid)
    cases = [
        (lambda: autotrack.register_model("a/b", run=rid), "name", "'a/b'"),
        (lambda: autotrack.register_model("m", run=rid, artifact="nope.bin"), "artifact", "weights.bin"),
        (lambda: autotrack.register_model("m", run=rid, tags=["x"]), "tags", "dict"),
        (lambda: autotrack.set_alias("m", "3", 1), "alias", "a number would read as a version"),
        (lambda: autotrack.set_alias("m", "prod", True), "version", "version number"),
        (lambda: autotrack.load_model("m/x"), "ref", "'m@x'"),
    ]
    for call, argument, fix in cases:
        with pytest.raises(autotrack.InvalidArgumentError) as info:
            call()
        assert info.value.argument == argument and fix in str(info.value)
    with pytest.raises(autotrack.ModelNotFoundError, match="no version 7"):
        autotrack.set_alias("m", "prod", 7)
    with pytest.raises(autotrack.ModelNotFoundError, match="Did you mean 'm'"):
        autotrack.get_model("mm")
    with pytest.raises(autotrack.ModelNotFoundError, match="no alias 'prod'"):
        autotrack.load_model("m@prod")
    with pytest.raises(autotrack.InvalidArgumentError, match="no safe loader"):
        autotrack.load_model("m")  # a plain file: its bytes are there, but no loader guesses its format
    assert autotrack.get_model("m").latest.read_bytes() == b"x"


def _register_in_child(args):
    location, run_id, barrier = args
    autotrack.set_store(location)
    barrier.wait()
    return autotrack.register_model("race", run=run_id).version


def test_eight_processes_registering_at_once_get_distinct_numbers(store, tmp_path):
    rid = _run_with_file(tmp_path, b"shared")
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(8)
        # close() and join(), not the context manager's terminate(): a worker that terminate()'s
        # SIGTERM finds blocked on the task queue's lock was once left waiting there forever
        pool = ctx.Pool(8)
        try:
            numbers = pool.map(_register_in_child, [(str(store.root), rid, barrier)] * 8)
        finally:
            pool.close()
            pool.join()
    assert sorted(numbers) == list(range(1, 9))
    assert [v.version for v in autotrack.get_model("race").versions] == list(range(1, 9))


def test_deleting_a_run_a_version_refers_to_is_refused_unless_forced(store, tmp_path):
    rid = _run_with_file(tmp_path, b"keep me")
    autotrack.register_model("churn", run=rid)
    autotrack.register_model("churn", run=rid)
    with pytest.raises(autotrack.RunInUseError, match="model 'churn' version 1, model 'churn' version 2") as info:
        autotrack.delete_run(rid)
    assert info.value.versions == [("churn", 1), ("churn", 2)]
    assert autotrack.get_run(rid).id == rid
    result = CliRunner().invoke(cli, ["rm", rid, "--yes", "--store", str(store.root)])
    assert result.exit_code == 1 and "model 'churn' version 1" in result.output and "Traceback" not in result.output

    autotrack.delete_run(rid, force=True)
    autotrack.gc(grace=0)
    with pytest.raises(autotrack.RunNotFoundError):
        autotrack.get_run(rid)
    v = autotrack.get_model("churn").latest
    assert v.run_deleted and v.run_id == rid
    assert v.read_bytes() == b"keep me"  # the version's bytes are not garbage
    with pytest.raises(autotrack.ModelNotFoundError, match="was deleted"):
        v.run()


def test_the_alias_history_cannot_be_edited(store, tmp_path):
    autotrack.register_model("m", run=_run_with_file(tmp_path, b"1"))
    autotrack.register_model("m", run=_run_with_file(tmp_path, b"2"))
    autotrack.set_alias("m", "prod", 1)
    autotrack.set_alias("m", "prod", 2)
    before = autotrack.get_model("m").history
    # no public function, and no Backend method, edits or removes history entries
    public = [n for n in autotrack.__all__ if callable(getattr(autotrack, n))]
    assert not [n for n in public if any(w in n.lower() for w in ("history", "delete_alias", "unset"))]
    backend_methods = [n for n, _ in inspect.getmembers(Backend, inspect.isfunction)]
    assert not [n for n in backend_methods if "history" in n and n != "alias_history"]
    with pytest.raises(AttributeError):
        before[0].to_version = 9  # frozen
    # no SQL in the package updates or deletes it
    import autotrack.store.sqlite as sq

    source = inspect.getsource(sq)
    assert "UPDATE alias_history" not in source and "DELETE FROM alias_history" not in source
    # and the database itself refuses, whoever asks
    conn = sqlite3.connect(store.db_path)
    for statement in ("UPDATE alias_history SET to_version = 1", "DELETE FROM alias_history"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()
    # deleting the runs (forced) keeps the history too
    for v in autotrack.get_model("m").versions:
        autotrack.delete_run(v.run_id, force=True)
    assert autotrack.get_model("m").history == before


def test_cli_models_list_show_alias_rollback_diff(store, tmp_path):
    a = _run_with_file(tmp_path, b"aaaa", lr=0.1)
    b = _run_with_file(tmp_path, b"bbbbbbbb", lr=0.2)
    autotrack.register_model("churn", run=a)
    autotrack.register_model("churn", run=b)
    runner = CliRunner()
    at = ["--store", str(store.root)]

    out = runner.invoke(cli, ["models", "alias", "churn", "champion", "1", *at])
    assert out.exit_code == 0, out.output
    assert "unset -> version 1" in out.output
    out = runner.invoke(cli, ["models", "alias", "churn", "champion", "2", "--reason", "new data", *at])
    assert "version 1 -> version 2" in out.output
    out = runner.invoke(cli, ["models", "rollback", "churn", "champion", *at])
    assert out.exit_code == 0 and "version 2 -> version 1 (rollback)" in out.output

    out = runner.invoke(cli, ["models", *at])
    assert out.exit_code == 0 and "churn" in out.output and "champion->1" in out.output
    out = runner.invoke(cli, ["models", "show", "churn", "--json", *at])
    shown = json.loads(out.output)
    assert shown["aliases"] == {"champion": 1}
    assert [(h["from_version"], h["to_version"], h["action"], h["reason"]) for h in shown["history"]] == [
        (None, 1, "set", None), (1, 2, "set", "new data"), (2, 1, "rollback", None)]
    out = runner.invoke(cli, ["models", "show", "churn", *at])
    assert out.exit_code == 0 and "alias history" in out.output and "new data" in out.output

    out = runner.invoke(cli, ["models", "diff", "churn", "1", "2", "--json", *at])
    assert out.exit_code == 0, out.output
    diff = json.loads(out.output)
    assert diff["files"]["a"]["size"] == 4 and diff["files"]["b"]["size"] == 8
    assert diff["files"]["b"]["sha256"] == hashlib.sha256(b"bbbbbbbb").hexdigest()
    assert diff["runs"]["params"] == {"changed": {"lr": [0.1, 0.2]}}
    out = runner.invoke(cli, ["models", "diff", "churn", "champion", "2", *at])
    assert out.exit_code == 0 and "different bytes" in out.output

    out = runner.invoke(cli, ["models", "rollback", "churn", "nope", *at])
    assert out.exit_code == 1 and "no alias 'nope'" in out.output and "Traceback" not in out.output


def test_loaders_come_from_the_integrations_and_a_third_party_one_plugs_in(store, tmp_path, monkeypatch):
    """The core knows no framework: with no loader registered a .skops file is of an unknown
    framework and nothing loads it; a loader registered through the SDK is used for its suffix."""
    import ast

    from autotrack.integrations.base import register_model_loader

    source = ast.parse(inspect.getsource(_registry))
    imported = {a.name.split(".")[0] for n in ast.walk(source) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(source) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"sklearn", "skops", "joblib", "torch", "lightning", "xgboost", "pickle"}

    monkeypatch.setattr(_registry, "_loaders", {})  # as if no integration had registered one
    monkeypatch.setattr(_registry, "_registered_loaders", lambda: list(_registry._loaders.values()))
    rid = _run_with_file(tmp_path, b"PK-not-really", "model.skops")
    v = autotrack.register_model("bare", run=rid)
    assert (v.framework, v.format) == ("unknown", None)
    with pytest.raises(autotrack.InvalidArgumentError, match="no safe loader"):
        autotrack.load_model("bare")

    calls = []

    def load_toy(version, data, *, model=None, trusted=None, allow_pickle=False):
        calls.append((version.ref, model, trusted, allow_pickle))
        return data.decode()[::-1]

    register_model_loader("toy", load_toy, formats=("toy",), suffixes={".TOY": "toy"})
    toy = autotrack.register_model("toy", run=_run_with_file(tmp_path, b"abc", "m.toy"))
    assert (toy.framework, toy.format) == ("toy", "toy")
    assert autotrack.load_model("toy", model="x", trusted=["t"]) == "cba"
    assert calls == [("toy/1", "x", ["t"], False)]
    with pytest.raises(autotrack.InvalidArgumentError) as info:
        register_model_loader("toy", load_toy, suffixes={"toy": "toy"})
    assert info.value.argument == "suffixes" and "'.skops'" in str(info.value)
