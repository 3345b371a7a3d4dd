"""Sections ``model`` and ``optimizer`` of a PyTorch training, and the ``train/lr`` keys."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

#: Above this many modules the tree is summarised by depth instead of listed module by module.
MAX_MODULES = 500
#: Above this many parameters the per-parameter list is left out (counts stay exact).
MAX_PARAMETERS = 2000
MAX_REPR_CHARS = 20_000



# -- model architecture --------------------------------------------------------------------------


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def model_info(model: nn.Module) -> dict[str, Any]:
    """Describe ``model`` for the ``model`` section.

    Keys: ``class``, ``total_params``, ``trainable_params``, ``non_trainable_params``,
    ``size_bytes`` (parameters + buffers), ``size_bytes_by_dtype``, ``buffers``, ``modules``
    (qualified name, type, own/total/trainable parameter counts, depth), ``parameters`` (name, shape,
    dtype, trainable), ``frozen_modules``, ``repr``. When the model has more than ``MAX_MODULES``
    modules, ``modules`` holds only the shallow levels that fit and ``modules_by_depth`` counts
    modules and parameters per depth.
    """
    own_total: dict[str, int] = {}
    own_trainable: dict[str, int] = {}
    parameters = []
    by_dtype: dict[str, int] = defaultdict(int)
    seen: set[int] = set()
    total = trainable = 0
    for mod_name, module in model.named_modules():
        n_own = n_tr = 0
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue  # tied weights count once
            seen.add(id(p))
            n = p.numel()
            n_own += n
            if p.requires_grad:
                n_tr += n
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            parameters.append(
                {"name": full, "shape": list(p.shape), "dtype": _dtype_name(p.dtype), "trainable": p.requires_grad}
            )
            by_dtype[_dtype_name(p.dtype)] += n * p.element_size()
        own_total[mod_name] = n_own
        own_trainable[mod_name] = n_tr
        total += n_own
        trainable += n_tr
    buffer_bytes = 0
    n_buffers = 0
    for _, b in model.named_buffers():
        n_buffers += b.numel()
        buffer_bytes += b.numel() * b.element_size()
        by_dtype[_dtype_name(b.dtype)] += b.numel() * b.element_size()

    def subtree(prefix: str, table: dict[str, int]) -> int:
        if not prefix:
            return sum(table.values())
        return sum(v for k, v in table.items() if k == prefix or k.startswith(prefix + "."))

    modules = []
    frozen = []
    depth_counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for mod_name, module in model.named_modules():
        depth = 0 if not mod_name else mod_name.count(".") + 1
        tot = subtree(mod_name, own_total)
        tr = subtree(mod_name, own_trainable)
        modules.append(
            {"name": mod_name, "type": type(module).__name__, "params_own": own_total[mod_name],
             "params_total": tot, "trainable": tr, "depth": depth}
        )
        depth_counts[depth][0] += 1
        depth_counts[depth][1] += own_total[mod_name]
        if own_total[mod_name] and not own_trainable[mod_name]:
            frozen.append(mod_name)
    info: dict[str, Any] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
        "buffers": n_buffers,
        "size_bytes": sum(by_dtype.values()),
        "size_bytes_by_dtype": dict(by_dtype),
        "frozen_modules": frozen,
    }
    if len(modules) > MAX_MODULES:
        max_depth = 0
        while sum(c for d, (c, _) in depth_counts.items() if d <= max_depth + 1) <= MAX_MODULES:
            max_depth += 1
        info["modules"] = [m for m in modules if m["depth"] <= max_depth]
        info["modules_summarised_below_depth"] = max_depth
        info["modules_by_depth"] = [
            {"depth": d, "modules": c, "params_own": n} for d, (c, n) in sorted(depth_counts.items())
        ]
    else:
        info["modules"] = modules
    if len(parameters) <= MAX_PARAMETERS:
        info["parameters"] = parameters
    else:
        info["parameters_omitted"] = len(parameters)
    text = repr(model)
    info["repr"] = text if len(text) <= MAX_REPR_CHARS else text[:MAX_REPR_CHARS] + f"... ({len(text)} chars)"
    return info


# -- optimizer settings --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Hyperparameter values without tensors (a tensor lr becomes its float)."""
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else f"Tensor(shape={list(value.shape)})"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, Tensor) or v.numel() == 1}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def training_params(optimizers: Sequence[torch.optim.Optimizer], models: Sequence[nn.Module]) -> dict[str, Any]:
    """The params a plain-PyTorch run is compared by: each optimizer's class and the
    hyperparameters it was built with (``optimizer.lr``, ``optimizer.weight_decay``; a second
    optimizer is ``optimizer_1.*``), and each model's class and parameter count (``model``,
    ``model.parameters``). Per-group values and everything else stay in the ``optimizer`` and
    ``model`` sections."""
    out: dict[str, Any] = {}
    for i, opt in enumerate(optimizers):
        opt = getattr(opt, "optimizer", opt)
        key = "optimizer" if i == 0 else f"optimizer_{i}"
        out[key] = type(opt).__name__
        for name, value in sorted(_plain(dict(opt.defaults)).items()):
            if value is None or isinstance(value, (bool, int, float, str)) or (
                    isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)):
                out[f"{key}.{name}"] = value
    for i, model in enumerate(models):
        key = "model" if i == 0 else f"model_{i}"
        out[key] = type(model).__name__
        out[f"{key}.parameters"] = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return out


def parameter_names(model: nn.Module | None) -> dict[int, str]:
    return {} if model is None else {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}


def optimizer_info(
    optimizers: Sequence[torch.optim.Optimizer],
    model: nn.Module | None = None,
    schedulers: Sequence[Any] = (),
    scaler: Any = None,
) -> dict[str, Any]:
    """Describe optimizers, LR schedulers and the AMP GradScaler for the ``optimizer`` section.

    ``schedulers`` holds schedulers or dicts ``{"scheduler": s, "interval": ..., ...}`` (Lightning's
    LRSchedulerConfig is accepted too). Keys: ``optimizers`` (class, defaults, param_groups with their
    hyperparameters, parameter names and counts), ``schedulers`` (class, configuration = the
    state_dict without tensors, and interval/frequency/monitor when given), ``grad_scaler``.
    """
    names = parameter_names(model)
    out_opts = []
    for i, opt in enumerate(optimizers):
        opt = getattr(opt, "optimizer", opt)  # unwrap LightningOptimizer
        groups = []
        for g in opt.param_groups:
            params = g["params"]
            groups.append(
                {
                    "hyperparameters": {k: _plain(v) for k, v in g.items() if k != "params"},
                    "params": [names.get(id(p), f"<unnamed {tuple(p.shape)}>") for p in params][:MAX_PARAMETERS],
                    "n_params": len(params),
                    "numel": sum(p.numel() for p in params),
                }
            )
        out_opts.append(
            {"index": i, "class": f"{type(opt).__module__}.{type(opt).__qualname__}",
             "defaults": _plain(dict(opt.defaults)), "param_groups": groups}
        )
    out_sched = []
    for s in schedulers:
        extra: dict[str, Any] = {}
        if isinstance(s, Mapping):
            extra = {k: v for k, v in s.items() if k != "scheduler"}
            s = s["scheduler"]
        elif hasattr(s, "scheduler") and hasattr(s, "interval"):  # Lightning's LRSchedulerConfig
            extra = {k: getattr(s, k, None) for k in ("name", "interval", "frequency", "monitor", "reduce_on_plateau")}
            s = s.scheduler
        try:
            state = s.state_dict()
        except Exception:  # noqa: BLE001 - a scheduler without a state_dict is still described
            state = {}
        config = {k: _plain(v) for k, v in state.items() if not callable(v) and not k.startswith("_")}
        out_sched.append({"class": f"{type(s).__module__}.{type(s).__qualname__}", "config": config, **extra})
    info: dict[str, Any] = {"optimizers": out_opts, "schedulers": out_sched}
    if scaler is not None:
        enabled = bool(getattr(scaler, "is_enabled", lambda: False)())
        scaler_info: dict[str, Any] = {"class": type(scaler).__qualname__, "enabled": enabled}
        if enabled:
            scaler_info.update({k: _plain(v) for k, v in scaler.state_dict().items()})
        info["grad_scaler"] = scaler_info
    return info




def lr_keys(optimizers: Sequence[torch.optim.Optimizer], prefix: str = "train/lr") -> list[list[str]]:
    """Metric keys for each optimizer's param groups: ``train/lr`` for one optimizer with one group,
    ``train/lr/<group>`` for several groups, ``train/lr/opt<i>`` (``.../opt<i>/<group>``) for several
    optimizers. A group's name is its ``"name"`` entry when it has one, else its index."""
    keys = []
    multi_opt = len(optimizers) > 1
    for i, opt in enumerate(optimizers):
        groups = getattr(opt, "optimizer", opt).param_groups
        base = f"{prefix}/opt{i}" if multi_opt else prefix
        if len(groups) == 1:
            keys.append([base])
        else:
            keys.append([f"{base}/{g.get('name', j)}" for j, g in enumerate(groups)])
    return keys
