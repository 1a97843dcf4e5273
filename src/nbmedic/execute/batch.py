"""Many notebooks, each in its own fresh kernel: in this process one after another, or in a process pool.

Shared by ``nbmedic run`` and ``nbmedic doctor``.  A job carries the notebook already read by the
command, so no file is read twice.

Progress (for a live display) comes back as it happens: a job started, its cells (the runner's
``progress(done, total)``), the memory of its kernel's process tree.  Pool workers send these events
through one ``SimpleQueue`` given to every worker when it starts (a plain pipe: each event is written
before the worker goes on, so all of a job's events are in the pipe before its result); the parent reads
them between results.  Memory is read only when ``on_memory`` is given: a thread beside the run sums
the RSS of the kernel the run started and the kernel's children (``_kernels_rss``) once a
``MEMORY_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from nbmedic.execute.cluster import execute_on_cluster
from nbmedic.execute.jobs import RunJob, run_job
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding
from nbmedic.units import format_bytes

__all__ = ["MEMORY_INTERVAL", "BatchRun", "execute", "run_note"]

MEMORY_INTERVAL = 0.5  # seconds between readings of a running kernel's memory (only for a live display)
_POLL = 0.1  # seconds the parent waits for a result before it reads the progress events again

Event = tuple[str, int, int, int]  # ("start" | "cell" | "memory", job, a, b)
_Send = Callable[[Event], None]


@dataclass
class BatchRun:
    """One run of a batch as reports see it: the notebook, the parameters it ran with, its result and the
    findings the command kept (after ``--select``/``--ignore``); ``label`` names a grid combination."""

    notebook: str
    result: RunResult
    findings: list[Finding] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def _descendants(pid: int) -> list[Any]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _session(proc: Any) -> int | None:
    getsid = getattr(os, "getsid", None)
    try:
        return int(getsid(proc.pid)) if getsid is not None else None
    except OSError:
        return None


def _kernels_rss(pid: int, before: set[int]) -> int:
    """Bytes of RSS of the kernel trees ``pid`` started since ``before`` (its descendants then) was read.

    A kernel leads its own session (jupyter_client starts it so; a fork template's child calls setsid),
    and its children share that session: the reading sums the sessions led by descendants that are new,
    leaving out the processes that launched one of them (a fork template) and everything older (templates
    kept from earlier runs, a pool's forkserver).  Without sessions (Windows): every new descendant."""
    procs = _descendants(pid)
    sessions = {proc.pid: _session(proc) for proc in procs}
    new = [proc for proc in procs if proc.pid not in before]
    leaders = {proc.pid for proc in new if sessions[proc.pid] == proc.pid}
    launchers = set()
    for proc in new:
        if proc.pid in leaders:
            with contextlib.suppress(psutil.Error):
                launchers.add(proc.ppid())
    counted = leaders - launchers
    total = 0
    for proc in procs:
        session = sessions[proc.pid]
        if (session in counted) if session is not None else proc.pid not in before:
            with contextlib.suppress(psutil.Error):
                total += int(proc.memory_info().rss)
    return total


@contextmanager
def _memory_reader(index: int, send: _Send | None) -> Iterator[None]:
    """While the block runs, ("memory", index, rss, 0) every MEMORY_INTERVAL (nothing when ``send`` is None)."""
    if send is None:
        yield
        return
    stop = threading.Event()
    me = os.getpid()
    before = {proc.pid for proc in _descendants(me)}

    def read() -> None:
        while not stop.wait(MEMORY_INTERVAL):
            rss = _kernels_rss(me, before)
            if rss and not stop.is_set():
                send(("memory", index, rss, 0))

    thread = threading.Thread(target=read, name="nbmedic-batch-memory", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_reporting(index: int, job: RunJob, send: _Send, memory: bool) -> RunResult:
    """Run one job, sending its start, cells and (with ``memory``) memory through ``send``."""
    send(("start", index, 0, 0))

    def cells(done: int, total: int) -> None:
        send(("cell", index, done, total))

    with _memory_reader(index, send if memory else None):
        return run_job(job, cells)


# --- in a pool worker: the events go to the queue the worker got when it started -------------------

_EVENTS: Any = None  # the worker's multiprocessing SimpleQueue (its put takes a lock: threads may share it)
_MEMORY = False


def _init_worker(events: Any, memory: bool) -> None:
    global _EVENTS, _MEMORY
    _EVENTS, _MEMORY = events, memory


def _send_to_parent(event: Event) -> None:
    _EVENTS.put(event)


def _pool_job(index: int, job: RunJob) -> RunResult:
    """What a pool worker runs (top level, so the pool can pickle it)."""
    if _EVENTS is None:
        return run_job(job)
    return _run_reporting(index, job, _send_to_parent, _MEMORY)


@dataclass
class _Listeners:
    on_start: Callable[[int], None] | None = None
    on_cell: Callable[[int, int, int], None] | None = None
    on_memory: Callable[[int, int], None] | None = None

    @property
    def any(self) -> bool:
        return any((self.on_start, self.on_cell, self.on_memory))

    def __call__(self, event: Event) -> None:
        kind, index, a, b = event
        if kind == "start" and self.on_start is not None:
            self.on_start(index)
        elif kind == "cell" and self.on_cell is not None:
            self.on_cell(index, a, b)
        elif kind == "memory" and self.on_memory is not None:
            self.on_memory(index, a)


def execute(jobs: Sequence[RunJob], workers: int,
            on_done: Callable[[int, RunResult], None] | None = None,
            on_cell: Callable[[int, int, int], None] | None = None,
            scheduler: str | None = None, *,
            on_start: Callable[[int], None] | None = None,
            on_memory: Callable[[int, int], None] | None = None) -> list[RunResult]:
    """Run every job, ``workers`` at a time (one kernel each); results in the order of ``jobs``.

    Progress, all optional: ``on_start(job)`` when a job's run begins, ``on_cell(job, done, total)`` as
    its code cells finish, ``on_memory(job, rss)`` with the bytes of RSS of its kernel's process tree
    (every MEMORY_INTERVAL), ``on_done(job, result)``.  With one worker they are called in this process
    (``on_memory`` from a thread of its own); with a pool, on this thread between results.  With
    ``scheduler`` (a Dask scheduler address, or ``local``) the jobs run as tasks on that cluster instead
    and only ``on_done`` is called."""
    if scheduler:
        return execute_on_cluster(jobs, scheduler, on_done=on_done, workers=workers)
    listeners = _Listeners(on_start, on_cell, on_memory)
    if workers <= 1:
        return _sequential(jobs, listeners, on_done)
    return _pool(jobs, workers, listeners, on_done)


def _sequential(jobs: Sequence[RunJob], listeners: _Listeners,
                on_done: Callable[[int, RunResult], None] | None) -> list[RunResult]:
    results: list[RunResult] = []
    for i, job in enumerate(jobs):
        result = _run_reporting(i, job, listeners, listeners.on_memory is not None) if listeners.any \
            else run_job(job)
        results.append(result)
        if on_done:
            on_done(i, result)
    return results


def _pool(jobs: Sequence[RunJob], workers: int, listeners: _Listeners,
          on_done: Callable[[int, RunResult], None] | None) -> list[RunResult]:
    context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
    events = context.SimpleQueue() if listeners.any else None
    results: list[RunResult | None] = [None] * len(jobs)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                 initargs=(events, listeners.on_memory is not None)) as pool:
            futures: dict[Future[RunResult], int] = {pool.submit(_pool_job, i, job): i for i, job in enumerate(jobs)}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=_POLL if events is not None else None,
                                         return_when=FIRST_COMPLETED)
                _drain(events, listeners)  # a job's events are all in the pipe before its result
                for future in sorted(finished, key=futures.__getitem__):
                    i = futures[future]
                    result = results[i] = future.result()
                    if on_done:
                        on_done(i, result)
    finally:
        if events is not None:
            events.close()
    return [r for r in results if r is not None]


def _drain(events: Any, listeners: _Listeners) -> None:
    if events is None:
        return
    while not events.empty():
        listeners(events.get())


def run_note(result: RunResult) -> str:
    """One line on how a run went, for the text report's file header."""
    ran = sum(1 for c in result.cells if c.status not in ("not-run", "skipped"))
    parts = [result.status, f"{ran}/{len(result.cells)} cells in {result.duration:.1f} s"]
    if result.peak_rss:
        parts.append(f"peak RSS {format_bytes(result.peak_rss)}")
    line = ", ".join(parts)
    if result.output:
        line += f" → {result.output}"
    return line
