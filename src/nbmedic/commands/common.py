"""What the reporting commands share: config resolution, notebook discovery and reading, static checks,
output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbmedic.config import Config, ConfigResolver, split_codes
from nbmedic.discover import excluded, iter_notebooks
from nbmedic.errors import UsageError
from nbmedic.findings import Finding, exit_code
from nbmedic.notebook.record import NotebookFile, read_notebook_file
from nbmedic.render.document import build_document, to_json
from nbmedic.render.reports import ReportInput, check_reports, write_reports
from nbmedic.render.sarif import render_sarif
from nbmedic.render.text import render_text


def resolver_from_args(args: argparse.Namespace) -> ConfigResolver:
    """Per-notebook configuration: the nearest ``[tool.nbmedic]`` (or ``--config``), then the CLI options."""
    pyproject = Path(args.config) if getattr(args, "config", None) else None
    if pyproject is not None and not pyproject.is_file():
        raise UsageError(f"--config {pyproject}: no such file")
    overrides = {
        "select": split_codes(args.select, what="--select") if getattr(args, "select", None) else None,
        "ignore": split_codes(args.ignore, what="--ignore") if getattr(args, "ignore", None) else None,
        "strict": getattr(args, "strict", None),
    }
    return ConfigResolver(overrides, pyproject=pyproject)


def discover(paths: Sequence[str], resolver: ConfigResolver) -> list[Path]:
    found = [p for p in iter_notebooks(paths) if not excluded(p.as_posix(), resolver.for_path(p).exclude)]
    if not found:
        raise UsageError(f"no notebooks (*.ipynb) found under {', '.join(paths)}")
    return found


def load_notebooks(paths: Sequence[str], resolver: ConfigResolver) -> list[NotebookFile]:
    """Every notebook named or found under ``paths``, each read once, with its own configuration."""
    return [read_notebook_file(path, resolver.for_path(path)) for path in discover(paths, resolver)]


def kept(findings: Sequence[Finding], config: Config) -> tuple[list[Finding], int]:
    """The findings ``config`` wants and the exit code they imply under it."""
    wanted = [f for f in findings if config.wants(f.code)]
    return wanted, exit_code(wanted, strict=config.strict)


def emit(findings: list[Finding], files: list[str], fmt: str, *, title: str | None = None,
         extra: Mapping[str, Any] | None = None, notes: Mapping[str, str] | None = None,
         verb: str | None = None, noun: str = "notebook", verbose: bool = False) -> dict[str, Any]:
    """Print the report in ``fmt`` (text, json, sarif); the report document, for ``--report`` files.
    ``files`` and the findings' paths are identities, shown by the renderer."""
    doc = build_document(findings, files, extra)
    if fmt == "json":
        sys.stdout.write(to_json(doc))
    elif fmt == "sarif":
        sys.stdout.write(render_sarif(doc))
    else:
        render_text(findings, files=files, title=title, notes=notes, summary=verb, noun=noun,
                    verbose=verbose)
    return doc


def report_files(args: argparse.Namespace, *, runs: bool = False) -> list[Path]:
    """The ``--report`` files of a command, checked before it does anything."""
    return check_reports(getattr(args, "report", None) or [], runs=runs,
                         junit_cells=bool(getattr(args, "junit_cells", False)))


def parsed(files: Sequence[NotebookFile]) -> dict[str, dict[str, Any]]:
    """The notebooks a command has already read, by name: what a report shows of them, not read again."""
    return {f.name: f.nb for f in files if f.nb is not None}


def write_report_files(paths: Sequence[Path], report: ReportInput) -> None:
    if paths:
        write_reports(paths, report)
