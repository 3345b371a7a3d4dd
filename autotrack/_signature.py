"""Model signatures and input examples: what a stored model takes and returns, framework-free.

An integration that stores a model (an artifact of kind ``model``) adds two keys to its metadata,
built here from the training data it saw and a prediction on a few of its rows:

``signature``
    ``{"inputs": SCHEMA, "outputs": SCHEMA}``. A schema is a small dict; its ``type`` says which:

    * ``"dataframe"`` (pandas): ``columns`` -- ``[{"name": "age", "dtype": "int64"}, ...]`` -- and
      ``n_columns``; ``"series"``: ``name``, ``dtype``, ``shape``;
    * ``"columns"``: a table that is not a DataFrame but knows its columns (an XGBoost ``DMatrix``
      with ``feature_names``; dtypes in the framework's own words, such as ``"int"``, ``"c"``);
    * ``"array"`` (numpy and array-likes), ``"tensor"`` (torch, ...), ``"sparse"`` (scipy):
      ``shape`` with the batch dimension as ``-1``, ``dtype``, and ``n_columns`` when 2-D;
    * ``"dict"``: ``fields`` (name -> schema); ``"sequence"``: ``items`` (a tuple of inputs).

    ``outputs`` is None when no prediction could be made (its reason in ``outputs_error``).

``input_example``
    The first :data:`EXAMPLE_ROWS` rows as JSON: ``{"format": "records", "columns": [...],
    "data": [{"age": 31, ...}, ...]}`` for DataFrames, ``{"format": "array", "data": [[...], ...]}``
    for arrays and tensors, ``{"format": "dict", "data": {name: example}}``. The secret filter
    applies: string values are scanned like any logged text (token shapes become ``***``) and
    columns (or dict keys) with secret-looking names are left out (listed in ``dropped``). Fewer
    rows are kept when the JSON would exceed :data:`MAX_EXAMPLE_BYTES`; when one row does, there is
    no example and ``input_example_omitted`` says why. ``autolog(log_input_examples=False)``
    stores none.

:func:`check_input` validates data against a signature (a registered version, a run's model
artifact, or the dict itself).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import InvalidArgumentError

__all__ = ["EXAMPLE_ROWS", "MAX_EXAMPLE_BYTES", "check_input", "head", "input_example", "model_io", "schema",
           "signature_of"]

#: Rows kept in an input example (and predicted on for the output schema).
EXAMPLE_ROWS = 5
#: Largest input example stored, as JSON bytes.
MAX_EXAMPLE_BYTES = 64 * 1024


# -- what kind of object ------------------------------------------------------------------------


def _root(obj: Any) -> str:
    return type(obj).__module__.partition(".")[0]


def _is_frame(obj: Any) -> bool:
    return _root(obj) == "pandas" and hasattr(obj, "columns") and hasattr(obj, "dtypes") and hasattr(obj, "iloc")


def _is_series(obj: Any) -> bool:
    return _root(obj) == "pandas" and hasattr(obj, "dtype") and hasattr(obj, "iloc") and not hasattr(obj, "columns")


def _is_sparse(obj: Any) -> bool:
    return _root(obj) == "scipy" and hasattr(obj, "tocsr") and hasattr(obj, "shape")


def _is_tensor(obj: Any) -> bool:
    return _root(obj) in ("torch", "tensorflow", "jax", "jaxlib") and hasattr(obj, "shape") and hasattr(obj, "dtype")


def _is_array(obj: Any) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__")


def _dtype_text(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _shape(shape: Sequence[Any]) -> list[int]:
    dims = [int(d) if d is not None else -1 for d in shape]
    return [-1, *dims[1:]] if dims else []


# -- schemas ------------------------------------------------------------------------------------


def schema(obj: Any) -> dict[str, Any] | None:
    """The schema of ``obj`` (see the module docstring), or None for an object of no known kind."""
    if obj is None:
        return None
    if _is_frame(obj):
        columns = [{"name": str(name), "dtype": str(dtype)} for name, dtype in obj.dtypes.items()]
        return {"type": "dataframe", "columns": columns, "n_columns": len(columns)}
    if _is_series(obj):
        return {"type": "series", "name": None if obj.name is None else str(obj.name), "dtype": str(obj.dtype),
                "shape": [-1]}
    if _is_sparse(obj):
        out = {"type": "sparse", "format": str(getattr(obj, "format", "")), "shape": _shape(obj.shape),
               "dtype": _dtype_text(obj.dtype)}
        if len(obj.shape) == 2:
            out["n_columns"] = int(obj.shape[1])
        return out
    if isinstance(obj, Mapping):
        return {"type": "dict", "fields": {str(k): schema(v) for k, v in obj.items()}}
    if _is_array(obj) and not isinstance(obj, (str, bytes)):
        kind = "tensor" if _is_tensor(obj) else "array"
        shape = _shape(tuple(obj.shape))
        out = {"type": kind, "shape": shape, "dtype": _dtype_text(obj.dtype)}
        if len(shape) == 2:
            out["n_columns"] = shape[1]
        return out
    if isinstance(obj, (list, tuple)) or hasattr(obj, "__array__"):
        if isinstance(obj, (list, tuple)) and obj and all(_is_array(v) or isinstance(v, Mapping) for v in obj):
            return {"type": "sequence", "items": [schema(v) for v in obj]}
        import numpy as np

        try:
            return schema(np.asarray(obj))
        except Exception:  # noqa: BLE001 - ragged lists: no schema
            return None
    return None


def columns_schema(names: Sequence[Any] | None, dtypes: Sequence[Any] | None, n_columns: int) -> dict[str, Any]:
    """The schema of a table that is not a DataFrame but knows its column names and/or types (an
    XGBoost ``DMatrix``): ``{"type": "columns", "columns": [...], "n_columns": n}``."""
    names = list(names) if names else [None] * n_columns
    dtypes = list(dtypes) if dtypes else [None] * n_columns
    columns = [{"name": None if n is None else str(n), "dtype": None if t is None else str(t)}
               for n, t in zip(names, dtypes)]
    return {"type": "columns", "columns": columns, "n_columns": int(n_columns)}


def head(obj: Any, rows: int = EXAMPLE_ROWS) -> Any:
    """The first ``rows`` rows of ``obj`` (a DataFrame, array, tensor, sparse matrix, dict or
    tuple of them, a list of rows), the same kind of object."""
    if _is_frame(obj) or _is_series(obj):
        return obj.iloc[:rows]
    if _is_sparse(obj):  # before Mapping: scipy's dok_matrix is a dict
        return obj.tocsr()[:rows]
    if isinstance(obj, Mapping):
        return {k: head(v, rows) for k, v in obj.items()}
    if isinstance(obj, tuple) or (isinstance(obj, list) and obj and all(_is_array(v) for v in obj)):
        return type(obj)(head(v, rows) for v in obj)
    if not hasattr(obj, "__getitem__") and hasattr(obj, "__array__"):  # an array-like without indexing
        import numpy as np

        obj = np.asarray(obj)
    try:
        return obj[:rows]
    except (TypeError, KeyError, IndexError):  # not rows of anything: no example, no prediction
        return None


# -- input examples ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A cell or element as a JSON value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        with contextlib.suppress(Exception):  # e.g. a pandas Timestamp's item() differs
            value = item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    with contextlib.suppress(Exception):
        import pandas as pd

        if pd.isna(value):
            return None
    return str(value)


def _to_lists(obj: Any) -> Any:
    if _is_tensor(obj):
        obj = obj.detach().cpu() if hasattr(obj, "detach") else obj
        if hasattr(obj, "float") and "bfloat16" in str(obj.dtype):
            obj = obj.float()
        obj = obj.numpy() if hasattr(obj, "numpy") else obj
    if _is_sparse(obj):
        obj = obj.toarray()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_to_lists(v) for v in obj]
    return _plain(obj)


def _example_of(rows: Any, secrets: list[str]) -> dict[str, Any] | None:
    from ._redact import is_secret_name, redact_value

    if _is_frame(rows):
        kept = [c for c in rows.columns if not is_secret_name(str(c))]
        dropped = [str(c) for c in rows.columns if is_secret_name(str(c))]
        values = {str(c): [_clean(str(c), _plain(v), secrets) for v in rows[c].tolist()] for c in kept}
        records = [{name: column[i] for name, column in values.items()} for i in range(len(rows))]
        out: dict[str, Any] = {"format": "records", "columns": [str(c) for c in kept], "data": records}
        if dropped:
            out["dropped"] = dropped
        return out
    if _is_series(rows):
        name = "" if rows.name is None else str(rows.name)
        return {"format": "array", "data": [_clean(name, _plain(v), secrets) for v in rows.tolist()]}
    if isinstance(rows, Mapping):
        fields, dropped = {}, []
        for key, value in rows.items():
            if is_secret_name(str(key)):
                dropped.append(str(key))
                continue
            fields[str(key)] = _example_of(value, secrets)
        out = {"format": "dict", "data": fields}
        if dropped:
            out["dropped"] = dropped
        return out
    if isinstance(rows, tuple) or (isinstance(rows, list) and rows and all(_is_array(v) for v in rows)):
        return {"format": "sequence", "data": [_example_of(v, secrets) for v in rows]}
    data = _to_lists(rows)
    return {"format": "array", "data": redact_value("input_example", data, extra=secrets, where="input_example")}


def _clean(name: str, value: Any, secrets: list[str]) -> Any:
    from ._redact import redact_value

    if isinstance(value, (str, list)):
        return redact_value(name, value, extra=secrets, where="input_example")
    return value


def _size(value: Any) -> int:
    return len(json.dumps(value, allow_nan=True, ensure_ascii=False, default=repr).encode("utf-8"))


def input_example(obj: Any, rows: int = EXAMPLE_ROWS, *, max_bytes: int = MAX_EXAMPLE_BYTES) -> dict[str, Any]:
    """``{"input_example": EXAMPLE}`` for the first ``rows`` rows of ``obj`` (fewer when larger
    than ``max_bytes``), or ``{"input_example_omitted": reason}``."""
    from ._redact import secret_env_values

    secrets = secret_env_values()
    n = rows
    while True:
        first = head(obj, n)
        example = _example_of(first, secrets) if first is not None else None
        if example is None:
            return {"input_example_omitted": f"no example can be made of a {type(obj).__qualname__}"}
        size = _size(example)
        if size <= max_bytes:
            example["rows"] = n
            return {"input_example": example}
        if n <= 1:
            return {"input_example_omitted": f"one row is {size} bytes as JSON, more than the {max_bytes} kept"}
        n = max(1, min(n - 1, int(n * max_bytes / size)))


# -- what an integration calls -----------------------------------------------------------------


def model_io(inputs: Any, predict: Callable[[Any], Any] | None = None, *, outputs: Any = None,
             log_example: bool = True, input_schema: dict[str, Any] | None = None,
             example_rows: Any = None, rows: int = EXAMPLE_ROWS) -> dict[str, Any]:
    """The metadata a stored model gets: ``signature`` (and ``input_example`` unless
    ``log_example=False``).

    ``inputs``: the training data (or a batch of it); only its first ``rows`` rows are used.
    ``predict``: called once on those rows for the output schema (the caller makes it inside
    ``recording(...)`` so that it is not itself recorded); or pass ``outputs`` the model already
    produced. A prediction that raises leaves ``outputs`` None with the reason in
    ``outputs_error``. ``input_schema`` / ``example_rows`` replace what is derived from
    ``inputs`` (an integration that knows better, e.g. from an XGBoost ``DMatrix``)."""
    first = head(inputs, rows) if inputs is not None else None
    signature: dict[str, Any] = {"inputs": input_schema if input_schema is not None else schema(inputs),
                                 "outputs": None}
    if outputs is None and predict is not None and first is not None:
        try:
            outputs = predict(first)
        except Exception as exc:  # noqa: BLE001 - the model's own failure: no output schema, and why
            signature["outputs_error"] = f"{type(exc).__name__}: {exc}"[:300]
    if outputs is not None:
        signature["outputs"] = schema(outputs)
    out: dict[str, Any] = {"signature": signature}
    if log_example:
        source = example_rows if example_rows is not None else first
        if source is not None:
            out.update(input_example(source, rows))
    return out


# -- validation --------------------------------------------------------------------------------

_FAMILIES = (
    ("category", ("category", "c")),
    ("bool", ("bool", "boolean", "i")),
)


def dtype_family(dtype: Any) -> str:
    """``integer``, ``float``, ``bool``, ``category``, ``string``, ``datetime``, ``complex`` or
    ``other``, for a numpy/pandas/torch dtype or an XGBoost feature type."""
    text = _dtype_text(dtype).lower()
    for family, names in _FAMILIES:
        if text in names:
            return family
    if text.startswith("bool"):
        return "bool"
    if text in ("int", "long", "short") or text.startswith(("int", "uint")):
        return "integer"
    if text in ("float", "q", "double", "half") or text.startswith(("float", "bfloat")):
        return "float"
    if text.startswith("complex"):
        return "complex"
    if text.startswith(("datetime", "timedelta")):
        return "datetime"
    if text in ("object", "string", "str") or text.startswith(("<u", "|s", "str", "string", "<s", "|u")):
        return "string"
    return "other"


def _compatible(expected: str, actual: str) -> bool:
    if expected == actual or "other" in (expected, actual):
        return True
    if expected == "float" and actual in ("integer", "bool"):
        return True
    if expected == "integer" and actual == "bool":
        return True
    return {expected, actual} <= {"category", "string"}


def signature_of(source: Any, store: Any = None) -> dict[str, Any]:
    """The signature of ``source``: a registered version (:class:`autotrack.ModelVersion` or a
    ``"name@alias"`` / ``"name/3"`` / ``"name"`` reference), a run's artifact
    (:class:`autotrack.Artifact`), a :class:`autotrack.RunRecord` (its newest model), or the
    signature dict itself."""
    from ._query import Artifact, RunRecord
    from ._registry import ModelVersion, resolve

    if isinstance(source, Mapping):
        if "inputs" not in source:
            raise InvalidArgumentError("model", source, "a signature dict has an 'inputs' key; pass a ModelVersion, "
                                       "a 'name@alias' reference, an Artifact or a RunRecord instead")
        return dict(source)
    where = None
    if isinstance(source, str):
        source = resolve(source, store)
    if isinstance(source, ModelVersion):
        meta, where = source.meta, source.ref
    elif isinstance(source, Artifact):
        meta, where = source.metadata, source.name
    elif isinstance(source, RunRecord):
        models = [a for a in source.artifacts if a.kind == "model" and not a.deleted]
        if not models:
            raise InvalidArgumentError("model", source.id, "this run stored no model artifact, so there is no "
                                       "signature to check against")
        meta, where = models[-1].metadata, f"{models[-1].name} of run {source.id[:8]}"
    else:
        raise InvalidArgumentError("model", source, "pass a ModelVersion, a 'name@alias' / 'name/3' reference, an "
                                   "Artifact, a RunRecord or a signature dict")
    sig = (meta or {}).get("signature")
    if not isinstance(sig, Mapping) or sig.get("inputs") is None:
        raise InvalidArgumentError("model", where, "this model was stored without an input signature (stored before "
                                   "autotrack recorded signatures, or from data of no known kind)")
    return dict(sig)


def check_input(model: Any, X: Any, *, store: Any = None) -> Any:
    """Check ``X`` against the input signature of ``model`` (see :func:`signature_of`); returns
    ``X`` unchanged, so ``est.predict(autotrack.check_input("churn@champion", X))`` works.

    A DataFrame must have every column the model was trained on (extra columns are allowed), each
    of a compatible dtype (same kind; an integer or bool column where floats are expected is
    fine; category and text columns are interchangeable); an array or tensor the same number of
    dimensions and the same sizes past the batch dimension, of a compatible dtype. A mismatch is
    an :class:`autotrack.InvalidArgumentError` naming the column (or dimension) and what the model
    expects."""
    sig = signature_of(model, store)
    _check(sig["inputs"], X, "X")
    return X


def _check(expected: Mapping[str, Any], X: Any, arg: str) -> None:
    kind = expected.get("type")
    if kind in ("dataframe", "columns"):
        _check_table(expected, X, arg)
    elif kind in ("array", "tensor", "sparse"):
        _check_array(expected, X, arg)
    elif kind == "series":
        _check_array({"shape": [-1], "dtype": expected.get("dtype")}, X, arg)
    elif kind == "dict":
        if not isinstance(X, Mapping):
            raise InvalidArgumentError(arg, type(X).__name__, f"the model takes a dict with keys "
                                       f"{sorted(expected['fields'])}; pass one")
        for key, field in expected["fields"].items():
            if key not in X:
                raise InvalidArgumentError(arg, sorted(map(str, X)), f"key {key!r} is missing; the model takes keys "
                                           f"{sorted(expected['fields'])}")
            if field is not None:
                _check(field, X[key], f"{arg}[{key!r}]")
    elif kind == "sequence":
        items = expected["items"]
        if not isinstance(X, (list, tuple)) or len(X) != len(items):
            raise InvalidArgumentError(arg, type(X).__name__, f"the model takes a tuple of {len(items)} inputs")
        for i, (item, value) in enumerate(zip(items, X)):
            if item is not None:
                _check(item, value, f"{arg}[{i}]")


def _describe_columns(columns: Sequence[Mapping[str, Any]]) -> str:
    shown = ", ".join(f"{c['name']} ({c['dtype']})" for c in columns[:20])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")


def _check_table(expected: Mapping[str, Any], X: Any, arg: str) -> None:
    columns = expected.get("columns") or []
    named = [c for c in columns if c.get("name") is not None]
    n = int(expected.get("n_columns") or len(columns))
    if _is_frame(X):
        if not named:
            if X.shape[1] != n:
                raise InvalidArgumentError(arg, X.shape[1], f"the frame has {X.shape[1]} columns; the model expects {n}")
            return
        present = {str(c): c for c in X.columns}
        for col in named:
            name = col["name"]
            if name not in present:
                raise InvalidArgumentError(arg, sorted(present), f"column {name!r} ({col['dtype']}) is missing; the model "
                                           f"was trained on columns {_describe_columns(named)}")
            actual = str(X[present[name]].dtype)
            if col.get("dtype") is not None and not _compatible(dtype_family(col["dtype"]), dtype_family(actual)):
                raise InvalidArgumentError(
                    f"{arg}[{name!r}]", actual,
                    f"column {name!r} has dtype {actual}; the model expects {col['dtype']} "
                    f"({dtype_family(col['dtype'])}). Convert it, e.g. {arg}[{name!r}].astype({col['dtype']!r})")
        return
    shape = getattr(X, "shape", None)
    if shape is None:
        import numpy as np

        try:
            shape = np.asarray(X).shape
        except Exception:  # noqa: BLE001 - ragged rows
            raise InvalidArgumentError(arg, type(X).__name__, f"pass a table of {n} columns") from None
    if len(shape) != 2:
        raise InvalidArgumentError(arg, tuple(shape), f"the model takes a table (2-D) of {n} columns: "
                                   f"{_describe_columns(columns)}")
    if int(shape[1]) != n:
        raise InvalidArgumentError(arg, tuple(shape), f"the data has {shape[1]} columns; the model expects {n}: "
                                   f"{_describe_columns(columns)}")


def _check_array(expected: Mapping[str, Any], X: Any, arg: str) -> None:
    want = list(expected.get("shape") or [])
    if _is_frame(X):
        shape, dtypes = tuple(X.shape), [str(d) for d in X.dtypes]
    else:
        if not hasattr(X, "shape"):
            import numpy as np

            try:
                X = np.asarray(X)
            except Exception:  # noqa: BLE001
                raise InvalidArgumentError(arg, type(X).__name__, f"pass an array of shape {want}") from None
        shape, dtypes = tuple(X.shape), [_dtype_text(X.dtype)]
    if len(shape) != len(want):
        raise InvalidArgumentError(arg, shape, f"the model takes {len(want)}-D input of shape {want} (-1: any size); "
                                   f"this is {len(shape)}-D")
    for dim, (size, wanted) in enumerate(zip(shape, want)):
        if dim > 0 and wanted not in (-1, None) and int(size) != int(wanted):
            raise InvalidArgumentError(arg, shape, f"dimension {dim} has size {size}; the model expects {wanted} "
                                       f"(shape {want}, -1: any size)")
    dtype = expected.get("dtype")
    if dtype is not None:
        family = dtype_family(dtype)
        for actual in dtypes:
            if not _compatible(family, dtype_family(actual)):
                raise InvalidArgumentError(arg, actual, f"the data has dtype {actual}; the model expects {dtype} "
                                           f"({family}). Convert it, e.g. X.astype({dtype!r})")


def recorded(metadata: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """A stored model's ``signature`` or ``input_example`` from its metadata (None when it has none)."""
    value = metadata.get(key)
    return value if isinstance(value, dict) else None
