"""The schema of every captured section, shared by the side that writes it and every side that reads it.

Producers (``autotrack/_capture/*``, the integrations) build these shapes; readers (``autotrack show``,
``diff``, ``reproduce``, ``report``, the web UI) read them only through the key names and the helpers
defined here, so a renamed key fails a type check or a test instead of printing "not recorded".

Every section start-of-run capture writes carries ``schema`` (:data:`SCHEMA_VERSION`). Sections
written before the field existed have no ``schema`` and the same keys (version 1 is the first
typed one). Readers stay defensive: any key may be missing (capture of one part can fail, or be
turned off), and a missing key reads as "not recorded", never as an error.

This module imports nothing but the standard library: ``import autotrack`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

#: Version of the shapes below; bump it (and teach readers the old shape) when a key changes meaning.
SCHEMA_VERSION = 1

#: The captured sections, in the order readers show them.
SECTION_NAMES = ("source", "environment", "imports", "hardware", "seeds", "data", "model", "optimizer", "config")

NOT_RECORDED = "not recorded"

#: autotrack's distribution name on package indexes (the import name stays ``autotrack``; the
#: name ``autotrack`` on PyPI belongs to an unrelated project)
DISTRIBUTION = "autotrack-ml"


# -- hardware ------------------------------------------------------------------------------------------


class GpuInfo(TypedDict, total=False):
    index: int
    name: str | None
    uuid: str | None
    memory_total_bytes: int | None
    compute_capability: str | None
    power_limit_w: float | None
    mig_mode: bool | None
    pcie_generation: int | None
    pcie_width: int | None
    pcie_max_generation: int | None
    pcie_max_width: int | None


class TorchDevices(TypedDict, total=False):
    version: str
    cuda_runtime: str | None
    hip_runtime: str | None
    cudnn_version: int | None
    cuda_built: bool
    cuda_initialized: bool
    cuda_device_count: int
    cuda_devices: list[str]
    cuda_error: str
    mps_available: bool
    mps_built: bool


class HardwareSection(TypedDict, total=False):
    schema: int
    hostname: str
    os: str
    os_release: str | None
    kernel: str
    platform: str
    architecture: str
    cpu_model: str | None
    cpu_physical_cores: int | None
    cpu_logical_cores: int | None
    cpu_usable_cores: int | None
    cpu_quota_cores: float | None
    ram_total_bytes: int
    memory_limit_bytes: int | None
    gpu_count: int
    gpus: list[GpuInfo]
    gpu_driver_version: str | None
    cuda_driver_version: str | None
    cuda_visible_devices: str | None
    visible_gpus: list[int]
    #: why ``gpus`` is empty (no NVML, no driver, CUDA_VISIBLE_DEVICES hides them)
    gpu_reason: str
    torch: TorchDevices | None


# -- environment ---------------------------------------------------------------------------------------


class AutotrackOrigin(TypedDict, total=False):
    version: str
    distribution: str
    #: the source checkout autotrack ran from, when it was one
    checkout: str | None


class EnvironmentSection(TypedDict, total=False):
    schema: int
    python_version: str
    python_implementation: str
    python_executable: str
    python_prefix: str
    virtualenv: bool
    conda_env: str | None
    #: allow-listed environment variables (secrets never)
    env: dict[str, str]
    package_count: int
    #: every installed distribution: normalised name -> version
    packages: dict[str, str]
    torch_determinism: dict[str, Any]
    autotrack: AutotrackOrigin


class ImportsSection(TypedDict, total=False):
    """What the program imported, taken at run end (``imports`` section): the top-level modules
    and the distributions that provide them (name -> version)."""

    schema: int
    modules: list[str]
    distributions: dict[str, str]
    #: top-level modules with no installed distribution (local code, the standard library excluded)
    unmapped: list[str]


# -- source --------------------------------------------------------------------------------------------


class GitInfo(TypedDict, total=False):
    available: bool
    reason: str
    root: str
    commit: str | None
    branch: str | None
    #: the remote's name (``origin``)
    remote: str | None
    #: the remote's URL, credentials removed: what a reproduction clones
    remote_url: str | None
    dirty: bool
    changed_files: int
    untracked_files: list[str]
    untracked_truncated: int
    diff_bytes: int
    diff_truncated_from_bytes: int
    diff_artifact: str
    error: str


class LocalModule(TypedDict, total=False):
    #: path relative to the entry script's folder (``model.py``, ``pkg/data.py``)
    path: str
    bytes: int
    artifact: str | None
    skipped: str


class SourceSection(TypedDict, total=False):
    schema: int
    #: ``/abs/train.py``, ``python -m pkg.train``, ``python -c``, ``interactive``, ...
    entry_point: str | None
    argv: list[str]
    cwd: str
    executable: str
    script: str
    script_bytes: int
    script_artifact: str | None
    script_skipped: str
    git: GitInfo
    #: ``autotrack run`` when that command started the program
    launcher: str
    #: without git: the modules the entry script imported from its own folder tree
    local_modules: list[LocalModule]


#: the artifact holding the uncommitted diff of tracked files
DIFF_ARTIFACT = "source/git.diff"
#: prefix of source artifacts (entry script, local modules, the diff)
SOURCE_PREFIX = "source/"


# -- seeds ---------------------------------------------------------------------------------------------


class SeedCall(TypedDict, total=False):
    function: str
    seed: Any
    time: float
    #: ``file:line`` of the user code that made the call
    caller: str


class SeedsSection(TypedDict, total=False):
    schema: int
    random: Any
    numpy: Any
    torch: Any
    lightning: Any
    autotrack: Any
    numpy_default_rng: list[Any]
    seed_everything: int
    seeded: list[str]
    calls: list[SeedCall]


# -- data ----------------------------------------------------------------------------------------------


class DataEntry(TypedDict, total=False):
    type: str
    shape: list[int]
    dtype: str
    dtypes: dict[str, str]
    rows: int
    columns: Any
    bytes: int
    path: str
    files: int
    #: ``xxh3_128:...`` or ``blake2b_128:...``; None when not hashed (``hash_method`` says why)
    hash: str | None
    hash_method: str
    role: str


#: ``data``: one entry per named input (``train``, ``validation``, ...)
DataSection = dict[str, DataEntry]


# -- model, optimizer, config (written by the integrations; their keys vary by framework) ------------


#: ``class`` is a keyword, hence the functional form
ModelSection = TypedDict("ModelSection", {
    "framework": str,
    "class": str,            # ``module.Class`` of the model / estimator
    "repr": str,
    "structure": Any,
    "total_params": int,
    "trainable_params": int,
    "parameters": list[dict[str, Any]],
    "models": list[dict[str, Any]],
}, total=False)


class OptimizerSection(TypedDict, total=False):
    optimizers: list[dict[str, Any]]
    schedulers: list[dict[str, Any]]
    grad_scaler: dict[str, Any] | None


class ConfigSection(TypedDict, total=False):
    trainer: dict[str, Any]
    stage: str


# -- reading ------------------------------------------------------------------------------------------


def read(record: Any, name: str) -> dict[str, Any]:
    """Section ``name`` of a run record, or an empty dict when the run has none (also for names
    the record's reader does not list yet, such as ``imports``)."""
    return as_dict(record.info(name)) if name in record.sections else {}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one (sections are read defensively)."""
    return dict(value) if isinstance(value, Mapping) else {}


def python_version(env: Mapping[str, Any]) -> str | None:
    value = env.get("python_version")
    return str(value) if value else None


def packages(env: Mapping[str, Any]) -> dict[str, str]:
    """Installed distributions, normalised lower-case name -> version."""
    found = env.get("packages")
    if isinstance(found, Mapping):
        return {str(k).lower(): str(v) for k, v in found.items()}
    return {}


def git_info(source: Mapping[str, Any]) -> dict[str, Any]:
    return as_dict(source.get("git"))


def data_hash(entry: Mapping[str, Any]) -> str | None:
    value = entry.get("hash")
    return str(value) if value else None


def _bytes(n: Any) -> str | None:
    if not isinstance(n, (int, float)) or isinstance(n, bool) or n <= 0:
        return None
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None


def cpu_text(hw: Mapping[str, Any]) -> str | None:
    model = hw.get("cpu_model")
    cores = [(hw.get("cpu_physical_cores"), "physical"), (hw.get("cpu_logical_cores"), "logical"),
             (hw.get("cpu_usable_cores"), "usable"), (hw.get("cpu_quota_cores"), "by cgroup quota")]
    counts = ", ".join(f"{n:g} {label}" for n, label in cores if isinstance(n, (int, float)) and not isinstance(n, bool))
    if model and counts:
        return f"{model} ({counts} cores)"
    return str(model) if model else (f"{counts} cores" if counts else None)


def memory_text(hw: Mapping[str, Any]) -> str | None:
    total = _bytes(hw.get("ram_total_bytes"))
    limit = _bytes(hw.get("memory_limit_bytes"))
    if total and limit:
        return f"{total} (container limit {limit})"
    return total or (f"container limit {limit}" if limit else None)


def gpus_text(hw: Mapping[str, Any]) -> str | None:
    """GPU names with memory, or None when the GPU inventory was not recorded at all."""
    gpus = hw.get("gpus")
    if isinstance(gpus, list) and gpus:
        parts = []
        for g in gpus:
            g = as_dict(g)
            mem = _bytes(g.get("memory_total_bytes"))
            parts.append(f"{g.get('name') or 'GPU'}" + (f" ({mem})" if mem else ""))
        driver = hw.get("gpu_driver_version")
        return ", ".join(parts) + (f"; driver {driver}" if driver else "")
    if "gpus" in hw or "gpu_reason" in hw:
        reason = hw.get("gpu_reason")
        return f"none ({reason})" if reason else "none"
    return None


def os_text(hw: Mapping[str, Any]) -> str | None:
    name = hw.get("os_release") or hw.get("os")
    kernel = hw.get("kernel")
    arch = hw.get("architecture")
    if not name:
        return hw.get("platform") or None
    return f"{name}" + (f", kernel {kernel}" if kernel else "") + (f", {arch}" if arch else "")


def accelerator_text(hw: Mapping[str, Any]) -> str | None:
    torch = as_dict(hw.get("torch"))
    if not torch:
        return None
    parts = [f"torch {torch.get('version')}"]
    if torch.get("cuda_runtime"):
        parts.append(f"CUDA {torch['cuda_runtime']}")
    if torch.get("cudnn_version"):
        parts.append(f"cuDNN {torch['cudnn_version']}")
    if torch.get("cuda_devices"):
        parts.append("sees " + ", ".join(map(str, torch["cuda_devices"])))
    if torch.get("mps_available"):
        parts.append("MPS")
    return ", ".join(parts)


#: packages named in summaries when installed
KEY_PACKAGES = ("torch", "lightning", "scikit-learn", "xgboost", "numpy", "pandas", "scipy")


def machine_summary(hardware: Mapping[str, Any], environment: Mapping[str, Any]) -> dict[str, str]:
    """One line per thing a reader wants to see of a run's machine (report table, reproduce README,
    ``autotrack show``, the UI). Each value is text; "not recorded" only where the section lacks it."""
    hw, env = as_dict(hardware), as_dict(environment)
    pkgs = packages(env)
    key_pkgs = ", ".join(f"{p} {pkgs[p]}" for p in KEY_PACKAGES if p in pkgs)
    python = python_version(env)
    if python and env.get("python_implementation"):
        python = f"{python} ({env['python_implementation']})"
    rows = {
        "host": hw.get("hostname"),
        "cpu": cpu_text(hw),
        "memory": memory_text(hw),
        "gpus": gpus_text(hw),
        "accelerator (torch)": accelerator_text(hw),
        "os": os_text(hw),
        "python": python,
        "packages": (f"{len(pkgs)} installed" + (f" ({key_pkgs})" if key_pkgs else "")) if pkgs else None,
    }
    out = {k: (str(v) if v else NOT_RECORDED) for k, v in rows.items()}
    if not hw.get("torch"):
        out["accelerator (torch)"] = "torch not loaded" if hw else NOT_RECORDED
    return out


# -- the order readers list a run's metrics in --------------------------------------------------

#: Metrics recorded in the background (machine sampling, per-layer gradient norms): listed last.
BACKGROUND_PREFIXES = ("system/", "grad_norm/")


def metric_order(key: str) -> tuple[int, str]:
    """Where ``key`` goes in any list of a run's metrics: the training loss, validation and test
    metrics first, then the user's other keys, then the rest of ``train/``; background metrics
    (machine sampling, per-layer gradient norms) last."""
    if key.startswith(BACKGROUND_PREFIXES):
        return (4, key)
    if key == "train/loss":
        return (0, key)
    if key.startswith(("val/", "valid/", "validation/", "test/", "eval/")):
        return (1, key)
    if key.startswith("train/"):
        return (3, key)
    return (2, key)


def table_columns(values: Mapping[str, Sequence[Any]], *, metrics: bool, limit: int) -> list[str]:
    """The keys most worth a column in a table of runs, from each key's values per run (None or
    NaN where a run lacks it). Params: those whose values differ among the runs that have them (a
    setting every Lightning run shares is no column to compare by, even beside scikit-learn runs
    that lack it), the ones most runs have first. Metrics: those that differ at all (a metric one
    run has is that run's result), in the readers' order (losses, validation and test metrics
    first; machine and per-layer metrics only when there is nothing else; timings after the scores
    of the same rank). Everything, in that order, when nothing differs."""

    def present(v: Any) -> bool:
        return v is not None and not (isinstance(v, float) and v != v)

    def text(v: Any) -> str:
        return json.dumps(v, sort_keys=True, default=repr) if present(v) else "\0missing"

    count = {k: sum(map(present, vs)) for k, vs in values.items()}
    if metrics:
        varying = [k for k, vs in values.items() if len(set(map(text, vs))) > 1] or list(values)
        varying.sort(key=lambda k: (metric_order(k)[0], k.endswith("_time"), -count[k], k))
        foreground = [k for k in varying if metric_order(k)[0] < 4]
        varying = foreground or varying
    else:
        varying = [k for k, vs in values.items() if len({text(v) for v in vs if present(v)}) > 1] or list(values)
        varying.sort(key=lambda k: (-count[k], k))
    return varying[:limit]
