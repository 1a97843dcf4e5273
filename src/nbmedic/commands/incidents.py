"""``nbmedic incidents [list | show ID]``: the kernel deaths monitored kernels recorded.

Records live in ``<data>/nbmedic/incidents`` (``nbmedic.live.incidents``); ``list`` prints one line per
incident, oldest first, ``show`` one whole record in readable form.  ``--format json`` gives the records as
they are stored (under ``incidents``), with each one's diagnosis as a finding of its notebook, and
``--report FILE`` renders that document (``render.reports``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.commands.common import report_files, write_report_files
from nbmedic.errors import UsageError
from nbmedic.evidence import layout
from nbmedic.live.incidents import find_incident, incident_finding, list_incidents, local_time
from nbmedic.live.kernels import format_duration
from nbmedic.logs.matcher import parse_since
from nbmedic.render.document import build_document, to_json
from nbmedic.render.paths import display_path
from nbmedic.render.reports import ReportInput
from nbmedic.render.text import excerpt, format_value
from nbmedic.units import format_bytes

__all__ = ["run", "since_epoch", "sparkline"]

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|w)", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "w": 7 * 86400}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MESSAGE_WIDTH = 100
_BARS = "▁▂▃▄▅▆▇█"
_ASCII_BARS = "_.-=+*#@"
# shown in their own lines of `show`, not again among the evidence
_SHOWN = {"live_session", "incident", "incident_time", "kernel_id", "notebook", "execution_count", "cell_source",
          "oom_kill_line", "signal", "exit_code", "pid"}


UNKNOWN_NOTEBOOK = "(unknown notebook)"  # the file of an incident whose kernel was not told its notebook


def since_epoch(text: str, *, now: float | None = None) -> float:
    """``--since``: '2026-01-02 10:11', '2026-01-02', '10:11' (today) or an age ('15m', '2h', '3d', '1w')."""
    now = time.time() if now is None else now
    value = text.strip()
    age = _AGE.fullmatch(value)
    if age:
        return now - float(age.group(1)) * _AGE_UNITS[age.group(2).lower()]
    try:
        stamp = parse_since(value)
    except ValueError:
        raise UsageError(f"--since {text!r}: expected a time such as '2026-01-02 10:11', '2026-01-02', '10:11' "
                         "or an age such as '2h', '3d'") from None
    if isinstance(stamp, datetime):
        return stamp.timestamp()  # a naive time is local time
    return datetime.combine(date.fromtimestamp(now), stamp).timestamp()


def _clean(text: object) -> str:
    """Text from kernels may carry escape sequences: never let them reach the terminal."""
    return _CONTROL.sub("?", strip_ansi(str(text)))


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3].rstrip() + "..."


def _list_line(record: Mapping[str, Any]) -> str:
    finding = _mapping(record.get("finding"))
    notebook = display_path(record["notebook"]) if record.get("notebook") else "-"
    message = _one_line(_clean(finding.get("message") or "the kernel died"), _MESSAGE_WIDTH)
    return f"{record['id']}  {local_time(record['time'])}  {_clean(notebook)}  {finding.get('code', '?')}  {message}"


def sparkline(values: Sequence[float], width: int = 48, *, ascii_only: bool = False) -> str:
    """``▁▂▄▇█``: ``values`` in at most ``width`` buckets (each its highest value), scaled from 0 to the peak."""
    if not values:
        return ""
    bars = _ASCII_BARS if ascii_only else _BARS
    size = max(1, -(-len(values) // width))
    buckets = [max(values[i:i + size]) for i in range(0, len(values), size)]
    peak = max(buckets)
    if peak <= 0:
        return bars[0] * len(buckets)
    return "".join(bars[min(len(bars) - 1, int(v / peak * (len(bars) - 1) + 0.5))] if v > 0 else bars[0]
                   for v in buckets)


def _unicode_ok() -> bool:
    try:
        _BARS.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _timeline(memory: Mapping[str, Any]) -> str | None:
    points = [p for p in memory.get("timeline") or [] if isinstance(p, (list, tuple)) and len(p) >= 2
              and isinstance(p[1], (int, float))]
    if len(points) < 2:
        return None
    rss = [float(p[1]) for p in points]
    span = float(points[-1][0]) - float(points[0][0]) if isinstance(points[0][0], (int, float)) else 0.0
    return (f"{sparkline(rss, ascii_only=not _unicode_ok())}  {format_bytes(rss[0])} -> {format_bytes(rss[-1])}, "
            f"peak {format_bytes(max(rss))}, over {format_duration(max(0.0, span))} ({len(points)} samples)")


def _kernel_line(record: Mapping[str, Any]) -> str:
    details = [str(record[k]) for k in ("kernelspec", "supervisor") if record.get(k)]
    if record.get("pid"):
        details.append(f"pid {record['pid']}")
    return f"{record.get('kernel_id') or '?'}" + (f" ({', '.join(details)})" if details else "")


def _cell_lines(cell: Mapping[str, Any]) -> list[str]:
    count = cell.get("execution_count") if isinstance(cell.get("execution_count"), int) else None
    head = f"[{count}]" if count is not None else "[ ]"
    if cell.get("cell_id"):
        head += f" id {cell['cell_id']}"
    if isinstance(cell.get("seconds"), (int, float)):
        head += f", had run {format_duration(float(cell['seconds']))}"
    source = [line for line in _clean(cell.get("source_head") or "").splitlines()][:12]
    return [f"  cell        {head}", *(f"                | {line}" for line in source)]


def _exit_line(record: Mapping[str, Any]) -> str | None:
    parts = []
    if record.get("signal"):
        parts.append(f"signal {record['signal']}")
    code = record.get("exit_code")
    if isinstance(code, int) and not (parts and code < 0):  # -9 only repeats SIGKILL
        parts.append(f"exit code {code}")
    return ", ".join(parts) or None


def _memory_lines(memory: Mapping[str, Any]) -> list[str]:
    out = []
    figures = [f"{name} {format_bytes(memory[key])}" for key, name in (("peak_rss", "peak"), ("last_rss", "last"))
               if isinstance(memory.get(key), (int, float)) and memory[key] > 0]  # 0: never sampled
    if figures:
        out.append("  memory      " + ", ".join(figures))
    limits = _mapping(memory.get("limits"))
    if limits:
        out.append("  limits      " + ", ".join(f"{_clean(name)} {format_bytes(value)}" for name, value in
                                              limits.items() if isinstance(value, (int, float))))
    line = _timeline(memory)
    if line:
        out.append("  timeline    " + line)
    return out


def _guard_events(value: object) -> list[dict[str, Any]]:
    events = value if isinstance(value, list) else [value]
    return [dict(e) for e in events if isinstance(e, dict)]


def _guard_line(event: Mapping[str, Any]) -> str:
    when = local_time(float(event["time"]))[11:] if isinstance(event.get("time"), (int, float)) else "?"
    text = f"{when} {event.get('action') or 'interrupt'}"
    if isinstance(event.get("rss"), (int, float)) and isinstance(event.get("limit"), (int, float)):
        text += f" at {format_bytes(event['rss'])} of {format_bytes(event['limit'])}"
        if isinstance(event.get("share"), (int, float)):
            text += f" ({event['share'] * 100:.0f} %"
            text += f", {event['limit_source']})" if event.get("limit_source") else ")"
    if isinstance(event.get("execution_count"), int):
        text += f", cell [{event['execution_count']}]"
    return text


def _evidence_lines(finding: Mapping[str, Any], *, skip_stack: bool) -> list[str]:
    code = str(finding.get("code") or "")
    declared = layout(code)
    out = []
    for key, value in _mapping(finding.get("evidence")).items():
        if key in _SHOWN or value in (None, "", [], {}) or (skip_stack and key == "stack"):
            continue
        unit = declared.get(key, "text")
        if isinstance(value, str) and "\n" in value.strip():
            out.append(f"    {key}:")
            out += [f"      {_clean(line)}" for line in excerpt(value, unit)]
        else:
            out.append(f"    {key}: {_clean(format_value(value, unit))}")
    return ["  evidence", *out] if out else []


def _faulthandler_lines(text: str, limit: int = 60) -> list[str]:
    at = text.rfind("Fatal Python error:")
    block = text[at:] if at >= 0 else text
    lines = [line.rstrip() for line in _clean(block).splitlines() if line.strip()]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... {len(lines) - limit} more lines"]
    return ["  faulthandler", *(f"    {line}" for line in lines)] if lines else []


def _show(record: Mapping[str, Any]) -> list[str]:
    finding = _mapping(record.get("finding"))
    when = local_time(float(record["time"])) if isinstance(record.get("time"), (int, float)) else "unknown"
    lines = [f"incident {record['id']}", f"  time        {when}",
             f"  kernel      {_clean(_kernel_line(record))}"]
    if record.get("notebook"):
        lines.append(f"  notebook    {_clean(display_path(record['notebook']))}")
    cell = _mapping(record.get("cell"))
    lines += _cell_lines(cell) if cell else ["  cell        (no cell was running)"]
    code = finding.get("code") or "?"
    lines.append(f"  cause       {code} {_clean(finding.get('message') or 'the kernel died (no diagnosis)')}")
    if finding.get("fix"):
        lines.append(f"  fix         {_clean(finding['fix'])}")
    exit_line = _exit_line(record)
    if exit_line:
        lines.append(f"  exit        {exit_line}")
    lines += _memory_lines(_mapping(record.get("memory")))
    if record.get("oom_kill_line"):
        lines.append(f"  OOM killer  {_clean(record['oom_kill_line'])}")
    lines += [f"  guard       {_guard_line(e)}" for e in _guard_events(record.get("guard"))]
    fault = str(record.get("faulthandler") or "")
    lines += _evidence_lines(finding, skip_stack=bool(fault.strip()))
    lines += _faulthandler_lines(fault)
    return lines


def _write(lines: Iterable[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")


def _list(args: argparse.Namespace) -> int:
    if args.id:
        raise UsageError(f"`incidents list` takes no ID (did you mean `nbmedic incidents show {args.id}`?)")
    reports = report_files(args)
    since = since_epoch(args.since) if args.since else None
    records = list_incidents(since=since, notebook=args.notebook)
    doc = incidents_document(records)
    write_report_files(reports, ReportInput(doc))
    if args.format == "json":
        sys.stdout.write(to_json(doc))
    elif not records:
        _write(["no incidents recorded" + (" (none match the filters)" if since is not None or args.notebook else "")])
    else:
        _write(_list_line(r) for r in records)
    return 0


def incidents_document(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report document of incident records: each one's diagnosis as a finding of its notebook (RN100-
    RN103), the notebooks as the files, the records themselves under ``incidents``."""
    findings = [incident_finding(r, str(r.get("notebook") or UNKNOWN_NOTEBOOK)) for r in records]
    files = list(dict.fromkeys(f.path for f in findings if f.path))
    return build_document(findings, files, {"incidents": list(records)})


def run(args: argparse.Namespace) -> int:
    if args.action != "show":
        return _list(args)
    if getattr(args, "report", None):
        raise UsageError("--report goes with `incidents list`; `show` prints one record")
    record = find_incident(args.id or "")
    if args.format == "json":
        sys.stdout.write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    else:
        _write(_show(record))
    return 0
