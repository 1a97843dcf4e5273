"""Small cell helpers shared by checks and repairs."""

from __future__ import annotations

from typing import Any

CONFLICT_TAG = "nbmedic-conflict"  # a cell kept in two versions by a merge, waiting for a person


def cell_tags(cell: dict[str, Any]) -> list[str]:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def kernel_name_of(nb: dict[str, Any], default: str = "python3") -> str:
    """``metadata.kernelspec.name``, or the kernel Jupyter tools fall back to when there is none."""
    meta = nb.get("metadata")
    spec = meta.get("kernelspec") if isinstance(meta, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and name else default
