"""Whether the process that owns a ``running`` run still lives, from facts a clock step cannot move.

A run stores its owner's identity (:func:`owner_identity`): host name, pid, the process's start
time in clock ticks since boot (``/proc/<pid>/stat`` field 22), the kernel's boot id
(``/proc/sys/kernel/random/boot_id``) and the inode of its pid namespace (``/proc/self/ns/pid``).
A reader decides with :func:`owner_alive`:

* same boot and same pid namespace (the owner is visible): the pid is looked up in ``/proc``;
  gone, a zombie, or a different start tick (the pid was reused) means dead; otherwise alive.
  No wall clock is read, so stepping the clock never makes a live run read crashed;
* anything else (another host, the same host name on another machine or after a reboot, a
  container or ``unshare --pid`` namespace, a platform without ``/proc``): the pid means nothing
  here, so only the heartbeat tells, and no heartbeat means "cannot tell" (``None``).

``None`` must be read as "may be alive": a second writer never takes such a run.
"""

from __future__ import annotations

import os
import socket
from typing import Any

#: A heartbeat older than this (seconds) means the owner is gone, when the pid cannot be checked.
STALE_AFTER_S = 90.0

_PROC = "/proc"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def boot_id() -> str | None:
    """This kernel's boot id (changes at every boot), or None off Linux."""
    return _read(f"{_PROC}/sys/kernel/random/boot_id")


def pid_namespace(pid: int | str = "self") -> int | None:
    """The inode of ``pid``'s pid namespace, or None when it cannot be read."""
    try:
        return os.stat(f"{_PROC}/{pid}/ns/pid").st_ino
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3, the state, first)."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may itself contain spaces and ')'
    tail = data.rsplit(b")", 1)
    if len(tail) != 2:
        return None
    return tail[1].decode("ascii", "replace").split()


def start_ticks(pid: int | str = "self") -> int | None:
    """The process's start time in clock ticks since boot (monotonic), or None."""
    fields = _stat_fields(os.getpid() if pid == "self" else int(pid))
    try:
        return int(fields[19]) if fields else None  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def owner_identity(pid: int | None = None) -> dict[str, Any]:
    """What a run stores about its owner: ``host``, ``pid``, ``start_ticks``, ``boot_id``,
    ``pid_ns`` (the last three None where the platform has no ``/proc``)."""
    pid = os.getpid() if pid is None else int(pid)
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "start_ticks": start_ticks(pid),
        "boot_id": boot_id(),
        "pid_ns": pid_namespace(pid),
    }


def can_see(identity: dict[str, Any]) -> bool:
    """Whether the owner's pid means the same process here: same host, boot and pid namespace."""
    if not identity.get("pid") or identity.get("host") != socket.gethostname():
        return False
    here_boot, here_ns = boot_id(), pid_namespace()
    if here_boot is None or here_ns is None:  # no /proc: only the host name and a kill(0) tell
        return identity.get("boot_id") is None and identity.get("pid_ns") is None
    return identity.get("boot_id") == here_boot and identity.get("pid_ns") == here_ns


def owner_alive(identity: dict[str, Any], heartbeat: float | None, now: float, *,
                stale_after: float = STALE_AFTER_S) -> bool | None:
    """True: the owner lives; False: it is gone; None: cannot tell (treat as possibly alive).

    ``heartbeat`` and ``now`` (wall-clock seconds) are used only when the owner's pid cannot be
    checked on this machine; a visible owner is judged by ``/proc`` alone.
    """
    if can_see(identity):
        return _pid_alive(int(identity["pid"]), identity.get("start_ticks"))
    if heartbeat is None:
        return None
    return now - heartbeat < stale_after


def _pid_alive(pid: int, ticks: int | None) -> bool:
    if pid == os.getpid() and (ticks is None or ticks == start_ticks(pid)):
        return True
    fields = _stat_fields(pid)
    if fields is None:
        if os.path.isdir(_PROC) and os.path.exists(f"{_PROC}/self/stat"):
            return False  # /proc works and has no such pid
        try:  # no /proc (macOS): the pid's existence is all there is
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] in ("Z", "X", "x"):
        return False  # a zombie (or dead) process writes nothing
    if ticks is not None:
        try:
            return int(fields[19]) == int(ticks)
        except (IndexError, ValueError):
            return True
    return True
