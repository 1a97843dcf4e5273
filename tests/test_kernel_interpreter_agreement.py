"""NB041 (``check``) and EN200/EN201 (``kernels``) name the same Python for every kernelspec.

Each kernelspec here is one where they used to disagree: NB041 accepted only absolute ``python*`` paths
while EN201 expanded ``~`` and looked bare names up on PATH, and neither substituted ``{prefix}`` as
jupyter_client does.  Now both read ``Kernelspec.interpreter``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.cli import main
from tests import nbfactory as nbf
from tests.specs import LAUNCHER, make_bare_venv, write_spec

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]
MISSING = "nbmedic_surely_missing_mod"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home folder holding a real venv without pip (no ipykernel, no nbformat): ~/venv."""
    folder = tmp_path_factory.mktemp("home")
    python = make_bare_venv(folder / "venv")
    (python.parent / "python3.99").symlink_to("python")  # a Python found on PATH by a versioned name
    return folder


@pytest.fixture
def specs(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "jp"
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NBMEDIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{home / 'venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    write_spec(root, "tilde", ["~/venv/bin/python", *LAUNCHER])
    write_spec(root, "onpath", ["python3.99", *LAUNCHER])
    write_spec(root, "prefixed", ["{prefix}/bin/python", *LAUNCHER])
    write_spec(root, "wrapped", ["env", "python", *LAUNCHER])
    return root


def _kernels_report(capsys: pytest.CaptureFixture[str], *names: str) -> dict[str, Any]:
    main(["kernels", "--no-launch", "--format", "json", *names])
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def _nb041(check_json: CheckJson, folder: Path, kernel: str, source: str) -> dict[str, Any] | None:
    path = nbf.write(folder / f"{kernel}.ipynb", nbf.notebook(nbf.code(source), kernel=kernel))
    found = [f for f in check_json("--select", "NB041", str(path))[1]]
    return found[0] if found else None


def test_nb041_and_en201_name_the_same_python(specs: Path, home: Path, tmp_path: Path, check_json: CheckJson,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    venv = home / "venv" / "bin"
    doc = _kernels_report(capsys, "tilde", "onpath", "prefixed", "wrapped")
    en201 = {f["evidence"]["kernel"]: f["evidence"]["interpreter"] for f in doc["findings"] if f["code"] == "EN201"}
    # the venv has no ipykernel: EN201 names its Python; NB041 finds nbformat missing in that same Python
    assert en201 == {"tilde": str(venv / "python"), "onpath": str(venv / "python3.99")}
    for kernel, python in en201.items():
        finding = _nb041(check_json, tmp_path / "nbs", kernel, "import nbformat")
        assert finding is not None, kernel
        assert finding["evidence"]["interpreter"] == python
        assert finding["evidence"]["modules"] == ["nbformat"]
    # {prefix} is nbmedic's own environment: ipykernel is there (no EN201), the missing module is not
    assert not [f for f in doc["findings"] if f["code"] == "EN200"]  # every program exists
    status = {k["name"]: k for k in doc["kernels"]}
    assert status["prefixed"]["interpreter"] == f"{sys.prefix}/bin/python"
    prefixed = _nb041(check_json, tmp_path / "nbs", "prefixed", f"import {MISSING}")
    assert prefixed is not None and prefixed["evidence"]["interpreter"] == f"{sys.prefix}/bin/python"
    # a wrapper runs a Python nobody can name from outside: neither says which, neither guesses
    assert "wrapped" not in en201
    assert _nb041(check_json, tmp_path / "nbs", "wrapped", f"import {MISSING}") is None
