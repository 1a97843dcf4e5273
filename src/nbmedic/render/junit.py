"""JUnit XML (``nbmedic run --report results.xml``), the test report format of GitHub, GitLab and Jenkins.

One ``<testsuites>`` holding one ``<testsuite name="nbmedic run">``; in it one ``<testcase>`` per notebook
run (each grid combination is a run), or with ``cells=True`` one per code cell:

* ``classname``: the notebook's path as dots, without ``.ipynb`` (``examples.clinic.report``), so a CI
  page groups the runs (and the cells) of one notebook under its folder; ``file``: the notebook's path;
* ``name``: ``report.ipynb`` or ``report.ipynb [alpha=0.1,n=100]``; per cell ``cell 3 [id abc]`` (and the
  combination in brackets);
* ``time``: seconds of the run (kernel start and shutdown included), per cell its wall time;
* one ``<failure message="RN101: …" type="RN101">`` per error finding, its text the finding's location,
  message, evidence and fix; the findings are those the command kept, so the report agrees with the exit
  code;
* ``<skipped>`` for a notebook that did not start without an error finding, a cell tagged
  ``skip-execution`` or empty, and cells not run after a failure; a notebook that could not start because
  of an error (an unreadable file, a missing kernel) is a failure;
* ``<system-out>``: the warnings and info findings;
* ``<properties>``: the parameters a run was given (``-p``, ``-f``, the grid's combination).

Text from notebooks and kernels loses terminal escapes and the characters XML 1.0 cannot hold.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.evidence import layout
from nbmedic.execute.batch import BatchRun
from nbmedic.execute.grid import value_text
from nbmedic.execute.result import CellRecord, RunResult
from nbmedic.findings import Finding, sort_findings
from nbmedic.notebook.cells import SKIP_TAG, cell_tags
from nbmedic.render.paths import display_path
from nbmedic.render.text import format_value

__all__ = ["SUITE_NAME", "render_junit"]

SUITE_NAME = "nbmedic run"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Text XML 1.0 can carry: no terminal escapes, no control characters, no lone surrogates."""
    return _NOT_XML.sub("?", strip_ansi(text))


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


def classname(notebook: str) -> str:
    """``examples.clinic.report`` for ``examples/clinic/report.ipynb`` (shown relative to the working folder)."""
    path = PurePath(display_path(notebook))
    parts = [p for p in path.parts if p not in (path.anchor, ".", "..")]
    if parts and parts[-1].lower().endswith(".ipynb"):
        parts[-1] = parts[-1][: -len(".ipynb")]
    return _xml(".".join(parts))


def _where(f: Finding) -> str:
    if f.cell is None:
        return "file"
    return f"cell {f.cell}" + (f" (id {f.cell_id})" if f.cell_id else "")


def finding_text(f: Finding) -> str:
    """A finding as plain lines: where and what, every evidence value (multi-line ones in full), the fix."""
    lines = [f"{f.code} {f.severity}, {_where(f)}: {f.message}"]
    declared = layout(f.code)
    for key in [k for k in declared if k in f.evidence] + [k for k in f.evidence if k not in declared]:
        value = f.evidence[key]
        if value is None or value in ("", [], {}):
            continue
        if isinstance(value, str) and "\n" in value.strip():
            lines.append(f"{key}:")
            lines.extend(f"    {line}" for line in value.strip("\n").splitlines())
        else:
            lines.append(f"{key}: {format_value(value, declared.get(key, 'text'))}")
    if f.fix:
        lines.append(f"fix: {f.fix}")
    return _xml("\n".join(lines))


def _case(cls: str, name: str, seconds: float, file: str, parameters: Mapping[str, Any]) -> ET.Element:
    case = ET.Element("testcase", classname=cls, name=_xml(name), time=_seconds(seconds), file=_xml(file))
    if parameters:
        props = ET.SubElement(case, "properties")
        for key, value in parameters.items():
            ET.SubElement(props, "property", name=_xml(str(key)), value=_xml(value_text(value)))
    return case


def _outcome(case: ET.Element, findings: Iterable[Finding], skipped: str | None = None) -> None:
    """Failures for the error findings, else ``<skipped>`` when ``skipped`` says why; the rest as output."""
    ordered = sort_findings(findings)
    errors = [f for f in ordered if f.severity == "error"]
    for f in errors:
        failure = ET.SubElement(case, "failure", message=_xml(f"{f.code}: {f.message}"), type=f.code)
        failure.text = finding_text(f)
    if not errors and skipped is not None:
        ET.SubElement(case, "skipped", message=_xml(skipped))
    others = [f for f in ordered if f.severity != "error"]
    if others:
        ET.SubElement(case, "system-out").text = "\n\n".join(finding_text(f) for f in others)


def _not_started(run: BatchRun) -> str | None:
    if run.result.status != "not-started":
        return None
    why = next((f.message for f in run.findings), "")
    return "not started" + (f": {why}" if why else "")


def _notebook_name(run: BatchRun) -> str:
    name = PurePath(run.notebook).name
    return f"{name} [{run.label}]" if run.label else name


def _notebook_case(run: BatchRun) -> ET.Element:
    result = run.result
    case = _case(classname(run.notebook), _notebook_name(run), result.duration, display_path(run.notebook),
                 run.parameters)
    _outcome(case, run.findings, _not_started(run))
    return case


def _skip_reason(record: CellRecord, result: RunResult) -> str | None:
    if record.status == "not-run":
        return "not run: the run had stopped before this cell"
    if record.status != "skipped":
        return None
    cells = (result.nb or {}).get("cells")
    cell = cells[record.index] if isinstance(cells, list) and 0 <= record.index < len(cells) else None
    return f"tagged {SKIP_TAG}" if SKIP_TAG in cell_tags(cell) else "empty cell, nothing to run"


def _cell_cases(run: BatchRun) -> list[ET.Element]:
    """One testcase per code cell; the notebook's own testcase too when findings concern no cell of it, or
    when it has no cells on record (it did not start)."""
    result, cls, file = run.result, classname(run.notebook), display_path(run.notebook)
    suffix = f" [{run.label}]" if run.label else ""
    indices = {record.index for record in result.cells}
    cases = []
    for record in result.cells:
        name = f"cell {record.index}" + (f" [id {record.id}]" if record.id else "") + suffix
        case = _case(cls, name, record.wall, file, run.parameters)
        _outcome(case, [f for f in run.findings if f.cell == record.index], _skip_reason(record, result))
        cases.append(case)
    loose = [f for f in run.findings if f.cell not in indices]
    if not result.cells or any(f.severity != "info" for f in loose):
        case = _case(cls, _notebook_name(run), result.duration, file, run.parameters)
        _outcome(case, loose, _not_started(run))
        cases.insert(0, case)
    return cases


def _suite(cases: Sequence[ET.Element], seconds: float, timestamp: datetime) -> ET.Element:
    def count(tag: str) -> str:
        return str(sum(1 for case in cases if case.find(tag) is not None))

    suite = ET.Element("testsuite", name=SUITE_NAME, tests=str(len(cases)), failures=count("failure"), errors="0",
                       skipped=count("skipped"), time=_seconds(seconds),
                       timestamp=timestamp.astimezone(timezone.utc).replace(tzinfo=None).isoformat(
                           timespec="seconds"), hostname=_xml(socket.gethostname()))
    suite.extend(cases)
    return suite


def render_junit(runs: Sequence[BatchRun], *, cells: bool = False, seconds: float | None = None,
                 started: datetime | None = None) -> bytes:
    """The JUnit XML document (UTF-8, with its declaration) of a batch's runs; ``seconds``: the batch's
    wall time (default: the sum of the runs'), ``started``: when it began (default: now)."""
    cases: list[ET.Element] = []
    for run in runs:
        cases.extend(_cell_cases(run) if cells else [_notebook_case(run)])
    total = seconds if seconds is not None else sum(run.result.duration for run in runs)
    suite = _suite(cases, total, started or datetime.now(timezone.utc))
    root = ET.Element("testsuites", name="nbmedic", tests=suite.get("tests", "0"),
                      failures=suite.get("failures", "0"), errors="0", time=_seconds(total))
    root.append(suite)
    ET.indent(root, space="  ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
