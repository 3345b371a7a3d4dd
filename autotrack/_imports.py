"""Run code right after a module is first imported, without importing it ourselves.

One post-import hook on ``sys.meta_path`` serves every user (autolog's framework switches, seed
capture, an integration patching a framework's classes as their modules load): it finds nothing
itself, but wraps the real loader of a watched module so that the callbacks run once the module
has executed. :func:`when_imported` waits for one module (once); :func:`when_submodules_imported`
is told of every submodule of a package imported from then on, until cancelled.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from ._patching import report_failure

Callback = Callable[[ModuleType], None]

_callbacks: dict[str, list[Callback]] = {}
#: top-level package -> callbacks told of each of its submodules as it finishes executing
_package_callbacks: dict[str, list[Callback]] = {}
_lock = threading.RLock()


def when_imported(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__spec__", None) is not None and not _initialising(module):
        _call(callback, module)
        return
    _register(_callbacks, name, callback)


def when_submodules_imported(package: str, callback: Callback) -> None:
    """Call ``callback(module)`` right after each submodule of the top-level ``package``
    (``"sklearn"``: ``sklearn.linear_model._logistic``, ...) that is imported from now on has
    executed, until :func:`cancel_submodules`. Modules already imported are not replayed."""
    if not package or "." in package:
        raise ValueError(f"when_submodules_imported takes a top-level package name, not {package!r}")
    _register(_package_callbacks, package, callback)


def cancel_submodules(package: str, callback: Callback) -> None:
    """Stop telling ``callback`` of ``package``'s submodules."""
    _unregister(_package_callbacks, package, callback)


def cancel(name: str, callback: Callback) -> None:
    """Stop waiting for ``name`` on behalf of ``callback``."""
    _unregister(_callbacks, name, callback)


def _register(table: dict[str, list[Callback]], name: str, callback: Callback) -> None:
    with _lock:
        callbacks = table.setdefault(name, [])
        if callback not in callbacks:
            callbacks.append(callback)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def _unregister(table: dict[str, list[Callback]], name: str, callback: Callback) -> None:
    with _lock:
        callbacks = table.get(name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            table.pop(name, None)
        _drop_finder_if_idle()


def _drop_finder_if_idle() -> None:
    if not _callbacks and not _package_callbacks and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def _watched(fullname: str) -> bool:
    if fullname in _callbacks:
        return True
    top, dot, _ = fullname.partition(".")
    return bool(dot) and top in _package_callbacks


def watching(name: str) -> bool:
    return bool(_callbacks.get(name))


def _initialising(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _call(callback: Callback, module: ModuleType) -> None:
    try:
        callback(module)
    except Exception as exc:  # noqa: BLE001 - a hook must never break the user's import
        report_failure(f"post-import hook for {module.__name__}", exc)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if not _watched(fullname) or getattr(self._busy, "name", None) == fullname:
            return None
        self._busy.name = fullname
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(spec.loader)
        return spec


class _NotifyingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # the module keeps its real loader for anything that inspects it later
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        if module.__spec__ is not None:  # it has executed: callbacks may treat it as imported
            module.__spec__._initializing = False  # type: ignore[attr-defined]
        name = module.__name__
        with _lock:
            callbacks = _callbacks.pop(name, [])
            top, dot, _ = name.partition(".")
            if dot:
                callbacks = [*callbacks, *_package_callbacks.get(top, ())]
            _drop_finder_if_idle()
        for callback in callbacks:
            _call(callback, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_finder = _PostImportFinder()
