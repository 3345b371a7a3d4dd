"""Run status and data safety across process boundaries: SIGKILL, SIGTERM, exit codes, many writers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import autotrack

ROOT = Path(__file__).resolve().parents[1]


def _env(store_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUTOTRACK_DIR": str(store_dir),
        "AUTOTRACK_CAPTURE": "0",
        "AUTOTRACK_SYSTEM_METRICS": "0",
    }


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def _single_run(store_dir: Path) -> autotrack.RunRecord:
    frame = autotrack.runs(store=store_dir)
    assert len(frame) == 1, frame
    return autotrack.get_run(frame["id"][0], store=store_dir)


def test_sigkill_loses_at_most_the_last_second_and_reads_crashed(tmp_path):
    """A child logs ~5000 points/s with the wall time as the value; we SIGKILL it. Every point
    logged at least one second before the kill must be on disk."""
    store_dir = tmp_path / "store"
    child = subprocess.Popen(
        _script(
            """
            import time, autotrack
            run = autotrack.start_run(name="victim")
            print(run.id, flush=True)
            i = 0
            while True:
                run.log_metric("t", time.time(), step=i)
                i += 1
                if i % 50 == 0:
                    time.sleep(0.01)
            """
        ),
        env=_env(store_dir),
        stdout=subprocess.PIPE,
        text=True,
    )
    run_id = child.stdout.readline().strip()
    time.sleep(2.5)
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    child.wait()
    conn = sqlite3.connect(store_dir / "autotrack.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rec = autotrack.get_run(run_id, store=store_dir)
    assert rec.status == "crashed"
    steps, values, _ = rec.metric_arrays("t")
    assert len(values) > 2000  # >= 1000 points/s over 2.5 s
    assert (steps == list(range(len(steps)))).all()  # no hole: a prefix of what was logged
    assert values[-1] >= killed_at - 1.0  # everything up to one second before the kill is there


def _start_ready(body: str, store_dir: Path) -> subprocess.Popen[str]:
    """Start a child running ``body`` and wait until it prints "ready"."""
    child = subprocess.Popen(_script(body), env=_env(store_dir), stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_sigterm_marks_killed_and_chains_previous_handler(tmp_path):
    store_dir = tmp_path / "store"
    marker = tmp_path / "handler-ran"
    child = _start_ready(
        f"""
        import signal, sys, time, autotrack
        def handler(signum, frame):
            open({str(marker)!r}, "w").write("yes")
            sys.exit(143)
        signal.signal(signal.SIGTERM, handler)
        run = autotrack.start_run()
        run.log_metric("x", 1.0)
        print("ready", flush=True)
        time.sleep(30)
        """,
        store_dir,
    )
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=20) == 143
    assert marker.read_text() == "yes"
    rec = _single_run(store_dir)
    assert rec.status == "killed" and rec.summary == {"x": 1.0}


def test_sigterm_with_default_handler_still_terminates(tmp_path):
    store_dir = tmp_path / "store"
    child = _start_ready(
        """
        import time, autotrack
        run = autotrack.start_run()
        print("ready", flush=True)
        time.sleep(30)
        """,
        store_dir,
    )
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=20) == -signal.SIGTERM
    assert _single_run(store_dir).status == "killed"


@pytest.mark.parametrize(
    ("ending", "status", "error_type"),
    [
        ("pass", "finished", None),
        ("import sys; sys.exit(0)", "finished", None),
        ("import sys; sys.exit(3)", "failed", None),
        ("raise ValueError('bad batch')", "failed", "ValueError"),
        ("raise KeyboardInterrupt", "killed", "KeyboardInterrupt"),
    ],
)
def test_interpreter_exit_ends_open_runs_by_exit_code(tmp_path, ending, status, error_type):
    store_dir = tmp_path / "store"
    body = "import autotrack\nrun = autotrack.start_run()\nfor i in range(100): run.log_metric('x', float(i))\n" + ending
    subprocess.run([sys.executable, "-c", body], env=_env(store_dir), capture_output=True, timeout=60)
    rec = _single_run(store_dir)
    assert rec.status == status
    assert (rec.error or {}).get("type") == error_type
    assert rec.metric("x")["value"].tolist() == [float(i) for i in range(100)]


def test_eight_processes_write_one_store_at_once(tmp_path):
    store_dir = tmp_path / "store"
    n_proc, n_points = 8, 20_000
    body = f"""
        import sys, autotrack
        rank = int(sys.argv[1])
        with autotrack.start_run(name=f"rank-{{rank}}", experiment="ddp") as run:
            run.log_params({{"rank": rank}})
            for i in range({n_points}):
                run.log_metric("loss", rank * 1e6 + i, step=i)
                if i % 2000 == 0:
                    run.flush()
        """
    procs = [
        subprocess.Popen(_script(body) + [str(r)], env=_env(store_dir), stderr=subprocess.PIPE, text=True)
        for r in range(n_proc)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n_proc, errors
    assert not any("locked" in e for e in errors), errors
    frame = autotrack.runs(experiment="ddp", store=store_dir)
    assert len(frame) == n_proc and set(frame["status"]) == {"finished"}
    for rank in range(n_proc):
        rec = autotrack.get_run(f"rank-{rank}", store=store_dir)
        steps, values, _ = rec.metric_arrays("loss")
        assert steps.tolist() == list(range(n_points))
        assert values.tolist() == [rank * 1e6 + i for i in range(n_points)]
    conn = sqlite3.connect(store_dir / "autotrack.db")
    assert conn.execute("SELECT count(*) FROM experiments WHERE name = 'ddp'").fetchone()[0] == 1


def test_forked_child_never_uses_parents_writer(store):
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    run = autotrack.start_run()
    run.log_metric("x", 1.0)
    run.flush()
    pid = os.fork()
    if pid == 0:  # child: log through its own recorder and connection, then leave without atexit
        try:
            run.log_metric("from_child", 2.0)
            ok = run.flush(10)
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    run.log_metric("x", 3.0)
    run.end()
    rec = autotrack.get_run(run.id)
    assert rec.summary == {"from_child": 2.0, "x": 3.0}
    assert rec.status == "finished"  # the child's exit did not end the parent's run


def test_sigterm_in_a_forked_child_leaves_the_parents_run_alone(tmp_path):
    """A forked child (a DataLoader worker) inherits autotrack's SIGTERM handler; it must only act
    in the process that installed it."""
    store_dir = tmp_path / "store"
    parent = subprocess.Popen(
        _script(
            """
            import os, signal, sys, time, autotrack
            run = autotrack.start_run()
            run.log_metric("x", 1.0)
            run.flush()
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            time.sleep(0.5)  # a signal arriving during fork itself is dropped by Python's after-fork reset
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status), flush=True)
            time.sleep(0.5)
            print(autotrack.get_run(run.id).status, flush=True)
            run.end()
            """
        ),
        env=_env(store_dir),
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = parent.communicate(timeout=60)
    child_exit, status_after = out.split()
    assert int(child_exit) == -signal.SIGTERM  # the child still died of SIGTERM as it should
    assert status_after == "running"  # ...and did not end its parent's run
    assert _single_run(store_dir).status == "finished"
