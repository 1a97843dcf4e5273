"""The Jupyter kernels of this user running on this machine, monitored or not (``nbmedic ps``, ``stack``).

Two sources, one pass over the process table:

* **monitored** kernels: ``<runtime>/nbmedic/kernels/*/session.json`` (the supervisor's SessionRecord)
  whose ``pid`` is alive and was not started later than the record says (a reused pid is rejected), with
  the agent's ``cell.json`` telling the running cell;
* **unmonitored** kernels: the connection files ``kernel-*.json`` of the runtime folder, matched to the
  processes whose command line names them, and any ``ipykernel`` process started with ``-f FILE``
  elsewhere (VS Code keeps its connection files in other folders).  Their notebook comes from
  ``JPY_SESSION_NAME`` in the process's environment when it can be read.

Memory is the RSS of the kernel's whole process tree, compared with the session's memory limit, else the
kernel's cgroup limit, else the machine's RAM; CPU is measured over one short interval for all kernels at
once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from nbmedic.execute.cgroup import read_cgroup
from nbmedic.live.paths import CELL, SESSION, connection_file_of, kernel_id_of, kernels_dir, read_json

__all__ = ["LiveKernel", "RunningCell", "catches_signal", "cell_label", "format_duration", "kernel_id_of",
           "monitored_sessions", "running_kernels", "same_path", "source_line"]

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)
_CREATE_SLACK = 1.0  # a kernel's process may be created up to this long after its session's "started"


@dataclass(frozen=True)
class RunningCell:
    """The cell a monitored kernel is executing now."""

    execution_count: int | None
    cell_id: str | None
    source_head: str
    started: float  # epoch
    seconds: float  # how long it has been running

    def to_dict(self) -> dict[str, Any]:
        return {"execution_count": self.execution_count, "cell_id": self.cell_id, "source_head": self.source_head,
                "started": self.started, "seconds": self.seconds}


@dataclass
class LiveKernel:
    """One running kernel: what its records say and what its process tree uses now."""

    kernel_id: str
    pid: int
    monitored: bool
    supervisor: str | None = None
    kernelspec: str | None = None
    language: str | None = None
    notebook: str | None = None
    state: str = "unknown"  # busy | idle | unknown (unmonitored: nobody records the running cell)
    rss: int = 0  # bytes, the whole process tree
    limit: int | None = None  # bytes
    limit_source: str | None = None  # the session's limit source, "cgroup" or "machine"
    cpu_percent: float = 0.0  # of one core, the whole tree
    started: float = 0.0  # the kernel process's creation (epoch)
    uptime: float = 0.0  # seconds
    cell: RunningCell | None = None
    connection_file: str | None = None
    faulthandler: str | None = None  # monitored Python kernels: faulthandler dumps every thread here on SIGUSR1
    processes: int = 1  # in the tree
    pids: list[int] = field(default_factory=list)  # the tree (kernel first)

    @property
    def share(self) -> float | None:
        """RSS as a share of the limit (0-1), None when no limit is known."""
        return self.rss / self.limit if self.limit else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id, "pid": self.pid, "monitored": self.monitored, "supervisor": self.supervisor,
            "kernelspec": self.kernelspec, "language": self.language, "notebook": self.notebook,
            "state": self.state, "rss": self.rss, "limit": self.limit, "limit_source": self.limit_source,
            "share": self.share, "cpu_percent": round(self.cpu_percent, 1), "started": self.started,
            "uptime": self.uptime, "processes": self.processes,
            "cell": self.cell.to_dict() if self.cell else None, "connection_file": self.connection_file,
        }


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    cmdline: tuple[str, ...]
    create_time: float


def _scan() -> dict[int, _Proc]:
    """This user's live processes (zombies left out), in one pass over the process table."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    user = None if uid is not None else psutil.Process().username()
    attrs = ["pid", "ppid", "cmdline", "create_time", "status", "uids" if uid is not None else "username"]
    out: dict[int, _Proc] = {}
    for proc in psutil.process_iter(attrs):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if uid is not None:
            uids = info.get("uids")
            if uids is None or uids.real != uid:
                continue
        elif info.get("username") != user:
            continue
        out[proc.pid] = _Proc(proc.pid, int(info.get("ppid") or 0), tuple(info.get("cmdline") or ()),
                              float(info.get("create_time") or 0.0))
    return out


def same_path(a: str | None, b: str | None) -> bool:
    """Do two paths name the same file (as absolute, normalised paths, or once links are resolved)?"""
    if not a or not b:
        return False
    na, nb = os.path.normpath(os.path.abspath(a)), os.path.normpath(os.path.abspath(b))
    return na == nb or os.path.realpath(na) == os.path.realpath(nb)


def catches_signal(pid: int, sig: int = signal.SIGUSR1) -> bool | None:
    """Has ``pid`` a handler for ``sig`` (``SigCgt`` of ``/proc/<pid>/status``)?  None when unknown.

    Sending SIGUSR1 to a process without a handler kills it: ``stack`` asks first."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (int(sig) - 1) & 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- monitored kernels ----------------------------------------------------------------------------------


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _running_cell(cell: Mapping[str, Any] | None, pid: int, started: float | None, now: float) -> RunningCell | None:
    """The cell ``cell.json`` says is running in this kernel process (not a stale record of a previous one)."""
    if not cell or cell.get("running") is not True:
        return None
    if isinstance(cell.get("pid"), int) and cell["pid"] != pid:
        return None
    began = _number(cell.get("started"))
    if began is None or (started is not None and began < started - _CREATE_SLACK):
        return None
    count = cell.get("execution_count")
    ident = cell.get("cell_id")
    return RunningCell(count if isinstance(count, int) else None, ident if isinstance(ident, str) else None,
                       str(cell.get("source_head") or ""), began, max(0.0, now - began))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _monitored_kernel(folder: str, procs: Mapping[int, _Proc], now: float) -> tuple[LiveKernel, dict[str, Any]] | None:
    session = read_json(os.path.join(folder, SESSION))
    if session is None:
        return None
    pid = session.get("pid")
    if not isinstance(pid, int) or pid not in procs:
        return None
    started = _number(session.get("started"))
    if started is not None and procs[pid].create_time > started + _CREATE_SLACK:
        return None  # the pid was reused by another process after the kernel ended
    cell = read_json(os.path.join(folder, CELL))
    running = _running_cell(cell, pid, started, now)
    python = session.get("python") is not False
    state = "busy" if running else ("idle" if cell is not None or python else "unknown")
    notebook = _text(session.get("notebook")) or _text((cell or {}).get("notebook"))
    kernel = LiveKernel(
        kernel_id=str(session.get("kernel_id") or os.path.basename(folder)), pid=pid, monitored=True,
        supervisor=_text(session.get("supervisor")), kernelspec=_text(session.get("kernelspec")),
        language=_text(session.get("language")), notebook=notebook, state=state, cell=running,
        faulthandler=_text(session.get("faulthandler")) if python else None)
    return kernel, session


def _monitored(procs: Mapping[int, _Proc], now: float) -> list[tuple[LiveKernel, dict[str, Any]]]:
    root = kernels_dir()
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for name in names:
        found = _monitored_kernel(os.path.join(root, name), procs, now)
        if found is not None:
            out.append(found)
    return out


# --- unmonitored kernels --------------------------------------------------------------------------------


def _is_ipykernel(cmdline: tuple[str, ...]) -> bool:
    return any(os.path.basename(arg).startswith("ipykernel") for arg in cmdline[:4])


def _runtime_connection_files() -> set[str]:
    from jupyter_core.paths import jupyter_runtime_dir

    folder = str(jupyter_runtime_dir())
    try:
        names = os.listdir(folder)
    except OSError:
        return set()
    return {os.path.join(folder, n) for n in names if n.startswith("kernel-") and n.endswith(".json")}


def _references(proc: _Proc, files: set[str]) -> str | None:
    """The connection file ``proc`` runs with: one of the runtime folder's, or an ipykernel's ``-f FILE``."""
    for arg in proc.cmdline:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if value in files:
            return value
    if _is_ipykernel(proc.cmdline):
        return connection_file_of(proc.cmdline)
    return None


def _pick(group: list[_Proc], path: str) -> _Proc:
    """Of the processes naming one connection file, the kernel: started with ``-f FILE`` (not a client
    such as ``jupyter console --existing``), the topmost of them (a launcher script above its kernel)."""
    pids = {p.pid for p in group}
    return min(group, key=lambda p: (connection_file_of(p.cmdline) != path, p.ppid in pids, p.create_time, p.pid))


def _session_name(pid: int) -> str | None:
    try:
        return _text(psutil.Process(pid).environ().get("JPY_SESSION_NAME"))
    except (*_GONE, OSError):
        return None


def _unmonitored(procs: Mapping[int, _Proc], claimed_pids: set[int], claimed_ids: set[str]) -> list[LiveKernel]:
    files = _runtime_connection_files()
    groups: dict[str, list[_Proc]] = {}
    me = os.getpid()
    for proc in procs.values():
        if proc.pid == me:
            continue
        path = _references(proc, files)
        if path:
            groups.setdefault(path, []).append(proc)
    out = []
    for path, group in groups.items():
        if any(p.pid in claimed_pids for p in group) or kernel_id_of(path) in claimed_ids:
            continue
        kernel = _pick(group, path)
        out.append(LiveKernel(kernel_id=kernel_id_of(path), pid=kernel.pid, monitored=False,
                              notebook=_session_name(kernel.pid), connection_file=path))
    return out


# --- measurements ---------------------------------------------------------------------------------------


def _trees(kernels: Iterable[LiveKernel], procs: Mapping[int, _Proc]) -> None:
    """Each kernel's process tree (its descendants among this user's processes)."""
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    for kernel in kernels:
        tree, todo = [kernel.pid], list(children.get(kernel.pid, ()))
        while todo:
            pid = todo.pop()
            if pid not in tree:
                tree.append(pid)
                todo.extend(children.get(pid, ()))
        kernel.pids = tree
        kernel.processes = len(tree)


def _cpu_seconds(handles: Mapping[int, Any]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid, proc in handles.items():
        try:
            times = proc.cpu_times()
        except _GONE:
            continue
        out[pid] = float(times.user + times.system)
    return out


def _measure(kernels: list[LiveKernel], cpu_interval: float) -> None:
    """RSS of every tree now, and CPU over ``cpu_interval`` seconds (one wait for all kernels)."""
    handles: dict[int, Any] = {}
    for kernel in kernels:
        for pid in kernel.pids:
            try:
                handles[pid] = psutil.Process(pid)
            except _GONE:
                continue
    before, t0 = _cpu_seconds(handles), time.monotonic()
    rss: dict[int, int] = {}
    for pid, proc in handles.items():
        try:
            rss[pid] = int(proc.memory_info().rss)
        except _GONE:
            continue
    for kernel in kernels:
        kernel.rss = sum(rss.get(pid, 0) for pid in kernel.pids)
    if cpu_interval <= 0 or not handles:
        return
    time.sleep(cpu_interval)
    after, wall = _cpu_seconds(handles), time.monotonic() - t0
    for kernel in kernels:
        used = sum(after[p] - before[p] for p in kernel.pids if p in before and p in after)
        kernel.cpu_percent = max(0.0, 100.0 * used / wall) if wall > 0 else 0.0


def _limit(kernel: LiveKernel, session: Mapping[str, Any] | None, machine: int) -> None:
    value = (session or {}).get("memory_limit")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        kernel.limit, kernel.limit_source = value, _text((session or {}).get("limit_source")) or "session"
        return
    cgroup = read_cgroup(kernel.pid)
    if cgroup.limit:
        kernel.limit, kernel.limit_source = cgroup.limit, "cgroup"
        return
    kernel.limit, kernel.limit_source = machine, "machine"


def monitored_sessions() -> list[dict[str, Any]]:
    """The session records of the monitored kernels running now (a reused pid is not one), oldest first,
    each with its ``uptime`` in seconds."""
    now = time.time()
    found = [{**session, "uptime": max(0.0, now - float(session.get("started") or now))}
             for _, session in _monitored(_scan(), now)]
    return sorted(found, key=lambda r: (float(r.get("started") or 0), str(r.get("kernel_id"))))


def running_kernels(*, cpu_interval: float = 0.2) -> list[LiveKernel]:
    """Every Jupyter kernel of this user on this machine, monitored ones first, oldest first within each."""
    now = time.time()
    procs = _scan()
    monitored = _monitored(procs, now)
    claimed_pids = {k.pid for k, _ in monitored}
    claimed_pids |= {s["supervisor_pid"] for k, s in monitored
                     if k.supervisor == "wrapper" and isinstance(s.get("supervisor_pid"), int)}
    unmonitored = _unmonitored(procs, claimed_pids, {k.kernel_id for k, _ in monitored})
    sessions: dict[int, dict[str, Any]] = {k.pid: s for k, s in monitored}
    kernels = [k for k, _ in monitored] + unmonitored
    machine = int(psutil.virtual_memory().total)
    for kernel in kernels:
        kernel.started = procs[kernel.pid].create_time
        kernel.uptime = max(0.0, now - kernel.started)
        _limit(kernel, sessions.get(kernel.pid), machine)
    _trees(kernels, procs)
    _measure(kernels, cpu_interval)
    kernels.sort(key=lambda k: (not k.monitored, k.started, k.kernel_id))
    return kernels


# --- words ----------------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``4.2 s``, ``12 min 03 s``, ``2 h 05 min``, ``3 d 04 h``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def source_line(source_head: str, width: int = 40) -> str:
    """The first non-blank line of a cell's source, cut to ``width`` characters."""
    lines = [line.strip() for line in source_head.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > width or len(lines) > 1:
        text = text[: width - 3].rstrip() + "..." if len(text) > width - 3 else text + " ..."
    return text


def cell_label(execution_count: int | None, source_head: str, width: int = 40) -> str:
    """``[7] df = pd.read_csv(...)``."""
    count = f"[{execution_count}]" if execution_count is not None else "[ ]"
    head = source_line(source_head, width)
    return f"{count} {head}" if head else count
