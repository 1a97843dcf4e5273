"""One supervised kernel: prepare its launch, watch it, and turn its death into an incident.

Shared by the two supervisors, the kernel provisioner (inside the Jupyter server) and ``nbmedic
kernel-wrapper`` (a parent process for clients that spawn argv themselves)::

    sup = Supervision(kernel_id, supervisor="provisioner", kernelspec="python3", language="python",
                      notebook=path, cwd=cwd, guard=GuardConfig(...), log=logger.warning)
    argv, env = sup.prepare(argv)                 # faulthandler + agent for IPython kernels, the env contract
    ...start the process...
    sup.attach(pid, pgid, poll=popen.poll, interrupt=...)   # session.json, the sampler and the guard
    sup.client_signal(signal.SIGINT)              # the client signals the kernel (an interrupt, a stop)
    sup.expect_exit()                             # the manager is shutting it down: not an incident
    sup.died()                                    # idempotent: the incident, the notice, one log line
    sup.close(final=True)

A death is recorded once, by whoever sees it first: the sampler thread (the process vanished), the
manager's liveness poll, or the wrapper's wait.  An exit the manager asked for (shutdown, restart,
kill) or a clean exit the agent saw (``exit.json``: atexit ran) is not an incident.  Nor is a kernel
that had run no cell and died of the client's own interrupt: jupyter_client interrupts a kernel before
it shuts it down, and a kernel still starting has no handler for SIGINT yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from nbmedic.execute.cgroup import host_oom_kills
from nbmedic.execute.forensics import DeathFacts, diagnose_death, host_memory_total, memory_limits
from nbmedic.execute.signals import signal_name
from nbmedic.findings import Finding
from nbmedic.live.guard import GuardConfig
from nbmedic.live.incidents import local_time, new_incident_id, save_incident
from nbmedic.live.kmsg import oom_kill_line
from nbmedic.live.launch import monitored_argv, monitored_env, prepare_live_dir, remove_stale_dirs
from nbmedic.live.paths import (
    CELL,
    EXITED,
    FAULTHANDLER,
    GUARD,
    SESSION,
    kernel_dir,
    notice_paths,
    read_json,
    write_json,
)
from nbmedic.live.sampler import GuardEvent, LiveSampler

__all__ = ["Supervision", "banner", "cell_label", "resolve_notebook"]

_FAULTHANDLER_MAX = 20_000  # characters of the faulthandler file kept in an incident
_TIMELINE_MAX = 3000  # samples of the memory timeline kept in an incident
_EXIT_GRACE = 0.25  # seconds the sampler waits for a shutdown request to be known before calling it a death


def resolve_notebook(session_name: str | None, cwd: str | None) -> str | None:
    """The notebook's path from ``JPY_SESSION_NAME`` (absolute when jupyter_server knows the kernel's cwd)."""
    if not session_name:
        return None
    if os.path.isabs(session_name) or not cwd:
        return os.path.normpath(session_name)
    return os.path.normpath(os.path.join(cwd, os.path.basename(session_name)))


def _first_line(head: str, limit: int = 60) -> str:
    line = next((ln.strip() for ln in head.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def cell_label(cell: dict[str, Any]) -> str:
    """``[7] "df = pd.read_csv(...)"``: how a notebook user names a cell."""
    count = cell.get("execution_count")
    head = _first_line(str(cell.get("source_head") or ""))
    label = f"[{count}]" if isinstance(count, int) else "(no number)"
    return f'{label} "{head}"' if head else label


def banner(finding: Finding, incident_id: str, when: float) -> str:
    """The line the next cell shows: when, what the previous kernel was doing, why it died, where to read more."""
    message = finding.message
    if message.startswith("the kernel"):
        message = "the previous kernel" + message[len("the kernel"):]
    clock = time.strftime("%H:%M:%S", time.localtime(when))
    return f"nbmedic: at {clock} {message}. Details: nbmedic incidents show {incident_id}"


class Supervision:
    """The supervisor's side of one kernel (one per launch; a restart makes a new one)."""

    def __init__(self, kernel_id: str, *, supervisor: str, kernelspec: str | None, language: str,
                 notebook: str | None, cwd: str | None, guard: GuardConfig,
                 log: Callable[[str], None] | None = None) -> None:
        self.kernel_id = kernel_id
        self.supervisor = supervisor
        self.kernelspec = kernelspec
        self.language = language
        self.notebook = notebook
        self.cwd = cwd
        self.config = guard
        self.log = log or (lambda _msg: None)
        self.dir = kernel_dir(kernel_id)
        self.python = False
        self.argv: list[str] = []
        self.pid: int | None = None
        self.pgid: int | None = None
        self.started = 0.0
        self.sampler: LiveSampler | None = None
        self.incident: dict[str, Any] | None = None
        self._poll: Callable[[], int | None] = lambda: None
        self._expected = False
        self._interrupted = False  # the client sent SIGINT (jupyter_client does before every shutdown)
        self._dead = False
        self._lock = threading.Lock()
        self._host_oom_before: int | None = None

    # --------------------------------------------------------------------------------------- launch
    def prepare(self, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """The kernel's command line and the environment to add (call before starting the process)."""
        prepare_live_dir(self.dir)
        remove_stale_dirs(keep=self.dir)
        self.argv, self.python = monitored_argv(list(argv), self.language, self.dir)
        env = monitored_env(self.kernel_id, self.dir)
        if self.notebook and "JPY_SESSION_NAME" not in os.environ:
            env.setdefault("JPY_SESSION_NAME", self.notebook)
        return self.argv, env

    def attach(self, pid: int, pgid: int | None, *, poll: Callable[[], int | None],
               interrupt: Callable[[], None] | None) -> None:
        """The process is running: record the session, start sampling and guarding."""
        self.pid, self.pgid, self._poll = pid, pgid, poll
        self.started = time.time()
        self._host_oom_before = host_oom_kills()
        cfg = self.config
        self.sampler = LiveSampler(
            pid, memory_limit=cfg.memory_limit, guard=cfg.guard, interrupt_at=cfg.interrupt_at,
            kill_at=cfg.kill_at, busy=self._busy, interrupt=interrupt, on_guard=self._on_guard,
            on_exit=self._on_exit)
        write_json(os.path.join(self.dir, SESSION), self._session_record())
        self.sampler.start()

    def _session_record(self) -> dict[str, Any]:
        s = self.sampler
        return {
            "schema": 1, "kernel_id": self.kernel_id, "pid": self.pid, "pgid": self.pgid,
            "supervisor": self.supervisor, "supervisor_pid": os.getpid(), "kernelspec": self.kernelspec,
            "language": self.language, "python": self.python, "notebook": self.notebook, "cwd": self.cwd,
            "started": self.started, "argv": self.argv,
            "faulthandler": os.path.join(self.dir, FAULTHANDLER) if self.python else None,
            "memory_limit": s.limit if s else self.config.memory_limit,
            "limit_source": s.limit_source if s else None, "guard": self.config.guard,
            "interrupt_at": self.config.interrupt_at, "kill_at": self.config.kill_at,
        }

    # ---------------------------------------------------------------------------------------- watch
    def _cell(self) -> dict[str, Any] | None:
        return read_json(os.path.join(self.dir, CELL))

    def _busy(self) -> bool:
        cell = self._cell()
        return bool(cell and cell.get("running"))

    def _on_guard(self, event: GuardEvent) -> None:
        cell = self._cell() or {}
        if event.action == "interrupt":
            write_json(os.path.join(self.dir, GUARD), {
                "time": event.time, "action": "interrupt", "rss": event.rss, "limit": event.limit,
                "limit_source": event.limit_source, "share": round(event.share, 4),
                "execution_count": cell.get("execution_count"), "cell_id": cell.get("cell_id")})
            self.log(f"nbmedic: kernel {self.kernel_id} ({self.notebook or 'no notebook'}): interrupted cell "
                     f"{cell_label(cell)} at {event.share:.0%} of the memory limit ({event.limit_source})")

    def _on_exit(self) -> None:
        """The sampler saw the process vanish: give a shutdown request a moment to be known, then record."""
        time.sleep(_EXIT_GRACE)
        self.died()

    def expect_exit(self) -> None:
        """The manager is stopping the kernel (shutdown, restart, kill): its exit is not an incident.

        A kernel already dead when this is called died on its own (the restarter kills what is left):
        that death is recorded first.
        """
        if self._poll() is not None:
            self.died()
        self._expected = True

    def client_signal(self, signum: int) -> None:
        """The client is sending the kernel ``signum``: a stop is an exit asked for; an interrupt is noted."""
        if signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGKILL):
            self.expect_exit()
        elif signum == signal.SIGINT:
            self._interrupted = True

    def _ended_by_client(self, code: int | None) -> bool:
        """Asked for, or the client's interrupt ended a kernel that had run no cell (a start-up with no handler)."""
        return self._expected or (self._interrupted and code == -signal.SIGINT and self._cell() is None)

    # ---------------------------------------------------------------------------------------- death
    def _returncode(self, wait: float = 1.0) -> int | None:
        deadline = time.monotonic() + wait
        while True:
            code = self._poll()
            if code is not None or time.monotonic() >= deadline:
                return code
            time.sleep(0.02)

    def died(self, returncode: int | None = None) -> dict[str, Any] | None:
        """Record the death once (None when it was expected or already recorded); returns the incident."""
        with self._lock:
            if self._dead:
                return self.incident
            self._dead = True
        code = returncode if returncode is not None else self._returncode()
        clean = read_json(os.path.join(self.dir, EXITED))
        if self._ended_by_client(code) or (clean and clean.get("clean") and (code == 0 or code is None)):
            return None
        try:
            self.incident = self._record(code)
        except Exception as exc:  # noqa: BLE001 - a failure to record must not break the server
            self.log(f"nbmedic: kernel {self.kernel_id} died; the incident could not be recorded: "
                     f"{type(exc).__name__}: {exc}")
            return None
        return self.incident

    def _facts(self, code: int | None, cell: dict[str, Any] | None) -> DeathFacts:
        s = self.sampler
        running = bool(cell and cell.get("running"))
        now = time.time()
        extra: dict[str, Any] = {"live_session": True, "kernel_id": self.kernel_id, "notebook": self.notebook}
        if running and cell is not None:
            extra["execution_count"] = cell.get("execution_count")
            extra["cell_source"] = str(cell.get("source_head") or "")
        if s is not None and s.interrupts:
            extra["guard_interrupts"] = len(s.interrupts)
        return DeathFacts(
            path=self.notebook, returncode=code, pid=self.pid,
            cell_id=(cell or {}).get("cell_id") if running else None,
            cell_label=cell_label(cell) if running and cell is not None else None,
            faulthandler_text=self._faulthandler_text(),
            killed_for_memory=s.killed_for_memory if s else None,
            memory_limit=s.limit if s else self.config.memory_limit,
            memory_limit_name=(s.limit_source if s and s.limit_source else "the configured memory limit"),
            recent=s.recent(5.0) if s else (), peak_rss=s.peak_rss if s else 0,
            cgroup_before=s.cgroup_before if s else None, cgroup_after=s.cgroup_now() if s else None,
            host_oom_before=self._host_oom_before, host_oom_after=host_oom_kills(),
            host_total=host_memory_total(),
            elapsed=(now - float(cell["started"])) if running and cell and cell.get("started") else None,
            before_first_cell=self.python and cell is None,  # the agent writes cell.json at the first cell
            extra=extra)

    def _faulthandler_text(self) -> str:
        if not self.python:
            return ""
        try:
            with open(os.path.join(self.dir, FAULTHANDLER), "rb") as fh:
                data = fh.read()
        except OSError:
            return ""
        return data[-_FAULTHANDLER_MAX:].decode("utf-8", "replace")

    def _record(self, code: int | None) -> dict[str, Any]:
        cell = self._cell()
        facts = self._facts(code, cell)
        incident_id = new_incident_id()
        now = time.time()
        oom_line = oom_kill_line(self.pid) if signal_name(code) == "SIGKILL" else None
        facts.extra.update(incident=incident_id, incident_time=local_time(now))
        if oom_line:
            facts.extra["oom_kill_line"] = oom_line
        finding = diagnose_death(facts)
        record = self._incident(incident_id, now, code, finding, cell, facts, oom_line)
        save_incident(record)
        text = banner(finding, incident_id, now)
        notice = {"incident": incident_id, "time": now, "kernel_id": self.kernel_id,
                  "notebook": self.notebook, "text": text}
        for path in notice_paths(self.kernel_id, self.notebook):
            with contextlib.suppress(OSError):
                write_json(path, notice)
        self.log(f"nbmedic: kernel {self.kernel_id} ({self.notebook or 'no notebook'}) died: "
                 f"{finding.code} {finding.message}; incident {incident_id} (nbmedic incidents show {incident_id})")
        return record

    def _incident(self, incident_id: str, now: float, code: int | None, finding: Finding,
                  cell: dict[str, Any] | None, facts: DeathFacts, oom_line: str | None) -> dict[str, Any]:
        s = self.sampler
        timeline = s.timeline()[-_TIMELINE_MAX:] if s else []
        running = bool(cell and cell.get("running"))
        return {
            "schema": 1, "id": incident_id, "time": now, "kernel_id": self.kernel_id,
            "kernelspec": self.kernelspec, "notebook": self.notebook, "supervisor": self.supervisor,
            "pid": self.pid, "exit_code": code, "signal": signal_name(code),
            "finding": finding.to_dict(),
            "cell": None if not running or cell is None else {
                "execution_count": cell.get("execution_count"), "cell_id": cell.get("cell_id"),
                "source_head": cell.get("source_head"), "started": cell.get("started"),
                "seconds": round(now - float(cell.get("started") or now), 3)},
            "memory": {
                "peak_rss": s.peak_rss if s else 0, "last_rss": s.last.rss if s and s.last else None,
                "limits": {name: lim for name, lim in memory_limits(facts)},
                "timeline": [[round(x.t, 3), x.rss, x.cpu] for x in timeline]},
            "faulthandler": facts.faulthandler_text,
            "oom_kill_line": oom_line,
            "guard": [vars(e) for e in s.interrupts] if s else [],
        }

    # -------------------------------------------------------------------------------------- the end
    def close(self, *, final: bool) -> None:
        """Stop sampling; at the kernel's final shutdown (not a restart) remove its folder."""
        if self.sampler is not None:
            self.sampler.stop()
        if final:
            shutil.rmtree(self.dir, ignore_errors=True)

