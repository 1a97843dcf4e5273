"""Git hygiene: strip outputs, the long-running filter process, cell-aware diff and merge, install.

Each module is pure where it can be (notebook dict in, notebook dict out) so the same core serves the
CLI, git's filter process and other callers.  Keep this package's import light: no submodule is
imported here.
"""
