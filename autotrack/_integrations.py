"""The integration registry: which integrations exist, what turns each on, where its parts live.

The core names no framework. Integrations register themselves (the built-in ones from
``autotrack/integrations/__init__.py``, third-party ones through the entry-point group
``autotrack.integrations``), and ``autolog()``, seed capture and ``fingerprint()`` loop over the
registry. Targets are ``"package.module:attribute"`` strings (imported only when needed, so that
registering never imports a framework) or the objects themselves.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidArgumentError

ENTRY_POINT_GROUP = "autotrack.integrations"
BUILTIN_PACKAGE = "autotrack.integrations"
#: The keywords ``autolog()`` passes to an integration's ``autolog`` (the one contract).
AUTOLOG_OPTIONS = ("disable", "log_models", "log_every_n_steps", "grad_norm_every")

@dataclass(frozen=True)
class Integration:
    """One integration, as registered.

    * ``name`` -- the switch users type: ``autotrack.autolog(<name>=False)``, ``exclude=[name]``;
    * ``modules`` -- importing any of these (the framework) turns its autologging on;
    * ``autolog`` -- the integration's ``autolog(*, disable, log_models, log_every_n_steps,
      grad_norm_every)``;
    * ``seeds`` -- optional ``install(framework_module)`` that patches the framework's seeders
      (called by seed capture once the framework is imported);
    * ``fingerprint`` -- optional callable run once (when the framework is imported and data is
      fingerprinted) to register the framework's fingerprinters;
    * ``aliases`` -- other switch names accepted for this integration;
    * ``options`` -- the autolog keywords this integration's ``autolog`` takes (declared, never
      sniffed); every one of ``AUTOLOG_OPTIONS`` unless said otherwise.
    """

    name: str
    modules: tuple[str, ...]
    autolog: Any
    seeds: Any = None
    fingerprint: Any = None
    aliases: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @property
    def autolog_module(self) -> str | None:
        """The module holding ``autolog`` when it was given as a string target."""
        return self.autolog.partition(":")[0] if isinstance(self.autolog, str) else None


_registry: dict[str, Integration] = {}
_lock = threading.RLock()
_discovered = False


def register_integration(
    name: str,
    *,
    modules: tuple[str, ...] | list[str],
    autolog: Any,
    seeds: Any = None,
    fingerprint: Any = None,
    aliases: tuple[str, ...] | list[str] = (),
    options: tuple[str, ...] | list[str] | None = None,
) -> Integration:
    """Register (or replace) the integration ``name``. See :class:`Integration`."""
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidArgumentError("name", name, "use a Python identifier, e.g. 'keras' (it becomes an autolog keyword)")
    if isinstance(modules, str) or not modules or not all(isinstance(m, str) and m for m in modules):
        raise InvalidArgumentError("modules", modules, "pass the framework's module names, e.g. modules=('keras',)")
    for label, target in (("autolog", autolog), ("seeds", seeds), ("fingerprint", fingerprint)):
        if target is None and label != "autolog":
            continue
        if not (callable(target) or (isinstance(target, str) and ":" in target)):
            raise InvalidArgumentError(label, target, "pass a function or a 'package.module:function' string")
    if options is None:
        options = AUTOLOG_OPTIONS
    unknown = [o for o in options if o not in AUTOLOG_OPTIONS]
    if unknown or "disable" not in options:
        raise InvalidArgumentError("options", options, f"name keywords among {AUTOLOG_OPTIONS}, 'disable' included")
    integration = Integration(name, tuple(modules), autolog, seeds, fingerprint, tuple(aliases), tuple(options))
    with _lock:
        _registry[name] = integration
    return integration


def unregister_integration(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def integrations() -> list[Integration]:
    """Every registered integration (built-in and entry points), in registration order."""
    discover()
    with _lock:
        return list(_registry.values())


def find(name: str) -> Integration | None:
    """The integration called ``name`` (or one of its aliases)."""
    for integration in integrations():
        if name == integration.name or name in integration.aliases:
            return integration
    return None


def resolve(target: Any) -> Any:
    """The object a ``"module:attribute"`` target names (imports the module), or ``target``."""
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def discover(*, force: bool = False) -> None:
    """Load the built-in registrations and the ``autotrack.integrations`` entry points (once)."""
    global _discovered
    with _lock:
        if _discovered and not force:
            return
        _discovered = True
    from ._patching import report_failure

    try:
        importlib.import_module(BUILTIN_PACKAGE)  # registers the built-in integrations
    except Exception as exc:  # noqa: BLE001 - third-party ones still load
        report_failure("loading the built-in integrations", exc)
    from importlib.metadata import entry_points

    try:
        points = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # noqa: BLE001 - broken package metadata must not stop autolog
        report_failure("reading the autotrack.integrations entry points", exc)
        return
    for point in points:
        try:
            _load_entry_point(point)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the others
            report_failure(f"the integration entry point {point.name!r} ({point.value})", exc)


def _load_entry_point(point: Any) -> None:
    """An entry point names an :class:`Integration`, a dict of :func:`register_integration`
    arguments, or a function that registers (or returns) one. Loading it must not import the
    framework."""
    obj = point.load()
    if callable(obj) and not isinstance(obj, Integration):
        obj = obj()
    if isinstance(obj, Integration):
        with _lock:
            _registry[obj.name] = obj
    elif isinstance(obj, dict):
        register_integration(**{"name": point.name, **obj})
    elif obj is not None:
        raise InvalidArgumentError("entry point", point.value, "point to an Integration, a dict, or a function registering one")
