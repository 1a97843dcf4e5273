"""Resource probes (EN240–EN242): memory headroom, disk space and GPUs, checked before anything runs.

* ``memory_headroom_findings`` (EN240): the smallest headroom among the cgroup limit (minus what the cgroup
  already uses), a ``--memory-limit`` override (a fresh kernel's budget under nbmedic's watchdog) and the
  host's available RAM, against the peak RSS the notebooks needed last time (``needed_from_notebooks``
  reads the ``cell.metadata.nbmedic.peak_rss`` figures ``nbmedic run`` saves);
* ``disk_findings`` (EN241): free space of each filesystem holding the notebooks, their checkpoints and
  the Jupyter runtime directory (``disk_paths_for`` lists those folders), one finding per filesystem;
* ``gpu_findings`` (EN242): notebooks that import a GPU library *and* use CUDA, while NVML sees no GPU,
  ``CUDA_VISIBLE_DEVICES`` hides every GPU, or a GPU has less than 10 % of its memory free.

Nothing here raises for a missing cgroup, NVML or folder: the figure is just left out.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from nbmedic.execute.cgroup import read_cgroup
from nbmedic.execute.gpu import GpuProbe
from nbmedic.execute.result import CgroupInfo
from nbmedic.findings import Finding, Severity, make
from nbmedic.notebook.cells import source_text
from nbmedic.notebook.imports import scan_imports
from nbmedic.units import format_bytes

__all__ = ["GPU_LOW_FREE_FRACTION", "GpuDevices", "disk_findings", "disk_paths_for", "gpu_findings",
           "host_memory", "memory_headroom_findings", "needed_from_notebooks"]

GIB = 1 << 30
GPU_LOW_FREE_FRACTION = 0.10


def _size(n: int | None) -> str:
    return "?" if n is None else format_bytes(n)


# --- memory (EN240) ------------------------------------------------------------------------------


def needed_from_notebooks(nbs: Iterable[Mapping[str, Any]]) -> int | None:
    """The highest ``cell.metadata.nbmedic.peak_rss`` (bytes) saved by ``nbmedic run`` in any notebook;
    None when no notebook has one."""
    best: int | None = None
    for nb in nbs:
        cells = nb.get("cells") if isinstance(nb, Mapping) else None
        if not isinstance(cells, list):
            continue
        for cell in cells:
            meta = cell.get("metadata") if isinstance(cell, Mapping) else None
            own = meta.get("nbmedic") if isinstance(meta, Mapping) else None
            peak = own.get("peak_rss") if isinstance(own, Mapping) else None
            if isinstance(peak, int) and not isinstance(peak, bool) and peak > 0:
                best = peak if best is None else max(best, peak)
    return best


def host_memory() -> tuple[int, int] | None:
    """``(total, available)`` bytes of host RAM through psutil; None when it cannot tell."""
    import psutil  # type: ignore[import-untyped,unused-ignore]  # a dependency, heavy at import

    try:
        vm = psutil.virtual_memory()
    except Exception:  # noqa: BLE001 - an odd /proc: the host figure is left out
        return None
    return int(vm.total), int(vm.available)


def memory_headroom_findings(*, needed: int | None, limit_override: int | None = None,
                             cgroup: CgroupInfo | None = None,
                             host: tuple[int, int] | None = None) -> list[Finding]:
    """EN240 when the memory available to a kernel is below ``needed`` (the notebooks' last peak RSS).

    Limits considered (the one leaving the least headroom wins): the cgroup's (``read_cgroup()``; headroom
    = limit − usage), ``limit_override`` (``--memory-limit``; headroom = the limit, a fresh kernel's
    budget) and the host's RAM (psutil; headroom = available).  ``cgroup`` and ``host`` (total,
    available) replace the live readings (tests)."""
    if needed is None or needed <= 0:
        return []
    if cgroup is None:
        cgroup = read_cgroup()
    if host is None:
        host = host_memory()
    # (source, limit, available)
    candidates: list[tuple[str, int, int]] = []
    if cgroup.limit is not None:
        avail = cgroup.limit - (cgroup.usage or 0)
        candidates.append((f"cgroup v{cgroup.version} memory limit", cgroup.limit, max(0, avail)))
    if limit_override is not None and limit_override > 0:
        candidates.append(("--memory-limit", limit_override, limit_override))
    if host is not None:
        candidates.append(("host RAM", host[0], host[1]))
    if not candidates:
        return []
    source, limit, available = min(candidates, key=lambda c: (c[2], c[1]))
    if available >= needed:
        return []
    evidence: dict[str, Any] = {
        "limit": limit, "limit_source": source, "available": available, "needed": needed,
        "limits": {s: {"limit": lim, "available": av} for s, lim, av in candidates},
    }
    if cgroup.usage is not None:
        evidence["cgroup_usage"] = cgroup.usage
    return [make("EN240", None,
                 f"only {_size(available)} of memory is available (limit {_size(limit)}, from the {source}) but "
                 f"the notebooks needed up to {_size(needed)} when they last ran",
                 evidence=evidence)]


# --- disk (EN241) --------------------------------------------------------------------------------


def disk_paths_for(notebooks: Iterable[str], *, runtime_dir: bool = True) -> list[str]:
    """The folders EN241 looks at: each notebook's folder and its ``.ipynb_checkpoints``, and the Jupyter
    runtime directory."""
    out: list[str] = []
    for nb in notebooks:
        folder = os.path.dirname(os.path.abspath(nb))
        for p in (folder, os.path.join(folder, ".ipynb_checkpoints")):
            if p not in out:
                out.append(p)
    if runtime_dir:
        try:
            from jupyter_core.paths import jupyter_runtime_dir

            rt = jupyter_runtime_dir()
        except Exception:  # noqa: BLE001 - a broken Jupyter installation is another probe's finding
            rt = None
        if rt and rt not in out:
            out.append(rt)
    return out


def _existing(path: str) -> str | None:
    """``path`` or its nearest existing parent (a checkpoint folder may not exist yet)."""
    here = os.path.abspath(path)
    while True:
        if os.path.exists(here):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _mount_point(path: str, dev: int) -> str:
    here = path
    while True:
        parent = os.path.dirname(here)
        if parent == here:
            return here
        try:
            if os.stat(parent).st_dev != dev:
                return here
        except OSError:
            return here
        here = parent


def disk_findings(paths: Iterable[str], *, min_free: int = GIB, min_fraction: float = 0.05) -> list[Finding]:
    """EN241 for each filesystem (by ``st_dev``) holding ``paths`` whose free space is below ``min_free``
    bytes or below ``min_fraction`` of its size."""
    groups: dict[int, tuple[str, list[str]]] = {}
    for path in paths:
        existing = _existing(path)
        if existing is None:
            continue
        try:
            dev = os.stat(existing).st_dev
        except OSError:
            continue
        if dev not in groups:
            groups[dev] = (existing, [])
        if path not in groups[dev][1]:
            groups[dev][1].append(path)
    findings: list[Finding] = []
    for dev, (probe_path, members) in groups.items():
        try:
            usage = shutil.disk_usage(probe_path)
        except OSError:
            continue
        total, free = int(usage.total), int(usage.free)
        if total <= 0:
            continue
        fraction = free / total
        if free >= min_free and fraction >= min_fraction:
            continue
        mount = _mount_point(probe_path, dev)
        findings.append(make(
            "EN241", None,
            f"only {_size(free)} free of {_size(total)} ({fraction:.1%}) on the filesystem at {mount}, which holds "
            + ", ".join(members[:3]) + (f" and {len(members) - 3} more" if len(members) > 3 else ""),
            severity="error" if free < 50 * (1 << 20) else None,
            evidence={"free": free, "total": total, "free_fraction": round(fraction, 4), "mount": mount,
                      "paths": members, "min_free": min_free, "min_fraction": min_fraction}))
    return findings


# --- GPU (EN242) ---------------------------------------------------------------------------------


class GpuDevices(Protocol):
    """What ``gpu_findings`` needs of a probe (``nbmedic.execute.gpu.GpuProbe`` or a test double)."""

    @property
    def available(self) -> bool: ...

    def devices(self) -> list[dict[str, Any]] | None: ...


# libraries that can use a GPU when the code asks for CUDA
_GPU_FRAMEWORKS = frozenset({"torch", "tensorflow", "keras", "jax", "jaxlib", "flax", "mxnet", "paddle",
                             "lightning", "pytorch_lightning", "transformers", "numba"})
# libraries that need a GPU just by being used
_GPU_ONLY = frozenset({"cupy", "cupyx", "cudf", "cuml", "cugraph", "cuspatial", "pycuda", "dask_cuda",
                       "tensorrt", "rmm"})
_CUDA_RE = re.compile(
    r"""\bcuda\b|\.to\(\s*['"]cuda|device\s*=\s*['"]cuda|list_physical_devices\(\s*['"]GPU['"]"""
    r"""|jax\.devices\(\s*['"]gpu['"]|['"]/(?:device:)?GPU:\d|from\s+numba\s+import\s+cuda|numba\.cuda""",
    re.IGNORECASE)
_CPU_FALLBACK_RE = re.compile(r"""['"]cpu['"]|is_available\(\)""")


def _gpu_expectation(path: str, nb: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]], bool]:
    """(GPU libraries imported, lines that ask for CUDA, whether the code falls back to the CPU)."""
    try:
        modules = scan_imports(nb).modules
    except Exception:  # noqa: BLE001 - an odd notebook is the NB family's business
        modules = {}
    libs = sorted(m for m in modules if m in _GPU_FRAMEWORKS or m in _GPU_ONLY)
    lines: list[dict[str, Any]] = []
    fallback = False
    cells = nb.get("cells")
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        for lineno, line in enumerate(source_text(cell).splitlines(), 1):
            code = line.strip()
            if not code or code.startswith(("#", "!", "%")):
                continue
            if _CUDA_RE.search(code):
                lines.append({"cell": index, "line": lineno, "text": code[:200]})
            if _CPU_FALLBACK_RE.search(code):
                fallback = True
    return libs, lines, fallback


def gpu_findings(notebooks: Iterable[tuple[str, dict[str, Any]]], *, probe: GpuDevices | None = None,
                 environ: Mapping[str, str] | None = None) -> list[Finding]:
    """EN242 for each notebook (``(path, notebook dict)``) that imports a GPU library and uses CUDA (or
    imports a GPU-only library such as cupy/cudf) while no GPU is visible — NVML sees none, or
    ``CUDA_VISIBLE_DEVICES`` is empty or -1 — or a GPU has < 10 % of its memory free.  ``probe``
    defaults to a fresh ``GpuProbe`` (closed afterwards); ``environ`` to ``os.environ``."""
    env = os.environ if environ is None else environ
    expecting: list[tuple[str, list[str], list[dict[str, Any]], bool]] = []
    for path, nb in notebooks:
        libs, lines, fallback = _gpu_expectation(path, nb)
        gpu_only = [m for m in libs if m in _GPU_ONLY]
        if not libs or not (lines or gpu_only):
            continue
        expecting.append((path, libs, lines, fallback and not gpu_only))
    if not expecting:
        return []
    own = probe is None
    if probe is None:
        probe = GpuProbe()
    try:
        available = probe.available
        devices = (probe.devices() if available else None) or []
    finally:
        if own:
            close = getattr(probe, "close", None)
            if callable(close):
                close()
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    hidden = cvd is not None and cvd.strip() in ("", "-1")
    low = [d for d in devices if isinstance(d.get("total"), int) and isinstance(d.get("free"), int)
           and d["total"] > 0 and d["free"] / d["total"] < GPU_LOW_FREE_FRACTION]
    if devices and not hidden and not low:
        return []
    seen = [{k: d.get(k) for k in ("index", "name", "total", "free", "used")} for d in devices]
    findings: list[Finding] = []
    for path, libs, lines, fallback in expecting:
        evidence: dict[str, Any] = {"notebook": path, "imports": libs, "cuda_lines": lines[:10],
                                    "devices": seen, "CUDA_VISIBLE_DEVICES": cvd, "cpu_fallback": fallback}
        if not available:
            evidence["nvml_error"] = getattr(probe, "error", None)
        first = lines[0]["cell"] if lines else None
        asks = f"imports {', '.join(libs)}" + (f" and uses CUDA ({lines[0]['text']})" if lines else "")
        if not devices or hidden:
            why = (f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU" if hidden and devices else
                   "no GPU is visible" + ("" if available else " (NVML unavailable)")
                   + (f"; CUDA_VISIBLE_DEVICES={cvd!r}" if hidden else ""))
            message = f"the notebook {asks} but {why}"
            severity: Severity | None = "info" if fallback else None
        else:
            names = ", ".join(f"GPU {d.get('index')} ({d.get('name')}): {_size(d['free'])} free of "
                              f"{_size(d['total'])}" for d in low)
            message = f"the notebook {asks} but little GPU memory is free: {names}"
            severity = None
        findings.append(make("EN242", path, message, cell=first, evidence=evidence,
                             severity=severity))
    return findings
