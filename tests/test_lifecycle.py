"""How runs end with the process: exit status, signals, and which thread's run is active."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import autotrack

ROOT = Path(__file__).resolve().parents[1]


def _env(store: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "AUTOTRACK_DIR": str(store), "AUTOTRACK_CAPTURE": "0",
            "AUTOTRACK_SYSTEM_METRICS": "0"}


@pytest.mark.parametrize("exit_line", ["raise SystemExit(3)", "import sys; sys.exit(3)"])
def test_exit_status_of_a_script_under_autotrack_run(tmp_path, exit_line):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import autotrack
        run = autotrack.start_run(name="scripted")
        run.log_metric("x", 1.0)
        {exit_line}
        """))
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "autotrack", "run", str(script)], env=_env(store),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert autotrack.get_run("scripted", store=store).status == "failed"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="needs sys.monitoring (Python 3.12+); on 3.11 only sys.exit() "
                    "and `autotrack run` report the status")
def test_raise_system_exit_at_top_level_of_a_plain_script(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import autotrack\nrun = autotrack.start_run(name='top')\nraise SystemExit(3)\n")
    proc = subprocess.run([sys.executable, str(script)], env=_env(tmp_path / "store"), capture_output=True, timeout=120)
    assert proc.returncode == 3
    assert autotrack.get_run("top", store=tmp_path / "store").status == "failed"


def test_sys_exit_zero_and_clean_end_are_finished(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys, autotrack\nrun = autotrack.start_run(name='ok')\nsys.exit(0)\n")
    proc = subprocess.run([sys.executable, str(script)], env=_env(tmp_path / "store"), capture_output=True, timeout=120)
    assert proc.returncode == 0
    assert autotrack.get_run("ok", store=tmp_path / "store").status == "finished"


def test_sighup_ends_the_run_killed_and_flushed(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import time, autotrack
        run = autotrack.start_run(name="hup")
        for i in range(200):
            run.log_metric("x", float(i), step=i)
        print("ready", flush=True)
        time.sleep(60)
        """))
    child = subprocess.Popen([sys.executable, str(script)], env=_env(tmp_path / "store"), stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGHUP)
    child.wait(timeout=60)
    rec = autotrack.get_run("hup", store=tmp_path / "store")
    assert rec.status == "killed"
    assert rec.metric("x")["value"].tolist() == [float(i) for i in range(200)]  # nothing lost


def test_each_thread_has_its_own_active_run(store):
    """16 threads, each in its own `with start_run()`, log through the module-level shortcuts."""
    barrier = threading.Barrier(16)
    ids: dict[int, str] = {}

    def work(i: int) -> None:
        with autotrack.start_run(name=f"t{i}") as run:
            ids[i] = run.id
            barrier.wait()
            for step in range(50):
                autotrack.log_metric("x", float(i), step=step)
            barrier.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, run_id in ids.items():
        rec = autotrack.get_run(run_id)
        assert rec.parent_id is None  # no thread's run became another's child
        assert rec.metric("x")["value"].tolist() == [float(i)] * 50


def test_a_run_of_the_main_thread_is_no_parent_of_another_threads_run(store):
    with autotrack.start_run(name="main") as main_run:
        holder = {}
        t = threading.Thread(target=lambda: holder.setdefault("run", autotrack.start_run(name="other")))
        t.start()
        t.join()
        child = autotrack.start_run(name="child")
        child.end()
    holder["run"].end()
    assert autotrack.get_run("other").parent_id is None
    assert autotrack.get_run("child").parent_id == main_run.id


def test_a_thread_joins_a_run_on_purpose(store):
    run = autotrack.start_run(name="shared")

    def worker() -> None:
        with run.activate():
            autotrack.log_metric("worker/items", 10.0)
        assert autotrack.active_run() is None

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    run.end()
    assert autotrack.get_run(run.id).summary == {"worker/items": 10.0}
