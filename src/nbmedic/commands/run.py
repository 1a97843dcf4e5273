"""``nbmedic run NB...``: execute notebooks in fresh, monitored kernels and explain every failure.

The executed notebook goes to a new file (``NAME.out.ipynb`` by default, ``-o``, ``--output-dir``)
or replaces the input with ``--in-place``; it is written also when the run fails.  Options come from
the CLI, then each notebook's ``metadata.nbmedic``, then ``[tool.nbmedic.run]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbmedic.commands.common import emit, kept, resolver_from_args
from nbmedic.commands.runargs import cli_overrides, jobs_from_args, scheduler_from_args
from nbmedic.envs.probes import drift
from nbmedic.errors import UsageError
from nbmedic.execute.batch import execute, run_note
from nbmedic.execute.compare import compare_outputs
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.options import project_options
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding
from nbmedic.notebook.record import NotebookFile, read_notebook_file


def default_output(path: Path) -> Path:
    """``NAME.out.ipynb`` next to ``NAME.ipynb``."""
    stem = path.name[: -len(".ipynb")] if path.name.lower().endswith(".ipynb") else path.name
    return path.with_name(f"{stem}.out.ipynb")


def output_for(path: Path, args: argparse.Namespace) -> Path:
    if getattr(args, "in_place", False):
        return path
    if getattr(args, "output", None):
        return Path(args.output)
    if getattr(args, "output_dir", None):
        return Path(args.output_dir) / path.name
    return default_output(path)


def _debug_file(args: argparse.Namespace, path: Path, many: bool) -> str | None:
    debug = getattr(args, "debug", None)
    if not debug or not many:
        return debug
    base = Path(debug)
    return str(base.with_name(f"{base.stem}.{path.stem}{base.suffix or '.jsonl'}"))


def drift_warnings(files: Sequence[NotebookFile]) -> dict[str, list[Finding]]:
    """EN220-EN223 before the run, for notebooks that carry an environment lock (or must)."""
    return {file.name: drift([(file.path, file.nb)], {file.path: file.config.require_lock})
            for file in files if file.nb is not None}


def compare_findings(stored: dict[str, Any] | None, result: RunResult) -> list[Finding]:
    """RN160: the new outputs against the ones stored in the input file."""
    if stored is None or result.nb is None:
        return []
    return compare_outputs(stored, result.nb, path=result.path)


class _Progress:
    """Progress on a terminal (stderr): notebooks done, and the cells of the one running; silent in CI."""

    def __init__(self, names: Sequence[str]) -> None:
        self._bar: Any = None
        self._names = names
        if sys.stderr.isatty() and not os.environ.get("CI"):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.fields[label]:<12}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"), transient=True,
                                 console=Console(file=sys.stderr))
            self._task = self._bar.add_task("", total=len(names), label="notebooks")
            self._cells = self._bar.add_task("", total=None, label="cells", visible=False)
            self._bar.start()

    def cell(self, index: int, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._cells, completed=done, total=total, visible=True,
                             description=Path(self._names[index]).name)

    def done(self, index: int, result: RunResult) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{Path(result.path).name}: {result.status}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _check_destinations(paths: Sequence[Path], args: argparse.Namespace) -> None:
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such notebook file")
    if args.output and len(paths) > 1:
        raise UsageError("-o/--output takes one notebook; use --output-dir for several")
    if args.output:
        target = Path(args.output)
        if target.is_dir():
            raise UsageError(f"-o {target}: is a folder; give a file name, or use --output-dir")
        if not target.parent.is_dir():
            raise UsageError(f"-o {target}: the folder {target.parent} does not exist")
    if args.output_dir:
        try:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--output-dir {args.output_dir}: cannot create it: {exc.strerror or exc}") from None


def _run_all(files: Sequence[NotebookFile], args: argparse.Namespace) -> list[RunResult]:
    """Run every readable notebook; one that cannot be read gets a not-started result with the reason."""
    overrides = cli_overrides(args)
    many = len(files) > 1
    jobs = [RunJob(file.name, project_options(file.config).merged(debug_file=_debug_file(args, file.path, many)),
                   nb=file.nb, output=str(output_for(file.path, args)), overrides=overrides)
            for file in files if file.nb is not None]
    progress = _Progress([job.path for job in jobs])
    try:
        ran = iter(execute(jobs, jobs_from_args(args, len(jobs)), progress.done, progress.cell,
                           scheduler=scheduler_from_args(args)) if jobs else [])
    finally:
        progress.close()
    return [next(ran) if file.nb is not None else RunResult(path=file.name, status="not-started",
                                                          findings=file.error_findings())
            for file in files]


def run(args: argparse.Namespace) -> int:
    resolver = resolver_from_args(args)
    paths = [Path(p) for p in args.paths]
    _check_destinations(paths, args)
    files = [read_notebook_file(path, resolver.for_path(path)) for path in paths]
    drift_found = drift_warnings(files)
    results = _run_all(files, args)
    findings: list[Finding] = []
    code = 0
    for file, result in zip(files, results):
        found = drift_found.get(file.name, []) + list(result.findings)
        if args.compare:
            found.extend(compare_findings(file.nb, result))
        found, worst = kept(found, file.config)
        code = max(code, worst)
        findings.extend(found)
    emit(findings, [r.path for r in results], args.format, notes={r.path: run_note(r) for r in results},
         verb="run", extra={"runs": [r.to_dict() for r in results]})
    return code
