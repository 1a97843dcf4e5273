"""A batch on a Dask cluster: each notebook a task running ``run_notebook`` on a worker.

``dask.distributed`` is an optional extra (``pip install 'nbmedic[dask]'``), imported only here and only
when a scheduler is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from nbmedic.errors import UsageError
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.result import RunResult

__all__ = ["execute_on_cluster"]


def execute_on_cluster(jobs: Sequence[RunJob], scheduler: str,
                       on_done: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
    """Run ``jobs`` on the cluster at ``scheduler`` (``local``: a LocalCluster); results in job order."""
    raise UsageError("--scheduler is not available yet")
