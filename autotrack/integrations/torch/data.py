"""Fingerprints of torch data: tensors, datasets, DataLoaders (registered with ``autotrack.fingerprint``)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from autotrack.integrations.base import (
    BLOCK_BYTES,
    SAMPLE_ABOVE_BYTES,
    SAMPLE_BLOCKS,
    Hasher,
    fingerprint,
    fingerprint_sequence,
    qualname,
    register_fingerprinter,
    safe_len,
    sample_offsets,
)


# -- torch ------------------------------------------------------------------------------------------------


def _torch_tensor(t: Any) -> dict[str, Any]:
    import torch

    t = t.detach()
    out: dict[str, Any] = {"type": "torch.Tensor", "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
                           "device": str(t.device), "bytes": int(t.numel() * t.element_size())}
    h = Hasher()
    h.text(out["dtype"])
    h.text(repr(tuple(t.shape)))
    if t.is_sparse or t.layout != torch.strided:
        t = t.to_dense()
    flat = t.reshape(-1)
    n = flat.numel()
    per_block = max(1, BLOCK_BYTES // max(1, t.element_size()))
    if out["bytes"] <= SAMPLE_ABOVE_BYTES:
        part = flat
        out["hash_method"] = "full"
    else:
        starts = sample_offsets(n, per_block, SAMPLE_BLOCKS)
        index = torch.cat([torch.arange(s, min(n, s + per_block), device=flat.device) for s in starts])
        part = flat[index]
        out["hash_method"] = f"sampled {SAMPLE_BLOCKS} blocks of {per_block} elements"
    part = part.cpu().contiguous()
    h.update(n.to_bytes(8, "little"))
    if part.dtype == torch.bool:
        part = part.to(torch.uint8)
    h.update(part.view(torch.uint8).numpy().tobytes() if part.numel() else b"")
    out["hash"] = h.hexdigest()
    return out


def _torch_dataset(ds: Any) -> dict[str, Any]:
    tensors = getattr(ds, "tensors", None)  # torch.utils.data.TensorDataset
    out: dict[str, Any] = {"type": qualname(ds), "length": len(ds)}
    if isinstance(tensors, tuple) and tensors:
        parts = [_torch_tensor(t) for t in tensors]
        out["tensors"] = [{k: p[k] for k in ("shape", "dtype", "bytes")} for p in parts]
        out["bytes"] = sum(p["bytes"] for p in parts)
        h = Hasher()
        for p in parts:
            h.text(p["hash"])
        out["hash"] = h.hexdigest()
        out["hash_method"] = "tensors: " + ", ".join(p["hash_method"] for p in parts)
        return out
    return fingerprint_sequence(ds, out)


def _loader(loader: Any) -> dict[str, Any]:
    fp = fingerprint(loader.dataset)
    fp["loader"] = {"type": qualname(loader), "batch_size": loader.batch_size, "batches": safe_len(loader)}
    return fp


def register_fingerprinters() -> None:
    register_fingerprinter(lambda obj: isinstance(obj, torch.Tensor), _torch_tensor)
    register_fingerprinter(lambda obj: isinstance(obj, DataLoader), _loader)
    register_fingerprinter(lambda obj: isinstance(obj, Dataset) and safe_len(obj) is not None, _torch_dataset)
