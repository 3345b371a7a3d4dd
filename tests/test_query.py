"""autotrack.runs(), get_run() lookups, and the where/order_by language."""

from __future__ import annotations

import sqlite3

import pytest

import autotrack
from autotrack import InvalidArgumentError, QuerySyntaxError, RunNotFoundError, StoreVersionError


@pytest.fixture
def grid(store):
    truth = []
    for i, lr in enumerate([0.1, 0.01, 0.001, 0.0001]):
        with autotrack.start_run(name=f"lr-{i}", experiment="house-prices" if i < 3 else "other") as run:
            run.log_params({"lr": lr, "opt": "adam" if i % 2 else "sgd"})
            rmse = 1.0 / (i + 1)
            run.log_metric("val/rmse", 2.0, step=0)
            run.log_metric("val/rmse", rmse, step=1)
            run.set_tag("seed", str(i))
        truth.append({"id": run.id, "lr": lr, "rmse": rmse, "exp": run.experiment})
    return truth


def test_runs_has_one_row_per_run_with_last_values(grid):
    frame = autotrack.runs()
    assert len(frame) == 4
    for t in grid:
        row = frame[frame["id"] == t["id"]].iloc[0]
        assert row["params.lr"] == t["lr"] and row["metrics.val/rmse"] == t["rmse"]
        assert row["experiment"] == t["exp"] and row["status"] == "finished"
    for column in ("id", "name", "experiment", "status", "start", "duration", "params.opt", "tags.seed"):
        assert column in frame.columns
    assert list(frame["start"]) == sorted(frame["start"], reverse=True)  # newest first


def test_runs_filters_by_experiment_and_status(grid):
    assert set(autotrack.runs(experiment="house-prices")["id"]) == {t["id"] for t in grid if t["exp"] == "house-prices"}
    assert len(autotrack.runs(status="failed")) == 0
    assert len(autotrack.runs(status=["finished", "failed"])) == 4
    with pytest.raises(InvalidArgumentError, match="status"):
        autotrack.runs(status="done")


def test_where_and_order_by(grid):
    frame = autotrack.runs(where="params.lr < 0.05 and metrics.val/rmse < 0.4", order_by="metrics.val/rmse DESC")
    expected = sorted((t for t in grid if t["lr"] < 0.05 and t["rmse"] < 0.4), key=lambda t: -t["rmse"])
    assert frame["id"].tolist() == [t["id"] for t in expected]
    frame = autotrack.runs(where="params.opt = 'adam' or tags.seed in ('0')", order_by="params.lr")
    expected = sorted((t for i, t in enumerate(grid) if i % 2 or i == 0), key=lambda t: t["lr"])
    assert frame["id"].tolist() == [t["id"] for t in expected]
    assert len(autotrack.runs(where="not (params.lr >= 0.01)")) == 2
    assert autotrack.runs(where="name like 'lr-%' and lr > 0.05")["params.lr"].tolist() == [0.1]
    assert len(autotrack.runs(limit=2)) == 2


def test_where_and_order_by_min_and_max_of_a_metric(store):
    truth = {}
    for i, curve in enumerate([[3.0, 0.5, 2.0], [1.0, 0.9, 0.8], [0.7, 4.0, 5.0]]):
        with autotrack.start_run(name=f"c{i}") as run:
            for s, v in enumerate(curve):
                run.log_metric("val/loss", v, step=s)
        truth[run.id] = curve
    by_min = sorted(truth, key=lambda i: min(truth[i]))
    assert autotrack.runs(order_by="min(metrics.val/loss)")["id"].tolist() == by_min
    assert autotrack.runs(order_by="MAX(metrics.val/loss) desc")["id"].tolist() == sorted(truth, key=lambda i: -max(truth[i]))
    assert set(autotrack.runs(where="min(metrics.val/loss) < 0.75")["id"]) == {i for i in truth if min(truth[i]) < 0.75}
    assert set(autotrack.runs(where="max(metrics.val/loss) >= 3 and metrics.val/loss > 1.5")["id"]) == {
        i for i in truth if max(truth[i]) >= 3 and truth[i][-1] > 1.5}
    assert autotrack.count_runs(where="min(metrics.nope) < 1") == 0
    with pytest.raises(InvalidArgumentError, match="min"):
        autotrack.runs(order_by="min(metrics.val/los)")


@pytest.mark.parametrize(
    "where",
    ["__import__('os').system('echo pwned')", "params.lr <", "params.lr < 0.1 and", "(params.lr < 1", "params.lr ~ 3", ""],
)
def test_where_rejects_what_it_cannot_parse(grid, where):
    with pytest.raises(QuerySyntaxError) as info:
        autotrack.runs(where=where)
    assert info.value.argument == "where"


def test_order_by_unknown_column_suggests(grid):
    with pytest.raises(InvalidArgumentError, match="metrics.val/rmse"):
        autotrack.runs(order_by="metrics.val/rmsee")


def test_get_run_by_prefix_and_name(grid):
    rid = grid[0]["id"]
    assert autotrack.get_run(rid[:10]).id == rid
    assert autotrack.get_run("lr-2").id == grid[2]["id"]


def test_get_run_unknown_id_suggests_closest(grid):
    rid = grid[1]["id"]
    with pytest.raises(RunNotFoundError) as info:
        autotrack.get_run(rid[:-1] + ("0" if rid[-1] != "0" else "1"))
    assert rid in info.value.candidates
    assert "autotrack runs" in str(info.value)


def test_get_run_ambiguous_prefix(store):
    ids = {autotrack.start_run().id for _ in range(40)}
    autotrack.flush()  # reading never drives the writer: what this process logged is read once flushed
    common = {i[0] for i in ids}
    prefix = next(p for p in common if sum(i.startswith(p) for i in ids) > 1)
    with pytest.raises(RunNotFoundError, match="more than one run"):
        autotrack.get_run(prefix)


def test_empty_store_reads_as_no_runs(tmp_path):
    frame = autotrack.runs(store=tmp_path / "nothing-here")
    assert frame.empty and "id" in frame.columns
    with pytest.raises(RunNotFoundError):
        autotrack.get_run("abc", store=tmp_path / "nothing-here")


def test_newer_schema_gives_clear_error(tmp_path):
    from autotrack._store import SCHEMA_VERSION, Store

    st = Store(tmp_path / "s")
    st.initialise()
    conn = sqlite3.connect(st.db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreVersionError, match="Upgrade autotrack") as info:
        Store(tmp_path / "s").initialise()
    assert info.value.found == SCHEMA_VERSION + 1


def test_delete_run(grid):
    autotrack.delete_run(grid[0]["id"])
    assert grid[0]["id"] not in set(autotrack.runs()["id"])
    with pytest.raises(RunNotFoundError):
        autotrack.get_run(grid[0]["id"])


def test_children_read_in_one_batch_equal_each_childs_own_reads(store):
    """`RunRecord.children` reads every child's params, tags and metric stats in one statement
    each (a study's page with thousands of trials); the values are each child's own."""
    with autotrack.start_run(name="parent") as parent:
        for i in range(5):
            with autotrack.start_run(name=f"c{i}", parent=parent, params={"i": i, "lr": 0.1 * i},
                                     tags={"trial": str(i)} if i % 2 else None) as child:
                for step in range(i + 1):
                    child.log_metric("loss", 1.0 / (step + 1), step=step)
    autotrack.flush()
    children = autotrack.get_run(parent.id).children
    assert [c.name for c in children] == [f"c{i}" for i in range(5)]
    for c in children:
        alone = autotrack.get_run(c.id)
        assert "_params" in c.__dict__ and "tags" in c.__dict__  # filled by the batch, not read one by one
        assert c.params == alone.params and c.tags == alone.tags
        assert c.metric_stats() == alone.metric_stats() and c.summary == alone.summary
