"""``--report FILE`` (repeatable): a command's results also written to files, the extension of each picking
its format: ``.html`` (a self-contained page, ``render.html``), ``.sarif`` (SARIF 2.1.0 for code scanning,
``render.sarif``), ``.json`` (the ``--format json`` document) and, for ``nbmedic run``, ``.xml`` (JUnit
XML, ``render.junit``).  A new format is a row of ``FORMATS`` and a writer.

Every writer but JUnit's renders the report document (``render.document``); the HTML page also shows the
notebooks' cells, which it gets through ``ReportInput.notebook`` (the executed notebook a run holds in
memory, else the file on disk).

The files are checked before anything runs (a known extension, a folder that exists, not a folder
itself), so a long batch never ends in a usage error; each is written atomically once the command is done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nbmedic.config import Config
from nbmedic.errors import NbmedicError, UsageError
from nbmedic.execute.batch import BatchRun
from nbmedic.execute.result import RunResult
from nbmedic.notebook.io import atomic_write_bytes
from nbmedic.notebook.record import read_notebook_file
from nbmedic.render.document import to_json
from nbmedic.render.html import render_html
from nbmedic.render.junit import render_junit
from nbmedic.render.sarif import render_sarif

__all__ = ["FORMATS", "ReportInput", "ReportOptions", "check_reports", "executed", "notebook_reader",
           "write_reports"]


@dataclass(frozen=True)
class ReportOptions:
    """How the batch went as a whole, and the switches of the formats."""

    seconds: float | None = None  # the batch's wall time
    started: datetime | None = None
    junit_cells: bool = False  # JUnit: one testcase per cell


NotebookReader = Callable[[str], "dict[str, Any] | None"]


def notebook_reader(in_memory: Mapping[str, dict[str, Any]] | None = None) -> NotebookReader:
    """The notebook at a path: from ``in_memory`` (executed notebooks by output path and by input path),
    else read from disk; None when it cannot be read."""
    held = dict(in_memory or {})

    def read(path: str) -> dict[str, Any] | None:
        if path in held:
            return held[path]
        try:
            return read_notebook_file(Path(path), Config()).nb
        except OSError:
            return None

    return read


def executed(results: Iterable[RunResult]) -> dict[str, dict[str, Any]]:
    """The executed notebooks runs hold in memory, by input path and by output path."""
    out: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.nb is not None:
            out[result.path] = result.nb
            if result.output:
                out[result.output] = result.nb
    return out


@dataclass(frozen=True)
class ReportInput:
    """What a report is made of: the document, and for JUnit the runs themselves."""

    doc: Mapping[str, Any]
    runs: Sequence[BatchRun] = ()
    options: ReportOptions = field(default_factory=ReportOptions)
    notebook: NotebookReader = field(default_factory=notebook_reader)


def _junit(report: ReportInput) -> bytes:
    options = report.options
    return render_junit(report.runs, cells=options.junit_cells, seconds=options.seconds, started=options.started)


def _html(report: ReportInput) -> bytes:
    return render_html(report.doc, notebook=report.notebook).encode("utf-8")


def _sarif(report: ReportInput) -> bytes:
    return render_sarif(report.doc).encode("utf-8")


def _json(report: ReportInput) -> bytes:
    return to_json(report.doc).encode("utf-8")


Writer = Callable[[ReportInput], bytes]
FORMATS: dict[str, tuple[str, Writer]] = {
    ".html": ("HTML", _html), ".sarif": ("SARIF", _sarif), ".json": ("JSON", _json), ".xml": ("JUnit XML", _junit),
}
_RUN_ONLY = {".xml"}  # made from the runs themselves, which only ``nbmedic run`` has


def _supported(runs: bool) -> str:
    return ", ".join(ext for ext in FORMATS if runs or ext not in _RUN_ONLY)


def check_reports(paths: Sequence[str], *, junit_cells: bool = False, runs: bool = True,
                  option: str = "--report") -> list[Path]:
    """The report files, each once; UsageError for an unknown extension (``runs``: JUnit allowed), a
    folder, a missing folder, or ``--junit-cells`` without a JUnit report."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        suffix = path.suffix.lower()
        if suffix not in FORMATS or (suffix in _RUN_ONLY and not runs):
            what = f"the extension {path.suffix!r}" if path.suffix else "no extension"
            more = " (JUnit XML comes from `nbmedic run --report FILE.xml`)" if suffix in _RUN_ONLY else ""
            raise UsageError(f"{option} {raw}: {what} names no report format here (supported: "
                             f"{_supported(runs)}){more}")
        if path.is_dir():
            raise UsageError(f"{option} {raw}: is a folder; give a file name")
        if not path.parent.is_dir():
            raise UsageError(f"{option} {raw}: the folder {path.parent} does not exist")
        if path not in out:
            out.append(path)
    if junit_cells and not any(p.suffix.lower() == ".xml" for p in out):
        raise UsageError("--junit-cells shapes a JUnit report: add --report FILE.xml")
    return out


def write_reports(paths: Sequence[Path], report: ReportInput, *, option: str = "--report") -> None:
    """Write every report (atomically); NbmedicError naming the file when one cannot be written."""
    for path in paths:
        _, writer = FORMATS[path.suffix.lower()]
        try:
            atomic_write_bytes(path, writer(report))
        except OSError as exc:
            raise NbmedicError(f"{option} {os.fspath(path)}: cannot write it: {exc.strerror or exc}") from None
