"""What a monitored run produces: plain, picklable records (a Dask worker ships them).

``RunResult.to_dict()`` is the per-notebook entry of the ``"runs"`` list in ``--format json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from nbmedic.findings import Finding

RunStatus = Literal["ok", "failed", "died", "timeout", "not-started"]
CellStatus = Literal["ok", "error", "timeout", "died", "skipped", "not-run", "stalled-interrupted"]


@dataclass
class Sample:
    """One reading of the kernel's process tree (monitor thread, default 10 Hz)."""

    t: float  # seconds since the run started
    rss: int  # bytes, kernel process + all children
    cpu: float  # percent of one core, whole tree, since the previous sample
    threads: int
    children: int
    gpu: int | None = None  # bytes of GPU memory used by the tree (NVML), None when unknown
    cell: int | None = None  # the cell executing when the sample was taken


@dataclass
class CellRecord:
    index: int
    id: str | None
    status: CellStatus
    wall: float = 0.0  # seconds
    cpu: float = 0.0  # CPU seconds of the kernel tree during the cell
    peak_rss: int = 0  # bytes
    rss_delta: int = 0  # bytes, end minus start
    gpu_peak: int | None = None
    output_bytes: int = 0
    # with --profile-memory (execute.memprofile): {"traced_end": bytes | None (None: the cell died),
    # "traced_peak": bytes, "peak_at": bytes traced when the peak's sites were taken, "end": [site, ...],
    # "peak": [site, ...]}, largest first; a site is {"where": "cell 0, line 3 (in f, called from cell 2)",
    # "cell", "line", "function", "called_from", "package" ("numpy", "python" for the standard library),
    # "bytes", "count"}
    memory_profile: dict[str, Any] | None = None

    def to_metadata(self) -> dict[str, Any]:
        """The figures stored in the output notebook's ``cell.metadata.nbmedic``."""
        out = {k: v for k, v in asdict(self).items() if k not in ("index", "id") and v is not None}
        out["wall"] = round(self.wall, 4)
        out["cpu"] = round(self.cpu, 4)
        return out


@dataclass
class CgroupInfo:
    version: int | None = None  # 1, 2 or None (no memory cgroup found)
    limit: int | None = None  # bytes; None = unlimited or unknown
    usage: int | None = None
    oom_kills: int | None = None  # the cgroup's oom_kill counter


@dataclass
class RunResult:
    path: str
    status: RunStatus
    kernel: str | None = None
    output: str | None = None  # where the executed notebook was written
    duration: float = 0.0
    cells: list[CellRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    timeline: list[Sample] = field(default_factory=list)
    peak_rss: int = 0
    exit_code: int | None = None  # the kernel process's return code (negative = signal) when it died
    nb: dict[str, Any] | None = None  # the executed notebook (outputs so far when the run failed)

    def to_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "kernel": self.kernel,
            "output": self.output,
            "duration": round(self.duration, 4),
            "peak_rss": self.peak_rss,
            "exit_code": self.exit_code,
            "cells": [asdict(c) for c in self.cells],
            "timeline": [asdict(s) for s in self.timeline] if timeline else [],
        }
