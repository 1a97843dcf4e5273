"""One notebook to run, as a picklable job (a Dask worker receives it), and the call that runs it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbmedic.execute.options import RunOptions
from nbmedic.execute.result import RunResult
from nbmedic.execute.runner import BatchHooks, run_notebook

__all__ = ["RunJob", "run_job"]


@dataclass(frozen=True)
class RunJob:
    """One notebook to run: its identity, options, the parsed notebook, where to write the result."""

    path: str
    options: RunOptions
    nb: dict[str, Any] | None = None  # None: read from ``path`` by the runner
    output: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


def run_job(job: RunJob, progress: Callable[[int, int], None] | None = None,
            hooks: BatchHooks | None = None) -> RunResult:
    """Run one notebook (top level, so a Dask worker can call it)."""
    return run_notebook(job.path, job.options, nb=job.nb, output=job.output, progress=progress, hooks=hooks,
                        **job.overrides)
