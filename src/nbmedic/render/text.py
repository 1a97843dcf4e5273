"""The readable terminal report: grouped by file, one block per finding (colour only on a terminal).

Evidence values are formatted by the unit their code's layout declares (``nbmedic.evidence``), in the
layout's order; paths are shown relative to the working folder (``render.paths.display_path``).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from nbmedic.ansi import colour_wanted, paint, strip_ansi
from nbmedic.evidence import UnitSpec, layout
from nbmedic.findings import Finding, sort_findings
from nbmedic.render.paths import display_path
from nbmedic.units import format_bytes

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_MARK = {"error": "✗ ", "warning": "! ", "info": "· "}
_MAX_EVIDENCE = 6
_MAX_VALUE = 160
_MAX_ITEMS = 8
_MAX_LINES = 8
_RULE_RE = re.compile(r"^-{20,}$")
MACHINE = "(machine)"  # the header of findings about no file


def _seconds(value: float) -> str:
    """``0.397 s``, ``3.004 s``, ``120 s``, ``1,200 s``."""
    if abs(value) >= 1000:
        return f"{value:,.0f} s"
    text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return text.rstrip("0").rstrip(".") + " s"


def _scalar(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if unit == "bytes":
            return format_bytes(value)
        if unit == "seconds":
            return _seconds(value)
        if unit == "fraction":
            return f"{value * 100:.1f} %"
        if unit in ("count", "lines"):
            text = f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
            return f"{text} lines" if unit == "lines" else text
    return str(value)


def format_value(value: Any, unit: UnitSpec = "text") -> str:
    """One evidence value as a line of text, by its unit (lists and mappings item by item)."""
    if isinstance(value, Mapping):
        parts = [f"{k}={format_value(v, unit.get(str(k), 'text') if isinstance(unit, Mapping) else unit)}"
                 for k, v in list(value.items())[:_MAX_ITEMS] if v is not None]
        text = ", ".join(parts)
    elif isinstance(value, (list, tuple)):
        items = [format_value(v, unit) for v in value[:_MAX_ITEMS]]
        sep = "; " if any(isinstance(v, Mapping) for v in value) else ", "
        text = sep.join(items) + (f"{sep}… ({len(value)} in all)" if len(value) > _MAX_ITEMS else "")
    else:
        text = _scalar(value, unit if isinstance(unit, str) else "text")
    return _clip(text.replace("\n", "⏎ "))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def excerpt(text: str, unit: UnitSpec) -> list[str]:
    """The useful lines of a multi-line value: a stack's first lines (innermost frame first), the last
    lines of anything else (a traceback's or a log's end matters most)."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines() if line.strip() and not _RULE_RE.match(line)]
    lines = [_clip(line) for line in lines]
    if len(lines) <= _MAX_LINES:
        return lines
    if unit == "stack":
        return [*lines[:_MAX_LINES], "…"]
    return ["…", *lines[-_MAX_LINES:]]


def evidence_lines(finding: Finding) -> list[tuple[str, str | list[str]]]:
    """(key, one-line value or excerpt lines) for the evidence the report shows, in layout order."""
    declared = layout(finding.code)
    keys = [k for k in declared if k in finding.evidence] + [k for k in finding.evidence if k not in declared]
    out: list[tuple[str, str | list[str]]] = []
    for key in keys:
        value = finding.evidence[key]
        if value is None or value == [] or value == {} or value == "":
            continue
        unit = declared.get(key, "text")
        if isinstance(value, str) and "\n" in value.strip():
            out.append((key, excerpt(value, unit)))
        else:
            out.append((key, format_value(value, unit)))
        if len(out) == _MAX_EVIDENCE:
            break
    return out


_SGR = {"error": "1;31", "warning": "33", "info": "36", "ok": "32", "bold": "1", "dim": "2", "fix": "32"}
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(text: str) -> str:
    """Text from notebooks and kernels may carry escape sequences: never let them reach the terminal."""
    return _CONTROL_RE.sub("?", strip_ansi(text))


class _Out:
    """Lines to a stream, coloured only on a terminal (and not with ``NO_COLOR`` or ``TERM=dumb``)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.colour = colour_wanted(stream)
        self.lines: list[str] = []

    def style(self, text: str, style: str) -> str:
        return paint(text, _SGR[style]) if self.colour and text else text

    def line(self, *parts: str) -> None:
        self.lines.append("".join(parts))

    def flush(self) -> None:
        self.stream.write("\n".join(self.lines) + "\n")
        self.stream.flush()


def _write_finding(out: _Out, f: Finding) -> None:
    where = f"cell {f.cell}" if f.cell is not None else "file"
    out.line("  ", out.style(f"{f.code} ", f.severity), out.style(f"{f.severity:<7} ", f.severity),
             out.style(f"{where}: ", "bold"), _clean(f.message))
    for key, value in evidence_lines(f):
        if isinstance(value, list):
            out.line("      ", out.style(f"{key}:", "dim"))
            for line in value:
                out.line("        ", out.style("…", "dim") if line == "…" else _clean(line))
        else:
            out.line("      ", out.style(f"{key}:", "dim"), " ", _clean(value))
    if f.fix:
        out.line("      ", out.style("fix:", "fix"), " ", _clean(f.fix))


def render_text(
    findings: Iterable[Finding],
    *,
    files: Sequence[str],
    stream: IO[str] | None = None,
    title: str | None = None,
    show_info: bool = True,
    notes: Mapping[str, str] | None = None,
    summary: str | None = None,
    noun: str = "notebook",
    verbose: bool = False,
) -> None:
    """Print the report: ``notes`` adds a line of facts to a file's header (e.g. how its run went);
    ``verbose`` shows every evidence fact."""
    out = _Out(stream or sys.stdout)
    ordered = sort_findings(f for f in findings if show_info or f.severity != "info")
    if title:
        out.line(out.style(title, "bold"))
    by_file = {k: list(g) for k, g in itertools.groupby(ordered, key=lambda f: f.path or MACHINE)}
    for path in [*files, *(p for p in by_file if p not in files)]:
        group = by_file.get(path, [])
        note = (notes or {}).get(path)
        shown = _clean(path if path == MACHINE else display_path(path))
        if not group:
            out.line(out.style("✓ ", "ok"), out.style(shown, "bold"), out.style(f"  {note or 'no problems found'}", "dim"))
            continue
        worst = group[0].severity
        out.line(out.style(_MARK[worst], worst), out.style(shown, "bold"), out.style(f"  {note}" if note else "", "dim"))
        for f in group:
            _write_finding(out, f)
    counts = {s: sum(1 for f in ordered if f.severity == s) for s in ("error", "warning", "info")}
    n = len(files)
    tail = (f"{n} {noun}{'s' if n != 1 else ''} {summary or 'checked'}: {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['info']} info")
    out.line(out.style(tail, "error" if counts["error"] else ("warning" if counts["warning"] else "ok")))
    out.flush()
