"""Terminal escape sequences: removed from kernel text (tracebacks, streams, logs) before people read it,
and written by nbmedic's own reports only where a terminal will show them."""

from __future__ import annotations

import os
import re
from typing import IO

ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase line
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-character escapes
)


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


def colour_wanted(stream: IO[str]) -> bool:
    """Colour only on a terminal, and not with ``NO_COLOR`` set or ``TERM=dumb``."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def paint(text: str, sgr: str) -> str:
    """``text`` in the SGR style ``sgr`` (``"1;31"`` = bold red)."""
    return f"\x1b[{sgr}m{text}\x1b[0m"
