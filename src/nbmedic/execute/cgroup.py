"""Memory cgroup facts of a process: limit, usage and the OOM-kill counter (cgroup v1 and v2).

Pure file reads, no third-party imports: the runner snapshots the kernel's cgroup before a run and again
after a kernel death; an ``oom_kills`` counter that went up in between is the evidence that the OOM killer
(not a segfault, not a ``kill -9`` by a person) ended the kernel.

Every function takes ``root`` (where the cgroup hierarchies are mounted) and ``proc`` (procfs) so the tests
can point them at fake trees; nothing here raises for a missing or unreadable file.

Layouts handled:

* **v2** (unified): ``<root>/cgroup.controllers`` exists. The process's path is the ``0::/path`` line of
  ``/proc/<pid>/cgroup``; files ``memory.max`` (``max`` = unlimited), ``memory.current``, ``memory.events``
  (``oom_kill N``).
* **v1** (also the "hybrid" layout with a ``unified`` mount beside the v1 ones): the memory controller is
  mounted at ``<root>/memory``; the path is the ``N:memory:/path`` line; files ``memory.limit_in_bytes``
  (a huge page-rounded ``LONG_MAX`` = unlimited), ``memory.usage_in_bytes``, ``memory.oom_control``
  (``oom_kill N``, kernels ≥ 4.13).

The process's own cgroup directory is used when it exists, else the root of the hierarchy (a container
whose cgroup namespace was not unshared shows a host path that is not mounted inside it). The limit is the
smallest one on the way from that directory up to the root, because a parent's limit binds its children.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nbmedic.execute.result import CgroupInfo

# cgroup v1 reports "no limit" as LONG_MAX rounded down to the page size (9223372036854771712 on 4 KiB
# pages); anything at or above 2**62 bytes (4 EiB) is treated as unlimited.
_V1_UNLIMITED = 1 << 62

__all__ = [
    "CgroupInfo",
    "CgroupLocation",
    "host_oom_kills",
    "locate_cgroup",
    "memory_pressure",
    "oom_kills_since",
    "read_cgroup",
    "read_cgroup_at",
]


@dataclass(frozen=True)
class CgroupLocation:
    """Where a process's memory cgroup lives: the version and the directory holding its files."""

    version: int
    path: str  # directory of the process's memory cgroup (or the hierarchy's root)
    root: str  # directory of the hierarchy's root (the limit is looked up to here)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _read_keyed(path: str, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed file (``memory.events``, ``memory.oom_control``, vmstat)."""
    text = _read_text(path)
    if text is None:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None


def _proc_cgroup_lines(pid: int | None, proc: str) -> list[tuple[str, list[str], str]]:
    """``(hierarchy id, controllers, path)`` for each line of ``/proc/<pid>/cgroup`` (empty if unreadable)."""
    text = _read_text(os.path.join(proc, "self" if pid is None else str(pid), "cgroup"))
    out: list[tuple[str, list[str], str]] = []
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1].split(",") if parts[1] else [], parts[2]))
    return out


def _join(root: str, cg_path: str) -> str:
    rel = cg_path.strip().lstrip("/")
    return os.path.join(root, rel) if rel else root


def locate_cgroup(
    pid: int | None = None, *, root: str = "/sys/fs/cgroup", proc: str = "/proc"
) -> CgroupLocation | None:
    """Find the memory cgroup directory of ``pid`` (``None`` = this process); ``None`` when there is none.

    Keep the result to read the same cgroup after the process has gone (``read_cgroup_at``): a dead
    process's ``/proc/<pid>/cgroup`` no longer exists.
    """
    lines = _proc_cgroup_lines(pid, proc)
    if os.path.isfile(os.path.join(root, "cgroup.controllers")):  # v2 mounted at root
        controllers = (_read_text(os.path.join(root, "cgroup.controllers")) or "").split()
        path = next((p for hid, ctl, p in lines if hid == "0" and not ctl), None)
        candidate = _join(root, path) if path is not None else root
        if not os.path.isdir(candidate):
            candidate = root
        if "memory" in controllers or os.path.isfile(os.path.join(candidate, "memory.max")):
            return CgroupLocation(2, candidate, root)
        return None
    v1_root = os.path.join(root, "memory")
    if os.path.isfile(os.path.join(v1_root, "memory.usage_in_bytes")) or os.path.isfile(
        os.path.join(v1_root, "memory.limit_in_bytes")
    ):
        path = next((p for _hid, ctl, p in lines if "memory" in ctl), None)
        candidate = _join(v1_root, path) if path is not None else v1_root
        if not os.path.isdir(candidate):
            candidate = v1_root
        return CgroupLocation(1, candidate, v1_root)
    return None


def _ancestors(loc: CgroupLocation) -> list[str]:
    """``loc.path`` and every directory above it up to and including ``loc.root``."""
    out = [loc.path]
    here = os.path.normpath(loc.path)
    top = os.path.normpath(loc.root)
    while here != top and here.startswith(top + os.sep):
        here = os.path.dirname(here)
        out.append(here)
    return out


def _limit(loc: CgroupLocation) -> int | None:
    limits: list[int] = []
    for d in _ancestors(loc):
        if loc.version == 2:
            text = _read_text(os.path.join(d, "memory.max"))
            if text is not None and text.strip() != "max":
                try:
                    limits.append(int(text.strip()))
                except ValueError:
                    pass
        else:
            value = _read_int(os.path.join(d, "memory.limit_in_bytes"))
            if value is not None and 0 <= value < _V1_UNLIMITED:
                limits.append(value)
    return min(limits) if limits else None


def read_cgroup_at(loc: CgroupLocation | None) -> CgroupInfo:
    """The memory cgroup figures at a location found earlier by ``locate_cgroup``."""
    if loc is None:
        return CgroupInfo(version=None)
    if loc.version == 2:
        usage = _read_int(os.path.join(loc.path, "memory.current"))
        oom = _read_keyed(os.path.join(loc.path, "memory.events"), "oom_kill")
    else:
        usage = _read_int(os.path.join(loc.path, "memory.usage_in_bytes"))
        oom = _read_keyed(os.path.join(loc.path, "memory.oom_control"), "oom_kill")
    return CgroupInfo(version=loc.version, limit=_limit(loc), usage=usage, oom_kills=oom)


def read_cgroup(pid: int | None = None, *, root: str = "/sys/fs/cgroup", proc: str = "/proc") -> CgroupInfo:
    """Limit, usage and OOM-kill counter of the memory cgroup of ``pid`` (``None`` = this process).

    ``CgroupInfo(version=None)`` when no memory cgroup is visible (macOS, Windows, a bare chroot).
    """
    return read_cgroup_at(locate_cgroup(pid, root=root, proc=proc))


def host_oom_kills(proc: str = "/proc") -> int | None:
    """The host-wide OOM-kill counter (``oom_kill`` in ``/proc/vmstat``, Linux ≥ 4.13); None if unknown."""
    return _read_keyed(os.path.join(proc, "vmstat"), "oom_kill")


def oom_kills_since(before: CgroupInfo, after: CgroupInfo) -> int | None:
    """How many OOM kills the cgroup counted between two snapshots; None when either lacks the counter."""
    if before.oom_kills is None or after.oom_kills is None or before.version != after.version:
        return None
    return max(0, after.oom_kills - before.oom_kills)


def memory_pressure(path: str | None = None, *, proc: str = "/proc") -> dict[str, float] | None:
    """Memory pressure stall information (PSI) as ``{"some_avg10": …, "full_avg60": …, "some_total": …}``.

    ``path`` is a PSI file (a v2 cgroup's ``memory.pressure``); default: the host's ``/proc/pressure/memory``.
    ``avgN`` are percentages of time some/all tasks stalled on memory over N seconds; ``total`` is in µs.
    None when PSI is unavailable (kernels < 4.20, or disabled).
    """
    text = _read_text(path if path is not None else os.path.join(proc, "pressure", "memory"))
    if not text:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        for item in parts[1:]:
            key, _, value = item.partition("=")
            try:
                out[f"{parts[0]}_{key}"] = float(value)
            except ValueError:
                continue
    return out or None
