"""``nbmedic diff``: the cell-aware terminal diff, git's textconv and difftool forms."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from nbmedic.vcs.diff import diff_notebooks, textconv

from . import nbfactory as f

RunCli = Callable[..., tuple[int, str, str]]


def _nb() -> dict[str, Any]:
    nb = f.notebook(
        f.code("x = 1\ny = 2\nprint(x + y)", count=1, outputs=[f.stream("3\n")], id="c0"),
        f.md("# Title\ntext", id="m1"),
        f.code("plot()", count=2, outputs=[f.display({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})],
               id="c2"),
    )
    result: dict[str, Any] = json.loads(nbformat.writes(nb))
    return result


def _write(path: Path, nb: dict[str, Any]) -> str:
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return str(path)


def test_same_notebooks_exit_0(tmp_path: Path, run_cli: RunCli) -> None:
    a = _write(tmp_path / "a.ipynb", _nb())
    b = tmp_path / "b.ipynb"
    b.write_text(json.dumps(_nb(), indent=2), encoding="utf-8")  # other layout, same notebook
    assert run_cli("diff", a, str(b)) == (0, "", "")


def test_cell_changes(tmp_path: Path, run_cli: RunCli) -> None:
    a, b = _nb(), _nb()
    b["cells"][0]["source"] = "x = 1\ny = 5\nprint(x + y)"
    b["cells"][0]["outputs"][0]["text"] = "6\n"
    b["cells"][0]["execution_count"] = 4
    b["cells"][1]["metadata"]["tags"] = ["intro"]
    b["metadata"]["kernelspec"]["display_name"] = "Py"
    b["cells"].insert(2, json.loads(nbformat.writes(f.notebook(f.md("new cell", id="n"))))["cells"][0])
    del b["cells"][3]
    code, out, _ = run_cli("diff", _write(tmp_path / "a.ipynb", a), _write(tmp_path / "b.ipynb", b))
    assert code == 1
    assert "\x1b[" not in out  # not a terminal: no colour
    lines = out.splitlines()
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ ")
    assert '~ kernelspec.display_name: "Python 3" -> "Py"' in out
    assert "cell 0 (code, id c0) modified:" in out
    assert "  -y = 2" in lines and "  +y = 5" in lines
    assert "execution_count: 1 -> 4" in out
    assert "~ output 0: stream stdout, 1 line, 2 B (changed)" in out
    assert '+ tags: ["intro"]' in out
    assert "cell 2 (markdown, id n) added:" in out and "  + new cell" in lines
    assert "cell 2 (code, id c2) deleted:" in out and "image/png" in out

    code, out, _ = run_cli("diff", "--ignore-outputs", "--ignore-metadata", str(tmp_path / "a.ipynb"),
                           str(tmp_path / "b.ipynb"))
    assert code == 1 and "execution_count" not in out and "tags" not in out and "kernelspec" not in out


def test_ignored_differences_exit_0(tmp_path: Path, run_cli: RunCli) -> None:
    a, b = _nb(), _nb()
    b["cells"][0]["outputs"] = []
    b["cells"][0]["execution_count"] = None
    b["cells"][1]["metadata"]["collapsed"] = True
    pa, pb = _write(tmp_path / "a.ipynb", a), _write(tmp_path / "b.ipynb", b)
    assert run_cli("diff", pa, pb)[0] == 1
    assert run_cli("diff", "--ignore-outputs", "--ignore-metadata", pa, pb)[:2] == (0, "")


def test_moved_cell_and_colour(tmp_path: Path, run_cli: RunCli) -> None:
    a, b = _nb(), _nb()
    b["cells"].append(b["cells"].pop(0))
    code, out, _ = run_cli("diff", "--color", "always", _write(tmp_path / "a.ipynb", a),
                           _write(tmp_path / "b.ipynb", b))
    assert code == 1 and "\x1b[1mcell 0 -> 2 (code, id c0) moved\x1b[0m" in out


def test_invalid_input_is_one_line_exit_2(tmp_path: Path, run_cli: RunCli) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("<html>oops</html>", encoding="utf-8")
    code, out, err = run_cli("diff", str(bad), _write(tmp_path / "a.ipynb", _nb()))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "bad.ipynb" in err
    assert run_cli("diff", str(bad))[0] == 2


def test_textconv_is_stable_and_line_oriented(tmp_path: Path, run_cli: RunCli) -> None:
    text = textconv(_nb())
    assert text == textconv(copy.deepcopy(_nb()))
    assert "#### code cell c0\nx = 1\ny = 2\nprint(x + y)\n#### execution_count: 1\n" in text
    assert "#### output 0: stream stdout, 1 line, 2 B\n3\n" in text
    assert "[image/png] sha256 " in text and "[text/plain]\n<Figure>" in text
    code, out, _ = run_cli("diff", "--textconv", _write(tmp_path / "a.ipynb", _nb()))
    assert code == 0 and out == text
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json\n", encoding="utf-8")
    code, out, err = run_cli("diff", "--textconv", str(bad))
    assert code == 0 and out == "not json\n" and "not a notebook" in err


def test_dev_null_and_external_diff_arguments(tmp_path: Path, run_cli: RunCli) -> None:
    a = _write(tmp_path / "a.ipynb", _nb())
    code, out, _ = run_cli("diff", os.devnull, a)
    assert code == 1 and out.count(" added:") == 3
    code, out, _ = run_cli("diff", "nb.ipynb", a, "0" * 40, "100644", a, "0" * 40, "100644")
    assert code == 0 and out == ""


def test_pure_diff_is_empty_for_equal_notebooks() -> None:
    assert diff_notebooks(_nb(), _nb()) == []


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(repo.parent / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(repo.parent), "LC_ALL": "C", "GIT_PAGER": "cat",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_git_diff_through_textconv_and_difftool(tmp_path: Path) -> None:
    (tmp_path / "gitconfig").write_text("", encoding="utf-8")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "diff.nbmedic.textconv", "nbmedic diff --textconv")
    _git(repo, "config", "difftool.nbmedic.cmd", 'nbmedic diff "$LOCAL" "$REMOTE"')
    (repo / ".gitattributes").write_text("*.ipynb diff=nbmedic\n", encoding="utf-8")
    nb = _nb()
    _write(repo / "nb.ipynb", nb)
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=t@e", "-c", "user.name=T", "commit", "-q", "-m", "base")
    nb["cells"][1]["source"] = "# Title\nnew text"
    _write(repo / "nb.ipynb", nb)
    out = _git(repo, "diff")
    assert "-text\n+new text\n" in out and '"source"' not in out
    out = _git(repo, "difftool", "--no-prompt", "--tool", "nbmedic")
    assert "cell 1 (markdown, id m1) modified:" in out
