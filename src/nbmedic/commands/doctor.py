"""``nbmedic doctor PATH...``: the main command; every probe, one readable report.

Probes, in order: the static checks of every notebook, then a monitored run of every notebook that
can run (``--no-run`` skips it).  Runs write nothing: the user's files are only read.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nbmedic.commands.common import discover, emit, resolver_from_args, static_findings
from nbmedic.findings import Finding

# Sane limits for an unattended diagnosis; a notebook's metadata.nbmedic or pyproject can change them.
DOCTOR_DEFAULTS = {"cell_timeout": 120.0, "timeout": 600.0, "stall_after": 30.0}
# A notebook with one of these cannot be executed meaningfully: its static finding already says why.
BLOCKING = ("NB000", "NB001", "NB002", "NB003", "NB031")


def runnable(paths: list[Path], shown: list[str], findings: list[Finding]) -> list[int]:
    """Indexes of the notebooks worth executing."""
    blocked = {f.path for f in findings if f.code in BLOCKING}
    return [i for i, name in enumerate(shown) if name not in blocked]


def run_doctor(args: argparse.Namespace) -> int:
    from nbmedic.checks.engine import display_path
    from nbmedic.findings import exit_code

    resolver = resolver_from_args(args)
    paths = discover(args.paths, resolver)
    shown = [display_path(p) for p in paths]
    findings, code = static_findings(paths, resolver)
    notes: dict[str, str] = {}
    extra: dict[str, object] = {}
    if not args.no_run:
        from nbmedic.commands.run import base_options, cli_overrides, execute, jobs_from_args, run_note

        chosen = runnable(paths, shown, findings)
        overrides = cli_overrides(args)
        jobs = [(shown[i], base_options(resolver, paths[i], **DOCTOR_DEFAULTS), None, overrides) for i in chosen]
        if args.jobs is None:
            args.jobs = min(4, os.cpu_count() or 1)
        results = execute(jobs, jobs_from_args(args, len(jobs))) if jobs else []
        for i, result in zip(chosen, results):
            config = resolver.for_path(paths[i])
            found = [f for f in result.findings if config.wants(f.code)]
            code = max(code, exit_code(found, strict=config.strict))
            findings.extend(found)
            notes[shown[i]] = "ran: " + run_note(result)
        extra["runs"] = [r.to_dict(timeline=False) for r in results]
    title = f"nbmedic doctor: {len(paths)} notebook{'s' if len(paths) != 1 else ''}"
    emit(findings, shown, args.format, title=title, notes=notes, extra=extra, verb="examined")
    return code
