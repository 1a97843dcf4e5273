"""How a path is shown to people: relative to the working folder when it lies below it.

Findings and run records carry paths as the command found them (their identity); renderers call
``display_path`` when they print them, so one notebook never shows under two names.
"""

from __future__ import annotations

import os


def display_path(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if not os.path.isabs(text):
        return os.path.normpath(text)  # already relative (as named, or found under a relative folder)
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive on Windows
        return text
    return rel if not rel.startswith(".." + os.sep) and rel != ".." else text
