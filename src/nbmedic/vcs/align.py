"""Pair the cells of two versions of a notebook: by id, then by equal content, then by similar source.

Shared by ``nbmedic diff``, ``nbmedic merge`` and ``nbmedic repair`` (which rebuilds conflicted files
with the merge).

* ``align`` is order-preserving: it returns the pairs (i, j), (i, None), (None, j) in an order that
  keeps both sides' order; cells that moved show as a deletion plus an insertion.
* ``match`` also finds moved cells: ids are matched wherever they are, the cells left over are then
  aligned in order.

Notebooks repeat cells (``plt.show()``, ``df.head()``, whole sections pasted twice), so an equal cell
is no proof of the same cell.  Alignment therefore prefers the pairing that keeps position, in the
manner of patience diff:

1. the common head and tail of a stretch pair first, cell by cell;
2. cells whose id (then whose content) occurs exactly once on each side of the stretch anchor it, in
   the longest order both sides agree on (a longest increasing subsequence), unless a longer run of
   equal cells contradicts them (a unique cell moved across repeated ones);
3. the stretches between anchors are aligned again, recursively, so that duplicates pair within
   their own stretch;
4. a short stretch without anchors is aligned exactly: the pairing with the most equal and similar
   cells, and of those the one closest to the stretch's diagonal; a long one pairs the longest run of
   equal cells (past a work limit, searched near the diagonals only), or, with no equal cells at
   all, scans linearly a few cells ahead.  Of equally long runs (a run of repeated cells that could
   slide along a longer one) the one that leaves the most equal and similar cells to pair beside it
   wins, then the one nearest the diagonal: among identical cells position is the only identity.

Steps 1 to 3 are hash and sort based, so long notebooks align in near-linear time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from nbmedic.notebook.cells import source_text
from nbmedic.notebook.format import valid_id

SIMILARITY = 0.6
_GRID = 2500  # cells x cells of a stretch aligned exactly
_BLOCK_WORK = 200_000  # pairs of equal cells the longest-run search may visit in one stretch
_BAND = 32  # past that, how far from the diagonals it looks
_WINDOW = 8  # how far the linear scan looks ahead
_REACH = 8  # cells beside a run of equal cells that break a tie between equally long runs
_TIES = 64  # equally long runs (the nearest the diagonals) weighed by what lies beside them
_NEAR = 1e-7  # per cell off the diagonal: breaks ties between equally good pairings, nothing more

Pair = tuple[int | None, int | None]
Stretch = tuple[int, int, int, int]  # a0, a1, b0, b1: the cells a0 <= x < a1 and b0 <= y < b1
Score = Callable[[int, int], float]  # how similar cell x of one side is to cell y of the other (0: unpairable)

__all__ = ["SIMILARITY", "Pair", "align", "align_indices", "content_key", "equal_pairs", "increasing",
           "match", "similar"]


def content_key(cell: Any) -> Hashable:
    """What makes two cells the same cell content: type and source."""
    if not isinstance(cell, dict):
        return ("?", repr(cell))
    return (str(cell.get("cell_type")), source_text(cell))


def _has_id(cell: Any) -> bool:
    return isinstance(cell, dict) and valid_id(cell.get("id"))


# --- the stretch aligner (keys only) ---------------------------------------------------------------

def increasing(values: Sequence[int]) -> set[int]:
    """Positions of one longest strictly increasing subsequence of ``values`` (O(n log n))."""
    tails: list[int] = []
    tail_pos: list[int] = []
    prev = [-1] * len(values)
    for p, v in enumerate(values):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_pos.append(p)
        else:
            tails[k] = v
            tail_pos[k] = p
        prev[p] = tail_pos[k - 1] if k else -1
    out: set[int] = set()
    p = tail_pos[-1] if tail_pos else -1
    while p >= 0:
        out.add(p)
        p = prev[p]
    return out


def _anchors(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch) -> list[tuple[int, int]]:
    """Pairs of keys found exactly once on each side of the stretch, in an order both sides keep."""
    a0, a1, b0, b1 = s
    once_b: dict[Hashable, int] = {}
    for y in range(b0, b1):
        once_b[kb[y]] = -1 if kb[y] in once_b else y
    seen_a: dict[Hashable, int] = {}
    for x in range(a0, a1):
        seen_a[ka[x]] = -1 if ka[x] in seen_a else x
    found = [(x, once_b[k]) for k, x in seen_a.items() if x >= 0 and once_b.get(k, -1) >= 0]
    found.sort()
    keep = increasing([y for _, y in found])
    return [p for n, p in enumerate(found) if n in keep]


def _against(run: tuple[int, int, int], anchors: list[tuple[int, int]]) -> int:
    """How many anchors a run of equal cells contradicts (they cannot all be kept with it)."""
    rx, ry, size = run
    ex, ey = rx + size, ry + size
    return sum(1 for x, y in anchors
               if not ((x < rx and y < ry) or (x >= ex and y >= ey) or (rx <= x < ex and x - rx == y - ry)))


def _between(anchors: list[tuple[int, int]], s: Stretch) -> list[Stretch]:
    a0, a1, b0, b1 = s
    out: list[Stretch] = []
    for x, y in anchors:
        out.append((a0, x, b0, y))
        a0, b0 = x + 1, y + 1
    out.append((a0, a1, b0, b1))
    return out


def _off_diagonal(dx: int, dy: int, skew: int) -> int:
    """How far (dx, dy) inside a stretch lies from the diagonal through its start or through its end."""
    return min(abs(dx - dy), abs(dx - dy - skew))


def _grid(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch, score: Score | None) -> list[tuple[int, int]]:
    """Exact alignment of a short stretch: most equal (1.0) and similar cells, then nearest the diagonal."""
    a0, a1, b0, b1 = s
    n, m = a1 - a0, b1 - b0
    skew = n - m
    gain = [[0.0] * m for _ in range(n)]
    for x in range(n):
        row = gain[x]
        for y in range(m):
            if ka[a0 + x] == kb[b0 + y]:
                value = 1.0
            else:
                value = score(a0 + x, b0 + y) if score is not None else 0.0
            if value:
                row[y] = value - _NEAR * _off_diagonal(x, y, skew)
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for x in range(n - 1, -1, -1):
        for y in range(m - 1, -1, -1):
            take = best[x + 1][y + 1] + gain[x][y] if gain[x][y] else 0.0
            best[x][y] = max(take, best[x + 1][y], best[x][y + 1])
    out: list[tuple[int, int]] = []
    x = y = 0
    while x < n and y < m:
        if gain[x][y] and best[x][y] == best[x + 1][y + 1] + gain[x][y]:
            out.append((a0 + x, b0 + y))
            x, y = x + 1, y + 1
        elif best[x][y] == best[x + 1][y]:
            x += 1
        else:
            y += 1
    return out


def _longest_runs(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch) -> tuple[int, list[tuple[int, int, int]]]:
    """The size of the longest runs of equal keys and where they start, nearest the diagonal first:
    (size, [(distance, x, y), ...]); (0, []) when there is no equal key.

    When the search would visit more than ``_BLOCK_WORK`` pairs of equal keys (a long stretch of a
    few cells repeated many times), only the cells within ``_BAND`` of the diagonals through the
    stretch's start and end are searched.
    """
    a0, a1, b0, b1 = s
    where: dict[Hashable, list[int]] = {}
    for y in range(b0, b1):
        where.setdefault(kb[y], []).append(y)
    banded = sum(len(where.get(ka[x], ())) for x in range(a0, a1)) > _BLOCK_WORK
    skew = (a1 - a0) - (b1 - b0)
    longest = 0
    ties: list[tuple[int, int, int]] = []  # (distance, x, y) of the longest runs found so far
    run: dict[int, int] = {}
    for x in range(a0, a1):
        here: dict[int, int] = {}
        ys = _band(kb, ka[x], b0 + x - a0, skew, b0, b1) if banded else where.get(ka[x], ())
        for y in ys:
            size = here[y] = run.get(y - 1, 0) + 1
            if size >= longest:
                if size > longest:
                    longest, ties = size, []
                ties.append((_off_diagonal(x - a0, y - b0, skew), x - size + 1, y - size + 1))
        run = here
    ties.sort()
    return longest, ties


def _settle(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch, size: int,
            ties: list[tuple[int, int, int]], score: Score | None) -> tuple[int, int, int]:
    """Of equally long runs, the one that leaves the most equal and similar cells to pair beside it
    (``_beside``), then the one nearest the diagonal.

    Among identical cells position is the only identity: a run of repeated cells can slide along a
    longer run of them, and only what lies beside the two runs says where it belongs (the edited
    cell stays paired with its old self, an inserted cell is not taken for a deleted one).
    """
    if score is not None and len(ties) > 1:
        ranked = [(-round(_beside(ka, kb, s, (x, y, size), score), 9), d, x, y) for d, x, y in ties[:_TIES]]
        _, _, x, y = min(ranked)
        return x, y, size
    _, x, y = ties[0]
    return x, y, size


def _beside(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch, run: tuple[int, int, int],
            score: Score) -> float:
    """How much a run leaves to pair just before and just after it, inside the stretch.

    At each end of the run, when one side's run of the same key goes on past it (the run slides along
    a longer one), those extra cells can only pair with the other side's cells beyond its end: up to
    that many of them equal or similar to the key, among the nearest ones (the extra cells plus
    ``_REACH``).  Otherwise the run's diagonal may go on as similar cells (an edited cell beside its
    copies), up to ``_REACH`` of them, stopping at the first pair that is not similar.
    """
    a0, a1, b0, b1 = s
    x, y, size = run
    key = ka[x]
    total = 0.0
    for step, ax, by in ((-1, x - 1, y - 1), (1, x + size, y + size)):
        extra_a = _repeats(ka, key, ax, step, a0, a1)
        extra_b = _repeats(kb, key, by, step, b0, b1)
        if extra_a:  # cell x is the key: score(x, k) is how well B's cell k pairs with it
            total += _absorb(kb, key, by, step, b0, b1, extra_a, lambda k: score(x, k))
        elif extra_b:
            total += _absorb(ka, key, ax, step, a0, a1, extra_b, lambda k: score(k, y))
        else:
            for _ in range(_REACH):
                if not (a0 <= ax < a1 and b0 <= by < b1):
                    break
                value = score(ax, by)
                if value <= 0:
                    break
                total += value
                ax, by = ax + step, by + step
    return total


def _repeats(keys: Sequence[Hashable], key: Hashable, at: int, step: int, lo: int, hi: int) -> int:
    """How many cells equal to ``key`` follow one another from ``at`` on, in direction ``step``."""
    n = 0
    while lo <= at < hi and keys[at] == key:
        n, at = n + 1, at + step
    return n


def _absorb(keys: Sequence[Hashable], key: Hashable, at: int, step: int, lo: int, hi: int, extra: int,
            value: Callable[[int], float]) -> float:
    """What ``extra`` cells of ``key`` gain from the cells from ``at`` on (direction ``step``): the
    nearest equal (1.0) or similar ones, at most ``extra`` of them, within ``extra + _REACH`` cells."""
    total = 0.0
    taken = 0
    for _ in range(extra + _REACH):
        if taken == extra or not lo <= at < hi:
            break
        gain = 1.0 if keys[at] == key else value(at)
        if gain > 0:
            total += gain
            taken += 1
        at += step
    return total


def _band(kb: Sequence[Hashable], key: Hashable, y: int, skew: int, b0: int, b1: int) -> list[int]:
    """The cells equal to ``key`` within ``_BAND`` of ``y`` or of ``y - skew`` (in order)."""
    spans = sorted((max(b0, c - _BAND), min(b1, c + _BAND + 1)) for c in (y, y - skew))
    if spans[0][1] >= spans[1][0]:
        spans = [(spans[0][0], max(spans[0][1], spans[1][1]))]
    return [k for lo, hi in spans for k in range(lo, hi) if kb[k] == key]


def _scan(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch, score: Score | None) -> list[tuple[int, int]]:
    """Linear fallback: pair each cell with an equal, else a similar, cell a few cells ahead."""
    a0, a1, b0, b1 = s
    out: list[tuple[int, int]] = []
    y = b0
    for x in range(a0, a1):
        ahead = range(y, min(y + _WINDOW, b1))
        hit = next((k for k in ahead if ka[x] == kb[k]), None)
        if hit is None and score is not None:
            hit = next((k for k in ahead if score(x, k)), None)
        if hit is not None:
            out.append((x, hit))
            y = hit + 1
    return out


def _trim(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch,
          out: list[tuple[int, int]]) -> Stretch:
    """Pair the common head and tail of a stretch; return what is left between them."""
    a0, a1, b0, b1 = s
    while a0 < a1 and b0 < b1 and ka[a0] == kb[b0]:
        out.append((a0, b0))
        a0, b0 = a0 + 1, b0 + 1
    while a0 < a1 and b0 < b1 and ka[a1 - 1] == kb[b1 - 1]:
        a1, b1 = a1 - 1, b1 - 1
        out.append((a1, b1))
    return a0, a1, b0, b1


def pair_stretches(ka: Sequence[Hashable], kb: Sequence[Hashable], stretches: list[Stretch],
                   score: Score | None = None) -> list[tuple[int, int]]:
    """The pairs (x, y) that align ``ka`` with ``kb`` inside the given stretches, sorted.

    Equal keys pair (head and tail first, then unique anchors, recursively); ``score`` also pairs
    similar cells of short stretches and of the linear fallback.
    """
    out: list[tuple[int, int]] = []
    todo = list(stretches)
    while todo:
        todo += _split(ka, kb, _trim(ka, kb, todo.pop(), out), score, out)
    out.sort()
    return out


def _split(ka: Sequence[Hashable], kb: Sequence[Hashable], s: Stretch, score: Score | None,
           out: list[tuple[int, int]]) -> list[Stretch]:
    """Pair what can be paired in a trimmed stretch (into ``out``); return the stretches left to align."""
    a0, a1, b0, b1 = s
    if a0 == a1 or b0 == b1:
        return []
    anchors = _anchors(ka, kb, s)
    # a unique cell that moved across a run of repeated cells would anchor the run away: a longer
    # run of equal cells than the anchors it contradicts wins
    size, ties = _longest_runs(ka, kb, s) if anchors or (a1 - a0) * (b1 - b0) > _GRID else (0, [])
    if anchors and (not ties or not 0 < _against((ties[0][1], ties[0][2], size), anchors) < size):
        out += anchors
        return _between(anchors, s)
    if not ties and (a1 - a0) * (b1 - b0) <= _GRID:
        out += _grid(ka, kb, s, score)
        return []
    if ties:
        x, y, size = _settle(ka, kb, s, size, ties, score)
        out += [(x + k, y + k) for k in range(size)]
        return [(a0, x, b0, y), (x + size, a1, y + size, b1)]
    out += _scan(ka, kb, s, score)
    return []


def equal_pairs(ka: Sequence[Hashable], kb: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Pairs (x, y) of equal keys, increasing on both sides, that keep position among duplicates."""
    return pair_stretches(ka, kb, [(0, len(ka), 0, len(kb))])


# --- cells -----------------------------------------------------------------------------------------

def align(local: Sequence[Any], remote: Sequence[Any]) -> list[Pair]:
    """Order-preserving pairing of two cell lists: (i, j), (i, None) or (None, j)."""
    return align_indices(local, remote, list(range(len(local))), list(range(len(remote))))


def align_indices(local: Sequence[Any], remote: Sequence[Any], li: list[int], ri: list[int],
                  *, use_ids: bool = True) -> list[Pair]:
    """``align`` restricted to the cells ``li`` of ``local`` and ``ri`` of ``remote``.

    Within a run of cells that only one side has, the local ones come first.
    """
    if not li or not ri:
        return [(i, None) for i in li] + [(None, j) for j in ri]
    whole: Stretch = (0, len(li), 0, len(ri))
    stretches = [whole]
    anchors: list[tuple[int, int]] = []
    if use_ids:
        ida = [local[i]["id"] if _has_id(local[i]) else ("L", i) for i in li]
        idb = [remote[j]["id"] if _has_id(remote[j]) else ("R", j) for j in ri]
        anchors = _anchors(ida, idb, whole)
        stretches = _between(anchors, whole)
    table: dict[Hashable, int] = {}
    ka = [table.setdefault(content_key(local[i]), len(table)) for i in li]
    kb = [table.setdefault(content_key(remote[j]), len(table)) for j in ri]

    known: dict[tuple[int, int], float] = {}  # repeated cells: the same two sources are compared once

    def score(x: int, y: int) -> float:
        a, b = local[li[x]], remote[ri[y]]
        if _has_id(a) and _has_id(b):
            return 0.0  # two different ids are two different cells
        pair = (ka[x], kb[y])
        if pair not in known:
            known[pair] = similar(a, b)
        return known[pair]

    pairs = sorted(anchors + pair_stretches(ka, kb, stretches, score))
    out: list[Pair] = []
    px = py = 0
    for x, y in pairs:
        out += [(i, None) for i in li[px:x]]
        out += [(None, j) for j in ri[py:y]]
        out.append((li[x], ri[y]))
        px, py = x + 1, y + 1
    return out + [(i, None) for i in li[px:]] + [(None, j) for j in ri[py:]]


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


def match(old: Sequence[Any], new: Sequence[Any]) -> list[Pair]:
    """Pair the cells of ``old`` and ``new``, moved cells included: (i, j), (i, None) or (None, j).

    Cells with the same id pair wherever they are (a move); the others pair in order by equal
    content, then by similar source.  The pairs come in no particular order.
    """
    by_id: dict[str, int] = {}
    for i, cell in enumerate(old):
        if _has_id(cell):
            by_id.setdefault(cell["id"], i)
    pairs: list[Pair] = []
    used_old: set[int] = set()
    rest_new: list[int] = []
    for j, cell in enumerate(new):
        found = by_id.get(cell["id"]) if _has_id(cell) else None
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
