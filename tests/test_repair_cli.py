"""``nbmedic repair`` end to end: ids, old formats, BOM, newlines, outputs, failures, the JSON report."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v3

from nbmedic.repair import repair_bytes

from . import nbfactory as f

RunCli = Callable[..., tuple[int, str, str]]


def _nb() -> Any:
    return f.notebook(f.md("# Hello"), f.code("print(1)", count=1, outputs=[f.stream("1\n")]),
                      f.code("y = 2"))


def _raw(nb: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(nbformat.writes(nb))
    return doc


def _read_valid(path: Path) -> Any:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _repair_json(run_cli: RunCli, *args: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, err = run_cli("repair", "--format", "json", *args)
    assert "Traceback" not in out + err
    doc = json.loads(out)
    assert set(doc) == {"version", "findings", "repairs"} and doc["version"] == 1 and doc["findings"] == []
    for entry in doc["repairs"]:
        assert set(entry) >= {"path", "output", "status", "actions", "lost"}
        assert entry["status"] in ("repaired", "unchanged", "failed")
    return code, doc["repairs"]


def test_healthy_notebook_is_left_alone(tmp_path: Path, run_cli: RunCli) -> None:
    path = f.write(tmp_path / "ok.ipynb", _nb())
    code, out, _ = run_cli("repair", str(path))
    assert code == 0 and "nothing to repair" in out
    assert not (tmp_path / "ok.repaired.ipynb").exists()
    code, repairs = _repair_json(run_cli, str(path))
    assert code == 0 and repairs[0]["status"] == "unchanged" and repairs[0]["output"] is None


def test_missing_duplicate_and_invalid_ids(tmp_path: Path, run_cli: RunCli) -> None:
    doc = _raw(_nb())
    del doc["cells"][0]["id"]
    doc["cells"][1]["id"] = doc["cells"][2]["id"] = "same"
    doc["cells"].append({"cell_type": "raw", "id": "x" * 80, "metadata": {}, "source": "raw"})
    doc["cells"].append({"cell_type": "raw", "id": "bad id!", "metadata": {}, "source": "raw"})
    path = f.write_raw(tmp_path / "ids.ipynb", doc)
    code, repairs = _repair_json(run_cli, str(path))
    assert code == 0, repairs
    (entry,) = repairs
    assert entry["status"] == "repaired" and entry["lost"] == []
    nb = _read_valid(Path(entry["output"]))
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == 5 and ids[1] == "same" and ids[4] == "bad-id"
    assert all(1 <= len(i) <= 64 for i in ids)
    text = " ".join(entry["actions"])
    assert "added ids" in text and "already used" in text and "invalid id" in text


def test_ids_below_4_5_bump_the_minor(tmp_path: Path) -> None:
    doc = _raw(_nb())
    doc["nbformat_minor"] = 4
    del doc["cells"][2]["id"]
    result = repair_bytes(json.dumps(doc).encode())
    assert result.status == "repaired" and result.nb is not None
    assert result.nb["nbformat_minor"] == 5 and all("id" in c for c in result.nb["cells"])
    del doc["cells"][0]["id"], doc["cells"][1]["id"]  # 4.4 without any id: valid as it is
    assert repair_bytes(json.dumps(doc).encode()).status == "unchanged"


def test_nbformat3_is_converted(tmp_path: Path, run_cli: RunCli) -> None:
    nb3 = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_code_cell(input="1 + 1", prompt_number=1, outputs=[v3.new_output("pyout", output_text="2",
                                                                               prompt_number=1)]),
        v3.new_text_cell("markdown", source="hello"),
    ])], metadata=v3.new_metadata(name="old"))
    path = tmp_path / "old.ipynb"
    path.write_text(v3.nbjson.writes(nb3), encoding="utf-8")
    code, out, err = run_cli("repair", str(path))
    assert code == 0, out + err
    assert "converted the notebook from nbformat 3.0 to 4.5" in out
    nb = _read_valid(tmp_path / "old.repaired.ipynb")
    assert [c.source for c in nb.cells] == ["1 + 1", "hello"]
    assert nb.nbformat == 4 and "orig_nbformat" not in nb.metadata


def _v3_doc(*cells: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"metadata": {"name": "old", "signature": "sha256:0"}, "nbformat": 3, "nbformat_minor": 0,
                           "worksheets": [{"cells": list(cells), "metadata": {}}]}
    doc.update(top)
    return doc


_V3_CODE = {"cell_type": "code", "input": ["x = 1\n", "x"], "language": "python", "metadata": {},
            "outputs": [{"output_type": "pyout", "prompt_number": 1, "text": ["1"], "metadata": {}}],
            "prompt_number": 1, "collapsed": False}


@pytest.mark.parametrize(("damage", "added"), [
    (lambda d: d.pop("metadata"), "added the missing notebook `metadata`"),
    (lambda d: d.pop("worksheets"), "added the missing `worksheets` (empty: the notebook had no cells)"),
    (lambda d: d["worksheets"].append({"metadata": {}}), "added the missing `cells` list to worksheets[1]"),
])
def test_nbformat3_missing_structure_is_added_then_converted(tmp_path: Path, run_cli: RunCli,
                                                             check_json: Callable[..., Any],
                                                             damage: Callable[[dict[str, Any]], Any],
                                                             added: str) -> None:
    doc = _v3_doc(_V3_CODE)
    damage(doc)
    path = f.write_raw(tmp_path / "old.ipynb", doc)
    [finding] = check_json(str(path))[1]
    assert finding["code"] == "NB003" and finding["severity"] == "error"  # Jupyter cannot open it
    code, out, err = run_cli("repair", str(path))
    assert code == 0, out + err
    assert added in out and "converted the notebook from nbformat 3.0 to 4.5" in out
    nb = _read_valid(tmp_path / "old.repaired.ipynb")
    assert [c.source for c in nb.cells] == ([] if "`worksheets`" in added else ["x = 1\nx"])


def test_nbformat3_is_read_as_jupyter_reads_it(tmp_path: Path, run_cli: RunCli) -> None:
    """nbformat's own nbformat 3 test notebook: headings and text split in lines, as nbformat 3 wrote them."""
    path = tmp_path / "test3.ipynb"
    path.write_bytes((Path(__file__).parent / "corpus" / "nbformat" / "test3.ipynb").read_bytes())
    code, out, err = run_cli("repair", str(path))
    assert code == 0, out + err
    nb = _read_valid(tmp_path / "test3.repaired.ipynb")
    assert nb.cells[0].source == "# nbconvert latex test" and nb.cells[0].cell_type == "markdown"
    with open(path, encoding="utf-8") as fh:
        assert [c.source for c in nb.cells] == [c.source for c in nbformat.read(fh, as_version=4).cells]


@pytest.mark.parametrize("in_place", [False, True])
def test_unconvertible_nbformat3_fails_in_one_line_and_leaves_the_file(tmp_path: Path, run_cli: RunCli,
                                                                        in_place: bool) -> None:
    doc = _v3_doc(_V3_CODE, {**_V3_CODE, "outputs": [{"text": "no output_type"}]})
    path = f.write_raw(tmp_path / "bad.ipynb", doc)
    before = path.read_bytes()
    code, out, err = run_cli("repair", *(["--in-place"] if in_place else []), str(path))
    assert code == 1 and "Traceback" not in out + err and err == ""
    line, summary = out.splitlines()
    assert line == (f"{path}: cannot be repaired: nbformat 3 cannot be converted to 4 (nor opened by Jupyter): "
                    "$.worksheets[0].cells[1].outputs[0].output_type: required key missing (nothing written)")
    assert summary.endswith("1 failed")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb"]


def test_nbformat3_with_a_minor_version_that_does_not_exist(tmp_path: Path, run_cli: RunCli) -> None:
    path = f.write_raw(tmp_path / "old.ipynb", _v3_doc(_V3_CODE, nbformat_minor=1))
    code, out, err = run_cli("repair", str(path))
    assert code == 0, out + err
    assert "set nbformat_minor (1) to 0: nbformat 3.0 is the only nbformat 3" in out
    assert [c.source for c in _read_valid(tmp_path / "old.repaired.ipynb").cells] == ["x = 1\nx"]


def test_top_level_cells_of_a_notebook_without_worksheets_are_kept(tmp_path: Path, run_cli: RunCli) -> None:
    """nbformat's conversion rebuilds `cells` from the worksheets: cells at the top level would vanish."""
    v3_cells = _v3_doc(worksheets=None, cells=[_V3_CODE])
    del v3_cells["worksheets"]
    v4_cells = {**_raw(_nb()), "nbformat": 3, "nbformat_minor": 0}
    for name, doc, note in (("v3", v3_cells, "one worksheet holding the notebook's 1 top-level cell(s)"),
                            ("v4", v4_cells, "holds nbformat 4 `cells` (code in `source`), not `worksheets`")):
        path = f.write_raw(tmp_path / f"{name}.ipynb", doc)
        code, out, err = run_cli("repair", str(path))
        assert code == 0 and note in out, out + err
        sources = [c.source for c in _read_valid(tmp_path / f"{name}.repaired.ipynb").cells]
        assert sources == (["x = 1\nx"] if name == "v3" else ["# Hello", "print(1)", "y = 2"])


def test_bom_is_removed_and_crlf_kept(tmp_path: Path, run_cli: RunCli) -> None:
    text = nbformat.writes(_nb()) + "\n"
    path = tmp_path / "bom.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    code, out, _ = run_cli("repair", str(path))
    assert code == 0 and "byte-order mark" in out
    data = (tmp_path / "bom.repaired.ipynb").read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data == text.replace("\n", "\r\n").encode()  # canonical layout, CRLF kept


def test_truncated_crlf_file_stays_crlf(tmp_path: Path) -> None:
    text = (nbformat.writes(_nb()) + "\n").replace("\n", "\r\n")
    cut = text.index('"metadata": {\r\n  "kernelspec"')
    result = repair_bytes(text[:cut].encode())
    assert result.status == "repaired" and result.newline == "\r\n" and result.lost


def test_in_place_keeps_a_backup(tmp_path: Path, run_cli: RunCli) -> None:
    original = (nbformat.writes(_nb()) + "\n").encode()
    path = tmp_path / "nb.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + original)
    code, out, _ = run_cli("repair", "--in-place", str(path))
    assert code == 0, out
    assert path.read_bytes() == original
    assert (tmp_path / "nb.ipynb.bak").read_bytes() == b"\xef\xbb\xbf" + original
    assert not (tmp_path / "nb.repaired.ipynb").exists()
    code, out, _ = run_cli("repair", "--in-place", str(path))  # now healthy: nothing to do
    assert code == 0 and "nothing to repair" in out


def test_output_option(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + nbformat.writes(_nb()).encode())
    out_file = tmp_path / "elsewhere" / "fixed.ipynb"
    out_file.parent.mkdir()
    code, _, _ = run_cli("repair", str(path), "-o", str(out_file))
    assert code == 0 and _read_valid(out_file)
    code, _, _ = run_cli("repair", str(path), "-o", str(out_file.parent))  # a folder: same name inside
    assert code == 0 and _read_valid(out_file.parent / "nb.ipynb")


def test_usage_errors(tmp_path: Path, run_cli: RunCli) -> None:
    a = f.write(tmp_path / "a.ipynb", _nb())
    b = f.write(tmp_path / "b.ipynb", _nb())
    code, _, err = run_cli("repair", str(a), str(b), "-o", str(tmp_path / "x.ipynb"))
    assert code == 2 and "one input" in err
    code, _, err = run_cli("repair", str(a), "-o", str(tmp_path / "missing" / "x.ipynb"))
    assert code == 2 and "does not exist" in err
    code, _, _ = run_cli("repair", str(a), "-o", "x.ipynb", "--in-place")
    assert code == 2
    code, _, _ = run_cli("repair", str(a), "--prefer", "both")
    assert code == 2


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><title>GitHub</title></html>", "HTML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
    (b"[1, 2, 3]", "not a notebook"),
    (b'{"cells": [{"cell_type": "code", "source": "x", "outputs": [{"output_type": "nope"}]}]}', "schema"),
])
def test_unrecoverable_files_are_untouched(tmp_path: Path, run_cli: RunCli, content: bytes,
                                          words: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    code, out, err = run_cli("repair", "--in-place", str(path))
    assert code == 1 and words in out and "Traceback" not in out + err
    assert path.read_bytes() == content and path.stat().st_mtime_ns == 1_000_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb"]


def test_missing_file_and_folder_fail_without_traceback(tmp_path: Path, run_cli: RunCli) -> None:
    good = tmp_path / "good.ipynb"
    good.write_bytes(b"\xef\xbb\xbf" + nbformat.writes(_nb()).encode())
    code, repairs = _repair_json(run_cli, str(tmp_path / "nope.ipynb"), str(tmp_path), str(good))
    assert code == 1  # every file is processed; the failures decide the exit code
    assert [r["status"] for r in repairs] == ["failed", "failed", "repaired"]


def test_unwritable_target_leaves_input_untouched(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "nb.ipynb"
    data = b"\xef\xbb\xbf" + nbformat.writes(_nb()).encode()
    path.write_bytes(data)
    (tmp_path / "nb.repaired.ipynb").mkdir()  # the default target cannot be written
    (tmp_path / "nb.ipynb.bak").mkdir()       # nor can the backup of --in-place
    before = path.stat().st_mtime_ns
    for args in ((), ("--in-place",)):
        code, out, err = run_cli("repair", *args, str(path))
        assert code == 1 and "cannot write" in out and "input is untouched" in out, out + err
        assert path.read_bytes() == data and path.stat().st_mtime_ns == before


def test_invalid_utf8_is_reported_as_lost(tmp_path: Path) -> None:
    text = nbformat.writes(f.notebook(f.md("café"))).encode("utf-8").replace("café".encode(), b"caf\xe9")
    result = repair_bytes(text)
    assert result.status == "repaired" and result.nb is not None and result.lost
    assert "".join(result.nb["cells"][0]["source"]) == "caf\ufffd"


def test_structural_fields_are_filled_in() -> None:
    doc = {"cells": [{"cell_type": "code", "source": ["a = 1"]},
                     {"cell_type": "markdown", "source": "t", "outputs": [], "execution_count": None},
                     {"source": "guess"}, 5],
           "nbformat": 4, "nbformat_minor": 5}
    result = repair_bytes(json.dumps(doc).encode())
    assert result.status == "repaired" and result.nb is not None
    cells = result.nb["cells"]
    assert [c["cell_type"] for c in cells] == ["code", "markdown", "markdown"]
    assert cells[0]["outputs"] == [] and cells[0]["execution_count"] is None
    assert result.nb["metadata"] == {}
    assert any("cell 3" in x for x in result.lost)  # the non-object cell
