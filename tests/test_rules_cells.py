"""NB070-NB071: long code cells and cells whose many top-level variables later cells read (hidden state)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbmedic.checks import NotebookContext
from nbmedic.checks.cells import check_hidden_state, check_long_cells, code_lines, may_bind_more
from nbmedic.checks.rules import CheckEnv
from nbmedic.config import Config
from nbmedic.notebook.record import read_notebook_file
from tests import nbfactory as nbf
from tests.conftest import codes
from tests.runhelpers import make_nb

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]


def _ctx(path: Path, **config: Any) -> NotebookContext:
    file = read_notebook_file(path, Config(**config))
    assert file.nb is not None
    return NotebookContext(file=file, nb=file.nb, env=CheckEnv())


def _assignments(names: list[str]) -> str:
    return "".join(f"{name} = load({i})\n" for i, name in enumerate(names))


NINE = [f"v{i}" for i in range(9)]


# --- NB070 --------------------------------------------------------------------------------------------

def _long_cell(lines: int, blank_every: int = 0) -> str:
    out = []
    for i in range(lines):
        out.append(f"step_{i}()")
        if blank_every and i % blank_every == 0:
            out.append("   ")  # blank lines do not count
    return "\n".join(out) + "\n"


def test_nb070_at_the_limit_and_one_over(tmp_path: Path, check_json: CheckJson) -> None:
    at = make_nb(tmp_path, "x = 1", _long_cell(60, blank_every=3), name="at.ipynb")
    over = make_nb(tmp_path, "x = 1", _long_cell(61, blank_every=3), name="over.ipynb")
    assert check_json(str(at))[1] == []
    _, findings = check_json(str(over))
    [f] = findings
    assert f["code"] == "NB070" and f["severity"] == "info" and f["cell"] == 1
    assert f["evidence"] == {"lines": 61, "limit": 60}
    assert f["message"].startswith("cell 1 has 61 lines of code (not counting blank lines), over the 60-line")
    assert "functions" in f["fix"]
    assert [(f.cell, f.evidence) for f in check_long_cells(_ctx(over))] == [(1, {"lines": 61, "limit": 60})]
    assert code_lines("a\n\n  \n# note\nb") == 3


def test_nb070_custom_limit_from_pyproject(tmp_path: Path, check_json: CheckJson) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nmax-cell-lines = 10\n")
    path = make_nb(tmp_path, _long_cell(10), _long_cell(11), "%%bash\n" + _long_cell(40), "%%time\n" + _long_cell(12))
    _, findings = check_json(str(path))
    # %%bash is not Python and is left alone; %%time's body is Python (its magic line is not counted)
    assert [(f["code"], f["cell"], f["evidence"]["lines"]) for f in findings] == [("NB070", 1, 11), ("NB070", 3, 12)]
    assert all(f["evidence"]["limit"] == 10 for f in findings)


# --- NB071 --------------------------------------------------------------------------------------------

def _nb071(path: Path, **config: Any) -> list[tuple[int | None, dict[str, Any]]]:
    return [(f.cell, f.evidence) for f in check_hidden_state(_ctx(path, **config))]


def test_nb071_nine_variables_read_later_fire(tmp_path: Path, check_json: CheckJson) -> None:
    path = make_nb(tmp_path, "import json\n" + _assignments(NINE),
                   "print(v0, v1, v2, v3)", "def report():\n    return v4 + v5 + v6\n",
                   "[v7 * k for k in range(3)]\nv8.describe()")
    _, findings = check_json(str(path))
    [f] = findings
    assert f["code"] == "NB071" and f["severity"] == "info" and f["cell"] == 0
    assert f["evidence"] == {"names": NINE, "count": 9, "limit": 8, "read_by": 3}
    assert f["message"] == ("cell 0 defines 9 top-level variables that 3 later cells (from cell 1) read "
                            "(v0, v1, v2, v3, v4, ...): hidden state, over the limit of 8")
    assert "function" in f["fix"]
    assert _nb071(path) == [(0, f["evidence"])]
    assert _nb071(path, max_cell_names=9) == []


def test_nb071_eight_do_not_fire(tmp_path: Path) -> None:
    path = make_nb(tmp_path, _assignments(NINE[:8]), "print(" + ", ".join(NINE[:8]) + ")")
    assert _nb071(path) == []


def test_nb071_counts_only_names_a_later_cell_reads(tmp_path: Path) -> None:
    path = make_nb(
        tmp_path, _assignments(NINE + ["unused", "other"]),
        # v8 is rebound before it is read: the later cell reads its own v8, not cell 0's
        "v8 = 0\nprint(v0, v1, v2, v3, v4, v5, v6, v7, v8)",
        "def f(v0):\n    v1 = 2\n    return v0 + v1\n",  # parameters and locals are not reads
    )
    assert _nb071(path) == []
    # rebinding a name that is read first (`v8 = v8 + 1`, `v8 += 1`) reads it
    for rebinding in ("v8 = v8 + 1", "v8 += 1"):
        path = make_nb(tmp_path, _assignments(NINE), "print(v0, v1, v2, v3, v4, v5, v6, v7)\n" + rebinding)
        [(cell, evidence)] = _nb071(path)
        assert cell == 0 and evidence["count"] == 9 and evidence["read_by"] == 1


def test_nb071_ownership_moves_to_the_cell_that_rebinds(tmp_path: Path) -> None:
    path = make_nb(tmp_path, _assignments(NINE), "v0 = reload()", "print(v0, v1, v2, v3, v4, v5, v6, v7, v8)")
    assert _nb071(path) == []  # cell 2 reads cell 1's v0: cell 0 has 8 names read later


def test_nb071_functions_imports_classes_and_constants_do_not_count(tmp_path: Path) -> None:
    first = ("import numpy as np\nfrom os import path, sep\nimport json\n"
             "def a(): pass\ndef b(): pass\nclass C: pass\nasync def d(): pass\n"
             "DATA_DIR = 'data'\nSEED = 42\nN_ROWS = 10\n_ = a()\n" + _assignments(NINE[:8]))
    later = "print(np, path, sep, json, a, b, C, d, DATA_DIR, SEED, N_ROWS, _, " + ", ".join(NINE[:8]) + ")"
    path = make_nb(tmp_path, first, later)
    assert _nb071(path) == []
    path = make_nb(tmp_path, first + "v8 = 1\n", later + "\nprint(v8)")
    [(cell, evidence)] = _nb071(path)
    assert cell == 0 and evidence["names"] == NINE


def test_nb071_every_kind_of_binding_and_ipython_syntax(tmp_path: Path) -> None:
    first = ("%matplotlib inline\n"
             "!pip list\n"
             "files = !ls\n"
             "df?\n"
             "a, (b, *c) = 1, (2, 3)\n"
             "d: int = 4\n"
             "e += 0\n"
             "for f in range(3):\n    g = f\n"
             "with open('x') as h:\n    i = h.read()\n"
             "if (j := len(i)) > 3:\n    pass\n"
             "k = [m for m in range(j)]\n")
    later = "%time z = 1\nprint(a, b, c, d, e, f, g, h, i, j, k)\n!echo {a}\n"
    path = make_nb(tmp_path, first, later)
    [(cell, evidence)] = _nb071(path)
    # `m` lives in the comprehension; `files` (a shell assignment) is not Python: neither counts
    assert cell == 0 and evidence["names"] == ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
    assert evidence["count"] == 11 and evidence["read_by"] == 1


def test_nb071_skips_cells_that_do_not_parse_and_other_languages(tmp_path: Path) -> None:
    path = make_nb(tmp_path, _assignments(NINE) + "def broken(:\n", "print(" + ", ".join(NINE) + ")")
    assert _nb071(path) == []  # another rule's business; never guessed
    path = make_nb(tmp_path, _assignments(NINE), "print(" + ", ".join(NINE) + ")")
    assert len(_nb071(path)) == 1
    r_nb = nbf.write(tmp_path / "r.ipynb", nbf.notebook(
        nbf.code(_assignments(NINE)), nbf.code("print(" + ", ".join(NINE) + ")"), kernel="ir"))
    nb = read_notebook_file(r_nb, Config()).nb
    assert nb is not None
    nb["metadata"]["kernelspec"]["language"] = "R"
    assert list(check_hidden_state(NotebookContext(read_notebook_file(r_nb, Config()), nb, CheckEnv()))) == []


def test_nb071_parameters_cell_is_meant_to_hold_variables(tmp_path: Path) -> None:
    path = make_nb(tmp_path, _assignments(NINE), "print(" + ", ".join(NINE) + ")", tags={0: ["parameters"]})
    assert _nb071(path) == []


def test_the_cheap_estimate_never_undercounts() -> None:
    every_kind = ("a, (b, *c) = x\nd: int = 1\ne += 1\nfor f in g: pass\nwith x as h: pass\n(i := 1)\n"
                  "j = k = 2\n[l,\n m] = n\n")  # 12 names bound
    assert may_bind_more(every_kind, 11)
    assert may_bind_more("x = 1\ny = 2\n", 1) and not may_bind_more("x = 1\ny = 2\n", 2)
    assert not may_bind_more("", 0) and not may_bind_more("print('hello')", 0)


def test_ignore_nb07_silences_both(tmp_path: Path, check_json: CheckJson,
                                   run_cli: Callable[..., tuple[int, str, str]]) -> None:
    path = make_nb(tmp_path, _assignments(NINE) + _long_cell(60), "print(" + ", ".join(NINE) + ")")
    assert sorted(codes(check_json(str(path))[1])) == ["NB070", "NB071"]
    assert check_json("--ignore", "NB07", str(path))[1] == []
    assert codes(check_json("--ignore", "NB070", str(path))[1]) == ["NB071"]
    code, out, _ = run_cli("check", str(path))
    assert code == 0 and "NB070" in out and "NB071" in out  # info: the exit code stays 0
