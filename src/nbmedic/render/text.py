"""The terminal report: a screen's worth, grouped by file, colour only on a terminal.

Each file gets a header line (its worst severity's mark, its path relative to the working folder, the
command's note on it); under it its findings, errors first, then warnings, then info (then by cell),
each in at most three lines::

    ✗ examples/clinic/memory_hog.ipynb  ran: died, 2/2 cells in 1.3 s, peak RSS 300.9 MiB
      ✗ RN101 cell 1: the kernel was killed for memory while running cell 1: its processes…
        limit: 300.0 MiB · limits: --memory-limit=300.0 MiB, the machine's RAM=23.5 GiB
        fix: reduce the memory the named cell needs (load less, use chunks or smaller dt…

The facts line folds the evidence to the first facts of the code's layout (``nbmedic.evidence``: the
facts that explain it come first), leaving out those the headline already shows; a multi-line value
shows one line (a traceback's innermost frame and its code line, a stack's innermost frame, the last
line of anything else).  Every value is formatted by its declared unit.  Lines are clipped to the
terminal's width (``report_width``).  With ``verbose`` every fact is shown, multi-line values as
excerpts, and long lines are wrapped instead of clipped.  Files without problems take one line each, or
one line for all of them when there are more than ``FOLD_HEALTHY``.  The last line is the summary.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import textwrap
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from nbmedic.ansi import colour_wanted, paint, strip_ansi
from nbmedic.evidence import UnitSpec, layout
from nbmedic.findings import Finding, Severity, sort_findings
from nbmedic.render.paths import display_path
from nbmedic.units import format_bytes

_MARK = {"error": "✗", "warning": "!", "info": "·"}
_RANK = {"error": 0, "warning": 1, "info": 2}
_KEY_FACTS = 3  # the facts of a finding the folded report considers (the first of its layout)
_MAX_VALUE = 160
_MAX_ITEMS = 8
_MAX_LINES = 8
_RULE_RE = re.compile(r"^-{20,}$")
MACHINE = "(machine)"  # the header of findings about no file
PIPE_WIDTH = 100  # the widest line when the report does not go to a terminal (CI logs, files)
TERMINAL_WIDTH = 80  # a terminal whose width cannot be read
MIN_WIDTH = 40
FOLD_HEALTHY = 3  # more files without problems than this: one line for all of them


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
    """One evidence value as a line of text, by its unit (lists and mappings item by item: a plain unit
    applies to every value of a mapping, as ``limits:bytes`` makes ``{"the machine's RAM": 25276063744}``
    read ``the machine's RAM=23.5 GiB``; a nested layout, to the sub-keys it declares)."""
    if isinstance(value, Mapping):
        # a nested layout gives each sub-key's unit: a sub-key it does not declare has no known unit, so
        # the text leaves it out (JSON has it) rather than print a raw figure
        units = [(k, v, unit.get(str(k)) if isinstance(unit, Mapping) else unit)
                 for k, v in value.items() if v is not None]
        parts = [f"{k}={format_value(v, u)}" for k, v, u in units if u is not None][:_MAX_ITEMS]
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


def _meaningful(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines() if line.strip() and not _RULE_RE.match(line)]


def excerpt(text: str, unit: UnitSpec) -> list[str]:
    """The useful lines of a multi-line value: a stack's first lines (innermost frame first), the last
    lines of anything else (a traceback's or a log's end matters most)."""
    lines = [_clip(line) for line in _meaningful(text)]
    if len(lines) <= _MAX_LINES:
        return lines
    if unit == "stack":
        return [*lines[:_MAX_LINES], "…"]
    return ["…", *lines[-_MAX_LINES:]]


_FRAME_RE = re.compile(r'^\s*(?:Cell In\[\d+\], line \d+|File "[^"]*", line \d+|Input In \[\d+\])')
_ARROW_RE = re.compile(r"^\s*-+>\s*\d*\s?")


def key_line(text: str, unit: UnitSpec, shown: str = "") -> str:
    """The one line of a multi-line value the folded report shows: a stack's innermost frame (its first
    ``File`` line); a traceback's innermost frame with its code line (``Cell In[2], line 1: x = d['k']``);
    else the last line not already in ``shown`` (the finding's headline)."""
    lines = _meaningful(text)
    if not lines:
        return ""
    if unit == "stack":
        return next((line.strip() for line in lines if _FRAME_RE.match(line)), lines[0].strip())
    frames = [i for i, line in enumerate(lines) if _FRAME_RE.match(line)]
    if frames:
        i = frames[-1]
        after = lines[i + 1:-1]  # the frame's code, not the exception line that ends the traceback
        code = next((line for line in after if _ARROW_RE.match(line)), after[0] if after else "")
        code = _ARROW_RE.sub("", code).strip() if _ARROW_RE.match(code) else code.strip()
        return f"{lines[i].strip()}: {code}" if code else lines[i].strip()
    return next((line.strip() for line in reversed(lines) if line.strip() not in shown), lines[-1].strip())


def _present(finding: Finding) -> list[tuple[str, Any, UnitSpec]]:
    """(key, value, unit) of the evidence worth showing, in layout order (undeclared keys last)."""
    declared = layout(finding.code)
    keys = [k for k in declared if k in finding.evidence] + [k for k in finding.evidence if k not in declared]
    return [(key, finding.evidence[key], declared.get(key, "text")) for key in keys
            if finding.evidence[key] not in (None, [], {}, "")]


def evidence_lines(finding: Finding) -> list[tuple[str, str | list[str]]]:
    """(key, one-line value or excerpt lines) for every fact, in layout order (the verbose report)."""
    return [(key, excerpt(value, unit) if isinstance(value, str) and "\n" in value.strip()
             else format_value(value, unit)) for key, value, unit in _present(finding)]


def _visible(value: Any, unit: UnitSpec, shown: str) -> bool:
    """True if the headline ``shown`` already tells ``value``: its text reads as a whole in it (``3`` in
    ``code 3``, not in ``13`` or ``3.5``; a count or a number of lines also without its unit), each item
    of a list, each value of a mapping."""
    if isinstance(value, Mapping):
        return all(_visible(v, unit[str(k)] if isinstance(unit, Mapping) else unit, shown)
                   for k, v in value.items() if v is not None and (not isinstance(unit, Mapping) or str(k) in unit))
    if isinstance(value, (list, tuple)):
        return all(_visible(v, unit, shown) for v in value)
    texts = [format_value(value, unit)]
    if unit in ("count", "lines") and isinstance(value, (int, float)) and not isinstance(value, bool):
        texts.append(format_value(value, "count"))
    return any(re.search(rf"(?<![\w.]){re.escape(t.lower())}(?![\w]|\.\d)", shown.lower()) for t in texts)


def _locates(unit: UnitSpec) -> bool:
    """True for positions (indexes, line numbers, ids: unit ``number``), which the headline's cell and
    message already place."""
    return unit == "number" if isinstance(unit, str) else all(_locates(u) for u in unit.values())


def key_facts(finding: Finding, shown: str = "") -> list[tuple[str, str]]:
    """(key, value) of the facts that explain ``finding``: the first of its layout, less positions
    (unit ``number``) and those the headline ``shown`` already tells."""
    facts = []
    for key, value, unit in _present(finding)[:_KEY_FACTS]:
        if _locates(unit):
            continue
        if isinstance(value, str) and "\n" in value.strip():
            text = _clip(key_line(value, unit, shown))
            if text and not _visible(text, "text", shown):
                facts.append((key, text))
        elif not _visible(value, unit, shown):
            facts.append((key, format_value(value, unit)))
    return facts


_SGR = {"error": "1;31", "warning": "33", "info": "36", "ok": "32", "bold": "1", "dim": "2", "fix": "32"}
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 (a lone \x9b is a CSI too)


def _clean(text: str) -> str:
    """Text from notebooks and kernels may carry escape sequences: never let them reach the terminal."""
    return _CONTROL_RE.sub("?", strip_ansi(text).replace("\t", "    "))


def _cells(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide East Asian characters take two, combining marks none)."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def report_width(stream: IO[str]) -> int:
    """The width lines are clipped to: the terminal's (``COLUMNS`` first, as ``shutil`` reads it) when
    ``stream`` is one, else ``PIPE_WIDTH`` (CI logs and files show 100 columns well)."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return PIPE_WIDTH
    env = os.environ.get("COLUMNS", "")
    columns = int(env) if env.isdigit() else 0
    if not columns:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
    return max(columns or TERMINAL_WIDTH, MIN_WIDTH)


Segment = tuple[str, str | None]  # text (already clean) and its style (None: plain)


class _Out:
    """Lines to a stream, clipped (or, verbose, wrapped) to ``width``; coloured only on a terminal (and
    not with ``NO_COLOR`` or ``TERM=dumb``)."""

    def __init__(self, stream: IO[str], width: int, *, wrap: bool) -> None:
        self.stream = stream
        self.colour = colour_wanted(stream)
        self.width = width
        self.wrap = wrap
        self.lines: list[str] = []

    def style(self, text: str, style: str | None) -> str:
        return paint(text, _SGR[style]) if self.colour and text and style else text

    def line(self, *segments: Segment, indent: int = 0) -> str:
        """Write one line (clipped to the width, or wrapped with ``indent`` under its first line); return
        its plain text."""
        plain = "".join(text for text, _ in segments)
        if _cells(plain) <= self.width:
            self.lines.append("".join(self.style(text, style) for text, style in segments))
        elif self.wrap:
            self._wrapped(segments, indent)
        else:
            self.lines.append(self._clipped(segments))
        return plain

    def _clipped(self, segments: Sequence[Segment]) -> str:
        room = self.width - 1  # and "…"
        parts = []
        for text, style in segments:
            kept = ""
            for ch in text:
                if _cells(kept + ch) > room:
                    break
                kept += ch
            parts.append(self.style(kept, style))
            room -= _cells(kept)
            if kept != text:
                break
        return "".join(parts) + "…"

    def _wrapped(self, segments: Sequence[Segment], indent: int) -> None:
        """Wrapped at spaces; the lead segments (indent, mark, code, key) keep their style."""
        lead = "".join(text for text, _ in segments[:-1])
        lines = textwrap.wrap(lead + segments[-1][0], self.width, subsequent_indent=" " * indent,
                              break_on_hyphens=False) or [lead]
        if lines[0].startswith(lead):
            lines[0] = "".join(self.style(t, st) for t, st in segments[:-1]) + lines[0][len(lead):]
        self.lines.extend(lines)

    def flush(self) -> None:
        self.stream.write("\n".join(self.lines) + "\n")
        self.stream.flush()


def _one_line(text: str) -> str:
    return _clean(text.strip().replace("\n", " ⏎ "))


def _write_finding(out: _Out, f: Finding, *, verbose: bool, fix_for: int = 1) -> None:
    """The finding's lines; its fix line says ``fix (N findings)`` when it is the fix of the ``fix_for``
    findings above too (0: left for the next finding, which has the same fix)."""
    where = f"cell {f.cell}" if f.cell is not None else "file"
    lead = f"  {_MARK[f.severity]} {f.code} "
    headline = out.line((lead, f.severity), (f"{where}: ", "bold"), (_one_line(f.message), None), indent=6)
    if not verbose:
        shown = headline if out.wrap else _shown(headline, out.width)
        segments: list[Segment] = []
        for i, (key, fact) in enumerate(key_facts(f, shown)):
            segments += [(f"{' · ' if i else ''}{key}: ", "dim"), (_one_line(fact), None)]
        if segments:
            out.line(("    ", None), *segments)
    else:
        for key, value in evidence_lines(f):
            if isinstance(value, list):
                out.line(("    ", None), (f"{key}:", "dim"))
                for line in value:
                    out.line(("      ", None), ("…", "dim") if line == "…" else (_clean(line), None), indent=8)
            else:
                out.line((f"    {key}: ", "dim"), (_one_line(value), None), indent=6)
    if f.fix and fix_for:
        label = "fix: " if fix_for == 1 else f"fix ({fix_for} findings): "
        out.line(("    ", None), (label, "fix"), (_one_line(f.fix), None), indent=6)


def _write_group(out: _Out, group: Sequence[Finding], *, verbose: bool) -> None:
    """A file's findings; findings in a row with the same fix share one fix line, after the last."""
    run = 0
    for i, f in enumerate(group):
        run += 1
        shared = not verbose and i + 1 < len(group) and bool(f.fix) and group[i + 1].fix == f.fix
        _write_finding(out, f, verbose=verbose, fix_for=0 if shared else run)
        run = run if shared else 0


def _shown(line: str, width: int) -> str:
    """What of ``line`` a reader sees when it is clipped to ``width``."""
    return line if _cells(line) <= width else line[: max(width - 1, 0)]


_RUN_NOTE_RE = re.compile(r"^(?:ran: )?(ok|failed|died|timeout|not-started), \d+/\d+ cells in (\d+(?:\.\d+)?) s")


def _runs(notes: Mapping[str, str], files: Sequence[str]) -> str:
    """``17 runs, 9 failed, 21.0 s`` from the notes of a run (``execute.batch.run_note``), or ''."""
    matches = [m for m in (_RUN_NOTE_RE.match(notes.get(path, "")) for path in files) if m]
    if not matches:
        return ""
    failed = sum(1 for m in matches if m.group(1) != "ok")
    total = sum(float(m.group(2)) for m in matches)
    return f"{len(matches)} runs, {failed} failed, {_seconds(total)}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 and word != 'info' else ''}"


def summary_line(findings: Sequence[Finding], files: Sequence[str], *, verb: str | None, noun: str,
                 notes: Mapping[str, str] | None, width: int) -> tuple[str, str]:
    """The last line (and its style): notebooks, counts by severity, and how the runs went when the
    notes tell (left out when the line would not fit)."""
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    text = (f"{_plural(len(files), noun)} {verb or 'checked'}: {_plural(counts['error'], 'error')}, "
            f"{_plural(counts['warning'], 'warning')}, {_plural(counts['info'], 'info')}")
    runs = _runs(notes or {}, files)
    if runs and _cells(f"{text} · {runs}") <= width:
        text = f"{text} · {runs}"
    return text, "error" if counts["error"] else ("warning" if counts["warning"] else "ok")


def _worst(group: Sequence[Finding]) -> Severity:
    return min((f.severity for f in group), key=_RANK.__getitem__)


def _names(names: Sequence[str], room: int) -> str:
    """As many of ``names`` as fit in ``room`` columns, then ``… and N more``."""
    for n in range(len(names), 0, -1):
        text = ", ".join(names[:n]) + (f", … and {len(names) - n} more" if n < len(names) else "")
        if _cells(text) <= room:
            return text
    return f"… {len(names)}"


def _healthy(out: _Out, paths: Sequence[str], notes: Mapping[str, str], *, fold: bool, noun: str) -> None:
    if fold:
        lead = f"{len(paths)} {noun}s without problems: "
        names = _names([_clean(display_path(p)) for p in paths], out.width - 2 - _cells(lead))
        out.line(("✓ ", "ok"), (lead, "bold"), (names, None))
        return
    for path in paths:
        out.line(("✓ ", "ok"), (_clean(display_path(path)), "bold"),
                 (f"  {_clean(notes.get(path) or 'no problems found')}", "dim"), indent=4)


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
    width: int | None = None,
) -> None:
    """Print the report: ``notes`` adds a line of facts to a file's header (e.g. how its run went);
    ``verbose`` shows every evidence fact; ``width`` overrides ``report_width``."""
    target = stream or sys.stdout
    out = _Out(target, max(width or report_width(target), MIN_WIDTH), wrap=verbose)
    notes = notes or {}
    ordered = sorted(sort_findings(f for f in findings if show_info or f.severity != "info"),
                     key=lambda f: (f.path or "", _RANK[f.severity]))  # stable: by cell within a severity
    if title:
        out.line((_clean(title), "bold"))
    by_file = {k: list(g) for k, g in itertools.groupby(ordered, key=lambda f: f.path or MACHINE)}
    paths = [*files, *(p for p in by_file if p not in files)]
    healthy = [p for p in paths if p not in by_file]
    fold = len(healthy) > FOLD_HEALTHY and not verbose
    for path in paths:
        if path not in by_file:
            if not fold:
                _healthy(out, [path], notes, fold=False, noun=noun)
            continue
        group = by_file[path]
        worst = _worst(group)
        shown = _clean(path if path == MACHINE else display_path(path))
        note = notes.get(path)
        out.line((f"{_MARK[worst]} ", worst), (shown, "bold"), (f"  {_clean(note)}" if note else "", "dim"),
                 indent=4)
        _write_group(out, group, verbose=verbose)
    if fold:
        _healthy(out, healthy, notes, fold=True, noun=noun)
    text, style = summary_line(ordered, files, verb=summary, noun=noun, notes=notes, width=out.width)
    out.lines.append(out.style(text, style))  # never clipped: the counts must read whole
    out.flush()
