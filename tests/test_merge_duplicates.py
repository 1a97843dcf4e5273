"""Merges of notebooks that repeat cells: an edit lands on the copy that was edited, not on another one.

Notebooks repeat cells (``plt.show()``, ``df.head()``, whole sections pasted several times).  Without
cell ids (nbformat 4.4) an equal cell is no proof of the same cell, so alignment must prefer the
pairing that keeps position.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbmedic.notebook.cells import CONFLICT_TAG, source_text
from nbmedic.vcs.align import align
from nbmedic.vcs.diff import diff_notebooks
from nbmedic.vcs.merge import merge3

RunCli = Callable[..., tuple[int, str, str]]


def _code(source: str, count: int | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": count, "metadata": {}, "outputs": [], "source": source}


def _md(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def _section() -> list[dict[str, Any]]:
    """One analysis section of 67 cells, itself repeating a few cells (as real notebooks do)."""
    cells: list[dict[str, Any]] = [_md("## Load the data"), _code("import pandas as pd\nimport matplotlib.pyplot as plt")]
    for k in range(13):
        cells += [
            _md(f"### Step {k}"),
            _code(f"df = pd.read_csv('part{k}.csv')\ndf = df.dropna()"),
            _code("df.head()"),
            _code("df.plot(x='time', y='value')\nplt.title('value over time')"),
            _code("plt.show()"),
        ]
    return cells


EDITS = ["df.head(10)", "df.tail()  # rewritten"]  # a small edit (similar to the cell) and a rewrite
INSERTS = ["copy", "new"]  # the remote side pasted a copy of cell 9 below it, or wrote a new cell there


def _scenario(edit: str, inserted: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """400 cells, one section repeated six times; local edits cell 9; remote inserts a cell at 10."""
    section = _section()
    assert len(section) == 67
    cells = [copy.deepcopy(c) for _ in range(6) for c in section][:400]
    base = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                         "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 4}
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    assert source_text(local["cells"][9]) == "df.head()"
    local["cells"][9]["source"] = edit
    remote["cells"].insert(10, copy.deepcopy(base["cells"][9]) if inserted == "copy" else _code("df.describe()"))
    return base, local, remote


def _check_merged(nb: dict[str, Any], edit: str, remote: dict[str, Any]) -> None:
    sources = [source_text(c) for c in nb["cells"]]
    assert [i for i, s in enumerate(sources) if s == edit] == [9]
    expected = [source_text(c) for c in remote["cells"]]
    expected[9] = edit
    assert sources == expected
    assert all("id" not in c for c in nb["cells"])


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("inserted", INSERTS)
def test_the_edit_lands_on_the_cell_that_was_edited_in_merge3(edit: str, inserted: str) -> None:
    base, local, remote = _scenario(edit, inserted)
    result = merge3(base, local, remote)
    assert result.clean, result.conflicts
    _check_merged(result.nb, edit, remote)
    # the other way round: the remote side edits, the local side inserts
    result = merge3(base, remote, local)
    assert result.clean, result.conflicts
    _check_merged(result.nb, edit, remote)


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("inserted", INSERTS)
def test_the_edit_lands_on_the_cell_that_was_edited_through_the_cli(tmp_path: Path, run_cli: RunCli, edit: str,
                                                                    inserted: str) -> None:
    base, local, remote = _scenario(edit, inserted)
    paths = []
    for name, nb in (("base", base), ("local", local), ("remote", remote)):
        path = tmp_path / f"{name}.ipynb"
        path.write_text(nbformat.writes(nbformat.from_dict(nb)), encoding="utf-8")  # as Jupyter writes 4.4
        paths.append(str(path))
    out = tmp_path / "merged.ipynb"
    assert run_cli("merge", *paths, "-o", str(out)) == (0, "", "")
    nbformat.validate(nbformat.read(out, as_version=nbformat.NO_CONVERT))
    _check_merged(json.loads(out.read_text(encoding="utf-8")), edit, remote)


def test_diff_shows_one_modified_cell_among_repeated_blocks() -> None:
    block = _section()[2:7]  # heading, read, head, plot, show: 5 cells repeated 80 times
    base = {"cells": [copy.deepcopy(c) for _ in range(80) for c in block], "metadata": {},
            "nbformat": 4, "nbformat_minor": 4}
    edited = copy.deepcopy(base)
    edited["cells"][9]["source"] = "plt.show()  # edited"
    assert align(base["cells"], edited["cells"]) == [(i, i) for i in range(400)]
    lines = [line.text for line in diff_notebooks(base, edited)]
    assert [t for t in lines if t.startswith("cell ")] == ["cell 9 (code) modified:"]
    assert lines[-1] == "399 cells unchanged"


# --- property: every edit lands on its cell, however often the cells repeat ---------------------------

POOL = [("code", "plt.show()"), ("code", "df.head()"), ("markdown", "## Results"),
        ("code", "x = compute(data)\nprint(x)")]
KINDS = ["tweak", "rewrite", "insert", "delete"]  # tweak: a small edit; rewrite: new text in the cell


def _cell(kind: str, source: str, cell_id: str | None) -> dict[str, Any]:
    cell = _code(source) if kind == "code" else _md(source)
    if cell_id is not None:
        cell["id"] = cell_id
    return cell


def _spot(op: tuple[str, int]) -> int:
    """Where an operation acts, on one line: the gap before cell g is 2g, cell i is 2i + 1."""
    kind, at = op
    return 2 * at if kind == "insert" else 2 * at + 1


def _slides(cells: list[dict[str, Any]], i: int) -> bool:
    """Deleting cell i gives the same notebook as deleting an equal neighbour: nothing can tell which."""
    key = (cells[i]["cell_type"], cells[i]["source"])
    return any(0 <= k < len(cells) and (cells[k]["cell_type"], cells[k]["source"]) == key for k in (i - 1, i + 1))


@st.composite
def _ops(draw: st.DrawFn, cells: list[dict[str, Any]], taken: set[int]) -> list[tuple[str, int]]:
    """Up to three edits of one side, each two cells away from the others (and on a cell of its own)."""
    ops: list[tuple[str, int]] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(KINDS))
        at = draw(st.integers(0, len(cells) if kind == "insert" else len(cells) - 1))
        op = (kind, at)
        if any(abs(_spot(op) - _spot(o)) < 3 for o in ops):
            continue
        # a rewrite is a deletion plus an insertion: like a deletion, it must not slide
        if kind != "insert" and (at in taken or (kind in ("delete", "rewrite") and _slides(cells, at))):
            continue
        ops.append(op)
    return ops


def _apply(cells: list[dict[str, Any]], ops: list[tuple[str, int]], side: str,
           ids: bool) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any] | None], dict[int, list[dict[str, Any]]]]:
    """The side's cells, and what became of each base cell it touched and what it inserted where."""
    changed: dict[int, dict[str, Any] | None] = {}
    inserted: dict[int, list[dict[str, Any]]] = {}
    for n, (kind, at) in enumerate(ops):
        if kind == "insert":
            new = _cell("code" if n % 2 else "markdown", f"inserted by {side} {n}", f"{side}-{n}" if ids else None)
            inserted.setdefault(at, []).append(new)
        elif kind == "delete":
            changed[at] = None
        else:
            cell = copy.deepcopy(cells[at])
            cell["source"] = (cell["source"] + f"  # {side}{n}" if kind == "tweak"
                              else f"rewritten by {side} {n}\nwith other text")
            changed[at] = cell
    out: list[dict[str, Any]] = []
    for i in range(len(cells) + 1):
        out += copy.deepcopy(inserted.get(i, []))
        if i < len(cells):
            cell = changed.get(i, cells[i])
            if cell is not None:
                out.append(copy.deepcopy(cell))
    return out, changed, inserted


Case = tuple[list[dict[str, Any]], list[tuple[str, int]], list[tuple[str, int]]]


@st.composite
def _duplicated(draw: st.DrawFn, ids: bool, sizes: tuple[int, int] = (3, 40)) -> Case:
    """A few distinct cells repeated many times; edits on one side, or on both sides on different cells."""
    pool = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True))
    kinds = draw(st.lists(st.sampled_from(pool), min_size=sizes[0], max_size=sizes[1]))
    cells = [_cell(k, s, f"b{i}" if ids else None) for i, (k, s) in enumerate(kinds)]
    sides = draw(st.sampled_from(["local", "remote", "both"]))
    first = draw(_ops(cells, set()))
    touched = {at for kind, at in first if kind != "insert"}
    second = draw(_ops(cells, touched)) if sides == "both" else []
    return (cells, first, second) if sides != "remote" else (cells, second, first)


def _expected(cells: list[dict[str, Any]], local: tuple[Any, Any], remote: tuple[Any, Any]) -> list[Any]:
    """Each change where its side made it; insertions both sides made at one place come local first."""
    (lchanged, linserted), (rchanged, rinserted) = local, remote
    out: list[Any] = []
    for i in range(len(cells) + 1):
        out += linserted.get(i, []) + rinserted.get(i, [])
        if i < len(cells):
            cell = lchanged[i] if i in lchanged else rchanged[i] if i in rchanged else cells[i]
            if cell is not None:
                out.append(cell)
    return [(c["cell_type"], c["source"], c.get("id")) for c in out]


def _notebook(cells: list[dict[str, Any]], ids: bool) -> dict[str, Any]:
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5 if ids else 4}


def _check(case: Case, ids: bool) -> None:
    cells, local_ops, remote_ops = case
    local, *local_did = _apply(cells, local_ops, "local", ids)
    remote, *remote_did = _apply(cells, remote_ops, "remote", ids)
    base = _notebook(cells, ids)
    for (left, left_did), (right, right_did) in (((local, local_did), (remote, remote_did)),
                                                 ((remote, remote_did), (local, local_did))):
        result = merge3(base, _notebook(left, ids), _notebook(right, ids))
        assert result.clean, result.conflicts
        got = [(c["cell_type"], c["source"], c.get("id")) for c in result.nb["cells"]]
        assert got == _expected(cells, tuple(left_did), tuple(right_did))
        assert not any(CONFLICT_TAG in c["metadata"].get("tags", []) for c in result.nb["cells"])


PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(_duplicated(ids=False))
def test_every_edit_lands_on_its_cell_without_ids(case: Case) -> None:
    _check(case, ids=False)


@PROPS
@given(_duplicated(ids=True))
def test_every_edit_lands_on_its_cell_with_ids(case: Case) -> None:
    _check(case, ids=True)


def test_a_unique_cell_moved_across_repeated_cells() -> None:
    """The moved cell is the one that moved: the repeated cells it crossed stay paired."""
    cells = [_md("# Report")] + [_code("plt.show()") for _ in range(4)] + [_code("df.head()"), _md("## End")]
    base = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    local["cells"].insert(5, local["cells"].pop(0))  # the title goes before the last cell
    remote["cells"][2]["source"] = "plt.show(block=False)"
    result = merge3(base, local, remote)
    assert result.clean, result.conflicts
    assert [source_text(c) for c in result.nb["cells"]] == [
        "plt.show()", "plt.show(block=False)", "plt.show()", "plt.show()", "df.head()", "# Report", "## End"]


def test_a_unique_cell_moved_to_the_top_across_repeated_cells() -> None:
    """Anchoring on the unique cells alone would read the repeated ones as deleted and inserted again."""
    cells = [_code("plt.show()") for _ in range(4)] + [_code("import numpy as np"), _md("## End")]
    base = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    local["cells"].insert(0, local["cells"].pop(4))  # the import goes to the top
    remote["cells"][2]["source"] = "plt.show(block=False)"
    assert sorted(p for p in align(base["cells"], local["cells"]) if None not in p) == [
        (0, 1), (1, 2), (2, 3), (3, 4), (5, 5)]
    result = merge3(base, local, remote)
    assert result.clean, result.conflicts
    assert [source_text(c) for c in result.nb["cells"]] == [
        "import numpy as np", "plt.show()", "plt.show()", "plt.show(block=False)", "plt.show()", "## End"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_duplicated(ids=False, sizes=(60, 160)))
def test_every_edit_lands_on_its_cell_in_long_notebooks(case: Case) -> None:
    """Stretches too long to align exactly: the longest run of equal cells nearest the diagonal."""
    _check(case, ids=False)


def test_every_edit_lands_on_its_cell_in_a_long_run_of_two_repeated_cells() -> None:
    """3000 cells, two distinct ones: too many equal pairs to search them all, the diagonals decide."""
    cells = [_cell(*POOL[i % 2], None) for i in range(3000)]
    _check((cells, [("tweak", 5), ("rewrite", 1500), ("tweak", 2990)], [("insert", 700), ("delete", 2200)]),
           ids=False)


@pytest.mark.parametrize(("local_ops", "remote_ops"), [
    ([("tweak", 1)], [("tweak", 0), ("insert", 50)]),  # found by the long-notebook property
    ([("tweak", 58)], [("tweak", 59), ("insert", 5)]),  # its mirror image
    ([("insert", 2)], [("tweak", 0), ("insert", 50), ("tweak", 2)]),  # two edits near the run's start
    # found by the long-notebook property: insertions on both sides of the run, so the placement nearest
    # a diagonal shifted it by a cell (the local edit landed on a neighbour, or on a cell read as deleted)
    ([("tweak", 1)], [("tweak", 0), ("insert", 2), ("insert", 50)]),
    ([("tweak", 52)], [("tweak", 0), ("insert", 2), ("insert", 53)]),
])
def test_an_edit_beside_a_long_run_of_one_repeated_cell_stays_on_its_cell(
        local_ops: list[tuple[str, int]], remote_ops: list[tuple[str, int]]) -> None:
    """60 identical cells: two equally long runs of equal cells tie; the one with the edited cell beside it
    (paired with its old self) wins over the one shifted by a cell."""
    cells = [_code("plt.show()") for _ in range(60)]
    _check((cells, local_ops, remote_ops), ids=False)


@pytest.mark.parametrize(("local_ops", "remote_ops"), [
    ([("tweak", 129)], [("tweak", 0), ("insert", 20), ("insert", 130)]),
    ([("tweak", 21)], [("tweak", 0), ("insert", 20), ("insert", 130)]),
    ([("tweak", 1)], [("insert", 0), ("insert", 100), ("tweak", 149)]),
])
def test_an_edit_far_from_where_a_long_run_could_slide_stays_on_its_cell(
        local_ops: list[tuple[str, int]], remote_ops: list[tuple[str, int]]) -> None:
    """150 identical cells: the remote run of 110 could sit 20 ways inside the base's 130; what says
    where is 20 cells away (the edited first cell), further than any fixed window beside the run."""
    cells = [_code("plt.show()") for _ in range(150)]
    _check((cells, local_ops, remote_ops), ids=False)
