"""The text report of the whole clinic, kept as snapshots: the folded report (a screen's worth: one
headline, the key facts and the fix per finding, errors first within a file) at 100 columns (piped) and
at 80 (a terminal), and ``--verbose`` (every fact).

The doctor runs the clinic once (``--format json``); what varies between runs and machines (durations,
memory figures, pids, thread ids, library frames of a stack, the interpreter's location) is replaced in
that document by placeholders and fixed values *before* it is rendered, so the clipping of long lines is
the same on every machine; everything else must match the files in ``tests/snapshots/``.  After an
intended change of the report, rewrite them with
``NBMEDIC_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_report_snapshot.py`` and review the diff.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from nbmedic.evidence import UnitSpec, layout
from nbmedic.execute.batch import run_note
from nbmedic.execute.result import CellRecord, RunResult
from nbmedic.findings import Finding
from nbmedic.render.document import findings_of
from nbmedic.render.text import format_value, render_text

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "snapshots"

_VOLATILE = [
    (re.compile(r"-?\d[\d,]*(?:\.\d+)? (?:B|KiB|MiB|GiB)\b"), "<size>"),
    (re.compile(r"\b\d[\d,]*(?:\.\d+)? s\b"), "<seconds>"),
    (re.compile(r"Thread 0x[0-9a-f]+"), "Thread <id>"),
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "<cell file>"),
    (re.compile(r'^(\s+)File "(?!<cell file>)[^"]+", line \d+ in \S+$', re.MULTILINE), r"\1<library frame>"),
    (re.compile(r"\(\+<size>\)"), "(+<size>)"),
]
_FIXED = {"bytes": 1 << 20, "seconds": 1.0}  # the run figures of the header notes


def normalise(text: str, *, figures: bool = True) -> str:
    """Placeholders for what varies (``figures=False``: not for sizes and durations)."""
    # longest first, so neither of the checkout and the interpreter's prefix eats the other's name when
    # one starts with the other (a venv inside the checkout, or /tmp/fresh beside /tmp/freshclone)
    paths = {p: "<prefix>" for p in (sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix))}
    paths[str(ROOT)] = "<repo>"
    for path in sorted(paths, key=len, reverse=True):
        text = text.replace(path, paths[path])
    # the interpreter's name depends on how the suite was started (`python` or `python3 -m pytest`)
    text = re.sub(r"<prefix>/bin/python[0-9.]*\b", "<python>", text)
    for pattern, repl in _VOLATILE[0 if figures else 2:]:
        text = pattern.sub(repl, text)
    return text


class _Steady:
    """A finding's figures in bytes and seconds replaced by steady ones (the n-th figure: n x 100 MiB or
    n s, so no two are alike), each original figure replaced the same way in the message."""

    def __init__(self) -> None:
        self.subs: dict[str, str] = {}  # an original figure as text -> its steady one
        self.n = 0

    def value(self, value: Any, unit: UnitSpec) -> Any:
        if isinstance(value, Mapping):
            return {k: self.value(v, unit.get(str(k), "text") if isinstance(unit, Mapping) else unit)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, unit) for v in value]
        if isinstance(value, str):
            return normalise(value, figures=False)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and unit in ("bytes", "seconds"):
            self.n += 1
            steady = self.n * 100 * (1 << 20) if unit == "bytes" else float(self.n)
            self.subs.setdefault(format_value(value, unit), format_value(steady, unit))
            if unit == "seconds":  # a time measured just past a limit (3.02 s after a 3 s timeout) reads as
                # the limit in the message, whichever of the two comes first in the evidence
                self.subs.setdefault(format_value(float(int(value)), unit), format_value(steady, unit))
            return steady
        return value

    def text(self, text: str) -> str:
        for old in sorted(self.subs, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w]|\.\d)", self.subs[old], text)
        return normalise(text, figures=False)


_PER_RUN = {"pid": 4242, "threads": 2}  # facts that differ from run to run
_GREW_MOST = re.compile(r"(memory grew most in cell \d+ \(\+[^)]*\))(?:, cell \d+ \(\+[^)]*\))+")


def _steady_finding(f: Finding) -> Finding:
    declared = layout(f.code)
    steady = _Steady()
    evidence = {k: _PER_RUN.get(k, steady.value(v, declared.get(k, "text"))) for k, v in f.evidence.items()}
    message = _GREW_MOST.sub(r"\1", f.message)  # whether a second cell grew enough to be named varies
    return Finding(code=f.code, severity=f.severity, path=f.path, message=steady.text(message), cell=f.cell,
                   cell_id=f.cell_id, evidence=evidence, fix=normalise(f.fix, figures=False))


def _notes(doc: Mapping[str, Any]) -> dict[str, str]:
    """The doctor's header notes (``ran: ...``), from the runs of the document, with steady figures."""
    notes = {}
    for run in doc.get("runs") or []:
        cells = [CellRecord(index=c["index"], id=c["id"], status=c["status"]) for c in run["cells"]]
        result = RunResult(path=run["path"], status=run["status"], duration=1.0, cells=cells,
                           peak_rss=_FIXED["bytes"] if run.get("peak_rss") else 0)
        notes[run["path"]] = "ran: " + run_note(result)
    return notes


def _doctor(tmp: Path, *args: str) -> str:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "JUPYTER_DATA_DIR": str(tmp)}  # the user's own kernels would change NB031's list
    env.pop("NBMEDIC_STRICT_EVIDENCE", None)  # the report as users see it
    env.pop("COLUMNS", None)
    proc = subprocess.run([sys.executable, "-m", "nbmedic", "doctor", "--no-env", *args, "examples/clinic"],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Any]:
    doc: dict[str, Any] = json.loads(_doctor(tmp_path_factory.mktemp("jupyter"), "--format", "json"))
    return doc


def _render(doc: Mapping[str, Any], *, width: int, verbose: bool = False) -> tuple[str, str]:
    """The report of the steadied document, as printed and with placeholders for the fixed figures."""
    stream = io.StringIO()
    render_text([_steady_finding(f) for f in findings_of(doc)], files=doc["files"], stream=stream,
                title=f"nbmedic doctor: {len(doc['files'])} notebooks", notes=_notes(doc), summary="examined",
                verbose=verbose, width=width)
    return stream.getvalue(), normalise(stream.getvalue())  # the steady figures are placeholders too


def _matches(report: str, name: str) -> None:
    snapshot = SNAPSHOTS / name
    if os.environ.get("NBMEDIC_UPDATE_SNAPSHOTS"):
        snapshot.write_text(report, encoding="utf-8")
    expected = snapshot.read_text(encoding="utf-8")
    assert report == expected, f"the clinic's text report changed ({name}); see the module docstring"


@pytest.mark.parametrize(("width", "name"), [(100, "clinic_doctor.txt"), (80, "clinic_doctor_80.txt")])
def test_clinic_text_report_matches_the_snapshot(clinic: Mapping[str, Any], width: int, name: str) -> None:
    printed, report = _render(clinic, width=width)
    _matches(report, name)
    assert max(len(line) for line in printed.splitlines()) == width  # long lines clipped to the width
    lines = report.splitlines()
    headers = [line for line in lines if line[:2] in ("✓ ", "✗ ", "! ", "· ")]
    names = [line[2:].split("  ")[0] for line in headers]
    assert len(names) == len(set(names)) == 24  # one header per notebook (one of them healthy)
    assert len(lines) < 100, len(lines)  # a screen's worth, not a line per fact
    # RN101's message names its figures past the clipping point: the facts line shows them
    assert "peak_rss: <size> · limit: <size> · limits: --memory-limit=<size>, " in report  # bytes, in units
    assert "traceback: Cell In[2], line 1: batch = settings[" in report  # the innermost frame
    assert re.search(r"^24 notebooks examined: 13 errors, \d+ warnings, \d+ info · \d+ runs, \d+ failed, "
                     r"<seconds>$", lines[-1]), lines[-1]


def test_clinic_verbose_report_shows_every_fact(clinic: Mapping[str, Any]) -> None:
    printed, report = _render(clinic, width=100, verbose=True)
    _matches(report, "clinic_doctor_verbose.txt")
    assert "limit: 10,000 lines" in report  # NB022's limit is lines, not bytes
    assert "killed_by_watchdog: yes" in report and "cgroup_oom_kills: 0" in report  # beyond the first facts
    assert re.search(r'^ +File "<cell file>", line 2 in parse_buffer$', report, re.MULTILINE)  # the stack
    assert "limits: --memory-limit=<size>, the machine's RAM=<size>" in report  # a mapping of bytes, in units
    assert "rss_trend: rss_first=<size>, rss_last=<size>, rss_max=<size>, seconds=<seconds>,\n" \
           "      rss_growth_per_s=<size>\n" in report
    assert not re.search(r"\d{5,}", report)  # no raw byte count (nor any long raw figure) anywhere
    assert max(len(line) for line in printed.splitlines()) <= 100  # wrapped, not clipped:
    assert not re.search(r"\S…$", printed, re.MULTILINE)


def test_the_doctor_prints_a_screen_of_at_most_100_columns(tmp_path: Path) -> None:
    """The command itself, piped: the same report (not normalised), never wider than 100 columns."""
    lines = _doctor(tmp_path).splitlines()
    assert len(lines) < 100 and max(len(line) for line in lines) <= 100, (len(lines), max(map(len, lines)))
    assert lines[0] == "nbmedic doctor: 24 notebooks" and lines[-1].startswith("24 notebooks examined: 13 errors")
    assert not any("\x1b" in line for line in lines)  # no colour when piped
