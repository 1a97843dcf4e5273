"""``nbmedic check PATH...``: static rules over notebook files; never executes notebook code."""

from __future__ import annotations

import argparse

from nbmedic.checks import check_notebooks
from nbmedic.commands.common import (
    emit,
    load_notebooks,
    parsed,
    report_files,
    resolver_from_args,
    write_report_files,
)
from nbmedic.render.reports import ReportInput, notebook_reader


def run(args: argparse.Namespace) -> int:
    reports = report_files(args)
    files = load_notebooks(args.paths, resolver_from_args(args))
    findings, code = check_notebooks(files)
    doc = emit(findings, [f.name for f in files], args.format, verbose=args.verbose)
    write_report_files(reports, ReportInput(doc, notebook=notebook_reader(parsed(files))))
    return code
