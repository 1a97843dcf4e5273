"""Cell-level fixes: the fields the nbformat 4 schema requires, and valid, unique cell ids."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nbmedic.notebook.cells import source_text
from nbmedic.notebook.format import BAD_ID_CHARS, CELL_TYPES, CURRENT_MINOR, new_id, valid_id


def normalize_cells(nb: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Give every cell the fields its type requires and drop what the schema forbids.

    Returns (actions, lost).  Only touches what is wrong: a valid notebook yields ([], []).
    """
    actions: list[str] = []
    lost: list[str] = []
    cells = nb.get("cells")
    if not isinstance(cells, list):
        nb["cells"] = []
        if cells is None:
            actions.append("added the missing (empty) cell list")
        else:
            lost.append(f"`cells` held {type(cells).__name__}, not a list; it was replaced by an empty list")
        return actions, lost
    kept = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            lost.append(f"cell {index} was {type(cell).__name__}, not an object, and was dropped")
            continue
        kept.append(cell)
        ctype = cell.get("cell_type")
        if ctype not in CELL_TYPES:
            guess = "code" if "outputs" in cell or "execution_count" in cell else "markdown"
            actions.append(f"cell {index}: cell_type {ctype!r} is not valid; set to {guess!r}")
            cell["cell_type"] = ctype = guess
        if not isinstance(cell.get("metadata"), dict):
            actions.append(f"cell {index}: added the missing metadata")
            cell["metadata"] = {}
        source = cell.get("source")
        text_list = isinstance(source, list) and all(isinstance(s, str) for s in source)
        if not (isinstance(source, str) or text_list):
            actions.append(f"cell {index}: " + ("added the missing source" if source is None
                                                 else "turned the source into text"))
            cell["source"] = "" if source is None else source_text(cell)
        if ctype == "code":
            if not isinstance(cell.get("outputs"), list):
                actions.append(f"cell {index}: added the missing outputs list")
                cell["outputs"] = []
            count = cell.get("execution_count", _ABSENT)
            if count is _ABSENT or not (count is None or (isinstance(count, int) and count >= 0)):
                actions.append(f"cell {index}: set the missing or invalid execution_count to null")
                cell["execution_count"] = None
        else:
            for key in ("outputs", "execution_count"):
                if key in cell:
                    value = cell.pop(key)
                    if key == "outputs" and value:
                        lost.append(f"cell {index}: the outputs of a {ctype} cell (not allowed there) "
                                    "were dropped")
                    else:
                        actions.append(f"cell {index}: dropped `{key}`, which a {ctype} cell may not have")
    if len(kept) != len(cells):
        nb["cells"] = kept
    return actions, lost


_ABSENT: Any = object()


def fix_ids(nb: dict[str, Any]) -> list[str]:
    """Make cell ids valid and unique; add missing ones where ids are in use (nbformat 4.5).

    A notebook below 4.5 without any id is left alone (ids are optional there); one below 4.5 that
    has ids is bumped to 4.5 and the rest of its cells get ids.
    """
    cells = [c for c in nb.get("cells", []) if isinstance(c, dict)]
    minor = nb.get("nbformat_minor")
    has_ids = any("id" in c for c in cells)
    actions: list[str] = []
    if not isinstance(minor, int) or minor < CURRENT_MINOR:
        if not has_ids:
            return actions
        actions.append(f"set nbformat_minor from {minor!r} to {CURRENT_MINOR}: cell ids need nbformat 4.5")
        nb["nbformat_minor"] = CURRENT_MINOR
    taken: set[str] = {c["id"] for c in cells if valid_id(c.get("id"))}
    seen: set[str] = set()
    missing: list[int] = []
    for index, cell in enumerate(cells):
        value = cell.get("id")
        if "id" not in cell:
            missing.append(index)
            cell["id"] = new_id(taken)
            continue
        if not valid_id(value):
            fixed = BAD_ID_CHARS.sub("-", value)[:64].strip("-") if isinstance(value, str) else ""
            if not fixed or fixed in taken:
                fixed = new_id(taken)
            taken.add(fixed)
            actions.append(f"cell {index}: replaced the invalid id {value!r} with {fixed!r}")
            cell["id"] = value = fixed
        assert isinstance(value, str)
        if value in seen:
            fresh = new_id(taken)
            actions.append(f"cell {index}: id {value!r} was already used by an earlier cell; "
                           f"new id {fresh!r}")
            cell["id"] = fresh
            value = fresh
        seen.add(value)
    if missing:
        actions.append(f"added ids to {len(missing)} cell(s) that had none ({_some(missing)})")
    return actions


def _some(indices: Iterable[int], limit: int = 10) -> str:
    items = list(indices)
    text = ", ".join(map(str, items[:limit]))
    return "cells " + text + (f" and {len(items) - limit} more" if len(items) > limit else "")
