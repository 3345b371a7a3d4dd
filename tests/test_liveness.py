"""Owner liveness from monotonic facts, with real processes: a child is spawned, its identity read,
then it is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from autotrack import _liveness
from autotrack._liveness import owner_alive, owner_identity

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")

CHILD = "import sys, time; print('ready', flush=True); time.sleep(120)"


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _ticks_from_proc(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat, read independently of the module."""
    text = open(f"/proc/{pid}/stat").read()
    return int(text[text.rindex(")") + 2:].split()[19])


def test_identity_of_a_real_child(child):
    ident = owner_identity(child.pid)
    assert ident["pid"] == child.pid
    assert ident["start_ticks"] == _ticks_from_proc(child.pid)
    assert ident["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert ident["pid_ns"] == os.stat("/proc/self/ns/pid").st_ino
    assert json.loads(json.dumps(ident)) == ident  # storable as it is


def test_live_owner_stays_alive_whatever_the_wall_clock_says(child):
    ident = owner_identity(child.pid)
    now = time.time()
    # a +5 s step, an hour forward, a heartbeat from long ago: the visible owner is judged by /proc
    for heartbeat, clock in ((now, now + 5), (now - 3600, now + 3600), (None, now - 86400)):
        assert owner_alive(ident, heartbeat, clock) is True


def test_killed_owner_is_dead_at_once(child):
    ident = owner_identity(child.pid)
    child.kill()
    child.wait()
    assert owner_alive(ident, time.time(), time.time()) is False  # a fresh heartbeat does not help


def test_zombie_owner_is_dead(child):
    ident = owner_identity(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    for _ in range(200):  # not reaped yet: a zombie
        if open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    assert owner_alive(ident, time.time(), time.time()) is False
    child.wait()


def test_reused_pid_is_not_the_owner(child):
    ident = owner_identity(child.pid)
    ident["start_ticks"] -= 1  # the recorded owner started at another tick: same pid, other process
    assert owner_alive(ident, time.time(), time.time()) is False


def test_this_process_is_alive():
    assert owner_alive(owner_identity(), None, 0.0) is True


def test_other_host_or_boot_falls_back_to_the_heartbeat(child):
    now = time.time()
    for change in ({"host": "elsewhere.example"}, {"boot_id": "00000000-0000-0000-0000-000000000000"}):
        ident = {**owner_identity(child.pid), **change}
        assert owner_alive(ident, now - 10, now) is True
        assert owner_alive(ident, now - _liveness.STALE_AFTER_S - 1, now) is False
        assert owner_alive(ident, None, now) is None  # cannot tell


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_owner_in_another_pid_namespace_is_never_declared_dead_by_pid():
    """The owner runs under ``unshare --pid`` with this host name: it records pid 1 of its own
    namespace. Here that pid means another process; only the heartbeat may decide."""
    code = ("import json, sys, time; sys.path.insert(0, %r); from autotrack._liveness import owner_identity; "
            "print(json.dumps(owner_identity()), flush=True); time.sleep(120)") % os.getcwd()
    cmd = ["unshare", "--user", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            pytest.skip(f"unshare is not permitted here: {proc.stderr.read() if proc.stderr else ''}")
        ident = json.loads(line)
        assert ident["pid"] == 1 and ident["pid_ns"] != os.stat("/proc/self/ns/pid").st_ino
        now = time.time()
        assert owner_alive(ident, now - 5, now) is True   # fresh heartbeat: alive
        assert owner_alive(ident, None, now) is None       # no heartbeat: cannot tell, never "dead"
        proc.kill()
        proc.wait()
        assert owner_alive(ident, now - _liveness.STALE_AFTER_S - 1, now) is False  # stale: gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
