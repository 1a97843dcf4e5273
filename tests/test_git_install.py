"""``nbmedic git install / status / uninstall`` on real repositories, with an isolated global config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.gitrepo import executed_nb, git, git_bytes, gitenv, init_repo, nbmedic

__all__ = ["gitenv"]  # the fixture, imported for pytest

FULL = {
    "filter.nbmedic.process": "nbmedic git filter-process",
    "filter.nbmedic.required": "true",
    "diff.nbmedic.textconv": "nbmedic diff --textconv",
    "merge.nbmedic.name": "nbmedic cell-aware notebook merge",
    "merge.nbmedic.driver": "nbmedic merge --driver %O %A %B %L %P",
}


@pytest.fixture
def repo(gitenv: Path, tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


def nbmedic_config(repo: Path, scope: str = "--local") -> dict[str, str]:
    done = git(repo, "config", scope, "--get-regexp", r"^(filter|diff|merge)\.nbmedic\.", check=False)
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_install_writes_config_and_attributes_and_keeps_other_lines(repo: Path) -> None:
    (repo / ".gitattributes").write_text("*.png binary\n*.csv text eol=lf", encoding="utf-8")  # no final \n
    done = nbmedic(repo, "git", "install")
    assert done.returncode == 0, done.stderr
    assert nbmedic_config(repo) == FULL
    assert (repo / ".gitattributes").read_text(encoding="utf-8") == (
        "*.png binary\n*.csv text eol=lf\n*.ipynb filter=nbmedic diff=nbmedic merge=nbmedic\n")
    # bare command names only: a clone on another machine finds nbmedic on its own PATH
    assert all(value.startswith("nbmedic ") or value in ("true", FULL["merge.nbmedic.name"])
               for value in FULL.values())
    assert os.sep + "python" not in (repo / ".git" / "config").read_text(encoding="utf-8")
    attrs = git(repo, "check-attr", "filter", "diff", "merge", "--", "a/b.ipynb").stdout
    assert attrs.splitlines() == ["a/b.ipynb: filter: nbmedic", "a/b.ipynb: diff: nbmedic",
                                  "a/b.ipynb: merge: nbmedic"]
    assert nbmedic_config(repo, "--global") == {}  # the user's config is untouched


def test_install_is_idempotent(repo: Path) -> None:
    assert nbmedic(repo, "git", "install").returncode == 0
    config = (repo / ".git" / "config").read_bytes()
    attributes = (repo / ".gitattributes").read_bytes()
    again = nbmedic(repo, "git", "install")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert (repo / ".git" / "config").read_bytes() == config
    assert (repo / ".gitattributes").read_bytes() == attributes


def test_install_without_diff_and_merge(repo: Path) -> None:
    assert nbmedic(repo, "git", "install", "--no-diff", "--no-merge").returncode == 0
    assert nbmedic_config(repo) == {k: v for k, v in FULL.items() if k.startswith("filter.")}
    assert (repo / ".gitattributes").read_text(encoding="utf-8") == "*.ipynb filter=nbmedic\n"
    # installing again with more drivers rewrites nbmedic's own line in place
    assert nbmedic(repo, "git", "install", "--no-merge").returncode == 0
    assert (repo / ".gitattributes").read_text(encoding="utf-8") == "*.ipynb filter=nbmedic diff=nbmedic\n"
    assert "merge.nbmedic.driver" not in nbmedic_config(repo)
    assert "[merge" not in (repo / ".git" / "config").read_text(encoding="utf-8")


def test_uninstall_removes_exactly_what_install_added(repo: Path) -> None:
    git(repo, "config", "diff.other.textconv", "cat")
    (repo / ".gitattributes").write_text("# ours\r\n*.png binary\r\n", encoding="utf-8", newline="")
    config = (repo / ".git" / "config").read_bytes()
    attributes = (repo / ".gitattributes").read_bytes()
    assert nbmedic(repo, "git", "install").returncode == 0
    assert (repo / ".gitattributes").read_bytes().endswith(b"merge=nbmedic\r\n")  # the file's line endings
    done = nbmedic(repo, "git", "uninstall")
    assert done.returncode == 0, done.stderr
    assert (repo / ".git" / "config").read_bytes() == config
    assert (repo / ".gitattributes").read_bytes() == attributes
    again = nbmedic(repo, "git", "uninstall")
    assert again.returncode == 0 and "nothing changed" in again.stdout


def test_uninstall_removes_a_gitattributes_it_created(repo: Path) -> None:
    assert nbmedic(repo, "git", "install").returncode == 0
    assert nbmedic(repo, "git", "uninstall").returncode == 0
    assert not (repo / ".gitattributes").exists()
    assert nbmedic_config(repo) == {}


def test_uninstall_leaves_values_it_did_not_write(repo: Path) -> None:
    assert nbmedic(repo, "git", "install").returncode == 0
    git(repo, "config", "diff.nbmedic.textconv", "my-own-textconv")
    done = nbmedic(repo, "git", "uninstall")
    assert done.returncode == 0
    assert nbmedic_config(repo) == {"diff.nbmedic.textconv": "my-own-textconv"}
    assert "my-own-textconv" in done.stderr


def test_global_install_and_uninstall(repo: Path, gitenv: Path) -> None:
    done = nbmedic(repo, "git", "install", "--global")
    assert done.returncode == 0, done.stderr
    assert nbmedic_config(repo, "--global") == FULL
    assert nbmedic_config(repo) == {}
    global_attributes = gitenv / ".config" / "git" / "attributes"
    assert global_attributes.read_text(encoding="utf-8") == "*.ipynb filter=nbmedic diff=nbmedic merge=nbmedic\n"
    assert not (repo / ".gitattributes").exists()
    # it works in any repository of this user
    data = executed_nb(repo / "nb.ipynb").read_bytes()
    git(repo, "add", "nb.ipynb")
    assert b'"outputs": []' in git_bytes(repo, "show", ":nb.ipynb") and b'"outputs": []' not in data
    status = nbmedic(repo, "git", "status")
    assert status.returncode == 0 and "installed in global config" in status.stdout
    assert nbmedic(repo, "git", "uninstall", "--global").returncode == 0
    assert nbmedic_config(repo, "--global") == {}
    assert not global_attributes.exists()


def test_global_install_honours_core_attributes_file(repo: Path, gitenv: Path) -> None:
    custom = gitenv / "my-attributes"
    custom.write_text("*.bin binary\n", encoding="utf-8")
    git(repo, "config", "--global", "core.attributesFile", str(custom))
    assert nbmedic(repo, "git", "install", "--global", "--no-merge").returncode == 0
    assert custom.read_text(encoding="utf-8") == "*.bin binary\n*.ipynb filter=nbmedic diff=nbmedic\n"


def test_status(repo: Path) -> None:
    before = nbmedic(repo, "git", "status")
    assert before.returncode == 1
    assert "filter not installed" in " ".join(before.stdout.split()) and "filter: not active" in before.stdout
    assert nbmedic(repo, "git", "install", "--no-merge").returncode == 0
    after = nbmedic(repo, "git", "status")
    assert after.returncode == 0, after.stdout
    lines = after.stdout.splitlines()
    assert any(line.split()[:4] == ["filter", "installed", "in", "local"] for line in lines)
    assert any(line.split()[:3] == ["merge", "not", "installed;"] for line in lines)
    assert ".gitattributes:1: *.ipynb filter=nbmedic diff=nbmedic" in after.stdout
    assert "nbmedic on PATH: " + os.path.join(os.path.dirname(sys.executable), "nbmedic") in after.stdout
    assert "filter: active" in after.stdout


def test_status_when_nbmedic_is_not_on_path(repo: Path) -> None:
    assert nbmedic(repo, "git", "install").returncode == 0
    done = nbmedic(repo, "git", "status", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert "nbmedic on PATH: not found" in done.stdout


def test_install_warns_when_another_attribute_line_wins(repo: Path) -> None:
    assert nbmedic(repo, "git", "install").returncode == 0
    info = repo / ".git" / "info" / "attributes"  # higher precedence than .gitattributes
    info.parent.mkdir(exist_ok=True)
    info.write_text("*.ipynb filter=nbstripout\n", encoding="utf-8")
    done = nbmedic(repo, "git", "install")
    assert done.returncode == 0
    assert "still get filter=nbstripout" in done.stderr


@pytest.mark.parametrize("args", [("install",), ("uninstall",), ("status",)])
def test_outside_a_repository(gitenv: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    done = nbmedic(outside, "git", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not inside a git working tree" in done.stderr
    assert not (outside / ".gitattributes").exists()


def test_usage(gitenv: Path, tmp_path: Path) -> None:
    done = nbmedic(tmp_path, "git")
    assert done.returncode == 2 and "needs a command" in done.stderr
    helped = nbmedic(tmp_path, "git", "--help")
    assert "filter-process" not in helped.stdout and "install" in helped.stdout
