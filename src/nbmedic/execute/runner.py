"""Run a notebook top to bottom in a fresh, monitored kernel; explain every failure with evidence.

``run_notebook`` never raises for notebook or kernel problems: they become findings and a status in the
returned ``RunResult``; the executed notebook (outputs so far, the failing cell marked) is written to
``output`` also when the run fails.

A cell is sent, then ``replies.wait_reply`` says how the wait ended; each ending has a handler (the reply,
a death, a timeout, a request for input) that records what happened and returns the cell's outcome: None
when the run goes on, else the run's final status.  Cells tagged ``skip-execution`` are not sent (their
stored outputs stay); a cell tagged ``raises-exception`` may raise without stopping the run (nbclient's
and papermill's tags).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.config import Config
from nbmedic.errors import UsageError
from nbmedic.execute.cgroup import host_oom_kills
from nbmedic.execute.forensics import DeathFacts, diagnose_death, host_memory_total
from nbmedic.execute.kernel import DebugLog, Kernel, KernelStartError
from nbmedic.execute.memprofile import MemoryProfiler, install
from nbmedic.execute.monitor import Monitor
from nbmedic.execute.options import RunOptions, options_from_mapping
from nbmedic.execute.outputs import DisplayMap, OutputCollector
from nbmedic.execute.params import inject_parameters
from nbmedic.execute.replies import Deadline, Waited, Watch, wait_reply
from nbmedic.execute.result import CellRecord, RunResult, RunStatus
from nbmedic.execute.stacks import StackDump, capture_stacks
from nbmedic.execute.startup import diagnose_start
from nbmedic.findings import Finding, make
from nbmedic.notebook.cells import (
    RAISES_TAG,
    SKIP_TAG,
    cell_id,
    cell_tags,
    kernel_language_of,
    kernel_name_of,
    source_text,
)
from nbmedic.notebook.io import write_notebook
from nbmedic.notebook.record import read_error_findings, read_notebook_file
from nbmedic.units import format_bytes

__all__ = ["BatchHooks", "reply_exception", "run_notebook", "write_output"]

_STALL_CHECK = 0.5  # seconds between stall checks
_FIGURES = ("status", "wall", "cpu", "peak_rss", "rss_delta", "gpu_peak", "output_bytes", "memory_profile")

Outcome = RunStatus | None  # what a cell means for the run: None = go on, else the run's final status


def _resolve_options(nb: Mapping[str, Any], path: str, options: RunOptions | None,
                     overrides: Mapping[str, Any]) -> RunOptions:
    opts = options or RunOptions()
    meta = nb.get("metadata")
    own = meta.get("nbmedic") if isinstance(meta, dict) else None
    if isinstance(own, dict):
        opts = opts.merged(**options_from_mapping(own, where=f"{path} metadata.nbmedic"))
    return opts.merged(**overrides)


def _error_output(ename: str, message: str) -> dict[str, Any]:
    return {"output_type": "error", "ename": ename, "evalue": message, "traceback": [f"{ename}: {message}"]}


def _is_placeholder(reply: Mapping[str, Any]) -> bool:
    """ipykernel's reply when the exception was raised while IPython displayed the result (a ``__repr__``
    or ``_repr_html_`` that raises): ``NoneType: None``, or no ``ename`` at all."""
    ename, evalue = reply.get("ename"), reply.get("evalue")
    return not ename or (ename == "NoneType" and evalue in (None, "None", ""))


def reply_exception(reply: Mapping[str, Any], outputs: Sequence[Mapping[str, Any]]) -> tuple[str, str, list[str]]:
    """(ename, evalue, traceback without ANSI colours) of a failed execution.

    When the reply carries no exception or ipykernel's ``NoneType: None`` placeholder, the exception is the
    one of the cell's last error output (IPython printed the real traceback there)."""
    source: Mapping[str, Any] = reply
    if _is_placeholder(reply):
        shown = [o for o in outputs if o.get("output_type") == "error" and o.get("ename")]
        if shown:
            source = shown[-1]
    tb = [strip_ansi(str(line)) for line in source.get("traceback") or []]
    if reply.get("status") == "aborted":
        return "Aborted", "the kernel aborted the execution", tb
    return str(source.get("ename") or "Error"), str(source.get("evalue") or ""), tb


@dataclass
class _Cell:
    """One code cell being executed."""

    index: int
    cell: dict[str, Any]
    record: CellRecord
    collector: OutputCollector
    msg_id: str = ""
    started: float = 0.0

    @property
    def id(self) -> str | None:
        return self.record.id


class _StallWatch:
    """RN112 once per cell: no output and almost no CPU for ``stall_after`` seconds (the cell goes on)."""

    def __init__(self, run: _Run, monitor: Monitor, job: _Cell, after: float) -> None:
        self.run, self.monitor, self.job, self.after = run, monitor, job, after
        self.next_check = job.started + _STALL_CHECK
        self.reported = False

    def check(self, now: float, last_output: float) -> None:
        if self.reported or now < self.next_check:
            return
        self.next_check = now + _STALL_CHECK
        quiet = now - last_output
        if quiet >= self.after and self.monitor.idle_for() >= self.after:
            self.reported = True
            self.run._stall(self.job, quiet)


class _Run:
    def __init__(self, path: str, nb: dict[str, Any], opts: RunOptions, kernel: Kernel, t0: float) -> None:
        self.path = path
        self.nb = nb
        self.opts = opts
        self.kernel = kernel
        self.t0 = t0
        self.findings: list[Finding] = []
        self.records: dict[int, CellRecord] = {}
        self.status: RunStatus = "ok"
        self.displays: DisplayMap = {}
        self.monitor: Monitor | None = None
        self.host_oom_before: int | None = None
        self.run_deadline = t0 + opts.timeout if opts.timeout else None
        self.died = False
        self.progress: Callable[[int, int], None] | None = None
        self.profiler: MemoryProfiler | None = None  # --profile-memory

    # --- set-up ---------------------------------------------------------------------------------

    def start_monitor(self) -> None:
        self.host_oom_before = host_oom_kills()
        if self.kernel.pid is None:
            return
        self.monitor = Monitor(self.kernel.pid, interval=self.opts.sample_interval,
                               memory_limit=self.opts.memory_limit, t0=self.t0)
        self.monitor.start()

    def start_profiler(self) -> None:
        """--profile-memory: tracemalloc and its hooks in the kernel, before the first cell."""
        cells = self.nb.get("cells")
        if self.opts.profile_memory and isinstance(cells, list):
            self.profiler = install(self.kernel, cells, self.opts.startup_timeout)

    # --- the cells --------------------------------------------------------------------------------

    def run_all(self) -> None:
        cells = self.nb.get("cells")
        if not isinstance(cells, list):
            return
        code = [(i, c) for i, c in enumerate(cells) if isinstance(c, dict) and c.get("cell_type") == "code"]
        for done, (index, cell) in enumerate(code):
            if self.progress is not None:
                self.progress(done, len(code))
            record = self.records[index] = CellRecord(index=index, id=cell_id(cell), status="not-run")
            if SKIP_TAG in cell_tags(cell):  # as nbclient: not sent, its stored outputs kept
                record.status = "skipped"
                self._mark(cell, record)
            elif self.status != "ok":
                self._save(cell, record, None)
            elif not source_text(cell).strip():
                record.status = "skipped"
                self._save(cell, record, None)
            else:
                self.status = self.run_cell(index, cell, record) or "ok"
        if self.progress is not None:
            self.progress(len(code), len(code))

    def _save(self, cell: dict[str, Any], record: CellRecord, collector: OutputCollector | None) -> None:
        """The cell's new outputs (none without a collector) and figures."""
        if collector is not None:
            collector.finish()
            cell["outputs"] = collector.outputs
            cell["execution_count"] = collector.execution_count
        else:
            cell["outputs"] = []
            cell["execution_count"] = None
        self._mark(cell, record)

    @staticmethod
    def _mark(cell: dict[str, Any], record: CellRecord) -> None:
        """``cell.metadata.nbmedic``: the cell's status and figures (other keys kept)."""
        meta = cell.get("metadata")
        if not isinstance(meta, dict):
            meta = cell["metadata"] = {}
        own = meta.get("nbmedic")
        merged = {k: v for k, v in own.items() if k not in _FIGURES} if isinstance(own, dict) else {}
        merged.update(record.to_metadata() if record.status not in ("not-run", "skipped")
                      else {"status": record.status})
        meta["nbmedic"] = merged

    def run_cell(self, index: int, cell: dict[str, Any], record: CellRecord) -> Outcome:
        """Execute one cell and record how it went."""
        if self.kernel.returncode() is not None:  # died after the previous cell finished
            self._save(cell, record, None)
            return self._death(None, elapsed=None)
        job = _Cell(index, cell, record, OutputCollector(self.displays, self.opts.max_output))
        if self.monitor is not None:
            self.monitor.set_cell(index)
        job.started = time.monotonic()
        job.msg_id = self.kernel.execute(source_text(cell))
        waited = wait_reply(self.kernel, job.msg_id, job.collector, self._deadlines(job.started),
                            watch=self._stall_watch(job))
        if waited.ending == "done":
            assert waited.reply is not None  # "done" means replied
            count = waited.reply.get("execution_count")
            if isinstance(count, int):
                job.collector.execution_count = count
            record.status = "ok" if waited.reply.get("status") == "ok" else "error"
            self._finish(job)
            return self._raised(job, waited.reply) if record.status == "error" else None
        outcome = self._failure(job, waited)
        self._finish(job)
        return outcome

    def _deadlines(self, started: float) -> list[Deadline]:
        out = [Deadline("cell", started + self.opts.cell_timeout)] if self.opts.cell_timeout else []
        if self.run_deadline is not None:
            out.append(Deadline("run", self.run_deadline))
        return out

    def _finish(self, job: _Cell) -> None:
        """The cell's figures and outputs, saved into the notebook."""
        record, collector = job.record, job.collector
        record.wall = time.monotonic() - job.started
        if self.monitor is not None:
            self.monitor.set_cell(None)
            usage = self.monitor.cell_usage(job.index)
            record.cpu, record.peak_rss = usage.cpu_seconds, usage.peak_rss
            record.rss_delta, record.gpu_peak = usage.rss_delta, usage.gpu_peak
        record.output_bytes = collector.kept
        if self.profiler is not None:
            record.memory_profile = self.profiler.cell_profile(job.index, collector.execution_count,
                                                               died=record.status == "died")
        if collector.dropped:
            self._truncated(job)
        self._save(job.cell, record, collector)

    def _raised(self, job: _Cell, reply: dict[str, Any]) -> Outcome:
        """RN120 for a cell that raised, unless it is tagged ``raises-exception``."""
        if RAISES_TAG in cell_tags(job.cell):
            return None
        ename, evalue, tb = reply_exception(reply, job.collector.outputs)
        tb_lines = "\n".join(tb).splitlines()
        allowed = self.opts.allow_errors
        self.findings.append(make(
            "RN120", self.path,
            f"cell {job.index} raised {ename}: {evalue}"[:300] + (" (allowed: the run went on)" if allowed else ""),
            cell=job.index, cell_id=job.id, severity="warning" if allowed else None,
            evidence={"ename": ename, "evalue": evalue, "traceback": "\n".join(tb_lines[-15:]),
                      "allow_errors": allowed}))
        return None if allowed else "failed"

    # --- failures ---------------------------------------------------------------------------------

    def _failure(self, job: _Cell, waited: Waited) -> Outcome:
        """The handler of a wait that did not end with the reply."""
        if waited.ending == "died":
            self._drain(job)
            return self._death(job, elapsed=waited.at - job.started)
        if waited.ending == "stdin":
            return self._stdin(job, waited.request or {})
        return self._timeout(job, waited.deadline or "cell", waited.at - job.started)

    def _drain(self, job: _Cell) -> None:
        """Messages the kernel sent just before it died."""
        for _ in range(3):
            got = self.kernel.receive(0.05)
            if not got:
                break
            for channel, msg in got:
                if channel == "iopub" and (msg.get("parent_header") or {}).get("msg_id") == job.msg_id:
                    job.collector.handle(msg.get("msg_type") or msg["header"]["msg_type"], msg["content"])

    def _stacks(self) -> StackDump | None:
        return capture_stacks(self.kernel.pid, self.kernel.faulthandler_path)

    def _death_facts(self, job: _Cell | None, elapsed: float | None) -> DeathFacts:
        kernel, mon = self.kernel, self.monitor
        growth: list[tuple[int, int]] = []
        if mon is not None:
            for i in list(self.records):
                usage = mon.cell_usage(i)
                if usage.samples:
                    growth.append((i, max(0, usage.peak_rss - usage.rss_start)))
            growth.sort(key=lambda item: -item[1])
        return DeathFacts(
            path=self.path, returncode=kernel.returncode(), cell=job.index if job else None,
            cell_id=job.id if job else None, pid=kernel.pid, stderr_tail=kernel.stderr_tail(),
            faulthandler_text=kernel.faulthandler_text(),
            killed_for_memory=mon.killed_for_memory if mon is not None else None,
            memory_limit=self.opts.memory_limit, recent=mon.recent(5.0) if mon is not None else (),
            peak_rss=mon.peak_rss if mon is not None else 0,
            cgroup_before=mon.cgroup_before() if mon is not None else None,
            cgroup_after=mon.cgroup_now() if mon is not None else None,
            host_oom_before=self.host_oom_before, host_oom_after=host_oom_kills(),
            host_total=host_memory_total(), cell_growth=growth, killed_by_us=kernel.killed_by_us,
            elapsed=elapsed,
            top_allocation=self.profiler.top_allocation(job.index) if self.profiler and job else None)

    def _death(self, job: _Cell | None, elapsed: float | None) -> Outcome:
        """RN100-RN103: the kernel died in ``job`` (None: between cells)."""
        finding = diagnose_death(self._death_facts(job, elapsed))
        self.findings.append(finding)
        self.died = True
        if job is not None:
            job.record.status = "died"
            job.collector.add(_error_output("DeadKernelError", finding.message))
        return "died"

    def _interrupt(self, job: _Cell) -> bool:
        """Interrupt the busy kernel; True if it came back within ``interrupt_grace``, else it is killed."""
        self.kernel.interrupt()
        grace = Deadline("grace", time.monotonic() + self.opts.interrupt_grace)
        waited = wait_reply(self.kernel, job.msg_id, job.collector, [grace], stdin=False)
        if waited.reply is not None and waited.ending in ("done", "deadline"):
            return True
        if waited.ending != "died":
            self.kernel.kill()
        return False

    def _timeout(self, job: _Cell, kind: str, elapsed: float) -> Outcome:
        """RN110 (the cell's timeout) or RN111 (the run's): the stack, then an interrupt (a kill if ignored)."""
        dump = self._stacks()
        came_back = self._interrupt(job)
        evidence: dict[str, Any] = dump.to_evidence() if dump is not None else {}
        evidence.update(elapsed=round(elapsed, 3), interrupted=True, escalated=not came_back)
        at = dump.where() if dump is not None else None
        where = f", stuck at {at}" if at else ""
        if dump is None:
            evidence["stack"] = None
            evidence["stack_error"] = "no stack could be captured (faulthandler and py-spy gave nothing)"
        after = "" if came_back else (f"; it ignored the interrupt for {self.opts.interrupt_grace:g} s "
                                      "and was killed")
        if kind == "cell":
            limit = evidence["cell_timeout"] = self.opts.cell_timeout or 0.0
            code, ename = "RN110", "CellTimeoutError"
            msg = f"cell {job.index} ran past its {limit:g} s timeout{where}{after}"
        else:
            limit = evidence["timeout"] = self.opts.timeout or 0.0
            code, ename = "RN111", "RunTimeoutError"
            msg = f"the run went past its {limit:g} s timeout in cell {job.index}{where}{after}"
        if not came_back:
            evidence["exit_code"] = self.kernel.returncode()
        self.findings.append(make(code, self.path, msg, cell=job.index, cell_id=job.id, evidence=evidence))
        job.record.status = "timeout"
        job.collector.add(_error_output(ename, msg))
        return "timeout"

    def _stall_watch(self, job: _Cell) -> Watch | None:
        if not self.opts.stall_after or self.monitor is None:
            return None
        return _StallWatch(self, self.monitor, job, self.opts.stall_after).check

    def _stall(self, job: _Cell, quiet: float) -> None:
        dump = self._stacks()
        evidence: dict[str, Any] = {"quiet_seconds": round(quiet, 2), "stall_after": self.opts.stall_after}
        where = ""
        if dump is not None:
            evidence.update(dump.to_evidence())
            at = dump.where()
            if at:
                where = f"; it is waiting at {at}"
        self.findings.append(make(
            "RN112", self.path, f"cell {job.index} stalled: no output and almost no CPU for {quiet:.0f} s{where}",
            cell=job.index, cell_id=job.id, evidence=evidence))

    def _stdin(self, job: _Cell, request: Mapping[str, Any]) -> Outcome:
        """RN150: the cell asked for input; it is interrupted and the run stops."""
        prompt = str(request.get("prompt", ""))
        password = bool(request.get("password", False))
        came_back = self._interrupt(job)
        what = "a password (getpass)" if password else "input"
        msg = f"cell {job.index} asked for {what}" + (f" with the prompt {prompt!r}" if prompt else "") + \
            ", which a headless run cannot give"
        self.findings.append(make("RN150", self.path, msg, cell=job.index, cell_id=job.id, evidence={
            "prompt": prompt, "password": password,
            "seconds_into_cell": round(time.monotonic() - job.started, 3),
            "interrupted": True, "escalated": not came_back}))
        job.record.status = "error"
        job.collector.add(_error_output("StdinNotAllowedError", msg))
        return "failed"

    def _truncated(self, job: _Cell) -> None:
        collector = job.collector
        limit = self.opts.max_output or 0
        self.findings.append(make(
            "RN130", self.path,
            f"cell {job.index} printed {format_bytes(collector.kept + collector.dropped)} of output, more than "
            f"the {format_bytes(limit)} limit: {format_bytes(collector.dropped)} were dropped from the saved "
            "notebook", cell=job.index, cell_id=job.id,
            evidence={"max_output": limit, "kept": collector.kept, "dropped": collector.dropped,
                      "total": collector.kept + collector.dropped}))


def _prepared(path: str, options: RunOptions | None, nb: dict[str, Any] | None, overrides: Mapping[str, Any],
              t0: float) -> tuple[dict[str, Any], RunOptions] | RunResult:
    """The notebook to execute (a copy, parameters injected) and its options; a not-started result when
    the file cannot be read or its settings are invalid."""
    if nb is None:
        file = read_notebook_file(Path(path), Config())
        if file.nb is None:
            assert file.error is not None
            return RunResult(path=path, status="not-started", findings=read_error_findings(path, file.error),
                             duration=time.monotonic() - t0)
        nb = file.nb
    try:
        opts = _resolve_options(nb, path, options, {k: v for k, v in overrides.items() if v is not None})
    except UsageError as exc:  # this notebook's metadata.nbmedic: a finding, so other notebooks still run
        return RunResult(path=path, status="not-started", duration=time.monotonic() - t0, findings=[make(
            "RN171", path, f"the notebook's run settings are invalid, so it was not run: {exc}",
            evidence={"error": str(exc)})])
    if opts.parameters:
        nb = inject_parameters(nb, opts.parameters, language=kernel_language_of(nb))
    return copy.deepcopy(nb), opts


def _keep_language_info(nb: dict[str, Any], info: dict[str, Any] | None) -> None:
    """The kernel's ``language_info`` into the notebook's metadata, as Jupyter saves it."""
    if isinstance(info, dict) and isinstance(info.get("language_info"), dict):
        meta = nb.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta["language_info"] = info["language_info"]


def _close(kernel: Kernel, run: _Run | None, debug: DebugLog | None) -> int | None:
    """Stop the monitor and the kernel; the kernel's return code when it died (or nbmedic killed it)."""
    if run is not None and run.monitor is not None:
        run.monitor.stop()
    died_code = kernel.returncode() if run is not None and (run.died or kernel.killed_by_us) else None
    kernel.close(graceful=run is not None and not run.died)
    if debug is not None:
        debug.close()
    return died_code


@dataclass(frozen=True)
class BatchHooks:
    """How a batch runs a notebook among others: ``slot`` is held while the cells run (the batch's limit
    on notebooks running at once; the kernel starts before it is taken and shuts down after it is let go,
    so the next notebook's kernel starts while this one's cells run), ``on_kernel(pid)`` learns the
    kernel's process id once it has started (for a live display of its memory)."""

    slot: AbstractContextManager[Any] | None = None
    on_kernel: Callable[[int], None] | None = None


def _execute(path: str, nb: dict[str, Any], opts: RunOptions, t0: float, output: str | None,
             progress: Callable[[int, int], None] | None, hooks: BatchHooks) -> tuple[RunResult, float]:
    """Start the kernel, run the cells (holding the batch's slot), shut the kernel down; the result and
    the seconds spent waiting for the slot (not part of the run's time or its ``--timeout``)."""
    kernel_name = opts.kernel_name or kernel_name_of(nb)
    debug = DebugLog(opts.debug_file) if opts.debug_file else None
    kernel = Kernel(kernel_name, cwd=opts.cwd or os.path.dirname(os.path.abspath(path)), path=path, debug=debug,
                    fork=opts.fork)
    result = RunResult(path=path, status="not-started", kernel=kernel_name, output=output)
    run: _Run | None = None
    waited = 0.0
    try:
        try:
            kernel.start(opts.startup_timeout)
        except KernelStartError as exc:
            result.findings.append(diagnose_start(exc.facts))
            result.exit_code = kernel.returncode()
        else:
            if hooks.on_kernel is not None and kernel.pid is not None:
                hooks.on_kernel(kernel.pid)
            began = time.monotonic()
            with hooks.slot or contextlib.nullcontext():
                waited = time.monotonic() - began
                run = _Run(path, nb, opts, kernel, t0 + waited)
                run.progress = progress
                run.start_monitor()
                run.start_profiler()
                _keep_language_info(nb, kernel.info)
                run.run_all()
    finally:
        died_code = _close(kernel, run, debug)
    if run is not None:
        result.status, result.findings, result.exit_code = run.status, run.findings, died_code
        result.cells = [run.records[i] for i in sorted(run.records)]
        if run.monitor is not None:
            result.timeline = list(run.monitor.samples)
            result.peak_rss = int(run.monitor.peak_rss)
    return result, waited


def write_output(result: RunResult, output: str, nb: dict[str, Any]) -> None:
    """The executed notebook to ``output``; RN170 when it cannot be written (a local run, or the client of a
    cluster run writing what a worker sent back)."""
    result.output = output
    try:
        write_notebook(output, nb)
    except OSError as exc:
        result.output = None
        result.findings.append(make(
            "RN170", result.path, f"the executed notebook could not be written to {output}: "
            f"{exc.strerror or exc}", evidence={"output": output, "error": str(exc), "errno": exc.errno}))
        if result.status == "ok":
            result.status = "failed"


def run_notebook(path: str | os.PathLike[str], options: RunOptions | None = None, *,
                 nb: dict[str, Any] | None = None, output: str | os.PathLike[str] | None = None,
                 progress: Callable[[int, int], None] | None = None, hooks: BatchHooks | None = None,
                 **overrides: Any) -> RunResult:
    """Execute every code cell of the notebook at ``path`` in a fresh kernel and explain what went wrong.

    Options: ``overrides`` (None = not given) > the notebook's ``metadata.nbmedic`` > ``options`` >
    defaults.  ``nb`` is the notebook already read from ``path`` (a command reads each file once); it is
    not modified.  The executed notebook is written to ``output`` (atomically) also when the run fails.
    ``progress(done, total)`` is called as code cells finish (for a progress bar); ``hooks`` are a batch's
    (``BatchHooks``).
    """
    t0 = time.monotonic()
    path_str = os.fspath(path)
    out_str = os.fspath(output) if output is not None else None
    prepared = _prepared(path_str, options, nb, overrides, t0)
    if isinstance(prepared, RunResult):
        return prepared
    nb, opts = prepared
    result, waited = _execute(path_str, nb, opts, t0, out_str, progress, hooks or BatchHooks())
    result.duration = time.monotonic() - t0 - waited
    result.nb = nb
    if out_str is not None:
        write_output(result, out_str, nb)
    return result
