"""NB060: cells a merge left unresolved (tagged ``nbmedic-conflict`` or holding conflict markers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbmedic.notebook.cells import CONFLICT_TAG
from tests import nbfactory as nbf

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]


def test_nb060_tagged_and_marked_cells(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(
        nbf.code("a = 1"),
        nbf.code("<<<<<<< local\nb = 1\n=======\nb = 2\n>>>>>>> remote", metadata={"tags": [CONFLICT_TAG]}),
        nbf.md("fine"),
        nbf.md("kept after a delete", metadata={"tags": [CONFLICT_TAG, "nbmedic-local"]}),
        nbf.code("x = 1\n<<<<<<< local\nc = 1\n=======\nc = 2\n>>>>>>> remote\n"),
    )
    code, findings = check_json("--select", "NB060", str(nbf.write(tmp_path / "c.ipynb", nb)))
    [f] = findings
    assert code == 0  # a warning
    assert f["code"] == "NB060" and f["severity"] == "warning" and f["cell"] == 1
    assert f["evidence"] == {"cells": [1, 3, 4], "tagged": [1, 3], "markers": [1, 4], "count": 3}
    assert "cells 1, 3, 4" in f["message"] and "nbmedic-conflict" in f["fix"]
    assert check_json("--select", "NB060", "--strict", str(tmp_path / "c.ipynb"))[0] == 1


def test_nb060_one_cell(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.md("x", metadata={"tags": [CONFLICT_TAG]}))
    _, findings = check_json("--select", "NB060", str(nbf.write(tmp_path / "c.ipynb", nb)))
    [f] = findings
    assert f["message"].startswith("the cell is still tagged")


def test_nb060_quiet_on_clean_notebooks(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.code("s = '<<<<<<< local is only text here'"), nbf.md("see nbmedic-conflict docs"))
    _, findings = check_json("--select", "NB060", str(nbf.write(tmp_path / "c.ipynb", nb)))
    assert findings == []
