"""Monitored notebook execution: ``run_notebook(path, options) -> RunResult``.

The heavy imports (jupyter_client, zmq, psutil) happen when ``run_notebook`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbmedic.execute.options import RunOptions
from nbmedic.execute.result import RunResult

if TYPE_CHECKING:
    from nbmedic.execute.runner import run_notebook

__all__ = ["RunOptions", "RunResult", "run_notebook"]


def __getattr__(name: str) -> Any:
    if name == "run_notebook":
        from nbmedic.execute.runner import run_notebook

        return run_notebook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
