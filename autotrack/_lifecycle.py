"""The process around the runs: how open runs end when the interpreter exits or is told to stop.

- At interpreter exit, every run this process still has open ends ``finished`` when the program
  exited with status 0, ``failed`` on an uncaught exception or a non-zero status, ``killed`` on
  Ctrl-C; then every recorder flushes.
- On SIGTERM and SIGHUP (closing the terminal) open runs end ``killed`` and are flushed before the
  previous handler (or the default action) runs.
- A forked child never ends or flushes its parent's runs.

The exit status: ``sys.exit(n)`` and ``raise SystemExit(n)`` both end up in the interpreter's own
exit path, which offers no hook. On Python 3.12+ a ``sys.monitoring`` tool watches for a
``SystemExit`` being raised (a callback per raised exception, nothing per step); on 3.11 the code is
taken from ``sys.exit`` by wrapping it, and ``autotrack run`` knows the status of the script it runs
in every version. ``note_exit_code()`` is how such a runner reports it.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

_hooks_pid: int | None = None
_exit_code: int | None = None
_uncaught: BaseException | None = None
_previous: dict[int, Any] = {}
_open_runs: Callable[[], list[Any]] = list
_close_all: Callable[[], None] = lambda: None

#: The signals that end open runs ``killed``.
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def note_exit_code(code: Any) -> None:
    """Tell the lifecycle how the program is exiting (``SystemExit.code`` semantics)."""
    global _exit_code
    _exit_code = 0 if code is None else (code if isinstance(code, int) else 1)


def install(open_runs: Callable[[], list[Any]], close_all: Callable[[], None]) -> None:
    """Once per process: end open runs at exit and on SIGTERM/SIGHUP with the right status."""
    global _hooks_pid, _open_runs, _close_all
    _open_runs, _close_all = open_runs, close_all
    if _hooks_pid == os.getpid():
        return
    _hooks_pid = os.getpid()
    atexit.register(_at_exit)
    previous_excepthook = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        global _uncaught
        _uncaught = exc
        previous_excepthook(exc_type, exc, tb)

    if not getattr(sys.excepthook, "_autotrack", False):  # a forked child keeps its parent's
        excepthook._autotrack = True  # type: ignore[attr-defined]
        sys.excepthook = excepthook
        _watch_system_exit()
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            try:
                current = signal.getsignal(signum)
                if current is _on_stop_signal:  # a forked child re-installing: keep the parent's previous
                    continue
                _previous[signum] = current
                if current is signal.SIG_IGN:
                    continue  # nohup and friends: the program means to survive it
                signal.signal(signum, _on_stop_signal)
            except (ValueError, OSError):  # not the main interpreter, or signals unavailable
                pass


def _watch_system_exit() -> None:
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        tool = _free_tool(monitoring)
        if tool is not None:
            def on_raise(code: Any, offset: int, exc: BaseException) -> Any:
                if type(exc) is SystemExit or isinstance(exc, SystemExit):
                    note_exit_code(exc.code)
                return None

            monitoring.use_tool_id(tool, "autotrack")
            monitoring.register_callback(tool, monitoring.events.RAISE, on_raise)
            monitoring.set_events(tool, monitoring.get_events(tool) | monitoring.events.RAISE)
            return
    previous_exit = sys.exit

    def exit_(code: Any = None) -> None:
        note_exit_code(code)
        previous_exit(code)

    exit_.__wrapped__ = previous_exit  # type: ignore[attr-defined]
    exit_._autotrack = True  # type: ignore[attr-defined]
    if not getattr(sys.exit, "_autotrack", False):
        sys.exit = exit_  # type: ignore[assignment]


def _free_tool(monitoring: Any) -> int | None:
    for tool in (4, 3, 5):  # ids 0-2 and 5 are conventionally debugger, coverage, profiler, optimizer
        if monitoring.get_tool(tool) is None:
            return tool
    return None


def _on_stop_signal(signum: int, frame: Any) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    if os.getpid() == _hooks_pid:
        for run in reversed(_open_runs()):
            try:
                run.end("killed", error=None)
            except Exception:  # noqa: BLE001 - we are being terminated; do what we can
                pass
    if callable(previous):
        previous(signum, frame)
    elif previous is signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def exit_status() -> str:
    uncaught = _uncaught
    if uncaught is not None:
        return "killed" if isinstance(uncaught, KeyboardInterrupt) else "failed"
    return "finished" if not _exit_code else "failed"


def _at_exit() -> None:
    if os.getpid() != _hooks_pid:
        return
    status = exit_status()
    for run in reversed(_open_runs()):
        try:
            run.end(status, error=_uncaught)
        except Exception:  # noqa: BLE001
            pass
    _close_all()
