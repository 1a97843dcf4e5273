"""GPU memory of a process tree through NVML (``pynvml`` from the ``nvidia-ml-py`` package, extra ``gpu``).

``GpuProbe`` imports and initialises NVML on first use only. Without the package, without a driver, or
without a GPU it is *unavailable*: every query returns None and nothing raises, so callers never need a
``try``. One probe is cheap to keep for a whole run; ``close()`` shuts NVML down again.

Caveat: NVML reports host PIDs. Inside a container with its own PID namespace the kernel's PID differs
from the one NVML lists, so ``used_by`` finds nothing (0) even though the GPU is in use; ``devices()``
still tells the totals.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any

__all__ = ["GpuProbe"]


class GpuProbe:
    """Lazy NVML access; every method returns None when NVML cannot be used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tried = False
        self._nvml: Any = None  # the pynvml module once nvmlInit succeeded
        self._handles: list[Any] = []
        self.error: str | None = None  # why NVML is unavailable (import or init failure), for evidence

    def _ensure(self) -> bool:
        with self._lock:
            if not self._tried:
                self._tried = True
                try:
                    nvml = importlib.import_module("pynvml")
                    nvml.nvmlInit()
                except Exception as exc:  # noqa: BLE001 - ImportError, NVMLError_LibraryNotFound, …
                    self.error = f"{type(exc).__name__}: {exc}"
                    return False
                try:
                    count = int(nvml.nvmlDeviceGetCount())
                    self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
                except Exception as exc:  # noqa: BLE001 - any NVMLError: no GPU figures
                    self.error = f"{type(exc).__name__}: {exc}"
                    self._shutdown(nvml)
                    return False
                self._nvml = nvml
            return self._nvml is not None

    @property
    def available(self) -> bool:
        """True when NVML initialised (it may still list zero devices)."""
        return self._ensure()

    def used_by(self, pids: set[int] | frozenset[int]) -> int | None:
        """Bytes of GPU memory used by ``pids`` over all devices (compute + graphics contexts).

        0 when none of them uses a GPU; None when NVML is unavailable or every device query failed.
        A process listed as both compute and graphics on one device is counted once.
        """
        if not self._ensure():
            return None
        nvml = self._nvml
        total = 0
        answered = False
        for handle in self._handles:
            per_pid: dict[int, int] = {}
            for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                try:
                    procs = getattr(nvml, getter)(handle)
                except Exception:  # noqa: BLE001, S112 - NVMLError_NotSupported and co.: ask the other getter
                    continue
                answered = True
                for info in procs or ():
                    pid = getattr(info, "pid", None)
                    used = getattr(info, "usedGpuMemory", None)
                    # usedGpuMemory is None (NVML_VALUE_NOT_AVAILABLE) without the rights to see it
                    if isinstance(pid, int) and pid in pids and isinstance(used, int) and used >= 0:
                        per_pid[pid] = max(per_pid.get(pid, 0), used)
            total += sum(per_pid.values())
        return total if answered else None

    def devices(self) -> list[dict[str, Any]] | None:
        """``[{"index", "name", "total", "free", "used"}]`` (bytes) per device; None when unavailable."""
        if not self._ensure():
            return None
        nvml = self._nvml
        out: list[dict[str, Any]] = []
        for index, handle in enumerate(self._handles):
            entry: dict[str, Any] = {"index": index, "name": None, "total": None, "free": None, "used": None}
            with contextlib.suppress(Exception):  # an NVMLError leaves the figure unknown (None)
                name = nvml.nvmlDeviceGetName(handle)
                entry["name"] = name.decode() if isinstance(name, bytes) else str(name)
            with contextlib.suppress(Exception):
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                entry.update(total=int(mem.total), free=int(mem.free), used=int(mem.used))
            out.append(entry)
        return out

    @staticmethod
    def _shutdown(nvml: Any) -> None:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()

    def close(self) -> None:
        """Shut NVML down (idempotent); a later query initialises it again."""
        with self._lock:
            if self._nvml is not None:
                self._shutdown(self._nvml)
            self._nvml = None
            self._handles = []
            self._tried = False

    def __enter__(self) -> GpuProbe:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
