"""Interpreter probes EN210–EN212 against real interpreters: fake tools on PATH, a real user site."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbmedic.envs.interpreters import (
    InterpreterFacts,
    interpreter_facts,
    path_tool_findings,
    rewrite_finding,
    tool_interpreter,
    user_site_findings,
)
from nbmedic.kernelspecs import is_rewritten_python

PY = sys.executable


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real venvs without pip: ``bare`` (isolated) and ``system`` (sees the user site)."""
    root = tmp_path_factory.mktemp("venvs")
    bare, system = root / "bare", root / "system"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(bare)], check=True, capture_output=True)
    subprocess.run([PY, "-m", "venv", "--without-pip", "--system-site-packages", str(system)],
                   check=True, capture_output=True)
    return {"bare": bare, "system": system}


def _script(folder: Path, name: str, shebang: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{shebang}\nimport sys\nsys.exit(0)\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_pip_of_another_interpreter_first_on_path(tmp_path: Path, venvs: dict[str, Path]) -> None:
    other = venvs["bare"] / "bin" / "python"
    pip = _script(tmp_path / "bin", "pip", str(other))
    found = path_tool_findings("k", sys.prefix, kernel_python=PY, path=str(tmp_path / "bin"), where="/spec")
    assert [f.code for f in found] == ["EN210"]
    assert found[0].severity == "warning"
    assert found[0].path == "/spec"
    tools = found[0].evidence["tools"]
    assert set(tools) == {"pip"}
    assert tools["pip"]["path"] == str(pip)
    assert os.path.realpath(tools["pip"]["prefix"]) == os.path.realpath(venvs["bare"])
    assert "%pip" in found[0].message


def test_env_shebang_is_resolved_on_the_same_path(tmp_path: Path, venvs: dict[str, Path]) -> None:
    bin_ = tmp_path / "bin"
    _script(bin_, "jupyter", "/usr/bin/env python3")
    (bin_ / "python3").symlink_to(venvs["bare"] / "bin" / "python")
    assert tool_interpreter(str(bin_ / "jupyter"), path=str(bin_)) == str(bin_ / "python3")
    found = path_tool_findings("k", sys.prefix, kernel_python=PY, path=str(bin_), tools=("jupyter",))
    assert [f.code for f in found] == ["EN210"]
    assert found[0].severity == "info"  # only jupyter differs: !pip still lands in the kernel


def test_tools_of_the_kernel_interpreter_are_fine(tmp_path: Path) -> None:
    _script(tmp_path / "bin", "pip", PY)
    _script(tmp_path / "bin", "jupyter", PY)
    assert path_tool_findings("k", sys.prefix, kernel_python=PY, path=str(tmp_path / "bin")) == []
    # nothing on PATH: nothing to say
    assert path_tool_findings("k", sys.prefix, kernel_python=PY, path=str(tmp_path / "empty")) == []


def test_facts_of_a_venv_without_ipykernel(venvs: dict[str, Path]) -> None:
    facts = interpreter_facts(str(venvs["bare"] / "bin" / "python"))
    assert isinstance(facts, InterpreterFacts)
    assert facts.ipykernel is False
    assert os.path.realpath(facts.prefix) == os.path.realpath(venvs["bare"])
    assert facts.version == "{}.{}.{}".format(*sys.version_info[:3])
    mine = interpreter_facts(PY)
    assert isinstance(mine, InterpreterFacts) and mine.ipykernel is True
    assert isinstance(interpreter_facts("/nonexistent/python"), str)


def _dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")


def test_user_site_shadows_the_environment(tmp_path: Path, venvs: dict[str, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONNOUSERSITE", raising=False)
    python = str(venvs["system"] / "bin" / "python")
    env = {**os.environ, "PYTHONUSERBASE": str(tmp_path / "userbase")}
    first = interpreter_facts(python, env=env)
    assert isinstance(first, InterpreterFacts) and first.enable_user_site and first.user_site
    user_site = Path(first.user_site)
    venv_site = Path(next(p for p in first.site_packages if p.startswith(str(venvs["system"]))))
    _dist(user_site, "nbmedic_shadow_probe", "2.0")
    _dist(venv_site, "nbmedic_shadow_probe", "1.0")
    _dist(user_site, "nbmedic_only_user", "1.0")
    try:
        facts = interpreter_facts(python, env=env)
        assert isinstance(facts, InterpreterFacts)
        found = user_site_findings("k", facts, where="/spec")
    finally:
        for site in (venv_site,):
            import shutil

            shutil.rmtree(site / "nbmedic_shadow_probe-1.0.dist-info", ignore_errors=True)
    assert [f.code for f in found] == ["EN211"]
    assert found[0].evidence["shadowed"] == {"nbmedic-shadow-probe": {"user_site": "2.0", "environment": "1.0"}}
    # an isolated venv ignores the user site
    bare = interpreter_facts(str(venvs["bare"] / "bin" / "python"), env=env)
    assert isinstance(bare, InterpreterFacts) and user_site_findings("k", bare) == []


def test_python_argv_is_rewritten_to_the_server_interpreter() -> None:
    assert is_rewritten_python("python") and is_rewritten_python(f"python{sys.version_info[0]}")
    assert is_rewritten_python("python{}.{}".format(*sys.version_info[:2]))
    assert not is_rewritten_python("/usr/bin/python3") and not is_rewritten_python("python2.7")
    found = rewrite_finding("k", ["python", "-m", "ipykernel_launcher"], path="/spec")
    assert found is not None and found.code == "EN212" and found.severity == "info"
    assert found.evidence["server_python"] == PY
    assert rewrite_finding("k", [PY, "-m", "ipykernel_launcher"]) is None


def test_kernels_command_reports_path_pip(tmp_path: Path, venvs: dict[str, Path],
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from nbmedic.cli import main

    folder = tmp_path / "jpath" / "kernels" / "k"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({"argv": [PY, "-m", "ipykernel_launcher", "-f",
                                                             "{connection_file}"],
                                                    "display_name": "K", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jpath"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jdata"))
    _script(tmp_path / "bin", "pip", str(venvs["bare"] / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["kernels", "--no-launch", "--format", "json", "k"]) == 0
    doc = json.loads(capsys.readouterr().out)
    en210 = [f for f in doc["findings"] if f["code"] == "EN210"]
    assert len(en210) == 1 and set(en210[0]["evidence"]["tools"]) == {"pip"}
