"""``nbmedic repair`` on notebooks left with conflict markers by a real ``git merge``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbmedic.repair import CONFLICT_TAG, repair_bytes
from nbmedic.repair.conflicts import split_conflicts
from nbmedic.vcs.align import align
from nbmedic.vcs.merge import merge3

from . import nbfactory as f

RunCli = Callable[..., tuple[int, str, str]]
Edit = Callable[[Any], None]


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo),
           "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=check, capture_output=True, text=True)


def _base_notebook() -> Any:
    cells = []
    for i in range(8):
        if i % 2 == 0:
            cells.append(f.code(f"x{i} = {i}\nprint(x{i})", count=i // 2 + 1, outputs=[f.stream(f"{i}\n")]))
        else:
            cells.append(f.md(f"# Section {i}\nSome text about part {i}."))
    return f.notebook(*cells)


def git_conflict(tmp_path: Path, local: Edit, remote: Edit, *, diff3: bool = False,
                 base: Any = None) -> Path:
    """Commit a base notebook, edit it on two branches, merge: return the conflicted file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "test@example.com")
    _git(repo, "config", "user.name", "Test")
    _git(repo, "config", "commit.gpgsign", "false")
    if diff3:
        _git(repo, "config", "merge.conflictStyle", "diff3")
    path = repo / "nb.ipynb"
    f.write(path, base if base is not None else _base_notebook())
    _git(repo, "add", "nb.ipynb")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "theirs")
    nb = nbformat.read(path, as_version=4)
    remote(nb)
    f.write(path, nb)
    _git(repo, "commit", "-q", "-am", "remote edits")
    _git(repo, "checkout", "-q", "main")
    nb = nbformat.read(path, as_version=4)
    local(nb)
    f.write(path, nb)
    _git(repo, "commit", "-q", "-am", "local edits")
    merged = _git(repo, "merge", "theirs", check=False)
    assert merged.returncode != 0, merged.stdout  # the merge must leave markers
    assert b"\n<<<<<<< " in path.read_bytes()
    return path


def _sources(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return [c.source for c in nb.cells]


def _tags(path: Path) -> list[list[str]]:
    return [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]


def _local_edits(nb: Any) -> None:
    nb.cells[2].source = "x2 = 'local'\nprint(x2)"       # same cell as remote: conflict
    nb.cells.insert(1, nbformat.v4.new_code_cell("inserted_by_local = 1"))


def _remote_edits(nb: Any) -> None:
    nb.cells[2].source = "x2 = 'remote'\nprint(x2)"
    nb.cells[6].source = "x6 = 'remote six'\nprint(x6)"  # a different cell: merges cleanly
    del nb.cells[4]                                       # deleted on one side
    nb.cells.append(nbformat.v4.new_markdown_cell("added at the end by remote"))


def test_real_merge_keeps_every_cell_and_both_conflicting_versions(tmp_path: Path, run_cli: RunCli) -> None:
    path = git_conflict(tmp_path, _local_edits, _remote_edits)
    before = path.read_bytes()
    code, out, err = run_cli("repair", str(path))
    assert code == 0, out + err
    assert path.read_bytes() == before  # the input is never touched without --in-place
    result = path.with_name("nb.repaired.ipynb")
    assert "resolved 1 git conflict" in out and str(result) in out
    sources = _sources(result)
    assert sources == [
        "x0 = 0\nprint(x0)",
        "inserted_by_local = 1",
        "# Section 1\nSome text about part 1.",
        "x2 = 'local'\nprint(x2)",
        "x2 = 'remote'\nprint(x2)",
        "# Section 3\nSome text about part 3.",
        "# Section 5\nSome text about part 5.",
        "x6 = 'remote six'\nprint(x6)",
        "# Section 7\nSome text about part 7.",
        "added at the end by remote",
    ]
    tags = _tags(result)
    assert tags[3] == [CONFLICT_TAG, "nbmedic-local"] and tags[4] == [CONFLICT_TAG, "nbmedic-remote"]
    assert all(not t for i, t in enumerate(tags) if i not in (3, 4))
    ids = [c.id for c in nbformat.read(result, as_version=4).cells]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("side", ["local", "remote"])
def test_prefer_keeps_one_side(tmp_path: Path, run_cli: RunCli, side: str) -> None:
    path = git_conflict(tmp_path, _local_edits, _remote_edits)
    out_path = tmp_path / "out.ipynb"
    code, out, err = run_cli("repair", str(path), "--prefer", side, "-o", str(out_path))
    assert code == 0, out + err
    sources = _sources(out_path)
    assert f"x2 = '{side}'\nprint(x2)" in sources
    other = "remote" if side == "local" else "local"
    assert f"x2 = '{other}'\nprint(x2)" not in sources
    assert "inserted_by_local = 1" in sources and "added at the end by remote" in sources
    assert not any(_tags(out_path))


def test_both_sides_insert_at_the_same_place(tmp_path: Path) -> None:
    def local(nb: Any) -> None:
        nb.cells.insert(3, nbformat.v4.new_code_cell("local_a = 1"))
        nb.cells.insert(4, nbformat.v4.new_markdown_cell("local note"))

    def remote(nb: Any) -> None:
        nb.cells.insert(3, nbformat.v4.new_code_cell("remote_b = 2"))

    path = git_conflict(tmp_path, local, remote)
    result = repair_bytes(path.read_bytes())
    assert result.status == "repaired" and result.nb is not None and not result.lost
    sources = ["".join(c["source"]) for c in result.nb["cells"]]
    # different ids: two different new cells, both kept in order, none tagged as a conflict
    assert sources[3:6] == ["local_a = 1", "local note", "remote_b = 2"]
    assert len(sources) == 11
    assert not any(c["metadata"].get("tags") for c in result.nb["cells"])


@pytest.mark.parametrize("diff3", [True, False])
def test_deletion_inside_a_conflict_hunk(tmp_path: Path, diff3: bool) -> None:
    def local(nb: Any) -> None:
        nb.cells[3].source = "# Section 3\nlocal rewrite"

    def remote(nb: Any) -> None:
        nb.cells[3].source = "# Section 3\nremote rewrite"
        del nb.cells[4]  # next to the conflicting edit: git puts it inside the same hunk

    path = git_conflict(tmp_path, local, remote, diff3=diff3)
    assert (b"\n||||||| " in path.read_bytes()) is diff3
    result = repair_bytes(path.read_bytes())
    assert result.status == "repaired" and result.nb is not None and not result.lost
    sources = ["".join(c["source"]) for c in result.nb["cells"]]
    assert sources[3:5] == ["# Section 3\nlocal rewrite", "# Section 3\nremote rewrite"]
    if diff3:  # the ancestor proves remote deleted a cell local never touched: it stays deleted
        assert "x4 = 4\nprint(x4)" not in sources and len(sources) == 8
        assert any("stays deleted" in a for a in result.actions)
    else:  # without the ancestor nothing says who changed what: never drop a cell
        assert sources[5] == "x4 = 4\nprint(x4)" and len(sources) == 9


def test_diff3_one_sided_change_inside_a_hunk_takes_that_side(tmp_path: Path) -> None:
    def local(nb: Any) -> None:
        nb.cells[3].source = "# Section 3\nlocal rewrite"

    def remote(nb: Any) -> None:
        nb.cells[3].source = "# Section 3\nremote rewrite"
        nb.cells[4].source = "x4 = 'remote'\nprint(x4)"
        nb.cells[5].source = "# Section 5\nedited by remote only"

    path = git_conflict(tmp_path, local, remote, diff3=True)
    result = repair_bytes(path.read_bytes())
    assert result.nb is not None
    sources = ["".join(c["source"]) for c in result.nb["cells"]]
    assert "x4 = 'remote'\nprint(x4)" in sources and "x4 = 4\nprint(x4)" not in sources
    assert "# Section 5\nedited by remote only" in sources
    assert len(sources) == 9  # only cell 3 is doubled


def test_same_source_different_outputs_is_not_a_conflict(tmp_path: Path) -> None:
    def local(nb: Any) -> None:
        nb.cells[0].execution_count = 7
        nb.cells[0].outputs = [f.stream("local run\n")]

    def remote(nb: Any) -> None:
        nb.cells[0].execution_count = 9
        nb.cells[0].outputs = [f.stream("remote run\n")]

    path = git_conflict(tmp_path, local, remote)
    for prefer, count in ((None, 7), ("local", 7), ("remote", 9)):
        result = repair_bytes(path.read_bytes(), prefer=prefer)  # type: ignore[arg-type]
        assert result.nb is not None
        cells = result.nb["cells"]
        assert len(cells) == 8
        assert cells[0]["execution_count"] == count
        assert not cells[0]["metadata"].get("tags")


def test_metadata_conflict_local_wins_unless_preferred(tmp_path: Path) -> None:
    def local(nb: Any) -> None:
        nb.metadata["kernelspec"]["display_name"] = "Local Python"
        nb.metadata["local_only"] = True

    def remote(nb: Any) -> None:
        nb.metadata["kernelspec"]["display_name"] = "Remote Python"
        nb.metadata["remote_only"] = True

    path = git_conflict(tmp_path, local, remote)
    result = repair_bytes(path.read_bytes())
    assert result.nb is not None
    meta = result.nb["metadata"]
    assert meta["kernelspec"]["display_name"] == "Local Python"
    assert meta["local_only"] is True and meta["remote_only"] is True
    result = repair_bytes(path.read_bytes(), prefer="remote")
    assert result.nb is not None and result.nb["metadata"]["kernelspec"]["display_name"] == "Remote Python"


def test_one_unreadable_side_keeps_the_other_and_reports_it(tmp_path: Path) -> None:
    good = f.notebook(f.code("a = 1"), f.md("text"))
    text = nbformat.writes(good) + "\n"
    lines = text.splitlines(keepends=True)
    # the remote side of this "conflict" is cut off in the middle of the file
    conflicted = "".join(lines[:3]) + "<<<<<<< ours\n" + "".join(lines[3:]) + "=======\n  {\n >>>>>>> x\n"
    conflicted = conflicted.replace(" >>>>>>> x", ">>>>>>> theirs")
    result = repair_bytes(conflicted.encode())
    assert result.status == "repaired" and result.nb is not None
    assert ["".join(c["source"]) for c in result.nb["cells"]] == ["a = 1", "text"]
    assert any("remote side" in x for x in result.lost)


def test_split_conflicts_three_sides_and_bad_markers() -> None:
    text = "a\n<<<<<<< ours\nL\n||||||| base\nB\n=======\nR\n>>>>>>> theirs\nz\n=======\n"
    sides = split_conflicts(text)
    assert sides is not None
    assert (sides.local, sides.remote, sides.base) == ("a\nL\nz\n", "a\nR\nz\n", "a\nB\nz\n")
    assert sides.conflicts == 1 and len(sides.problems) == 1
    assert split_conflicts("no markers\n") is None
    unclosed = split_conflicts("<<<<<<< a\nL\n=======\nR\n")
    assert unclosed is not None and unclosed.base is None and unclosed.problems


def test_align_orders_and_pairs_by_id_content_and_similarity() -> None:
    def c(src: str, cid: str | None = None) -> dict[str, Any]:
        cell: dict[str, Any] = {"cell_type": "code", "source": src, "metadata": {}}
        if cid:
            cell["id"] = cid
        return cell

    local = [c("a", "1"), c("shared text here"), c("local edit of a long line of code"), c("x", "9")]
    remote = [c("a changed", "1"), c("remote edit of a long line of code"), c("shared text here"), c("new")]
    pairs = align(local, remote)
    assert (0, 0) in pairs
    assert (1, 2) in pairs  # equal content
    assert (3, None) in pairs and (None, 3) in pairs
    seen_l = [p[0] for p in pairs if p[0] is not None]
    seen_r = [p[1] for p in pairs if p[1] is not None]
    assert sorted(seen_l) == list(range(4)) and sorted(seen_r) == list(range(4))
    assert seen_l == sorted(seen_l)


def test_json_report_of_a_conflict_repair(tmp_path: Path, run_cli: RunCli) -> None:
    path = git_conflict(tmp_path, _local_edits, _remote_edits)
    code, out, _ = run_cli("repair", "--format", "json", str(path))
    assert code == 0
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["findings"] == []
    (entry,) = doc["repairs"]
    assert entry["status"] == "repaired" and entry["path"] == str(path)
    assert entry["output"] == str(path.with_name("nb.repaired.ipynb")) and entry["lost"] == []
    assert any("conflict" in a for a in entry["actions"])


def _stage(path: Path, n: int) -> dict[str, Any]:
    """Version ``n`` of a conflicted file in git's index (1 base, 2 ours, 3 theirs)."""
    shown = _git(path.parent, "show", f":{n}:{path.name}")
    result: dict[str, Any] = json.loads(shown.stdout)
    return result


def _cells_seen(cells: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [("".join(c["source"]), c["metadata"].get("tags", [])) for c in cells]


@pytest.mark.parametrize("prefer", [None, "local", "remote"])
def test_repair_rebuilds_with_the_merge_engine(tmp_path: Path, prefer: Any) -> None:
    """With diff3 markers, repair gives what ``nbmedic merge`` gives for the three committed versions."""
    def local(nb: Any) -> None:
        _local_edits(nb)
        nb.cells[0].execution_count, nb.cells[0].outputs = 5, [f.stream("local run\n")]

    def remote(nb: Any) -> None:
        _remote_edits(nb)
        nb.cells[0].execution_count, nb.cells[0].outputs = 9, [f.stream("remote run\n")]

    path = git_conflict(tmp_path, local, remote, diff3=True)
    result = repair_bytes(path.read_bytes(), prefer=prefer)
    assert result.status == "repaired" and result.nb is not None and not result.lost
    merged = merge3(_stage(path, 1), _stage(path, 2), _stage(path, 3), prefer or "union")
    assert _cells_seen(result.nb["cells"]) == _cells_seen(merged.nb["cells"])
    sources = [s for s, _ in _cells_seen(result.nb["cells"])]
    assert "x4 = 4\nprint(x4)" not in sources and "added at the end by remote" in sources
    # both sides re-ran cell 0 differently: the outputs are cleared, as the merge does
    assert (result.nb["cells"][0]["outputs"], result.nb["cells"][0]["execution_count"]) == ([], None)
    assert any("cell 0: both sides changed the outputs" in a for a in result.actions)


@pytest.mark.parametrize("prefer", [None, "remote"])
def test_a_cell_one_side_deleted_and_the_other_edited_is_never_dropped(tmp_path: Path, prefer: Any) -> None:
    def local(nb: Any) -> None:
        nb.cells[4].source = "x4 = 'kept by local'\nprint(x4)"

    def remote(nb: Any) -> None:
        del nb.cells[4]

    path = git_conflict(tmp_path, local, remote, diff3=True)
    result = repair_bytes(path.read_bytes(), prefer=prefer)
    assert result.nb is not None and not result.lost
    cells = result.nb["cells"]
    assert len(cells) == 8
    assert "".join(cells[4]["source"]) == "x4 = 'kept by local'\nprint(x4)"
    assert cells[4]["metadata"]["tags"] == [CONFLICT_TAG, "nbmedic-local"]


def test_conflict_in_a_notebook_without_ids(tmp_path: Path) -> None:
    base = _base_notebook()
    base.nbformat_minor = 4
    for cell in base.cells:
        del cell["id"]

    def local(nb: Any) -> None:
        nb.cells[2].source = "x2 = 'local'\nprint(x2)"

    def remote(nb: Any) -> None:
        nb.cells[2].source = "x2 = 'remote'\nprint(x2)"

    path = git_conflict(tmp_path, local, remote, base=base)
    result = repair_bytes(path.read_bytes())
    assert result.nb is not None and not result.lost
    assert result.nb["nbformat_minor"] == 4 and all("id" not in c for c in result.nb["cells"])
    assert _cells_seen(result.nb["cells"])[1:5] == [
        ("# Section 1\nSome text about part 1.", []),
        ("x2 = 'local'\nprint(x2)", [CONFLICT_TAG, "nbmedic-local"]),
        ("x2 = 'remote'\nprint(x2)", [CONFLICT_TAG, "nbmedic-remote"]),
        ("# Section 3\nSome text about part 3.", []),
    ]

