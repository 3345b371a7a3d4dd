"""Bad input that used to raise (or to poison the writer): each is stored as a safe description,
or refused at the log call with a clear error, and read back through the public API."""

from __future__ import annotations

import json
import sqlite3

import pytest

import autotrack
from autotrack import InvalidArgumentError, QuerySyntaxError
from autotrack import _values
from autotrack._where import MAX_DEPTH, MAX_TERMS, parse_where


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")

    __str__ = __repr__


class RaisingGetattr:
    def __getattr__(self, name: str) -> object:
        raise KeyError(name)

    def __repr__(self) -> str:
        return "RaisingGetattr()"


def _deep_dict(n: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(n):
        node["a"] = {}
        node = node["a"]
    node["leaf"] = 1
    return root


def _deep_list(n: int) -> list:
    root: list = []
    node = root
    for _ in range(n):
        node.append([])
        node = node[0]
    return root


def test_params_and_tags_with_hostile_objects_never_raise(store):
    with autotrack.start_run() as run:
        run.log_params({"repr": RaisingRepr(), "getattr": RaisingGetattr(), "deep": _deep_dict(5000),
                        "deep_list": _deep_list(5000), "lr": 0.1, "in_list": [RaisingRepr()]})
        run.set_tags({"repr": RaisingRepr(), "getattr": RaisingGetattr(), "deep": _deep_list(5000)})
    rec = autotrack.get_run(run.id)
    assert rec.params["repr"] == "<unrepresentable RaisingRepr: RuntimeError>"
    assert rec.params["in_list"] == ["<unrepresentable RaisingRepr: RuntimeError>"]
    assert rec.params["getattr"] == "RaisingGetattr()"
    assert rec.params["lr"] == 0.1
    deep = [k for k in rec.params if k.startswith("deep.")]
    assert len(deep) == 1 and deep[0] == "deep" + ".a" * (_values.MAX_DEPTH - 1)
    assert rec.params[deep[0]] == f"<dict nested deeper than {_values.MAX_DEPTH} levels>"
    node, depth = rec.params["deep_list"], 0  # lists are kept 21 levels deep, then a short repr
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert depth == 21 and node.startswith("[[[") and len(node) < 200
    assert rec.tags["repr"] == "<unrepresentable RaisingRepr: RuntimeError>"
    assert rec.tags["getattr"] == "RaisingGetattr()"
    assert rec.tags["deep"].startswith("[[[")


def test_circular_params_are_described(store):
    a: dict = {"x": 1}
    a["self"] = a
    with autotrack.start_run() as run:
        run.log_params({"a": a})
    assert autotrack.get_run(run.id).params == {"a.x": 1, "a.self": "<circular reference>"}


def test_longdouble_is_a_metric_value(store):
    np = pytest.importorskip("numpy")
    with autotrack.start_run() as run:
        run.log_metric("x", np.longdouble(0.25), step=0)
        run.log_metric("x", np.longdouble("1e400"), step=1)  # beyond float64: +inf, as NaN/inf are kept
        run.log_metric("x", np.float32(1.5), step=2)
    assert autotrack.get_run(run.id).metric("x")["value"].tolist() == [0.25, float("inf"), 1.5]


SURROGATE = "/data/caf\udce9.csv"  # what Python makes of the non-UTF-8 file name b"/data/caf\xe9.csv"


def test_lone_surrogates_are_escaped_and_stored(store):
    with autotrack.start_run(name=f"run-{SURROGATE}") as run:
        run.log_params({f"path{SURROGATE}": SURROGATE, "nested": {"file": [SURROGATE]}, "odd": "\ud800x"})
        run.set_tags({"file": SURROGATE, f"t{SURROGATE}": "x"})
        run.log_metric(f"loss{SURROGATE}", 1.0, step=0)
        run.log_bytes(b"data", f"files/{SURROGATE.rsplit('/', 1)[-1]}")
        run.log_metric("ok", 2.0, step=0)
    assert autotrack.flush()
    rec = autotrack.get_run(run.id)
    escaped = "/data/caf\\xe9.csv"
    assert rec.name == f"run-{escaped}"
    assert rec.params[f"path{escaped}"] == escaped
    assert rec.params["nested.file"] == [escaped]
    assert rec.params["odd"] == "\\ud800x"
    assert rec.tags == {"file": escaped, f"t{escaped}": "x"}
    assert rec.summary == {f"loss{escaped}": 1.0, "ok": 2.0}
    assert [a.name for a in rec.artifacts] == ["files/caf\ufffd.csv"]  # a backslash would read as a separator


@pytest.mark.parametrize("step", [2**63, -(2**63) - 1, 10**30])
def test_steps_beyond_64_bits_are_refused_at_the_call(store, step):
    with autotrack.start_run() as run:
        with pytest.raises(InvalidArgumentError, match="64-bit") as info:
            run.log_metric("x", 1.0, step=step)
        run.log_metric("x", 1.0, step=2**63 - 1)
        run.log_metric("x", 2.0, step=-(2**63))
    assert info.value.argument == "step" and info.value.value == step
    assert sorted(autotrack.get_run(run.id).metric("x")["step"].tolist()) == [-(2**63), 2**63 - 1]


def test_where_with_many_terms_or_deep_nesting_is_a_clear_error():
    many = " or ".join(f"params.seed = {i}" for i in range(1000))
    with pytest.raises(QuerySyntaxError, match=f"at most {MAX_TERMS} comparisons") as info:
        parse_where(many)
    assert info.value.argument == "where" and "in (" in str(info.value)
    deep = "(" * 3000 + "params.lr < 1" + ")" * 3000
    with pytest.raises(QuerySyntaxError, match=f"at most {MAX_DEPTH} levels"):
        parse_where(deep)
    with pytest.raises(QuerySyntaxError, match="levels"):
        parse_where("not " * 3000 + "params.lr < 1")
    # at the limits the expression still works
    assert parse_where(" or ".join(f"params.seed = {i}" for i in range(MAX_TERMS)))[0] == "or"
    assert parse_where("(" * MAX_DEPTH + "params.lr < 1" + ")" * MAX_DEPTH) == ("cmp", "params.lr", "<", 1)


def test_where_limits_through_the_cli(store, tmp_path):
    from click.testing import CliRunner

    from autotrack._cli import cli

    with autotrack.start_run(params={"seed": 1}):
        pass
    autotrack.flush()
    many = " or ".join(f"params.seed = {i}" for i in range(1000))
    result = CliRunner().invoke(cli, ["runs", "--store", str(store.root), "--where", many])
    assert result.exit_code != 0
    assert "at most" in result.output and "RecursionError" not in result.output
    assert not isinstance(result.exception, RecursionError)


def test_stored_json_of_hostile_params_is_plain_utf8(store):
    """What reaches SQLite is valid UTF-8 JSON (what made the writer drop whole batches)."""
    with autotrack.start_run() as run:
        run.log_params({"p": SURROGATE, "r": RaisingRepr()})
    autotrack.flush()
    conn = sqlite3.connect(store.root / "autotrack.db")
    values = [v for (v,) in conn.execute("SELECT value FROM params")]
    conn.close()
    assert sorted(json.loads(v) for v in values) == sorted(["/data/caf\\xe9.csv",
                                                            "<unrepresentable RaisingRepr: RuntimeError>"])
