"""``nbmedic doctor PATH...``: the main command; every probe, one readable report.

Probes, in order: the static checks of every notebook, the environment probes of the kernels and
environments they use and the incidents monitored kernels recorded for them in the last
``INCIDENT_DAYS`` days (``--no-env`` skips them), then a monitored run of every notebook that can run
(``--no-run`` skips it).  Each notebook is read once; runs write nothing: the user's files are only read.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

from nbmedic.checks import check_notebooks
from nbmedic.commands.common import (
    emit,
    kept,
    load_notebooks,
    parsed,
    report_files,
    resolver_from_args,
    write_report_files,
)
from nbmedic.commands.runargs import cli_overrides, jobs_from_args
from nbmedic.config import Config
from nbmedic.envs import probes
from nbmedic.envs.server import JupyterSetup
from nbmedic.execute.batch import execute, run_note
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.options import project_options
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding, exit_code
from nbmedic.live.incidents import incident_findings, list_incidents
from nbmedic.notebook.record import NotebookFile
from nbmedic.render.document import machine_facts
from nbmedic.render.reports import ReportInput, executed, notebook_reader
from nbmedic.units import parse_size

# Sane limits for an unattended diagnosis; a notebook's metadata.nbmedic or pyproject can change them.
DOCTOR_DEFAULTS = {"cell_timeout": 120.0, "timeout": 600.0, "stall_after": 30.0}
# A notebook with one of these cannot be executed meaningfully: its static finding already says why.
BLOCKING = ("NB000", "NB001", "NB002", "NB003", "NB031")
# Kernel deaths recorded by monitored kernels (`nbmedic monitor`) this recent are reported (RN100-RN103).
INCIDENT_DAYS = 7


def runnable(files: Sequence[NotebookFile], findings: Sequence[Finding]) -> list[NotebookFile]:
    """The notebooks worth executing: parsed, and no static finding that blocks a run."""
    blocked = {f.path for f in findings if f.code in BLOCKING}
    return [file for file in files if file.nb is not None and file.name not in blocked]


def filter_by_owner(found: Sequence[Finding], files: Sequence[NotebookFile]) -> tuple[list[Finding], int]:
    """Each finding under the configuration of the notebook it is about; a finding about a kernel or the
    machine is kept when some notebook's configuration wants it (strict if one of those is strict)."""
    by_name = {file.name: file.config for file in files}
    configs: list[Config] = list({id(c): c for c in by_name.values()}.values())
    out: list[Finding] = []
    code = 0
    for finding in found:
        owner = by_name.get(finding.path) if finding.path is not None else None
        candidates = [owner] if owner is not None else configs
        wanting = [c for c in candidates if c.wants(finding.code)]
        if not wanting:
            continue
        out.append(finding)
        code = max(code, exit_code([finding], strict=any(c.strict for c in wanting)))
    return out, code


def environment_findings(files: Sequence[NotebookFile], *, launch_kernels: bool = True,
                         memory_limit: int | None = None,
                         server_setup: JupyterSetup | None = None) -> tuple[list[Finding], int]:
    """Kernels, interpreters, environment locks, IPython start-up and resources of the notebooks that parse,
    and the Jupyter installation."""
    notebooks = [(file.path, file.nb) for file in files if file.nb is not None]
    names = probes.kernel_names(notebooks)
    found = probes.kernel_findings(names)
    found.extend(probes.drift(notebooks, {file.path: file.config.require_lock for file in files}))
    if launch_kernels:
        found.extend(probes.ipython_findings(names, cwd=str(files[0].path.parent if files else Path.cwd())))
    found.extend(probes.resource_findings(notebooks, memory_limit=memory_limit))
    found.extend(probes.server_findings(server_setup))
    return filter_by_owner(found, files)


def live_incident_findings(files: Sequence[NotebookFile], *, now: float | None = None) -> tuple[list[Finding], int]:
    """The deaths of live (monitored) kernels of these notebooks in the last ``INCIDENT_DAYS`` days."""
    since = (time.time() if now is None else now) - INCIDENT_DAYS * 86400
    records = list_incidents(since=since)  # the store is read once, whatever the number of notebooks
    if not records:
        return [], 0
    found = [f for file in files for f in incident_findings(file.name, since, nb=file.nb, records=records)]
    return filter_by_owner(found, files)


def run_findings(jobs: list[RunJob], workers: int, files: Sequence[NotebookFile],
                 notes: dict[str, str]) -> tuple[list[Finding], int, list[RunResult]]:
    """Run ``jobs`` (``workers`` at a time) and keep what each notebook's configuration wants."""
    results = execute(jobs, workers) if jobs else []
    config = {file.name: file.config for file in files}
    findings: list[Finding] = []
    code = 0
    for result in results:
        found, worst = kept(result.findings, config[result.path])
        findings.extend(found)
        code = max(code, worst)
        notes[result.path] = "ran: " + run_note(result)
    return findings, code, results


def run(args: argparse.Namespace) -> int:
    reports = report_files(args)
    files = load_notebooks(args.paths, resolver_from_args(args))
    findings, code = check_notebooks(files)
    notes: dict[str, str] = {}
    extra: dict[str, object] = {"machine": machine_facts()}
    results: list[RunResult] = []
    if not args.no_env:
        limit = parse_size(args.memory_limit, what="--memory-limit") if args.memory_limit else None
        found, worst = environment_findings(files, launch_kernels=not args.no_run, memory_limit=limit,
                                            server_setup=getattr(args, "server_setup", None))
        findings.extend(found)
        code = max(code, worst)
        found, worst = live_incident_findings(files)
        findings.extend(found)
        code = max(code, worst)
    if not args.no_run:
        overrides = cli_overrides(args)
        jobs = [RunJob(file.name, project_options(file.config, **DOCTOR_DEFAULTS), nb=file.nb,
                       overrides=overrides) for file in runnable(files, findings)]
        workers = jobs_from_args(args, len(jobs), default=min(4, os.cpu_count() or 1))
        found, worst, results = run_findings(jobs, workers, files, notes)
        extra["runs"] = [r.to_dict() for r in results]
        findings.extend(found)
        code = max(code, worst)
    title = f"nbmedic doctor: {len(files)} notebook{'s' if len(files) != 1 else ''}"
    doc = emit(findings, [f.name for f in files], args.format, title=title, notes=notes, extra=extra,
               verb="examined", verbose=args.verbose)
    write_report_files(reports, ReportInput(doc, notebook=notebook_reader({**parsed(files), **executed(results)})))
    return code
