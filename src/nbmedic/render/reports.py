"""``--report FILE`` (repeatable): the results of a batch also written to files, the extension of each
picking its format.  Today ``.xml`` (JUnit XML, ``render.junit``); a new format is a row of ``FORMATS``
and a writer.

The files are checked before anything runs (a known extension, a folder that exists, not a folder
itself), so a long batch never ends in a usage error; each is written atomically once the batch is done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nbmedic.errors import NbmedicError, UsageError
from nbmedic.execute.batch import BatchRun
from nbmedic.notebook.io import atomic_write_bytes
from nbmedic.render.junit import render_junit

__all__ = ["FORMATS", "ReportOptions", "check_reports", "write_reports"]


@dataclass(frozen=True)
class ReportOptions:
    """How the batch went as a whole, and the switches of the formats."""

    seconds: float | None = None  # the batch's wall time
    started: datetime | None = None
    junit_cells: bool = False  # JUnit: one testcase per cell


def _junit(runs: Sequence[BatchRun], options: ReportOptions) -> bytes:
    return render_junit(runs, cells=options.junit_cells, seconds=options.seconds, started=options.started)


Writer = Callable[[Sequence[BatchRun], ReportOptions], bytes]
FORMATS: dict[str, tuple[str, Writer]] = {".xml": ("JUnit XML", _junit)}


def _supported() -> str:
    return ", ".join(FORMATS)


def check_reports(paths: Sequence[str], *, junit_cells: bool = False) -> list[Path]:
    """The report files, each once; UsageError for an unknown extension, a folder, a missing folder, or
    ``--junit-cells`` without a JUnit report."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        suffix = path.suffix.lower()
        if suffix not in FORMATS:
            what = f"the extension {path.suffix!r}" if path.suffix else "no extension"
            raise UsageError(f"--report {raw}: {what} names no report format (supported: {_supported()})")
        if path.is_dir():
            raise UsageError(f"--report {raw}: is a folder; give a file name")
        if not path.parent.is_dir():
            raise UsageError(f"--report {raw}: the folder {path.parent} does not exist")
        if path not in out:
            out.append(path)
    if junit_cells and not any(FORMATS[p.suffix.lower()][1] is _junit for p in out):
        raise UsageError("--junit-cells shapes a JUnit report: add --report FILE.xml")
    return out


def write_reports(paths: Sequence[Path], runs: Sequence[BatchRun], options: ReportOptions) -> None:
    """Write every report (atomically); NbmedicError naming the file when one cannot be written."""
    for path in paths:
        _, writer = FORMATS[path.suffix.lower()]
        try:
            atomic_write_bytes(path, writer(runs, options))
        except OSError as exc:
            raise NbmedicError(f"--report {os.fspath(path)}: cannot write it: {exc.strerror or exc}") from None
