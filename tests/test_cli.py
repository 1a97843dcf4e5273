"""The CLI's contract: exit codes, one-line errors (never a traceback), config, selection, untouched files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.checks import engine
from nbmedic.notebook import record
from tests import nbfactory as f
from tests.conftest import codes

Run = Callable[..., tuple[int, str, str]]


def _digest(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("usage:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("nbmedic: ")


def test_no_arguments_is_a_usage_error(run_cli: Run) -> None:
    code, _, err = run_cli()
    assert code == 2
    assert "doctor" in err


@pytest.mark.parametrize("args", [["frobnicate"], ["check"], ["check", "--format", "xml", "x.ipynb"],
                                  ["repair", "a.ipynb", "-o", "x", "--in-place"]])
def test_bad_usage_exits_2(run_cli: Run, args: list[str]) -> None:
    code, _, err = run_cli(*args)
    assert code == 2
    _one_line_error(err)


def test_missing_path(run_cli: Run) -> None:
    code, out, err = run_cli("check", "no/such/notebook.ipynb")
    assert code == 2
    assert out == ""
    _one_line_error(err)
    assert "no/such/notebook.ipynb" in err


def test_folder_without_notebooks(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("hello")
    code, _, err = run_cli("doctor", str(tmp_path / "data"))
    assert code == 2
    _one_line_error(err)
    assert "no notebooks" in err


def test_discovery_skips_checkpoints_git_and_virtualenvs(check_json: Any, tmp_path: Path) -> None:
    good = f.notebook(f.code("x = 1", count=1))
    f.write(tmp_path / "proj" / "a.ipynb", good)
    for hidden in (".ipynb_checkpoints/a-checkpoint.ipynb", ".git/b.ipynb", "node_modules/c.ipynb",
                   "env/lib/d.ipynb"):
        (tmp_path / "proj" / hidden).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "proj" / hidden).write_text("not json")
    (tmp_path / "proj" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    code, found = check_json(str(tmp_path / "proj"))
    assert code == 0
    assert found == []


def test_binary_non_utf8_and_broken_link_are_findings_not_crashes(check_json: Any, tmp_path: Path) -> None:
    (tmp_path / "image.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (tmp_path / "latin1.ipynb").write_bytes('{"cells": [], "metadata": {"a": "café"}}'.encode("latin-1"))
    (tmp_path / "dangling.ipynb").symlink_to(tmp_path / "gone.ipynb")
    before = _digest(tmp_path)
    code, found = check_json(str(tmp_path))
    assert code == 1
    by_file = {Path(x["path"]).name: x for x in found}
    assert by_file["image.ipynb"]["code"] == "NB001"
    assert by_file["image.ipynb"]["evidence"]["problem"] == "binary"
    assert by_file["latin1.ipynb"]["evidence"]["problem"] == "encoding"
    assert by_file["latin1.ipynb"]["evidence"]["line"] == 1
    assert by_file["dangling.ipynb"]["code"] == "NB000"
    assert _digest(tmp_path) == before


def test_huge_file_is_reported_without_reading_it(check_json: Any, tmp_path: Path) -> None:
    huge = tmp_path / "huge.ipynb"
    with huge.open("wb") as fh:  # sparse: costs no disk
        fh.truncate(record.HARD_SIZE_LIMIT + 1)
    code, found = check_json(str(huge))
    assert [x["code"] for x in found] == ["NB020"]
    assert found[0]["evidence"]["size"] == record.HARD_SIZE_LIMIT + 1
    assert code == 0  # a warning


def _sick_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "nbs"
    f.write(folder / "errors.ipynb", f.notebook(f.code("1/0", count=1, outputs=[f.error("ZeroDivisionError")])))
    (folder / "broken.ipynb").write_text("{")
    return folder


def test_select_and_ignore(check_json: Any, tmp_path: Path) -> None:
    folder = _sick_folder(tmp_path)
    _, everything = check_json(str(folder))
    assert {"NB001", "NB051"} <= set(codes(everything))
    _, only = check_json("--select", "NB05", str(folder))
    assert set(codes(only)) == {"NB051"}
    code, rest = check_json("--ignore", "nb001,NB051", str(folder))
    assert not {"NB001", "NB051"} & set(codes(rest))
    assert code == 0


def test_strict_makes_warnings_fail(run_cli: Run, tmp_path: Path) -> None:
    nb = f.notebook(f.code("a = 1", count=2), f.code("b = 2", count=1))  # out of order: a warning
    path = f.write(tmp_path / "order.ipynb", nb)
    code, out, _ = run_cli("check", "--format", "json", str(path))
    severities = {x["severity"] for x in json.loads(out)["findings"]}
    assert "error" not in severities and "warning" in severities
    assert code == 0
    assert run_cli("check", "--strict", str(path))[0] == 1


def test_config_from_nearest_pyproject(check_json: Any, tmp_path: Path) -> None:
    project = tmp_path / "project"
    f.write(project / "sub" / "nb.ipynb", f.notebook(f.code("1/0", count=1, outputs=[f.error()])))
    (project / "pyproject.toml").write_text('[tool.nbmedic]\nignore = ["NB051"]\nclean = true\n')
    _, found = check_json(str(project / "sub" / "nb.ipynb"))
    assert "NB051" not in codes(found)
    assert "NB010" in codes(found)  # clean = true: committed outputs are reported


def test_each_notebook_gets_its_own_config(check_json: Any, tmp_path: Path) -> None:
    nb = f.notebook(f.code("print(1)", count=1, outputs=[f.stream("1\n")]))
    f.write(tmp_path / "strict" / "a.ipynb", nb)
    f.write(tmp_path / "relaxed" / "b.ipynb", nb)
    (tmp_path / "strict" / "pyproject.toml").write_text("[tool.nbmedic]\nclean = true\n")
    _, found = check_json(str(tmp_path))
    assert [Path(x["path"]).name for x in found if x["code"] == "NB010"] == ["a.ipynb"]


@pytest.mark.parametrize("toml", ['[tool.nbmedic]\nclean = "yes"\n', "[tool.nbmedic\n",
                                  '[tool.nbmedic]\nmax-size = "ten megs"\n', '[tool.nbmedic]\nselect = 3\n'])
def test_bad_config_is_one_line_exit_2(run_cli: Run, tmp_path: Path, toml: str) -> None:
    f.write(tmp_path / "nb.ipynb", f.notebook())
    (tmp_path / "pyproject.toml").write_text(toml)
    code, _, err = run_cli("check", str(tmp_path / "nb.ipynb"))
    assert code == 2
    _one_line_error(err)
    assert "pyproject.toml" in err


def test_explicit_config_file(check_json: Any, tmp_path: Path) -> None:
    folder = _sick_folder(tmp_path)
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('[tool.nbmedic]\nselect = ["NB001"]\n')
    _, found = check_json("--config", str(cfg), str(folder))
    assert set(codes(found)) == {"NB001"}


def test_internal_error_is_exit_3_with_report_line(run_cli: Run, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_rule(ctx: engine.NotebookContext) -> list[Any]:
        raise RuntimeError("rule exploded")

    monkeypatch.setattr(engine, "_rules", lambda: [(("NB011",), broken_rule)])
    f.write(tmp_path / "nb.ipynb", f.notebook())
    code, _, err = run_cli("check", str(tmp_path / "nb.ipynb"))
    assert code == 3
    assert "rule exploded" in err and "please report" in err
    assert "Traceback" not in err


def test_interrupt_is_exit_130(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(ctx: engine.NotebookContext) -> list[Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_rules", lambda: [(("NB011",), interrupted)])
    f.write(tmp_path / "nb.ipynb", f.notebook())
    assert run_cli("check", str(tmp_path / "nb.ipynb"))[0] == 130


def test_json_contract(run_cli: Run, tmp_path: Path) -> None:
    folder = _sick_folder(tmp_path)
    code, out, _ = run_cli("doctor", "--format", "json", str(folder))
    doc = json.loads(out)
    assert code == 1
    assert doc["version"] == 1
    assert doc["summary"]["files"] == 2
    for finding in doc["findings"]:
        assert list(finding) == ["code", "severity", "path", "cell", "cell_id", "message", "evidence", "fix"]
        assert finding["severity"] in ("error", "warning", "info")
        assert finding["message"] and finding["fix"]


def test_text_report_groups_by_file_and_shows_fix(run_cli: Run, tmp_path: Path) -> None:
    folder = _sick_folder(tmp_path)
    f.write(folder / "fine.ipynb", f.notebook(f.code("x = 1", count=1)))
    code, out, _ = run_cli("check", str(folder))
    assert code == 1
    assert "\x1b[" not in out  # no colour when not a terminal
    lines = out.splitlines()
    broken = next(i for i, line in enumerate(lines) if line.endswith("broken.ipynb"))
    assert "NB001" in lines[broken + 1]
    assert any("fix:" in line for line in lines[broken + 1:])
    assert any(line.endswith("fine.ipynb  no problems found") for line in lines)
    assert "3 notebooks checked" in lines[-1]


def _script(name: str) -> str:
    found = shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return found


def test_installed_scripts_and_jupyter_subcommand(tmp_path: Path) -> None:
    path = f.write(tmp_path / "nb.ipynb", f.notebook(f.code("x = 1", count=1)))
    for cmd in ([_script("nbmedic"), "check", str(path)], [_script("jupyter"), "nbmedic", "check", str(path)]):
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "1 notebook checked" in proc.stdout


def test_cli_import_stays_light() -> None:
    probe = ("import sys, nbmedic.cli; heavy = [m for m in ('rich', 'nbformat', 'jupyter_client', 'orjson', "
             "'jsonschema', 'fastjsonschema') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_config_exclude_skips_matching_notebooks(check_json: Any, tmp_path: Path) -> None:
    f.write(tmp_path / "keep" / "a.ipynb", f.notebook(f.code("1/0", count=1, outputs=[f.error()])))
    f.write(tmp_path / "drafts" / "b.ipynb", f.notebook(f.code("1/0", count=1, outputs=[f.error()])))
    (tmp_path / "pyproject.toml").write_text('[tool.nbmedic]\nexclude = ["*/drafts/*"]\n')
    _, found = check_json(str(tmp_path))
    assert sorted(Path(x["path"]).name for x in found) == ["a.ipynb"]


def test_parser_knows_every_merge_strategy() -> None:
    from nbmedic.parsers import MERGE_STRATEGIES
    from nbmedic.vcs.merge import STRATEGIES

    assert MERGE_STRATEGIES == STRATEGIES
