"""The ``hardware`` section: CPU, memory, OS, GPUs through NVML and what torch sees (when loaded).

Nothing here raises: a missing NVML library, no GPU or an NVML error leave ``gpus: []`` and a
``gpu_reason`` in the section. torch is only inspected when the user's program already imported it.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
from pathlib import Path
from typing import Any, cast

from .._sections import SCHEMA_VERSION, HardwareSection

_static_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def capture_hardware() -> HardwareSection:
    """The hardware section. Host and GPU inventory are read once per process; torch each time."""
    with _cache_lock:
        if _static_cache.get("pid") != os.getpid():
            _static_cache.clear()
            _static_cache["pid"] = os.getpid()
            _static_cache["host"] = _host()
            _static_cache["gpu"] = gpu_inventory()
    section: dict[str, Any] = {"schema": SCHEMA_VERSION, **_static_cache["host"]}
    gpu = dict(_static_cache["gpu"])
    if gpu["gpus"] and os.environ.get("CUDA_VISIBLE_DEVICES") != gpu["cuda_visible_devices"]:
        # the program changed CUDA_VISIBLE_DEVICES since the inventory was read: re-derive
        gpu["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpu["visible_gpus"] = visible_gpu_indices(None, gpu["gpu_count"], [g["uuid"] for g in gpu["gpus"]])
        gpu.pop("gpu_reason", None)
        if not gpu["visible_gpus"]:
            gpu["gpu_reason"] = "CUDA_VISIBLE_DEVICES hides every GPU from this process"
    section.update(gpu)
    section["torch"] = torch_devices()
    return cast(HardwareSection, section)


def clear_cache() -> None:
    """Forget the cached inventory (tests that change what NVML reports)."""
    with _cache_lock:
        _static_cache.clear()


# -- host ---------------------------------------------------------------------------------------


def _host() -> dict[str, Any]:
    import psutil

    try:
        affinity: int | None = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        affinity = None
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": _os_release(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_usable_cores": affinity,
        "cpu_quota_cores": cgroup_cpu_quota(),
        "ram_total_bytes": psutil.virtual_memory().total,
        "memory_limit_bytes": cgroup_memory_limit(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "Processor")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=2)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if sys.platform == "darwin":
        return "macOS " + platform.mac_ver()[0]
    return None


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPU cores this container may use by its cgroup quota (v2 ``cpu.max`` or v1 CFS), or None."""
    base = Path(root)
    try:
        text = (base / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return round(int(text[0]) / int(text[1]), 3)
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return round(quota / period, 3)
    except (OSError, ValueError):
        pass
    return None


def cgroup_memory_limit(root: str = "/sys/fs/cgroup") -> int | None:
    base = Path(root)
    for path in (base / "memory.max", base / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            return int(text)
        return None
    return None


# -- GPUs through NVML -----------------------------------------------------------------------------


class NvmlUnavailable(Exception):
    """Why NVML cannot be used here (the message goes into the section as ``gpu_reason``)."""


def nvml_init() -> Any:
    """Import and initialise NVML (from ``nvidia-ml-py``); raise NvmlUnavailable with the reason."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("the nvidia-ml-py package (module pynvml) is not installed") from None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        name = type(exc).__name__
        if "LibraryNotFound" in name or "NotFound" in str(exc):
            raise NvmlUnavailable("no NVIDIA driver: the NVML library was not found") from None
        if "DriverNotLoaded" in name:
            raise NvmlUnavailable("the NVIDIA driver is not loaded") from None
        raise NvmlUnavailable(f"NVML failed to start: {name}: {exc}") from None
    return pynvml


def nvml_shutdown(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _try(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - one unsupported query must not hide the others
        return None


def visible_gpu_indices(nv: Any, count: int, uuids: list[str | None] | None = None) -> list[int]:
    """NVML indices of the GPUs this process may use, from ``CUDA_VISIBLE_DEVICES`` (CUDA's rules:
    indices or ``GPU-`` uuid prefixes; parsing stops at the first invalid entry)."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(count))
    if uuids is None:
        uuids = []
        for i in range(count):
            handle = _try(nv.nvmlDeviceGetHandleByIndex, i)
            uuids.append(_text(_try(nv.nvmlDeviceGetUUID, handle)) if handle is not None else None)
    chosen: list[int] = []
    for token in spec.split(","):
        token = token.strip()
        if token.isdigit() or (token.startswith("-") and token[1:].isdigit()):
            index = int(token)
            if index < 0 or index >= count:
                break
            if index not in chosen:
                chosen.append(index)
            continue
        match = [i for i, u in enumerate(uuids) if token.startswith("GPU-") and u and u.startswith(token)]
        if len(match) != 1:
            break
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen


def _gpu(nv: Any, index: int) -> dict[str, Any]:
    h = nv.nvmlDeviceGetHandleByIndex(index)
    memory = _try(nv.nvmlDeviceGetMemoryInfo, h)
    capability = _try(nv.nvmlDeviceGetCudaComputeCapability, h)
    power = _try(nv.nvmlDeviceGetPowerManagementLimit, h)
    mig = _try(nv.nvmlDeviceGetMigMode, h)
    return {
        "index": index,
        "name": _text(_try(nv.nvmlDeviceGetName, h)),
        "uuid": _text(_try(nv.nvmlDeviceGetUUID, h)),
        "memory_total_bytes": int(memory.total) if memory is not None else None,
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "power_limit_w": round(power / 1000.0, 3) if power is not None else None,
        "mig_mode": (bool(mig[0]) if isinstance(mig, (tuple, list)) else bool(mig)) if mig is not None else None,
        "pcie_generation": _try(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
        "pcie_width": _try(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
        "pcie_max_generation": _try(nv.nvmlDeviceGetMaxPcieLinkGeneration, h),
        "pcie_max_width": _try(nv.nvmlDeviceGetMaxPcieLinkWidth, h),
    }


def _cuda_version(value: Any) -> str | None:
    if not isinstance(value, int) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def gpu_inventory() -> dict[str, Any]:
    """``gpu_count``, ``gpus`` (one dict per GPU), driver versions, ``visible_gpus`` and, when
    there are none, ``gpu_reason``. Never raises."""
    result: dict[str, Any] = {
        "gpu_count": 0,
        "gpus": [],
        "gpu_driver_version": None,
        "cuda_driver_version": None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "visible_gpus": [],
    }
    try:
        nv = nvml_init()
    except NvmlUnavailable as exc:
        result["gpu_reason"] = str(exc)
        return result
    try:
        count = int(nv.nvmlDeviceGetCount())
        result["gpu_driver_version"] = _text(_try(nv.nvmlSystemGetDriverVersion))
        result["cuda_driver_version"] = _cuda_version(_try(nv.nvmlSystemGetCudaDriverVersion))
        gpus = [_gpu(nv, i) for i in range(count)]
        result["gpu_count"] = count
        result["gpus"] = gpus
        result["visible_gpus"] = visible_gpu_indices(nv, count, [g["uuid"] for g in gpus])
        if count == 0:
            result["gpu_reason"] = "NVML found no GPU"
        elif not result["visible_gpus"]:
            result["gpu_reason"] = "CUDA_VISIBLE_DEVICES hides every GPU from this process"
    except Exception as exc:  # noqa: BLE001
        result.update(gpu_count=0, gpus=[], visible_gpus=[], gpu_reason=f"NVML error: {type(exc).__name__}: {exc}")
    finally:
        nvml_shutdown(nv)
    return result


# -- what torch sees --------------------------------------------------------------------------------


def torch_devices() -> dict[str, Any] | None:
    """torch's view (version, CUDA runtime, cuDNN, devices, MPS) when torch is already imported.

    Never imports torch and never initialises CUDA (that would break later ``fork``-based data
    workers): the CUDA devices torch sees are listed only once the program initialised CUDA itself;
    NVML's inventory above says which GPUs exist either way.
    """
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "__version__"):
        return None
    info: dict[str, Any] = {"version": str(torch.__version__)}
    version = getattr(torch, "version", None)
    info["cuda_runtime"] = getattr(version, "cuda", None)
    info["hip_runtime"] = getattr(version, "hip", None)
    try:
        info["cudnn_version"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001
        info["cudnn_version"] = None
    try:
        info["cuda_built"] = bool(torch.backends.cuda.is_built())
        info["cuda_initialized"] = bool(torch.cuda.is_initialized())
        if info["cuda_initialized"]:
            count = int(torch.cuda.device_count())
            info["cuda_device_count"] = count
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(count)]
    except Exception as exc:  # noqa: BLE001
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    mps = getattr(torch.backends, "mps", None)
    try:
        info["mps_available"] = bool(mps.is_available()) if mps is not None else False
        info["mps_built"] = bool(mps.is_built()) if mps is not None else False
    except Exception:  # noqa: BLE001
        info["mps_available"] = False
    return info
