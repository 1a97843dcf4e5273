"""The readable terminal report: grouped by file, one block per finding (rich; colour only on a TTY)."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from nbmedic.findings import Finding, sort_findings
from nbmedic.render.paths import display_path
from nbmedic.units import format_bytes

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_MAX_EVIDENCE = 6
_MAX_VALUE = 160


_SIZE_KEY_RE = re.compile(r"rss|limit|bytes|size|memory|growth|kept|dropped|total|usage|output")


def _short(value: Any, key: str = "") -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1024 and _SIZE_KEY_RE.search(key):
        return format_bytes(value)
    if isinstance(value, (list, tuple)):
        items = [_short(v, key) for v in value[:8]]
        text = ", ".join(items) + (f", … ({len(value)} in all)" if len(value) > 8 else "")
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}={_short(v, str(k))}" for k, v in list(value.items())[:6])
    else:
        text = str(value)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


_MAX_LINES = 8
_RULE_RE = re.compile(r"^-{20,}$")


def _excerpt(key: str, text: str) -> list[str]:
    """The useful lines of a multi-line value: a stack's innermost frames come first ("most recent call
    first"), a traceback's or a log's last lines matter most."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines() if line.strip() and not _RULE_RE.match(line)]
    lines = [line if len(line) <= _MAX_VALUE else line[: _MAX_VALUE - 1] + "…" for line in lines]
    if len(lines) <= _MAX_LINES:
        return lines
    if "stack" in key:
        return [*lines[:_MAX_LINES], "…"]
    return ["…", *lines[-_MAX_LINES:]]


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
) -> None:
    """Print the report: ``notes`` adds a line of facts to a file's header (e.g. how its run went)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    out = stream or sys.stdout
    console = Console(file=out, highlight=False, soft_wrap=True, emoji=False,
                      force_terminal=None if out.isatty() else False)
    ordered = sort_findings(f for f in findings if show_info or f.severity != "info")
    if title:
        console.print(Text(title, style="bold"))
    by_file = {k: list(g) for k, g in itertools.groupby(ordered, key=lambda f: f.path or "(machine)")}
    for path in [*files, *(p for p in by_file if p not in files)]:
        group = by_file.get(path, [])
        note = (notes or {}).get(path)
        shown = path if path == "(machine)" else display_path(path)
        if not group:
            console.print(Text.assemble(("✓ ", "green"), (shown, "bold"), (f"  {note or 'no problems found'}", "dim")))
            continue
        worst = group[0].severity if group else "info"
        mark = {"error": "✗ ", "warning": "! ", "info": "· "}[worst]
        console.print(Text.assemble((mark, _STYLE[worst]), (shown, "bold"), (f"  {note}" if note else "", "dim")))
        for f in group:
            where = f"cell {f.cell}" if f.cell is not None else "file"
            head = Text.assemble(
                ("  ", ""), (f"{f.code} ", _STYLE[f.severity]), (f"{f.severity:<7} ", _STYLE[f.severity]),
                (f"{where}: ", "bold"), (f.message, ""))
            console.print(head)
            facts = [(k, v) for k, v in f.evidence.items() if v is not None and v != [] and v != {} and v != ""]
            for key, value in facts[:_MAX_EVIDENCE]:
                if isinstance(value, str) and "\n" in value.strip():
                    console.print(f"      [dim]{escape(str(key))}:[/dim]")
                    for line in _excerpt(str(key), value):
                        console.print(f"        {escape(line)}", style="dim" if line == "…" else None)
                    continue
                console.print(f"      [dim]{escape(str(key))}:[/dim] {escape(_short(value, str(key)))}")
            if f.fix:
                console.print(f"      [green]fix:[/green] {escape(f.fix)}")
    counts = {s: sum(1 for f in ordered if f.severity == s) for s in ("error", "warning", "info")}
    n = len(files)
    tail = (f"{n} {noun}{'s' if n != 1 else ''} {summary or 'checked'}: {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['info']} info")
    console.print(Text(tail, style="bold red" if counts["error"] else ("yellow" if counts["warning"] else "green")))
