"""NB003 on nbformat 1-3 files agrees with what Jupyter does to open them.

Jupyter opens an old notebook with ``nbformat.read(f, as_version=4)``; the notebook is fine when that
succeeds and ``nbformat.validate`` accepts the result.  For generated nbformat 1, 2 and 3 notebooks, with
keys removed or given values of the wrong type at every level, nbmedic's NB003 must be an error exactly
when nbformat fails, and info exactly when it succeeds.  ``repair`` must convert every file Jupyter opens,
add the structure a file lacks, and fail in one line on the rest.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbmedic.checks.engine import check_notebook
from nbmedic.config import Config
from nbmedic.findings import Finding
from nbmedic.notebook.record import NotebookFile
from nbmedic.repair import RepairResult, repair_bytes


@contextmanager
def _quiet() -> Iterator[None]:
    """nbformat logs what it finds invalid and warns about ids: neither is its verdict."""
    logger = logging.getLogger("traitlets")
    disabled, logger.disabled = logger.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = disabled


def jupyter_opens(doc: dict[str, Any]) -> bool:
    """What Jupyter does to open the file: read it as nbformat 4, then validate."""
    with _quiet():
        try:
            nb = nbformat.reads(json.dumps(doc), as_version=4)
            nbformat.validate(nb)
        except Exception:  # noqa: BLE001 - any exception is a notebook Jupyter cannot open
            return False
    return True


def nb003(doc: dict[str, Any]) -> Finding:
    file = NotebookFile(path=Path("old.ipynb"), config=Config(), data=json.dumps(doc).encode(), nb=doc)
    [finding] = [f for f in check_notebook(file) if f.code == "NB003"]
    return finding


def assert_agrees(doc: dict[str, Any]) -> Finding:
    snapshot = json.dumps(doc, sort_keys=True)
    finding = nb003(doc)
    opens = jupyter_opens(doc)
    assert json.dumps(doc, sort_keys=True) == snapshot, "the check changed the notebook"
    assert finding.severity == ("info" if opens else "error"), (finding.message, doc)
    errors = finding.evidence["errors"]
    assert finding.evidence["count"] == (0 if opens else max(len(errors), finding.evidence["count"]))
    assert bool(errors) == (not opens)
    assert all(e["path"].startswith("$") for e in errors)
    return finding


# --- generated notebooks --------------------------------------------------------------------------------

ODD = st.sampled_from([None, 0, -1, 1, 2, 2.5, 3.0, True, False, "", "x", "{}", "1", [], ["a"], ["a\n", "b"],
                       [1], {}, {"a": 1}, {"text": "x"}])
TEXT = st.one_of(st.text(max_size=8), st.lists(st.sampled_from(["a\n", "b", "c\r", "#"]), max_size=3))
META = st.fixed_dictionaries({}, optional={"collapsed": st.booleans(), "tags": st.just(["t"]),
                                           "name": st.just("n"), "trusted": st.booleans()})
DATA_KEYS = ["text", "html", "svg", "png", "jpeg", "latex", "json", "javascript", "text/plain", "image/png",
             "application/json", "application/vnd.x+json"]


def _data_value(key: str) -> st.SearchStrategy[Any]:
    if "json" in key:
        return st.sampled_from(['{"a": 1}', "[1, 2]", "3", ["{", "}"], "nope"])
    return TEXT


@st.composite
def outputs(draw: st.DrawFn, major: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["pyout", "display_data", "stream", "pyerr", "execute_result", "error"]))
    out: dict[str, Any] = {"output_type": kind}
    if kind in ("pyout", "display_data"):
        for key in draw(st.lists(st.sampled_from(DATA_KEYS), max_size=3, unique=True)):
            out[key] = draw(_data_value(key))
        if kind == "pyout":
            out["prompt_number"] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            out["metadata"] = draw(st.sampled_from([{}, {"png": {"width": 1}}, {"isolated": True}]))
    elif kind == "stream":
        out.update(stream=draw(st.sampled_from(["stdout", "stderr"])), text=draw(TEXT))
    elif kind in ("pyerr", "error"):
        out.update({"etype" if major == 2 and draw(st.booleans()) else "ename": "E", "evalue": "v",
                    "traceback": ["t"]})
    else:
        out.update(execution_count=1, data={"text/plain": "x"}, metadata={})
    return out


@st.composite
def v3_cells(draw: st.DrawFn, major: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["code", "markdown", "raw", "heading", "html"] if major == 3
                                else ["code", "markdown", "raw", "heading"]))
    cell: dict[str, Any] = {"cell_type": kind}
    if kind == "code":
        cell.update(input=draw(TEXT), language="python", collapsed=draw(st.booleans()),
                    outputs=draw(st.lists(outputs(major), max_size=3)))
        if draw(st.booleans()):
            cell["prompt_number"] = draw(st.one_of(st.none(), st.integers(0, 9)))
    else:
        cell["source"] = draw(TEXT)
        if kind == "heading":
            cell["level"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        cell["metadata"] = draw(META)
    return cell


@st.composite
def v3_notebooks(draw: st.DrawFn, major: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "nb"}
    if major == 3:
        meta["signature"] = "sha256:0"
    if draw(st.booleans()):
        meta["kernelspec"] = draw(st.sampled_from([{"name": "python3", "display_name": "Python 3"},
                                                   {"name": "python3"}]))
    sheets = [{"cells": draw(st.lists(v3_cells(major), max_size=4)), "metadata": {}}
              for _ in range(draw(st.integers(1, 2)))]
    version = draw(st.sampled_from([major, major, major, float(major)]))
    doc: dict[str, Any] = {"metadata": meta, "nbformat": version, "nbformat_minor": 0, "worksheets": sheets}
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["orig_nbformat", "orig_nbformat_minor"]))] = draw(st.sampled_from([0, 1, 2, "x"]))
    return doc


@st.composite
def v1_notebooks(draw: st.DrawFn) -> dict[str, Any]:
    def cell() -> dict[str, Any]:
        kind = draw(st.sampled_from(["code", "text", "markdown"]))
        body: dict[str, Any] = {"cell_type": kind}
        if kind == "code":
            body.update(code=draw(st.text(max_size=5)), prompt_number=draw(st.integers(0, 5)))
        else:
            body["text"] = draw(st.text(max_size=5))
        return body

    return {"nbformat": draw(st.sampled_from([1, 1.0])), "cells": [cell() for _ in range(draw(st.integers(0, 4)))]}


def _slots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON document."""
    if isinstance(value, dict):
        for key in value:
            out.append((value, key))
            _slots(value[key], out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.append((value, index))
            _slots(item, out)
    return out


@st.composite
def damaged(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A generated notebook with up to three keys removed, retyped or added, anywhere."""
    doc = copy.deepcopy(draw(base))  # strategies share their sample objects: damage a copy
    for _ in range(draw(st.integers(0, 3))):
        slots = [(c, k) for c, k in _slots(doc, []) if not (c is doc and k == "nbformat")]
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "retype", "add"]))
        if action == "delete" and isinstance(container, dict):
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.sampled_from(["extra", "metadata", "cells", "prompt_number", "level", "stream",
                                            "source", "input", "outputs"]))] = copy.deepcopy(draw(ODD))
        else:
            container[key] = copy.deepcopy(draw(ODD))
    return doc


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(damaged(v3_notebooks(3)))
def test_nbformat3_verdict_is_jupyters(doc: dict[str, Any]) -> None:
    assert_agrees(doc)


@SETTINGS
@given(damaged(v3_notebooks(2)))
def test_nbformat2_verdict_is_jupyters(doc: dict[str, Any]) -> None:
    assert_agrees(doc)


@settings(max_examples=200, deadline=None)
@given(damaged(v1_notebooks()))
def test_nbformat1_verdict_is_jupyters(doc: dict[str, Any]) -> None:
    assert_agrees(doc)


# --- repair ----------------------------------------------------------------------------------------------

def _repair_outcome(doc: dict[str, Any]) -> RepairResult:
    result = repair_bytes(json.dumps(doc).encode())
    assert result.status in ("repaired", "failed"), result  # an old notebook always needs converting
    if result.status == "failed":
        assert result.nb is None and "\n" not in result.message
        assert result.message.startswith("cannot be repaired: ")
        return result
    assert result.nb is not None and result.nb["nbformat"] == 4
    with _quiet():
        nbformat.validate(nbformat.from_dict(result.nb))
    return result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(v3_notebooks(3)))
def test_repair_converts_what_jupyter_opens_and_fails_in_one_line(doc: dict[str, Any]) -> None:
    result = _repair_outcome(doc)
    if jupyter_opens(doc):
        assert result.status == "repaired", result.message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v3_notebooks(3), st.sets(st.sampled_from(["metadata", "worksheets", "cells"]), min_size=1))
def test_repair_adds_missing_metadata_worksheets_and_cells(doc: dict[str, Any], missing: set[str]) -> None:
    """A notebook Jupyter opens, less its metadata, its worksheets or a worksheet's cells, is repaired."""
    doc = copy.deepcopy(doc)
    if not jupyter_opens(doc):
        return
    if "cells" in missing:
        del doc["worksheets"][-1]["cells"]
    for key in missing & {"metadata", "worksheets"}:
        del doc[key]
    assert not jupyter_opens(doc)
    result = _repair_outcome(doc)
    assert result.status == "repaired", result.message
    added = " ".join(result.actions)
    for key in missing - ({"cells"} if "worksheets" in missing else set()):
        assert f"added the missing `{key}`" in added or f"added the missing notebook `{key}`" in added
