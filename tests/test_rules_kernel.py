"""NB030-NB031: kernelspec metadata and installed kernels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.checks import CheckEnv, check_paths
from nbmedic.config import Config
from tests import nbfactory as nbf
from tests.conftest import codes

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]


def add_kernel(root: Path, name: str, argv: list[str], **extra: Any) -> Path:
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    spec = {"argv": argv, "display_name": name.title(), "language": "python", **extra}
    (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


def test_complete_kernelspec_is_silent(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "k.ipynb", nbf.notebook(nbf.code("1")))
    assert check_json(str(path))[1] == []


def test_nb030_missing_kernelspec(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.code("1"), kernel=None)
    nb.metadata["language_info"] = {"name": "python"}
    path = nbf.write(tmp_path / "k.ipynb", nb)
    code, findings = check_json(str(path))
    [f] = findings
    assert code == 0 and f["code"] == "NB030" and f["severity"] == "warning"
    assert f["evidence"] == {"kernelspec": None, "language_info": "python"}
    assert "names no kernel" in f["message"]


@pytest.mark.parametrize(("spec", "missing"), [
    ({"name": "python3"}, ["display_name"]),
    ({"display_name": "Python 3", "language": "python"}, ["name"]),
    ({"name": "", "display_name": "Python 3"}, ["name"]),
])
def test_nb030_incomplete_kernelspec(tmp_path: Path, check_json: CheckJson, spec: dict[str, Any],
                                     missing: list[str]) -> None:
    path = nbf.write_raw(tmp_path / "k.ipynb", {
        "cells": [], "metadata": {"kernelspec": spec}, "nbformat": 4, "nbformat_minor": 5})
    code, findings = check_json(str(path))
    assert codes(findings) == ["NB030"]  # reported once, as a warning, not as an NB003 schema error
    assert code == 0
    assert findings[0]["evidence"]["missing"] == missing


def test_nb030_kernelspec_not_an_object(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write_raw(tmp_path / "k.ipynb", {
        "cells": [], "metadata": {"kernelspec": "python3"}, "nbformat": 4, "nbformat_minor": 5})
    _, findings = check_json(str(path))
    assert "NB030" in codes(findings)


def test_nb031_kernel_not_installed(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.code("import nbmedic_surely_missing_mod"), kernel="conda-env-old-py")
    path = nbf.write(tmp_path / "k.ipynb", nb)
    code, findings = check_json(str(path))
    assert codes(findings) == ["NB031"]  # and no NB041: without the kernel its Python is unknown
    [f] = findings
    assert code == 0 and f["severity"] == "warning"
    assert f["evidence"]["kernel"] == "conda-env-old-py"
    assert "python3" in f["evidence"]["installed"]
    assert "python3" in f["message"] and "conda-env-old-py" in f["fix"]


def test_nb031_custom_kernel_found_case_insensitively(tmp_path: Path, check_json: CheckJson,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    add_kernel(tmp_path / "jp", "myenv", ["/nonexistent/python", "-m", "ipykernel_launcher"])
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    path = nbf.write(tmp_path / "k.ipynb", nbf.notebook(nbf.code("import os"), kernel="MyEnv"))
    assert check_json(str(path))[1] == []


def test_kernelspecs_looked_up_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbmedic.checks import kernel

    calls = []
    original = kernel.read_kernelspecs

    def counting() -> Any:
        calls.append(1)
        return original()

    monkeypatch.setattr(kernel, "read_kernelspecs", counting)
    paths = [nbf.write(tmp_path / f"n{i}.ipynb", nbf.notebook(nbf.code("import os"), kernel=k))
             for i, k in enumerate(["python3", "missing-kernel", "python3"])]
    found = check_paths(paths, Config(), CheckEnv())
    assert [f.code for f in found] == ["NB031"]
    assert len(calls) == 1


def test_nb031_lists_what_jupyter_client_lists(tmp_path: Path, check_json: CheckJson,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel folder whose kernel.json is broken is still "installed" for jupyter_client (it fails to
    start: EN200's business), and the native python3 counts when no folder provides one."""
    from jupyter_client.kernelspec import KernelSpecManager

    add_kernel(tmp_path / "jp", "other", ["/nonexistent/python"])
    (tmp_path / "jp" / "kernels" / "broken").mkdir()
    (tmp_path / "jp" / "kernels" / "broken" / "kernel.json").write_text("{")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    path = nbf.write(tmp_path / "k.ipynb", nbf.notebook(nbf.code("1"), kernel="gone"))
    [f] = check_json(str(path))[1]
    assert f["code"] == "NB031"
    assert f["evidence"]["installed"] == sorted(KernelSpecManager().find_kernel_specs())
    assert {"broken", "other", "python3"} <= set(f["evidence"]["installed"])
