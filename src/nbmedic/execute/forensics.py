"""Why did the kernel die?  Evidence in, one Finding out (RN100–RN103).

Pure: the runner gathers the facts (``DeathFacts``) right after the death, so this module can be tested
with made-up facts.  Classification, first match wins:

1. **RN101 memory**: our watchdog killed it for ``--memory-limit``; or the cgroup's / host's ``oom_kill``
   counter went up during the run; or it died of SIGKILL while its memory was near a limit (the
   ``--memory-limit``, the cgroup limit, or the host's RAM);
2. **RN102 crash**: a fatal signal (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL), with the Python stack
   faulthandler wrote as the process went down;
3. **RN103 exit**: the process exited with a code of its own (``os._exit(3)``, ``sys.exit`` in a thread);
4. **RN100**: anything else (a SIGKILL or SIGTERM from outside without signs of memory pressure), with
   all evidence attached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from nbmedic.execute.result import CgroupInfo, Sample
from nbmedic.execute.signals import signal_name
from nbmedic.execute.stacks import StackDump, crash_dump
from nbmedic.findings import Finding, make
from nbmedic.units import format_bytes

__all__ = ["DeathFacts", "TopAllocation", "diagnose_death", "format_bytes", "host_memory_total", "memory_limits"]

CRASH_SIGNALS = {"SIGSEGV": "a crash in native code", "SIGABRT": "an abort in native code",
                 "SIGBUS": "a bad memory access in native code", "SIGFPE": "an arithmetic fault in native code",
                 "SIGILL": "an illegal instruction in native code"}
_MEMORY_KEYS = ("peak_rss", "limit", "top_allocation", "top_allocation_bytes", "top_allocation_line",
                "cells_growing_rss", "killed_by_watchdog", "cgroup_oom_kills",
                "host_oom_kills", "signal")
NEAR_LIMIT = 0.85  # peak RSS at or above this share of a limit counts as "near the limit"


def host_memory_total() -> int | None:
    """The machine's RAM in bytes (psutil); None when unknown."""
    try:
        return int(psutil.virtual_memory().total)
    except (OSError, RuntimeError, psutil.Error):
        return None


@dataclass(frozen=True)
class TopAllocation:
    """With --profile-memory: the site that allocated most in the fatal cell (``execute.memprofile``)."""

    where: str  # "cell 3, line 3", "cell 2, line 3 (in make_arrays, called from cell 3)", "numpy, called from ..."
    bytes: int
    line: str | None = None  # the source text of that line


@dataclass
class DeathFacts:
    path: str | None
    returncode: int | None
    cell: int | None = None  # the cell running when it died (None: between cells)
    cell_id: str | None = None
    pid: int | None = None
    stderr_tail: str = ""
    faulthandler_text: str = ""
    killed_for_memory: Sample | None = None  # the monitor's watchdog sample that triggered the kill
    memory_limit: int | None = None  # --memory-limit
    recent: Sequence[Sample] = ()  # the last ~5 s of samples
    peak_rss: int = 0
    cgroup_before: CgroupInfo | None = None
    cgroup_after: CgroupInfo | None = None
    host_oom_before: int | None = None
    host_oom_after: int | None = None
    host_total: int | None = None
    cell_growth: Sequence[tuple[int, int]] = ()  # (cell, rss growth in bytes), largest first
    killed_by_us: bool = False  # nbmedic itself killed it (an interrupt that did not work)
    elapsed: float | None = None  # seconds into the cell
    extra: dict[str, Any] = field(default_factory=dict)
    cell_label: str | None = None  # how to name the running cell instead of its index ('[7] "x = 1"': live kernels)
    memory_limit_name: str = "--memory-limit"  # what ``memory_limit`` is (live kernels: the guard's limit)
    top_allocation: TopAllocation | None = None  # with --profile-memory
    before_first_cell: bool = False  # it died before running any cell (a live kernel still starting, or idle)


def _where(facts: DeathFacts) -> str:
    if facts.cell_label is not None:
        return f"while running cell {facts.cell_label}"
    if facts.cell is not None:
        return f"while running cell {facts.cell}"
    return "before it ran any cell" if facts.before_first_cell else "between cells"


def memory_limits(facts: DeathFacts) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if facts.memory_limit:
        out.append((facts.memory_limit_name, facts.memory_limit))
    cg = facts.cgroup_after or facts.cgroup_before
    if cg is not None and cg.limit and cg.limit != facts.memory_limit:
        out.append((f"the cgroup v{cg.version} memory limit", cg.limit))
    if facts.host_total:
        out.append(("the machine's RAM", facts.host_total))
    return sorted(out, key=lambda item: item[1])


def _delta(before: int | None, after: int | None) -> int | None:
    if before is None or after is None:
        return None
    return max(0, after - before)


def _trend(recent: Sequence[Sample]) -> dict[str, Any]:
    if not recent:
        return {}
    first, last = recent[0], recent[-1]
    span = last.t - first.t
    out: dict[str, Any] = {"rss_first": first.rss, "rss_last": last.rss, "rss_max": max(s.rss for s in recent),
                           "seconds": round(span, 2)}
    if span > 0:
        out["rss_growth_per_s"] = int((last.rss - first.rss) / span)
    out["samples"] = [[round(s.t, 2), s.rss] for s in recent[-50:]]
    return out


def _crash_stack(text: str) -> tuple[str | None, StackDump | None]:
    found = crash_dump(text)
    if found is None:
        return None, None
    return found


def _short(path: str) -> str:
    """``ctypes/__init__.py`` rather than a bare ``__init__.py``; ``foo.py`` otherwise."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if parts[-1] == "__init__.py" and len(parts) > 1 else parts[-1]


def _front(evidence: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The same evidence with ``keys`` first (renderers show the first items)."""
    out = {k: evidence[k] for k in keys if k in evidence}
    out.update((k, v) for k, v in evidence.items() if k not in out)
    return out


def _stack_summary(dump: StackDump) -> tuple[str, str | None, dict[str, Any]]:
    """(stack text of the crashing thread, "in X called from line N in f", evidence)."""
    thread = next((t for t in dump.threads if t.current), None) or dump.main
    if thread is None:
        return dump.text[-3000:], None, {}
    frames = thread.frames
    lines = [f"Thread {thread.ident} (most recent call first):"] + [f"  {f}" for f in frames[:40]]
    cell_frames = [f for f in frames if f.in_cell]
    where = None
    evidence: dict[str, Any] = {"crash_thread_is_main": thread.is_main}
    if frames:
        top = frames[0]
        if cell_frames:
            inner = cell_frames[0]
            evidence.update(cell_line=inner.line, cell_function=inner.function)
            called = f"line {inner.line}" + (f" in {inner.function}" if inner.function != "<module>" else "")
            if top is inner:
                where = f"at {called} of the cell"
            else:
                where = f"in {top.function} ({_short(top.file)}, line {top.line}) called from {called}"
        else:
            where = f"in {top.function} ({_short(top.file)}, line {top.line})"
        evidence["crash_function"] = top.function
        evidence["crash_file"] = top.file
    return "\n".join(lines), where, evidence


@dataclass(frozen=True)
class _Signs:
    """What the facts say, computed once for every branch of the diagnosis."""

    sig: str | None
    where: str
    cg_oom: int | None
    host_oom: int | None
    peak: int
    limits: list[tuple[str, int]]
    near: list[tuple[str, int]]  # the limits the memory was near at the end
    growth: str  # "; memory grew most in cell 3 (+1.0 GiB)" or ""
    top: str  # "; the line that allocated most: cell 3, line 3 (120.0 MiB)" or ""


def _signs(facts: DeathFacts) -> _Signs:
    recent_peak = max([s.rss for s in facts.recent] or [0])
    peak = max(facts.peak_rss, recent_peak, facts.killed_for_memory.rss if facts.killed_for_memory else 0)
    limits = memory_limits(facts)
    level = recent_peak if facts.recent else peak  # memory at the end, not long ago
    top = [f"cell {c} (+{format_bytes(g)})" for c, g in facts.cell_growth[:3] if g > 0]
    return _Signs(
        sig=signal_name(facts.returncode), where=_where(facts),
        cg_oom=_delta(facts.cgroup_before.oom_kills if facts.cgroup_before else None,
                      facts.cgroup_after.oom_kills if facts.cgroup_after else None),
        host_oom=_delta(facts.host_oom_before, facts.host_oom_after), peak=peak, limits=limits,
        near=[(name, lim) for name, lim in limits if level >= NEAR_LIMIT * lim],
        growth="; memory grew most in " + ", ".join(top) if top else "", top=_top_allocation(facts.top_allocation))


def _top_allocation(top: TopAllocation | None) -> str:
    if top is None:
        return ""
    line = f": {top.line.strip()[:120]}" if top.line and top.line.strip() else ""
    return f"; the line that allocated most: {top.where} ({format_bytes(top.bytes)}){line}"


def _evidence(facts: DeathFacts, signs: _Signs) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "exit_code": facts.returncode,
        "signal": signs.sig,
        "pid": facts.pid,
        "peak_rss": signs.peak,
        "limits": {name: lim for name, lim in signs.limits},
        "cgroup_oom_kills": signs.cg_oom,
        "host_oom_kills": signs.host_oom,
        "killed_by_watchdog": facts.killed_for_memory is not None,
        "rss_trend": _trend(facts.recent),
        "stderr_tail": facts.stderr_tail[-3000:],
    }
    if facts.cgroup_after is not None:
        evidence["cgroup"] = {"version": facts.cgroup_after.version, "limit": facts.cgroup_after.limit,
                              "usage": facts.cgroup_after.usage}
    if facts.cell_growth:
        evidence["cells_growing_rss"] = [{"cell": c, "rss_growth": g} for c, g in facts.cell_growth[:5]]
    if facts.elapsed is not None:
        evidence["seconds_into_cell"] = round(facts.elapsed, 3)
    if facts.killed_by_us:
        evidence["killed_by_nbmedic"] = True
    if facts.top_allocation is not None:
        evidence.update(top_allocation=facts.top_allocation.where, top_allocation_bytes=facts.top_allocation.bytes,
                        top_allocation_line=facts.top_allocation.line)
    evidence.update(facts.extra)
    return evidence


def _memory(facts: DeathFacts, signs: _Signs, evidence: dict[str, Any]) -> Finding | None:
    """RN101 when the kernel was killed for memory (by our watchdog, the OOM killer, a SIGKILL near a limit)."""
    kw: dict[str, Any] = {"cell": facts.cell, "cell_id": facts.cell_id}
    code, sig, where = facts.returncode, signs.sig, signs.where
    if facts.killed_for_memory is not None:
        limit = facts.memory_limit
        evidence["limit"] = limit
        used = format_bytes(facts.killed_for_memory.rss)
        if facts.memory_limit_name == "--memory-limit":
            msg = (f"the kernel was killed for memory {where}: its processes used {used}, over the "
                   f"--memory-limit of {format_bytes(limit or 0)}{signs.growth}{signs.top}")
        else:  # the live memory guard kills just below the limit, before the OOM killer would
            share = f"{facts.killed_for_memory.rss / limit:.0%} of " if limit else ""
            msg = (f"the kernel was killed by nbmedic's memory guard {where}: its processes used {used}, "
                   f"{share}the {format_bytes(limit or 0)} memory limit ({facts.memory_limit_name}){signs.growth}{signs.top}")
        return make("RN101", facts.path, msg, evidence=_front(evidence, *_MEMORY_KEYS), **kw)
    if sig == "SIGKILL" and not facts.killed_by_us and (signs.cg_oom or signs.host_oom or signs.near):
        if signs.cg_oom:
            why = "the OOM killer (the cgroup's oom_kill counter went up)"
        elif signs.host_oom:
            why = "the OOM killer (the host's oom_kill counter went up)"
        else:
            why = f"SIGKILL with its memory near {signs.near[0][0]}"
        lim = signs.near[0] if signs.near else (signs.limits[0] if signs.limits else None)
        evidence["limit"] = lim[1] if lim else None
        size = f": peak RSS {format_bytes(signs.peak)}" + (
            f" of the {format_bytes(lim[1])} limit ({lim[0]})" if lim else "")
        msg = f"the kernel was killed for memory by {why} {where}{size}{signs.growth}{signs.top}"
        return make("RN101", facts.path, msg, evidence=_front(evidence, *_MEMORY_KEYS), **kw)
    if (signs.cg_oom or signs.host_oom) and code is not None and code < 0 and sig not in CRASH_SIGNALS:
        msg = f"the kernel was killed by {sig} {where} and the OOM killer was active (oom_kill counter went up){signs.top}"
        return make("RN101", facts.path, msg, evidence=evidence, **kw)
    return None


def _crash(facts: DeathFacts, signs: _Signs, evidence: dict[str, Any]) -> Finding:
    """RN102: a fatal signal, with the stack faulthandler wrote as the process went down."""
    sig = signs.sig or ""
    error_line, dump = _crash_stack(facts.faulthandler_text or facts.stderr_tail)
    detail = ""
    if dump is not None and dump.threads:
        stack, at, extra = _stack_summary(dump)
        evidence["stack"] = stack
        evidence["fatal_error"] = error_line
        evidence.update(extra)
        if at:
            detail = f", {at}"
    msg = f"the kernel was killed by {sig} ({CRASH_SIGNALS[sig]}) {signs.where}{detail}"
    return make("RN102", facts.path, msg, cell=facts.cell, cell_id=facts.cell_id, evidence=_front(
        evidence, "signal", "fatal_error", "crash_function", "cell_line", "cell_function", "stack"))


def _other(facts: DeathFacts, signs: _Signs, evidence: dict[str, Any]) -> Finding:
    """RN103 for an exit of its own, else RN100."""
    code, where = facts.returncode, signs.where
    kw: dict[str, Any] = {"cell": facts.cell, "cell_id": facts.cell_id}
    if code is not None and code >= 0:
        msg = f"the kernel process exited by itself with code {code} {where}"
        if code == 0:
            msg += " (sys.exit or os._exit(0) in the notebook, or a library that exits the process)"
        return make("RN103", facts.path, msg, evidence=evidence, **kw)
    if facts.killed_by_us:
        msg = f"the kernel was killed by nbmedic {where} after it ignored an interrupt"
    elif signs.sig:
        msg = (f"the kernel was killed by {signs.sig} {where}; no sign of memory pressure or a crash was found, "
               "so something outside the notebook probably sent that signal")
    else:
        msg = f"the kernel died {where} and its exit status is unknown"
    return make("RN100", facts.path, msg, evidence=evidence, **kw)


def diagnose_death(facts: DeathFacts) -> Finding:
    """The one finding that explains the death: memory, then a native crash, then an exit, then unknown."""
    signs = _signs(facts)
    evidence = _evidence(facts, signs)
    memory = _memory(facts, signs, evidence)
    if memory is not None:
        return memory
    if signs.sig in CRASH_SIGNALS:
        return _crash(facts, signs, evidence)
    return _other(facts, signs, evidence)
