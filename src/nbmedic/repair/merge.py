"""Merge the local and remote versions of a notebook cell by cell, never dropping a cell.

Cells are aligned by ``id`` first, then by equal content (type and source), then by similar
source (``difflib`` ratio) for cells without ids; the alignment keeps both sides' order.  A cell
whose two versions differ in source becomes two adjacent cells (local, then remote) tagged
``nbmedic-conflict``, unless ``prefer`` names the side to keep.  When the merge carried the
common ancestor (diff3 style), a cell changed on one side only takes that side, and a cell one
side deleted without the other touching it stays deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nbmedic.notebook.cells import CONFLICT_TAG
from nbmedic.notebook.format import new_id, valid_id
from nbmedic.vcs.align import SIMILARITY, Pair, align
from nbmedic.vcs.align import content_key as _content_key

Prefer = Literal["local", "remote"]
SIDE_TAGS = {"local": "nbmedic-local", "remote": "nbmedic-remote"}
__all__ = ["SIMILARITY", "MergeResult", "Pair", "Prefer", "align", "merge_dicts", "merge_notebooks"]


@dataclass
class MergeResult:
    nb: dict[str, Any]
    actions: list[str] = field(default_factory=list)
    conflicts: int = 0  # cells kept twice


def merge_dicts(local: dict[str, Any], remote: dict[str, Any], prefer: Prefer | None,
                where: str, notes: list[str]) -> dict[str, Any]:
    """Deep merge; on a conflict the preferred side (default: local) wins and a note says so."""
    winner = prefer or "local"
    out: dict[str, Any] = {}
    for key in list(local) + [k for k in remote if k not in local]:
        if key not in remote:
            out[key] = copy.deepcopy(local[key])
        elif key not in local:
            out[key] = copy.deepcopy(remote[key])
        elif local[key] == remote[key]:
            out[key] = copy.deepcopy(local[key])
        elif isinstance(local[key], dict) and isinstance(remote[key], dict):
            out[key] = merge_dicts(local[key], remote[key], prefer, f"{where}.{key}", notes)
        else:
            out[key] = copy.deepcopy(local[key] if winner == "local" else remote[key])
            notes.append(f"{where}.{key} differed between the sides; kept the {winner} value")
    return out


class _Base:
    """The common ancestor's cells, looked up by id or by content."""

    def __init__(self, cells: Sequence[Any] | None) -> None:
        self.known = cells is not None
        self.by_id: dict[str, Any] = {}
        self.by_content: dict[Hashable, Any] = {}
        for cell in cells or ():
            if isinstance(cell, dict):
                if valid_id(cell.get("id")):
                    self.by_id.setdefault(cell["id"], cell)
                self.by_content.setdefault(_content_key(cell), cell)

    def find(self, *cells: Any) -> Any:
        for cell in cells:
            if isinstance(cell, dict) and valid_id(cell.get("id")):
                if cell["id"] in self.by_id:
                    return self.by_id[cell["id"]]
            else:  # content decides only for cells without an id
                found = self.by_content.get(_content_key(cell))
                if found is not None:
                    return found
        return None


def _tagged(cell: dict[str, Any], side: str) -> dict[str, Any]:
    cell = copy.deepcopy(cell)
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        meta = cell["metadata"] = {}
    tags = meta.get("tags")
    tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    for tag in (CONFLICT_TAG, SIDE_TAGS[side]):
        if tag not in tags:
            tags.append(tag)
    meta["tags"] = tags
    return cell


def merge_notebooks(local: dict[str, Any], remote: dict[str, Any], base: dict[str, Any] | None,
                    prefer: Prefer | None) -> MergeResult:
    """Merge two notebook dicts (nbformat 4, cells as dicts); inputs are not modified."""
    lcells = local.get("cells") if isinstance(local.get("cells"), list) else []
    rcells = remote.get("cells") if isinstance(remote.get("cells"), list) else []
    assert isinstance(lcells, list) and isinstance(rcells, list)
    base_cells = base.get("cells") if base is not None and isinstance(base.get("cells"), list) else None
    ancestor = _Base(base_cells)
    notes: list[str] = []
    rest_local = {k: v for k, v in local.items() if k != "cells"}
    rest_remote = {k: v for k, v in remote.items() if k != "cells"}
    merged = merge_dicts(rest_local, rest_remote, prefer, "notebook", notes)
    for key in ("nbformat", "nbformat_minor"):  # the newer format wins
        values = [d[key] for d in (local, remote) if isinstance(d.get(key), int)]
        if values:
            merged[key] = max(values)
    merged_meta = merged.get("metadata")
    notes = [n.replace("notebook.metadata", "metadata", 1) for n in notes
             if not n.startswith(("notebook.nbformat ", "notebook.nbformat_minor "))]
    if merged_meta is not None and not isinstance(merged_meta, dict):
        merged["metadata"] = {}

    result = MergeResult(merged)
    cells: list[Any] = []
    taken: set[str] = set()
    for li, ri in align(lcells, rcells):
        position = len(cells)
        lc = lcells[li] if li is not None else None
        rc = rcells[ri] if ri is not None else None
        if lc is not None and rc is not None:
            out = _merge_pair(lc, rc, ancestor, prefer, position, result)
        else:
            side = "local" if lc is not None else "remote"
            out = _one_side(lc if lc is not None else rc, side, ancestor, position, result)
        for cell in out:
            if isinstance(cell, dict) and valid_id(cell.get("id")):
                if cell["id"] in taken:
                    cell["id"] = new_id(taken)
                taken.add(cell["id"])
            cells.append(cell)
    merged["cells"] = cells
    result.actions = notes + result.actions
    return result


def _merge_pair(lc: Any, rc: Any, ancestor: _Base, prefer: Prefer | None, position: int,
                result: MergeResult) -> list[Any]:
    if lc == rc:
        return [copy.deepcopy(lc)]
    if not (isinstance(lc, dict) and isinstance(rc, dict)):
        return [copy.deepcopy(lc), copy.deepcopy(rc)]
    base = ancestor.find(lc, rc)
    if base is not None:
        if base == lc:
            result.actions.append(f"cell {position}: only the remote side changed it; "
                                  "took the remote version")
            return [copy.deepcopy(rc)]
        if base == rc:
            result.actions.append(f"cell {position}: only the local side changed it; "
                                  "took the local version")
            return [copy.deepcopy(lc)]
    if _content_key(lc) == _content_key(rc):
        winner = prefer or "local"
        keep = copy.deepcopy(lc if winner == "local" else rc)
        other = rc if winner == "local" else lc
        notes: list[str] = []
        lmeta, rmeta = lc.get("metadata"), rc.get("metadata")
        if isinstance(lmeta, dict) and isinstance(rmeta, dict) and lmeta != rmeta:
            keep["metadata"] = merge_dicts(lmeta, rmeta, prefer, "metadata", notes)
        what = [k for k in ("outputs", "execution_count", "attachments") if lc.get(k) != rc.get(k)]
        if what:
            result.actions.append(f"cell {position}: same source, different {' and '.join(what)}; "
                                  f"kept the {winner} side's")
        elif notes:
            result.actions.append(f"cell {position}: cell metadata merged")
        if other.get("id") != keep.get("id") and "id" not in keep and "id" in other:
            keep["id"] = other["id"]
        return [keep]
    if prefer is not None:
        result.actions.append(f"cell {position}: the two sides edited it differently; kept the {prefer} "
                              "version (--prefer)")
        return [copy.deepcopy(lc if prefer == "local" else rc)]
    result.conflicts += 1
    result.actions.append(f"cells {position} and {position + 1}: the two sides edited this cell differently; "
                          f"kept both versions (local first) tagged {CONFLICT_TAG!r}")
    return [_tagged(lc, "local"), _tagged(rc, "remote")]


def _one_side(cell: Any, side: str, ancestor: _Base, position: int, result: MergeResult) -> list[Any]:
    other = "remote" if side == "local" else "local"
    if ancestor.known and isinstance(cell, dict):
        base = ancestor.find(cell)
        if base is not None:
            if base == cell:
                result.actions.append(f"a cell the {other} side deleted (unchanged on the {side} side) "
                                      f"stays deleted (before cell {position})")
                return []
            result.actions.append(f"cell {position}: the {other} side deleted it but the {side} side edited "
                                  f"it; kept it, tagged {CONFLICT_TAG!r}")
            return [_tagged(cell, side)]
    return [copy.deepcopy(cell)]
