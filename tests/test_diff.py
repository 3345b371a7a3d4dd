from __future__ import annotations

import io
import json

import pytest

import autotrack
from autotrack._capture.source import DIFF_ARTIFACT
from autotrack._diff import diff_runs, metric_goal, render_diff


def _run(name, *, params, losses, accs, packages, env, commit, patch, script, seeds, hardware, data):
    with autotrack.start_run(name=name, experiment="diff", params=params) as run:
        for i, (loss, acc) in enumerate(zip(losses, accs)):
            run.log_metrics({"train/loss": loss, "val/acc": acc}, step=i)
        run.set_info("environment", {"python": "3.11.7", "packages": packages, "env": env})
        run.set_info("source", {"entry_point": "train.py", "argv": ["--lr", str(params["lr"])], "cwd": ".",
                                "git": {"commit": commit, "branch": "main", "remote": None, "dirty": bool(patch)}})
        if patch:
            run.log_text(patch, DIFF_ARTIFACT)
        run.log_text(script, "source/train.py")
        run.set_info("seeds", seeds)
        run.set_info("hardware", hardware)
        run.set_info("data", data)
    return run.id


@pytest.fixture
def two_runs(store):
    common = dict(hardware={"cpu": {"model": "x86", "cores": 8}}, data={"train": {"sha256": "aa", "rows": 10}})
    a = _run("a", params={"lr": 0.1, "depth": 3, "opt": "sgd"}, losses=[1.0, 0.5, 0.7], accs=[0.5, 0.9, 0.8],
             packages={"numpy": "1.26.4", "torch": "2.1.0", "six": "1.16"}, env={"OMP_NUM_THREADS": "4"},
             commit="abc123", patch="--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", script="print(1)\nlr = 0.1\n",
             seeds={"python": 1, "numpy": 1}, **common)
    b = _run("b", params={"lr": 0.01, "depth": 3, "batch": 32}, losses=[1.0, 0.4, 0.3], accs=[0.5, 0.6, 0.95],
             packages={"numpy": "2.0.1", "torch": "2.0.0", "rich": "13.0"}, env={"OMP_NUM_THREADS": "4"},
             commit="def456", patch="", script="print(1)\nlr = 0.01\n",
             seeds={"python": 1, "numpy": 2}, **common)
    return a, b


def test_params_metrics_and_packages(two_runs):
    a, b = two_runs
    d = diff_runs(a, b)
    assert d["params"] == {"changed": {"lr": [0.1, 0.01]}, "added": {"batch": 32}, "removed": {"opt": "sgd"}}
    loss = d["metrics"]["train/loss"]
    assert loss["goal"] == "min"
    assert loss["final"] == [0.7, 0.3, pytest.approx(0.3 - 0.7)]
    assert loss["best"] == [0.5, 0.3, pytest.approx(0.3 - 0.5)]
    acc = d["metrics"]["val/acc"]
    assert acc["goal"] == "max" and acc["best"][:2] == [0.9, 0.95] and acc["final"][:2] == [0.8, 0.95]
    assert d["packages"] == {"upgraded": {"numpy": ["1.26.4", "2.0.1"]}, "downgraded": {"torch": ["2.1.0", "2.0.0"]},
                             "added": {"rich": "13.0"}, "removed": {"six": "1.16"}}
    assert d["seeds"] == {"changed": {"numpy": [1, 2]}}
    # unchanged things are not listed
    assert "depth" not in json.dumps(d["params"])
    assert "hardware" not in d and "data" not in d and "environment" not in d
    json.dumps(d)  # --json output works


def test_code_section(two_runs):
    a, b = two_runs
    code = diff_runs(a, b)["code"]
    assert code["commit"] == ["abc123", "def456"]
    assert code["dirty"] == [True, False]
    assert "-+b" in code["patch"]  # A's patch line is gone in B
    assert "-lr = 0.1" in code["scripts"]["train.py"] and "+lr = 0.01" in code["scripts"]["train.py"]
    assert "branch" not in code


def test_identical_runs_have_no_sections(store):
    ids = []
    for _ in range(2):
        with autotrack.start_run(experiment="same", params={"lr": 1}) as run:
            run.log_metric("loss", 2.0, step=0)
            run.set_info("environment", {"packages": {"numpy": "1"}})
        ids.append(run.id)
    d = diff_runs(*ids)
    assert set(d) == {"a", "b"}
    out = io.StringIO()
    from rich.console import Console

    render_diff(d, Console(file=out, width=120))
    assert "No differences" in out.getvalue()


def test_render_lists_everything(two_runs):
    from rich.console import Console

    out = io.StringIO()
    render_diff(diff_runs(*two_runs), Console(file=out, width=160))
    text = out.getvalue()
    for word in ("lr", "batch", "train/loss", "numpy", "upgraded", "abc123", "lr = 0.01", "seeds"):
        assert word in text, word


def test_missing_sections_are_fine(store):
    with autotrack.start_run() as r1:
        pass
    with autotrack.start_run() as r2:
        r2.set_info("hardware", {"gpus": [{"name": "A100"}]})
    d = diff_runs(r1.id, r2.id)
    assert d["hardware"] == {"added": {"gpus.0.name": "A100"}}


@pytest.mark.parametrize("key,goal", [("train/loss", "min"), ("val/rmse", "min"), ("val/error_rate", "min"),
                                      ("val/acc", "max"), ("val/f1", "max"), ("epoch_time", "min"), ("val/auc", "max")])
def test_goal_rule(key, goal):
    assert metric_goal(key) == goal


def test_system_metrics_listed_apart(store):
    ids = []
    for cpu in (10.0, 90.0):
        with autotrack.start_run() as run:
            run.log_metrics({"system/cpu_percent": cpu, "train/loss": 1.0}, step=0)
        ids.append(run.id)
    d = diff_runs(*ids)
    assert "metrics" not in d  # same loss; the machine load is not a result
    assert d["system_metrics"] == {"changed": {"system/cpu_percent": [10.0, 90.0]}}



def test_cli_diff_json(two_runs):
    import click
    from click.testing import CliRunner

    from autotrack._cli_extra import commands

    group = click.Group("autotrack", commands={c.name: c for c in commands})
    result = CliRunner().invoke(group, ["diff", *two_runs, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json.loads(json.dumps(diff_runs(*two_runs)))
    result = CliRunner().invoke(group, ["diff", two_runs[0], "no-such-run"])
    assert result.exit_code == 1 and "no-such-run" in result.output
