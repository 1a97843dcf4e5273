"""RN120 names the exception the user saw, also when it was raised while IPython displayed the result.

ipykernel's execute_reply then carries ``ename: "NoneType"``, ``evalue: "None"`` while the cell's error
output has the real exception (checked with a real kernel below).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from nbmedic.execute import run_notebook
from nbmedic.execute.runner import reply_exception
from tests.runhelpers import make_nb, read_out

BAD_REPR = "class BadRepr:\n    def __repr__(self):\n        raise ValueError('bad repr')\n\nBadRepr()"
BAD_HTML = ("class BadHtml:\n    def _repr_html_(self):\n        raise KeyError('bad html')\n\n"
            "    def __repr__(self):\n        return 'BadHtml()'\n\nBadHtml()")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ipc transport: Linux only")
def test_an_exception_raised_while_displaying_the_result_is_named(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "print('first')", BAD_REPR, BAD_HTML, "print('after')")
    out = tmp_path / "out.ipynb"
    result = run_notebook(nb, output=out, allow_errors=True)
    found = {f.cell: f for f in result.findings if f.code == "RN120"}
    assert sorted(found) == [1, 2], [(f.code, f.message) for f in result.findings]
    assert found[1].message.startswith("cell 1 raised ValueError: bad repr")
    assert found[1].evidence["ename"] == "ValueError" and found[1].evidence["evalue"] == "bad repr"
    assert "__repr__" in found[1].evidence["traceback"] and "ValueError: bad repr" in found[1].evidence["traceback"]
    assert found[2].message.startswith("cell 2 raised KeyError: 'bad html'")
    assert found[2].evidence["ename"] == "KeyError" and "_repr_html_" in found[2].evidence["traceback"]
    assert not any("NoneType" in f.message for f in result.findings)
    saved = read_out(out)
    assert [o["output_type"] for o in saved["cells"][1]["outputs"]] == ["error"]
    assert [c.status for c in result.cells] == ["ok", "error", "error", "ok"]


def test_an_exception_raised_while_displaying_stops_the_run(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, BAD_REPR, "print('never')")
    result = run_notebook(nb)
    assert result.status == "failed"
    assert [(f.code, f.evidence["ename"]) for f in result.findings] == [("RN120", "ValueError")]


def test_the_reply_s_own_exception_wins_unless_it_is_the_placeholder() -> None:
    shown: list[dict[str, Any]] = [{"output_type": "stream", "name": "stdout", "text": "x"},
             {"output_type": "error", "ename": "KeyError", "evalue": "'k'",
              "traceback": ["\x1b[31mKeyError\x1b[0m: 'k'"]}]
    real = {"status": "error", "ename": "ValueError", "evalue": "v", "traceback": ["ValueError: v"]}
    assert reply_exception(real, shown) == ("ValueError", "v", ["ValueError: v"])
    placeholder = {"status": "error", "ename": "NoneType", "evalue": "None", "traceback": []}
    assert reply_exception(placeholder, shown) == ("KeyError", "'k'", ["KeyError: 'k'"])
    assert reply_exception({"status": "error"}, shown) == ("KeyError", "'k'", ["KeyError: 'k'"])
    # nothing better to say: the reply as it is
    assert reply_exception(placeholder, []) == ("NoneType", "None", [])
    assert reply_exception({"status": "error"}, []) == ("Error", "", [])
    assert reply_exception({"status": "aborted"}, shown)[0] == "Aborted"
