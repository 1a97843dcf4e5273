"""Property tests: random edit scripts on two sides never make the merge lose a cell or an invalid file."""

from __future__ import annotations

import copy
from typing import Any

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbmedic.notebook.cells import CONFLICT_TAG
from nbmedic.notebook.io import dumps
from nbmedic.vcs.merge import merge3

LINES = st.sampled_from(["x = 1", "y = 2", "print(x)", "# note", "", "z = x + y", "for i in range(3):",
                         "    pass"])
SOURCES = st.lists(LINES, max_size=4).map("\n".join)


@st.composite
def outputs(draw: st.DrawFn) -> list[dict[str, Any]]:
    texts = draw(st.lists(st.sampled_from(["1\n", "2\n", "hello\n", "x" * 40]), max_size=2))
    return [{"output_type": "stream", "name": "stdout", "text": t} for t in texts]


@st.composite
def cells(draw: st.DrawFn, cell_id: str, ids: bool = True) -> dict[str, Any]:
    kind = draw(st.sampled_from(["code", "markdown"]))
    cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": draw(SOURCES)}
    if ids:
        cell["id"] = cell_id
    if kind == "code":
        cell["outputs"] = draw(outputs())
        cell["execution_count"] = draw(st.none() | st.integers(1, 9))
    return cell


def notebook(cell_list: list[dict[str, Any]], minor: int) -> dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": minor, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}, "cells": cell_list}


OPS = st.sampled_from(["insert", "delete", "edit", "outputs", "move"])


@st.composite
def edited(draw: st.DrawFn, base: dict[str, Any], side: str, ids: bool) -> tuple[dict[str, Any], set[str]]:
    """Apply a random edit script; return the new notebook and the ids of cells it inserted or edited."""
    nb = copy.deepcopy(base)
    touched: set[str] = set()
    for k, op in enumerate(draw(st.lists(OPS, max_size=6))):
        cs = nb["cells"]
        if op == "insert" or not cs:
            cell = draw(cells(f"{side}{k}", ids))
            cs.insert(draw(st.integers(0, len(cs))), cell)
            touched.add(cell.get("id", ""))
            continue
        at = draw(st.integers(0, len(cs) - 1))
        if op == "delete":
            touched.discard(cs.pop(at).get("id", ""))
        elif op == "edit":
            cs[at]["source"] = draw(SOURCES) + f"\n# {side} {k}"
            touched.add(cs[at].get("id", ""))
        elif op == "outputs" and cs[at]["cell_type"] == "code":
            cs[at]["outputs"] = draw(outputs())
            cs[at]["execution_count"] = draw(st.integers(10, 20))
            touched.add(cs[at].get("id", ""))
        elif op == "move":
            cell = cs.pop(at)
            cs.insert(draw(st.integers(0, len(cs))), cell)
    return nb, touched


def _valid(nb: dict[str, Any]) -> None:
    nbformat.validate(nbformat.reads(dumps(nb), as_version=nbformat.NO_CONVERT))


@st.composite
def scenario(draw: st.DrawFn, ids: bool) -> tuple[dict[str, Any], Any, Any]:
    base_cells = [draw(cells(f"b{i}", ids)) for i in range(draw(st.integers(0, 6)))]
    base = notebook(base_cells, 5 if ids else 4)
    return base, draw(edited(base, "l", ids)), draw(edited(base, "r", ids))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario(ids=True), st.sampled_from(["inline", "local", "remote", "union"]))
def test_merge_never_loses_a_kept_or_edited_cell(case: Any, strategy: Any) -> None:
    base, (local, touched_l), (remote, touched_r) = case
    before = copy.deepcopy((base, local, remote))
    result = merge3(base, local, remote, strategy)
    assert (base, local, remote) == before  # inputs are not modified
    _valid(result.nb)
    merged_ids = [c["id"] for c in result.nb["cells"]]
    assert len(set(merged_ids)) == len(merged_ids)
    ids_l = {c["id"] for c in local["cells"]}
    ids_r = {c["id"] for c in remote["cells"]}
    ids_b = {c["id"] for c in base["cells"]}
    must_keep = set()
    if strategy != "remote":
        must_keep |= touched_l & ids_l  # inserted or edited locally, and still there
    if strategy != "local":
        must_keep |= touched_r & ids_r
    must_keep |= ids_b & ids_l & ids_r  # kept by both sides
    must_keep |= (ids_l - ids_b) | (ids_r - ids_b)  # every inserted cell
    assert must_keep <= set(merged_ids), (must_keep - set(merged_ids), result.notes)
    # nothing appears from nowhere
    assert set(merged_ids) <= ids_l | ids_r | {c["id"] for c in result.nb["cells"]
                                               if CONFLICT_TAG in c["metadata"].get("tags", [])}
    if strategy in ("local", "remote", "union"):
        assert result.clean
    # a cell that only one side touched comes out as that side wrote it
    for cell in result.nb["cells"]:
        cid = cell["id"]
        if cid in ids_b and cid in ids_l and cid in ids_r and (cid in touched_l) != (cid in touched_r):
            side = local if cid in touched_l else remote
            [want] = [c for c in side["cells"] if c["id"] == cid]
            assert cell["source"] == want["source"]


@SETTINGS
@given(scenario(ids=False), st.sampled_from(["inline", "union"]))
def test_merge_without_ids_keeps_every_edit_and_validates(case: Any, strategy: Any) -> None:
    base, (local, _), (remote, _) = case
    result = merge3(base, local, remote, strategy)
    _valid(result.nb)
    merged = "\n".join("".join(c["source"]) for c in result.nb["cells"])
    base_sources = {c["source"] for c in base["cells"]}
    for side in (local, remote):
        for cell in side["cells"]:
            if cell["source"] not in base_sources:  # an inserted or edited cell: its text survives
                for line in cell["source"].splitlines():
                    assert line in merged


def test_merge_is_deterministic() -> None:
    base = notebook([{"cell_type": "code", "id": "a", "metadata": {}, "source": "x", "outputs": [],
                      "execution_count": None}], 5)
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    local["cells"][0]["source"] = "L"
    remote["cells"][0]["source"] = "R"
    assert dumps(merge3(base, local, remote, "union").nb) == dumps(merge3(base, local, remote, "union").nb)


def _subsequence(part: list[Any], whole: list[Any]) -> bool:
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


@SETTINGS
@given(scenario(ids=True) | scenario(ids=False), st.sampled_from(["union", "local", "remote"]))
def test_two_way_merge_keeps_every_cell_of_both_sides(case: Any, strategy: Any) -> None:
    """Without a base (git's add/add, a conflict without diff3 markers) no cell either side has is lost."""
    _, (local, _), (remote, _) = case
    result = merge3(None, local, remote, strategy)
    _valid(result.nb)
    assert result.clean
    merged = [(c["cell_type"], c["source"]) for c in result.nb["cells"]]
    lcells = [(c["cell_type"], c["source"]) for c in local["cells"]]
    rcells = [(c["cell_type"], c["source"]) for c in remote["cells"]]
    if strategy != "remote":
        assert _subsequence(lcells, merged), (lcells, merged)
    if strategy != "local":
        assert _subsequence(rcells, merged), (rcells, merged)
    kept = set(lcells) | set(rcells)
    assert all(cell in kept for cell in merged)
