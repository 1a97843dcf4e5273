"""Cell helpers every layer shares: a cell's source as text, its tags and id, the notebook's kernel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONFLICT_TAG = "nbmedic-conflict"  # a cell kept in two versions by a merge, waiting for a person
RAISES_TAG = "raises-exception"  # nbclient/papermill: the cell is expected to raise
SKIP_TAG = "skip-execution"  # nbclient: the cell is not executed


def source_text(cell: object) -> str:
    """A cell's source as one string, whether stored as a string or a list of lines.  Values the schema
    forbids are kept as their text (a repair must not lose them; the schema rule reports them)."""
    source = cell.get("source") if isinstance(cell, Mapping) else None
    if isinstance(source, str):
        return source
    if isinstance(source, list):
        return "".join(s if isinstance(s, str) else str(s) for s in source)
    return "" if source is None else str(source)


def cell_tags(cell: object) -> list[str]:
    meta = cell.get("metadata") if isinstance(cell, Mapping) else None
    tags = meta.get("tags") if isinstance(meta, Mapping) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def cell_id(cell: object) -> str | None:
    """The cell's ``id`` when it has a string one."""
    value = cell.get("id") if isinstance(cell, Mapping) else None
    return value if isinstance(value, str) else None


def kernel_name_of(nb: Mapping[str, Any], default: str = "python3") -> str:
    """``metadata.kernelspec.name``, or the kernel Jupyter tools fall back to when there is none."""
    meta = nb.get("metadata")
    spec = meta.get("kernelspec") if isinstance(meta, Mapping) else None
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return name if isinstance(name, str) and name else default


def kernel_language_of(nb: Mapping[str, Any], default: str = "python") -> str:
    """The notebook's kernel language (``kernelspec.language``, then ``language_info.name``)."""
    meta = nb.get("metadata")
    if isinstance(meta, Mapping):
        for key, field in (("kernelspec", "language"), ("language_info", "name")):
            block = meta.get(key)
            value = block.get(field) if isinstance(block, Mapping) else None
            if isinstance(value, str) and value:
                return value
    return default
