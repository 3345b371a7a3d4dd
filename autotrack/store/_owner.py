"""Whether the process that owns a ``running`` run still lives, and so what status a reader sees.

Each run stores its owner's identity (``autotrack._liveness``: host, pid, start time in clock ticks
since boot, boot id, pid namespace). An owner this reader can see (same host, boot and pid
namespace) is judged by ``/proc`` alone, so a wall-clock step never makes a live run read
``crashed``; any other owner (another host, a container) by its heartbeat: older than
``STALE_AFTER_S`` reads ``crashed``. When neither can tell, the owner may be alive: a reader sees
``running`` and a second writer gets ``RunLockedError``. Runs written before identities were
stored fall back to the pid and its start time.
"""

from __future__ import annotations

import os
import socket
import time

from ._records import Owner, RunRow

HOST = socket.gethostname()
#: The writer refreshes the heartbeat of every live run this often ...
HEARTBEAT_INTERVAL_S = 10.0
#: ... and a run on another host whose heartbeat is older than this reads ``crashed``.
STALE_AFTER_S = 90.0


def process_start_time(pid: int | None = None) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - psutil missing or the process is gone
        return None


_this_owner: tuple[int, Owner] | None = None


def this_owner() -> Owner:
    """This process as the owner of the runs it writes."""
    global _this_owner
    pid = os.getpid()
    if _this_owner is None or _this_owner[0] != pid:
        import json

        from .._liveness import owner_identity

        _this_owner = (pid, Owner(pid, HOST, process_start_time(), json.dumps(owner_identity(pid))))
    return _this_owner[1]


def owner_alive(pid: int | None, host: str | None, proc_start: float | None, heartbeat: float | None) -> bool:
    if host == HOST and pid:
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        if proc_start is not None:
            started = process_start_time(pid)
            if started is not None and abs(started - proc_start) > 1.0:
                return False
        if _is_zombie(pid):
            return False
        return True
    return heartbeat is not None and time.time() - heartbeat < STALE_AFTER_S


def row_alive(row: RunRow) -> bool:
    if row.identity:
        import json

        from .._liveness import owner_alive as identity_alive

        try:
            identity = json.loads(row.identity)
        except ValueError:
            identity = None
        if isinstance(identity, dict):
            alive = identity_alive(identity, row.heartbeat, time.time(), stale_after=STALE_AFTER_S)
            return True if alive is None else alive
    return owner_alive(row.pid, row.host, row.proc_start, row.heartbeat)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def effective_status(row: RunRow) -> str:
    """The stored status, except that a ``running`` run whose owner is gone reads ``crashed``."""
    if row.status == "running" and not row_alive(row):
        return "crashed"
    return row.status
