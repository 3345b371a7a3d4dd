"""The one patching mechanism every ``autolog()`` uses, and the guard every callback hook uses.

Rules (DESIGN.md, "Patching"):

* the framework's own exceptions pass through untouched (same object, same traceback);
* autotrack's own failures become one warning and the user's call still runs (or, when it already
  ran, its result is returned);
* ``AUTOTRACK_STRICT=1`` makes autotrack's failures raise instead (tests and CI);
* ``AUTOTRACK_DISABLE=1`` (read when patching) leaves everything unpatched;
* every patch can be undone: :func:`unpatch` restores exactly what was there.

"This call is already being recorded" is one context-local flag (:class:`recording`, a
``contextvars.ContextVar``, so threads and asyncio tasks each have their own): while it is set,
patched calls go straight to the originals (unless patched with ``inside_recording=True``) and
hooks that are not patches (torch's global optimizer hooks) check :func:`being_recorded`.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = object()


def strict() -> bool:
    return os.environ.get("AUTOTRACK_STRICT") == "1"


def disabled() -> bool:
    return os.environ.get("AUTOTRACK_DISABLE") == "1"


_warned: set[str] = set()
_warn_lock = threading.Lock()


def report_failure(where: str, exc: BaseException) -> None:
    """An autotrack fault: raise it under AUTOTRACK_STRICT=1, else warn once per place."""
    if strict():
        raise exc
    with _warn_lock:
        if where in _warned:
            return
        _warned.add(where)
    warnings.warn(
        f"autotrack: {where} failed and was skipped; training goes on unchanged. "
        f"({type(exc).__name__}: {exc}). Set AUTOTRACK_STRICT=1 to raise instead.",
        RuntimeWarning,
        stacklevel=3,
    )


def guarded(where: str) -> Callable[[F], F]:
    """Decorate a hook (a callback method) so that its failures never reach the user's training."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the guard's whole purpose
                report_failure(where or fn.__qualname__, exc)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass
class _Patch:
    integration: str
    owner: Any
    name: str
    original: Any  # the attribute as found in owner.__dict__, or _MISSING when inherited
    wrapper: Any
    make_inert: Callable[[], None]


_registry: list[_Patch] = []
_inert: dict[int, _Patch] = {}  # undone patches still inside someone else's wrapper, by id(wrapper)


class _CallState:
    __slots__ = ("original", "called", "result", "error")

    def __init__(self, original: Callable[..., Any]) -> None:
        self.original = original
        self.called = False
        self.result: Any = None
        self.error: BaseException | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.called = True
        try:
            self.result = self.original(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
            raise
        return self.result


def patch(
    integration: str,
    owner: Any,
    name: str,
    replacement: Callable[..., Any],
    *,
    inside_recording: bool = False,
) -> None:
    """Replace ``owner.name`` by a safe wrapper around ``replacement(original, *args, **kwargs)``.

    ``replacement`` receives the original callable as its first argument and decides when to call
    it. Whatever the original raises passes through unchanged; whatever ``replacement`` itself
    raises becomes a warning, and the original is called if it had not been yet.

    While a call is being recorded (:class:`recording`), the wrapper calls the original directly,
    unless ``inside_recording=True`` (the replacement then checks :func:`being_recorded` itself).
    """
    if disabled():
        return  # AUTOTRACK_DISABLE=1: nothing is patched at all
    found = owner.__dict__.get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
    current = getattr(owner, name)
    if getattr(current, "__autotrack_patch__", None) == integration:
        return  # already patched by this integration
    unbound = found.__func__ if isinstance(found, (staticmethod, classmethod)) else current
    if isinstance(found, classmethod):
        raise TypeError("classmethods are not supported by autotrack's patch()")

    inert = False  # undone while wrapped by someone else: it stays in their chain, passing calls through

    def make_inert() -> None:
        nonlocal inert
        inert = True

    @functools.wraps(unbound)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if inert or (not inside_recording and _recording.get() is not None):  # the hot path: one lookup
            return unbound(*args, **kwargs)
        state = _CallState(unbound)
        try:
            return replacement(state, *args, **kwargs)
        except BaseException as exc:
            if state.error is exc or not isinstance(exc, Exception):
                raise  # the framework's (or the user's) own exception, untouched
            report_failure(f"autologging of {integration} ({getattr(owner, '__name__', owner)}.{name})", exc)
            if state.called:
                if state.error is not None:
                    raise state.error from None
                return state.result
            return unbound(*args, **kwargs)

    wrapper.__autotrack_patch__ = integration  # type: ignore[attr-defined]
    setattr(owner, name, staticmethod(wrapper) if isinstance(found, staticmethod) else wrapper)
    _registry.append(_Patch(integration, owner, name, found, wrapper, make_inert))


def unpatch(integration: str | None = None) -> int:
    """Undo the patches of ``integration`` (all when None), newest first. Returns how many. An
    attribute someone else has replaced since it was patched keeps their value (the patch's
    wrapper then does nothing more than call what it wrapped)."""
    undone = 0
    for p in reversed(list(_registry)):
        if integration is not None and p.integration != integration:
            continue
        current = getattr(p.owner, "__dict__", {}).get(p.name, _MISSING)
        if current is _MISSING:  # a property-like slot (a closure cell's holder) or no __dict__
            current = getattr(p.owner, p.name, None)
        if getattr(current, "__func__", current) is not p.wrapper:
            # replaced since (the user, a test's monkeypatch, another integration's patch around
            # this one): theirs stays, and this wrapper, if still in their chain, passes calls through
            p.make_inert()
            _inert[id(p.wrapper)] = p
        elif (restore := _unwrapped(p.original)) is _MISSING:
            try:
                delattr(p.owner, p.name)
            except AttributeError:
                pass
        else:
            setattr(p.owner, p.name, restore)
        _registry.remove(p)
        undone += 1
    return undone


def _unwrapped(value: Any) -> Any:
    """``value`` with the inert wrappers it is (undone patches another one wrapped) taken off."""
    while True:
        inner = _inert.get(id(getattr(value, "__func__", value)))
        if inner is None or getattr(value, "__func__", value) is not inner.wrapper:
            return value
        del _inert[id(inner.wrapper)]
        value = inner.original


def patched(integration: str | None = None) -> list[tuple[Any, str]]:
    return [(p.owner, p.name) for p in _registry if integration is None or p.integration == integration]


_recording: contextvars.ContextVar[str | None] = contextvars.ContextVar("autotrack_recording", default=None)


def being_recorded() -> str | None:
    """Who records the call in progress in this context (an integration name), or None."""
    return _recording.get()


class recording:
    """``with recording("lightning"):`` -- the calls made inside are already being recorded by
    ``owner``: other patches and hooks stay out. Context-local (threads and tasks each have their
    own). Usable across callbacks too: :meth:`enter` in one hook, :meth:`exit` in a later one."""

    def __init__(self, owner: str = "autotrack") -> None:
        self.owner = owner
        self._token: contextvars.Token[str | None] | None = None
        self._previous: str | None = None

    def enter(self) -> None:
        self._previous = _recording.get()
        self._token = _recording.set(self.owner)

    def exit(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            _recording.reset(token)
        except ValueError:  # entered in another context (another thread ran the first hook)
            _recording.set(self._previous)

    def __enter__(self) -> recording:
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()


def suspended() -> recording:
    """Within this block, patched calls go straight to the originals (autotrack's own calls, e.g.
    ``torch.save`` while saving a model). The same flag as :class:`recording`."""
    return recording("autotrack")
