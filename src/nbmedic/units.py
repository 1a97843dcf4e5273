"""Sizes as people read and write them: one formatter for every message and report, one parser for every
option and setting."""

from __future__ import annotations

from nbmedic.errors import UsageError


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``3.2 MiB``, ``4.0 KiB``, ``512 B`` (powers of 1024)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


MiB = 1024 * 1024

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": MiB, "mb": MiB, "mib": MiB,
               "g": 1024 * MiB, "gb": 1024 * MiB, "gib": 1024 * MiB}


def parse_size(value: object, *, what: str = "size") -> int:
    """``10M``, ``512KiB``, ``2G`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise UsageError(f"{what}: expected a size such as 10M, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UsageError(f"{what}: size must not be negative")
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("kmgib")
        unit = text[len(number):]
        try:
            amount = float(number)
        except ValueError:
            amount = -1.0
        if unit in _SIZE_UNITS and amount >= 0:
            return int(amount * _SIZE_UNITS[unit])
    raise UsageError(f"{what}: expected a size such as 10M or 512K, got {value!r}")
