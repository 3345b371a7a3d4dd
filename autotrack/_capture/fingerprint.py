"""Data fingerprints: ``autotrack.fingerprint(obj)`` and the ``data`` section.

A fingerprint says what the data is (type, shape or rows, dtypes or columns, byte size) and gives a
content hash that is the same for the same data in any process. Hashes are xxh3-128 when the
``xxhash`` package is installed, else BLAKE2b-128, and name their algorithm (``"xxh3_128:..."``).
Data above ``SAMPLE_ABOVE_BYTES`` is hashed by deterministic sampling (evenly spaced blocks or rows,
always including the first and last, plus the total size); ``hash_method`` says which was used.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import InvalidArgumentError

if TYPE_CHECKING:
    from .._run import Run

#: Objects larger than this are hashed by sampling.
SAMPLE_ABOVE_BYTES = 64 << 20
#: Sampling reads this many blocks of BLOCK_BYTES (16 MiB in all).
SAMPLE_BLOCKS = 256
BLOCK_BYTES = 64 << 10
#: Items read from a generic dataset (``len`` + ``__getitem__``) to hash it.
DATASET_SAMPLE_ITEMS = 16


class _Hasher:
    def __init__(self) -> None:
        try:
            import xxhash

            self._h: Any = xxhash.xxh3_128()
            self.algorithm = "xxh3_128"
        except ImportError:
            import hashlib

            self._h = hashlib.blake2b(digest_size=16)
            self.algorithm = "blake2b_128"

    def update(self, data: Any) -> None:
        self._h.update(data)

    def text(self, value: str) -> None:
        data = value.encode("utf-8")
        self._h.update(len(data).to_bytes(8, "little") + data)

    def hexdigest(self) -> str:
        return f"{self.algorithm}:{self._h.hexdigest()}"


def _sample_offsets(total: int, block: int, blocks: int) -> list[int]:
    """``blocks`` evenly spaced block offsets in ``[0, total - block]``, first and last included."""
    last = max(0, total - block)
    if blocks <= 1:
        return [0]
    return sorted({round(i * last / (blocks - 1)) for i in range(blocks)})


def _hash_buffer(h: _Hasher, buf: memoryview) -> str:
    """Hash a flat byte buffer fully or by sampled blocks; return the method."""
    total = buf.nbytes
    h.update(total.to_bytes(8, "little"))
    if total <= SAMPLE_ABOVE_BYTES:
        h.update(buf)
        return "full"
    for offset in _sample_offsets(total, BLOCK_BYTES, SAMPLE_BLOCKS):
        h.update(buf[offset:offset + BLOCK_BYTES])
    return f"sampled {SAMPLE_BLOCKS} blocks of {BLOCK_BYTES // 1024} KiB"


def _sample_rows(n: int, row_bytes: int) -> list[int] | None:
    """Evenly spaced row indices when ``n`` rows of ``row_bytes`` exceed the limit, else None."""
    if n * max(row_bytes, 1) <= SAMPLE_ABOVE_BYTES or n <= 1:
        return None
    keep = max(2, min(n, SAMPLE_BLOCKS * BLOCK_BYTES // max(row_bytes, 1)))
    return sorted({round(i * (n - 1) / (keep - 1)) for i in range(keep)})


# -- numpy --------------------------------------------------------------------------------------------


def _numpy(arr: Any) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"type": "numpy.ndarray", "shape": list(arr.shape), "dtype": str(arr.dtype),
                           "bytes": int(arr.nbytes)}
    h = _Hasher()
    h.text(str(arr.dtype))
    h.text(repr(tuple(arr.shape)))
    if arr.dtype.hasobject:
        rows = _sample_rows(len(arr) if arr.ndim else 1, 64)
        flat = arr.reshape(-1) if rows is None or arr.ndim == 0 else arr[rows].reshape(-1)
        for item in flat:
            h.text(repr(item))
        out["hash_method"] = "repr of every element" if rows is None else f"repr of {len(rows)} sampled rows"
    else:
        rows = None
        if arr.ndim and arr.shape[0] and arr.nbytes > SAMPLE_ABOVE_BYTES:
            rows = _sample_rows(arr.shape[0], arr.nbytes // arr.shape[0])
        part = np.ascontiguousarray(arr if rows is None else arr[rows])  # no copy when already C-ordered
        h.update(int(arr.nbytes).to_bytes(8, "little"))
        h.update(memoryview(part.reshape(-1).view(np.uint8)))
        out["hash_method"] = "full" if rows is None else f"sampled {len(rows)} of {arr.shape[0]} rows"
    out["hash"] = h.hexdigest()
    return out


# -- pandas ---------------------------------------------------------------------------------------------


def _pandas(obj: Any) -> dict[str, Any]:
    import pandas as pd

    is_frame = isinstance(obj, pd.DataFrame)
    out: dict[str, Any] = {"type": "pandas.DataFrame" if is_frame else "pandas.Series", "rows": int(len(obj))}
    if is_frame:
        out["columns"] = [str(c) for c in obj.columns]
        out["dtypes"] = {str(c): str(t) for c, t in obj.dtypes.items()}
        out["bytes"] = int(obj.memory_usage(index=True, deep=False).sum())
    else:
        out["name"] = None if obj.name is None else str(obj.name)
        out["dtype"] = str(obj.dtype)
        out["bytes"] = int(obj.memory_usage(index=True, deep=False))
    width = max(1, out["bytes"] // max(1, len(obj)))
    rows = _sample_rows(len(obj), width)
    part = obj if rows is None else obj.iloc[rows]
    h = _Hasher()
    h.text(repr(out.get("columns", out.get("name"))))
    h.text(repr(out.get("dtypes", out.get("dtype"))))
    h.update(int(len(obj)).to_bytes(8, "little"))
    hashed = pd.util.hash_pandas_object(part, index=True)
    h.update(hashed.to_numpy().tobytes())
    out["hash_method"] = "pandas row hashes" if rows is None else f"pandas row hashes of {len(rows)} sampled rows"
    out["hash"] = h.hexdigest()
    return out


# -- helpers for fingerprinters (public through autotrack.integrations.base) -------------------------

Hasher = _Hasher


def sample_offsets(total: int, block: int, blocks: int) -> list[int]:
    return _sample_offsets(total, block, blocks)


def hash_buffer(h: _Hasher, buf: memoryview) -> str:
    return _hash_buffer(h, buf)


def qualname(obj: Any) -> str:
    return _qualname(obj)


def sequence(obj: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Hash a dataset with ``len`` and indexing by sampled items (``out`` holds ``length``)."""
    return _sequence(obj, out)


def safe_len(obj: Any) -> int | None:
    return _safe_len(obj)


# -- generic --------------------------------------------------------------------------------------------------


def _sequence(obj: Any, out: dict[str, Any]) -> dict[str, Any]:
    """A dataset with ``len`` and ``__getitem__``: hash ``DATASET_SAMPLE_ITEMS`` evenly spaced items."""
    n = out["length"]
    h = _Hasher()
    h.update(int(n).to_bytes(8, "little"))
    indices = sorted({round(i * (n - 1) / (DATASET_SAMPLE_ITEMS - 1)) for i in range(DATASET_SAMPLE_ITEMS)}) if n > 1 else list(range(n))
    if n <= DATASET_SAMPLE_ITEMS:
        indices = list(range(n))
    try:
        for i in indices:
            h.text(_item_digest(obj[i]))
    except Exception as exc:  # noqa: BLE001 - not indexable, or items that cannot be hashed
        out["hash"] = None
        out["hash_method"] = f"not hashed: items could not be read ({type(exc).__name__})"
        return out
    out["hash"] = h.hexdigest()
    out["hash_method"] = "every item" if len(indices) == n else f"{len(indices)} sampled items"
    return out


def _item_digest(item: Any) -> str:
    if isinstance(item, (tuple, list)):
        return "(" + ",".join(_item_digest(x) for x in item) + ")"
    if isinstance(item, dict):
        return "{" + ",".join(f"{k!r}:{_item_digest(v)}" for k, v in sorted(item.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(item, (int, float, str, bool, bytes)) or item is None:
        return repr(item)
    fp = fingerprint(item)
    return str(fp.get("hash") or repr(item))


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# -- files and folders --------------------------------------------------------------------------------------------


def _file_digest(path: Path, h: _Hasher) -> str:
    size = path.stat().st_size
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= SAMPLE_ABOVE_BYTES:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            return "full"
        for offset in _sample_offsets(size, BLOCK_BYTES, SAMPLE_BLOCKS):
            f.seek(offset)
            h.update(f.read(BLOCK_BYTES))
        return f"sampled {SAMPLE_BLOCKS} blocks of {BLOCK_BYTES // 1024} KiB"


def _path(path: Path) -> dict[str, Any]:
    path = path.resolve()
    if path.is_file():
        h = _Hasher()
        method = _file_digest(path, h)
        return {"type": "file", "path": str(path), "bytes": path.stat().st_size, "hash": h.hexdigest(),
                "hash_method": method}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    h = _Hasher()
    methods = set()
    total = 0
    for file in files:
        rel = file.relative_to(path).as_posix()
        h.text(rel)
        methods.add(_file_digest(file, h))
        total += file.stat().st_size
    return {"type": "folder", "path": str(path), "files": len(files), "bytes": total, "hash": h.hexdigest(),
            "hash_method": "every file: " + ", ".join(sorted(methods)) if methods else "empty folder"}


# -- dispatch ---------------------------------------------------------------------------------------------------------


Fingerprinter = tuple[Callable[[Any], bool], Callable[[Any], dict[str, Any]]]
_fingerprinters: list[Fingerprinter] = []
_loaded: set[str] = set()  # integrations whose fingerprinters are registered


def register_fingerprinter(accepts: Callable[[Any], bool], describe: Callable[[Any], dict[str, Any]]) -> None:
    """``fingerprint(obj)`` returns ``describe(obj)`` when ``accepts(obj)`` (integrations register
    their framework's data types here: torch tensors and datasets, xgboost DMatrix, ...).
    ``describe`` returns at least ``type``, ``hash`` and ``hash_method``."""
    with _data_lock:
        if (accepts, describe) not in _fingerprinters:
            _fingerprinters.append((accepts, describe))


def _registered() -> list[Fingerprinter]:
    """The registered fingerprinters, after loading those of every integration whose framework is
    imported (an object of a framework type can only exist once its framework is)."""
    from .._integrations import integrations, resolve

    for integration in integrations():
        if integration.fingerprint is None or integration.name in _loaded:
            continue
        if any(m in sys.modules for m in integration.modules):
            _loaded.add(integration.name)
            resolve(integration.fingerprint)()
    with _data_lock:
        return list(_fingerprinters)


def fingerprint(obj: Any) -> dict[str, Any]:
    """Describe ``obj`` and hash its contents: numpy arrays, pandas DataFrames and Series, scipy
    sparse matrices, files and folders (``str`` or ``Path``), any dataset with ``len`` and
    indexing, and the framework types integrations register (torch tensors, datasets and
    DataLoaders; xgboost DMatrix).

    The same data gives the same ``hash`` in every process. Raises InvalidArgumentError for
    objects it cannot describe.
    """
    module = type(obj).__module__.partition(".")[0]
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.exists():
            raise InvalidArgumentError("obj", str(obj), "no such file or folder; pass an existing path or a data object")
        return _path(path)
    if module == "numpy" and hasattr(obj, "dtype") and hasattr(obj, "shape"):
        import numpy as np

        return _numpy(np.asarray(obj))
    if module == "pandas" and hasattr(obj, "iloc"):
        return _pandas(obj)
    for accepts, describe in _registered():
        if accepts(obj):
            return describe(obj)
    if module == "scipy" and all(hasattr(obj, a) for a in ("data", "indices", "indptr", "shape")):
        h = _Hasher()
        h.text(repr(tuple(obj.shape)))
        method = [_hash_buffer(h, memoryview(a.view("uint8"))) for a in (obj.data, obj.indices, obj.indptr)]
        return {"type": _qualname(obj), "shape": list(obj.shape), "dtype": str(obj.dtype), "nnz": int(obj.nnz),
                "bytes": int(obj.data.nbytes + obj.indices.nbytes + obj.indptr.nbytes), "hash": h.hexdigest(),
                "hash_method": "; ".join(sorted(set(method)))}
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(x, (int, float, bool)) for x in obj[:100]):
        import numpy as np

        fp = _numpy(np.asarray(obj))
        fp["type"] = type(obj).__name__
        return fp
    if _safe_len(obj) is not None and hasattr(obj, "__getitem__"):
        return _sequence(obj, {"type": _qualname(obj), "length": _safe_len(obj)})
    raise InvalidArgumentError(
        "obj", f"<{_qualname(obj)}>",
        "fingerprint() takes numpy arrays, pandas DataFrames/Series, torch tensors/datasets, xgboost DMatrix, "
        "scipy sparse matrices, files, folders, or datasets with len() and indexing",
    )


def _safe_len(obj: Any) -> int | None:
    try:
        return int(len(obj))
    except Exception:  # noqa: BLE001 - iterable datasets have no length
        return None


# -- the data section ----------------------------------------------------------------------------------------------------

_data: weakref.WeakKeyDictionary[Run, dict[str, Any]] = weakref.WeakKeyDictionary()
_data_lock = threading.Lock()


def log_data(run: Run, name: str, obj: Any, **extra: Any) -> dict[str, Any]:
    """Fingerprint ``obj`` and store it as ``name`` in ``run``'s ``data`` section, keeping the
    entries logged before (integrations call it with ``"train"``, ``"validation"``...).
    ``extra`` keys (e.g. ``role="eval"``) are added to the entry. Returns the entry."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("name", name, "name the data, e.g. log_data(run, 'train', X)")
    entry = obj if isinstance(obj, dict) and "hash" in obj else fingerprint(obj)
    entry = {**entry, **extra}
    with _data_lock:
        section = _data.setdefault(run, {})
        section[name] = entry
        snapshot = dict(section)
    run.set_info("data", snapshot)
    return entry


def data_entries(runs: Iterable[Run]) -> dict[str, dict[str, Any]]:
    with _data_lock:
        return {r.id: dict(_data.get(r, {})) for r in runs}
