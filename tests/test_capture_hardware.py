"""The hardware section and GPU metrics, checked against independent truth.

This machine has no GPU: the GPU paths run against a stand-in ``pynvml`` module placed on
``sys.modules`` that reports two GPUs with known values (the code under test is the real one);
the no-NVML path runs for real.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import types
from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest

import autotrack
from autotrack import _capture
from autotrack._capture import hardware


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AUTOTRACK_CAPTURE", raising=False)
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    previous = _capture._settings
    hardware.clear_cache()
    yield
    _capture._settings = previous
    hardware.clear_cache()


# -- a stand-in NVML with two GPUs --------------------------------------------------------------------

Memory = namedtuple("Memory", "total free used")
Utilization = namedtuple("Utilization", "gpu memory")
Proc = namedtuple("Proc", "pid usedGpuMemory")

GPUS = [
    {"name": b"NVIDIA H100 80GB HBM3", "uuid": "GPU-11111111-aaaa-bbbb-cccc-000000000000", "total": 85520809984,
     "used": 1073741824, "cc": (9, 0), "power_limit_mw": 700000, "mig": (0, 0), "pcie": (5, 16), "pcie_max": (5, 16),
     "util": 37, "temp": 45, "power_mw": 312500, "sm_clock": 1980, "own_memory": 987654144},
    {"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-22222222-aaaa-bbbb-cccc-000000000000", "total": 42949672960,
     "used": 2147483648, "cc": (8, 0), "power_limit_mw": 400000, "mig": (1, 1), "pcie": (4, 8), "pcie_max": (4, 16),
     "util": 81, "temp": 63, "power_mw": 201250, "sm_clock": 1410, "own_memory": 0},
]


class FakeNVMLError(Exception):
    pass


class NVMLError_NotSupported(FakeNVMLError):  # noqa: N801 - pynvml's naming
    pass


def fake_pynvml(gpus: list[dict[str, Any]] = GPUS, init_error: Exception | None = None) -> types.ModuleType:
    nv = types.ModuleType("pynvml")
    state = {"init": 0}
    nv.NVML_TEMPERATURE_GPU = 0
    nv.NVML_CLOCK_SM = 1
    nv.NVMLError = FakeNVMLError

    def need_init() -> None:
        if state["init"] <= 0:
            raise FakeNVMLError("Uninitialized")

    def handle(h: Any) -> dict[str, Any]:
        need_init()
        assert isinstance(h, tuple) and h[0] == "handle"
        return gpus[h[1]]

    def init() -> None:
        if init_error is not None:
            raise init_error
        state["init"] += 1

    def shutdown() -> None:
        state["init"] -= 1

    nv.nvmlInit = init
    nv.nvmlShutdown = shutdown
    nv.nvmlDeviceGetCount = lambda: (need_init(), len(gpus))[1]
    nv.nvmlDeviceGetHandleByIndex = lambda i: (need_init(), ("handle", i))[1]
    nv.nvmlSystemGetDriverVersion = lambda: (need_init(), "550.54.15")[1]
    nv.nvmlSystemGetCudaDriverVersion = lambda: (need_init(), 12040)[1]
    nv.nvmlDeviceGetName = lambda h: handle(h)["name"]
    nv.nvmlDeviceGetUUID = lambda h: handle(h)["uuid"]
    nv.nvmlDeviceGetMemoryInfo = lambda h: Memory(handle(h)["total"], handle(h)["total"] - handle(h)["used"], handle(h)["used"])
    nv.nvmlDeviceGetCudaComputeCapability = lambda h: handle(h)["cc"]
    nv.nvmlDeviceGetPowerManagementLimit = lambda h: handle(h)["power_limit_mw"]
    nv.nvmlDeviceGetMigMode = lambda h: handle(h)["mig"]
    nv.nvmlDeviceGetCurrPcieLinkGeneration = lambda h: handle(h)["pcie"][0]
    nv.nvmlDeviceGetCurrPcieLinkWidth = lambda h: handle(h)["pcie"][1]
    nv.nvmlDeviceGetMaxPcieLinkGeneration = lambda h: handle(h)["pcie_max"][0]
    nv.nvmlDeviceGetMaxPcieLinkWidth = lambda h: handle(h)["pcie_max"][1]
    nv.nvmlDeviceGetUtilizationRates = lambda h: Utilization(handle(h)["util"], 10)
    nv.nvmlDeviceGetTemperature = lambda h, sensor: handle(h)["temp"] if sensor == 0 else -1

    def power(h: Any) -> int:
        return handle(h)["power_mw"]

    def clock(h: Any, kind: int) -> int:
        if kind != 1:
            raise NVMLError_NotSupported("only the SM clock in this fake")
        return handle(h)["sm_clock"]

    def procs(h: Any) -> list[Proc]:
        g = handle(h)
        out = [Proc(os.getpid() + 100000, 5 << 20)]
        if g["own_memory"]:
            out.append(Proc(os.getpid(), g["own_memory"]))
        return out

    nv.nvmlDeviceGetPowerUsage = power
    nv.nvmlDeviceGetClockInfo = clock
    nv.nvmlDeviceGetComputeRunningProcesses = procs
    nv.state = state
    return nv


def expected_gpu(i: int) -> dict[str, Any]:
    g = GPUS[i]
    name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
    return {
        "index": i, "name": name, "uuid": g["uuid"], "memory_total_bytes": g["total"],
        "compute_capability": f"{g['cc'][0]}.{g['cc'][1]}", "power_limit_w": g["power_limit_mw"] / 1000,
        "mig_mode": bool(g["mig"][0]), "pcie_generation": g["pcie"][0], "pcie_width": g["pcie"][1],
        "pcie_max_generation": g["pcie_max"][0], "pcie_max_width": g["pcie_max"][1],
    }


# -- host truth -----------------------------------------------------------------------------------------


def test_host_fields_match_independent_truth(store):
    with autotrack.start_run() as run:
        pass
    hw = autotrack.get_run(run.id).info("hardware")
    assert hw["cpu_logical_cores"] == os.cpu_count()
    assert hw["cpu_physical_cores"] == psutil.cpu_count(logical=False)
    assert hw["ram_total_bytes"] == psutil.virtual_memory().total
    assert hw["architecture"] == platform.machine()
    assert hw["kernel"] == platform.release()
    assert hw["os"] == platform.system()
    import socket

    assert hw["hostname"] == socket.gethostname()
    if hasattr(os, "sched_getaffinity"):
        assert hw["cpu_usable_cores"] == len(os.sched_getaffinity(0))
    if Path("/proc/cpuinfo").exists():
        models = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")]
        if models:
            assert hw["cpu_model"] == models[0]


def test_cgroup_quota_and_memory_limit_parsing(tmp_path: Path):
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    (tmp_path / "memory.max").write_text("8589934592\n")
    assert hardware.cgroup_cpu_quota(str(tmp_path)) == 2.5
    assert hardware.cgroup_memory_limit(str(tmp_path)) == 8589934592
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert hardware.cgroup_cpu_quota(str(tmp_path)) is None
    assert hardware.cgroup_memory_limit(str(tmp_path)) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("150000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert hardware.cgroup_cpu_quota(str(v1)) == 1.5
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert hardware.cgroup_cpu_quota(str(v1)) is None


# -- no NVML, for real ----------------------------------------------------------------------------------------


def _real_nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:  # noqa: BLE001
        return False


def test_no_nvml_library_says_so_plainly(store):
    if _real_nvml_works():
        pytest.skip("this machine has a working NVIDIA driver")
    with autotrack.start_run() as run:
        pass
    hw = autotrack.get_run(run.id).info("hardware")
    assert hw["gpus"] == [] and hw["gpu_count"] == 0 and hw["visible_gpus"] == []
    assert "NVML" in hw["gpu_reason"] or "NVIDIA" in hw["gpu_reason"]


def test_nvml_module_missing(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with autotrack.start_run() as run:
        pass
    hw = autotrack.get_run(run.id).info("hardware")
    assert hw["gpus"] == []
    assert "nvidia-ml-py" in hw["gpu_reason"]


def test_nvml_error_at_init_is_reported_not_raised(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=FakeNVMLError("Driver/library version mismatch")))
    with autotrack.start_run() as run:
        pass
    hw = autotrack.get_run(run.id).info("hardware")
    assert hw["gpus"] == []
    assert "Driver/library version mismatch" in hw["gpu_reason"]


# -- two fake GPUs -----------------------------------------------------------------------------------------------


def test_two_gpus_inventory_exact_values(store, monkeypatch):
    nv = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    with autotrack.start_run() as run:
        pass
    hw = autotrack.get_run(run.id).info("hardware")
    assert hw["gpu_count"] == 2
    assert hw["gpu_driver_version"] == "550.54.15"
    assert hw["cuda_driver_version"] == "12.4"
    assert hw["gpus"] == [expected_gpu(0), expected_gpu(1)]
    assert hw["visible_gpus"] == [0, 1]
    assert "gpu_reason" not in hw
    assert nv.state["init"] == 0  # every nvmlInit was matched by nvmlShutdown


@pytest.mark.parametrize(
    ("spec", "visible"),
    [("1", [1]), ("1,0", [1, 0]), ("", []), ("0,7,1", [0]), ("GPU-2222", [1]), ("-1", [])],
)
def test_cuda_visible_devices(monkeypatch, spec, visible):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    inv = hardware.gpu_inventory()
    assert inv["visible_gpus"] == visible
    assert inv["cuda_visible_devices"] == spec
    if not visible:
        assert "CUDA_VISIBLE_DEVICES" in inv["gpu_reason"]


def test_visible_gpus_follow_a_later_cuda_visible_devices_change(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    with autotrack.start_run() as first:
        pass
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-22222222")
    with autotrack.start_run() as second:
        pass
    assert autotrack.get_run(first.id).info("hardware")["visible_gpus"] == [0, 1]
    hw = autotrack.get_run(second.id).info("hardware")
    assert hw["visible_gpus"] == [1] and hw["cuda_visible_devices"] == "GPU-22222222"
    assert hw["gpus"] == [expected_gpu(0), expected_gpu(1)]


def _run_with_sampler(monkeypatch, interval: float = 0.1, samples: int = 2) -> Any:
    monkeypatch.setenv("AUTOTRACK_SYSTEM_METRICS", str(interval))
    run = autotrack.start_run()
    sampler = _capture.sampler_for(run)
    assert sampler is not None
    deadline = time.monotonic() + 20
    while sampler.samples < samples and time.monotonic() < deadline:
        time.sleep(0.02)
    run.end()
    assert sampler.samples >= samples
    return run


def test_gpu_metrics_exact_values(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    run = _run_with_sampler(monkeypatch)
    rec = autotrack.get_run(run.id)
    for i, g in enumerate(GPUS):
        p = f"system/gpu{i}/"
        assert set(rec.metric(p + "utilization")["value"]) == {g["util"]}
        assert set(rec.metric(p + "memory_used_bytes")["value"]) == {g["used"]}
        assert set(rec.metric(p + "temperature_c")["value"]) == {g["temp"]}
        assert set(rec.metric(p + "power_w")["value"]) == {g["power_mw"] / 1000}
        assert set(rec.metric(p + "sm_clock_mhz")["value"]) == {g["sm_clock"]}
        assert set(rec.metric(p + "proc_memory_used_bytes")["value"]) == {g["own_memory"]}
    assert sys.modules["pynvml"].state["init"] == 0


def test_gpu_metrics_only_for_visible_gpus(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    run = _run_with_sampler(monkeypatch, samples=1)
    keys = autotrack.get_run(run.id).metric_keys
    assert "system/gpu1/utilization" in keys
    assert not [k for k in keys if k.startswith("system/gpu0/")]


def test_unsupported_gpu_query_is_skipped(store, monkeypatch):
    nv = fake_pynvml()

    def no_power(h: Any) -> int:
        raise NVMLError_NotSupported("power readings are not supported on this board")

    nv.nvmlDeviceGetPowerUsage = no_power
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    run = _run_with_sampler(monkeypatch, samples=2)
    keys = autotrack.get_run(run.id).metric_keys
    assert "system/gpu0/power_w" not in keys
    assert "system/gpu0/temperature_c" in keys


def test_torch_section_only_when_torch_already_imported(store):
    with autotrack.start_run() as run:
        pass
    hw = autotrack.get_run(run.id).info("hardware")
    if "torch" not in sys.modules:
        assert hw["torch"] is None
    else:
        torch = sys.modules["torch"]
        assert hw["torch"]["version"] == str(torch.__version__)
        assert hw["torch"]["cuda_runtime"] == torch.version.cuda
