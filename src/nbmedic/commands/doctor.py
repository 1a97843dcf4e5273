"""``nbmedic doctor PATH...``: the main command; every probe, one readable report.

Probes, in order: the static checks of every notebook, then a monitored run of every notebook that
can run (``--no-run`` skips it).  Runs write nothing: the user's files are only read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from nbmedic.commands.common import discover, emit, resolver_from_args, static_findings
from nbmedic.config import ConfigResolver
from nbmedic.errors import UsageError
from nbmedic.findings import Finding

# Sane limits for an unattended diagnosis; a notebook's metadata.nbmedic or pyproject can change them.
DOCTOR_DEFAULTS = {"cell_timeout": 120.0, "timeout": 600.0, "stall_after": 30.0}
# A notebook with one of these cannot be executed meaningfully: its static finding already says why.
BLOCKING = ("NB000", "NB001", "NB002", "NB003", "NB031")


def runnable(paths: list[Path], shown: list[str], findings: list[Finding]) -> list[int]:
    """Indexes of the notebooks worth executing."""
    blocked = {f.path for f in findings if f.code in BLOCKING}
    return [i for i, name in enumerate(shown) if name not in blocked]


def require_lock(resolver: ConfigResolver) -> Callable[[Path], bool]:
    def wanted(path: Path) -> bool:
        extra = resolver.for_path(path).extra
        value = extra.get("require-lock", extra.get("require_lock", False))
        if not isinstance(value, bool):
            raise UsageError(f"[tool.nbmedic] require-lock: expected true or false, got {value!r}")
        return value

    return wanted


def environment_findings(paths: list[Path], shown: list[str], static: list[Finding],
                         resolver: ConfigResolver, *, launch_kernels: bool = True,
                         memory_limit: int | None = None) -> list[Finding]:
    """Kernels, interpreters, environment locks, IPython start-up and resources of the notebooks that parse."""
    from nbmedic.envs import probes
    from nbmedic.notebook.io import NotebookReadError, read_notebook

    unreadable = {f.path for f in static if f.code in ("NB000", "NB001", "NB002")}
    notebooks = []
    for path, name in zip(paths, shown):
        if name in unreadable:
            continue
        try:
            notebooks.append((path, read_notebook(path)[0]))
        except (OSError, NotebookReadError):
            continue
    names = probes.kernel_names(notebooks)
    found = probes.kernel_findings(names)
    found.extend(probes.drift(notebooks, require_lock(resolver)))
    if launch_kernels:
        found.extend(probes.ipython_findings(names, cwd=str(paths[0].parent if paths else Path.cwd())))
    found.extend(probes.resource_findings(notebooks, memory_limit=memory_limit))
    wanted = resolver.for_path(paths[0]) if paths else None
    return [f for f in found if wanted is None or wanted.wants(f.code)]


def run_doctor(args: argparse.Namespace) -> int:
    from nbmedic.checks.engine import display_path
    from nbmedic.findings import exit_code

    resolver = resolver_from_args(args)
    paths = discover(args.paths, resolver)
    shown = [display_path(p) for p in paths]
    findings, code = static_findings(paths, resolver)
    notes: dict[str, str] = {}
    extra: dict[str, object] = {}
    if not args.no_env:
        from nbmedic.config import parse_size

        limit = parse_size(args.memory_limit, what="--memory-limit") if args.memory_limit else None
        found = environment_findings(paths, shown, findings, resolver, launch_kernels=not args.no_run,
                                     memory_limit=limit)
        code = max(code, exit_code(found, strict=False))
        findings.extend(found)
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
