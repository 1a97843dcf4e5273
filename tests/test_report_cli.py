"""``--report FILE`` on check and doctor, and ``nbmedic report DOC.json``: the formats by extension, the
one-line errors for bad reports and bad documents, and the terminal report of a saved document."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runhelpers import make_nb

Run = Callable[..., tuple[int, str, str]]
CLINIC = Path(__file__).resolve().parent.parent / "examples" / "clinic"


def test_check_writes_every_report_and_the_json_one_is_the_document(run_cli: Run, tmp_path: Path) -> None:
    page, sarif, saved = tmp_path / "r.html", tmp_path / "r.sarif", tmp_path / "r.json"
    code_, out, err = run_cli("check", str(CLINIC), "--format", "json", "--report", str(page),
                              "--report", str(sarif), "--report", str(saved))
    assert code_ == 1, err  # the clinic has errors
    doc = json.loads(out)
    assert json.loads(saved.read_text(encoding="utf-8")) == doc
    assert doc["summary"]["files"] == len(doc["files"]) == 24
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert json.loads(sarif.read_text(encoding="utf-8"))["version"] == "2.1.0"


def test_the_terminal_report_of_a_saved_document(run_cli: Run, tmp_path: Path) -> None:
    saved = tmp_path / "r.json"
    code_, out, _ = run_cli("check", str(CLINIC), "--format", "json")
    saved.write_text(out, encoding="utf-8")
    doc = json.loads(out)
    code_, direct, _ = run_cli("check", str(CLINIC))
    code_, text, err = run_cli("report", str(saved))
    assert code_ == 0, err
    errors = doc["summary"]["error"]
    assert f"24 notebooks reported: {errors} error" in text.splitlines()[-1]
    for finding in doc["findings"]:
        assert f"{finding['code']} " in text
    # the same findings as the command printed, under the same names
    assert [line for line in text.splitlines() if "NB0" in line] == \
           [line for line in direct.splitlines() if "NB0" in line]
    code_, verbose, _ = run_cli("report", str(saved), "--verbose")
    assert len(verbose.splitlines()) > len(text.splitlines())


@pytest.mark.parametrize(("content", "words"), [
    (None, "cannot read it"),
    ("{not json", "not JSON"),
    ('{"findings": []}', "not an nbmedic document"),
    ('{"version": 99, "findings": []}', "document version 99; this nbmedic reads version 1"),
    ('{"version": 1, "findings": [{"code": 3}]}', "finding 0 is not a finding"),
    ('{"version": 1, "findings": [], "runs": {}}', "'runs' is not a list"),
])
def test_a_bad_document_is_one_line_exit_2(run_cli: Run, tmp_path: Path, content: str | None, words: str) -> None:
    doc = tmp_path / "doc.json"
    if content is not None:
        doc.write_text(content, encoding="utf-8")
    code_, _, err = run_cli("report", str(doc), "-o", str(tmp_path / "r.html"))
    assert code_ == 2 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(("command", "report", "words"), [
    ("check", "r.xml", "JUnit XML comes from `nbmedic run --report FILE.xml`"),
    ("check", "r.pdf", "names no report format here (supported: .html, .sarif, .json)"),
    ("check", "missing/r.html", "the folder missing does not exist"),
    ("report", "r", "no extension names no report format"),
])
def test_bad_report_files_are_refused_before_anything_runs(run_cli: Run, tmp_path: Path, command: str,
                                                           report: str, words: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    nb = make_nb(tmp_path, "print(1)")
    args = ["check", str(nb), "--report", report] if command == "check" else ["report", "doc.json", "-o", report]
    code_, _, err = run_cli(*args)
    assert code_ == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_a_folder_in_the_way_is_refused_and_an_old_report_is_replaced_whole(run_cli: Run, tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "print(1)")
    blocked = tmp_path / "r.html"
    blocked.mkdir()  # a folder where the file should go
    code_, _, err = run_cli("check", str(nb), "--report", str(blocked))
    assert code_ == 2 and "is a folder" in err
    old = tmp_path / "old.json"
    old.write_text("keep me", encoding="utf-8")
    code_, _, err = run_cli("check", str(nb), "--report", str(old))
    assert code_ == 0 and json.loads(old.read_text(encoding="utf-8"))["version"] == 1  # replaced whole
