"""Validation and conversion of what users log: keys, metric values, params.

Kept free of numpy and torch: numpy scalars and 0-d tensors are recognised by duck typing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidArgumentError, UnsafeArtifactNameError

MAX_KEY_LENGTH = 500
#: Params longer than this (as JSON) are stored as a truncated repr with the original length.
MAX_PARAM_CHARS = 10_000
MAX_PARAM_ITEMS = 1_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_key(key: object, argument: str = "key") -> str:
    """Return ``key`` if it is a usable metric/param/tag key, else raise InvalidArgumentError."""
    if type(key) is not str:
        raise InvalidArgumentError(argument, key, "keys are strings, e.g. 'train/loss'")
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
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            return to_float(item(), argument)
        except (TypeError, ValueError, RuntimeError) as exc:
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


def to_step(step: object) -> int:
    if type(step) is int:
        return step  # type: ignore[return-value]
    item = getattr(step, "item", None)
    if item is not None:
        step = item()
    if isinstance(step, bool) or not isinstance(step, int):
        raise InvalidArgumentError("step", step, "steps are integers, e.g. the global optimizer step")
    if not -(2**63) <= step < 2**63:
        raise InvalidArgumentError("step", step, "steps must fit in a signed 64-bit integer")
    return int(step)


def flatten(params: Mapping[str, Any], prefix: str = "", _seen: set[int] | None = None) -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: ``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``."""
    seen = _seen if _seen is not None else set()
    if id(params) in seen:
        return {prefix.rstrip(".") or "<root>": "<circular reference>"}
    seen.add(id(params))
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}.", seen))
        else:
            out[name] = value
    seen.discard(id(params))
    return out


def jsonable(value: Any, _depth: int = 0) -> Any:
    """Turn ``value`` into something ``json.dumps`` accepts, keeping JSON types as they are.

    numpy scalars become Python numbers, tuples and sets become lists, anything else a stable
    text (:func:`autotrack._describe.stable_repr`: its repr without memory addresses).
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if _depth > 20:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        try:
            items = sorted(value)
        except TypeError:
            items = list(value)
        return [jsonable(v, _depth + 1) for v in items]
    if isinstance(value, (bool, int, float, str)):  # subclasses: IntEnum, numpy.float64, str enums
        return type_base(value)
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if item is not None and shape is not None and tuple(shape) in ((), (1,)):
        try:
            return jsonable(item(), _depth + 1)
        except Exception:  # noqa: BLE001 - an odd object's item() must not break logging
            pass
    from ._describe import stable_repr  # no memory addresses: the same value reads the same in every run

    return stable_repr(value)


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
        return json.dumps(value[:MAX_PARAM_CHARS]), len(value)
    try:
        text = json.dumps(jsonable(value), allow_nan=True, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(_safe_repr(value))
    if len(text) > MAX_PARAM_CHARS:
        return json.dumps(text[:MAX_PARAM_CHARS]), len(text)
    return text, None


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"


def decode_param(text: str) -> Any:
    return json.loads(text)


def check_artifact_name(name: object) -> str:
    """Return a normalised relative artifact name, rejecting anything that could escape the store."""
    if type(name) is not str or not name:
        raise UnsafeArtifactNameError("name", name, "artifact names are non-empty strings like 'model.pt'")
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
