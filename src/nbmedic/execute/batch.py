"""Many notebooks, each in its own fresh kernel: in this process one after another, or in a process pool.

Shared by ``nbmedic run`` and ``nbmedic doctor``.  A job carries the notebook already read by the
command, so no file is read twice.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from nbmedic.execute.options import RunOptions
from nbmedic.execute.result import RunResult
from nbmedic.execute.runner import run_notebook
from nbmedic.units import format_bytes


@dataclass(frozen=True)
class RunJob:
    """One notebook to run: its identity, options, the parsed notebook, where to write the result."""

    path: str
    options: RunOptions
    nb: dict[str, Any] | None = None  # None: read from ``path`` by the runner
    output: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


def run_job(job: RunJob, progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run one notebook (top level, so a process pool can call it)."""
    return run_notebook(job.path, job.options, nb=job.nb, output=job.output, progress=progress, **job.overrides)


def execute(jobs: Sequence[RunJob], workers: int,
            on_done: Callable[[int, RunResult], None] | None = None,
            on_cell: Callable[[int, int, int], None] | None = None) -> list[RunResult]:
    """Run every job, ``workers`` at a time (one kernel each); results in the order of ``jobs``.

    ``on_cell(job, done, total)`` reports cells as they finish (sequential runs only)."""
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
