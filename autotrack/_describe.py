"""Stable text for values that have no JSON form (param values, seeds, section entries).

``repr`` of many objects holds a memory address (``<scipy.stats._distn_infrastructure.rv_continuous_frozen
object at 0x7f...>``), which makes every run look different from every other. :func:`stable_repr` gives
the same text for the same value in any process:

- a frozen scipy distribution: ``scipy.stats.uniform(loc=0.1, scale=0.9)``;
- a numpy array (or anything with ``shape``, ``dtype`` and ``tobytes``): ``numpy.ndarray(shape=(3, 2),
  dtype=float64, hash=xxh3_128:...)``;
- an object whose repr holds an address: ``module.Class(attr=value, ...)`` from its public attributes,
  sorted by name, addresses removed;
- anything else: its repr (sklearn estimators, dataclasses, enums print what they are already).

numpy and scipy are never imported here: values are recognised by their attributes.
"""

from __future__ import annotations

import re
from typing import Any

_ADDRESS = re.compile(r"\s+at\s+0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
MAX_CHARS = 2000
MAX_ATTRIBUTES = 30


def strip_addresses(text: str) -> str:
    """``text`` without memory addresses (`` at 0x7f...`` and bare ``0x...`` of 6+ hex digits)."""
    return _ADDRESS.sub("", text)


def _attr(value: Any, name: str) -> Any:
    """``getattr(value, name, None)`` that survives a ``__getattr__`` raising anything."""
    try:
        return getattr(value, name, None)
    except Exception:  # noqa: BLE001
        return None


def _qualname(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", None) else f"{module}.{cls.__qualname__}"


def _short(value: Any, depth: int) -> str:
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if depth > 2:
        return _qualname(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_short(v, depth + 1) for v in list(value)[:10]) + (", ..." if len(value) > 10 else "")
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        items = list(value.items())[:10]
        return "{" + ", ".join(f"{k!r}: {_short(v, depth + 1)}" for k, v in items) + ("...}" if len(value) > 10 else "}")
    return stable_repr(value, depth + 1)


def _scipy_frozen(value: Any) -> str | None:
    name = _attr(_attr(value, "dist"), "name")
    if not isinstance(name, str) or _attr(value, "args") is None or _attr(value, "kwds") is None:
        return None
    if not type(value).__module__.startswith("scipy."):
        return None
    args = [_short(a, 1) for a in value.args]
    args += [f"{k}={_short(v, 1)}" for k, v in sorted(dict(value.kwds).items())]
    return f"scipy.stats.{name}({', '.join(args)})"


def _array(value: Any) -> str | None:
    shape, dtype = _attr(value, "shape"), _attr(value, "dtype")
    if shape is None or dtype is None or not callable(_attr(value, "tobytes")):
        return None
    try:
        from ._capture.fingerprint import fingerprint

        digest = fingerprint(value).get("hash")
    except Exception:  # noqa: BLE001 - an odd array type: shape and dtype still say a lot
        digest = None
    text = f"{_qualname(value)}(shape={tuple(shape)}, dtype={dtype}"
    return text + (f", hash={digest})" if digest else ")")


def _attributes(value: Any, depth: int) -> str:
    try:
        attrs = vars(value)
    except TypeError:
        attrs = {}
    public = sorted((k, v) for k, v in attrs.items() if isinstance(k, str) and not k.startswith("_") and not callable(v))
    body = ", ".join(f"{k}={_short(v, depth)}" for k, v in public[:MAX_ATTRIBUTES])
    if len(public) > MAX_ATTRIBUTES:
        body += ", ..."
    return strip_addresses(f"{_qualname(value)}({body})")


def stable_repr(value: Any, _depth: int = 0) -> str:
    """The same text for the same value in every process (see the module docstring).

    Never raises: a ``__repr__`` that raises, returns a non-str or recurses too deep gives a bounded
    description instead (``<unrepresentable T: ErrorType>`` or a depth-limited repr).
    """
    try:
        described = _scipy_frozen(value) or _array(value)
        if described is not None:
            return described[:MAX_CHARS]
        text = repr(value)
        if type(text) is not str:
            raise TypeError("__repr__ returned a non-str")
        if _ADDRESS.search(text) is None:
            return text
        name = _attr(value, "__qualname__")
        if callable(value) and isinstance(name, str):  # functions, methods, classes: their import path
            return f"<{type(value).__name__} {_attr(value, '__module__') or '?'}.{name}>"
        return _attributes(value, _depth + 1)[:MAX_CHARS]
    except RecursionError:
        return short_repr(value)
    except Exception as exc:  # noqa: BLE001 - any object may have a broken __repr__ or attributes
        return f"<unrepresentable {type_name(value)}: {type(exc).__name__}>"


def short_repr(value: Any) -> str:
    """A repr bounded in depth and length that never recurses into deep nesting or raises."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlist, r.maxdict = 3, 200, 200, 20, 20
    try:
        text = r.repr(value)
        return text if type(text) is str else f"<unrepresentable {type_name(value)}>"
    except Exception:  # noqa: BLE001
        return f"<unrepresentable {type_name(value)}>"


def type_name(value: Any) -> str:
    """``type(value).__qualname__``, or ``object`` for a type whose name cannot be read."""
    try:
        return str(type(value).__qualname__)
    except Exception:  # noqa: BLE001
        return "object"


def stable_description(value: Any) -> str:
    """Alias used for seeds: a stable text for ``value``."""
    return stable_repr(value)
