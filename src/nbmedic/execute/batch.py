"""Many notebooks, each in its own fresh kernel: in this process one after another, or ``workers`` at a time.

Shared by ``nbmedic run`` and ``nbmedic doctor``.  A job carries the notebook already read by the
command, so no file is read twice.

``workers`` > 1: every job runs in a thread of this process (a notebook's client mostly waits on its
kernel, which is a process of its own), at most ``workers`` of them running cells at once (a slot each,
``BatchHooks.slot``).  There are twice as many threads as slots, so the next notebooks' kernels start
(forked from the warm template, or launched) while the running ones' cells run, and a finished kernel
shuts down while the next notebook already runs: no notebook waits for a kernel start or shutdown of its
own.  Kernels alive at once: at most twice ``workers``.  One process also means one fork template for
the whole batch, and no worker interpreters to start.

Progress (for a live display) comes back as it happens: a job started, its cells (the runner's
``progress(done, total)``), the memory of its kernel's process tree.  Threads put these events on a queue
that this thread reads between results, so the listeners are called here.  Memory is read only when
``on_memory`` is given: a thread beside the run sums the RSS of the kernel (``BatchHooks.on_kernel``
gives its process id) and its descendants once a ``MEMORY_INTERVAL`` (``monitor.ProcessTree``).

Ctrl-C (KeyboardInterrupt in this thread) stops the batch: no notebook starts its cells any more, the
running kernels' process groups are killed, and the interrupt goes on once the threads are done.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from nbmedic.execute.cluster import execute_on_cluster
from nbmedic.execute.jobs import RunJob, run_job
from nbmedic.execute.monitor import ProcessTree
from nbmedic.execute.result import RunResult
from nbmedic.execute.runner import BatchHooks
from nbmedic.findings import Finding
from nbmedic.units import format_bytes

__all__ = ["MEMORY_INTERVAL", "BatchRun", "execute", "run_note"]

MEMORY_INTERVAL = 0.5  # seconds between readings of a running kernel's memory (only for a live display)
_POLL = 0.1  # seconds this thread waits for a result before it reads the progress events again

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


class _Cancelled(Exception):
    """The batch was stopped before this notebook's cells could start."""


class _Slots:
    """``workers`` notebooks run their cells at once; once cancelled, no one more gets in."""

    def __init__(self, workers: int) -> None:
        self._free = threading.Semaphore(workers)
        self.cancelled = threading.Event()

    def __enter__(self) -> None:
        while not self._free.acquire(timeout=_POLL):
            if self.cancelled.is_set():
                raise _Cancelled
        if self.cancelled.is_set():
            self._free.release()
            raise _Cancelled

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._free.release()


@dataclass
class _Batch:
    """What the jobs of one batch share: the events' way back, the slots, the running kernels."""

    send: _Send | None
    memory: bool
    slots: _Slots | None = None
    kernels: dict[int, int] = field(default_factory=dict)  # job -> its kernel's process id, while it runs

    def kill_kernels(self) -> None:
        for pid in list(self.kernels.values()):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


@contextmanager
def _memory_reader(index: int, batch: _Batch) -> Iterator[Callable[[int], None]]:
    """A job's ``on_kernel``; while the block runs, ("memory", index, rss, 0) every MEMORY_INTERVAL once the
    kernel is known (only when the batch reads memory)."""
    stop = threading.Event()
    pid: list[int] = []

    def on_kernel(kernel_pid: int) -> None:
        pid.append(kernel_pid)
        batch.kernels[index] = kernel_pid

    def read() -> None:
        tree: ProcessTree | None = None
        while not stop.wait(MEMORY_INTERVAL):
            if tree is None and pid:
                tree = ProcessTree(pid[0])
            reading = tree.read() if tree is not None else None
            if reading is not None and reading.rss and not stop.is_set() and batch.send is not None:
                batch.send(("memory", index, reading.rss, 0))

    thread = threading.Thread(target=read, name="nbmedic-batch-memory", daemon=True)
    if batch.memory:
        thread.start()
    try:
        yield on_kernel
    finally:
        stop.set()
        batch.kernels.pop(index, None)
        if batch.memory:
            thread.join()


def _run_one(index: int, job: RunJob, batch: _Batch) -> RunResult:
    """Run one job of the batch, sending its start, cells and memory when someone listens."""
    send = batch.send
    if send is not None:
        send(("start", index, 0, 0))

    def cells(done: int, total: int) -> None:
        if send is not None:
            send(("cell", index, done, total))

    with _memory_reader(index, batch) as on_kernel:
        return run_job(job, cells if send is not None else None, BatchHooks(batch.slots, on_kernel))


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
    (every MEMORY_INTERVAL), ``on_done(job, result)``.  With one worker they are called as they happen
    (``on_memory`` from a thread of its own); with more, on this thread between results.  With
    ``scheduler`` (a Dask scheduler address, or ``local``) the jobs run as tasks on that cluster instead
    and only ``on_done`` is called."""
    if scheduler:
        return execute_on_cluster(jobs, scheduler, on_done=on_done, workers=workers)
    listeners = _Listeners(on_start, on_cell, on_memory)
    if workers <= 1 or len(jobs) <= 1:
        return _sequential(jobs, listeners, on_done)
    return _threaded(jobs, workers, listeners, on_done)


def _sequential(jobs: Sequence[RunJob], listeners: _Listeners,
                on_done: Callable[[int, RunResult], None] | None) -> list[RunResult]:
    batch = _Batch(listeners if listeners.any else None, listeners.on_memory is not None)
    results: list[RunResult] = []
    for i, job in enumerate(jobs):
        result = _run_one(i, job, batch)
        results.append(result)
        if on_done:
            on_done(i, result)
    return results


def _threaded(jobs: Sequence[RunJob], workers: int, listeners: _Listeners,
              on_done: Callable[[int, RunResult], None] | None) -> list[RunResult]:
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    batch = _Batch(events.put if listeners.any else None, listeners.on_memory is not None, _Slots(workers))
    results: list[RunResult | None] = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=2 * workers, thread_name_prefix="nbmedic-run")
    try:
        futures: dict[Future[RunResult], int] = {pool.submit(_run_one, i, job, batch): i
                                                 for i, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=_POLL, return_when=FIRST_COMPLETED)
            _drain(events, listeners)  # a job's events are all on the queue before its result
            for future in sorted(finished, key=futures.__getitem__):
                i = futures[future]
                result = results[i] = future.result()
                if on_done:
                    on_done(i, result)
    except BaseException:
        assert batch.slots is not None
        batch.slots.cancelled.set()
        batch.kill_kernels()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [r for r in results if r is not None]


def _drain(events: queue.SimpleQueue[Event], listeners: _Listeners) -> None:
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        listeners(event)


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
