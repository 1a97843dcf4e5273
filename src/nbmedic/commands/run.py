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
from nbmedic.config import ConfigResolver, parse_size
from nbmedic.envs.probes import drift
from nbmedic.errors import UsageError
from nbmedic.execute.batch import RunJob, execute, run_note
from nbmedic.execute.compare import compare_outputs
from nbmedic.execute.options import RunOptions, options_from_mapping
from nbmedic.execute.params import load_params_file, parse_cli_value
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding
from nbmedic.notebook.record import NotebookFile, read_error_findings, read_notebook_file


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


def base_options(resolver: ConfigResolver, path: Path, **defaults: Any) -> RunOptions:
    """``[tool.nbmedic.run]`` of the notebook's project over nbmedic's defaults (and the caller's)."""
    config = resolver.for_path(path)
    table = config.extra.get("run", {})
    if not isinstance(table, dict):
        raise UsageError(f"{config.source} [tool.nbmedic.run] must be a table")
    return RunOptions(**defaults).merged(**options_from_mapping(table, where=f"{config.source} [tool.nbmedic.run]"))


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The execution options given on the command line (None = not given)."""
    for name in ("cell_timeout", "timeout", "startup_timeout", "stall_after"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    out: dict[str, Any] = {
        "kernel_name": getattr(args, "kernel", None),
        "cell_timeout": getattr(args, "cell_timeout", None),
        "timeout": getattr(args, "timeout", None),
        "startup_timeout": getattr(args, "startup_timeout", None),
        "stall_after": getattr(args, "stall_after", None),
        "allow_errors": getattr(args, "allow_errors", None),
        "memory_limit": parse_size(args.memory_limit, what="--memory-limit") if getattr(
            args, "memory_limit", None) else None,
        "max_output": parse_size(args.max_output, what="--max-output") if getattr(
            args, "max_output", None) else None,
    }
    params = parameters_from_args(args)
    if params:
        out["parameters"] = params
    return {k: v for k, v in out.items() if v is not None}


def parameters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if getattr(args, "parameters_file", None):
        params.update(load_params_file(args.parameters_file))
    for name, value in getattr(args, "parameter", None) or []:
        if not name.isidentifier():
            raise UsageError(f"-p {name}: a parameter name must be a Python identifier")
        params[name] = parse_cli_value(value)
    return params


def jobs_from_args(args: argparse.Namespace, count: int, *, default: int = 1) -> int:
    """How many notebooks run at once: ``-j`` (or ``default``), never more than there are notebooks."""
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    return max(1, min(jobs or default, count))


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


def _run_all(files: Sequence[NotebookFile], args: argparse.Namespace, resolver: ConfigResolver) -> list[RunResult]:
    """Run every readable notebook; one that cannot be read gets a not-started result with the reason."""
    overrides = cli_overrides(args)
    many = len(files) > 1
    jobs = [RunJob(file.name, base_options(resolver, file.path).merged(debug_file=_debug_file(args, file.path, many)),
                   nb=file.nb, output=str(output_for(file.path, args)), overrides=overrides)
            for file in files if file.nb is not None]
    progress = _Progress([job.path for job in jobs])
    try:
        ran = iter(execute(jobs, jobs_from_args(args, len(jobs)), progress.done, progress.cell) if jobs else [])
    finally:
        progress.close()
    return [next(ran) if file.nb is not None else RunResult(
        path=file.name, status="not-started", findings=read_error_findings(file.name, file.error or OSError()))
        for file in files]


def run(args: argparse.Namespace) -> int:
    resolver = resolver_from_args(args)
    paths = [Path(p) for p in args.paths]
    _check_destinations(paths, args)
    files = [read_notebook_file(path, resolver.for_path(path)) for path in paths]
    drift_found = drift_warnings(files)
    results = _run_all(files, args, resolver)
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
