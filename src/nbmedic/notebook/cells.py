"""Small cell helpers shared by checks and repairs."""

from __future__ import annotations

from typing import Any

CONFLICT_TAG = "nbmedic-conflict"  # a cell kept in two versions by a merge, waiting for a person


def cell_tags(cell: dict[str, Any]) -> list[str]:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
