"""Many notebooks, each in its own fresh kernel: in this process one after another, or in a process pool.

Shared by ``nbmedic run`` and ``nbmedic doctor``.  A job carries the notebook already read by the
command, so no file is read twice.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from nbmedic.execute.cluster import execute_on_cluster
from nbmedic.execute.jobs import RunJob, run_job
from nbmedic.execute.result import RunResult
from nbmedic.units import format_bytes


def execute(jobs: Sequence[RunJob], workers: int,
            on_done: Callable[[int, RunResult], None] | None = None,
            on_cell: Callable[[int, int, int], None] | None = None,
            scheduler: str | None = None) -> list[RunResult]:
    """Run every job, ``workers`` at a time (one kernel each); results in the order of ``jobs``.

    ``on_cell(job, done, total)`` reports cells as they finish (sequential runs only).  With ``scheduler``
    (a Dask scheduler address, or ``local``) the jobs run as tasks on that cluster instead."""
    if scheduler:
        return execute_on_cluster(jobs, scheduler, on_done=on_done)
    results: list[RunResult | None] = [None] * len(jobs)
    if workers <= 1:
        for i, job in enumerate(jobs):
            cell_progress = None
            if on_cell is not None:
                def cell_progress(done: int, total: int, i: int = i) -> None:
                    on_cell(i, done, total)
            result = results[i] = run_job(job, cell_progress)
            if on_done:
                on_done(i, result)
        return [r for r in results if r is not None]
    context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            i = futures[future]
            result = results[i] = future.result()
            if on_done:
                on_done(i, result)
    return [r for r in results if r is not None]


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
