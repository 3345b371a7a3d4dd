"""The ``environment`` section: Python, installed distributions, an allow-list of environment
variables and, when torch is loaded, its determinism flags.

Environment variables are captured by allow-list only, so credentials in the environment
(``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``, ...) never reach the store.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from typing import Any, cast

from .._sections import SCHEMA_VERSION, EnvironmentSection

from .._redact import is_secret_name, redact_text

#: Variables captured by exact name.
ENV_ALLOW = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "PYTORCH_CUDA_ALLOC_CONF",
    "TOKENIZERS_PARALLELISM", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK",
    "MASTER_PORT", "PL_GLOBAL_SEED", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_NODELIST", "PBS_JOBID", "LSB_JOBID",
    "JOB_ID", "SGE_TASK_ID", "FLUX_JOB_ID", "KUBERNETES_POD_NAME", "CONDA_DEFAULT_ENV",
    "VIRTUAL_ENV", "AUTOTRACK_EXPERIMENT",
)
#: Variables captured by prefix (minus any whose name looks like a credential).
ENV_ALLOW_PREFIXES = ("CUDA_", "NCCL_", "TORCH_CUDA_ARCH_LIST", "XLA_FLAGS", "HIP_VISIBLE_DEVICES",
                      "ROCR_VISIBLE_DEVICES")

_packages_cache: dict[Any, dict[str, str]] = {}


def capture_environment(include_packages: bool = True, extra_env: tuple[str, ...] = ()) -> EnvironmentSection:
    section: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "python_prefix": sys.prefix,
        "virtualenv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "conda_env": _conda_env(),
        "env": allowed_env(extra_env),
        "autotrack": autotrack_origin(),
    }
    if include_packages:
        packages = installed_packages()
        section["package_count"] = len(packages)
        section["packages"] = packages
    flags = torch_determinism()
    if flags is not None:
        section["torch_determinism"] = flags
    return cast(EnvironmentSection, section)


def autotrack_origin() -> dict[str, Any]:
    """Which autotrack recorded the run: its version, distribution name and, when it runs from a
    source checkout (an editable install or ``PYTHONPATH``), that checkout's folder, from which a
    reproduction can install the very same code."""
    from pathlib import Path

    from .. import __version__
    from .._sections import DISTRIBUTION

    package = Path(__file__).resolve().parents[1]
    root = package.parent
    checkout = str(root) if (root / "pyproject.toml").is_file() and not _in_site_packages(package) else None
    return {"version": __version__, "distribution": DISTRIBUTION, "checkout": checkout}


def _in_site_packages(path: Any) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


def _conda_env() -> str | None:
    name = os.environ.get("CONDA_DEFAULT_ENV")
    if name:
        return name
    if os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
        return os.path.basename(sys.prefix)
    return None


def allowed_env(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Allow-listed environment variables, values passed through the secret filter."""
    out: dict[str, str] = {}
    exact = set(ENV_ALLOW) | set(extra)
    for name, value in os.environ.items():
        if name in exact or name.startswith(ENV_ALLOW_PREFIXES):
            if is_secret_name(name):
                continue
            out[name] = redact_text(value)
    return dict(sorted(out.items()))


# -- installed distributions --------------------------------------------------------------------------

_DIST_DIR = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+?)(?:-py\d[^-]*)?\.(?:dist|egg)-info$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages() -> dict[str, str]:
    """Installed distributions as normalised name -> version, first on ``sys.path`` winning.

    Read from the ``*.dist-info`` folder names (milliseconds) and, for the few entries whose
    folder name carries no version, from their metadata. Cached per ``sys.path``.
    """
    key = (os.getpid(), tuple(sys.path))
    cached = _packages_cache.get(key)
    if cached is not None:
        return cached
    found: dict[str, str] = {}
    slow: list[str] = []
    for entry in sys.path:
        folder = entry or os.getcwd()
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for item in names:
            if not item.endswith(("-info")):
                continue
            match = _DIST_DIR.match(item)
            if match is None:
                if item.endswith((".dist-info", ".egg-info")):
                    slow.append(os.path.join(folder, item))
                continue
            name = _normalise(match.group("name"))
            found.setdefault(name, match.group("version"))
    if slow:
        import importlib.metadata as md

        for path in slow:
            try:
                dist = md.PathDistribution.at(path)  # type: ignore[attr-defined]
                name = dist.metadata["Name"]
                if name:
                    found.setdefault(_normalise(name), dist.version)
            except Exception:  # noqa: BLE001 - a broken metadata folder is skipped
                continue
    result = dict(sorted(found.items()))
    _packages_cache.clear()
    _packages_cache[key] = result
    return result


# -- torch determinism ----------------------------------------------------------------------------------


def torch_determinism() -> dict[str, Any] | None:
    """torch's reproducibility switches, when the program already imported torch."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "are_deterministic_algorithms_enabled"):
        return None
    flags: dict[str, Any] = {}

    def put(name: str, fn: Any) -> None:
        try:
            flags[name] = fn()
        except Exception:  # noqa: BLE001
            flags[name] = None

    put("deterministic_algorithms", torch.are_deterministic_algorithms_enabled)
    put("deterministic_warn_only", torch.is_deterministic_algorithms_warn_only_enabled)
    put("cudnn_deterministic", lambda: bool(torch.backends.cudnn.deterministic))
    put("cudnn_benchmark", lambda: bool(torch.backends.cudnn.benchmark))
    put("cudnn_allow_tf32", lambda: bool(torch.backends.cudnn.allow_tf32))
    put("cuda_matmul_allow_tf32", lambda: bool(torch.backends.cuda.matmul.allow_tf32))
    put("float32_matmul_precision", torch.get_float32_matmul_precision)
    put("num_threads", torch.get_num_threads)
    put("initial_seed", torch.initial_seed)
    return flags


# -- what the program imported ----------------------------------------------------------------------------

_dist_map: dict[Any, dict[str, list[str]]] = {}


def imported_section() -> dict[str, Any]:
    """The ``imports`` section (see :class:`autotrack._sections.ImportsSection`): the top-level
    modules loaded now, mapped to the distributions that provide them with their versions.
    Standard-library modules and autotrack's own are left out; modules no distribution provides
    (the user's local code) are listed under ``unmapped``."""
    from .._sections import SCHEMA_VERSION

    key = (os.getpid(), tuple(sys.path))
    mapping = _dist_map.get(key)
    if mapping is None:
        mapping = packages_distributions()
        _dist_map.clear()
        _dist_map[key] = mapping
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    tops = sorted({name.partition(".")[0] for name in list(sys.modules)}
                  - set(stdlib) - set(sys.builtin_module_names) - {"__main__", "autotrack"})
    tops = [t for t in tops if t and not t.startswith("_")]
    installed = installed_packages()
    distributions: dict[str, str] = {}
    unmapped: list[str] = []
    for top in tops:
        dists = mapping.get(top)
        if not dists:
            if sys.modules.get(top) is not None and getattr(sys.modules[top], "__file__", None):
                unmapped.append(top)
            continue
        for dist in dists:
            name = _normalise(dist)
            distributions[name] = installed.get(name) or _version(dist)
    return {"schema": SCHEMA_VERSION, "modules": tops, "distributions": dict(sorted(distributions.items())),
            "unmapped": unmapped}


def packages_distributions() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` with the same result, a few times faster
    (it was most of what a run's end cost a small script): a distribution without
    ``top_level.txt`` has its ``RECORD`` read as text, not as thousands of ``PackagePath`` objects."""
    import importlib.metadata as md

    mapping: dict[str, list[str]] = {}
    for dist in md.distributions():
        tops = (dist.read_text("top_level.txt") or "").split() or _inferred_top_levels(dist)
        if not tops:
            continue
        name = _metadata_name(dist)
        for top in tops:
            mapping.setdefault(top, []).append(name)
    return mapping


def _metadata_name(dist: Any) -> str:
    """The ``Name`` header of a distribution's metadata, read from the header lines only (the
    email parser importlib uses reads the whole long description too)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the headers
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == "name":
            return value.strip()
    return dist.metadata["Name"]


def _inferred_top_levels(dist: Any) -> set[str]:
    """The top-level names of a distribution's ``.py`` files, as importlib.metadata infers them:
    the first folder of a file in a folder, else the file's name without ``.py``."""
    import csv

    record = dist.read_text("RECORD")
    if record is None:  # no RECORD (an egg): importlib's own reading of its file list
        return {f.parts[0] if len(f.parts) > 1 else f.with_suffix("").name
                for f in (dist.files or ()) if f.suffix == ".py"}
    tops: set[str] = set()
    for row in csv.reader(record.splitlines()):
        if not row:
            continue
        path = row[0]
        first, slash, _ = path.partition("/")
        leaf = path.rpartition("/")[2]
        if not leaf.endswith(".py") or leaf == ".py":
            continue
        tops.add(first if slash else leaf[:-3])
    return tops


def _version(dist: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except Exception:  # noqa: BLE001 - metadata without a version
        return ""
