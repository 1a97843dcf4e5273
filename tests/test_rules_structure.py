"""NB001-NB004: JSON, conflict markers, schema, cell ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nbformat import v4

from tests import nbfactory as nbf
from tests.conftest import codes
from tests.test_oldformat_props import jupyter_opens

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]


def _doc(*cells: dict[str, Any], minor: int = 5, **top: Any) -> dict[str, Any]:
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4, "nbformat_minor": minor, **top}


def _code(cid: Any = None, **fields: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                            "source": "x = 1"}
    if cid is not None:
        cell["id"] = cid
    cell.update(fields)
    return cell


def _md(cid: Any = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": "markdown", "metadata": {}, "source": "text"}
    if cid is not None:
        cell["id"] = cid
    return cell


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "empty"), (b"<!DOCTYPE html><html><title>nb</title></html>", "html"),
    (b'{"cells": [', "truncated"), (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
])
def test_nb001_not_json(tmp_path: Path, check_json: CheckJson, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    code, findings = check_json(str(path))
    assert code == 1
    [f] = findings
    assert f["code"] == "NB001" and f["severity"] == "error" and f["evidence"]["problem"] == problem


def test_nb002_conflict_markers(tmp_path: Path, check_json: CheckJson) -> None:
    good = json.dumps(_doc(_code("a")), indent=1)
    path = tmp_path / "c.ipynb"
    path.write_text(f"<<<<<<< HEAD\n{good}\n=======\n{good}\n>>>>>>> branch\n")
    [f] = check_json(str(path))[1]
    assert f["code"] == "NB002" and f["evidence"]["conflicts"] == 1


def test_valid_notebooks_have_no_structure_findings(tmp_path: Path, check_json: CheckJson) -> None:
    for minor in (4, 5):
        path = nbf.write_raw(tmp_path / f"v{minor}.ipynb",
                             _doc(_code("a1") if minor == 5 else _code(), _md("b-2_c") if minor == 5 else _md(),
                                  minor=minor))
        assert check_json(str(path))[1] == []


@pytest.mark.parametrize(("doc", "where"), [
    (_doc(_code("a", source=5)), "$.cells[0].source"),
    (_doc(_code("a", execution_count="1")), "$.cells[0].execution_count"),
    (_doc(_code("a", outputs={})), "$.cells[0].outputs"),
    (_doc(_code("a"), {"cell_type": "markdown", "id": "b", "source": "x"}), "$.cells[1]"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}, "$"),
    (_doc(_code("a"), {"cell_type": "heading", "id": "b", "metadata": {}, "source": "x"}), "$.cells[1]"),
    (_doc({"cell_type": "markdown", "id": "b", "metadata": {}, "source": "x", "attachments": {"def f(:\n": 1}}),
     '$.cells[0].attachments["def f(:\\n"]'),  # a key with a line break: quoted, the message stays one line
])
def test_nb003_schema_errors(tmp_path: Path, check_json: CheckJson, doc: dict[str, Any], where: str) -> None:
    path = nbf.write_raw(tmp_path / "s.ipynb", doc)
    code, findings = check_json(str(path))
    assert code == 1
    nb003 = [f for f in findings if f["code"] == "NB003"]
    [f] = nb003
    assert f["severity"] == "error"
    assert f["evidence"]["errors"][0]["path"].startswith(where)
    assert f["message"].startswith(f"schema violation at {where}") and "\n" not in f["message"]
    if where.startswith("$.cells["):
        assert f["cell"] == int(where[len("$.cells["):].split("]")[0])


def test_nb003_counts_all_errors(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write_raw(tmp_path / "s.ipynb", _doc(*[_code(f"c{i}", source=i) for i in range(8)]))
    [f] = check_json(str(path))[1]
    assert f["evidence"]["count"] == 8 and len(f["evidence"]["errors"]) == 5
    assert "(and 7 more)" in f["message"]


def test_nb003_kernelspec_errors_go_to_nb030_unless_ignored(tmp_path: Path, check_json: CheckJson) -> None:
    doc = _doc(_code("a"))
    doc["metadata"]["kernelspec"] = {"name": "python3"}
    path = nbf.write_raw(tmp_path / "k.ipynb", doc)
    assert codes(check_json(str(path))[1]) == ["NB030"]
    assert codes(check_json("--ignore", "NB030", str(path))[1]) == ["NB003"]


def test_nb003_old_format_is_info(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write_raw(tmp_path / "old.ipynb", {
        "metadata": {"name": "old"}, "nbformat": 3, "nbformat_minor": 0,
        "worksheets": [{"cells": [{"cell_type": "code", "input": "1", "language": "python", "outputs": []}],
                        "metadata": {}}]})
    code, findings = check_json(str(path))
    [f] = findings
    assert code == 0 and f["code"] == "NB003" and f["severity"] == "info"
    assert f["evidence"] == {"errors": [], "count": 0, "nbformat": "3.0"}


def _v3(*cells: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"metadata": {"name": "old", "signature": "sha256:0"}, "nbformat": 3,
                           "nbformat_minor": 0, "worksheets": [{"cells": list(cells), "metadata": {}}]}
    doc.update(top)
    return doc


def _v3_code(**fields: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": "code", "input": ["x = 1\n", "x"], "language": "python",
                            "metadata": {}, "outputs": [], "prompt_number": 1, "collapsed": False}
    cell.update(fields)
    return {k: v for k, v in cell.items() if v is not _DROP}


_DROP = object()
_PYOUT = {"output_type": "pyout", "prompt_number": 1, "text": ["1"], "metadata": {}}
_HEADING = {"cell_type": "heading", "level": 2, "source": ["Title"], "metadata": {}}


def _without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


#: (notebook, the path NB003 names, or None when Jupyter opens it); every verdict is checked against nbformat
_OLD_FORMAT_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("v3 fine", _v3(_v3_code(outputs=[_PYOUT]), _HEADING, {"cell_type": "markdown", "source": ["*a*"]}), None),
    ("no metadata", _without(_v3(_v3_code()), "metadata"), "$.metadata"),
    ("metadata not an object", _v3(_v3_code(), metadata=[]), "$.metadata"),
    ("no worksheets", _without(_v3(), "worksheets"), "$.worksheets"),
    ("worksheet without cells", _v3(worksheets=[{"cells": []}, {"metadata": {}}]), "$.worksheets[1].cells"),
    ("cells not a list", _v3(worksheets=[{"cells": 3}]), "$.worksheets[0].cells"),
    ("no cell_type", _v3(_v3_code(), {"source": "x"}), "$.worksheets[0].cells[1].cell_type"),
    ("no outputs", _v3(_v3_code(outputs=_DROP)), "$.worksheets[0].cells[0].outputs"),
    ("no input (an empty cell)", _v3(_v3_code(input=_DROP)), None),
    ("input lines not strings", _v3(_v3_code(input=["a", 1])), "$.worksheets[0].cells[0].input[1]"),
    ("no output_type", _v3(_v3_code(outputs=[{"text": "1"}])), "$.worksheets[0].cells[0].outputs[0].output_type"),
    ("unknown output_type", _v3(_v3_code(outputs=[{"output_type": "stdout", "text": "1"}])),
     "$.worksheets[0].cells[0].outputs[0]"),
    ("prompt_number a string", _v3(_v3_code(prompt_number="1")), "$.worksheets[0].cells[0].prompt_number"),
    ("prompt_number negative", _v3(_v3_code(prompt_number=-1)), "$.worksheets[0].cells[0].prompt_number"),
    ("prompt_number 1.0", _v3(_v3_code(prompt_number=1.0)), "$.worksheets[0].cells[0].prompt_number"),
    ("no prompt_number", _v3(_v3_code(prompt_number=_DROP)), None),
    ("collapsed not a boolean", _v3(_v3_code(collapsed="yes")), "$.worksheets[0].cells[0].collapsed"),
    ("pyout text not a string", _v3(_v3_code(outputs=[{**_PYOUT, "text": 5}])),
     "$.worksheets[0].cells[0].outputs[0].text"),
    ("json output not JSON", _v3(_v3_code(outputs=[{"output_type": "display_data", "json": "{nope"}])),
     "$.worksheets[0].cells[0].outputs[0].json"),
    ("stream without a name", _v3(_v3_code(outputs=[{"output_type": "stream", "text": "1"}])), None),
    ("heading level a string", _v3({**_HEADING, "level": "2"}), "$.worksheets[0].cells[0].level"),
    ("heading without level", _v3(_without(_HEADING, "level")), None),
    ("heading source a number", _v3({**_HEADING, "source": 5}), "$.worksheets[0].cells[0].source"),
    ("markdown without source", _v3({"cell_type": "markdown"}), "$.worksheets[0].cells[0]"),
    ("an unknown cell type", _v3({"cell_type": "plot", "source": "x"}), "$.worksheets[0].cells[0]"),
    ("nbformat 3.1", _v3(nbformat_minor=1), "$.nbformat_minor"),
    ("nbformat_minor a string", _v3(nbformat_minor="0"), "$.nbformat_minor"),
    ("no nbformat_minor", _without(_v3(_v3_code()), "nbformat_minor"), None),
    ("orig_nbformat not an integer", _v3(orig_nbformat="2"), "$.orig_nbformat"),
    ("an unknown top-level key", _v3(extra=1), "$"),
    ("a kernelspec without display_name", _v3(metadata={"kernelspec": {"name": "python3"}}),
     "$.metadata.kernelspec"),
    ("nbformat 3.0 written as a float", _v3(_v3_code(), nbformat=3.0), "$.nbformat"),
    ("v2 fine", {"metadata": {"name": ""}, "nbformat": 2, "worksheets": [{"cells": [
        {"cell_type": "code", "input": ["a", "b"], "language": "python", "outputs": [
            {"output_type": "pyout", "prompt_number": 1, "text": "1", "png": "AA=="}]}]}]}, None),
    ("v2 pyerr with etype (not ename)", {"metadata": {}, "nbformat": 2, "worksheets": [{"cells": [
        {"cell_type": "code", "input": "1/0", "language": "python", "outputs": [
            {"output_type": "pyerr", "etype": "ZeroDivisionError", "evalue": "x", "traceback": []}]}]}]},
     "$.worksheets[0].cells[0].outputs[0]"),
    ("v2 png not ASCII", {"metadata": {}, "nbformat": 2, "worksheets": [{"cells": [
        {"cell_type": "code", "input": "", "outputs": [{"output_type": "display_data", "png": "\u00e9"}]}]}]},
     "$.worksheets[0].cells[0].outputs[0].png"),
    ("v2 written as 2.0", {"metadata": {}, "nbformat": 2.0, "worksheets": []}, None),
    ("v1 fine", {"nbformat": 1, "cells": [{"cell_type": "code", "code": "1", "prompt_number": 1},
                                           {"cell_type": "text", "text": "hi"}]}, None),
    ("v1 unknown first cell type", {"nbformat": 1, "cells": [{"cell_type": "markdown", "text": "hi"}]},
     "$.cells[0].cell_type"),
    ("v1 prompt_number not a number", {"nbformat": 1, "cells": [{"cell_type": "code", "prompt_number": "x"}]},
     "$.cells[0].prompt_number"),
    ("v1 text cell without text", {"nbformat": 1, "cells": [{"cell_type": "text"}]}, "$.cells[0]"),
]


@pytest.mark.parametrize(("doc", "where"), [pytest.param(d, w, id=name) for name, d, w in _OLD_FORMAT_CASES])
def test_nb003_old_format_verdict_is_jupyters(tmp_path: Path, check_json: CheckJson, doc: dict[str, Any],
                                              where: str | None) -> None:
    assert jupyter_opens(doc) == (where is None)  # the case says what nbformat does
    path = nbf.write_raw(tmp_path / "old.ipynb", doc)
    code, findings = check_json(str(path))
    [f] = [f for f in findings if f["code"] == "NB003"]
    assert set(f["evidence"]) == {"errors", "count", "nbformat"}
    if where is None:
        assert code == 0 and f["severity"] == "info" and f["evidence"]["errors"] == []
        return
    assert code == 1 and f["severity"] == "error"
    assert f["evidence"]["errors"][0]["path"] == where
    assert ("Jupyter cannot open" in f["message"] or "Notebook validation failed" in f["message"])
    assert where in f["message"]
    assert f["evidence"]["nbformat"].startswith(f"{int(doc['nbformat'])}.")


def test_nb003_old_format_error_names_the_cell(tmp_path: Path, check_json: CheckJson) -> None:
    doc = _v3(_v3_code(), worksheets=[{"cells": [_v3_code()]}, {"cells": [_v3_code(), _v3_code(outputs=_DROP)]}])
    [f] = check_json(str(nbf.write_raw(tmp_path / "old.ipynb", doc)))[1]
    assert f["cell"] == 2 and f["evidence"]["errors"][0]["path"] == "$.worksheets[1].cells[1].outputs"
    assert "nbmedic repair" not in f["fix"].split(",")[0]  # a missing `outputs` is not what repair adds


@pytest.mark.parametrize("doc", [_without(_v3(_v3_code()), "metadata"), _without(_v3(), "worksheets"),
                                 _v3(worksheets=[{"metadata": {}}])])
def test_nb003_old_format_fix_points_to_repair_when_repair_mends_it(tmp_path: Path, check_json: CheckJson,
                                                                    doc: dict[str, Any]) -> None:
    [f] = check_json(str(nbf.write_raw(tmp_path / "old.ipynb", doc)))[1]
    assert f["severity"] == "error" and f["fix"].startswith("`nbmedic repair FILE` rebuilds what is missing")


def test_nb003_keeps_one_evidence_layout(tmp_path: Path, check_json: CheckJson) -> None:
    """v4 schema errors, a bad version field and old-format verdicts carry the same keys."""
    docs = [_doc(_code("a", source=5)), {**_doc(_code("a")), "nbformat": "4"}, _v3(),
            _without(_v3(), "worksheets")]
    layouts = []
    for i, doc in enumerate(docs):
        [f] = [f for f in check_json(str(nbf.write_raw(tmp_path / f"n{i}.ipynb", doc)))[1] if f["code"] == "NB003"]
        layouts.append(sorted(f["evidence"]))
        assert all(sorted(e) == ["message", "path"] for e in f["evidence"]["errors"])
    assert layouts == [["count", "errors", "nbformat"]] * len(docs)


def test_nb003_execution_count_must_be_an_integer_not_a_float(tmp_path: Path, check_json: CheckJson) -> None:
    """nbformat's validators read the schema as draft 4, where 1.0 is not an integer."""
    doc = _doc(_code("a", execution_count=1.0))
    assert not jupyter_opens(doc)
    [f] = check_json(str(nbf.write_raw(tmp_path / "f.ipynb", doc)))[1]
    assert f["code"] == "NB003" and f["evidence"]["errors"][0]["path"] == "$.cells[0].execution_count"


@pytest.mark.parametrize("top", [{"nbformat": "4"}, {"nbformat": None}])
def test_nb003_bad_version_field(tmp_path: Path, check_json: CheckJson, top: dict[str, Any]) -> None:
    path = nbf.write_raw(tmp_path / "v.ipynb", {**_doc(_code("a")), **top})
    [f] = check_json(str(path))[1]
    assert f["code"] == "NB003" and f["severity"] == "error"


def test_nb003_missing_version_field(tmp_path: Path, check_json: CheckJson) -> None:
    doc = _doc(_code("a"))
    del doc["nbformat"]
    [f] = check_json(str(nbf.write_raw(tmp_path / "v.ipynb", doc)))[1]
    assert f["code"] == "NB003" and "missing" in f["message"]


def test_nb004_ids_with_minor_4(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write_raw(tmp_path / "i.ipynb", _doc(_code("a"), _md(), _code("b"), minor=4))
    code, findings = check_json(str(path))
    assert codes(findings) == ["NB004"]  # not also an NB003 'additional property' error
    [f] = findings
    assert code == 1 and f["severity"] == "error"
    assert f["evidence"] == {"nbformat_minor": 4, "cells_with_id": [0, 2]}
    assert "nbformat_minor" in f["fix"]


def test_nb004_missing_ids_with_minor_5(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write_raw(tmp_path / "i.ipynb", _doc(_code("a"), _md(), _code()))
    code, findings = check_json(str(path))
    assert codes(findings) == ["NB004"]
    [f] = findings
    assert code == 0 and f["severity"] == "warning" and f["cell"] == 1
    assert f["evidence"] == {"cells": [1, 2], "count": 2}


def test_nb004_duplicate_ids(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write_raw(tmp_path / "i.ipynb", _doc(_code("same"), _md("other"), _code("same")))
    [f] = check_json(str(path))[1]
    assert f["code"] == "NB004" and f["severity"] == "warning"  # Jupyter opens it, renaming the copy
    assert f["cell"] == 2 and f["evidence"] == {"id": "same", "cells": [0, 2]}
    assert "used by 2 cells" in f["message"]


@pytest.mark.parametrize("bad", ["has space", "", "x" * 65, "dot.ted", 7])
def test_nb004_invalid_ids(tmp_path: Path, check_json: CheckJson, bad: Any) -> None:
    path = nbf.write_raw(tmp_path / "i.ipynb", _doc(_code("ok"), _code(bad)))
    code, findings = check_json(str(path))
    assert codes(findings) == ["NB004"]  # the schema's pattern error is not repeated as NB003
    [f] = findings
    assert code == 1 and f["cell"] == 1 and f["evidence"] == {"id": bad}
    assert f["cell_id"] == (bad if isinstance(bad, str) else None)


def test_nbformat_written_notebooks_pass(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.md("# t"), nbf.code("print(1)", count=1, outputs=[nbf.stream("1\n")]),
                      nbf.code("1/0", count=2, outputs=[nbf.error("ZeroDivisionError", "division by zero")]))
    path = nbf.write(tmp_path / "n.ipynb", nb)
    assert [f["severity"] for f in check_json(str(path))[1]] == ["info"]  # NB051 only


def test_fast_schema_accepts_exactly_what_nbformat_schema_accepts() -> None:
    import copy

    import jsonschema

    from nbmedic.checks import structure

    nb = nbf.notebook(
        nbf.md("# t"), nbf.code("print(1)", count=1, outputs=[nbf.stream("1\n")]),
        nbf.code("x", count=2, outputs=[nbf.result({"text/plain": ["2"]}, 2), nbf.display({"image/png": "AA=="}),
                                        nbf.error()]),
        v4.new_raw_cell("raw"))
    base = json.loads(json.dumps(nb))
    variants = [base]
    for mutate in [
        lambda d: d["cells"][1].__setitem__("source", 5),
        lambda d: d["cells"][1].__setitem__("source", ["a", 1]),
        lambda d: d["cells"][1]["outputs"][0].__setitem__("name", 3),
        lambda d: d["cells"][1]["outputs"][0].__setitem__("output_type", "display_data"),
        lambda d: d["cells"][2]["outputs"][0].pop("execution_count"),
        lambda d: d["cells"][2]["outputs"][1].__setitem__("output_type", "stream"),
        lambda d: d["cells"][0].__setitem__("cell_type", "code"),
        lambda d: d["cells"][0].__setitem__("cell_type", "raw"),
        lambda d: d["cells"][1].__setitem__("cell_type", "markdown"),
        lambda d: d["cells"][0].__setitem__("outputs", []),
        lambda d: d["cells"][1].pop("outputs"),
        lambda d: d["cells"].append(1),
    ]:
        doc = copy.deepcopy(base)
        mutate(doc)
        variants.append(doc)
    for minor in (4, 5):
        strict = jsonschema.Draft4Validator(structure._schema(minor))
        fast = structure._fast_validator(minor)
        for doc in variants:
            doc = copy.deepcopy(doc)
            if minor == 4:
                for cell in doc["cells"]:
                    if isinstance(cell, dict):
                        cell.pop("id", None)
                doc["nbformat_minor"] = 4
            try:
                fast(doc)
                fast_ok = True
            except Exception:  # noqa: BLE001 - any exception is the fast validator's "invalid"
                fast_ok = False
            assert fast_ok == strict.is_valid(doc), (minor, doc)


def test_nb003_a_newer_minor_is_judged_as_nbformat_does(tmp_path: Path, check_json: CheckJson) -> None:
    """nbformat relaxes its newest schema for files from the future: extra keys, unknown cell types."""
    doc = _doc(_code("c1"))
    doc["nbformat_minor"] = 99
    doc["extra_top_level"] = True
    doc["cells"].append({"cell_type": "future_cell", "id": "f1", "metadata": {}, "source": ""})
    path = nbf.write_raw(tmp_path / "future.ipynb", doc)
    assert check_json(str(path))[1] == []
    doc["nbformat_minor"] = 5  # the same content claiming 4.5 is invalid
    nbf.write_raw(path, doc)
    assert "NB003" in codes(check_json(str(path))[1])


def test_dispatching_validator_agrees_with_the_schema_on_the_corpus() -> None:
    """The fast path dispatches cells and outputs by type; its verdict must be jsonschema's, file by file."""
    import jsonschema

    from nbmedic.checks import structure
    from nbmedic.notebook.io import NotebookReadError, load_bytes

    corpus = Path(__file__).parent / "corpus"
    compared = invalid = 0
    for path in sorted(corpus.rglob("*.ipynb")):
        try:
            nb = load_bytes(path.read_bytes())
        except NotebookReadError:
            continue
        minor = nb.get("nbformat_minor")
        if nb.get("nbformat") != 4 or not isinstance(minor, int):
            continue
        try:
            structure._fast_validator(minor)(nb)
            fast = True
        except Exception:  # noqa: BLE001 - any exception is the fast validator's "invalid"
            fast = False
        assert fast == jsonschema.Draft4Validator(structure._schema(minor)).is_valid(nb), path.name
        compared += 1
        invalid += not fast
    assert compared > 40 and invalid >= 3  # both verdicts were exercised


def _id_and_kernelspec_variants(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """``doc`` with cell ids and kernelspecs wrong in every way the schema knows, alone and mixed with
    another error."""
    import copy

    out = []
    for minor in (4, 5):
        for damage in ("none", "missing", "bad", "number", "extra", "kernelspec", "kernelspec-str", "source"):
            nb = copy.deepcopy(doc)
            nb["nbformat_minor"] = minor
            cells = [c for c in nb["cells"] if isinstance(c, dict)]
            for i, cell in enumerate(cells):
                cell.pop("id", None)
                if minor == 5:
                    cell["id"] = f"c{i}"
            first = cells[0]
            if damage == "missing":
                first.pop("id", None)
            elif damage == "bad":
                first["id"] = "has space"
            elif damage == "number":
                first["id"] = 7
            elif damage == "extra":
                first["id"] = "x"
            elif damage == "kernelspec":
                nb["metadata"]["kernelspec"] = {"name": "python3"}
            elif damage == "kernelspec-str":
                nb["metadata"]["kernelspec"] = "python3"
            elif damage == "source":
                first["source"] = 5
                first["id"] = 7
            out.append(nb)
    return out


def test_schema_errors_shortcut_gives_jsonschemas_answer() -> None:
    """A notebook whose only schema errors are about ids (NB004) or the kernelspec (NB030) is cleared
    without jsonschema's walk: the answer must be the walk's, on the corpus and on damaged copies."""
    from nbmedic.checks import structure
    from nbmedic.notebook.io import NotebookReadError, load_bytes

    docs: list[dict[str, Any]] = []
    for path in sorted((Path(__file__).parent / "corpus").rglob("*.ipynb")):
        try:
            nb = load_bytes(path.read_bytes())
        except NotebookReadError:
            continue
        if nb.get("nbformat") == 4 and isinstance(nb.get("nbformat_minor"), int):
            docs.append(nb)
    base = _doc(_code("a"), _md("b"), _code("c", outputs=[{"output_type": "stream", "name": "stdout", "text": "1"}]))
    docs += _id_and_kernelspec_variants(base)
    shortcuts = 0
    for nb in docs:
        for skip in (False, True):
            fast = structure.schema_errors(nb, nb["nbformat_minor"], skip_kernelspec=skip)
            assert fast == structure._detailed_errors(nb, nb["nbformat_minor"], skip), nb
            shortcuts += not fast and not structure._fast_valid(nb, nb["nbformat_minor"])
    assert shortcuts >= 10  # the shortcut was taken, and agreed
