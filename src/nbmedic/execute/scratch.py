"""Temporary folders of one nbmedic process, named with its pid so that the next nbmedic removes those a
killed one left.

A kernel's folder (``nbmedic-kernel-PID-XXXXXXXX``: its connection file, ipc sockets, stderr and
faulthandler logs) and a fork template's (``nbmedic-template-PID-XXXXXXXX``) are removed when nbmedic closes
them; a SIGKILL leaves them.  ``make`` first removes the folders of its kind whose pid no longer runs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from nbmedic.notebook.io import dead_writers

__all__ = ["make", "stand_in", "sweep"]

_RANDOM = 8  # characters tempfile.mkdtemp puts after the prefix


def _prefix(kind: str, pid: int) -> str:
    return f"nbmedic-{kind}-{pid}-"


def sweep(kind: str) -> list[str]:
    """Remove the ``kind`` folders in the temporary folder whose nbmedic process is gone; return them."""
    pattern = re.compile(rf"nbmedic-{re.escape(kind)}-(\d+)-[a-z0-9_]{{{_RANDOM}}}")
    removed: list[str] = []
    for path in dead_writers(tempfile.gettempdir(), pattern):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    return removed


def make(kind: str) -> str:
    """A new private folder of ``kind`` for this process, after removing those killed processes left."""
    sweep(kind)
    return tempfile.mkdtemp(prefix=_prefix(kind, os.getpid()))


def stand_in(kind: str) -> str:
    """A path as long as the folder ``make(kind)`` would return (what fork templates are keyed by)."""
    return os.path.join(tempfile.gettempdir(), _prefix(kind, os.getpid()) + "x" * _RANDOM)
