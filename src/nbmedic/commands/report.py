"""``nbmedic report DOC.json [-o FILE]...``: render a saved ``--format json`` document (of check, doctor,
run or incidents) as files, the extension of each picking the format (``.html``, ``.sarif``, ``.json``),
or, without ``-o``, as the terminal report."""

from __future__ import annotations

import argparse

from nbmedic.commands.common import write_report_files
from nbmedic.render.document import findings_of, load_document
from nbmedic.render.reports import ReportInput, check_reports
from nbmedic.render.text import render_text


def run(args: argparse.Namespace) -> int:
    outputs = check_reports(args.output, runs=False, option="-o")
    doc = load_document(args.document)
    if outputs:
        write_report_files(outputs, ReportInput(doc))
        return 0
    findings = findings_of(doc)
    files = [f for f in doc.get("files") or [] if isinstance(f, str)]
    files += [p for p in dict.fromkeys(f.path for f in findings if f.path) if p not in files]
    render_text(findings, files=files, verbose=args.verbose, summary="reported")
    return 0
