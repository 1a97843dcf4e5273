"""``nbmedic merge``: the 3-way core, the CLI, and git's merge driver in real repositories."""

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
import pytest

from nbmedic.notebook.cells import CONFLICT_TAG
from nbmedic.notebook.io import dumps
from nbmedic.vcs.merge import merge3, merge_text3

from . import nbfactory as f

RunCli = Callable[..., tuple[int, str, str]]


def _plain(nb: Any) -> dict[str, Any]:
    """The notebook as the merge sees it: the JSON a file holds."""
    result: dict[str, Any] = json.loads(nbformat.writes(nb))
    return result


def _base() -> dict[str, Any]:
    cells = []
    for i in range(6):
        if i % 2 == 0:
            cells.append(f.code(f"x{i} = {i}\ny{i} = {i}\nprint(x{i})", count=i + 1,
                                outputs=[f.stream(f"{i}\n")], id=f"c{i}"))
        else:
            cells.append(f.md(f"# Section {i}\nSome text about part {i}.", id=f"m{i}"))
    return _plain(f.notebook(*cells))


def _src(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def _ids(nb: dict[str, Any]) -> list[str]:
    return [c["id"] for c in nb["cells"]]


def _valid(nb: dict[str, Any]) -> None:
    nbformat.validate(nbformat.reads(dumps(nb), as_version=nbformat.NO_CONVERT))


def _sides() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    base = _base()
    return base, copy.deepcopy(base), copy.deepcopy(base)


# --- the core ------------------------------------------------------------------------------------

def test_one_sided_changes_and_inserts_are_taken() -> None:
    base, local, remote = _sides()
    local["cells"][0]["source"] = "x0 = 'local'\ny0 = 0\nprint(x0)"
    remote["cells"][2]["source"] = "x2 = 'remote'\ny2 = 2\nprint(x2)"
    remote["cells"].insert(3, _plain(f.notebook(f.md("remote insert", id="new")))["cells"][0])
    local["metadata"]["local_key"] = 1
    result = merge3(base, local, remote)
    assert result.clean and not result.conflict_cells
    nb = result.nb
    assert _ids(nb) == ["c0", "m1", "c2", "new", "m3", "c4", "m5"]
    assert _src(nb["cells"][0]).startswith("x0 = 'local'")
    assert _src(nb["cells"][2]).startswith("x2 = 'remote'")
    assert nb["metadata"]["local_key"] == 1
    _valid(nb)


def test_identical_changes_are_taken_once() -> None:
    base, local, remote = _sides()
    for side in (local, remote):
        side["cells"][1]["source"] = "# Same edit"
        side["cells"].append(_plain(f.notebook(f.code("same = 1", id="same")))["cells"][0])
    result = merge3(base, local, remote)
    assert result.clean
    assert _ids(result.nb) == ["c0", "m1", "c2", "m3", "c4", "m5", "same"]
    assert _src(result.nb["cells"][1]) == "# Same edit"


def test_same_cell_inserted_without_ids_is_taken_once() -> None:
    base = _plain(f.notebook(f.code("a"), f.code("b")))
    for cell in base["cells"]:
        del cell["id"]
    base["nbformat_minor"] = 4
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    new = {"cell_type": "markdown", "metadata": {}, "source": "between"}
    local["cells"].insert(1, copy.deepcopy(new))
    remote["cells"].insert(1, copy.deepcopy(new))
    result = merge3(base, local, remote)
    assert [_src(c) for c in result.nb["cells"]] == ["a", "between", "b"]
    assert all("id" not in c for c in result.nb["cells"])
    _valid(result.nb)


def test_different_lines_of_one_cell_merge_cleanly() -> None:
    base, local, remote = _sides()
    local["cells"][0]["source"] = "x0 = 'L'\ny0 = 0\nprint(x0)"
    remote["cells"][0]["source"] = "x0 = 0\ny0 = 0\nprint('R', x0)"
    result = merge3(base, local, remote)
    assert result.clean
    assert _src(result.nb["cells"][0]) == "x0 = 'L'\ny0 = 0\nprint('R', x0)"


def test_conflicting_sources_leave_markers_and_the_tag() -> None:
    base, local, remote = _sides()
    local["cells"][2]["source"] = "x2 = 'local'\ny2 = 2\nprint(x2)"
    remote["cells"][2]["source"] = "x2 = 'remote'\ny2 = 2\nprint(x2)"
    result = merge3(base, local, remote)
    assert not result.clean and result.conflict_cells == [2]
    cell = result.nb["cells"][2]
    assert _src(cell) == ("<<<<<<< local\nx2 = 'local'\n=======\nx2 = 'remote'\n>>>>>>> remote\n"
                              "y2 = 2\nprint(x2)")
    assert cell["metadata"]["tags"] == [CONFLICT_TAG]
    assert len(result.nb["cells"]) == 6
    _valid(result.nb)


def test_conflicting_outputs_and_counts_are_cleared() -> None:
    base, local, remote = _sides()
    local["cells"][0]["outputs"] = [_plain(f.notebook(f.code("", outputs=[f.stream("L\n")])))["cells"][0]
                                    ["outputs"][0]]
    local["cells"][0]["execution_count"] = 7
    remote["cells"][0]["outputs"] = []
    remote["cells"][0]["execution_count"] = 9
    remote["cells"][2]["execution_count"] = 42  # one side only: taken
    result = merge3(base, local, remote)
    assert result.clean
    assert result.nb["cells"][0]["outputs"] == [] and result.nb["cells"][0]["execution_count"] is None
    assert result.nb["cells"][2]["execution_count"] == 42
    assert any("outputs" in n for n in result.notes)


def test_deleted_on_one_side_edited_on_the_other_is_kept_and_marked() -> None:
    base, local, remote = _sides()
    del local["cells"][4]
    remote["cells"][4]["source"] = "x4 = 'edited'"
    del remote["cells"][1]  # deleted on one side, untouched on the other: gone
    result = merge3(base, local, remote)
    assert _ids(result.nb) == ["c0", "c2", "m3", "c4", "m5"]
    kept = result.nb["cells"][3]
    assert _src(kept) == "x4 = 'edited'" and CONFLICT_TAG in kept["metadata"]["tags"]
    assert result.conflict_cells == [3]


def test_metadata_conflict_local_wins_and_is_reported() -> None:
    base, local, remote = _sides()
    local["metadata"]["kernelspec"]["display_name"] = "Local"
    remote["metadata"]["kernelspec"]["display_name"] = "Remote"
    remote["metadata"]["extra"] = True
    local["cells"][1]["metadata"]["tags"] = ["a"]
    remote["cells"][1]["metadata"]["tags"] = ["b"]
    result = merge3(base, local, remote)
    assert result.clean
    assert result.nb["metadata"]["kernelspec"]["display_name"] == "Local"
    assert result.nb["metadata"]["extra"] is True
    assert result.nb["cells"][1]["metadata"]["tags"] == ["a", "b"]
    assert any("kernelspec.display_name" in n and "local" in n for n in result.notes)
    assert merge3(base, local, remote, "remote").nb["metadata"]["kernelspec"]["display_name"] == "Remote"


def test_moves_follow_the_side_that_moved() -> None:
    base, local, remote = _sides()
    local["cells"].append(local["cells"].pop(0))  # local moves c0 to the end
    remote["cells"][0]["source"] = "x0 = 'remote'"  # remote edits it in place
    result = merge3(base, local, remote)
    assert result.clean
    assert _ids(result.nb) == ["m1", "c2", "m3", "c4", "m5", "c0"]
    assert _src(result.nb["cells"][-1]) == "x0 = 'remote'"


@pytest.mark.parametrize("strategy", ["local", "remote", "union"])
def test_strategies(strategy: Any) -> None:
    base, local, remote = _sides()
    local["cells"][2]["source"] = "local"
    remote["cells"][2]["source"] = "remote"
    result = merge3(base, local, remote, strategy)
    assert result.clean
    sources = [_src(c) for c in result.nb["cells"]]
    if strategy == "union":
        assert sources[2:4] == ["local", "remote"] and len(sources) == 7
        assert all(CONFLICT_TAG in c["metadata"]["tags"] for c in result.nb["cells"][2:4])
        assert len(set(_ids(result.nb))) == 7
    else:
        assert sources[2] == strategy and len(sources) == 6
    _valid(result.nb)


def test_no_base_and_a_format_upgrade() -> None:
    local = _plain(f.notebook(f.code("a", id="a")))
    remote = copy.deepcopy(local)
    remote["cells"].append({"cell_type": "code", "metadata": {}, "source": "b", "outputs": [],
                            "execution_count": None})
    remote["nbformat_minor"] = 4
    result = merge3(None, local, remote)
    assert [_src(c) for c in result.nb["cells"]] == ["a", "b"]
    assert result.nb["nbformat_minor"] == 5 and all("id" in c for c in result.nb["cells"])
    _valid(result.nb)


def test_merge_text3() -> None:
    assert merge_text3("a\nb\nc\n", "A\nb\nc\n", "a\nb\nC\n") == ("A\nb\nC\n", 0)
    assert merge_text3("a", "b", "c") == ("<<<<<<< local\nb\n=======\nc\n>>>>>>> remote", 1)
    assert merge_text3("a\n", "b\n", "c\n", marker_size=9)[0] == \
        "<<<<<<<<< local\nb\n=========\nc\n>>>>>>>>> remote\n"
    assert merge_text3("a\n", "b\n", "c\n", "remote") == ("c\n", 1)
    assert merge_text3("x\n", "x\nl\n", "x\nr\n")[1] == 1


# --- the command ---------------------------------------------------------------------------------

def _write(path: Path, nb: dict[str, Any]) -> str:
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return str(path)


def test_cli_writes_out_atomically_and_exits_1_on_conflicts(tmp_path: Path, run_cli: RunCli) -> None:
    base, local, remote = _sides()
    paths = [_write(tmp_path / f"{n}.ipynb", nb) for n, nb in (("b", base), ("l", local), ("r", remote))]
    code, out, err = run_cli("merge", *paths, "-o", str(tmp_path / "out.ipynb"))
    assert code == 0 and out == "" and err == ""
    assert (tmp_path / "out.ipynb").read_text(encoding="utf-8") == dumps(base)

    local["cells"][1]["source"] = "L"
    remote["cells"][1]["source"] = "R"
    _write(tmp_path / "l.ipynb", local)
    _write(tmp_path / "r.ipynb", remote)
    code, out, err = run_cli("merge", *paths)
    assert code == 1 and "CONFLICT cell 1" in err
    merged = json.loads(out)
    assert CONFLICT_TAG in merged["cells"][1]["metadata"]["tags"]
    code, out, _ = run_cli("merge", "--strategy", "remote", *paths)
    assert code == 0 and _src(json.loads(out)["cells"][1]) == "R"


def test_cli_bad_input(tmp_path: Path, run_cli: RunCli) -> None:
    good = _write(tmp_path / "good.ipynb", _base())
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json", encoding="utf-8")
    code, _, err = run_cli("merge", good, good, str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "remote" in err
    local = tmp_path / "local.ipynb"
    local.write_bytes(b"{\n \"cells\": []}\n")  # JSON, not a notebook
    before = local.read_bytes()
    code, _, err = run_cli("merge", "--driver", good, str(local), good, "7", "nb.ipynb")
    assert code == 1 and local.read_bytes() == before and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("merge", good, good)
    assert code == 2


# --- through git ---------------------------------------------------------------------------------

def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(repo.parent / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(repo.parent), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=check, capture_output=True, text=True)


def _repo(tmp_path: Path, base: dict[str, Any]) -> Path:
    (tmp_path / "gitconfig").write_text("", encoding="utf-8")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.email", "t@example.com"), ("user.name", "T"), ("commit.gpgsign", "false"),
                       ("merge.nbmedic.name", "nbmedic notebook merge"),
                       ("merge.nbmedic.driver", "nbmedic merge --driver %O %A %B %L %P")):
        _git(repo, "config", key, value)
    (repo / ".gitattributes").write_text("*.ipynb merge=nbmedic\n", encoding="utf-8")
    (repo / "nb.ipynb").write_text(dumps(base), encoding="utf-8")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def _diverge(repo: Path, local: dict[str, Any], remote: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    _git(repo, "checkout", "-q", "-b", "theirs")
    (repo / "nb.ipynb").write_text(dumps(remote), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "remote")
    _git(repo, "checkout", "-q", "main")
    (repo / "nb.ipynb").write_text(dumps(local), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "local")
    return _git(repo, "merge", "--no-edit", "theirs", check=False)


def test_git_merges_diverged_branches_through_the_driver(tmp_path: Path) -> None:
    base, local, remote = _sides()
    # edits next to each other: git's line merge would conflict on the JSON
    local["cells"][2]["source"] = "x2 = 'local'\ny2 = 2\nprint(x2)"
    local["cells"][2]["outputs"] = []
    remote["cells"][3]["source"] = "# Remote section"
    remote["cells"].insert(3, _plain(f.notebook(f.md("inserted", id="ins")))["cells"][0])
    repo = _repo(tmp_path, base)
    proc = _diverge(repo, local, remote)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nb = nbformat.read(repo / "nb.ipynb", as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert [c.id for c in nb.cells] == ["c0", "m1", "c2", "ins", "m3", "c4", "m5"]
    assert nb.cells[2].source.startswith("x2 = 'local'") and nb.cells[4].source == "# Remote section"
    assert _git(repo, "status", "--porcelain").stdout == ""


def test_git_conflict_leaves_a_valid_notebook_and_nb060(tmp_path: Path, run_cli: RunCli) -> None:
    base, local, remote = _sides()
    local["cells"][0]["source"] = "x0 = 'local'"
    remote["cells"][0]["source"] = "x0 = 'remote'"
    repo = _repo(tmp_path, base)
    proc = _diverge(repo, local, remote)
    assert proc.returncode == 1
    assert "CONFLICT" in proc.stdout + proc.stderr
    path = repo / "nb.ipynb"
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.cells[0].source == "<<<<<<< local\nx0 = 'local'\n=======\nx0 = 'remote'\n>>>>>>> remote"
    assert nb.cells[0].metadata.tags == [CONFLICT_TAG]
    assert len(nb.cells) == 6
    assert "UU nb.ipynb" in _git(repo, "status", "--porcelain").stdout
    _, out, _ = run_cli("check", "--select", "NB060", "--format", "json", str(path))
    assert [x["code"] for x in json.loads(out)["findings"]] == ["NB060"]


def test_git_driver_with_an_invalid_side_reports_a_conflict(tmp_path: Path) -> None:
    base, local, _ = _sides()
    local["cells"][0]["source"] = "x0 = 'local'"
    repo = _repo(tmp_path, base)
    _git(repo, "checkout", "-q", "-b", "theirs")
    (repo / "nb.ipynb").write_text("this is not a notebook\n", encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "remote breaks it")
    _git(repo, "checkout", "-q", "main")
    (repo / "nb.ipynb").write_text(dumps(local), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "local")
    proc = _git(repo, "merge", "--no-edit", "theirs", check=False)
    assert proc.returncode == 1
    assert "not a notebook" in proc.stdout + proc.stderr
    assert (repo / "nb.ipynb").read_text(encoding="utf-8") == dumps(local)  # %A untouched


def test_cli_empty_base_merges_the_two_sides(tmp_path: Path, run_cli: RunCli) -> None:
    """git's add/add: no common ancestor; every cell either side has is kept."""
    _, local, remote = _sides()
    local["cells"][0]["source"] = "x0 = 'local'"
    remote["cells"][0]["source"] = "x0 = 'remote'"
    local["cells"][2]["outputs"], local["cells"][2]["execution_count"] = [], 8  # re-run on one side
    remote["cells"].append(_plain(f.notebook(f.md("remote only", id="r")))["cells"][0])
    empty = tmp_path / "empty.ipynb"
    empty.write_bytes(b"")
    paths = [str(empty), _write(tmp_path / "l.ipynb", local), _write(tmp_path / "r.ipynb", remote)]
    code, out, err = run_cli("merge", "--strategy", "union", *paths)
    assert code == 0, err
    nb = json.loads(out)
    assert [_src(c) for c in nb["cells"]][:3] == ["x0 = 'local'", "x0 = 'remote'", _src(local["cells"][1])]
    assert [c["metadata"].get("tags") for c in nb["cells"][:2]] == [[CONFLICT_TAG, "nbmedic-local"],
                                                                   [CONFLICT_TAG, "nbmedic-remote"]]
    assert len(nb["cells"]) == 8 and _src(nb["cells"][-1]) == "remote only"
    assert nb["cells"][3]["execution_count"] == 8  # same source: the local side's run
    assert "the two sides differ" in err
    _valid(nb)
    code, out, err = run_cli("merge", *paths)
    assert code == 1 and "CONFLICT cell 0" in err
    assert _src(json.loads(out)["cells"][0]) == "<<<<<<< local\nx0 = 'local'\n=======\nx0 = 'remote'\n>>>>>>> remote"
