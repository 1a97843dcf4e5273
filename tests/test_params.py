"""Parameters for ``nbmedic run``: papermill's ``-p`` typing, YAML files and the injected cell."""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbmedic.errors import UsageError
from nbmedic.execute.params import (
    inject_parameters,
    load_params_file,
    parse_cli_value,
    python_literal,
    render_parameters,
)
from nbmedic.notebook.io import dumps, load_bytes
from tests import nbfactory as nbf

try:  # the reference implementation; the tests that compare with it are skipped without it
    from papermill.cli import _resolve_type
    from papermill.parameterize import parameterize_notebook
    from papermill.translators import PythonTranslator
except ImportError:  # pragma: no cover
    HAVE_PAPERMILL = False
else:
    HAVE_PAPERMILL = True

needs_papermill = pytest.mark.skipif(not HAVE_PAPERMILL, reason="papermill is not installed")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# --- -p values ----------------------------------------------------------------------------------

CLI_VALUES = ["True", "False", "None", "true", "none", "1", "-3", "+4", " 7 ", "1_000", "007", "1.5", "1e3",
              "-0.0", "nan", "inf", "-Infinity", "1.2.3", "0x10", "", " ", "hello", "a b", "[1, 2]", "{}",
              "１２", "3j", "1_0.5"]


@needs_papermill
@pytest.mark.parametrize("text", CLI_VALUES)
def test_parse_cli_value_matches_papermill(text: str) -> None:
    assert _same(parse_cli_value(text), _resolve_type(text))


@needs_papermill
@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=12), st.from_regex(r"[-+ ]?[0-9_.eE]{1,8}", fullmatch=True)))
def test_parse_cli_value_matches_papermill_generated(text: str) -> None:
    assert _same(parse_cli_value(text), _resolve_type(text))


# --- parameter files ----------------------------------------------------------------------------

def test_load_params_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("alpha: 0.5\nname: run 1\nwhen: 2024-05-01\nitems: [1, two]\nnested: {a: null}\n")
    assert load_params_file(f) == {"alpha": 0.5, "name": "run 1", "when": "2024-05-01", "items": [1, "two"],
                                   "nested": {"a": None}}


def test_load_params_file_json_and_empty(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"n": 3, "flag": true}')
    assert load_params_file(tmp_path / "p.json") == {"n": 3, "flag": True}
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    assert load_params_file(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    ("a: [1, 2\n", "invalid YAML at line 2"),
    ("- 1\n- 2\n", "not a list"),
    ("just text\n", "not a string"),
    ("1: one\n", "parameter names must be strings"),
    ("!!python/object:os.system x\n", "invalid YAML"),
])
def test_load_params_file_errors(tmp_path: Path, content: str | None, expected: str) -> None:
    f = tmp_path / "p.yaml"
    if content is not None:
        f.write_text(content)
    with pytest.raises(UsageError, match=expected) as info:
        load_params_file(f)
    assert "\n" not in str(info.value)
    assert str(f) in str(info.value)


def test_load_params_file_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a folder"):
        load_params_file(tmp_path)


# --- rendering ----------------------------------------------------------------------------------

VALUES: list[Any] = [
    None, True, False, 0, -12, 10**30, 1.5, -0.0, 1e-05, 1e300, float("nan"), float("inf"), float("-inf"),
    "", "plain", 'say "hi"', "it's", "back\\slash", "tab\tnew\nline\r", "ünïcödé €", "emoji 🎉", "\x00\x7f",
    [], [1, "a", None, [2.5, {"k": False}]], {}, {"a": 1, "b": [1, 2], "c": {"d": "e\"f"}}, {1: "int key"},
    (1, 2), {"tuple": (3,)},
]


@needs_papermill
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_python_literal_matches_papermill(value: Any) -> None:
    assert python_literal(value) == PythonTranslator.translate(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


@needs_papermill
@settings(max_examples=200, deadline=None)
@given(json_values)
def test_python_literal_matches_papermill_and_round_trips(value: Any) -> None:
    text = python_literal(value)
    assert text == PythonTranslator.translate(value)
    back = eval(text)
    if not _has_nan(value):
        assert back == value


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


def test_render_parameters() -> None:
    assert render_parameters({"a": 1, "name": "x"}) == '# Parameters\na = 1\nname = "x"\n'
    assert render_parameters({}) == "# Parameters\n"


@pytest.mark.parametrize("name", ["my-var", "1st", "", "class", "a b"])
def test_invalid_parameter_names(name: str) -> None:
    with pytest.raises(UsageError, match="not a valid Python variable name"):
        render_parameters({name: 1})


# --- injection: byte-identical with papermill ----------------------------------------------------

def _parameterized_nb(minor: int = 5) -> Any:
    nb = nbf.notebook(
        nbf.md("# Title"),
        nbf.code("import os"),
        nbf.code("alpha = 0.1\nname = 'x'", metadata={"tags": ["parameters"]}),
        nbf.code("print(alpha, name)"),
    )
    if minor < 5:
        nb.nbformat_minor = minor
        for cell in nb.cells:
            del cell["id"]
    return nb


PARAM_SETS: list[dict[str, Any]] = [
    {"alpha": 0.5},
    {"alpha": 1, "name": "run \"one\"\n", "flag": True, "nothing": None},
    {"items": [1, 2.5, "three", [None]], "config": {"depth": 3, "names": ["a", "b"], "inner": {"x": -1}}},
    {"big": 10**40, "small": 1e-300, "nan": float("nan"), "inf": float("-inf"), "text": "ünïcödé\\"},
    {},
]


def _for_papermill(nb: Any) -> Any:
    """A copy as papermill's own loader prepares it: ``metadata.papermill``, ``metadata.tags`` on every cell."""
    nb = copy.deepcopy(nb)
    nb.metadata.setdefault("papermill", {})
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    return nb


def _tags(cells: Any) -> list[Any]:
    return [c["metadata"].get("tags") or [] for c in cells]


def _source(cell: Any) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else str(src)


@needs_papermill
@pytest.mark.parametrize("params", PARAM_SETS)
@pytest.mark.parametrize("tagged", [True, False])
def test_injected_cell_is_papermills(params: dict[str, Any], tagged: bool,
                                     caplog: pytest.LogCaptureFixture) -> None:
    nb = _parameterized_nb()
    if not tagged:
        nb.cells[2].metadata = {}
    caplog.set_level(logging.ERROR, logger="papermill")
    theirs = parameterize_notebook(_for_papermill(nb), params)
    ours = inject_parameters(nb, params)
    assert [_source(c) for c in ours["cells"]] == [_source(c) for c in theirs.cells]
    assert _tags(ours["cells"]) == _tags(theirs.cells)
    index = 3 if tagged else 0
    assert ours["cells"][index]["metadata"]["tags"] == ["injected-parameters"]
    assert _source(ours["cells"][index]).encode() == theirs.cells[index].source.encode()


@needs_papermill
def test_rerun_replaces_injected_cell_like_papermill(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="papermill")
    nb = _parameterized_nb()
    first = inject_parameters(nb, {"alpha": 1})
    second = inject_parameters(first, {"alpha": 2, "name": "b"})
    theirs = parameterize_notebook(parameterize_notebook(_for_papermill(nb), {"alpha": 1}),
                                   {"alpha": 2, "name": "b"})
    assert [_source(c) for c in second["cells"]] == [_source(c) for c in theirs.cells]
    assert len(second["cells"]) == 5
    assert second["cells"][3]["id"] == first["cells"][3]["id"]  # a re-run keeps the cell's id
    assert _source(second["cells"][3]) == '# Parameters\nalpha = 2\nname = "b"\n'


def test_existing_injected_cell_wins_over_parameters_cell() -> None:
    nb = _parameterized_nb()
    nb.cells.insert(0, nbf.code("alpha = 9", metadata={"tags": ["injected-parameters"]}))
    out = inject_parameters(nb, {"alpha": 3})
    assert len(out["cells"]) == len(nb.cells)
    assert _source(out["cells"][0]) == "# Parameters\nalpha = 3\n"
    assert out["cells"][0]["id"] == nb.cells[0]["id"]


def test_first_parameters_cell_is_used() -> None:
    nb = _parameterized_nb()
    nb.cells.append(nbf.code("beta = 2", metadata={"tags": ["other", "parameters"]}))
    out = inject_parameters(nb, {"beta": 3})
    tags = [c["metadata"].get("tags") for c in out["cells"]]
    assert tags == [None, None, ["parameters"], ["injected-parameters"], None, ["other", "parameters"]]


def test_input_untouched_and_output_valid() -> None:
    nb = _parameterized_nb()
    before = copy.deepcopy(nb)
    out = inject_parameters(nb, {"alpha": 2})
    assert nb == before
    assert out is not nb and len(out["cells"]) == len(nb.cells) + 1
    nbformat.validate(nbformat.from_dict(out))
    new = out["cells"][3]
    assert isinstance(new["id"], str) and len(new["id"]) == 8
    assert new["id"] not in {c["id"] for c in nb.cells}
    assert new["execution_count"] is None and new["outputs"] == []
    # the canonical writer takes it and a re-read gives the same notebook
    assert load_bytes(dumps(out).encode()) == load_bytes(dumps(load_bytes(dumps(out).encode())).encode())


def test_no_id_before_nbformat_4_5() -> None:
    nb = _parameterized_nb(minor=4)
    out = inject_parameters(nb, {"alpha": 2})
    assert "id" not in out["cells"][3]
    nbformat.validate(nbformat.from_dict(out))


def test_plain_dict_notebook_from_file(tmp_path: Path) -> None:
    path = nbf.write(tmp_path / "n.ipynb", _parameterized_nb())
    nb = load_bytes(path.read_bytes())
    out = inject_parameters(nb, {"alpha": 7})
    assert out["cells"][3]["source"] == ["# Parameters\n", "alpha = 7\n"]
    assert out["cells"][:3] == nb["cells"][:3]


def test_empty_notebook_gets_cell_at_top() -> None:
    out = inject_parameters({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, {"a": 1})
    assert [_source(c) for c in out["cells"]] == ["# Parameters\na = 1\n"]


@pytest.mark.parametrize("language", ["R", "julia", "scala", "bash"])
def test_non_python_kernels_refused(language: str) -> None:
    with pytest.raises(UsageError, match="only Python kernels take parameters"):
        inject_parameters(_parameterized_nb(), {"a": 1}, language=language)


def test_python_language_case_insensitive() -> None:
    assert len(inject_parameters(_parameterized_nb(), {"a": 1}, language="Python")["cells"]) == 5
