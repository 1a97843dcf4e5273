"""nbmedic: find what is wrong with Jupyter notebooks, say why with evidence, and fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/nbmedic/nbmedic"  # where bugs are reported and the README lives

if TYPE_CHECKING:
    from nbmedic.execute.runner import run_notebook

__all__ = ["PROJECT_URL", "__version__", "run_notebook"]


def __getattr__(name: str) -> Any:
    """``nbmedic.run_notebook`` without importing the execution machinery with ``import nbmedic``."""
    if name == "run_notebook":
        from nbmedic.execute.runner import run_notebook

        return run_notebook
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
