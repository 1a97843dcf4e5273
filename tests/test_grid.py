"""Parameter sweeps: ``nbmedic run --grid FILE`` and the pure grid functions (expansion, output names)."""

from __future__ import annotations

import itertools
import json
import keyword
import os
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbmedic.errors import UsageError
from nbmedic.execute.grid import (
    NAME_LIMIT,
    combinations,
    grid_from_mapping,
    label,
    output_name,
    output_names,
)
from nbmedic.render.paths import display_path
from tests.runhelpers import make_nb, read_out, text_of

Run = Callable[..., tuple[int, str, str]]

# --- the pure functions ----------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n))
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=80))
VALUES = SCALARS | st.lists(st.integers() | st.text(max_size=10), max_size=3) | st.dictionaries(
    st.text(max_size=5), st.integers(), max_size=2)
STEMS = st.text(st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), min_size=1,
                max_size=120).filter(lambda s: len(f"{s}.ipynb".encode()) <= NAME_LIMIT and s not in (".", ".."))
FORBIDDEN = set('/\\<>:"|?*')


def _canon(value: Any) -> str:
    return json.dumps(value, default=repr)


def _grids() -> st.SearchStrategy[dict[str, list[Any]]]:
    values = st.lists(VALUES, min_size=1, max_size=3, unique_by=_canon)
    return st.dictionaries(NAMES, values, min_size=1, max_size=3)


def _assert_safe(name: str) -> None:
    assert name.endswith(".ipynb")
    assert len(name.encode("utf-8")) <= NAME_LIMIT
    assert not FORBIDDEN & set(name)
    for ch in name:
        category = unicodedata.category(ch)
        assert category[0] != "C" and category not in ("Zl", "Zp"), (name, ch)


@settings(max_examples=150, deadline=None)
@given(stem=STEMS, params=st.dictionaries(NAMES, VALUES, min_size=1, max_size=6))
def test_every_output_name_is_one_safe_file_name_this_file_system_accepts(stem: str, params: dict[str, Any]) -> None:
    name = output_name(stem, params)
    _assert_safe(name)
    assert name == output_name(stem, dict(params))  # the same combination, the same name
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, name).write_bytes(b"{}")
        assert os.listdir(folder) == [name]


@settings(max_examples=150, deadline=None)
@given(stem=STEMS, grid=_grids())
def test_the_outputs_of_a_grid_never_collide_even_ignoring_case(stem: str, grid: dict[str, list[Any]]) -> None:
    combos = combinations(grid)
    names = output_names(stem, combos)
    assert len(names) == len(combos)
    folded = {unicodedata.normalize("NFC", n).casefold() for n in names}
    assert len(folded) == len(names)
    for name in names:
        _assert_safe(name)
    assert names == output_names(stem, combos)


@given(grid=_grids())
def test_combinations_are_the_cartesian_product_in_the_files_order(grid: dict[str, list[Any]]) -> None:
    combos = combinations(grid)
    assert len(combos) == len(list(itertools.product(*grid.values())))
    assert [list(c.values()) for c in combos] == [list(v) for v in itertools.product(*grid.values())]
    assert all(list(c) == list(grid) for c in combos)


def test_names_read_as_the_parameters_when_they_are_plain() -> None:
    params = {"alpha": 0.1, "n": 100}
    assert label(params) == "alpha=0.1,n=100"
    assert output_name("report", params) == "report[alpha=0.1,n=100].ipynb"
    assert output_name("r", {"flag": True, "x": None, "s": "a b"}) == "r[flag=True,x=None,s=a b].ipynb"
    assert output_name("r", {"path": "/data/in:1?"}) == "r[path=_data_in_1_].ipynb"
    assert output_name("r", {"xs": [1, 2]}) == "r[xs=(1,2)].ipynb"  # brackets inside stay unambiguous
    assert output_name("r", {"s": "a\x00b\nc\x1b[31m"}) == "r[s=a_b_c_(31m].ipynb"


def test_long_values_are_cut_with_a_hash_and_stay_apart() -> None:
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    name_a, name_b = output_name("r", {"s": a}), output_name("r", {"s": b})
    assert name_a != name_b and len(name_a) < 60 and "~" in name_a
    huge = {f"p{i}": "y" * 39 for i in range(20)}
    name = output_name("s" * 240, huge)
    assert len(name.encode()) <= NAME_LIMIT and name.endswith("].ipynb") and "~" in name


def test_names_that_would_collide_get_the_hash_of_their_combination() -> None:
    combos = combinations({"s": ["a/b", "a:b", "A", "a", "1", 1]})
    names = output_names("r", combos)
    assert len({n.casefold() for n in names}) == 6
    assert names[0].startswith("r[s=a_b~") and names[1].startswith("r[s=a_b~")
    assert names[2].startswith("r[s=A~") and names[3].startswith("r[s=a~")


def test_a_grid_file_is_a_mapping_of_names_to_lists() -> None:
    assert grid_from_mapping({"a": 1, "b": [1, 1.0, "1", True]}, where="g") == {"a": [1], "b": [1, 1.0, "1", True]}
    assert grid_from_mapping({"a": [[1, 2], [3]]}, where="g") == {"a": [[1, 2], [3]]}
    bad: list[tuple[object, str]] = [
        ([1, 2], "not a list"), ("text", "not a str"), (None, "not empty"), ({}, "names no parameters"),
        ({"a": []}, "a has no values"), ({"1a": [1]}, "'1a' is not a valid Python variable name"),
        ({"class": [1]}, "'class' is not a valid"), ({"a-b": [1]}, "'a-b'"), ({"a": [2, 2]}, "lists the value 2 twice"),
    ]
    for raw, words in bad:
        with pytest.raises(UsageError, match=words.replace("(", r"\(")) as err:
            grid_from_mapping(raw, where="--grid g.yaml")
        assert str(err.value).startswith("--grid g.yaml: ") and "\n" not in str(err.value)


# --- nbmedic run --grid ----------------------------------------------------------------------------

def _sweep_nb(tmp_path: Path, name: str = "report.ipynb") -> Path:
    return make_nb(tmp_path, "alpha = 1\nn = 2\nwho = 'nobody'", "print(who, alpha * n)",
                   "assert alpha < 0.3, f'alpha {alpha} is too big'", name=name, tags={0: ["parameters"]})


def _grid(tmp_path: Path, text: str) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_grid_runs_every_combination_of_several_notebooks(run_cli: Run, tmp_path: Path,
                                                           jupyter_home: dict[str, Path]) -> None:
    one = _sweep_nb(tmp_path / "a")
    before = one.read_bytes()
    two = _sweep_nb(tmp_path / "b", "other.ipynb")
    grid = _grid(tmp_path, "alpha: [0.1, 0.5]\n")
    code_, out, err = run_cli("run", str(one), str(two), "--grid", grid, "-p", "who", "sweep", "-j", "2",
                              "--output-dir", str(tmp_path / "out"), "--format", "json")
    assert code_ == 1, err
    doc = json.loads(out)
    outs = {name: tmp_path / "out" / name for name in
            ("report[alpha=0.1].ipynb", "report[alpha=0.5].ipynb", "other[alpha=0.1].ipynb", "other[alpha=0.5].ipynb")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(outs)
    assert [(r["notebook"], r["parameters"], r["status"], r["codes"]) for r in doc["grid"]] == [
        (str(one), {"alpha": 0.1}, "ok", []), (str(one), {"alpha": 0.5}, "failed", ["RN120"]),
        (str(two), {"alpha": 0.1}, "ok", []), (str(two), {"alpha": 0.5}, "failed", ["RN120"])]
    assert [r["output"] for r in doc["grid"]] == [str(outs[n]) for n in (
        "report[alpha=0.1].ipynb", "report[alpha=0.5].ipynb", "other[alpha=0.1].ipynb", "other[alpha=0.5].ipynb")]
    # each combination is its own identity: runs, findings and grid rows agree on it
    assert [r["path"] for r in doc["runs"]] == [r["path"] for r in doc["grid"]] == [r["output"] for r in doc["grid"]]
    assert sorted(f["path"] for f in doc["findings"]) == sorted([str(outs["report[alpha=0.5].ipynb"]),
                                                                 str(outs["other[alpha=0.5].ipynb"])])
    failed = read_out(outs["report[alpha=0.5].ipynb"])
    [finding] = [f for f in doc["findings"] if f["path"] == str(outs["report[alpha=0.5].ipynb"])]
    assert "alpha 0.5 is too big" in finding["message"]
    injected = failed["cells"][1]  # papermill's place: after the cell tagged parameters
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(injected["source"]) == '# Parameters\nwho = "sweep"\nalpha = 0.5\n'
    assert finding["cell"] == 3 and failed["cells"][3]["outputs"][0]["ename"] == "AssertionError"
    assert text_of(read_out(outs["other[alpha=0.1].ipynb"])["cells"][2]) == "sweep 0.2\n"
    assert one.read_bytes() == before  # the input is untouched


def test_the_text_report_ends_with_the_grids_table(run_cli: Run, tmp_path: Path,
                                                  jupyter_home: dict[str, Path]) -> None:
    nb = _sweep_nb(tmp_path)
    code_, out, err = run_cli("run", str(nb), "--grid", _grid(tmp_path, "alpha: [0.1, 0.5]\nn: 3\n"), "-j", "2")
    assert code_ == 1, err
    ok_out, bad_out = tmp_path / "report[alpha=0.1,n=3].ipynb", tmp_path / "report[alpha=0.5,n=3].ipynb"
    assert ok_out.is_file() and bad_out.is_file()
    lines = out.splitlines()
    at = lines.index("grid: 2 runs, 1 ok, 1 not ok")
    assert lines[at + 1].split() == ["notebook", "parameters", "status", "codes"]
    assert lines[at + 2].split() == [display_path(nb), "alpha=0.1,n=3", "ok"]
    assert lines[at + 3].split() == [display_path(nb), "alpha=0.5,n=3", "failed", "RN120"]
    assert any(line.startswith("✗ ") and "report[alpha=0.5,n=3].ipynb" in line for line in lines)
    # the plain progress lines (stderr is not a terminal here), one per combination
    assert [line[:6] for line in err.splitlines()] == ["[1/2] ", "[2/2] "]


@pytest.mark.parametrize(("grid_text", "extra", "words"), [
    ("alpha: []\n", [], "alpha has no values"),
    ("- 1\n- 2\n", [], "must be a YAML mapping"),
    ("1x: [1]\n", [], "'1x' is not a valid Python variable name"),
    ("alpha: [1, 2\n", [], "invalid YAML"),
    ("alpha: [1]\n", ["-p", "alpha", "2"], "alpha also given by -p/-f"),
    ("alpha: [1]\n", ["-o", "x.ipynb"], "-o/--output names one file"),
    ("alpha: [1]\n", ["--in-place"], "--in-place would overwrite"),
    ("", [], "names no parameters"),
])
def test_a_bad_grid_is_one_line_exit_2(run_cli: Run, tmp_path: Path, grid_text: str, extra: list[str],
                                       words: str) -> None:
    nb = _sweep_nb(tmp_path)
    code_, _, err = run_cli("run", str(nb), "--grid", _grid(tmp_path, grid_text), *extra)
    assert code_ == 2, err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report[alpha=1].ipynb").exists()


def test_a_missing_grid_file_and_outputs_that_would_clash(run_cli: Run, tmp_path: Path) -> None:
    nb = _sweep_nb(tmp_path)
    code_, _, err = run_cli("run", str(nb), "--grid", str(tmp_path / "nope.yaml"))
    assert code_ == 2 and "nope.yaml: no such file" in err
    same = _sweep_nb(tmp_path / "elsewhere")
    code_, _, err = run_cli("run", str(nb), str(same), "--grid", _grid(tmp_path, "alpha: 1\n"),
                            "--output-dir", str(tmp_path / "out"))
    assert code_ == 2 and "would both write" in err and len(err.strip().splitlines()) == 1
