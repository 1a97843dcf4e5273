"""Run a notebook top to bottom in a fresh, monitored kernel; explain every failure with evidence.

``run_notebook`` never raises for notebook or kernel problems: they become findings and a status in the
returned ``RunResult``; the executed notebook (outputs so far, the failing cell marked) is written to
``output`` also when the run fails.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.config import Config
from nbmedic.errors import UsageError
from nbmedic.execute.forensics import DeathFacts, diagnose_death, format_bytes, host_memory_total
from nbmedic.execute.kernel import DebugLog, Kernel, KernelStartError
from nbmedic.execute.options import RunOptions, options_from_mapping
from nbmedic.execute.outputs import DisplayMap, OutputCollector
from nbmedic.execute.result import CellRecord, RunResult, RunStatus
from nbmedic.execute.stacks import StackDump, capture_stacks
from nbmedic.findings import Finding, make
from nbmedic.notebook.cells import RAISES_TAG, cell_tags, kernel_language_of, kernel_name_of, source_text
from nbmedic.notebook.record import read_error_findings, read_notebook_file

__all__ = ["run_notebook"]

_POLL = 0.05  # seconds between checks of the kernel process and the deadlines
_STALL_CHECK = 0.5  # seconds between stall checks


def _resolve_options(nb: Mapping[str, Any], path: str, options: RunOptions | None,
                     overrides: Mapping[str, Any]) -> RunOptions:
    opts = options or RunOptions()
    meta = nb.get("metadata")
    own = meta.get("nbmedic") if isinstance(meta, dict) else None
    if isinstance(own, dict):
        opts = opts.merged(**options_from_mapping(own, where=f"{path} metadata.nbmedic"))
    return opts.merged(**overrides)


def _kernel_name(nb: Mapping[str, Any], opts: RunOptions) -> str:
    return opts.kernel_name or kernel_name_of(nb)


def _error_output(ename: str, message: str) -> dict[str, Any]:
    return {"output_type": "error", "ename": ename, "evalue": message, "traceback": [f"{ename}: {message}"]}


class _Stop(Exception):
    """The run cannot go on (death, timeout, stdin, an error not allowed)."""


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
        self.monitor: Any = None
        self.host_oom_before: int | None = None
        self.run_deadline = t0 + opts.timeout if opts.timeout else None
        self.died = False
        self.progress: Callable[[int, int], None] | None = None

    # --- set-up ---------------------------------------------------------------------------------

    def start_monitor(self) -> None:
        from nbmedic.execute.cgroup import host_oom_kills
        from nbmedic.execute.monitor import Monitor

        self.host_oom_before = host_oom_kills()
        if self.kernel.pid is None:
            return
        self.monitor = Monitor(self.kernel.pid, interval=self.opts.sample_interval,
                               memory_limit=self.opts.memory_limit, t0=self.t0)
        self.monitor.start()

    # --- the cells --------------------------------------------------------------------------------

    def run_all(self) -> None:
        cells = self.nb.get("cells")
        if not isinstance(cells, list):
            return
        stopped = False
        total = sum(1 for c in cells if isinstance(c, dict) and c.get("cell_type") == "code")
        done = 0
        for index, cell in enumerate(cells):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            if self.progress is not None:
                self.progress(done, total)
            done += 1
            record = CellRecord(index=index, id=cell.get("id") if isinstance(cell.get("id"), str) else None,
                                status="not-run")
            self.records[index] = record
            if stopped:
                self._save(cell, record, None)
                continue
            if not source_text(cell).strip():
                record.status = "skipped"
                self._save(cell, record, None)
                continue
            try:
                self.run_cell(index, cell, record)
            except _Stop:
                stopped = True
        if self.progress is not None:
            self.progress(total, total)

    def _save(self, cell: dict[str, Any], record: CellRecord, collector: OutputCollector | None) -> None:
        if collector is not None:
            collector.finish()
            cell["outputs"] = collector.outputs
            cell["execution_count"] = collector.execution_count
        else:
            cell["outputs"] = []
            cell["execution_count"] = None
        meta = cell.get("metadata")
        if not isinstance(meta, dict):
            meta = cell["metadata"] = {}
        own = meta.get("nbmedic")
        merged = dict(own) if isinstance(own, dict) else {}
        for key in ("status", "wall", "cpu", "peak_rss", "rss_delta", "gpu_peak", "output_bytes"):
            merged.pop(key, None)
        merged.update(record.to_metadata() if record.status not in ("not-run", "skipped")
                      else {"status": record.status})
        meta["nbmedic"] = merged

    def _usage(self, index: int, record: CellRecord) -> None:
        if self.monitor is None:
            return
        u = self.monitor.cell_usage(index)
        record.cpu = u.cpu_seconds
        record.peak_rss = u.peak_rss
        record.rss_delta = u.rss_delta
        record.gpu_peak = u.gpu_peak

    def run_cell(self, index: int, cell: dict[str, Any], record: CellRecord) -> None:
        kernel = self.kernel
        collector = OutputCollector(self.displays, self.opts.max_output)
        cell_id = record.id
        if kernel.returncode() is not None:  # died after the previous cell finished
            self._save(cell, record, None)
            self._death(None, None, record, collector, cell, elapsed=None)
        if self.monitor is not None:
            self.monitor.set_cell(index)
        started = time.monotonic()
        msg_id = kernel.execute(source_text(cell))
        cell_deadline = started + self.opts.cell_timeout if self.opts.cell_timeout else None
        reply: dict[str, Any] | None = None
        reply_at = 0.0
        idle = False
        last_output = started
        stall_reported = False
        next_stall_check = started + _STALL_CHECK
        try:
            while not (reply is not None and idle):
                now = time.monotonic()
                if kernel.returncode() is not None:
                    self._drain(msg_id, collector)
                    self._death(index, cell_id, record, collector, cell, elapsed=now - started)
                if reply is not None and now - reply_at > 5.0:
                    break  # the reply came but iopub's idle did not: do not wait forever
                if cell_deadline is not None and now >= cell_deadline:
                    self._timeout("cell", index, cell_id, record, collector, cell, msg_id, now - started)
                if self.run_deadline is not None and now >= self.run_deadline:
                    self._timeout("run", index, cell_id, record, collector, cell, msg_id, now - started)
                if (self.opts.stall_after and not stall_reported and reply is None and self.monitor is not None
                        and now >= next_stall_check):
                    next_stall_check = now + _STALL_CHECK
                    quiet = now - last_output
                    if quiet >= self.opts.stall_after and self.monitor.idle_for() >= self.opts.stall_after:
                        stall_reported = True
                        self._stall(index, cell_id, quiet)
                wait = _POLL
                for deadline in (cell_deadline, self.run_deadline):
                    if deadline is not None:
                        wait = min(wait, max(0.0, deadline - now))
                for channel, msg in kernel.receive(wait):
                    msg_type = msg.get("msg_type") or msg["header"]["msg_type"]
                    if channel == "stdin" and msg_type == "input_request":
                        # one cell runs at a time, so any input request is this cell's: ipykernel does not
                        # always parent it to the execute request, and missing it would hang the run
                        self._stdin(index, cell_id, record, collector, cell, msg_id, msg["content"], started)
                    parent = (msg.get("parent_header") or {}).get("msg_id")
                    if parent != msg_id:
                        continue
                    if channel == "iopub":
                        if msg_type == "status":
                            idle = idle or msg["content"].get("execution_state") == "idle"
                        elif collector.handle(msg_type, msg["content"]):
                            last_output = time.monotonic()
                    elif channel == "shell" and msg_type == "execute_reply":
                        reply, reply_at = msg["content"], time.monotonic()
            assert reply is not None
            count = reply.get("execution_count")
            if isinstance(count, int):
                collector.execution_count = count
            record.status = "ok" if reply.get("status") == "ok" else "error"
        finally:
            record.wall = time.monotonic() - started
            if self.monitor is not None:
                self.monitor.set_cell(None)
            self._usage(index, record)
            record.output_bytes = collector.kept
            if collector.dropped:
                self._truncated(index, cell_id, collector)
            self._save(cell, record, collector)
        if record.status == "ok" or reply is None:
            return
        if RAISES_TAG in cell_tags(cell):
            return
        ename = str(reply.get("ename", "Error"))
        evalue = str(reply.get("evalue", ""))
        if reply.get("status") == "aborted":
            ename, evalue = "Aborted", "the kernel aborted the execution"
        tb = [strip_ansi(str(line)) for line in reply.get("traceback") or []]
        tb_lines = "\n".join(tb).splitlines()
        allowed = self.opts.allow_errors
        self.findings.append(make(
            "RN120", self.path,
            f"cell {index} raised {ename}: {evalue}"[:300] + (" (allowed: the run went on)" if allowed else ""),
            cell=index, cell_id=cell_id, severity="warning" if allowed else None,
            evidence={"ename": ename, "evalue": evalue, "traceback": "\n".join(tb_lines[-15:]),
                      "allow_errors": allowed}))
        if not allowed:
            self.status = "failed"
            raise _Stop

    def _drain(self, msg_id: str, collector: OutputCollector) -> None:
        """Messages the kernel sent just before it died."""
        for _ in range(3):
            got = self.kernel.receive(0.05)
            if not got:
                break
            for channel, msg in got:
                if channel == "iopub" and (msg.get("parent_header") or {}).get("msg_id") == msg_id:
                    collector.handle(msg.get("msg_type") or msg["header"]["msg_type"], msg["content"])

    # --- failures ---------------------------------------------------------------------------------

    def _stacks(self) -> StackDump | None:
        return capture_stacks(self.kernel.pid, self.kernel.faulthandler_path)

    def _death(self, index: int | None, cell_id: str | None, record: CellRecord, collector: OutputCollector,
               cell: dict[str, Any], elapsed: float | None) -> None:
        from nbmedic.execute.cgroup import host_oom_kills

        kernel = self.kernel
        mon = self.monitor
        growth: list[tuple[int, int]] = []
        if mon is not None:
            for i in list(self.records):
                usage = mon.cell_usage(i)
                if usage.samples:
                    growth.append((i, max(0, usage.peak_rss - usage.rss_start)))
            growth.sort(key=lambda item: -item[1])
        facts = DeathFacts(
            path=self.path, returncode=kernel.returncode(), cell=index, cell_id=cell_id, pid=kernel.pid,
            stderr_tail=kernel.stderr_tail(), faulthandler_text=kernel.faulthandler_text(),
            killed_for_memory=mon.killed_for_memory if mon is not None else None,
            memory_limit=self.opts.memory_limit,
            recent=mon.recent(5.0) if mon is not None else (),
            peak_rss=mon.peak_rss if mon is not None else 0,
            cgroup_before=mon.cgroup_before() if mon is not None else None,
            cgroup_after=mon.cgroup_now() if mon is not None else None,
            host_oom_before=self.host_oom_before, host_oom_after=host_oom_kills(),
            host_total=host_memory_total(), cell_growth=growth, killed_by_us=kernel.killed_by_us,
            elapsed=elapsed)
        finding = diagnose_death(facts)
        self.findings.append(finding)
        self.status = "died"
        self.died = True
        if index is not None:
            record.status = "died"
            collector.add(_error_output("DeadKernelError", finding.message))
        raise _Stop

    def _interrupt(self, msg_id: str, collector: OutputCollector) -> bool:
        """Interrupt the busy kernel; True if it came back within ``interrupt_grace``, else it is killed."""
        kernel = self.kernel
        kernel.interrupt()
        deadline = time.monotonic() + self.opts.interrupt_grace
        replied = idle = False
        while time.monotonic() < deadline and not (replied and idle):
            if kernel.returncode() is not None:
                return False
            for channel, msg in kernel.receive(_POLL):
                if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                    continue
                msg_type = msg.get("msg_type") or msg["header"]["msg_type"]
                if channel == "shell" and msg_type == "execute_reply":
                    replied = True
                elif channel == "iopub":
                    if msg_type == "status":
                        idle = idle or msg["content"].get("execution_state") == "idle"
                    else:
                        collector.handle(msg_type, msg["content"])
        if replied:
            return True
        kernel.kill()
        return False

    def _timeout(self, kind: str, index: int, cell_id: str | None, record: CellRecord,
                 collector: OutputCollector, cell: dict[str, Any], msg_id: str, elapsed: float) -> None:
        dump = self._stacks()
        came_back = self._interrupt(msg_id, collector)
        evidence: dict[str, Any] = dump.to_evidence() if dump is not None else {}
        evidence.update(elapsed=round(elapsed, 3), interrupted=True, escalated=not came_back)
        where = ""
        if dump is not None:
            at = dump.where()
            if at:
                where = f", stuck at {at}"
        else:
            evidence["stack"] = None
            evidence["stack_error"] = "no stack could be captured (faulthandler and py-spy gave nothing)"
        after = "" if came_back else (f"; it ignored the interrupt for {self.opts.interrupt_grace:g} s "
                                      "and was killed")
        if kind == "cell":
            limit = self.opts.cell_timeout
            evidence["cell_timeout"] = limit
            code, ename = "RN110", "CellTimeoutError"
            msg = f"cell {index} ran past its {limit:g} s timeout{where}{after}"
        else:
            limit = self.opts.timeout
            evidence["timeout"] = limit
            code, ename = "RN111", "RunTimeoutError"
            msg = f"the run went past its {limit:g} s timeout in cell {index}{where}{after}"
        if not came_back:
            evidence["exit_code"] = self.kernel.returncode()
        self.findings.append(make(code, self.path, msg, cell=index, cell_id=cell_id, evidence=evidence))
        record.status = "timeout"
        collector.add(_error_output(ename, msg))
        self.status = "timeout"
        raise _Stop

    def _stall(self, index: int, cell_id: str | None, quiet: float) -> None:
        dump = self._stacks()
        evidence: dict[str, Any] = {"quiet_seconds": round(quiet, 2), "stall_after": self.opts.stall_after}
        where = ""
        if dump is not None:
            evidence.update(dump.to_evidence())
            at = dump.where()
            if at:
                where = f"; it is waiting at {at}"
        self.findings.append(make(
            "RN112", self.path,
            f"cell {index} stalled: no output and almost no CPU for {quiet:.0f} s{where}",
            cell=index, cell_id=cell_id, evidence=evidence))

    def _stdin(self, index: int, cell_id: str | None, record: CellRecord, collector: OutputCollector,
               cell: dict[str, Any], msg_id: str, content: dict[str, Any], started: float) -> None:
        prompt = str(content.get("prompt", ""))
        password = bool(content.get("password", False))
        came_back = self._interrupt(msg_id, collector)
        what = "a password (getpass)" if password else "input"
        msg = f"cell {index} asked for {what}" + (f" with the prompt {prompt!r}" if prompt else "") + \
            ", which a headless run cannot give"
        self.findings.append(make("RN150", self.path, msg, cell=index, cell_id=cell_id, evidence={
            "prompt": prompt, "password": password, "seconds_into_cell": round(time.monotonic() - started, 3),
            "interrupted": True, "escalated": not came_back}))
        record.status = "error"
        collector.add(_error_output("StdinNotAllowedError", msg))
        self.status = "failed"
        raise _Stop

    def _truncated(self, index: int, cell_id: str | None, collector: OutputCollector) -> None:
        limit = self.opts.max_output or 0
        self.findings.append(make(
            "RN130", self.path,
            f"cell {index} printed {format_bytes(collector.kept + collector.dropped)} of output, more than the "
            f"{format_bytes(limit)} limit: {format_bytes(collector.dropped)} were dropped from the saved notebook",
            cell=index, cell_id=cell_id,
            evidence={"max_output": limit, "kept": collector.kept, "dropped": collector.dropped,
                      "total": collector.kept + collector.dropped}))


def run_notebook(path: str | os.PathLike[str], options: RunOptions | None = None, *,
                 nb: dict[str, Any] | None = None, output: str | os.PathLike[str] | None = None,
                 progress: Callable[[int, int], None] | None = None, **overrides: Any) -> RunResult:
    """Execute every code cell of the notebook at ``path`` in a fresh kernel and explain what went wrong.

    Options: ``overrides`` (None = not given) > the notebook's ``metadata.nbmedic`` > ``options`` >
    defaults.  ``nb`` is the notebook already read from ``path`` (a command reads each file once); it is
    not modified.  The executed notebook is written to ``output`` (atomically) also when the run fails.
    ``progress(done, total)`` is called as code cells finish (for a progress bar).
    """
    t0 = time.monotonic()
    path_str = os.fspath(path)
    out_str = os.fspath(output) if output is not None else None
    if nb is None:
        file = read_notebook_file(Path(path_str), Config())
        if file.nb is None:
            assert file.error is not None
            return RunResult(path=path_str, status="not-started", findings=read_error_findings(path_str, file.error),
                             duration=time.monotonic() - t0)
        nb = file.nb
    try:
        opts = _resolve_options(nb, path_str, options, {k: v for k, v in overrides.items() if v is not None})
    except UsageError as exc:  # this notebook's metadata.nbmedic: a finding, so other notebooks still run
        return RunResult(path=path_str, status="not-started", duration=time.monotonic() - t0, findings=[make(
            "RN171", path_str, f"the notebook's run settings are invalid, so it was not run: {exc}",
            evidence={"error": str(exc)})])
    if opts.parameters:
        from nbmedic.execute.params import inject_parameters

        nb = inject_parameters(nb, opts.parameters, language=kernel_language_of(nb))
    nb = copy.deepcopy(nb)
    kernel_name = _kernel_name(nb, opts)
    cwd = opts.cwd or os.path.dirname(os.path.abspath(path_str))
    debug = DebugLog(opts.debug_file) if opts.debug_file else None
    kernel = Kernel(kernel_name, cwd=cwd, path=path_str, debug=debug)
    result = RunResult(path=path_str, status="not-started", kernel=kernel_name, output=out_str)
    run: _Run | None = None
    try:
        try:
            kernel.start(opts.startup_timeout)
        except KernelStartError as exc:
            result.findings.append(exc.finding)
            code = kernel.returncode()
            result.exit_code = code
        else:
            run = _Run(path_str, nb, opts, kernel, t0)
            run.progress = progress
            run.start_monitor()
            info = getattr(kernel, "info", None)
            if isinstance(info, dict) and isinstance(info.get("language_info"), dict):
                meta = nb.setdefault("metadata", {})
                if isinstance(meta, dict):
                    meta["language_info"] = info["language_info"]
            run.run_all()
    finally:
        graceful = run is not None and not run.died
        if run is not None and run.monitor is not None:
            run.monitor.stop()
        died_code = kernel.returncode() if run is not None and (run.died or kernel.killed_by_us) else None
        kernel.close(graceful=graceful)
        if debug is not None:
            debug.close()
    if run is not None:
        result.status = run.status
        result.findings = run.findings
        result.cells = [run.records[i] for i in sorted(run.records)]
        if run.monitor is not None:
            result.timeline = list(run.monitor.samples)
            result.peak_rss = int(run.monitor.peak_rss)
        result.exit_code = died_code
    result.duration = time.monotonic() - t0
    result.nb = nb
    if out_str is not None:
        from nbmedic.notebook.io import write_notebook

        try:
            write_notebook(out_str, nb)
        except OSError as exc:
            result.output = None
            result.findings.append(make(
                "RN170", path_str, f"the executed notebook could not be written to {out_str}: "
                f"{exc.strerror or exc}", evidence={"output": out_str, "error": str(exc), "errno": exc.errno}))
            if result.status == "ok":
                result.status = "failed"
    return result

