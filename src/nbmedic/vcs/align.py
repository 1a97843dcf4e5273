"""Pair the cells of two versions of a notebook: by id, then by equal content, then by similar source.

Shared by ``nbmedic repair`` (2-way merges of conflicted files), ``nbmedic diff`` and ``nbmedic merge``.

* ``align`` is order-preserving: it returns the pairs (i, j), (i, None), (None, j) in an order that
  keeps both sides' order; cells that moved show as a deletion plus an insertion.
* ``match`` also finds moved cells: ids are matched wherever they are, the cells left over are then
  aligned in order.

Equal ids and equal content are found through hashes (``SequenceMatcher`` on hashable keys), so long
notebooks align in near-linear time; the quadratic similarity grid only runs on small runs of
unmatched cells, and a long run falls back to a linear, windowed scan.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from nbmedic.notebook.cells import source_text
from nbmedic.notebook.format import valid_id

SIMILARITY = 0.6
_MAX_SIMILARITY_GRID = 2500  # cells x cells of one run of unmatched cells
_WINDOW = 8  # how far the linear fallback looks ahead for a similar cell

Pair = tuple[int | None, int | None]

__all__ = ["SIMILARITY", "Pair", "align", "content_key", "match", "similar"]


def content_key(cell: Any) -> Hashable:
    """What makes two cells the same cell content: type and source."""
    if not isinstance(cell, dict):
        return ("?", repr(cell))
    return (str(cell.get("cell_type")), source_text(cell))


def _id_key(cell: Any, side: str, index: int) -> Hashable:
    if isinstance(cell, dict) and valid_id(cell.get("id")):
        return ("id", cell["id"])
    return ("none", side, index)  # never equal to anything on the other side


def align(local: Sequence[Any], remote: Sequence[Any]) -> list[Pair]:
    """Order-preserving pairing of two cell lists: (i, j), (i, None) or (None, j)."""
    return align_indices(local, remote, list(range(len(local))), list(range(len(remote))))


def align_indices(local: Sequence[Any], remote: Sequence[Any], li: list[int], ri: list[int],
                  *, use_ids: bool = True) -> list[Pair]:
    """``align`` restricted to the cells ``li`` of ``local`` and ``ri`` of ``remote``."""
    return _stage(local, remote, li, ri, 0 if use_ids else 1)


def _stage(local: Sequence[Any], remote: Sequence[Any], li: list[int], ri: list[int],
           stage: int) -> list[Pair]:
    from difflib import SequenceMatcher  # imported when needed: the CLI starts faster
    if not li or not ri:
        return [(i, None) for i in li] + [(None, j) for j in ri]
    if stage == 2:
        return _similar(local, remote, li, ri)
    if stage == 0:
        ka = [_id_key(local[i], "L", i) for i in li]
        kb = [_id_key(remote[j], "R", j) for j in ri]
    else:
        ka = [content_key(local[i]) for i in li]
        kb = [content_key(remote[j]) for j in ri]
    out: list[Pair] = []
    a0 = b0 = 0
    for a, b, size in SequenceMatcher(None, ka, kb, autojunk=False).get_matching_blocks():
        out += _stage(local, remote, li[a0:a], ri[b0:b], stage + 1)
        out += [(li[a + k], ri[b + k]) for k in range(size)]
        a0, b0 = a + size, b + size
    return out


def _pairable(a: Any, b: Any) -> bool:
    if not (isinstance(a, dict) and isinstance(b, dict)) or a.get("cell_type") != b.get("cell_type"):
        return False
    # two different ids are two different cells (each side inserted one): never pair them
    return not (valid_id(a.get("id")) and valid_id(b.get("id")))


def similar(a: Any, b: Any) -> float:
    """The similarity of two cells' sources (0 when they cannot be the same cell or are too different)."""
    from difflib import SequenceMatcher  # imported when needed: the CLI starts faster
    if not _pairable(a, b):
        return 0.0
    matcher = SequenceMatcher(None, source_text(a), source_text(b), autojunk=False)
    if matcher.real_quick_ratio() >= SIMILARITY and matcher.quick_ratio() >= SIMILARITY:
        ratio = matcher.ratio()
        if ratio >= SIMILARITY:
            return ratio
    return 0.0


def _similar(local: Sequence[Any], remote: Sequence[Any], li: list[int], ri: list[int]) -> list[Pair]:
    """Pair similar cells with a small alignment grid (maximal total similarity, order kept)."""
    n, m = len(li), len(ri)
    if n * m > _MAX_SIMILARITY_GRID:
        return _similar_linear(local, remote, li, ri)
    score = [[similar(local[li[x]], remote[ri[y]]) for y in range(m)] for x in range(n)]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for x in range(n - 1, -1, -1):
        for y in range(m - 1, -1, -1):
            take = best[x + 1][y + 1] + score[x][y] if score[x][y] else 0.0
            best[x][y] = max(take, best[x + 1][y], best[x][y + 1])
    out: list[Pair] = []
    x = y = 0
    pending_remote: list[Pair] = []
    while x < n and y < m:
        if score[x][y] and best[x][y] == best[x + 1][y + 1] + score[x][y]:
            out += pending_remote
            pending_remote = []
            out.append((li[x], ri[y]))
            x, y = x + 1, y + 1
        elif best[x][y] == best[x + 1][y]:
            out.append((li[x], None))
            x += 1
        else:
            pending_remote.append((None, ri[y]))
            y += 1
    out += [(li[k], None) for k in range(x, n)]
    out += pending_remote + [(None, ri[k]) for k in range(y, m)]
    return out


def _similar_linear(local: Sequence[Any], remote: Sequence[Any], li: list[int], ri: list[int]) -> list[Pair]:
    """A long run of unmatched cells: pair each cell with a similar one a few cells ahead (linear time)."""
    out: list[Pair] = []
    y = 0
    for i in li:
        for k in range(y, min(y + _WINDOW, len(ri))):
            if similar(local[i], remote[ri[k]]):
                out += [(None, j) for j in ri[y:k]]
                out.append((i, ri[k]))
                y = k + 1
                break
        else:
            out.append((i, None))
    out += [(None, j) for j in ri[y:]]
    return out


def match(old: Sequence[Any], new: Sequence[Any]) -> list[Pair]:
    """Pair the cells of ``old`` and ``new``, moved cells included: (i, j), (i, None) or (None, j).

    Cells with the same id pair wherever they are (a move); the others pair in order by equal
    content, then by similar source.  The pairs come in no particular order.
    """
    by_id: dict[str, int] = {}
    for i, cell in enumerate(old):
        if isinstance(cell, dict) and valid_id(cell.get("id")):
            by_id.setdefault(cell["id"], i)
    pairs: list[Pair] = []
    used_old: set[int] = set()
    rest_new: list[int] = []
    for j, cell in enumerate(new):
        found = by_id.get(cell["id"]) if isinstance(cell, dict) and valid_id(cell.get("id")) else None
        if found is not None and found not in used_old:
            used_old.add(found)
            pairs.append((found, j))
        else:
            rest_new.append(j)
    # two different ids are two different cells: content pairs a cell without an id (a side that
    # predates nbformat 4.5, or dropped ids) with one that has one, never two cells with ids
    rest_old = [i for i in range(len(old)) if i not in used_old]
    old_noid = [i for i in rest_old if not _has_id(old[i])]
    new_noid = {j for j in rest_new if not _has_id(new[j])}
    first = align_indices(old, new, old_noid, rest_new, use_ids=False)
    pairs += [p for p in first if p[0] is not None]
    left_new = [j for i, j in first if i is None and j is not None]
    old_id = [i for i in rest_old if _has_id(old[i])]
    second = align_indices(old, new, old_id, [j for j in left_new if j in new_noid], use_ids=False)
    pairs += second
    paired_new = {j for _, j in pairs if j is not None}
    pairs += [(None, j) for j in left_new if j not in paired_new]
    return pairs


def _has_id(cell: Any) -> bool:
    return isinstance(cell, dict) and valid_id(cell.get("id"))
