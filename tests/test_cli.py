"""The CLI, driven through click's runner against a real store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import autotrack
from autotrack._cli import cli, lower_is_better


@pytest.fixture
def two_runs(store):
    out = []
    for lr, loss in ((0.1, [0.9, 0.5, 0.7]), (0.01, [0.8, 0.3, 0.35])):
        with autotrack.start_run(experiment="cli", params={"lr": lr, "batch": 32}) as run:
            for step, value in enumerate(loss):
                run.log_metric("val/loss", value, step=step)
        out.append((run, lr, loss))
    return out


def invoke(store, *args: str):
    result = CliRunner().invoke(cli, [*args, "--store", str(store.root)], catch_exceptions=False)
    return result


def test_runs_json_lists_every_run(store, two_runs):
    result = invoke(store, "runs", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.output)}
    for run, lr, loss in two_runs:
        assert rows[run.id]["params.lr"] == lr and rows[run.id]["metrics.val/loss"] == loss[-1]


def test_runs_table_shows_varying_columns(store, two_runs):
    result = invoke(store, "runs", "--where", "params.lr < 0.05")
    assert result.exit_code == 0, result.output
    (run, _, loss) = two_runs[1]
    assert run.id[:8] in result.output and two_runs[0][0].id[:8] not in result.output
    assert "0.35" in result.output and "1 run(s)" in result.output


def test_runs_table_columns_differ_by_value_and_numbers_are_never_cut(store, monkeypatch):
    """A param every run that has it shares (the trainer's accelerator of the Lightning runs beside
    scikit-learn runs without it) is no column; on a narrow terminal the columns that do not fit
    are named below the table instead of numbers cut to a different-looking prefix."""
    for lr in (0.003, 0.0125):
        with autotrack.start_run(params={"lr": lr, "accelerator": "CPUAccelerator"}) as run:
            run.log_metric("train/loss", 0.123456 + lr, step=0)
            run.log_metric("val/loss", 0.654321 + lr, step=0)
    for c in (10, 0.5):
        with autotrack.start_run(params={"C": c}) as run:
            run.log_metric("test/accuracy", 0.9375, step=0)
    wide = invoke(store, "runs")
    header = wide.output.splitlines()[0].split()
    assert "lr" in header and "C" in header and "accelerator" not in header
    for text in ("0.003", "0.0125", "0.126456", "0.657321", "0.9375"):
        assert text in wide.output, text
    monkeypatch.setenv("COLUMNS", "100")
    narrow = invoke(store, "runs").output
    assert "…" not in "".join(line[60:] for line in narrow.splitlines())  # the extra columns: whole values
    shown = narrow.splitlines()[0].split()
    left_out = narrow.split("not shown for the terminal's width:")[1]
    for key in ("params.lr", "params.C", "metrics.train/loss", "metrics.val/loss", "metrics.test/accuracy"):
        assert (key.split(".", 1)[1] in shown) != (key in left_out), key


def test_runs_bad_where_is_a_clear_error(store, two_runs):
    result = CliRunner().invoke(cli, ["runs", "--where", "lr <", "--store", str(store.root)])
    assert result.exit_code != 0 and "invalid where" in result.output


def test_show_prints_params_metrics_and_best(store, two_runs):
    run, lr, loss = two_runs[0]
    result = invoke(store, "show", run.id[:8])
    assert result.exit_code == 0, result.output
    assert run.name in result.output and "finished" in result.output
    assert "val/loss" in result.output and str(min(loss)) in result.output
    data = json.loads(invoke(store, "show", run.id, "--json").output)
    assert data["params"] == {"lr": lr, "batch": 32} and data["summary"] == {"val/loss": loss[-1]}


def test_compare_highlights_only_differences(store, two_runs):
    (a, _, la), (b, _, lb) = two_runs
    data = json.loads(invoke(store, "compare", a.id, b.id, "--json").output)
    rows = {r["label"]: r for r in data["rows"]}
    assert rows["params.lr"]["differs"] and not rows["params.batch"]["differs"]
    assert rows["metrics.val/loss (min)"]["values"] == [min(la), min(lb)]
    assert rows["metrics.val/loss (last)"]["values"] == [la[-1], lb[-1]]
    table = invoke(store, "compare", a.id, b.id).output
    assert "params.lr" in table and "params.batch" not in table and "equal row(s) hidden" in table


def test_rm_deletes(store, two_runs):
    run = two_runs[0][0]
    assert invoke(store, "rm", run.id, "--yes").exit_code == 0
    assert run.id not in set(autotrack.runs()["id"])


def test_unknown_run_is_a_clear_error(store, two_runs):
    result = CliRunner().invoke(cli, ["show", "zzzz", "--store", str(store.root)])
    assert result.exit_code == 1 and "no run matches id 'zzzz'" in result.output


@pytest.mark.parametrize(("key", "low"), [("val/loss", True), ("train/rmse", True), ("val/acc", False), ("f1", False)])
def test_lower_is_better(key, low):
    assert lower_is_better(key) is low


def test_losses_and_eval_metrics_come_before_background_metrics(store, monkeypatch):
    """With more metric keys than columns, the table shows the loss and validation metrics, not the
    machine samples or per-layer gradient norms that sort first alphabetically; `show` lists them
    in the same order."""
    monkeypatch.setenv("COLUMNS", "250")
    background = [f"grad_norm/layer{i}.weight" for i in range(6)] + ["system/cpu_percent", "system/ram_used_bytes"]
    for seed in (1, 2):
        with autotrack.start_run(params={"seed": seed}) as run:
            for key in background:
                run.log_metric(key, seed * 10.0, step=0)
            run.log_metric("train/loss", seed * 0.125, step=0)
            run.log_metric("val/acc", seed * 0.25, step=0)
    table = invoke(store, "runs").output
    header = table.splitlines()[0]
    assert "train/loss" in header and "val/acc" in header, table
    assert "grad_norm" not in header and "system/" not in header, table
    shown = invoke(store, "show", run.id).output
    positions = [shown.index(key) for key in ("train/loss", "val/acc", "grad_norm/layer0.weight", "system/cpu_percent")]
    assert positions == sorted(positions), shown
