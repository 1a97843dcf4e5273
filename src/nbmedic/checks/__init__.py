"""Static rules over notebook files (the NB family).  Never executes notebook code."""

from nbmedic.checks.engine import CheckEnv, NotebookContext, check_file, check_paths

__all__ = ["CheckEnv", "NotebookContext", "check_file", "check_paths"]
