"""NB010-NB013: what the saved execution counts say about how the notebook was run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nbmedic.checks.rules import NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.notebook.cells import CONFLICT_TAG, cell_tags

MAX_LISTED = 20


def _has_source(cell: dict[str, Any]) -> bool:
    source = cell.get("source")
    if isinstance(source, str):
        return bool(source.strip())
    if isinstance(source, list):
        return any(isinstance(s, str) and s.strip() for s in source)
    return False


def _count(cell: dict[str, Any]) -> int | None:
    value = cell.get("execution_count")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_clean(ctx: NotebookContext) -> Iterator[Finding]:
    """NB010: outputs or execution counts saved although the project asks for clean notebooks."""
    if not ctx.config.clean:
        return
    with_outputs: list[int] = []
    n_outputs = 0
    counted: list[int] = []
    for index, cell in ctx.iter_cells():
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs")
        if isinstance(outputs, list) and outputs:
            with_outputs.append(index)
            n_outputs += len(outputs)
        if cell.get("execution_count") is not None:
            counted.append(index)
    if not with_outputs and not counted:
        return
    first = min(with_outputs[:1] + counted[:1])
    parts = []
    if with_outputs:
        parts.append(f"{_plural(n_outputs, 'output')} in {_plural(len(with_outputs), 'cell')}")
    if counted:
        parts.append(f"execution counts in {_plural(len(counted), 'cell')}")
    yield ctx.finding(
        "NB010", f"the notebook is saved with {' and '.join(parts)} (first: cell {first}), but this project "
        "asks for clean notebooks (`clean = true`)",
        evidence={"outputs": n_outputs, "cells_with_outputs": with_outputs[:MAX_LISTED],
                  "cells_with_execution_count": counted[:MAX_LISTED], "first_cell": first,
                  "config": ctx.config.source})


def _in_conflict(cell: dict[str, Any]) -> bool:
    """Both versions of a cell kept by a merge: their counts come from two different runs."""
    return CONFLICT_TAG in cell_tags(cell)


def check_order(ctx: NotebookContext) -> Iterator[Finding]:
    """NB011 (non-linear order), NB012 (skipped cells), NB013 (counts not 1..n)."""
    executed: list[tuple[int, int]] = []  # (cell index, execution count) in document order
    unexecuted: list[int] = []  # code cells with source and no count
    for index, cell in ctx.iter_cells():
        if cell.get("cell_type") != "code" or _in_conflict(cell):
            continue
        count = _count(cell)
        if count is not None:
            executed.append((index, count))
        elif _has_source(cell):
            unexecuted.append(index)
    if not executed:
        return

    breaks = [(prev, cur) for prev, cur in zip(executed, executed[1:]) if cur[1] <= prev[1]]
    if breaks:
        (p_cell, p_count), (c_cell, c_count) = breaks[0]
        more = f" ({len(breaks) - 1} more such place{'s' if len(breaks) > 2 else ''})" if len(breaks) > 1 else ""
        yield ctx.finding(
            "NB011", f"cell {c_cell} (In [{c_count}]) was run before cell {p_cell} above it (In [{p_count}]): "
            f"the cells were run out of order, so the saved results may depend on hidden state{more}",
            cell=c_cell,
            evidence={"breaks": [{"cell": c, "count": cc, "previous_cell": p, "previous_count": pc}
                                 for (p, pc), (c, cc) in breaks[:MAX_LISTED]],
                      "count": len(breaks)})

    first_run, last_run = executed[0][0], executed[-1][0]
    skipped = [i for i in unexecuted if first_run < i < last_run]
    if skipped:
        listed = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        yield ctx.finding(
            "NB012", f"{'cell' if len(skipped) == 1 else 'cells'} {listed} "
            f"{'was' if len(skipped) == 1 else 'were'} never run although cells before and after "
            "were, so the saved results do not come from running the notebook top to bottom",
            cell=skipped[0],
            evidence={"cells": skipped[:MAX_LISTED], "count": len(skipped),
                      "first_executed_cell": first_run, "last_executed_cell": last_run})

    counts = [c for _, c in executed]
    start = min(counts)
    gaps: list[tuple[int, int, int]] = []
    if not breaks:  # when cells ran out of order, gaps say nothing more than NB011 does
        gaps = [(executed[k][0], counts[k - 1], counts[k]) for k in range(1, len(counts))
                if counts[k] - counts[k - 1] > 1]
    if start != 1 or gaps:
        reasons = []
        if start != 1:
            reasons.append(f"start at {start} instead of 1")
        if gaps:
            gap_cell, before, after = gaps[0]
            reasons.append(f"jump from {before} to {after} at cell {gap_cell}"
                           + (f" ({len(gaps)} gaps in all)" if len(gaps) > 1 else ""))
        where = executed[counts.index(start)][0] if start != 1 else gaps[0][0]
        yield ctx.finding(
            "NB013", f"execution counts {' and '.join(reasons)}: cells were re-run or deleted, so state "
            "from earlier runs may have been used",
            cell=where,
            evidence={"first_count": start, "last_count": max(counts), "executed_cells": len(counts),
                      "gaps": [{"cell": c, "from": b, "to": a} for c, b, a in gaps[:MAX_LISTED]]})


RULES: RuleTable = [
    (("NB010",), check_clean),
    (("NB011", "NB012", "NB013"), check_order),
]
