"""A store written before the storage seam (schema 1) opens and migrates forward in place.

The fixture ``fixtures/schema1`` was written by commit 0fd05fc with::

    autotrack.set_store(DIR)
    with autotrack.start_run(name="v1-a", experiment="legacy",
                             params={"lr": 0.01, "batch_size": 128, "model": {"depth": 3}}, tags={"team": "x"}) as run:
        for i in range(50):
            run.log_metric("train/loss", 1.0 / (i + 1), step=i)
        run.log_metric("val/acc", 0.5, step=0); run.log_metric("val/acc", float("nan"), step=1)
        run.log_metric("val/acc", 0.75, step=2)
        run.set_info("config", {"epochs": 2})
        run.log_artifact("v1artifact.txt")            # contents: "hello v1\\n"
        with autotrack.start_run(name="v1-child") as child:
            child.log_metric("score", 3.0, step=5); child.log_metric("score", 4.0, step=7)
    with autotrack.start_run(name="v1-b", experiment="legacy", params={"lr": 0.1}) as run:
        run.log_metric("train/loss", 2.0)
"""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path

import autotrack
from autotrack.store.sqlite import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "schema1"


def test_schema_1_store_migrates_forward_in_place(tmp_path, monkeypatch):
    store = tmp_path / "old"
    shutil.copytree(FIXTURE, store)
    assert sqlite3.connect(store / "autotrack.db").execute("PRAGMA user_version").fetchone()[0] == 1

    frame = autotrack.runs(store=store, order_by="name")
    assert frame["name"].tolist() == ["v1-a", "v1-b", "v1-child"]
    assert sqlite3.connect(store / "autotrack.db").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    a = autotrack.get_run("v1-a", store=store)
    assert a.status == "finished" and a.experiment == "legacy"
    assert a.params == {"lr": 0.01, "batch_size": 128, "model.depth": 3}
    assert a.tags == {"team": "x"} and a.info("config") == {"epochs": 2}
    assert a.metric("train/loss")["value"].tolist() == [1.0 / (i + 1) for i in range(50)]
    acc = a.metric("val/acc")["value"].tolist()
    assert acc[0] == 0.5 and math.isnan(acc[1]) and acc[2] == 0.75
    assert a.read_artifact("v1artifact.txt") == b"hello v1\n"
    assert [c.name for c in a.children] == ["v1-child"]
    assert autotrack.get_run("v1-child", store=store).metric("score")["step"].tolist() == [5, 7]
    # the numeric last values the new schema sorts and filters on were filled from the old ones
    best = autotrack.runs(store=store, where="metrics.train/loss < 1", order_by="metrics.train/loss")
    assert best["name"].tolist() == ["v1-a"]
    assert autotrack.runs(store=store, where="metrics.val/acc = 0.75")["name"].tolist() == ["v1-a"]

    # and it keeps working as a store: new runs next to the migrated ones
    from autotrack import _run

    monkeypatch.setattr(_run, "_store_override", None)
    autotrack.set_store(store)
    with autotrack.start_run(name="v2", experiment="legacy") as run:
        run.log_metric("train/loss", 0.5)
    assert sorted(autotrack.runs(store=store)["name"]) == ["v1-a", "v1-b", "v1-child", "v2"]
    assert sorted(autotrack.runs(store=store, experiment="legacy")["name"]) == ["v1-a", "v1-b", "v2"]
