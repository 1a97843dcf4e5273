"""Watch a kernel's process tree while it runs: RSS, CPU, threads, children, GPU memory; per-cell figures;
a memory watchdog; stall (idle CPU) detection.

A ``Monitor`` samples ``pid`` and all its descendants from a daemon thread (default 10 Hz)::

    mon = Monitor(km.provisioner.pid, interval=0.1, memory_limit=2 << 30, t0=run_t0)
    mon.start()
    mon.set_cell(0); ...execute cell 0...; mon.set_cell(None)
    mon.cell_usage(0)        # CellUsage(peak_rss=…, rss_start=…, rss_end=…, cpu_seconds=…, …)
    mon.stop()
    mon.samples, mon.peak_rss, mon.killed_for_memory

Design notes:

* Sampling cost, on Linux: the tree is found from its own processes' ``/proc/<pid>/task/<tid>/children``
  files (a few reads per process, whatever else runs on the machine), then one read of
  ``/proc/<pid>/stat`` per process in the tree (~0.04 ms).  Without children files (other systems, or a
  kernel built without them) finding the tree takes one pass over every process (psutil's ``ppid_map``,
  what ``Process.children(recursive=True)`` uses; ~1 ms with 80 processes on the machine, and it was
  ~40 % of ``nbmedic run -j 2``'s own CPU on a batch of 1 s notebooks), spaced out so that it costs at
  most ``scan_budget`` (2 %) of a core; the known tree is still read every sample.  The watchdog's kill
  always rescans with the full pass.  The ``psutil.Process`` objects are cached between samples; a
  process that vanishes mid-sample is skipped.
* CPU is computed from ``cpu_times()`` deltas per process (never psutil's blocking ``cpu_percent``), summed
  over the tree: ``Sample.cpu`` is percent of one core over the time since the previous sample (at least
  half an interval back, so the extra samples taken at cell boundaries are not all noise).
* ``set_cell`` takes a fresh reading on the caller's thread (unless the latest one is under ``boundary_gap``
  seconds old), so even a cell shorter than the interval gets its start and end figures.
* The watchdog SIGKILLs the whole tree (the kernel is stopped first so it cannot respawn workers, then
  its descendants deepest first, then the kernel) as soon as a sample's tree RSS exceeds ``memory_limit``;
  near the limit the thread samples 4× faster.
* Times are ``time.monotonic()`` seconds; ``Sample.t`` is relative to ``t0`` (default: construction).
* ``ProcessTree`` is the reading of the tree (discovery, RSS/CPU/threads, the kill) without a thread or a
  history: ``Monitor`` and the live kernels' sampler (``nbmedic.live.sampler``) both use it.
"""

from __future__ import annotations

import bisect
import collections
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped,unused-ignore]

from nbmedic.execute.cgroup import CgroupLocation, locate_cgroup, read_cgroup_at
from nbmedic.execute.gpu import GpuProbe
from nbmedic.execute.result import CgroupInfo, Sample

__all__ = ["CellUsage", "Monitor", "ProcessTree", "TreeReading"]

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)

# On Linux one read of /proc/<pid>/stat gives a process's state, CPU times, threads and RSS; psutil opens
# stat, statm and status for the same figures (three opens, which cost ~0.2 ms each in a VM woken from idle).
_PROC_STAT = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if _PROC_STAT else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _PROC_STAT else 4096


@dataclass
class CellUsage:
    """Resource figures of one cell, from the readings taken at its start, during it and at its end."""

    index: int
    peak_rss: int = 0  # bytes, highest tree RSS seen during the cell (boundaries included)
    rss_start: int = 0
    rss_end: int = 0  # latest reading when the cell has not ended (e.g. the kernel died in it)
    cpu_seconds: float = 0.0  # CPU time of the whole tree during the cell
    gpu_peak: int | None = None
    samples: int = 0  # readings that went into these figures
    start: float | None = None  # Sample.t of the start mark; None when the cell never started
    end: float | None = None  # Sample.t of the end mark; None while running / if it never ended

    @property
    def rss_delta(self) -> int:
        return self.rss_end - self.rss_start


@dataclass
class _CellAcc:
    start: float
    rss_start: int
    cpu_start: float
    peak: int
    rss_end: int
    cpu_end: float
    gpu_peak: int | None
    n: int
    end: float | None = None


def _max_opt(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _figures(proc: psutil.Process) -> tuple[bool, float, int, int]:
    """``(zombie, CPU seconds, threads, RSS bytes)`` of one process; a psutil error when it is gone."""
    if _PROC_STAT:
        try:
            fd = os.open(f"/proc/{proc.pid}/stat", os.O_RDONLY)
            try:
                data = os.read(fd, 4096)
            finally:
                os.close(fd)
            # fields after "(comm)": state ppid ... utime(14) stime(15) ... num_threads(20) ... rss(24, pages)
            f = data[data.rindex(b")") + 2 :].split()
            return f[0] == b"Z", (int(f[11]) + int(f[12])) / _TICKS, int(f[17]), int(f[21]) * _PAGE
        except (OSError, ValueError, IndexError) as exc:
            raise psutil.NoSuchProcess(proc.pid) from exc
    with proc.oneshot():
        ct = proc.cpu_times()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True, ct.user + ct.system, 0, 0
        return False, ct.user + ct.system, int(proc.num_threads()), int(proc.memory_info().rss)


# Linux lists each thread's children in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN, on in the
# common kernels): the tree is found by reading its own processes' files instead of every process's stat.
_CHILDREN_FILES = _PROC_STAT and os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children(pid: int) -> list[int]:
    """The children of ``pid`` from its threads' ``children`` files ([] when it is gone).  A child forked
    or reaped during the read may be missed; the next reading finds it."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tasks:
        try:
            fd = os.open(f"/proc/{pid}/task/{tid}/children", os.O_RDONLY)
        except OSError:
            continue  # the thread ended
        try:
            out.extend(int(child) for child in os.read(fd, 65536).split())
        except (OSError, ValueError):
            pass
        finally:
            os.close(fd)
    return out


def _ppid_map() -> dict[int, int]:
    fast = getattr(psutil, "_ppid_map", None)  # what Process.children() uses; private, so guarded
    if fast is not None:
        try:
            return dict(fast())
        except (OSError, psutil.Error):
            pass
    out: dict[int, int] = {}
    for p in psutil.process_iter(["ppid"]):
        ppid = p.info.get("ppid")
        if isinstance(ppid, int):
            out[p.pid] = ppid
    return out


@dataclass
class TreeReading:
    """One reading of a process tree."""

    rss: int  # bytes, the root and its live descendants
    cpu_delta: float  # CPU seconds the tree used since the previous reading (a new process counts from its start)
    threads: int
    children: int  # live descendants (zombies not counted)


class ProcessTree:
    """The process tree rooted at ``pid``: read its figures, list it, kill it.

    Keeps the ``psutil.Process`` objects and the CPU counters between readings. Not thread-safe: the
    caller serialises ``read`` and ``kill``. Never reaps anything (no ``waitpid``): a zombie root reads as
    gone, and the process's parent still gets its exit status.
    """

    def __init__(self, pid: int, *, scan_budget: float = 0.02) -> None:
        self.pid = pid
        self.scan_budget = scan_budget
        self.root: psutil.Process | None
        try:
            self.root = psutil.Process(pid)
            self.root_ctime = float(self.root.create_time())
        except _GONE:
            self.root = None
            self.root_ctime = 0.0
        self.alive = self.root is not None  # False once the root is gone (exited, zombie or killed)
        self.order: list[int] = []  # descendants of the last scan, parents before children
        self.killed: list[int] = []  # pids SIGKILLed by kill(), the root last
        self._procs: dict[int, psutil.Process] = {}  # descendants, cached between readings
        self._cpu_last: dict[int, float] = {}  # pid -> user+system seconds at the previous reading
        self._next_scan = 0.0  # time.monotonic() of the next full scan for new descendants

    def pids(self) -> list[int]:
        """The root (while alive) and its descendants as of the latest reading, parents before children."""
        return ([self.pid] if self.alive else []) + list(self.order)

    def read(self) -> TreeReading | None:
        """Read the whole tree now; None (and ``alive`` False) when the root is gone or a zombie."""
        root = self.root
        if root is None or not self.alive:
            return None
        now = time.monotonic()
        try:
            zombie, cpu, threads, rss = _figures(root)
        except _GONE:
            zombie = True
        if zombie:
            self.alive = False
            self.order = []
            return None
        cpu_now: dict[int, float] = {self.pid: cpu}
        tree_rss, tree_threads, children = self._read_descendants(now, cpu_now)
        return TreeReading(
            rss=rss + tree_rss, cpu_delta=self._cpu_delta(cpu_now), threads=threads + tree_threads,
            children=children,
        )

    def _scan(self, *, full: bool = False) -> list[psutil.Process]:
        """Descendants of the root (parents before children), reusing cached Process objects.  From the
        tree's own ``children`` files where Linux has them, else (and when ``full``: a kill, which must
        not miss a child forked mid-read) from every process's parent."""
        children: Callable[[int], Iterable[int]]
        if _CHILDREN_FILES and not full:
            children = _children
        else:
            try:
                ppids = _ppid_map()
            except (OSError, psutil.Error):
                return list(self._procs.values())
            kids: dict[int, list[int]] = collections.defaultdict(list)
            for pid, ppid in ppids.items():
                kids[ppid].append(pid)
            children = lambda pid: kids.get(pid, ())
        order: list[int] = []
        seen = {self.pid}
        stack = list(children(self.pid))
        out: list[psutil.Process] = []
        while stack:
            pid = stack.pop(0)
            if pid in seen:
                continue
            seen.add(pid)
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                    if proc.create_time() < self.root_ctime - 1.0:  # pid reused by an older process
                        continue
                except _GONE:
                    continue
                self._procs[pid] = proc
            order.append(pid)
            out.append(proc)
            stack.extend(children(pid))
        for pid in [p for p in self._procs if p not in seen]:
            del self._procs[pid]
        self.order = order
        return out

    def _read_descendants(self, now: float, cpu_now: dict[int, float]) -> tuple[int, int, int]:
        """(RSS, threads, live children) of the root's descendants; their CPU seconds into ``cpu_now``."""
        if now >= self._next_scan:
            procs = self._scan()
            # without children files, discovering the tree reads /proc/<pid>/stat of every process on the
            # machine (~15 µs each): on a busy machine do it less often, so it costs at most ``scan_budget``
            # of a core (with them a scan reads only the tree's files, so it runs every reading)
            self._next_scan = now + (time.monotonic() - now) / self.scan_budget
        else:
            procs = [self._procs[pid] for pid in self.order if pid in self._procs]
        rss = threads = children = 0
        for proc in procs:
            try:
                zombie, cpu, n_threads, n_rss = _figures(proc)
            except _GONE:
                continue
            cpu_now[proc.pid] = cpu  # a zombie's last CPU still counts
            if zombie:
                continue  # exited, not yet reaped: no memory, not a live child
            rss += n_rss
            threads += n_threads
            children += 1
        return rss, threads, children

    def _cpu_delta(self, cpu_now: dict[int, float]) -> float:
        """CPU seconds the tree used since the previous reading (a new process counts from its start)."""
        delta = 0.0
        for pid, total in cpu_now.items():
            before = self._cpu_last.get(pid)
            delta += total - before if before is not None and total >= before else total
        self._cpu_last = cpu_now
        return delta

    def kill(self) -> list[int]:
        """SIGKILL the whole tree: stop the root (no new children), descendants deepest first, the root."""
        root = self.root
        killed: list[int] = []
        if root is None:
            return killed
        try:
            root.suspend()  # SIGSTOP: no new children while the tree is taken down
        except _GONE:
            pass
        for _attempt in range(3):
            procs = self._scan(full=True)
            live = [p for p in procs if p.pid not in killed]
            if not live:
                break
            for proc in reversed(live):  # deepest first
                try:
                    proc.kill()
                    killed.append(proc.pid)
                except _GONE:
                    killed.append(proc.pid)
        try:
            root.kill()
            killed.append(root.pid)
        except _GONE:
            pass
        self.alive = False
        self.order = []
        self.killed.extend(killed)
        return killed


class Monitor:
    """Samples the process tree rooted at ``pid`` from a background thread."""

    def __init__(
        self,
        pid: int,
        *,
        interval: float = 0.1,
        memory_limit: int | None = None,
        t0: float | None = None,
        gpu: bool | GpuProbe = True,
        idle_window: float | None = None,
        boundary_gap: float = 0.0,
        scan_budget: float = 0.02,
        cgroup_root: str = "/sys/fs/cgroup",
        proc: str = "/proc",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.pid = pid
        self.interval = interval
        self.memory_limit = memory_limit
        self.t0 = time.monotonic() if t0 is None else t0
        # idle_for() judges CPU over a sliding window this long, so one stray clock tick (10 ms of CPU
        # is 10 % of a 100 ms sample) does not reset a stall.
        self.idle_window = max(1.0, 2 * interval) if idle_window is None else idle_window
        self.boundary_gap = boundary_gap
        self.scan_budget = scan_budget

        self.samples: list[Sample] = []
        self.peak_rss = 0
        self.killed_for_memory: Sample | None = None
        self.error: str | None = None  # an unexpected exception in the sampler thread, as text

        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopped = False
        self._init_sampling()
        self._tree = ProcessTree(pid, scan_budget=scan_budget)
        self._own_gpu = gpu is True
        self._gpu: GpuProbe | None = gpu if isinstance(gpu, GpuProbe) else (GpuProbe() if gpu else None)
        self._cgroup_before: CgroupInfo | None = None
        self._attach(cgroup_root, proc)

    def _init_sampling(self) -> None:
        """The state carried from one reading to the next."""
        self._cpu_cum = 0.0  # CPU seconds of the tree since the priming reading
        self._cum: list[float] = []  # self._cpu_cum at each sample (parallel to self.samples)
        self._window: collections.deque[tuple[float, float]] = collections.deque(maxlen=8)
        self._prime: tuple[float, float] | None = None  # (t, cum) of the priming reading
        self._cell: int | None = None
        self._cells: dict[int, _CellAcc] = {}

    def _attach(self, cgroup_root: str, proc: str) -> None:
        """The kernel's memory cgroup."""
        # found now, while /proc/<pid>/cgroup exists, so cgroup_now() still works after a death; a kernel
        # already gone is our child, normally in our own cgroup
        self._cg_loc: CgroupLocation | None = locate_cgroup(
            self.pid if self._alive else None, root=cgroup_root, proc=proc
        )

    # ----------------------------------------------------------------------------------------- control
    def start(self) -> None:
        """Snapshot the cgroup, take a priming reading and start the sampler thread (once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._cgroup_before = read_cgroup_at(self._cg_loc)
            self._read(prime=True)
        self._thread = threading.Thread(target=self._run, name=f"nbmedic-monitor-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (idempotent), then take one last sample if the tree is still alive."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 10 * self.interval))
        with self._lock:
            if self._started and self._alive and self.killed_for_memory is None:
                sample = self._read()
                if sample is not None:
                    self._account(sample)
        if self._own_gpu and self._gpu is not None:
            self._gpu.close()

    def __enter__(self) -> Monitor:  # noqa: PYI034 - typing.Self needs Python 3.11
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _alive(self) -> bool:
        return self._tree.alive

    @property
    def killed_pids(self) -> list[int]:
        """The pids the watchdog or ``kill_tree`` SIGKILLed, the kernel last."""
        return self._tree.killed

    @property
    def alive(self) -> bool:
        """False once the kernel process is gone (exited, zombie or killed by the watchdog)."""
        return self._alive

    @property
    def running(self) -> bool:
        """True while the sampler thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def set_cell(self, index: int | None) -> None:
        """Mark the cell now executing (``None`` between cells): ends the previous cell, starts ``index``."""
        with self._lock:
            if index == self._cell:
                return
            old = self._cell
            fresh: Sample | None = None
            if self._started and self._alive and self.killed_for_memory is None:
                now_t = time.monotonic() - self.t0
                if not self.samples or now_t - self.samples[-1].t >= self.boundary_gap:
                    fresh = self._read(cell=old if old is not None else index)
            reading: Sample | None
            if fresh is not None:
                reading, cum, t = fresh, self._cum[-1], fresh.t
            elif self.samples:  # the latest reading is recent enough (or the kernel is gone)
                reading, cum, t = self.samples[-1], self._cum[-1], time.monotonic() - self.t0
            else:
                reading, cum, t = None, self._cpu_cum, time.monotonic() - self.t0
            acc = self._cells.get(old) if old is not None else None
            if acc is not None and acc.end is None:
                if fresh is not None:
                    self._fold(acc, fresh, cum)
                elif reading is not None and reading.t >= acc.start:
                    acc.rss_end = reading.rss
                    acc.cpu_end = max(acc.cpu_end, cum)
                acc.end = t
            self._cell = index
            if index is not None:
                rss = reading.rss if reading is not None else 0
                self._cells[index] = _CellAcc(
                    start=t, rss_start=rss, cpu_start=cum, peak=rss, rss_end=rss, cpu_end=cum,
                    gpu_peak=reading.gpu if reading is not None else None, n=1 if reading is not None else 0,
                )

    def cell_usage(self, index: int) -> CellUsage:
        """Figures of cell ``index`` (zeros when it never started; up to now when it has not ended)."""
        with self._lock:
            acc = self._cells.get(index)
            if acc is None:
                return CellUsage(index=index)
            return CellUsage(
                index=index,
                peak_rss=acc.peak,
                rss_start=acc.rss_start,
                rss_end=acc.rss_end,
                cpu_seconds=max(0.0, acc.cpu_end - acc.cpu_start),
                gpu_peak=acc.gpu_peak,
                samples=acc.n,
                start=acc.start,
                end=acc.end,
            )

    # ----------------------------------------------------------------------------------------- queries
    def recent(self, seconds: float) -> list[Sample]:
        """The samples of the last ``seconds`` before the latest one (e.g. the RSS trend before a death)."""
        with self._lock:
            if not self.samples:
                return []
            cut = self.samples[-1].t - seconds
            i = bisect.bisect_left(self.samples, cut, key=lambda s: s.t)
            return self.samples[i:]

    def idle_for(self, cpu_threshold: float = 2.0) -> float:
        """Seconds the tree has continuously used less than ``cpu_threshold`` % of a core, up to the latest
        sample. CPU is judged over a sliding ``idle_window`` (≥ 1 s) so a lone clock tick does not count as
        activity; the price is that idleness starts being counted up to one window after work stops.
        """
        with self._lock:
            n = len(self.samples)
            if n == 0 or self._prime is None:
                return 0.0
            last_t = self.samples[-1].t
            window = self.idle_window
            k = n - 1
            for i in range(n - 1, -1, -1):
                t_i, cum_i = self.samples[i].t, self._cum[i]
                if k >= i:
                    k = i - 1
                while k >= 0 and self.samples[k].t > t_i - window:
                    k -= 1
                t_k, cum_k = (self.samples[k].t, self._cum[k]) if k >= 0 else self._prime
                dt = t_i - t_k
                if dt > 0 and (cum_i - cum_k) / dt * 100.0 >= cpu_threshold:
                    return last_t - t_i
            return max(0.0, last_t - self._prime[0])

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    @property
    def cpu_seconds(self) -> float:
        """CPU time used by the tree since ``start()``."""
        return self._cpu_cum

    def tree_pids(self) -> list[int]:
        """The kernel's pid and its descendants as of the latest reading (parents before children)."""
        with self._lock:
            return self._tree.pids()

    def cgroup_before(self) -> CgroupInfo:
        """The kernel's memory cgroup as it was at ``start()``."""
        with self._lock:
            if self._cgroup_before is None:
                self._cgroup_before = read_cgroup_at(self._cg_loc)
            return self._cgroup_before

    def cgroup_now(self) -> CgroupInfo:
        """The same cgroup read now (works after the kernel died: the location was found at construction)."""
        return read_cgroup_at(self._cg_loc)

    def gpu_devices(self) -> list[dict[str, object]] | None:
        return self._gpu.devices() if self._gpu is not None else None

    def kill_tree(self) -> list[int]:
        """SIGKILL the kernel's whole tree now (stop the kernel, descendants deepest first, the kernel)."""
        with self._lock:
            return self._tree.kill()

    # ----------------------------------------------------------------------------------------- internals
    def _run(self) -> None:
        try:
            while not self._stop_event.is_set():
                began = time.monotonic()
                with self._lock:
                    if not self._alive or self.killed_for_memory is not None:
                        break
                    sample = self._read()
                    if sample is not None:
                        self._account(sample)
                    if not self._alive or self.killed_for_memory is not None:
                        break
                wait = self.interval
                if self.memory_limit is not None and sample is not None and sample.rss > 0.8 * self.memory_limit:
                    wait = self.interval / 4
                self._stop_event.wait(max(0.0, wait - (time.monotonic() - began)))
        except Exception as exc:  # noqa: BLE001 - never let the sampler thread die loudly
            self.error = f"{type(exc).__name__}: {exc}"

    def _read(self, *, prime: bool = False, cell: int | None = None) -> Sample | None:
        """One reading of the tree (lock held). Appends and returns a Sample; None when the kernel is gone.

        With ``prime`` the reading only sets the CPU baseline (nothing is appended).
        """
        t = time.monotonic() - self.t0
        reading = self._tree.read()
        if reading is None:
            return None
        if prime:
            self._prime = (t, 0.0)
            self._window.append((t, 0.0))
            return None
        self._cpu_cum += reading.cpu_delta
        gpu = self._gpu.used_by(set(self._tree.pids())) if self._gpu is not None else None
        sample = Sample(
            t=t, rss=reading.rss, cpu=round(self._cpu_percent(t), 2), threads=reading.threads,
            children=reading.children, gpu=gpu, cell=self._cell if cell is None else cell,
        )
        self.samples.append(sample)
        self._cum.append(self._cpu_cum)
        self.peak_rss = max(self.peak_rss, sample.rss)
        if self.memory_limit is not None and sample.rss > self.memory_limit and self.killed_for_memory is None:
            self.killed_for_memory = sample
            self._tree.kill()
        return sample

    def _cpu_percent(self, t: float) -> float:
        """Percent of one core since a reading at least half an interval back; the reading joins the window."""
        ref_t, ref_cum = self._window[0] if self._window else (t, self._cpu_cum)
        for wt, wcum in reversed(self._window):
            if t - wt >= self.interval / 2:
                ref_t, ref_cum = wt, wcum
                break
        cpu = (self._cpu_cum - ref_cum) / (t - ref_t) * 100.0 if t > ref_t else 0.0
        self._window.append((t, self._cpu_cum))
        return cpu

    def _fold(self, acc: _CellAcc, sample: Sample, cum: float) -> None:
        acc.peak = max(acc.peak, sample.rss)
        acc.rss_end = sample.rss
        acc.cpu_end = cum
        acc.gpu_peak = _max_opt(acc.gpu_peak, sample.gpu)
        acc.n += 1

    def _account(self, sample: Sample) -> None:
        """Fold a sample taken by the thread (or by stop) into the running cell."""
        if self._cell is not None:
            acc = self._cells.get(self._cell)
            if acc is not None and acc.end is None:
                self._fold(acc, sample, self._cum[-1])
