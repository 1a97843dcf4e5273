"""How ``repair`` rebuilds a file left with git conflict markers: a strategy of the one merge engine.

The two sides (and the ancestor, when the markers carried it: ``merge.conflictStyle=diff3``) are
merged by ``nbmedic.vcs.merge.merge3``: 3-way with the ancestor, 2-way without it.  A cell the
two sides changed differently becomes two adjacent cells (local, then remote) tagged
``nbmedic-conflict`` (strategy ``union``), unless ``prefer`` names the side to keep.  No cell a side
kept is dropped: one side deleted and the other changed is kept, tagged, whichever side is preferred.
"""

from __future__ import annotations

from typing import Any, Literal

from nbmedic.vcs.merge import MergeResult, merge3

Prefer = Literal["local", "remote"]

__all__ = ["Prefer", "merge_sides"]


def merge_sides(local: dict[str, Any], remote: dict[str, Any], base: dict[str, Any] | None,
                prefer: Prefer | None) -> MergeResult:
    """Merge the sides of a conflicted notebook; inputs are not modified."""
    return merge3(base, local, remote, prefer or "union", keep_changed=True)
