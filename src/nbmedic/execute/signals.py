"""Process return codes as people read them: ``-9`` is ``SIGKILL``."""

from __future__ import annotations

import signal

__all__ = ["signal_name"]

_SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}


def signal_name(code: int | None) -> str | None:
    """``SIGKILL`` for a return code of -9; None for a normal exit code."""
    if code is None or code >= 0:
        return None
    return _SIGNAL_NAMES.get(-code, f"signal {-code}")
