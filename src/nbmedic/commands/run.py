"""``nbmedic run NB...``: execute notebooks in fresh, monitored kernels and explain every failure.

The executed notebook goes to a new file (``NAME.out.ipynb`` by default, ``-o``, ``--output-dir``)
or replaces the input with ``--in-place``; it is written also when the run fails.  Options come from
the CLI, then each notebook's ``metadata.nbmedic``, then ``[tool.nbmedic.run]``.

``--grid FILE`` sweeps parameters: one run per combination, its output ``NAME[alpha=0.1,n=100].ipynb``
(next to the notebook, or in ``--output-dir``).  That output path is the run's identity: the findings of a
combination carry it as their path (their cell numbers are those of that file, which holds the injected
parameters cell), so the runs of one notebook never merge in a report.  ``--report FILE`` also writes the
results to files (``.xml``: JUnit).  While the batch runs, stderr shows a live table on a terminal, or one
line per finished notebook when several run without one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from nbmedic.ansi import colour_wanted, paint
from nbmedic.commands.common import emit, kept, report_files, resolver_from_args, write_report_files
from nbmedic.commands.outputs import beside
from nbmedic.commands.runargs import cli_overrides, grid_from_args, jobs_from_args, scheduler_from_args
from nbmedic.envs.probes import drift
from nbmedic.errors import UsageError
from nbmedic.execute.batch import BatchRun, execute, run_note
from nbmedic.execute.compare import compare_outputs
from nbmedic.execute.grid import Grid, combinations, label, output_names
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.options import project_options
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding
from nbmedic.notebook.record import NotebookFile, read_notebook_file
from nbmedic.render.document import machine_facts
from nbmedic.render.paths import display_path
from nbmedic.render.reports import ReportInput, ReportOptions, executed, notebook_reader
from nbmedic.units import format_bytes


def output_for(path: Path, args: argparse.Namespace) -> Path:
    if getattr(args, "in_place", False):
        return path
    if getattr(args, "output", None):
        return Path(args.output)
    if getattr(args, "output_dir", None):
        return Path(args.output_dir) / path.name
    return beside(path, "out")


def drift_warnings(files: Sequence[NotebookFile]) -> dict[str, list[Finding]]:
    """EN220-EN223 before the run, for notebooks that carry an environment lock (or must)."""
    return {file.name: drift([(file.path, file.nb)], {file.path: file.config.require_lock})
            for file in files if file.nb is not None}


def compare_findings(stored: dict[str, Any] | None, result: RunResult) -> list[Finding]:
    """RN160: the new outputs against the ones stored in the input file."""
    if stored is None or result.nb is None:
        return []
    return compare_outputs(stored, result.nb, path=result.path)


# --- the runs of a batch: one per notebook, or one per notebook and grid combination ------------------

@dataclass(frozen=True)
class Planned:
    """One run: the notebook, where its executed copy goes, the identity its findings carry, and the grid's
    combination (empty without ``--grid``)."""

    file: NotebookFile
    output: Path
    identity: str
    combo: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def plan_runs(files: Sequence[NotebookFile], args: argparse.Namespace, grid: Grid | None) -> list[Planned]:
    """One run per notebook, or per notebook and combination of ``grid`` (a notebook that cannot be read
    gets one run, which does not start)."""
    if grid is None:
        return [Planned(f, output_for(f.path, args), f.name) for f in files]
    combos = combinations(grid)
    planned: list[Planned] = []
    for f in files:
        if f.nb is None:
            planned.append(Planned(f, output_for(f.path, args), f.name))
            continue
        folder = Path(args.output_dir) if getattr(args, "output_dir", None) else f.path.parent
        stem = beside(f.path, "out").name[: -len(".out.ipynb")]
        for combo, name in zip(combos, output_names(stem, combos)):
            out = folder / name
            planned.append(Planned(f, out, os.fspath(out), combo, label(combo)))
    _distinct_outputs(planned, files)
    return planned


def _distinct_outputs(planned: Sequence[Planned], files: Sequence[NotebookFile]) -> None:
    """Two runs never write one file, and no run overwrites a notebook being run."""
    def key(path: Path) -> str:
        return os.path.normcase(os.path.abspath(path))

    inputs = {key(f.path): f.name for f in files}
    seen: dict[str, Planned] = {}
    for p in planned:
        k = key(p.output)
        if k in inputs:
            raise UsageError(f"--grid: the output {p.output} of {p.file.name} [{p.label}] would overwrite "
                             f"the notebook {inputs[k]}")
        other = seen.setdefault(k, p)
        if other is not p:
            raise UsageError(f"--grid: {other.file.name} and {p.file.name} would both write {p.output} "
                             "(notebooks of one name from different folders need separate --output-dir runs)")


def _debug_file(args: argparse.Namespace, run: Planned, many: bool) -> str | None:
    debug = getattr(args, "debug", None)
    if not debug or not many:
        return debug
    base = Path(debug)
    stem = Path(run.identity).stem if run.combo else run.file.path.stem
    return str(base.with_name(f"{base.stem}.{stem}{base.suffix or '.jsonl'}"))


def _job(run: Planned, args: argparse.Namespace, overrides: Mapping[str, Any], many: bool) -> RunJob:
    own = dict(overrides)
    if run.combo:
        own["parameters"] = {**overrides.get("parameters", {}), **run.combo}
    return RunJob(run.file.name, project_options(run.file.config).merged(debug_file=_debug_file(args, run, many)),
                  nb=run.file.nb, output=str(run.output), overrides=own)


def _as(result: RunResult, identity: str) -> RunResult:
    """``result`` under the identity of its run (the notebook's path becomes the combination's output)."""
    if result.path == identity:
        return result
    findings = [dataclasses.replace(f, path=identity) if f.path == result.path else f for f in result.findings]
    return dataclasses.replace(result, path=identity, findings=findings)


def _run_all(planned: Sequence[Planned], args: argparse.Namespace, overrides: Mapping[str, Any]) -> list[RunResult]:
    """Run every readable notebook; one that cannot be read gets a not-started result with the reason."""
    runnable = [p for p in planned if p.file.nb is not None]
    jobs = [_job(p, args, overrides, len(planned) > 1) for p in runnable]
    display = batch_display([p.identity for p in runnable])
    try:
        scheduler = scheduler_from_args(args)
        workers = jobs_from_args(args, len(jobs), default=(os.cpu_count() or 1) if scheduler else 1)
        ran = iter(execute(jobs, workers, display.done,
                           display.cell if display.wants_progress else None, scheduler=scheduler,
                           on_start=display.start if display.wants_progress else None,
                           on_memory=display.memory if display.wants_progress else None) if jobs else [])
    finally:
        display.close()
    return [_as(next(ran), p.identity) if p.file.nb is not None else
            RunResult(path=p.identity, status="not-started", findings=p.file.error_findings()) for p in planned]


# --- what stderr shows while the batch runs ------------------------------------------------------------

def _codes(findings: Sequence[Finding]) -> list[str]:
    return sorted({f.code for f in findings if f.severity == "error"})


def progress_line(result: RunResult) -> str:
    """``ok, 12/12 cells in 3.1 s, peak RSS 88.0 MiB``; a failure names its error codes."""
    codes = _codes(result.findings)
    ran = sum(1 for c in result.cells if c.status not in ("not-run", "skipped"))
    line = result.status + (f" ({', '.join(codes)})" if codes else "")
    line += f", {ran}/{len(result.cells)} cells in {result.duration:.1f} s"
    return line + (f", peak RSS {format_bytes(result.peak_rss)}" if result.peak_rss else "")


class BatchDisplay:
    """Nothing shown (one notebook without a terminal, as before batches showed progress)."""

    wants_progress = False  # cells and memory of running notebooks

    def start(self, index: int) -> None:
        pass

    def cell(self, index: int, done: int, total: int) -> None:
        pass

    def memory(self, index: int, rss: int) -> None:
        pass

    def done(self, index: int, result: RunResult) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress(BatchDisplay):
    """Without a terminal: ``[3/20] report.ipynb: ok, 12/12 cells in 3.1 s, peak RSS 88.0 MiB`` on
    ``stream`` as each notebook finishes."""

    def __init__(self, names: Sequence[str], stream: IO[str]) -> None:
        self._names, self._stream, self._finished = names, stream, 0

    def done(self, index: int, result: RunResult) -> None:
        self._finished += 1
        name = display_path(self._names[index])
        self._stream.write(f"[{self._finished}/{len(self._names)}] {name}: {progress_line(result)}\n")
        self._stream.flush()


@dataclass
class _Running:
    since: float
    cell: tuple[int, int] | None = None  # (cells done, code cells)
    rss: int = 0


class LiveTable(BatchDisplay):
    """On a terminal (rich): the counts, each running notebook's cell, memory and time, the slowest so far.

    Thread-safe: the refresh runs on rich's thread, memory may come from the batch's reader thread."""

    wants_progress = True

    def __init__(self, names: Sequence[str], console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self._names = [display_path(n) for n in names]
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._running: dict[int, _Running] = {}
        self._finished: dict[int, RunResult] = {}
        self._live = Live(console=console or Console(file=sys.stderr), refresh_per_second=4,
                          get_renderable=self.renderable, redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def start(self, index: int) -> None:
        with self._lock:
            if index not in self._finished:
                self._running[index] = _Running(time.monotonic())

    def cell(self, index: int, done: int, total: int) -> None:
        with self._lock:
            if index not in self._finished:
                self._running.setdefault(index, _Running(time.monotonic())).cell = (done, total)

    def memory(self, index: int, rss: int) -> None:
        with self._lock:
            if index in self._running:
                self._running[index].rss = rss

    def done(self, index: int, result: RunResult) -> None:
        with self._lock:
            self._running.pop(index, None)
            self._finished[index] = result

    def close(self) -> None:
        self._live.stop()

    def counts(self) -> str:
        failed = sum(1 for r in self._finished.values() if r.status != "ok")
        waiting = len(self._names) - len(self._finished) - len(self._running)
        return (f"{len(self._finished)}/{len(self._names)} done, {failed} failed, {len(self._running)} running, "
                f"{waiting} waiting · {time.monotonic() - self._t0:.0f} s")

    def renderable(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            parts: list[Any] = [Text(f"nbmedic run: {self.counts()}", style="bold")]
            if self._running:
                table = Table(box=None, pad_edge=False, show_edge=False, header_style="dim")
                table.add_column("running", no_wrap=True, overflow="ellipsis")
                for title in ("cell", "memory", "time"):
                    table.add_column(title, justify="right", no_wrap=True)
                now = time.monotonic()
                for index, run in sorted(self._running.items()):
                    cell = f"{min(run.cell[0] + 1, run.cell[1])}/{run.cell[1]}" if run.cell else "starting"
                    table.add_row(Text(self._names[index]), cell, format_bytes(run.rss) if run.rss else "",
                                  f"{now - run.since:.1f} s")  # Text: a name is never read as markup
                parts.append(table)
            if self._finished:
                index, slowest = max(self._finished.items(), key=lambda item: item[1].duration)
                parts.append(Text(f"slowest so far: {self._names[index]} {slowest.duration:.1f} s", style="dim"))
            return Group(*parts)


def batch_display(names: Sequence[str], stream: IO[str] | None = None) -> BatchDisplay:
    """The live table on a terminal (not with ``CI`` set); plain lines when several notebooks run without
    one; nothing for one notebook without a terminal."""
    err = stream or sys.stderr
    if err.isatty() and not os.environ.get("CI"):
        from rich.console import Console

        return LiveTable(names, Console(file=err))
    if len(names) > 1:
        return LineProgress(names, err)
    return BatchDisplay()


# --- the grid's summary ------------------------------------------------------------------------------

def grid_rows(planned: Sequence[Planned], results: Sequence[RunResult],
              kept_by_run: Sequence[Sequence[Finding]]) -> list[dict[str, Any]]:
    """The ``"grid"`` entries of the JSON report: notebook, parameters, output, status, error codes."""
    return [{"notebook": p.file.name, "parameters": p.combo, "label": p.label, "path": r.path,
             "output": r.output, "status": r.status, "codes": _codes(found)}
            for p, r, found in zip(planned, results, kept_by_run)]


def print_grid_table(rows: Sequence[Mapping[str, Any]], stream: IO[str] | None = None) -> None:
    """The grid's summary after the text report: one row per combination, its status and error codes."""
    out = stream or sys.stdout
    colour = colour_wanted(out)
    failed = sum(1 for r in rows if r["status"] != "ok")
    head = ("notebook", "parameters", "status", "codes")
    table = [head] + [(display_path(r["notebook"]), r["label"] or "-", r["status"], " ".join(r["codes"]))
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [f"grid: {len(rows)} run{'s' if len(rows) != 1 else ''}, {len(rows) - failed} ok, {failed} not ok"]
    for n, row in enumerate(table):
        text = "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        if colour and n == 0:
            text = paint(text, "2")
        elif colour:
            text = paint(text, "32" if row[2] == "ok" else "1;31")
        lines.append(text)
    out.write("\n".join(lines) + "\n")
    out.flush()


# --- the command ---------------------------------------------------------------------------------------

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


def _note(result: RunResult) -> str:
    """The report's header line of a run; a grid run's identity is its output, so no arrow to it."""
    return run_note(dataclasses.replace(result, output=None) if result.output == result.path else result)


@dataclass
class _Outcome:
    """What the batch comes to: the findings to report, the exit code, each run's kept findings."""

    findings: list[Finding] = field(default_factory=list)
    code: int = 0
    per_run: list[list[Finding]] = field(default_factory=list)
    drift: dict[str, list[Finding]] = field(default_factory=dict)  # kept, by notebook


def _outcome(files: Sequence[NotebookFile], drifted: Mapping[str, list[Finding]], planned: Sequence[Planned],
             results: Sequence[RunResult], args: argparse.Namespace) -> _Outcome:
    """The findings each notebook's configuration keeps: lock drift once per notebook, then every run's."""
    out = _Outcome()
    configs = {f.name: f.config for f in files}
    for name, found in drifted.items():
        out.drift[name], worst = kept(found, configs[name])
        out.findings.extend(out.drift[name])
        out.code = max(out.code, worst)
    for run_, result in zip(planned, results):
        found = list(result.findings)
        if args.compare:
            found.extend(compare_findings(run_.file.nb, result))
        found, worst = kept(found, run_.file.config)
        out.code = max(out.code, worst)
        out.findings.extend(found)
        out.per_run.append(found)
    return out


def run(args: argparse.Namespace) -> int:
    resolver = resolver_from_args(args)
    paths = [Path(p) for p in args.paths]
    grid = grid_from_args(args)
    _check_destinations(paths, args)
    cells = bool(getattr(args, "junit_cells", False))
    reports = report_files(args, runs=True)
    overrides = cli_overrides(args)
    files = [read_notebook_file(path, resolver.for_path(path)) for path in paths]
    planned = plan_runs(files, args, grid)
    drifted = drift_warnings(files)
    started, t0 = datetime.now(timezone.utc), time.monotonic()
    results = _run_all(planned, args, overrides)
    seconds = time.monotonic() - t0
    outcome = _outcome(files, drifted, planned, results, args)
    extra: dict[str, Any] = {"runs": [r.to_dict() for r in results], "machine": machine_facts()}
    rows = grid_rows(planned, results, outcome.per_run) if grid is not None else None
    if rows is not None:
        extra["grid"] = rows
    doc = emit(outcome.findings, [r.path for r in results], args.format, notes={r.path: _note(r) for r in results},
               verb="run", extra=extra, verbose=args.verbose)
    if rows is not None and args.format == "text":
        print_grid_table(rows)
    base = overrides.get("parameters", {})
    runs = [BatchRun(p.file.name, r, outcome.drift.get(p.file.name, []) + found, {**base, **p.combo}, p.label)
            for p, r, found in zip(planned, results, outcome.per_run)]
    write_report_files(reports, ReportInput(doc, runs,
                                            ReportOptions(seconds=seconds, started=started, junit_cells=cells),
                                            notebook_reader(executed(results))))
    return outcome.code
