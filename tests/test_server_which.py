"""`nbmedic server`'s "which jupyter" (EN261, EN262): real virtual environments, real scripts on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.envs.server import ServerContext, find_setup, which
from nbmedic.envs.server.which import environment_of, interpreter_of, jupyter_scripts

Cli = Callable[..., tuple[int, str, str]]
MINE = "EN261,EN262"
SYSTEM_BIN = [p for p in ("/usr/bin", "/bin") if os.path.isdir(p)]


def _venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    return where


def _script(folder: Path, name: str, interpreter: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{interpreter}\nimport sys\nfrom jupyter_core.command import main\nsys.exit(main())\n",
                    encoding="utf-8")
    path.chmod(0o755)
    return path


def _path(monkeypatch: pytest.MonkeyPatch, *folders: Path | str) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([*map(str, folders), *SYSTEM_BIN]))


def _server(run_cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli("server", "--format", "json", "--select", MINE, *args)
    assert code in (0, 1), err
    return code, json.loads(out)


def _probe() -> list[dict[str, Any]]:
    """The which probe alone (the command runs every probe: the other ones take seconds)."""
    return [f.to_dict() for f in which.findings(ServerContext(find_setup()))]


def test_jupyter_from_one_environment_and_python_from_another(
        tmp_path: Path, jupyter_home: dict[str, Path], monkeypatch: pytest.MonkeyPatch, run_cli: Cli) -> None:
    venv = _venv(tmp_path / "project-venv")  # activated, without Jupyter: `jupyter` falls through PATH
    elsewhere = _script(tmp_path / "local-bin", "jupyter", sys.executable)
    _path(monkeypatch, venv / "bin", elsewhere.parent)
    code, doc = _server(run_cli)
    assert code == 0  # a warning
    [found] = doc["findings"]
    assert found["code"] == "EN261" and found["path"] == str(elsewhere)
    assert found["evidence"]["commands"] == {"jupyter": str(elsewhere), "python": str(venv / "bin" / "python"),
                                             "python3": str(venv / "bin" / "python3")}
    assert found["evidence"]["interpreters"] == {"jupyter": sys.executable, "python": str(venv / "bin" / "python"),
                                                 "python3": str(venv / "bin" / "python3")}
    assert f"jupyter from {os.path.realpath(sys.prefix)}" in found["message"]
    assert f"python, python3 from {os.path.realpath(venv)}" in found["message"]
    assert doc["server"]["setup"]["jupyter"] == str(elsewhere)


def test_a_venv_whose_python_links_to_the_base_interpreter_is_one_environment(
        tmp_path: Path, jupyter_home: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    venv = _venv(tmp_path / "venv")
    python = venv / "bin" / "python"
    assert python.is_symlink() or os.path.samefile(os.path.dirname(os.path.realpath(python)), python.parent)
    for name in ("jupyter", "jupyter-lab", "jupyter-notebook"):
        _script(venv / "bin", name, str(python))
    _path(monkeypatch, venv / "bin")
    assert _probe() == []
    # the same interpreter, asked: its sys.prefix is the folder environment_of names
    asked = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                           check=True, timeout=60).stdout.strip()
    assert environment_of(str(python)) == os.path.realpath(asked) == os.path.realpath(venv)
    base = os.path.realpath(python)
    base_prefix = subprocess.run([base, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                                 check=True, timeout=60).stdout.strip()
    assert environment_of(base) == os.path.realpath(base_prefix) != os.path.realpath(venv)


def test_a_jupyter_whose_interpreter_was_deleted(
        tmp_path: Path, jupyter_home: dict[str, Path], monkeypatch: pytest.MonkeyPatch, run_cli: Cli) -> None:
    gone = _venv(tmp_path / "old-env")
    dead = _script(tmp_path / "bin", "jupyter", str(gone / "bin" / "python"))
    alive = _script(tmp_path / "bin", "jupyter-lab", sys.executable)
    shutil.rmtree(gone)
    _path(monkeypatch, dead.parent, os.path.dirname(sys.executable))  # the rest from this environment
    with pytest.raises(FileNotFoundError):  # the system cannot run it either ("bad interpreter")
        subprocess.run([str(dead), "--version"], capture_output=True, check=False)
    code, doc = _server(run_cli)
    assert code == 1
    [found] = doc["findings"]
    assert found["code"] == "EN262" and found["severity"] == "error" and found["path"] == str(dead)
    assert found["evidence"] == {"script": str(dead), "interpreter": str(gone / "bin" / "python")}
    assert found["message"].endswith("no longer exists")

    code, out, err = run_cli("server", "--fix", "--select", MINE)  # not a terminal: nothing removed
    assert dead.exists() and "skipped (not a terminal; --yes to allow)" in err
    code, out, err = run_cli("server", "--fix", "--yes", "--select", MINE)
    assert code == 1 and "EN262" in out, "reported, then removed"
    assert not dead.exists() and alive.exists()
    assert f"fixed: removed {dead} (its interpreter {gone / 'bin' / 'python'} is gone)" in err
    assert _probe() == []


def test_only_the_first_command_of_each_name_counts(tmp_path: Path) -> None:
    first = _script(tmp_path / "a", "jupyter", sys.executable)
    _script(tmp_path / "b", "jupyter", "/nonexistent/python")  # shadowed: never run
    lab = _script(tmp_path / "b", "jupyter-lab", sys.executable)
    (tmp_path / "b" / "jupyter-notes.txt").write_text("not executable", encoding="utf-8")
    assert jupyter_scripts((str(tmp_path / "a"), str(tmp_path / "missing"), str(tmp_path / "b"))) == {
        "jupyter": str(first), "jupyter-lab": str(lab)}


def test_interpreters_named_by_env_and_by_pips_shell_trampoline(tmp_path: Path) -> None:
    env_form = tmp_path / "env-form"
    env_form.write_text("#!/usr/bin/env python3\n", encoding="utf-8")
    assert interpreter_of(str(env_form)) == shutil.which("python3")
    missing = tmp_path / "env-missing"
    missing.write_text("#!/usr/bin/env python-that-is-nowhere\n", encoding="utf-8")
    assert interpreter_of(str(missing)) == "python-that-is-nowhere"
    trampoline = tmp_path / "trampoline"
    trampoline.write_text("#!/bin/sh\n'''exec' \"/opt/my envs/x/bin/python\" \"$0\" \"$@\"\n' '''\nimport sys\n",
                          encoding="utf-8")
    assert interpreter_of(str(trampoline)) == "/opt/my envs/x/bin/python"
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x7fELF\x02\x01")
    assert interpreter_of(str(binary)) is None


def test_a_healthy_environment_gives_nothing(jupyter_home: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                              run_cli: Cli) -> None:
    jupyter_home["runtime"].chmod(0o700)
    _path(monkeypatch, os.path.dirname(sys.executable))
    code, doc = run_cli("server", "--format", "json", "--select", "EN258,EN259,EN260,EN261,EN262")[:2]
    assert code == 0 and json.loads(doc)["findings"] == []


def test_the_installation_s_python_is_read_through_pip_s_trampoline(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A `jupyter` pip installed under a long path starts with `#!/bin/sh` and execs its Python on line 2:
    find_setup examines that Python, not this interpreter."""
    bin_dir = tmp_path / "long path" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    script = bin_dir / "jupyter"
    script.write_text(f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\nimport sys\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    setup = find_setup()
    assert setup.jupyter == str(script) and setup.python == str(python) and setup.python_exists
