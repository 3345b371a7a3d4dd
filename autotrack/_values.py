"""Validation and conversion of what users log: keys, metric values, params.

Kept free of numpy and torch: numpy scalars and 0-d tensors are recognised by duck typing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ._describe import _attr as _getattr
from ._describe import short_repr, stable_repr
from ._errors import InvalidArgumentError, UnsafeArtifactNameError

MAX_KEY_LENGTH = 500
#: Params longer than this (as JSON) are stored as a truncated repr with the original length.
MAX_PARAM_CHARS = 10_000
MAX_PARAM_ITEMS = 1_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


#: Nesting deeper than this (dicts in params, lists in values) is stored as a short description.
MAX_DEPTH = 32


def safe_text(text: str) -> str:
    """``text`` made storable as UTF-8: a lone surrogate (a file name or argv that was not UTF-8,
    ``'/data/caf\\udce9.csv'``) becomes a backslash escape of the original byte (``caf\\xe9``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes the OS gave Python
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def check_key(key: object, argument: str = "key") -> str:
    """Return ``key`` if it is a usable metric/param/tag key, else raise InvalidArgumentError.

    The key returned is the one to store: lone surrogates are escaped (see ``safe_text``).
    """
    if type(key) is not str:
        if not isinstance(key, str):
            raise InvalidArgumentError(argument, key, "keys are strings, e.g. 'train/loss'")
        key = str.__str__(key)
    key = safe_text(key)
    if not key:
        raise InvalidArgumentError(argument, key, "keys must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            argument, key, f"keys are at most {MAX_KEY_LENGTH} characters (got {len(key)})"
        )
    if _CONTROL.search(key):
        raise InvalidArgumentError(
            argument, key, "keys must not contain control characters (NUL, newline, tab, ...)"
        )
    return key


def to_float(value: object, argument: str = "value") -> float:
    """Convert a metric value to a Python float, keeping NaN, +-inf, -0.0 and subnormals.

    Accepts Python numbers and bools, numpy scalars, 0-d arrays and one-element tensors (through
    their ``item()``), without importing numpy or torch.
    """
    t = type(value)
    if t is float:
        return value  # type: ignore[return-value]
    if t is int or t is bool:
        try:
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise InvalidArgumentError(
                argument, value, "the integer is too large for a float64 metric; log it as a param"
            ) from None
    item = _getattr(value, "item")
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            inner = item()
            if type(inner) is t:  # numpy.longdouble.item() returns itself
                return float(value)  # type: ignore[arg-type]
            return to_float(inner, argument)
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            if isinstance(exc, InvalidArgumentError):
                raise
            raise InvalidArgumentError(
                argument, value, "metric values are scalars: log a single number per key and step"
            ) from None
    if isinstance(value, (int, float)):  # subclasses such as numpy.float64 or IntEnum
        return float(value)
    raise InvalidArgumentError(
        argument, value, f"metric values are numbers, not {t.__name__}; log text with log_text()"
    )


def check_step(step: object) -> int:
    """The step to store: a signed 64-bit integer, else InvalidArgumentError naming the value.
    (Call it for every explicit step: an ``int`` of 2**63 or more is an ``int`` too.)"""
    if type(step) is int and -(2**63) <= step < 2**63:  # type: ignore[operator]
        return step  # type: ignore[return-value]
    return to_step(step)


def to_step(step: object) -> int:
    item = _getattr(step, "item") if type(step) is not int else None
    if item is not None:
        try:
            step = item()
        except Exception:  # noqa: BLE001 - reported below as a bad step
            pass
    if isinstance(step, bool) or not isinstance(step, int):
        raise InvalidArgumentError("step", step, "steps are integers, e.g. the global optimizer step")
    if not -(2**63) <= step < 2**63:
        raise InvalidArgumentError("step", step, "steps must fit in a signed 64-bit integer")
    return int(step)


def flatten(params: Mapping[str, Any], prefix: str = "", _seen: set[int] | None = None) -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: ``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``.

    Never raises and never recurses: a circular reference, a mapping nested deeper than
    ``MAX_DEPTH`` or one whose ``items()`` fails is stored as a short description.
    """
    out: dict[str, Any] = {}
    # (mapping, its dotted prefix, ids of the mappings above it)
    stack: list[tuple[Mapping[str, Any], str, frozenset[int]]] = [(params, prefix, frozenset(_seen or ()))]
    while stack:
        mapping, pre, above = stack.pop()
        here = pre.rstrip(".") or "<root>"
        if id(mapping) in above:
            out[here] = "<circular reference>"
            continue
        if len(above) >= MAX_DEPTH:
            out[here] = f"<{type(mapping).__name__} nested deeper than {MAX_DEPTH} levels>"
            continue
        try:
            items = list(mapping.items())
        except Exception as exc:  # noqa: BLE001 - a broken mapping must not break logging
            out[here] = f"<unreadable {type(mapping).__name__}: {type(exc).__name__}>"
            continue
        inner = above | {id(mapping)}
        children = []
        for key, value in items:
            name = f"{pre}{key if type(key) is str else _safe_str(key)}"
            try:
                nested = isinstance(value, Mapping) and len(value) > 0
            except Exception:  # noqa: BLE001 - a broken __len__
                nested = False
            if nested:
                children.append((value, f"{name}.", inner))
            else:
                out[name] = value
        stack.extend(reversed(children))
    return out


def safe_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """What ``log_params`` stores for ``params``: flat dotted keys (escaped, checked) mapped to
    JSON-ready values. Odd objects (a raising ``__repr__`` or ``__getattr__``, 5,000-deep
    nesting, lone surrogates) become safe descriptions; only a bad key raises."""
    return {check_key(k, "param key"): jsonable(v) for k, v in flatten(params).items()}


def safe_tag(value: Any) -> str:
    """A tag value as storable text: ``str(value)``, or a safe description when that raises."""
    if type(value) is str:
        return safe_text(value)
    return safe_text(_safe_str(value))


def _safe_str(value: Any) -> str:
    try:
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:  # noqa: BLE001
        return _safe_repr(value)


def jsonable(value: Any, _depth: int = 0) -> Any:
    """Turn ``value`` into something ``json.dumps`` accepts, keeping JSON types as they are.

    numpy scalars become Python numbers, tuples and sets become lists, anything else a stable
    text (:func:`autotrack._describe.stable_repr`: its repr without memory addresses).
    """
    if value is None or type(value) in (bool, int, float):
        return value
    if type(value) is str:
        return safe_text(value)
    if _depth > 20:
        return _short_repr(value)
    try:
        if isinstance(value, Mapping):
            return {safe_text(k if type(k) is str else _safe_str(k)): jsonable(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [jsonable(v, _depth + 1) for v in value]
        if isinstance(value, (set, frozenset)):
            try:
                items = sorted(value)
            except TypeError:
                items = list(value)
            return [jsonable(v, _depth + 1) for v in items]
        if isinstance(value, (bool, int, float, str)):  # subclasses: IntEnum, numpy.float64, str enums
            return jsonable(type_base(value), _depth + 1)
        if isinstance(value, (bytes, bytearray)):
            return safe_text(_safe_repr(bytes(value)))
    except Exception:  # noqa: BLE001 - an odd container (raising items()/__iter__) is described
        return _short_repr(value)
    item = _getattr(value, "item")
    shape = _getattr(value, "shape")
    if item is not None and shape is not None:
        try:
            if tuple(shape) in ((), (1,)):
                return jsonable(item(), _depth + 1)
        except Exception:  # noqa: BLE001 - an odd object's item() must not break logging
            pass
    return _safe_repr(value)  # no memory addresses: the same value reads the same in every run


def _safe_repr(value: Any) -> str:
    """One describer for every value without a JSON form: :func:`autotrack._describe.stable_repr`
    (no memory addresses, never raises), made safe to store."""
    return safe_text(stable_repr(value))


def _short_repr(value: Any) -> str:
    """A depth- and length-bounded description, for values nested too deep to walk."""
    return safe_text(short_repr(value))


def type_base(value: Any) -> Any:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value


def encode_param(value: Any) -> tuple[str, int | None]:
    """JSON-encode a param value. Returns (json, original_length) where original_length is set
    when the value was too large and has been replaced by a truncated repr."""
    try:
        size = len(value)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - any object may define a broken __len__
        size = 0
    if isinstance(value, (list, tuple, set, frozenset, dict)) and size > MAX_PARAM_ITEMS:
        text = _safe_repr(value)
        return json.dumps(text[:MAX_PARAM_CHARS]), len(text)
    if isinstance(value, str) and len(value) > MAX_PARAM_CHARS:
        value = safe_text(str.__str__(value))
        return json.dumps(value[:MAX_PARAM_CHARS]), len(value)
    try:
        text = json.dumps(jsonable(value), allow_nan=True, ensure_ascii=False)
    except Exception:  # noqa: BLE001 - TypeError, ValueError, RecursionError or an odd object's own error
        text = json.dumps(_safe_repr(value))
    if len(text) > MAX_PARAM_CHARS:
        return json.dumps(text[:MAX_PARAM_CHARS]), len(text)
    return text, None


def decode_param(text: str) -> Any:
    return json.loads(text)


def check_artifact_name(name: object) -> str:
    """Return a normalised relative artifact name, rejecting anything that could escape the store."""
    if type(name) is not str or not name:
        raise UnsafeArtifactNameError("name", name, "artifact names are non-empty strings like 'model.pt'")
    if safe_text(name) is not name:  # a lone surrogate: U+FFFD, as a backslash would read as a separator
        try:
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            name = name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    from urllib.parse import unquote

    for candidate in (name, unquote(name), unquote(unquote(name))):
        if "\x00" in candidate or _CONTROL.search(candidate):
            raise UnsafeArtifactNameError("name", name, "artifact names must not contain NUL or control characters")
        if "\\" in candidate or re.match(r"^[A-Za-z]:", candidate):
            raise UnsafeArtifactNameError(
                "name", name, "use forward slashes and no drive letter, e.g. 'checkpoints/epoch=1.ckpt'"
            )
        if candidate.startswith("/") or candidate.startswith("~"):
            raise UnsafeArtifactNameError("name", name, "artifact names are relative, e.g. 'model.pt'")
        parts = candidate.split("/")
        if any(part in ("..", ".") for part in parts):
            raise UnsafeArtifactNameError("name", name, "artifact names must not contain '.' or '..' parts")
    if len(name) > MAX_KEY_LENGTH:
        raise UnsafeArtifactNameError("name", name, f"artifact names are at most {MAX_KEY_LENGTH} characters")
    return "/".join(part for part in name.split("/") if part)


def is_finite(value: float) -> bool:
    return math.isfinite(value)
