"""Finding notebooks: each once, whatever way it is reached."""

from __future__ import annotations

from pathlib import Path

from nbmedic.discover import iter_notebooks


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_each_notebook_once_however_it_is_reached(tmp_path: Path) -> None:
    a = _touch(tmp_path / "nbs" / "a.ipynb")
    _touch(tmp_path / "nbs" / "sub" / "b.ipynb")
    (tmp_path / "nbs" / "alias.ipynb").symlink_to(a)  # a linked file: the same notebook
    (tmp_path / "linked").symlink_to(tmp_path / "nbs", target_is_directory=True)
    found = list(iter_notebooks([tmp_path / "nbs", tmp_path / "nbs" / "sub", a, tmp_path / "linked"]))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["nbs/a.ipynb", "nbs/sub/b.ipynb"]


def test_relative_and_absolute_names_of_one_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "nbs" / "a.ipynb")
    found = list(iter_notebooks([str(tmp_path / "nbs"), "nbs"]))  # the tests run in tmp_path
    assert found == [tmp_path / "nbs" / "a.ipynb"]


def test_skipped_folders_and_excludes(tmp_path: Path) -> None:
    _touch(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.ipynb")
    _touch(tmp_path / "env" / "pyvenv.cfg")
    _touch(tmp_path / "env" / "lib" / "x.ipynb")
    _touch(tmp_path / "drafts" / "d.ipynb")
    _touch(tmp_path / "keep.ipynb")
    found = list(iter_notebooks([tmp_path], exclude=["*/drafts"]))
    assert found == [tmp_path / "keep.ipynb"]
