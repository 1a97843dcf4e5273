"""NB060: cells a merge left for a person to resolve (tagged ``nbmedic-conflict`` or holding markers).

``nbmedic merge`` tags a cell ``nbmedic-conflict`` when the two sides edited it differently (the
source then holds both versions between ``<<<<<<< local`` / ``=======`` / ``>>>>>>> remote``
lines) or when one side deleted it and the other changed it.  The rule looks for the tag or the
marker in the raw bytes first (C speed) and walks the cells only if one is there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from nbmedic.checks.rules import NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.notebook.cells import CONFLICT_TAG, cell_tags, source_text

MAX_LISTED = 20
_MARKER_RE = re.compile(r"^<{7,} local[ \t]*$", re.MULTILINE)
_RAW_MARKERS = (CONFLICT_TAG.encode(), b"<<<<<<< local")


def check_conflicts(ctx: NotebookContext) -> Iterator[Finding]:
    """NB060: cells still tagged ``nbmedic-conflict`` or still holding ``<<<<<<< local`` marker lines."""
    if not any(marker in ctx.data for marker in _RAW_MARKERS):
        return
    tagged: list[int] = []
    marked: list[int] = []
    for index, cell in ctx.iter_cells():
        if CONFLICT_TAG in cell_tags(cell):
            tagged.append(index)
        if _MARKER_RE.search(source_text(cell)):
            marked.append(index)
    cells = sorted(set(tagged) | set(marked))
    if not cells:
        return
    one = len(cells) == 1
    listed = ", ".join(map(str, cells[:MAX_LISTED])) + (", ..." if len(cells) > MAX_LISTED else "")
    what = []
    if tagged:
        what.append(f"tagged {CONFLICT_TAG!r}")
    if marked:
        what.append("holding <<<<<<< local / >>>>>>> remote conflict markers")
    yield ctx.finding(
        "NB060", f"{'the cell' if one else f'cells {listed}'} {'is' if one else 'are'} still "
        f"{' and '.join(what)}: an unresolved merge conflict",
        cell=cells[0],
        evidence={"cells": cells[:MAX_LISTED], "tagged": tagged[:MAX_LISTED], "markers": marked[:MAX_LISTED],
                  "count": len(cells)})


RULES: RuleTable = [(("NB060",), check_conflicts)]
