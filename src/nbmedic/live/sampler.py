"""The live sampler: one daemon thread per monitored kernel, for the kernel's whole life (hours, days).

It samples the kernel's process tree (RSS, CPU, threads, children; GPU memory through NVML when present)
into a ring buffer of the last ``window`` seconds, reads the kernel's memory cgroup about once a second,
and guards memory when a limit is known::

    s = LiveSampler(popen.pid, memory_limit=2 << 30, busy=cell_running, interrupt=send_sigint,
                    on_guard=write_guard_record, on_exit=record_death)
    s.start()
    ...
    s.timeline(), s.recent(5.0), s.peak_rss, s.last, s.interrupts, s.killed_for_memory, s.cgroup_now()
    s.stop()

Design notes:

* **Adaptive rate.** ``idle_interval`` (1 s) while nothing happens; ``busy_interval`` (0.1 s) while a cell
  runs (``busy()``), the tree uses over ~20 % of a core, or its RSS grows by more than 4 MiB/s;
  ``near_interval`` (0.02 s) while that activity goes on with RSS above 75 % of the limit (a quiet kernel
  parked up there is sampled at the busy rate, so a new allocation is seen within 0.1 s without paying
  50 readings a second for days).  A reading is one ``/proc/<pid>/stat`` read per process of the tree
  (~0.04 ms warm; ~0.3 ms in a VM woken from idle); discovering new descendants scans every process on
  the machine, spaced so it costs at most 0.5 % of a core.
* **Ring buffer.** Parallel typed ``array`` columns, 36 bytes a sample (a ``Sample`` object costs ~10x):
  sized for ``window`` seconds at the fastest rate, capped at 900 KiB, and trimmed to ``window`` seconds
  by time, so a kernel costs at most 1 MiB whatever its rate and lifetime.
* **The guard** (``guard`` and a known limit: the smaller of ``memory_limit`` and the kernel's cgroup
  limit).  At ``interrupt_at`` x limit it calls ``interrupt()`` (default: SIGINT to the kernel) once per
  episode: an episode ends when RSS falls below the threshold, or when a new busy period starts *and*
  the tree grows by another 1 % of the limit in it (a cell that merely runs while memory sits above the
  threshold is left alone; one that allocates more is interrupted).  No interrupt is sent while ``busy()``
  says no cell runs: an idle kernel has nothing to interrupt.  At ``kill_at`` x limit it SIGKILLs the whole
  tree (the root stopped first so it cannot spawn more, descendants deepest first, then the root) and sets
  ``killed_for_memory``.  At 100 MiB/s the gap between the two thresholds (7 % of the limit) is crossed
  in 0.14 s per GiB of limit, while the guard samples every 0.02 s up there.
* **Exit.** On Linux the thread sleeps in ``poll()`` on a pidfd of the kernel, so it wakes the moment the
  kernel exits and calls ``on_exit`` once (after the guard's kill: once the kernel is really dead).  It never reaps the process (no ``waitpid``): the owner's
  ``Popen`` still gets the exit status.  Elsewhere a vanished or zombie root is found at the next reading.
* **Never raises** out of its thread: an unexpected exception, or one from a callback, is kept as text in
  ``error`` and sampling goes on.  Callbacks run on the sampler thread, without its lock held.
* ``Sample.t`` is epoch seconds (``time.time()``); intervals and CPU rates use ``time.monotonic()``.
"""

from __future__ import annotations

import array
import collections
import contextlib
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import psutil  # type: ignore[import-untyped,unused-ignore]

from nbmedic.execute.cgroup import host_oom_kills, locate_cgroup, read_cgroup_at
from nbmedic.execute.gpu import GpuProbe
from nbmedic.execute.monitor import ProcessTree
from nbmedic.execute.result import CgroupInfo, Sample

__all__ = ["CONFIGURED_LIMIT", "RING_MAX_BYTES", "GuardEvent", "LiveSampler", "SampleRing", "effective_limit"]

CONFIGURED_LIMIT = "the configured memory limit"
RING_MAX_BYTES = 900 << 10  # the columns of one ring buffer at full capacity (array over-allocation aside)

_MIB = 1 << 20
_BUSY_CPU = 20.0  # percent of one core above which the tree counts as busy
_GROWTH = 4 * _MIB  # bytes per second of RSS growth that count as activity
_NEAR = 0.75  # share of the limit above which active sampling goes to near_interval
_REGROW = 0.01  # share of the limit a new busy period must add above the threshold to be interrupted
_CPU_SPAN = 0.5  # seconds the CPU percentage is measured over (one 10 ms clock tick is 10 % of 0.1 s)
_CGROUP_EVERY = 1.0  # seconds between readings of the cgroup (usage, limit)
_GPU_EVERY = 1.0  # seconds between NVML queries (they take milliseconds on some drivers)
_SCAN_BUDGET = 0.005  # share of a core the discovery of new descendants may cost


@dataclass
class GuardEvent:
    """What the memory guard did, with the figures that made it act."""

    action: Literal["interrupt", "kill"]
    time: float  # epoch seconds (the sample's)
    rss: int  # bytes, whole process tree
    limit: int
    limit_source: str  # "the configured memory limit" or "the cgroup v2 memory limit" (v1 likewise)
    share: float  # rss / limit


def effective_limit(memory_limit: int | None, cgroup: CgroupInfo) -> tuple[int | None, str | None]:
    """The smaller of the configured limit and the cgroup's, and the words naming it."""
    options: list[tuple[int, str]] = []
    if memory_limit is not None and memory_limit > 0:
        options.append((memory_limit, CONFIGURED_LIMIT))
    if cgroup.limit is not None and cgroup.limit > 0:
        options.append((cgroup.limit, f"the cgroup v{cgroup.version} memory limit"))
    if not options:
        return None, None
    return min(options, key=lambda o: o[0])


class SampleRing:
    """The latest samples, at most ``capacity`` and at most ``window`` seconds, in parallel typed columns."""

    BYTES_PER_SAMPLE = 8 + 8 + 4 + 4 + 4 + 8  # t, rss, cpu (float32), threads, children, gpu (-1: None)

    def __init__(self, capacity: int, window: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.window = window
        self._t = array.array("d")
        self._rss = array.array("q")
        self._cpu = array.array("f")
        self._threads = array.array("i")
        self._children = array.array("i")
        self._gpu = array.array("q")
        self._start = 0  # index of the oldest sample
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns' items now."""
        return len(self._t) * self.BYTES_PER_SAMPLE

    def append(self, s: Sample) -> None:
        if self._count == self.capacity:  # full: drop the oldest
            self._start = (self._start + 1) % self.capacity
            self._count -= 1
        row = (s.t, s.rss, s.cpu, s.threads, s.children, -1 if s.gpu is None else s.gpu)
        cols = (self._t, self._rss, self._cpu, self._threads, self._children, self._gpu)
        i = (self._start + self._count) % self.capacity
        if i == len(self._t):  # still growing towards capacity
            for col, value in zip(cols, row):
                col.append(value)  # type: ignore[attr-defined]
        else:
            for col, value in zip(cols, row):
                col[i] = value  # type: ignore[index]
        self._count += 1
        cut = s.t - self.window
        while self._count > 1 and self._t[self._start] < cut:
            self._start = (self._start + 1) % self.capacity
            self._count -= 1

    def _at(self, k: int) -> Sample:
        i = (self._start + k) % self.capacity
        gpu = self._gpu[i]
        return Sample(t=self._t[i], rss=self._rss[i], cpu=round(self._cpu[i], 2), threads=self._threads[i],
                      children=self._children[i], gpu=None if gpu < 0 else gpu)

    def samples(self) -> list[Sample]:
        """Every sample, oldest first."""
        return [self._at(k) for k in range(self._count)]

    def since(self, cut: float) -> list[Sample]:
        """The newest samples whose ``t`` is at least ``cut``, oldest first."""
        k = self._count
        while k > 0 and self._t[(self._start + k - 1) % self.capacity] >= cut:
            k -= 1
        return [self._at(j) for j in range(k, self._count)]


def _capacity(window: float, fastest: float) -> int:
    return max(2, min(RING_MAX_BYTES // SampleRing.BYTES_PER_SAMPLE, math.ceil(window / fastest) + 1))


class LiveSampler:
    """Samples and guards the process tree rooted at ``pid`` from one daemon thread."""

    def __init__(
        self,
        pid: int,
        *,
        memory_limit: int | None = None,
        guard: bool = True,
        interrupt_at: float = 0.90,
        kill_at: float = 0.97,
        busy: Callable[[], bool] | None = None,
        interrupt: Callable[[], None] | None = None,
        on_guard: Callable[[GuardEvent], None] | None = None,
        on_exit: Callable[[], None] | None = None,
        window: float = 300.0,
        idle_interval: float = 1.0,
        busy_interval: float = 0.1,
        near_interval: float = 0.02,
        gpu: bool = True,
        cgroup_root: str = "/sys/fs/cgroup",
        proc: str = "/proc",
    ) -> None:
        if min(idle_interval, busy_interval, near_interval, window) <= 0:
            raise ValueError("intervals and window must be positive")
        if not 0 < interrupt_at <= kill_at:
            raise ValueError("thresholds must satisfy 0 < interrupt_at <= kill_at")
        self.pid = pid
        self.memory_limit = memory_limit
        self.guard = guard
        self.interrupt_at, self.kill_at = interrupt_at, kill_at
        self.window = window
        self.idle_interval, self.busy_interval, self.near_interval = idle_interval, busy_interval, near_interval
        self._busy_fn, self._interrupt_fn, self._on_guard, self._on_exit = busy, interrupt, on_guard, on_exit

        self._tree = ProcessTree(pid, scan_budget=_SCAN_BUDGET)
        # found now, while /proc/<pid>/cgroup exists, so cgroup_now() still works after a death
        self._cg_loc = locate_cgroup(pid if self._tree.alive else None, root=cgroup_root, proc=proc)
        self.cgroup_before: CgroupInfo = read_cgroup_at(self._cg_loc)
        self.cgroup_latest: CgroupInfo = self.cgroup_before  # refreshed about once a second
        self.host_oom_before: int | None = host_oom_kills(proc)
        self.limit: int | None
        self.limit_source: str | None
        self.limit, self.limit_source = effective_limit(memory_limit, self.cgroup_before)
        self._cgroup_limit = self.cgroup_before.limit
        self._ring = SampleRing(_capacity(window, min(idle_interval, busy_interval, near_interval)), window)
        self._gpu: GpuProbe | None = GpuProbe() if gpu else None
        self._init_state()

    def _init_state(self) -> None:
        """The figures, the thread's control, and the state carried from one reading to the next."""
        self.peak_rss = 0
        self.last: Sample | None = None
        self.count = 0  # samples taken since start()
        self.killed_for_memory: Sample | None = None
        self.interrupts: list[GuardEvent] = []
        self.kill_event: GuardEvent | None = None
        self.error: str | None = None  # the latest unexpected exception in the thread or a callback, as text
        self._lock = threading.Lock()  # the tree, the ring and the figures
        self._fd_lock = threading.Lock()  # the pidfd and the wake-up pipe
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = self._stopped = False
        self._pidfd: int | None = None
        self._wake: tuple[int, int] | None = None
        # rate and guard state (sampler thread only)
        self._cpu_cum = 0.0
        self._cpu_hist: collections.deque[tuple[float, float]] = collections.deque(maxlen=64)
        self._prev: tuple[float, int] | None = None  # (monotonic, rss) of the previous sample
        self._next_cgroup = self._next_gpu = 0.0
        self._gpu_last: int | None = None
        self._was_busy = False
        self._armed = True
        self._base: int | None = None  # RSS at the start of a busy period that began above the threshold

    # ----------------------------------------------------------------------------------------- control
    def start(self) -> None:
        """Start the sampler thread (once; a no-op after ``stop``)."""
        with self._fd_lock:
            if self._started or self._stopped:
                return
            self._started = True
            self._open_fds()
        self._thread = threading.Thread(target=self._run, name=f"nbmedic-sampler-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and join it (idempotent; from a callback on the thread itself it does not join)."""
        with self._fd_lock:
            if self._stopped:
                return
            self._stopped = True
            self._stop_event.set()
            if self._wake is not None:
                with contextlib.suppress(OSError):
                    os.write(self._wake[1], b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """False once the kernel process is gone (exited, zombie, or killed by the guard)."""
        return self._tree.alive

    # ----------------------------------------------------------------------------------------- queries
    def timeline(self) -> list[Sample]:
        """The ring buffer, oldest first (``Sample.t`` in epoch seconds)."""
        with self._lock:
            return self._ring.samples()

    def recent(self, seconds: float) -> list[Sample]:
        """The samples of the last ``seconds`` before the latest one."""
        with self._lock:
            if self.last is None:
                return []
            return self._ring.since(self.last.t - seconds)

    @property
    def buffer_bytes(self) -> int:
        """Bytes the ring buffer's columns hold now (at most ``capacity`` x 36)."""
        return self._ring.nbytes

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    def cgroup_now(self) -> CgroupInfo:
        """The kernel's memory cgroup read now (works after its death: the location was found at start)."""
        return read_cgroup_at(self._cg_loc)

    def tree_pids(self) -> list[int]:
        with self._lock:
            return self._tree.pids()

    # ----------------------------------------------------------------------------------------- the thread
    def _open_fds(self) -> None:
        """A pidfd of the kernel (Linux ≥ 5.3) and a pipe to wake the thread; neither when unavailable."""
        opener = getattr(os, "pidfd_open", None)
        if opener is None or not self._tree.alive:
            return
        try:
            self._pidfd = int(opener(self.pid))
        except OSError:
            return
        self._wake = os.pipe()

    def _close_fds(self) -> None:
        with self._fd_lock:
            for fd in (self._pidfd, *(self._wake or ())):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._pidfd = self._wake = None

    def _run(self) -> None:
        exited = False
        try:
            exited = self._loop()
        except Exception as exc:  # noqa: BLE001 - the thread must never die loudly
            self._note(exc, "sampler")
        finally:
            self._close_fds()
            if self._gpu is not None:
                self._gpu.close()
        if exited and self._on_exit is not None:
            try:
                self._on_exit()
            except Exception as exc:  # noqa: BLE001
                self._note(exc, "on_exit")

    def _loop(self) -> bool:
        """Sample until stopped (False) or until the kernel is gone (True)."""
        with self._lock:
            self._tree.read()  # the CPU baseline: the next reading counts from here
            self._cpu_hist.append((time.monotonic(), 0.0))
        poller = None
        if self._pidfd is not None and self._wake is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            poller.register(self._wake[0], select.POLLIN)
        while not self._stop_event.is_set():
            began = time.monotonic()
            try:
                sample, busy = self._step()
            except Exception as exc:  # noqa: BLE001 - one bad reading must not end the watch
                self._note(exc, "sample")
                sample, busy = self.last, False
            if not self._tree.alive:
                if self.killed_for_memory is not None:
                    self._await_death(poller)
                return True
            wait = self._interval(sample, busy) - (time.monotonic() - began)
            if self._sleep(poller, wait):
                with self._lock:
                    self._tree.alive = False
                return True
        return False

    def _sleep(self, poller: select.poll | None, seconds: float) -> bool:
        """Wait ``seconds`` or until stopped; True when the kernel exited meanwhile (pidfd readable)."""
        if poller is None:
            self._stop_event.wait(max(0.0, seconds))
            return False
        events = poller.poll(max(0, math.ceil(seconds * 1000)))
        return any(fd == self._pidfd for fd, _ in events) and not self._stop_event.is_set()

    def _await_death(self, poller: select.poll | None, timeout: float = 5.0) -> None:
        """After the guard's SIGKILL, wait until the root is really gone, so ``on_exit`` means gone."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop_event.is_set():
            if poller is not None:
                if self._sleep(poller, deadline - time.monotonic()):
                    return
                continue
            try:
                if self._tree.root is None or self._tree.root.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.Error:
                return
            self._stop_event.wait(0.01)

    def _note(self, exc: BaseException, where: str) -> None:
        self.error = f"{where}: {type(exc).__name__}: {exc}"

    def _is_busy(self) -> bool:
        if self._busy_fn is None:
            return False
        try:
            return bool(self._busy_fn())
        except Exception as exc:  # noqa: BLE001 - a cell record being rewritten, …
            self._note(exc, "busy")
            return False

    def _step(self) -> tuple[Sample | None, bool]:
        """One reading and the guard's decision on it; the guard's callbacks run after the lock is released."""
        busy = self._is_busy()
        with self._lock:
            sample = self._read()
            if sample is None:
                return None, busy
            event = self._guard_check(sample, busy or (self._busy_fn is None and sample.cpu >= _BUSY_CPU))
        if event is not None:
            self._act(event)
        return sample, busy

    def _read(self) -> Sample | None:
        reading = self._tree.read()
        if reading is None:
            return None
        mono = time.monotonic()
        self._cpu_cum += reading.cpu_delta
        if mono >= self._next_cgroup:
            self._next_cgroup = mono + _CGROUP_EVERY
            self._refresh_cgroup()
        sample = Sample(t=time.time(), rss=reading.rss, cpu=round(self._cpu_percent(mono), 2),
                        threads=reading.threads, children=reading.children, gpu=self._gpu_used(mono))
        self._ring.append(sample)
        self.count += 1
        self.peak_rss = max(self.peak_rss, sample.rss)
        self.last = sample
        return sample

    def _cpu_percent(self, mono: float) -> float:
        """Percent of one core since the newest reading at least ``_CPU_SPAN`` back (or the oldest kept)."""
        ref_t, ref_cum = self._cpu_hist[0] if self._cpu_hist else (mono, self._cpu_cum)
        for t, cum in reversed(self._cpu_hist):
            if mono - t >= _CPU_SPAN:
                ref_t, ref_cum = t, cum
                break
        self._cpu_hist.append((mono, self._cpu_cum))
        return (self._cpu_cum - ref_cum) / (mono - ref_t) * 100.0 if mono > ref_t else 0.0

    def _refresh_cgroup(self) -> None:
        if self._cg_loc is None:
            return
        info = read_cgroup_at(self._cg_loc)
        self.cgroup_latest = info
        if info.limit != self._cgroup_limit:  # a limit changed while the kernel runs (a hub resizing it)
            self._cgroup_limit = info.limit
            self.limit, self.limit_source = effective_limit(self.memory_limit, info)

    def _gpu_used(self, mono: float) -> int | None:
        probe = self._gpu
        if probe is None or mono < self._next_gpu:
            return self._gpu_last
        if not probe.available:  # no NVML: never ask again
            self._gpu = None
            return None
        started = time.monotonic()
        self._gpu_last = probe.used_by(set(self._tree.pids()))
        # a slow driver is asked less often: at most 0.5 % of a core
        self._next_gpu = mono + max(_GPU_EVERY, (time.monotonic() - started) / 0.005)
        return self._gpu_last

    def _interval(self, sample: Sample | None, busy: bool) -> float:
        """How long to wait before the next reading."""
        if sample is None:
            return self.busy_interval
        mono = time.monotonic()
        prev, self._prev = self._prev, (mono, sample.rss)
        growing = prev is not None and mono > prev[0] and (sample.rss - prev[1]) / (mono - prev[0]) >= _GROWTH
        active = busy or growing or sample.cpu >= _BUSY_CPU
        if self.limit is not None and sample.rss >= _NEAR * self.limit:
            return self.near_interval if active else self.busy_interval
        return self.busy_interval if active else self.idle_interval

    # ----------------------------------------------------------------------------------------- the guard
    def _guard_check(self, sample: Sample, busy: bool) -> GuardEvent | None:
        """Decide (lock held): kill now, interrupt (after the lock is released), or nothing."""
        rising, self._was_busy = busy and not self._was_busy, busy
        limit = self.limit
        if not self.guard or limit is None or self.killed_for_memory is not None:
            return None
        if sample.rss >= self.kill_at * limit:
            self.killed_for_memory = sample
            self._tree.kill()
            self.kill_event = self._event("kill", sample, limit)
            return self.kill_event
        if sample.rss < self.interrupt_at * limit:
            self._armed, self._base = True, None
            return None
        if rising:
            self._armed, self._base = True, sample.rss
        if not self._armed or (self._busy_fn is not None and not busy):
            return None
        if self._base is not None and sample.rss < self._base + _REGROW * limit:
            return None
        self._armed = False
        event = self._event("interrupt", sample, limit)
        self.interrupts.append(event)
        return event

    def _event(self, action: Literal["interrupt", "kill"], sample: Sample, limit: int) -> GuardEvent:
        return GuardEvent(action=action, time=sample.t, rss=sample.rss, limit=limit,
                          limit_source=self.limit_source or CONFIGURED_LIMIT, share=sample.rss / limit)

    def _act(self, event: GuardEvent) -> None:
        """Tell ``on_guard``, then interrupt the cell (for an interrupt event).

        ``on_guard`` comes first: the supervisor writes the guard record there, and the agent in the kernel
        reads it when the interrupted cell ends, which can be a millisecond after the signal.
        """
        if self._on_guard is not None:
            try:
                self._on_guard(event)
            except Exception as exc:  # noqa: BLE001
                self._note(exc, "on_guard")
        if event.action == "interrupt":
            try:
                if self._interrupt_fn is not None:
                    self._interrupt_fn()
                elif self._tree.root is not None:
                    self._tree.root.send_signal(signal.SIGINT)
            except Exception as exc:  # noqa: BLE001 - psutil.NoSuchProcess, the caller's own errors
                self._note(exc, "interrupt")
