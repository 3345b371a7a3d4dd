"""What a fit is: params, the ``model`` section, the ``data`` section, the default run name."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator

from autotrack.integrations.base import InvalidArgumentError, fingerprint

MAX_KEY_LENGTH = 500  # the store's limit for a key


def class_path(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    public = module.split("._")[0] if module.startswith("sklearn.") else module
    return f"{public}.{cls.__qualname__}"


def plain(value: Any) -> Any:
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, type) or callable(value):
        return getattr(value, "__qualname__", repr(value))
    return value


def short_key(key: str) -> str:
    """A key over the store's limit, shortened: its start, its original length and a digest of
    the whole (two long keys with one start stay apart)."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:12]
    tail = f"...[{len(key)} chars, sha256 {digest}]"
    return key[: MAX_KEY_LENGTH - len(tail)] + tail


def params(est: Any) -> dict[str, Any]:
    try:
        found = est.get_params(deep=True)
    except Exception:  # noqa: BLE001 - a third-party estimator with a broken get_params
        return {}
    return {short_key(str(k)): plain(v) for k, v in found.items()}


def structure(est: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"class": class_path(est)}
    if depth > 8 or not hasattr(est, "get_params"):
        return out
    try:
        found = est.get_params(deep=False)
    except Exception:  # noqa: BLE001
        return out
    for key, value in found.items():
        if hasattr(value, "get_params") and not isinstance(value, type):
            out[key] = structure(value, depth + 1)
        elif isinstance(value, list) and value and all(
            isinstance(t, tuple) and len(t) >= 2 and isinstance(t[0], str) for t in value
        ):
            items = []
            for item in value:
                node = {"name": item[0]}
                step = item[1]
                node.update(structure(step, depth + 1) if hasattr(step, "get_params") else {"value": str(step)})
                if len(item) > 2:
                    node["columns"] = repr(item[2])[:200]
                items.append(node)
            out[key] = items
    return out


def model_info(est: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"framework": "scikit-learn", "sklearn_version": sklearn.__version__,
                            "class": class_path(est), "repr": repr(est)[:4000], "structure": structure(est)}
    n_features = getattr(est, "n_features_in_", None)
    if n_features is not None:
        info["n_features_in"] = int(n_features)
    classes = getattr(est, "classes_", None)
    if classes is not None and np.ndim(classes) == 1:
        info["classes"] = [plain(c) for c in list(classes)[:1000]]
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        info["feature_names_in"] = [str(n) for n in list(names)[:1000]]
    return info


def describe(data: Any) -> dict[str, Any]:
    """Type, shape, dtypes, feature names and content hash of one input (an entry of ``data``).
    The hash is the core's :func:`autotrack.fingerprint`; objects it cannot describe get none."""
    try:
        out = dict(fingerprint(data))
    except (InvalidArgumentError, TypeError, ValueError):
        out = {"type": f"{type(data).__module__}.{type(data).__qualname__}", "hash": None}
    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "dtypes"):  # a pandas-like DataFrame
        out["shape"] = list(data.shape)
        out["feature_names"] = [str(c) for c in list(columns)[:1000]]
        out.setdefault("dtypes", {str(c): str(t) for c, t in list(data.dtypes.items())[:1000]})
    elif hasattr(data, "dtype") and hasattr(data, "shape"):  # ndarray, Series, sparse matrix
        out["shape"] = list(data.shape)
        out.setdefault("dtype", str(data.dtype))
        if getattr(data, "name", None) is not None:
            out["name"] = str(data.name)
        if hasattr(data, "nnz"):
            out["nnz"] = int(data.nnz)
    elif "shape" not in out:
        try:
            arr = np.asarray(data)
            out["shape"] = list(arr.shape)
            out.setdefault("dtype", str(arr.dtype))
        except Exception:  # noqa: BLE001, S110 - anything array-like may be passed to fit
            pass
    return out


def data_hash(data: Any) -> str | None:
    try:
        found = fingerprint(data).get("hash")
    except Exception:  # noqa: BLE001 - a fingerprint is a nicety
        return None
    return found if isinstance(found, str) else None


def default_name(est: Any, train: Mapping[str, Any] | None) -> str:
    """``RandomForestClassifier-150x4``: the estimator's class and the training data's shape."""
    name = type(est).__name__
    shape = (train or {}).get("shape")
    if isinstance(shape, list) and shape and all(isinstance(n, int) for n in shape):
        name += "-" + "x".join(str(n) for n in shape)
    return name
