"""``repair`` of truncated and damaged JSON: every complete cell survives, the loss is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbmedic.repair import repair_bytes, validation_error
from nbmedic.repair.scan import scan

from . import nbfactory as f


def _rich_notebook() -> Any:
    return f.notebook(
        f.md("# Title ü — \u2028 \"quoted\" \\ backslash"),
        f.code("import math\nprint(math.pi)", count=1, outputs=[f.stream("3.14159\n")]),
        f.code("{'a': [1, 2, {'b': '}]'}]}", count=2, outputs=[f.result({"text/plain": "{'a': 1}"}, 2)]),
        f.md(""),
        f.code("raise ValueError('x')", count=3, outputs=[f.error()]),
        f.code("x = 1e-05\n", count=4),
        f.code("display('<b>hi</b>')", count=5,
               outputs=[f.display({"text/html": "<b>hi</b>", "text/plain": "'<b>hi</b>'"})]),
    )


def _cell_ends(text: str) -> list[int]:
    """Character offsets just past each cell's closing brace, from nbformat's own layout."""
    ends, pos = [], 0
    stop = text.index('\n "metadata": {')
    while True:
        pos = text.find("\n  }", pos, stop)
        if pos < 0:
            return ends
        ends.append(pos + 4)
        pos += 4


def _check_cut(original: Any, text: str, cut: int) -> None:
    result = repair_bytes(text[:cut].encode("utf-8"))
    complete = sum(1 for end in _cell_ends(text) if end <= cut)
    if result.status == "failed":
        assert complete == 0, (cut, result.message)
        return
    if result.status == "unchanged":
        assert not text[cut:].strip(), cut
        return
    assert result.nb is not None
    assert validation_error(result.nb) is None, cut
    nbformat.validate(nbformat.from_dict(json.loads(json.dumps(result.nb))))
    cells = result.nb["cells"]
    assert len(cells) == complete, (cut, len(cells), complete)
    saved = json.loads(text)["cells"]
    assert cells == saved[:complete]  # identical, source, ids and outputs included
    for got, want in zip(cells, original.cells):
        assert "".join(got["source"]) == want.source
    if complete < len(original.cells):
        assert result.lost, cut
        assert any(f"cell {complete} " in x or "after cell" in x for x in result.lost), result.lost


def test_every_cut_offset_keeps_every_complete_cell() -> None:
    nb = _rich_notebook()
    text = nbformat.writes(nb) + "\n"
    step = 1
    for cut in list(range(0, len(text), step)) + [len(text) - 1, len(text) - 2, len(text) - 3]:
        _check_cut(nb, text, cut)


_sources = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(sources=st.lists(_sources, min_size=1, max_size=5), fraction=st.floats(0, 1))
def test_random_notebooks_cut_anywhere(sources: list[str], fraction: float) -> None:
    nb = f.notebook(*[f.code(s) if i % 2 else f.md(s) for i, s in enumerate(sources)])
    text = nbformat.writes(nb) + "\n"
    _check_cut(nb, text, int(len(text) * fraction))


def test_cut_inside_cells_reports_loss_and_rebuilds_metadata(tmp_path: Path, run_cli: Any) -> None:
    nb = _rich_notebook()
    text = nbformat.writes(nb) + "\n"
    cut = _cell_ends(text)[2] + 40  # inside cell 3
    path = tmp_path / "cut.ipynb"
    path.write_bytes(text[:cut].encode())
    code, out, err = run_cli("repair", str(path))
    assert code == 1, out + err
    assert "cell 3 and every cell after it" in out and "byte(s) lost" in out
    assert "metadata" in out and "nbformat 4.5" in out
    repaired = nbformat.read(tmp_path / "cut.repaired.ipynb", as_version=4)
    nbformat.validate(repaired)
    assert [c.source for c in repaired.cells] == [c.source for c in nb.cells[:3]]
    assert repaired.nbformat_minor == 5 and repaired.metadata == {}


def test_cut_inside_metadata_keeps_complete_members() -> None:
    nb = _rich_notebook()
    text = nbformat.writes(nb) + "\n"
    for extra, where in ((5, "`metadata`"), (20, "`metadata.language_info`")):
        cut = text.index('"language_info"') + extra
        result = repair_bytes(text[:cut].encode())
        assert result.status == "repaired" and result.nb is not None
        assert result.nb["metadata"] == {"kernelspec": dict(nb.metadata.kernelspec)}
        assert len(result.nb["cells"]) == len(nb.cells)
        assert any(where in x for x in result.lost), result.lost


def test_missing_closing_brace_only_loses_nothing() -> None:
    text = nbformat.writes(_rich_notebook()).rstrip()
    result = repair_bytes(text[:-1].encode())
    assert result.status == "repaired" and not result.lost
    assert any("closed the unterminated JSON" in a for a in result.actions)


def test_trailing_garbage_and_commas_from_hand_edits() -> None:
    nb = _rich_notebook()
    text = nbformat.writes(nb)
    broken = text.replace("\n  },\n  {", "\n  }\n  {", 1).replace("\n  }\n ],", "\n  },\n ],", 1)
    result = repair_bytes((broken + "\ngarbage after\n").encode())
    assert result.status == "repaired" and result.nb is not None
    assert len(result.nb["cells"]) == len(nb.cells)
    assert any("missing comma" in a for a in result.actions)
    assert any("trailing comma" in a for a in result.actions)
    assert any("after the end of the notebook" in x for x in result.lost)


def test_scan_records_where_it_stopped() -> None:
    result = scan('{"cells": [{"a": 1}, {"b": ')
    assert not result.complete and result.value == {"cells": [{"a": 1}]}
    assert result.lost_path == ("cells", 1) and result.lost_offset == 21
    assert scan("nope").value is None
    assert scan('{"a": [1, 2]}').complete


def test_syntax_error_in_the_middle_keeps_what_came_before() -> None:
    nb = _rich_notebook()
    text = nbformat.writes(nb)
    pos = _cell_ends(text)[4] + 2
    broken = text[:pos] + "\n  {oops}" + text[pos:]
    result = repair_bytes(broken.encode())
    assert result.status == "repaired" and result.nb is not None
    assert len(result.nb["cells"]) == 5 and result.lost


def test_truncated_nbformat3_file_keeps_its_complete_cells_and_is_converted(tmp_path: Path, run_cli: Any) -> None:
    """nbformat's own nbformat 3 notebook, cut in its ninth cell: the eight before it, headings split in
    lines as nbformat 3 wrote them, come out as nbformat 4."""
    data = (Path(__file__).parent / "corpus" / "nbformat" / "test3.ipynb").read_bytes()
    path = tmp_path / "cut.ipynb"
    path.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli("repair", str(path))
    assert code == 1 and "Traceback" not in out + err  # 1: cells were lost
    assert "the 8 complete cell(s) before it are kept" in out
    assert "converted the notebook from nbformat 3.0 to 4.5" in out
    nb = nbformat.read(tmp_path / "cut.repaired.ipynb", as_version=4)
    nbformat.validate(nb)
    full = nbformat.reads(data.decode("utf-8"), as_version=4)
    assert [c.source for c in nb.cells] == [c.source for c in full.cells[:8]]
