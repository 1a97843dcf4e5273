"""The one cell-aware notebook merge: 3-way (``nbmedic merge``, git's merge driver) and 2-way.

``merge3(base, local, remote)`` takes three nbformat-4 notebook dicts and returns the merged
notebook with what happened:

* cells are matched to the base by id (wherever they moved), then by equal content, then by
  similar source (``vcs.align``, which keeps position among duplicated cells);
* a change made on one side is taken; the same change made on both sides is taken once; a cell
  inserted on both sides (same id or same content, at the same place) is kept once;
* sources edited on both sides are merged line by line (diff3); overlapping edits leave both
  versions between ``<<<<<<< local`` / ``=======`` / ``>>>>>>> remote`` lines inside the cell's
  source and tag the cell ``nbmedic-conflict`` (strategy ``inline``), or take one side's lines
  (``local``/``remote``), or keep the two versions as two tagged cells (``union``);
* outputs or execution counts changed differently on both sides are cleared (they are regenerable);
* a cell deleted on one side and changed on the other is kept and tagged (``inline``, ``union``);
* metadata (notebook and cell) merges key by key; a key both sides changed differently keeps the
  local value (the remote one with strategy ``remote``) and a note says so; tags merge as sets;
* cell order follows both sides: a cell one side moved goes where that side put it.

Without a base (``base=None``: git's add/add, or a conflicted file whose markers did not carry the
ancestor, as ``nbmedic repair`` meets them) the merge is 2-way: local and remote cells are aligned
with each other and every cell either side has is kept.  Two versions of a cell with the same source
are one cell (metadata merged, the local side's outputs, or the remote's with strategy ``remote``);
two different versions become two adjacent tagged cells (``union``), one side's cell (``local``,
``remote``) or one cell with both versions between markers (``inline``).

Matching and ordering are hash based (ids, content keys, a longest increasing subsequence), so the
merge runs in near-linear time in the number of cells.  Inputs are never modified; the result
shares unchanged values (outputs, sources, metadata) with them instead of copying them.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from nbmedic.notebook.cells import CONFLICT_TAG, source_text
from nbmedic.notebook.format import CURRENT_MINOR, valid_id
from nbmedic.vcs.align import align, content_key, equal_pairs, increasing, match

Strategy = Literal["inline", "local", "remote", "union"]
STRATEGIES: tuple[Strategy, ...] = ("inline", "local", "remote", "union")
SIDE_TAGS = {"local": "nbmedic-local", "remote": "nbmedic-remote"}

__all__ = [
    "STRATEGIES",
    "MergeInputError",
    "MergeResult",
    "Strategy",
    "check_notebook",
    "merge3",
    "merge_text3",
]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class MergeInputError(ValueError):
    """One side is JSON but not a notebook this merge understands (not nbformat 4, no cell list)."""


@dataclass
class MergeResult:
    nb: dict[str, Any]
    conflicts: list[str] = field(default_factory=list)  # what a person still has to resolve
    notes: list[str] = field(default_factory=list)  # what was resolved automatically, worth knowing
    conflict_cells: list[int] = field(default_factory=list)  # cells tagged nbmedic-conflict by this merge
    taken: list[str] = field(default_factory=list)  # one-sided changes taken as they are (for full reports)

    @property
    def clean(self) -> bool:
        return not self.conflicts


def check_notebook(nb: Any, name: str) -> None:
    """Raise ``MergeInputError`` unless ``nb`` is an nbformat-4 notebook dict with a list of cell dicts."""
    if not isinstance(nb, dict):
        raise MergeInputError(f"{name} is not a notebook object")
    major = nb.get("nbformat")
    if major != 4 or isinstance(major, bool):
        raise MergeInputError(f"{name} is nbformat {major!r}; only nbformat 4 can be merged")
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise MergeInputError(f"{name} has no valid cell list")


# --- values --------------------------------------------------------------------------------------

def _pick3(base: Any, local: Any, remote: Any) -> tuple[Any, bool]:
    """The 3-way choice for one value: (value, conflict); on a conflict the value is the local one."""
    if local == remote:
        return local, False
    if local == base:
        return remote, False
    if remote == base:
        return local, False
    return local, True


def _merge_list_as_set(base: list[Any], local: list[Any], remote: list[Any]) -> list[Any]:
    """Tags: what both kept, plus what either added (local order first); what either removed goes."""
    removed = [t for t in base if t not in local or t not in remote]
    out: list[Any] = []
    for item in local + remote:
        if item not in out and item not in removed:
            out.append(item)
    return out


def merge_dict3(base: Any, local: dict[str, Any], remote: dict[str, Any], where: str, winner: str,
                notes: list[str], clash: str = "both sides changed it") -> dict[str, Any]:
    """Key-by-key 3-way merge; a key changed differently on both sides keeps ``winner``'s value.

    ``clash`` says what happened to such a key (a 2-way merge, with no base, only knows they differ).
    """
    if not isinstance(base, dict):
        base = {}
    out: dict[str, Any] = {}
    for key in list(local) + [k for k in remote if k not in local]:
        b, lv, rv = base.get(key, MISSING), local.get(key, MISSING), remote.get(key, MISSING)
        value, conflict = _pick3(b, lv, rv)
        if conflict:
            if isinstance(lv, dict) and isinstance(rv, dict):
                value = merge_dict3(b, lv, rv, f"{where}.{key}", winner, notes, clash)
            elif key == "tags" and all(isinstance(v, list) for v in (lv, rv)):
                value = _merge_list_as_set(b if isinstance(b, list) else [], lv, rv)
            else:
                value = lv if winner == "local" else rv
                if value is MISSING:
                    notes.append(f"{where}.{key}: one side changed it, the other removed it; "
                                 f"the {winner} side's removal wins")
                else:
                    notes.append(f"{where}.{key}: {clash}; kept the {winner} value")
        if value is not MISSING:
            out[key] = value
    return out


# --- source text ---------------------------------------------------------------------------------

def _matches(base: list[str], side: list[str]) -> dict[int, int]:
    """base line -> side line for the lines a diff keeps."""
    from difflib import SequenceMatcher  # imported when needed: the CLI starts faster
    out: dict[int, int] = {}
    for a, b, size in SequenceMatcher(None, base, side, autojunk=False).get_matching_blocks():
        for k in range(size):
            out[a + k] = b + k
    return out


def merge_text3(base: str, local: str, remote: str, strategy: Strategy = "inline",
                marker_size: int = 7) -> tuple[str, int]:
    """diff3 of three texts by lines: (merged text, number of conflicting hunks).

    Conflicting hunks are written between ``<<<<<<< local``, ``=======`` and ``>>>>>>> remote``
    lines (strategy ``inline``, also ``union``), or resolved to one side (``local``/``remote``).
    """
    if local == remote or remote == base:
        return local, 0
    if local == base:
        return remote, 0
    o, a, b = base.splitlines(True), local.splitlines(True), remote.splitlines(True)
    ma, mb = _matches(o, a), _matches(o, b)
    stable = sorted(set(ma) & set(mb))
    out: list[str] = []
    conflicts = 0
    io = ia = ib = 0
    s = 0  # index into ``stable``
    while True:
        # a run of lines unchanged on both sides
        if io < len(o) and ma.get(io) == ia and mb.get(io) == ib:
            out.append(o[io])
            io, ia, ib = io + 1, ia + 1, ib + 1
            continue
        while s < len(stable) and (stable[s] < io or ma[stable[s]] < ia or mb[stable[s]] < ib):
            s += 1
        if s < len(stable):
            eo = stable[s]
            ea, eb = ma[eo], mb[eo]
        else:
            eo, ea, eb = len(o), len(a), len(b)
        if (eo, ea, eb) == (io, ia, ib):
            break  # at the end of all three
        co, ca, cb = o[io:eo], a[ia:ea], b[ib:eb]
        if ca == co:
            out += cb
        elif cb == co or ca == cb:
            out += ca
        else:
            conflicts += 1
            if strategy == "local":
                out += ca
            elif strategy == "remote":
                out += cb
            else:
                out += _conflict_hunk(ca, cb, marker_size, at_end=eo == len(o) and ea == len(a) and eb == len(b))
        io, ia, ib = eo, ea, eb
    return "".join(out), conflicts


def _conflict_hunk(ca: list[str], cb: list[str], size: int, *, at_end: bool) -> list[str]:
    def closed(lines: list[str]) -> list[str]:
        return lines[:-1] + [lines[-1] + "\n"] if lines and not lines[-1].endswith("\n") else lines

    hunk = ["<" * size + " local\n", *closed(ca), "=" * size + "\n", *closed(cb), ">" * size + " remote\n"]
    if at_end and not (ca and ca[-1].endswith("\n")) and not (cb and cb[-1].endswith("\n")):
        hunk[-1] = hunk[-1][:-1]  # neither version ended with a newline: neither does the merge
    return hunk


# --- cells ---------------------------------------------------------------------------------------

def _tag(cell: dict[str, Any], *tags: str) -> dict[str, Any]:
    """Add ``tags`` to ``cell`` (a dict of its own; its metadata may be shared, so it is copied)."""
    meta = cell.get("metadata")
    meta = cell["metadata"] = dict(meta) if isinstance(meta, dict) else {}
    current = meta.get("tags")
    current = [t for t in current if isinstance(t, str)] if isinstance(current, list) else []
    meta["tags"] = current + [t for t in tags if t not in current]
    return cell


def _same_cell(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal cells, whether the source is stored as one string or as a list of lines."""
    if a == b:
        return True
    if a.keys() != b.keys() or source_text(a) != source_text(b):
        return False
    return all(a[k] == b[k] for k in a if k != "source")


def _fit_type(cell: dict[str, Any]) -> dict[str, Any]:
    """Keep exactly the fields the cell's type allows (a type change on one side moves the others)."""
    if cell.get("cell_type") == "code":
        cell.pop("attachments", None)
        if not isinstance(cell.get("outputs"), list):
            cell["outputs"] = []
        cell.setdefault("execution_count", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
    return cell


Cells = list[dict[str, Any]]
_RUN_STATE = ("outputs", "execution_count", "attachments")


class _CellMerge:
    def __init__(self, strategy: Strategy, marker_size: int, result: MergeResult, *, two_way: bool,
                 keep_changed: bool) -> None:
        self.strategy = strategy
        self.keep_changed = keep_changed
        self.marker_size = marker_size
        self.winner = "remote" if strategy == "remote" else "local"
        self.result = result
        self.two_way = two_way
        self.clash = "the two sides differ" if two_way else "both sides changed it"

    def changed(self, what: str) -> str:
        """``what`` differs between the sides, as far as this merge knows."""
        return f"the two sides differ in {what}" if self.two_way else f"both sides changed {what}"

    def unit(self, b: dict[str, Any] | None, lc: dict[str, Any] | None, rc: dict[str, Any] | None,
             at: int) -> Cells:
        """The merged cells of one cell's versions (``at``: where they go in the merged notebook)."""
        where = f"cell {at}"
        if lc is not None and rc is not None:
            cells, conflict = self.two(lc, rc, where) if self.two_way else self.three(b, lc, rc, where)
            what = "the two sides differ" if self.two_way else "both sides edited it differently"
        elif b is not None and (lc is not None or rc is not None):
            side = "local" if lc is not None else "remote"
            cells, conflict = self.one_side(b, lc if lc is not None else rc, side, where)  # type: ignore[arg-type]
            other = "remote" if side == "local" else "local"
            what = f"the {other} side deleted it, the {side} side changed it"
        else:
            kept = lc if lc is not None else rc
            cells, conflict, what = ([dict(kept)] if kept is not None else []), False, ""
        if conflict:
            self.result.conflicts.append(f"{where}: {what}; tagged {CONFLICT_TAG!r}")
            self.result.conflict_cells.append(at)
        return cells

    def three(self, b: dict[str, Any] | None, lc: dict[str, Any], rc: dict[str, Any],
              where: str) -> tuple[Cells, bool]:
        """Merge one cell's two versions given its base version (None: inserted on both sides)."""
        if _same_cell(lc, rc) or (b is not None and _same_cell(rc, b)):
            if b is not None and not _same_cell(lc, rc):
                self.result.taken.append(f"{where}: only the local side changed it; took the local version")
            return [dict(lc)], False
        if b is not None and _same_cell(lc, b):
            self.result.taken.append(f"{where}: only the remote side changed it; took the remote version")
            return [dict(rc)], False
        base: dict[str, Any] = b if b is not None else {}
        notes = self.result.notes
        cell_type, type_conflict = _pick3(base.get("cell_type", MISSING), lc.get("cell_type"), rc.get("cell_type"))
        btext = source_text(base) if b is not None else ""
        text, hunks = merge_text3(btext, source_text(lc), source_text(rc), self.strategy, self.marker_size)
        conflict = type_conflict or hunks > 0
        if conflict and self.strategy == "union":
            return self.both(lc, rc, where, "both sides edited it differently"), False
        if type_conflict and self.strategy == "remote":
            cell_type = rc.get("cell_type")
        out = self.fields(base, lc, rc, where)
        out["cell_type"] = cell_type
        out["source"] = text
        out = _fit_type(out)
        if type_conflict and self.strategy == "inline":
            notes.append(f"{where}: the two sides changed the cell type differently; kept the local type")
        if conflict and self.strategy == "inline":
            return [_tag(out, CONFLICT_TAG)], True
        if conflict:
            notes.append(f"{where}: conflicting edits resolved to the {self.strategy} side")
        return [out], False

    def fields(self, base: dict[str, Any], lc: dict[str, Any], rc: dict[str, Any], where: str) -> dict[str, Any]:
        """Every field but the type and the source, merged key by key."""
        notes = self.result.notes
        out: dict[str, Any] = {}
        outputs_cleared = False
        for key in list(lc) + [k for k in rc if k not in lc]:
            if key in ("cell_type", "source"):
                continue
            bv, lv, rv = base.get(key, MISSING), lc.get(key, MISSING), rc.get(key, MISSING)
            if key == "id":
                value = lv if lv is not MISSING else rv
            elif key in ("metadata", "attachments") and isinstance(lv, dict) and isinstance(rv, dict):
                value = merge_dict3(bv, lv, rv, f"{where} {key}", self.winner, notes, self.clash)
            else:
                value, clash = _pick3(bv, lv, rv)
                if clash and key == "outputs":
                    value = []
                    outputs_cleared = True
                    notes.append(f"{where}: {self.changed('the outputs')}; cleared them (re-run the cell)")
                elif clash and key == "execution_count":
                    value = None
                    notes.append(f"{where}: {self.changed('the execution count')}; cleared it")
                elif clash:
                    value = lv if self.winner == "local" else rv
                    notes.append(f"{where}: {self.changed(repr(key))}; kept the {self.winner} value")
            if value is not MISSING:
                out[key] = value
        if outputs_cleared and "execution_count" in out:
            out["execution_count"] = None  # no outputs: the cell was not run in this state
        if not isinstance(out.get("metadata"), dict):
            out["metadata"] = {}
        return out

    def both(self, lc: dict[str, Any], rc: dict[str, Any], where: str, what: str) -> Cells:
        """The two versions as two adjacent cells, local first, tagged (strategy ``union``)."""
        self.result.notes.append(f"{where}: {what}; kept both versions (local first) as two cells "
                                 f"tagged {CONFLICT_TAG!r}")
        return [_tag(dict(lc), CONFLICT_TAG, SIDE_TAGS["local"]), _tag(dict(rc), CONFLICT_TAG, SIDE_TAGS["remote"])]

    def two(self, lc: dict[str, Any], rc: dict[str, Any], where: str) -> tuple[Cells, bool]:
        """Merge two versions of a cell without a base: nothing says which side changed what."""
        if _same_cell(lc, rc):
            return [dict(lc)], False
        if content_key(lc) == content_key(rc):
            return [self.same_source(lc, rc, where)], False
        if self.strategy == "union":
            return self.both(lc, rc, where, "the two sides differ"), False
        if self.strategy in ("local", "remote"):
            self.result.notes.append(f"{where}: the two sides differ; kept the {self.strategy} version")
            return [dict(lc if self.strategy == "local" else rc)], False
        return self.three(None, lc, rc, where)  # both versions between markers in one cell

    def same_source(self, lc: dict[str, Any], rc: dict[str, Any], where: str) -> dict[str, Any]:
        """One cell, two runs or metadata (no base): the winner's run, metadata merged key by key."""
        keep, other = (lc, rc) if self.winner == "local" else (rc, lc)
        cell = dict(keep)
        lmeta, rmeta = lc.get("metadata"), rc.get("metadata")
        if isinstance(lmeta, dict) and isinstance(rmeta, dict) and lmeta != rmeta:
            cell["metadata"] = merge_dict3({}, lmeta, rmeta, f"{where} metadata", self.winner,
                                           self.result.notes, self.clash)
        differ = [k for k in _RUN_STATE if lc.get(k) != rc.get(k)]
        if differ:
            self.result.notes.append(f"{where}: same source, different {' and '.join(differ)}; "
                                     f"kept the {self.winner} side's")
        if "id" not in cell and "id" in other:
            cell["id"] = other["id"]
        return cell

    def one_side(self, b: dict[str, Any], kept: dict[str, Any], side: str,
                 where: str) -> tuple[Cells, bool]:
        """``kept`` is ``side``'s version of base cell ``b``; the other side deleted it."""
        other = "remote" if side == "local" else "local"
        if _same_cell(kept, b):
            self.result.taken.append(f"a cell the {other} side deleted (unchanged on the {side} side) stays "
                                     f"deleted (before {where})")
            return [], False
        if self.strategy == other and not self.keep_changed:
            self.result.notes.append(f"the {other} side deleted a cell the {side} side changed; deleted it "
                                     f"(the {other} side wins)")
            return [], False
        cell = dict(kept)
        if self.strategy == side:
            return [cell], False
        if self.strategy != "inline":
            self.result.notes.append(f"{where}: the {other} side deleted it, the {side} side changed it; "
                                     f"kept it tagged {CONFLICT_TAG!r}")
        return [_tag(cell, CONFLICT_TAG, SIDE_TAGS[side])], self.strategy == "inline"


# --- order ---------------------------------------------------------------------------------------

@dataclass
class _Unit:
    b: int | None = None
    l: int | None = None
    r: int | None = None


def _insert_key(cell: dict[str, Any]) -> Hashable:
    return ("id", cell["id"]) if valid_id(cell.get("id")) else content_key(cell)


def _units(bcells: Cells, lcells: Cells, rcells: Cells) -> list[_Unit]:
    """One unit per base cell, plus one per cell a side inserted, with each side's version of it."""
    units = [_Unit(b=i) for i in range(len(bcells))]
    for side, cells in (("l", lcells), ("r", rcells)):
        for i, j in match(bcells, cells):
            if j is None:
                continue
            if i is None:
                units.append(_Unit(**{side: j}))
            else:
                setattr(units[i], side, j)
    return units


def _order(units: list[_Unit], lcells: Cells, rcells: Cells) -> list[int]:
    """The merged order of the units (indices into ``units``); units on neither side are left out."""
    ul = [-1] * len(lcells)
    ur = [-1] * len(rcells)
    for u, unit in enumerate(units):
        if unit.l is not None:
            ul[unit.l] = u
        if unit.r is not None:
            ur[unit.r] = u
    pos_l = {u: i for i, u in enumerate(ul)}
    pos_r = {u: j for j, u in enumerate(ur)}

    # cells kept on both sides in the same relative order anchor the merge
    common = [u for u in ul if units[u].r is not None]
    anchor_at = increasing([pos_r[u] for u in common])
    anchors = [u for k, u in enumerate(common) if k in anchor_at]

    # a cell kept on both sides but out of that order moved: it goes where the side that moved it put it
    def moved(seq: list[int]) -> set[int]:
        based = [u for u in seq if units[u].b is not None]
        keep = increasing([units[u].b for u in based])  # type: ignore[misc]
        return {u for k, u in enumerate(based) if k not in keep}

    moved_l, moved_r = moved(ul), moved(ur)
    at_remote = {u for u in common if u in moved_r and u not in moved_l}

    order: list[int] = []
    il = ir = 0
    for anchor in [*anchors, None]:
        el = pos_l[anchor] if anchor is not None else len(ul)
        er = pos_r[anchor] if anchor is not None else len(ur)
        gl = [u for u in ul[il:el] if units[u].r is None or u not in at_remote]
        gr = [u for u in ur[ir:er] if units[u].l is None or u in at_remote]
        order += _merge_gap(units, gl, gr, lcells, rcells)
        if anchor is not None:
            order.append(anchor)
        il, ir = el + 1, er + 1
    return order


def _merge_gap(units: list[_Unit], gl: list[int], gr: list[int], lcells: Cells, rcells: Cells) -> list[int]:
    """Interleave the units between two anchors in base order; a cell both sides inserted goes once.

    A cell a side inserted goes between the base cells that side has around it, so an edit that reads
    as a deletion plus an insertion stays where the deleted cell was; otherwise local cells go first.
    """
    if not gl or not gr:
        return gl + gr
    li = [u for u in gl if units[u].b is None and units[u].r is None]
    ri = [u for u in gr if units[u].b is None and units[u].l is None]
    pairs: list[tuple[int, int]] = []
    if li and ri:
        ka = [_insert_key(lcells[units[u].l]) for u in li]  # type: ignore[index]
        kb = [_insert_key(rcells[units[u].r]) for u in ri]  # type: ignore[index]
        pairs = [(li[a], ri[b]) for a, b in equal_pairs(ka, kb)]
    after = _after_base(units, gl) | _after_base(units, gr)
    out: list[int] = []
    pl = pr = 0
    at_l = {u: k for k, u in enumerate(gl)}
    at_r = {u: k for k, u in enumerate(gr)}
    for ul_, ur_ in pairs:
        units[ul_].r, units[ur_].r = units[ur_].r, None  # the remote cell joins the local unit
        end_l, end_r = at_l[ul_], at_r[ur_]
        out += _interleave(gl[pl:end_l], gr[pr:end_r], after) + [ul_]
        pl, pr = end_l + 1, end_r + 1
    return out + _interleave(gl[pl:], gr[pr:], after)


def _after_base(units: list[_Unit], seq: list[int]) -> dict[int, tuple[float, float]]:
    """For each unit of one side's run: the last base cell at or before it and the first at or after it.

    Both grow along the run, so ordering two runs by them keeps each run's own order.
    """
    out: dict[int, tuple[float, float]] = {}
    last: float = -1
    for u in seq:
        b = units[u].b
        last = max(last, b) if b is not None else last
        out[u] = (last, 0)
    first = float("inf")
    for u in reversed(seq):
        b = units[u].b
        first = min(first, b) if b is not None else first
        out[u] = (out[u][0], first)
    return out


def _interleave(gl: list[int], gr: list[int], at: dict[int, tuple[float, float]]) -> list[int]:
    """Merge two runs, each in its own order, by the base cells around them (local first on a tie)."""
    out: list[int] = []
    i = j = 0
    while i < len(gl) and j < len(gr):
        if at[gr[j]] < at[gl[i]]:
            out.append(gr[j])
            j += 1
        else:
            out.append(gl[i])
            i += 1
    return out + gl[i:] + gr[j:]


Step = tuple[int | None, int | None, int | None]  # base, local and remote index of one merged cell


def _steps3(bcells: Cells, lcells: Cells, rcells: Cells) -> list[Step]:
    units = _units(bcells, lcells, rcells)
    order = _order(units, lcells, rcells)
    return [(units[u].b, units[u].l, units[u].r) for u in order]


def _steps2(lcells: Cells, rcells: Cells) -> list[Step]:
    return [(None, i, j) for i, j in align(lcells, rcells)]


# --- notebook ------------------------------------------------------------------------------------

def _cells(nb: dict[str, Any] | None) -> Cells:
    cells = nb.get("cells") if nb is not None else None
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def _merge_top(base: dict[str, Any] | None, local: dict[str, Any], remote: dict[str, Any], winner: str,
               clash: str, notes: list[str]) -> dict[str, Any]:
    """Everything but the cells: metadata key by key, the newer nbformat version."""
    rest = {k: v for k, v in local.items() if k != "cells"}
    rest_r = {k: v for k, v in remote.items() if k != "cells"}
    rest_b = {k: v for k, v in base.items() if k != "cells"} if base is not None else {}
    top: list[str] = []
    merged = merge_dict3(rest_b, rest, rest_r, "notebook", winner, top, clash)
    notes += [n.replace("notebook.metadata", "metadata", 1) for n in top
              if not n.startswith(("notebook.nbformat:", "notebook.nbformat_minor:"))]
    for key in ("nbformat", "nbformat_minor"):  # the newer format wins
        values = [d[key] for d in (local, remote) if isinstance(d.get(key), int)]
        if values:
            merged[key] = max(values)
    if not isinstance(merged.get("metadata"), dict):
        merged["metadata"] = {}
    return merged


def merge3(base: dict[str, Any] | None, local: dict[str, Any], remote: dict[str, Any],
           strategy: Strategy = "inline", marker_size: int = 7, *, keep_changed: bool = False) -> MergeResult:
    """Merge ``local`` and ``remote`` (nbformat-4 dicts) given their common ancestor ``base``.

    ``base`` None merges the two sides with each other (2-way): every cell either side has is kept.
    ``keep_changed``: a cell one side deleted and the other changed is kept (tagged) even when the
    strategy takes the deleting side (``repair`` never drops a cell a side kept).
    """
    lcells, rcells = _cells(local), _cells(remote)
    result = MergeResult({})
    merger = _CellMerge(strategy, marker_size, result, two_way=base is None, keep_changed=keep_changed)
    merged = _merge_top(base, local, remote, merger.winner, merger.clash, result.notes)
    bcells = _cells(base)
    steps = _steps2(lcells, rcells) if base is None else _steps3(bcells, lcells, rcells)
    out: Cells = []
    for b, l, r in steps:
        out += merger.unit(bcells[b] if b is not None else None, lcells[l] if l is not None else None,
                           rcells[r] if r is not None else None, len(out))
    merged["cells"] = out
    _fix_ids(merged)
    result.nb = merged
    return result


def _fix_ids(nb: dict[str, Any]) -> None:
    """Unique, valid ids on every cell from nbformat 4.5 on (deterministic); none before it."""
    import hashlib
    cells: list[dict[str, Any]] = nb["cells"]
    minor = nb.get("nbformat_minor")
    if not isinstance(minor, int) or minor < CURRENT_MINOR:
        if not any("id" in c for c in cells):
            return
        nb["nbformat_minor"] = CURRENT_MINOR
    taken = {c["id"] for c in cells if valid_id(c.get("id"))}
    seen: set[str] = set()
    for index, cell in enumerate(cells):
        value = cell.get("id")
        if isinstance(value, str) and valid_id(value) and value not in seen:
            seen.add(value)
            continue
        seed = f"{value}|{index}|{source_text(cell)}"
        n = 0
        while True:
            fresh = hashlib.sha1(f"{seed}|{n}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
            if fresh not in taken:
                break
            n += 1
        taken.add(fresh)
        seen.add(fresh)
        cell["id"] = fresh
