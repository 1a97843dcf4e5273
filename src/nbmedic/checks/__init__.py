"""Static rules over notebook files (the NB family).  Never executes notebook code."""

from nbmedic.checks.engine import check_file, check_notebook, check_notebooks, check_paths
from nbmedic.checks.rules import CheckEnv, NotebookContext

__all__ = ["CheckEnv", "NotebookContext", "check_file", "check_notebook", "check_notebooks", "check_paths"]
