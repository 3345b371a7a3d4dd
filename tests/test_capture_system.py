"""The system-metrics sampler and the capture switches (configure, environment overrides)."""

from __future__ import annotations

import threading
import time

import psutil
import pytest

import autotrack
from autotrack import _capture
from autotrack._errors import InvalidArgumentError

HOST_KEYS = {"system/cpu_percent", "system/ram_used_bytes", "system/proc_rss_bytes", "system/proc_cpu_percent"}


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("AUTOTRACK_CAPTURE", raising=False)
    monkeypatch.delenv("AUTOTRACK_SYSTEM_METRICS", raising=False)
    previous = _capture._settings
    yield
    _capture._settings = previous


def _wait_samples(run, n, timeout=20.0):
    sampler = _capture.sampler_for(run)
    assert sampler is not None, "no sampler was started"
    deadline = time.monotonic() + timeout
    while sampler.samples < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sampler.samples >= n
    return sampler


def test_sampler_logs_host_metrics_close_to_truth(store):
    _capture.configure(system_metrics=0.1)
    run = autotrack.start_run()
    sampler = _wait_samples(run, 3)
    rss_truth = psutil.Process().memory_info().rss
    ram_truth = psutil.virtual_memory().used
    run.end()
    assert not sampler._thread.is_alive(), "the run's end must stop the sampler thread"
    rec = autotrack.get_run(run.id)
    assert HOST_KEYS <= set(rec.metric_keys)
    rss = rec.metric("system/proc_rss_bytes")["value"]
    assert len(rss) >= 3
    # this process's resident memory, as psutil reads it independently, within 25 %
    assert abs(rss.iloc[-1] - rss_truth) / rss_truth < 0.25
    ram = rec.metric("system/ram_used_bytes")["value"].iloc[-1]
    assert abs(ram - ram_truth) / psutil.virtual_memory().total < 0.10
    cpu = rec.metric("system/cpu_percent")["value"]
    assert ((cpu >= 0) & (cpu <= 100)).all()
    if psutil.disk_io_counters() is not None:
        assert (rec.metric("system/disk_read_bytes_per_s")["value"] >= 0).all()


def test_samples_carry_the_training_step_and_wall_time(store):
    _capture.configure(system_metrics=0.05)
    run = autotrack.start_run()
    sampler = _wait_samples(run, 1)
    run.step = 1234
    before = time.time()
    target = sampler.samples + 2
    _wait_samples(run, target)
    run.end()
    df = autotrack.get_run(run.id).metric("system/cpu_percent")
    assert 1234 in set(df["step"])
    late = df[df["step"] == 1234]
    assert (late["time"] >= before - 0.01).all() and (late["time"] <= time.time()).all()


def test_proc_cpu_percent_sees_a_busy_thread(store):
    _capture.configure(system_metrics=0.3)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin, daemon=True)
    worker.start()
    try:
        run = autotrack.start_run()
        _wait_samples(run, 2)
        run.end()
    finally:
        stop.set()
        worker.join()
    values = autotrack.get_run(run.id).metric("system/proc_cpu_percent")["value"]
    assert values.max() > 20  # a spinning thread is far above idle even on a shared machine


def test_system_metrics_off_by_env(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0")
    _capture.configure(system_metrics=0.05)
    with autotrack.start_run() as run:
        assert _capture.sampler_for(run) is None
        time.sleep(0.15)
    rec = autotrack.get_run(run.id)
    assert not [k for k in rec.metric_keys if k.startswith("system/")]
    assert "hardware" in rec.sections  # only the sampler is off


def test_system_metrics_interval_from_env(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0.25")
    assert _capture.settings().system_metrics == 0.25
    with autotrack.start_run() as run:
        assert _capture.sampler_for(run).interval == 0.25


def test_system_metrics_off_by_configure(store):
    _capture.configure(system_metrics=False)
    with autotrack.start_run() as run:
        assert _capture.sampler_for(run) is None


def test_capture_off_by_env(store, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_CAPTURE", "0")
    with autotrack.start_run() as run:
        assert _capture.sampler_for(run) is None
    rec = autotrack.get_run(run.id)
    assert rec.sections == [] and rec.artifacts == [] and rec.metric_keys == []


def test_capture_off_by_configure(store):
    _capture.configure(enabled=False)
    with autotrack.start_run() as run:
        pass
    assert autotrack.get_run(run.id).sections == []


def test_configure_rejects_bad_interval():
    with pytest.raises(InvalidArgumentError, match="system_metrics"):
        _capture.configure(system_metrics=-1)
    with pytest.raises(InvalidArgumentError, match="system_metrics"):
        _capture.configure(system_metrics="often")  # type: ignore[arg-type]


def test_parts_can_be_switched_off(store):
    _capture.configure(system_metrics=False, source=False, packages=False)
    with autotrack.start_run() as run:
        pass
    rec = autotrack.get_run(run.id)
    assert set(rec.sections) == {"hardware", "environment"}
    assert "packages" not in rec.info("environment")


def test_child_run_reuses_parent_capture_and_has_no_sampler(store):
    _capture.configure(system_metrics=0.05)
    with autotrack.start_run() as parent:
        with autotrack.start_run() as child:
            assert _capture.sampler_for(child) is None
            assert _capture.sampler_for(parent) is not None
    p, c = autotrack.get_run(parent.id), autotrack.get_run(child.id)
    assert c.parent_id == parent.id
    for section in ("hardware", "environment", "source"):
        assert c.info(section) == p.info(section)
    assert [(a.name, a.sha256) for a in c.artifacts] == [(a.name, a.sha256) for a in p.artifacts]


def test_sampler_thread_is_gone_after_end(store):
    _capture.configure(system_metrics=0.05)
    run = autotrack.start_run()
    sampler = _wait_samples(run, 1)
    run.end()
    count = sampler.samples
    time.sleep(0.2)
    assert sampler.samples == count
    assert not any(t.name.startswith(f"autotrack-system-{run.id[:8]}") for t in threading.enumerate())
