"""Sizes as people read them: one formatter for every message and report."""

from __future__ import annotations


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``3.2 MiB``, ``4.0 KiB``, ``512 B`` (powers of 1024)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
