"""``nbmedic run NB...``: execute notebooks in fresh, monitored kernels and explain every failure.

The executed notebook goes to a new file (``NAME.out.ipynb`` by default, ``-o``, ``--output-dir``)
or replaces the input with ``--in-place``; it is written also when the run fails.  Options come from
the CLI, then each notebook's ``metadata.nbmedic``, then ``[tool.nbmedic.run]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbmedic.commands.common import emit, resolver_from_args
from nbmedic.config import ConfigResolver, parse_size
from nbmedic.errors import UsageError

if TYPE_CHECKING:
    from nbmedic.execute.options import RunOptions
    from nbmedic.execute.result import RunResult
    from nbmedic.findings import Finding


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
    from nbmedic.execute.options import RunOptions, options_from_mapping

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
    from nbmedic.execute.params import load_params_file, parse_cli_value

    params: dict[str, Any] = {}
    if getattr(args, "parameters_file", None):
        params.update(load_params_file(args.parameters_file))
    for name, value in getattr(args, "parameter", None) or []:
        if not name.isidentifier():
            raise UsageError(f"-p {name}: a parameter name must be a Python identifier")
        params[name] = parse_cli_value(value)
    return params


def jobs_from_args(args: argparse.Namespace, count: int) -> int:
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    return max(1, min(jobs or 1, count))


def _debug_file(args: argparse.Namespace, path: Path, many: bool) -> str | None:
    debug = getattr(args, "debug", None)
    if not debug or not many:
        return debug
    base = Path(debug)
    return str(base.with_name(f"{base.stem}.{path.stem}{base.suffix or '.jsonl'}"))


def _one(job: tuple[str, RunOptions, str | None, dict[str, Any]],
         progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Run one notebook (top level, so a process pool can call it)."""
    from nbmedic.execute import run_notebook

    path, options, output, overrides = job
    return run_notebook(path, options, output=output, progress=progress, **overrides)


def execute(jobs: Sequence[tuple[str, RunOptions, str | None, dict[str, Any]]], workers: int,
            on_done: Callable[[int, RunResult], None] | None = None,
            on_cell: Callable[[int, int, int], None] | None = None) -> list[RunResult]:
    """Run every job, ``workers`` at a time (one kernel each); results in the order of ``jobs``.

    ``on_cell(job, done, total)`` reports cells as they finish (sequential runs only)."""
    results: list[RunResult | None] = [None] * len(jobs)
    if workers <= 1:
        for i, job in enumerate(jobs):
            cell_progress = None
            if on_cell is not None:
                def cell_progress(done: int, total: int, i: int = i) -> None:
                    on_cell(i, done, total)
            results[i] = _one(job, cell_progress)
            if on_done:
                on_done(i, results[i])  # type: ignore[arg-type]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_one, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_done:
                    on_done(i, results[i])  # type: ignore[arg-type]
    return [r for r in results if r is not None]


def drift_warnings(paths: Sequence[Path], resolver: ConfigResolver) -> dict[Path, list[Finding]]:
    """EN220-EN223 before the run, for notebooks that carry an environment lock (or must)."""
    from nbmedic.commands.doctor import require_lock
    from nbmedic.envs.probes import drift

    wanted = require_lock(resolver)
    out: dict[Path, list[Finding]] = {}
    for path in paths:
        nb = stored_notebook(path)
        if nb is not None:
            out[path] = drift([(path, nb)], wanted)
    return out


def stored_notebook(path: Path) -> dict[str, Any] | None:
    """The input as it is before the run (``--in-place`` replaces it)."""
    from nbmedic.notebook.io import NotebookReadError, read_notebook

    try:
        return read_notebook(path)[0]
    except (OSError, NotebookReadError):
        return None  # the run reports why the file cannot be read


def compare_findings(stored: dict[str, Any] | None, result: RunResult) -> list[Finding]:
    """RN160: the new outputs against the ones stored in the input file."""
    from nbmedic.execute.compare import compare_outputs

    if stored is None or result.nb is None:
        return []
    return compare_outputs(stored, result.nb, path=result.path)


def run_note(result: RunResult) -> str:
    """One line on how a run went, for the text report's file header."""
    from nbmedic.units import format_bytes

    ran = sum(1 for c in result.cells if c.status not in ("not-run", "skipped"))
    parts = [result.status, f"{ran}/{len(result.cells)} cells in {result.duration:.1f} s"]
    if result.peak_rss:
        parts.append(f"peak RSS {format_bytes(result.peak_rss)}")
    line = ", ".join(parts)
    if result.output:
        line += f" → {result.output}"
    return line


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


def run_run(args: argparse.Namespace) -> int:
    from nbmedic.checks.engine import display_path
    from nbmedic.findings import exit_code

    resolver = resolver_from_args(args)
    paths = [Path(p) for p in args.paths]
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
    overrides = cli_overrides(args)
    many = len(paths) > 1
    jobs = []
    for path in paths:
        opts = base_options(resolver, path).merged(debug_file=_debug_file(args, path, many))
        jobs.append((display_path(path), opts, str(output_for(path, args)), overrides))
    drift = drift_warnings(paths, resolver)
    stored = [stored_notebook(p) if args.compare else None for p in paths]
    progress = _Progress([job[0] for job in jobs])
    try:
        results = execute(jobs, jobs_from_args(args, len(jobs)), progress.done, progress.cell)
    finally:
        progress.close()
    findings: list[Finding] = []
    code = 0
    for path, before, result in zip(paths, stored, results):
        found = drift.get(path, []) + list(result.findings)
        if args.compare:
            found.extend(compare_findings(before, result))
        config = resolver.for_path(path)
        found = [f for f in found if config.wants(f.code)]
        code = max(code, exit_code(found, strict=config.strict))
        findings.extend(found)
    files = [r.path for r in results]
    emit(findings, files, args.format, notes={r.path: run_note(r) for r in results}, verb="run",
         extra={"runs": [r.to_dict() for r in results]})
    return code
