"""NB010-NB013: execution counts and committed outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import nbfactory as nbf
from tests.conftest import codes

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]


def _only(findings: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["code"] == code]


def _linear(tmp_path: Path, name: str = "ok.ipynb") -> Path:
    return nbf.write(tmp_path / name, nbf.notebook(
        nbf.md("# Title with /home/alice/ text"),
        nbf.code("x = 1", count=1),
        nbf.code("print(x)", count=2, outputs=[nbf.stream("1\n")]),
        nbf.code("", count=None),  # empty cells are never 'skipped'
        nbf.code("x + 1", count=3, outputs=[nbf.result({"text/plain": "2"}, 3)]),
    ))


def test_linear_notebook_is_clean(tmp_path: Path, check_json: CheckJson) -> None:
    code, findings = check_json(str(_linear(tmp_path)))
    assert code == 0
    assert findings == []


def test_unexecuted_notebook_is_clean(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "fresh.ipynb", nbf.notebook(nbf.code("a = 1"), nbf.code("b = 2")))
    assert check_json(str(path))[1] == []


def test_nb010_only_when_clean_is_asked(tmp_path: Path, check_json: CheckJson) -> None:
    path = _linear(tmp_path)
    assert _only(check_json(str(path))[1], "NB010") == []
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nclean = true\n")
    _, findings = check_json(str(path))
    [f] = _only(findings, "NB010")
    assert f["severity"] == "warning"
    assert f["evidence"]["outputs"] == 2
    assert f["evidence"]["cells_with_outputs"] == [2, 4]
    assert f["evidence"]["cells_with_execution_count"] == [1, 2, 4]
    assert "clean" in f["message"] and "2 outputs in 2 cells" in f["message"]


def test_nb010_silent_on_clean_notebook(tmp_path: Path, check_json: CheckJson) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nclean = true\n")
    path = nbf.write(tmp_path / "c.ipynb", nbf.notebook(nbf.code("a = 1"), nbf.md("text")))
    assert check_json(str(path))[1] == []


def test_nb010_counts_alone(tmp_path: Path, check_json: CheckJson) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nclean = true\n")
    path = nbf.write(tmp_path / "c.ipynb", nbf.notebook(nbf.code("a = 1", count=1)))
    [f] = check_json(str(path))[1]
    assert f["code"] == "NB010" and f["evidence"]["outputs"] == 0
    assert "execution counts in 1 cell" in f["message"]


def test_nb011_out_of_order(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "o.ipynb", nbf.notebook(
        nbf.code("a = 1", count=1), nbf.code("b = a", count=5), nbf.code("c = b", count=3),
        nbf.code("d = c", count=6)))
    _, findings = check_json(str(path))
    assert codes(findings) == ["NB011"]  # no NB013 for the gaps: out-of-order explains odd counts
    [f] = findings
    assert f["cell"] == 2
    assert f["evidence"]["breaks"] == [{"cell": 2, "count": 3, "previous_cell": 1, "previous_count": 5}]
    assert "cell 2 (In [3]) was run before cell 1" in f["message"]


def test_nb011_with_late_start(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "o.ipynb", nbf.notebook(
        nbf.code("a = 1", count=7), nbf.code("b = a", count=4), nbf.code("c = b", count=5)))
    _, findings = check_json(str(path))
    assert codes(findings) == ["NB011", "NB013"]
    nb013 = findings[-1] if findings[-1]["code"] == "NB013" else findings[0]
    assert nb013["cell"] == 1 and nb013["evidence"]["first_count"] == 4 and nb013["evidence"]["gaps"] == []


def test_nb011_duplicate_counts(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "d.ipynb", nbf.notebook(nbf.code("a = 1", count=1), nbf.code("b = 2", count=1)))
    assert codes(check_json(str(path))[1]) == ["NB011"]


def test_nb012_skipped_cells(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "s.ipynb", nbf.notebook(
        nbf.code("a = 1", count=1), nbf.code("b = 2"), nbf.code("   \n"), nbf.code("c = 3", count=2),
        nbf.code("trailing = 1")))  # not run after the last executed cell: work in progress, fine
    _, findings = check_json(str(path))
    assert codes(findings) == ["NB012"]
    [f] = findings
    assert f["cell"] == 1 and f["evidence"]["cells"] == [1]
    assert "cell 1 was never run" in f["message"]


def test_nb013_start_and_gaps(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "g.ipynb", nbf.notebook(
        nbf.code("a = 1", count=4), nbf.code("b = 2", count=5), nbf.code("c = 3", count=9)))
    _, findings = check_json(str(path))
    [f] = findings
    assert f["code"] == "NB013" and f["severity"] == "info"
    assert f["evidence"]["first_count"] == 4
    assert f["evidence"]["gaps"] == [{"cell": 2, "from": 5, "to": 9}]
    assert "start at 4" in f["message"] and "jump from 5 to 9" in f["message"]


def test_nb013_gap_only(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "g.ipynb", nbf.notebook(nbf.code("a = 1", count=1), nbf.code("b = 2", count=3)))
    [f] = check_json(str(path))[1]
    assert f["code"] == "NB013" and f["cell"] == 1 and "start" not in f["message"]


def test_select_limits_to_one_code(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "s.ipynb", nbf.notebook(
        nbf.code("a = 1", count=2), nbf.code("b = 2"), nbf.code("c = 3", count=1)))
    assert codes(check_json(str(path))[1]) == ["NB011", "NB012"]
    assert codes(check_json("--select", "NB012", str(path))[1]) == ["NB012"]
    assert codes(check_json("--ignore", "NB01", str(path))[1]) == []


def test_cells_kept_in_two_versions_by_a_merge_do_not_count_as_out_of_order(
        tmp_path: Path, check_json: CheckJson) -> None:
    tags = {"tags": ["nbmedic-conflict"]}
    nb = nbf.notebook(nbf.code("a = 1", count=1), nbf.code("b = 2", count=2, metadata=tags),
                      nbf.code("b = 3", count=2, metadata=tags), nbf.code("c = 4", count=3))
    path = nbf.write(tmp_path / "merged.ipynb", nb)
    assert not {"NB011", "NB012"} & set(codes(check_json(str(path))[1]))
    nb.cells[1].metadata = nb.cells[2].metadata = {}  # ordinary cells with a repeated count: out of order
    nbf.write(path, nb)
    assert "NB011" in codes(check_json(str(path))[1])
