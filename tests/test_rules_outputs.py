"""NB050 (widgets without saved state) and NB051 (saved error outputs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import nbfactory as nbf
from tests.conftest import codes

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]
VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def _widget(model_id: str) -> Any:
    return nbf.display({VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0},
                        "text/plain": "IntSlider(value=0)"})


def _state(*ids: str) -> dict[str, Any]:
    return {STATE: {"state": {i: {"model_name": "IntSliderModel", "state": {}} for i in ids},
                    "version_major": 2, "version_minor": 0}}


def test_nb050_no_saved_state(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "w.ipynb", nbf.notebook(
        nbf.code("import ipywidgets", count=1), nbf.code("slider", count=2, outputs=[_widget("abc")])))
    _, findings = check_json("--select", "NB05", str(path))
    [f] = findings
    assert f["code"] == "NB050" and f["severity"] == "warning" and f["cell"] == 1
    assert f["evidence"] == {"cells": [1], "model_ids": ["abc"], "widgets": 1, "saved_state": False}
    assert "cell 1" in f["message"] and "plain text" in f["message"]


def test_nb050_partial_state(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.code("a", count=1, outputs=[_widget("m1")]),
                      nbf.code("b", count=2, outputs=[_widget("m2"), _widget("m3")]),
                      widgets=_state("m1", "m3"))
    path = nbf.write(tmp_path / "w.ipynb", nb)
    [f] = check_json("--select", "NB05", str(path))[1]
    assert f["evidence"]["model_ids"] == ["m2"] and f["evidence"]["saved_state"] is True


def test_nb050_saved_state_is_fine(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.code("a", count=1, outputs=[_widget("m1")]), widgets=_state("m1"))
    path = nbf.write(tmp_path / "w.ipynb", nb)
    assert check_json(str(path))[1] == []


def test_nb050_ignores_other_outputs(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "w.ipynb", nbf.notebook(
        nbf.code("print('widget-view+json')", count=1, outputs=[nbf.stream("widget-view+json\n")])))
    assert check_json(str(path))[1] == []


def test_nb051_error_outputs(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "e.ipynb", nbf.notebook(
        nbf.code("df['price']", count=1, outputs=[nbf.error("KeyError", "'price'")]),
        nbf.code("ok", count=2, outputs=[nbf.stream("fine\n")]),
        nbf.code("1/0", count=3, outputs=[nbf.stream("before\n"),
                                          nbf.error("ZeroDivisionError", "\x1b[31mdivision by zero\x1b[0m")]),
    ))
    code, findings = check_json(str(path))
    [f] = findings
    assert code == 0 and f["code"] == "NB051" and f["severity"] == "info" and f["cell"] == 0
    assert f["evidence"]["errors"] == [
        {"cell": 0, "ename": "KeyError", "evalue": "'price'"},
        {"cell": 2, "ename": "ZeroDivisionError", "evalue": "division by zero"}]
    assert "KeyError: 'price'" in f["message"] and "1 more cell" in f["message"]


def test_nb051_expected_errors_and_clean_notebooks(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "e.ipynb", nbf.notebook(
        nbf.code("raise ValueError('demo')", count=1, outputs=[nbf.error()],
                 metadata={"tags": ["raises-exception"]}),
        nbf.code("print('error')", count=2, outputs=[nbf.stream('"error"\n')])))
    assert codes(check_json(str(path))[1]) == []
