"""Live system metrics: one sampler thread per top-level run.

Keys logged (every ``interval`` seconds, the first shortly after the run starts)::

    system/cpu_percent              host CPU use, % of all cores
    system/ram_used_bytes           host memory in use
    system/proc_rss_bytes           this process's resident memory
    system/proc_cpu_percent         this process's CPU use, % of one core (can exceed 100)
    system/disk_read_bytes_per_s    host disk reads since the previous sample
    system/disk_write_bytes_per_s
    system/net_recv_bytes_per_s     host network traffic since the previous sample
    system/net_sent_bytes_per_s
    system/gpu<i>/utilization       % of time a kernel ran (NVML index i, GPUs this process may use)
    system/gpu<i>/memory_used_bytes
    system/gpu<i>/temperature_c
    system/gpu<i>/power_w
    system/gpu<i>/sm_clock_mhz
    system/gpu<i>/proc_memory_used_bytes   this process's own memory on that GPU

Each point carries wall time and, as its step, ``run.step`` when an integration set it (so the
curves line up with the loss), else the sample number.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .._patching import report_failure

if TYPE_CHECKING:
    from .._run import Run

#: How long after the start the first sample is taken (CPU percentages need a short window).
FIRST_SAMPLE_AFTER_S = 0.5


class SystemSampler:
    """Samples host (psutil) and GPU (NVML) metrics into ``run`` from a daemon thread."""

    def __init__(self, run: Run, interval: float) -> None:
        self.run = run
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0
        self._nv: Any = None
        self._gpus: list[tuple[int, Any]] = []
        self._unsupported: set[tuple[int, str]] = set()
        self._last_io: tuple[float, Any, Any] | None = None
        self.cpu_seconds = 0.0  # CPU time spent sampling (thread time), for the benchmark

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"autotrack-system-{self.run.id[:8]}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def samples(self) -> int:
        return self._count

    def _loop(self) -> None:
        try:
            self._setup()
            if self._stop.wait(min(FIRST_SAMPLE_AFTER_S, self.interval)):
                return
            while True:
                started = time.thread_time()
                try:
                    self.sample()
                except Exception as exc:  # noqa: BLE001
                    if self.run.ended:
                        return
                    report_failure("system metrics sampling", exc)
                self.cpu_seconds += time.thread_time() - started
                if self._stop.wait(self.interval):
                    return
        except Exception as exc:  # noqa: BLE001 - a sampler never takes the program down
            try:
                report_failure("system metrics sampler", exc)
            except Exception:  # noqa: BLE001 - strict mode: a thread cannot raise to anyone
                import traceback

                traceback.print_exc()
        finally:
            self._teardown()

    def _setup(self) -> None:
        import psutil

        from .hardware import NvmlUnavailable, nvml_init, visible_gpu_indices

        self._psutil = psutil
        self._proc = psutil.Process()
        psutil.cpu_percent(None)
        self._proc.cpu_percent(None)
        self._last_io = (time.monotonic(), _disk(psutil), _net(psutil))
        try:
            nv = nvml_init()
        except NvmlUnavailable:
            return
        try:
            count = int(nv.nvmlDeviceGetCount())
            self._gpus = [(i, nv.nvmlDeviceGetHandleByIndex(i)) for i in visible_gpu_indices(nv, count)]
            self._nv = nv
        except Exception:  # noqa: BLE001 - no GPU metrics then; the hardware section says why
            _shutdown(nv)

    def _teardown(self) -> None:
        if self._nv is not None:
            _shutdown(self._nv)
            self._nv = None

    # -- one sample ----------------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """Take one sample, log it to the run and return it."""
        psutil = self._psutil
        now = time.time()
        values: dict[str, float] = {
            "system/cpu_percent": psutil.cpu_percent(None),
            "system/ram_used_bytes": psutil.virtual_memory().used,
        }
        try:
            with self._proc.oneshot():
                values["system/proc_rss_bytes"] = self._proc.memory_info().rss
                values["system/proc_cpu_percent"] = self._proc.cpu_percent(None)
        except psutil.Error:
            pass
        mono = time.monotonic()
        disk, net = _disk(psutil), _net(psutil)
        if self._last_io is not None:
            then, disk0, net0 = self._last_io
            dt = mono - then
            if dt > 0:
                if disk is not None and disk0 is not None:
                    values["system/disk_read_bytes_per_s"] = max(0, disk.read_bytes - disk0.read_bytes) / dt
                    values["system/disk_write_bytes_per_s"] = max(0, disk.write_bytes - disk0.write_bytes) / dt
                if net is not None and net0 is not None:
                    values["system/net_recv_bytes_per_s"] = max(0, net.bytes_recv - net0.bytes_recv) / dt
                    values["system/net_sent_bytes_per_s"] = max(0, net.bytes_sent - net0.bytes_sent) / dt
        self._last_io = (mono, disk, net)
        if self._nv is not None:
            for index, handle in self._gpus:
                values.update(self._gpu_values(index, handle))
        run = self.run
        if run.ended:
            return values
        step = run.step
        self._count += 1
        run.log_metrics(values, step=step if step is not None else self._count - 1, time=now)
        return values

    def _gpu_values(self, index: int, handle: Any) -> dict[str, float]:
        nv = self._nv
        prefix = f"system/gpu{index}/"
        out: dict[str, float] = {}

        def read(name: str, fn: Any) -> None:
            if (index, name) in self._unsupported:
                return
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - e.g. NVMLError_NotSupported on this board
                if "NotSupported" in type(exc).__name__ or "NoPermission" in type(exc).__name__:
                    self._unsupported.add((index, name))
                return
            if value is not None:
                out[prefix + name] = float(value)

        read("utilization", lambda: nv.nvmlDeviceGetUtilizationRates(handle).gpu)
        read("memory_used_bytes", lambda: nv.nvmlDeviceGetMemoryInfo(handle).used)
        read("temperature_c", lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        read("power_w", lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        read("sm_clock_mhz", lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM))
        read("proc_memory_used_bytes", lambda: _own_gpu_memory(nv, handle))
        return out


def _own_gpu_memory(nv: Any, handle: Any) -> float:
    pid = os.getpid()
    total = 0
    for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):
        if proc.pid == pid and proc.usedGpuMemory is not None:
            total += int(proc.usedGpuMemory)
    return float(total)


def _disk(psutil: Any) -> Any:
    try:
        return psutil.disk_io_counters()
    except Exception:  # noqa: BLE001 - missing in some containers
        return None


def _net(psutil: Any) -> Any:
    try:
        return psutil.net_io_counters()
    except Exception:  # noqa: BLE001
        return None


def _shutdown(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass
