"""One notebook, one name: every probe of the doctor reports a notebook under the same path, and each
finding is judged by the configuration of the notebook it concerns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nbmedic.commands.doctor import filter_by_owner
from nbmedic.config import Config
from nbmedic.findings import make
from nbmedic.notebook.record import NotebookFile
from tests.nbfactory import code, notebook, write

Run = Callable[..., tuple[int, str, str]]


def _headers(text: str) -> list[str]:
    return [line[2:].split("  ")[0] for line in text.splitlines() if line[:2] in ("✓ ", "✗ ", "! ", "· ")]


def test_absolute_folder_gives_one_header_per_notebook(run_cli: Run, tmp_path: Path) -> None:
    # a static finding (NB012) and an environment finding (EN223) about the same notebook
    folder = tmp_path / "project"
    write(folder / "analysis.ipynb", notebook(code("a = 1", count=1), code("b = 2"), code("c = 3", count=2)))
    (folder / "pyproject.toml").write_text("[tool.nbmedic]\nrequire-lock = true\n")
    _, text, _ = run_cli("doctor", "--no-run", str(folder.resolve()))  # the working folder is tmp_path
    assert _headers(text) == ["project/analysis.ipynb"]
    assert "NB012" in text and "EN223" in text
    _, out, _ = run_cli("doctor", "--no-run", "--format", "json", str(folder.resolve()))
    paths = {f["path"] for f in json.loads(out)["findings"] if f["code"] in ("NB012", "EN223")}
    assert paths == {str(folder.resolve() / "analysis.ipynb")}


def test_relative_and_absolute_paths_give_the_same_report(run_cli: Run, tmp_path: Path) -> None:
    folder = tmp_path / "nbs"
    write(folder / "a.ipynb", notebook(code("1/0", count=1)))
    _, relative, _ = run_cli("doctor", "--no-run", "--no-env", "nbs")
    _, absolute, _ = run_cli("doctor", "--no-run", "--no-env", str(folder.resolve()))
    assert relative == absolute


def test_environment_findings_follow_each_notebooks_config(run_cli: Run, tmp_path: Path) -> None:
    # the first notebook's project ignores EN2xx; the second's requires a lock: its EN223 must show
    write(tmp_path / "a" / "first.ipynb", notebook(code("x = 1")))
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.nbmedic]\nignore = ["EN2"]\n')
    write(tmp_path / "b" / "second.ipynb", notebook(code("y = 2")))
    (tmp_path / "b" / "pyproject.toml").write_text("[tool.nbmedic]\nrequire-lock = true\n")
    code_, out, _ = run_cli("doctor", "--no-run", "--format", "json", "a", "b")
    found = [(Path(f["path"]).name, f["code"]) for f in json.loads(out)["findings"] if f["path"]]
    assert ("second.ipynb", "EN223") in found
    assert not any(name == "first.ipynb" and c.startswith("EN2") for name, c in found)
    assert code_ == 0  # EN223 is a warning


def test_a_finding_about_no_notebook_is_kept_when_one_project_wants_it() -> None:
    quiet = Config(select=("NB",))
    loud = Config(select=("NB", "EN2"), strict=True)
    files = [NotebookFile(Path("a/first.ipynb"), quiet), NotebookFile(Path("b/second.ipynb"), loud)]
    machine = make("EN240", None, "little memory headroom")
    kernel = make("EN212", "/share/jupyter/kernels/py", "argv rewritten")
    about_first = make("EN220", "a/first.ipynb", "numpy differs")
    kept, code_ = filter_by_owner([machine, kernel, about_first], files)
    assert kept == [machine, kernel]  # the first notebook's project does not want EN2xx about itself
    assert code_ == 1  # the project that wants them is strict: a warning fails
    kept, code_ = filter_by_owner([machine], files[:1])
    assert kept == [] and code_ == 0
