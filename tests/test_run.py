"""The run API: lifecycle, params, metrics, tags, artifacts, read back through the public API."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path

import pytest

import autotrack
from autotrack import InvalidArgumentError, RunEndedError, UnsafeArtifactNameError


def test_with_block_finishes_and_reads_back(store):
    with autotrack.start_run(name="baseline", experiment="house-prices") as run:
        run.log_params({"lr": 0.01, "model": {"depth": 3, "act": "relu"}, "layers": [64, 32], "flag": True})
        run.log_metric("val/rmse", 0.41, step=3)
        run.set_tag("team", "vision")
    rec = autotrack.get_run(run.id)
    assert (rec.name, rec.experiment, rec.status) == ("baseline", "house-prices", "finished")
    assert rec.params == {"lr": 0.01, "model.depth": 3, "model.act": "relu", "layers": [64, 32], "flag": True}
    assert type(rec.params["model.depth"]) is int
    assert rec.summary == {"val/rmse": 0.41}
    assert rec.tags == {"team": "vision"}
    assert rec.end_time >= rec.start_time


def test_exception_marks_failed_with_traceback(store):
    with pytest.raises(ZeroDivisionError):
        with autotrack.start_run() as run:
            run.log_metric("loss", 1.0)
            1 / 0
    rec = autotrack.get_run(run.id)
    assert rec.status == "failed"
    assert rec.error["type"] == "ZeroDivisionError"
    assert "division by zero" in rec.error["message"]
    assert "1 / 0" in rec.error["traceback"]
    assert rec.summary == {"loss": 1.0}  # nothing logged before the failure is lost


def test_keyboard_interrupt_marks_killed(store):
    with pytest.raises(KeyboardInterrupt):
        with autotrack.start_run() as run:
            raise KeyboardInterrupt
    assert autotrack.get_run(run.id).status == "killed"


def test_logging_to_ended_run_raises_clear_error(store):
    run = autotrack.start_run()
    run.end()
    with pytest.raises(RunEndedError, match=run.id) as info:
        run.log_metric("loss", 1.0)
    assert "start_run" in str(info.value)
    with pytest.raises(RunEndedError):
        run.log_params({"a": 1})
    run.end()  # ending twice is a no-op


def test_nested_runs_carry_their_parent(store):
    with autotrack.start_run(name="sweep") as parent:
        with autotrack.start_run(name="trial-1") as child:
            assert autotrack.active_run() is child
        assert autotrack.active_run() is parent
    assert autotrack.get_run(child.id).parent_id == parent.id
    assert [c.id for c in autotrack.get_run(parent.id).children] == [child.id]
    assert autotrack.get_run(parent.id).parent_id is None


def test_generated_names_are_readable_and_distinct(store):
    names = {autotrack.start_run().name for _ in range(5)}
    for name in names:
        adjective, noun, number = name.split("-")
        assert adjective.isalpha() and noun.isalpha() and number.isdigit()
    assert len(names) >= 2


def test_metric_steps_default_per_key_and_values_convert(store):
    np = pytest.importorskip("numpy")
    with autotrack.start_run() as run:
        for v in (3, 2.5, np.float32(1.5), np.int64(7), True):
            run.log_metric("a", v)
        run.log_metric("b", 1.0, step=10)
        run.log_metric("b", 2.0)
        run.log_metrics({"c": 1, "d": np.float64(2.0)}, step=5)
    rec = autotrack.get_run(run.id)
    a = rec.metric("a")
    assert a["step"].tolist() == [0, 1, 2, 3, 4]
    assert a["value"].tolist() == [3.0, 2.5, 1.5, 7.0, 1.0]
    assert rec.metric("b")["step"].tolist() == [10, 11]
    assert rec.metric("c")["step"].tolist() == [5] and rec.metric("d")["value"].tolist() == [2.0]
    assert rec.metric_keys == ["a", "b", "c", "d"]


def test_zero_dim_tensor_metric(store):
    torch = pytest.importorskip("torch")
    with autotrack.start_run() as run:
        run.log_metric("loss", torch.tensor(0.25))
        run.log_metric("acc", torch.tensor([0.5]))
    assert autotrack.get_run(run.id).summary == {"acc": 0.5, "loss": 0.25}


def test_non_finite_values_are_stored_as_they_are(store):
    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e308]
    with autotrack.start_run() as run:
        for v in values:
            run.log_metric("x", v)
    got = autotrack.get_run(run.id).metric("x")["value"].tolist()
    assert math.isnan(got[0]) and got[1:3] == [math.inf, -math.inf]
    assert math.copysign(1.0, got[3]) == -1.0 and got[4] == 5e-324 and got[5] == 1e308
    stats = autotrack.get_run(run.id).metric_stats()["x"]
    assert (stats["min"], stats["max"], stats["count"]) == (-math.inf, math.inf, 6)


@pytest.mark.parametrize(
    ("key", "fix"),
    [("", "empty"), ("a\x00b", "control"), ("line\nbreak", "control"), ("k" * 501, "at most"), (3, "strings")],
)
def test_bad_keys_raise_naming_the_value(store, key, fix):
    with autotrack.start_run() as run:
        with pytest.raises(InvalidArgumentError, match=fix) as info:
            run.log_metric(key, 1.0)
    assert info.value.argument == "key" and info.value.value == key


@pytest.mark.parametrize("value", ["1.0", None, [1, 2], object(), 10**400])
def test_bad_metric_values_raise(store, value):
    with autotrack.start_run() as run:
        with pytest.raises(InvalidArgumentError, match="value of 'loss'"):
            run.log_metric("loss", value)


def test_odd_params_are_stored_as_repr_and_large_ones_truncated(store):
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    circular: dict = {"a": 1}
    circular["self"] = circular
    with autotrack.start_run() as run:
        run.log_params({"fn": Opaque(), "big": "x" * 50_000, "many": list(range(5000)), "circ": circular,
                        "tuple": (1, "a"), "none": None})
    rec = autotrack.get_run(run.id)
    assert rec.params["fn"] == "<Opaque>"
    assert rec.params["tuple"] == [1, "a"] and rec.params["none"] is None
    assert rec.params["circ.a"] == 1 and rec.params["circ.self"] == "<circular reference>"
    assert len(rec.params["big"]) == 10_000
    assert rec.truncated_params["big"] == 50_000
    assert rec.truncated_params["many"] == len(repr(list(range(5000))))


def test_artifacts_are_content_addressed_and_deduplicated(store, tmp_path):
    payload = b"weights" * 1000
    f1 = tmp_path / "model.pt"
    f1.write_bytes(payload)
    f2 = tmp_path / "copy.pt"
    f2.write_bytes(payload)
    with autotrack.start_run() as run:
        sha = run.log_artifact(f1, kind="model")
        run.log_artifact(f2, name="ckpt/copy.pt", kind="checkpoint", step=3, metadata={"best": True})
        run.log_dict({"lr": 0.1, "nested": {"a": [1, 2]}}, "config.json")
        run.log_text("hello", "notes.txt")
        run.log_artifact(f1, name="by-ref.pt", copy=False)
    truth = hashlib.sha256(payload).hexdigest()
    assert sha == truth
    arts = {a.name: a for a in autotrack.get_run(run.id).artifacts}
    assert arts["model.pt"].kind == "model" and arts["model.pt"].size == len(payload)
    assert arts["ckpt/copy.pt"].sha256 == truth and arts["ckpt/copy.pt"].step == 3
    assert arts["ckpt/copy.pt"].metadata == {"best": True}
    assert Path(arts["model.pt"].path) == Path(arts["ckpt/copy.pt"].path)  # stored once
    assert Path(arts["model.pt"].path).read_bytes() == payload
    assert json.loads(Path(arts["config.json"].path).read_text()) == {"lr": 0.1, "nested": {"a": [1, 2]}}
    assert Path(arts["notes.txt"].path).read_text() == "hello"
    assert not arts["by-ref.pt"].stored and arts["by-ref.pt"].path == str(f1.resolve())
    assert arts["by-ref.pt"].sha256 == truth
    blobs = [p for p in (store.root / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 3  # payload, config.json, notes.txt


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "C:\\x", "a/../../b", "%2e%2e%2fx", "a\x00b", "~/x", "."])
def test_unsafe_artifact_names_are_rejected(store, tmp_path, name):
    f = tmp_path / "f.txt"
    f.write_text("x")
    with autotrack.start_run() as run:
        with pytest.raises(UnsafeArtifactNameError) as info:
            run.log_artifact(f, name=name)
    assert info.value.argument == "name"


def test_artifact_update_marks_deleted_and_merges_metadata(store, tmp_path):
    f = tmp_path / "epoch=1.ckpt"
    f.write_bytes(b"1")
    with autotrack.start_run() as run:
        run.log_artifact(f, kind="checkpoint", copy=False, metadata={"epoch": 1})
        run.update_artifact("epoch=1.ckpt", metadata={"best": False}, deleted=True)
    (art,) = autotrack.get_run(run.id).artifacts
    assert art.deleted and art.metadata == {"epoch": 1, "best": False}


def test_module_level_shortcuts_act_on_active_run(store):
    with pytest.raises(autotrack.AutotrackError, match="no active run"):
        autotrack.log_metric("x", 1.0)
    with autotrack.start_run() as run:
        autotrack.log_metric("x", 1.0)
        autotrack.log_params({"a": 1})
        autotrack.set_tags({"t": "v"})
    rec = autotrack.get_run(run.id)
    assert (rec.summary, rec.params, rec.tags) == ({"x": 1.0}, {"a": 1}, {"t": "v"})


def test_resume_appends_after_last_step(store):
    with autotrack.start_run() as run:
        run.log_metric("loss", 1.0)
        run.log_metric("loss", 0.5)
    with autotrack.start_run(resume=run.id) as again:
        again.log_metric("loss", 0.25)
    rec = autotrack.get_run(run.id)
    assert rec.metric("loss")["step"].tolist() == [0, 1, 2]
    assert rec.status == "finished"


def test_flush_makes_points_visible_to_another_connection(store):
    run = autotrack.start_run()
    for i in range(100):
        run.log_metric("x", float(i))
    assert run.flush()
    conn = sqlite3.connect(store.db_path)
    (count,) = conn.execute("SELECT sum(n) FROM metric_chunks").fetchone()
    assert count == 100
    run.end()


def test_set_info_sections(store):
    with autotrack.start_run() as run:
        run.set_info("model", {"total_params": 10, "layers": [{"name": "fc", "params": 10}]})
        run.set_info("model", {"total_params": 12})
    rec = autotrack.get_run(run.id)
    assert rec.info("model") == {"total_params": 12}
    assert rec.info("hardware") == {}
    with pytest.raises(InvalidArgumentError, match="choose one of"):
        rec.info("no-such-section")


def test_start_run_validates_arguments(store):
    with pytest.raises(InvalidArgumentError, match="experiment"):
        autotrack.start_run(experiment="  ")
    with pytest.raises(InvalidArgumentError, match="parent"):
        autotrack.start_run(parent=3.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="kind"):
        with autotrack.start_run() as run:
            run.log_bytes(b"x", "a.bin", kind="weights")


def test_secret_looking_params_and_tags_are_redacted(store):
    with autotrack.start_run() as run:
        run.log_params({"hub_token": "hf_abcdefghijklmnop", "db": {"password": "hunter2hunter2"},
                        "pad_token_id": 0, "remote": "https://user:pw@example.com/repo.git", "lr": 0.1})
        run.set_tags({"api_key": "sk-123456789", "team": "vision"})
    rec = autotrack.get_run(run.id)
    assert rec.params["hub_token"] == rec.params["db.password"] == "***"
    assert rec.params["pad_token_id"] == 0 and rec.params["lr"] == 0.1
    assert rec.params["remote"] == "https://example.com/repo.git"
    assert rec.tags == {"api_key": "***", "team": "vision"}
