"""Where nbmedic keeps what it can learn once and reuse: answers of interpreters (NB041), compiled schema
validators.  Everything here is an optimisation: a cache that cannot be read or written is ignored.

``NBMEDIC_CACHE_DIR`` moves the cache; set but empty, it turns the disk cache off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nbmedic.notebook.io import atomic_write_bytes


def cache_dir() -> Path | None:
    """``NBMEDIC_CACHE_DIR``, else the user cache folder (``$XDG_CACHE_HOME/nbmedic`` or
    ``~/.cache/nbmedic``; ``~/Library/Caches/nbmedic`` on macOS; ``%LOCALAPPDATA%\\nbmedic\\Cache`` on
    Windows).  None when ``NBMEDIC_CACHE_DIR`` is set but empty."""
    explicit = os.environ.get("NBMEDIC_CACHE_DIR")
    if explicit is not None:
        return Path(explicit).expanduser() if explicit else None
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "nbmedic" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "nbmedic"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else home / ".cache") / "nbmedic"


def read_cached(*parts: str) -> bytes | None:
    """The bytes stored under ``cache_dir()/parts...``; None when absent, unreadable or the cache is off."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        return folder.joinpath(*parts).read_bytes()
    except OSError:
        return None


def write_cached(data: bytes, *parts: str) -> None:
    """Store ``data`` under ``cache_dir()/parts...`` atomically; a read-only home is not an error."""
    folder = cache_dir()
    if folder is None:
        return
    target = folder.joinpath(*parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    except OSError:
        return
