"""Fingerprints of XGBoost DMatrix objects (registered with ``autotrack.fingerprint`` once xgboost
is imported). Kept apart from ``xgboost.py`` so that registering never imports the integration."""

from __future__ import annotations

from typing import Any

from autotrack.integrations.base import Hasher, hash_buffer, qualname, register_fingerprinter


def _dmatrix(dm: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": qualname(dm), "rows": int(dm.num_row()), "columns": int(dm.num_col())}
    names = dm.feature_names
    types = dm.feature_types
    if names:
        out["feature_names"] = list(names)
    if types:
        out["feature_types"] = list(types)
    h = Hasher()
    h.text(repr(out))
    method = []
    try:
        data = dm.get_data()  # scipy CSR; QuantileDMatrix cannot give its data back
        for part in (data.data, data.indices, data.indptr):
            method.append(hash_buffer(h, memoryview(part.view("uint8"))))
        out["bytes"] = int(data.data.nbytes + data.indices.nbytes + data.indptr.nbytes)
    except Exception:  # noqa: BLE001
        method.append("data not readable (labels and weights only)")
    for getter in ("get_label", "get_weight", "get_base_margin"):
        values = getattr(dm, getter)()
        h.update(values.tobytes())
    out["hash"] = h.hexdigest()
    out["hash_method"] = "; ".join(sorted(set(method)))
    return out


def register_fingerprinters() -> None:
    register_fingerprinter(lambda obj: type(obj).__module__.partition(".")[0] == "xgboost" and hasattr(obj, "num_row"),
                           _dmatrix)
