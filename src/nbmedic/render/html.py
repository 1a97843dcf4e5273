"""The HTML report (``--report FILE.html``, ``nbmedic report DOC.json -o FILE.html``): one self-contained
page rendered from the report document (``render.document``).

The page: a summary, a table of contents (notebooks with errors first, healthy ones listed), then one
``<section class="notebook" id="nb-N">`` per file (N: its index in ``doc["files"]``, then any other path
the findings, runs or incidents name) with its memory charts, per-cell bars, findings and cells.  Its
Content-Security-Policy allows only its own inline style and script (``render.html_assets``); notebook
content is shown as escaped text (``render.html_cells``); the charts are static SVG
(``render.html_charts``).

A saved document may have been edited by hand: every field is read defensively, nothing raises.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.evidence import layout
from nbmedic.findings import CODES, Finding
from nbmedic.render.document import findings_of, int_or_none
from nbmedic.render.html_assets import SCRIPT, STYLE, csp_hash
from nbmedic.render.html_cells import MAX_TEXT, cell_html, cells_of, clean, missing_cells, text_of
from nbmedic.render.html_charts import (
    DEFS,
    Event,
    Series,
    cell_bars,
    memory_chart,
    number,
    seconds_text,
    series_of,
    series_of_pairs,
)
from nbmedic.render.text import excerpt, format_value
from nbmedic.units import format_bytes

__all__ = ["render_html"]

NotebookReader = Callable[[str], "dict[str, Any] | None"]
_RANK = {"error": 0, "warning": 1, "info": 2}
_DEATH = ("RN100", "RN101", "RN102", "RN103")
_EVENT_KIND = {**dict.fromkeys(_DEATH, "death"), "RN110": "timeout", "RN111": "timeout",
               "RN112": "interrupt", "RN150": "interrupt"}
_EVENT_LABEL = {"RN100": "died", "RN101": "killed for memory", "RN102": "crashed", "RN103": "exited",
                "RN110": "cell timeout", "RN111": "run timeout", "RN112": "stalled", "RN150": "asked for input"}
_SHOWN_FACTS = 3  # evidence facts shown before the fold
_SHOWN_LINES = 20  # lines of a multi-line fact shown whole; a longer one: its excerpt, the rest folded


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _maps(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


@dataclass
class _Notebook:
    """What the page shows of one file."""

    index: int
    path: str
    findings: list[Finding] = field(default_factory=list)
    runs: list[Mapping[str, Any]] = field(default_factory=list)
    incidents: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"nb-{self.index}"

    @property
    def worst(self) -> int:
        return min((_RANK[f.severity] for f in self.findings), default=3)

    @property
    def status(self) -> str | None:
        status = self.runs[0].get("status") if self.runs else None
        return status if isinstance(status, str) else None


def _findings(doc: Mapping[str, Any]) -> list[Finding]:
    """The document's findings; a malformed one is skipped (a hand-edited document still renders)."""
    out: list[Finding] = []
    raws = doc.get("findings")
    for raw in raws if isinstance(raws, list) else []:
        try:
            out.extend(findings_of({"findings": [raw]}))
        except ValueError:
            continue
    return out


def _notebooks(doc: Mapping[str, Any], findings: Sequence[Finding]) -> tuple[list[_Notebook], list[Finding]]:
    """One entry per file (the document's, then any other path named), and the findings of no file."""
    files = doc.get("files")
    by_path: dict[str, _Notebook] = {}

    def entry(path: str) -> _Notebook:
        if path not in by_path:
            by_path[path] = _Notebook(len(by_path), path)
        return by_path[path]

    for path in files if isinstance(files, list) else []:
        if isinstance(path, str):
            entry(path)
    loose: list[Finding] = []
    for f in findings:
        if f.path is None:
            loose.append(f)
        else:
            entry(f.path).findings.append(f)
    for run in _maps(doc.get("runs")):
        if isinstance(run.get("path"), str):
            entry(run["path"]).runs.append(run)
    owner = {str(f.evidence.get("incident")): f.path for f in findings if f.path and f.evidence.get("incident")}
    for record in _maps(doc.get("incidents")):
        path = owner.get(str(record.get("id"))) or record.get("notebook")
        if isinstance(path, str):
            entry(path).incidents.append(record)
    for nb in by_path.values():
        nb.findings.sort(key=lambda f: (_RANK[f.severity], -1 if f.cell is None else f.cell, f.code))
    return list(by_path.values()), loose


# ---------------------------------------------------------------------------------------------- findings


def _evidence_value(value: Any, unit: Any) -> str:
    if isinstance(value, str) and "\n" in value.strip():
        full = strip_ansi(value).strip("\n")
        count = full.count("\n") + 1
        if count <= _SHOWN_LINES and len(full) <= MAX_TEXT:
            return f"<pre>{clean(full)}</pre>"
        lines = excerpt(full, unit if isinstance(unit, str) else "text")
        shown = full[-MAX_TEXT:] if unit != "stack" else full[:MAX_TEXT]
        return (f"<pre>{clean(chr(10).join(lines))}</pre><details><summary>all {count:,} lines</summary>"
                f"<pre>{clean(shown)}</pre></details>")
    return clean(format_value(value, unit))


def _evidence(f: Finding) -> str:
    declared = layout(f.code)
    keys = [k for k in declared if k in f.evidence] + [k for k in f.evidence if k not in declared]
    rows = []
    for key in keys:
        value = f.evidence[key]
        if value is None or value == [] or value == {} or value == "":
            continue
        rows.append(f"<dt>{clean(str(key))}</dt><dd>{_evidence_value(value, declared.get(key, 'text'))}</dd>")
    if not rows:
        return ""
    out = f'<dl class="evidence facts">{"".join(rows[:_SHOWN_FACTS])}</dl>'
    if len(rows) > _SHOWN_FACTS:
        more = len(rows) - _SHOWN_FACTS
        out += (f'<details class="more-evidence"><summary>{more} more fact{"s" if more > 1 else ""}</summary>'
                f'<dl class="evidence facts">{"".join(rows[_SHOWN_FACTS:])}</dl></details>')
    return out


def _finding(nb: _Notebook, m: int, f: Finding) -> str:
    where = (f'<a class="cell-link" href="#{nb.prefix}-cell-{f.cell}">cell {f.cell}</a>' if f.cell is not None
             else '<span class="where">file</span>')
    info = CODES.get(f.code)
    title = f' title="{_esc(info.title)}"' if info else ""
    fix = f'<p class="fix"><b>fix:</b> {clean(f.fix)}</p>' if f.fix else ""
    return (f'<article class="finding sev-{f.severity}" id="{nb.prefix}-f-{m}" data-code="{_esc(f.code)}">'
            f'<h4><span class="badge">{f.severity}</span> <span class="code"{title}>{_esc(f.code)}</span> '
            f'{where}: {clean(f.message)}</h4>{_evidence(f)}{fix}</article>')


# ------------------------------------------------------------------------------------------------ charts


def _limit_of(findings: Sequence[Finding], doc: Mapping[str, Any]) -> tuple[str, float] | None:
    """The memory limit a run ran under: its death's evidence (``limit``, else the smallest of
    ``limits``), else the machine's cgroup limit."""
    for f in findings:
        if f.code not in _DEATH:
            continue
        limit = number(f.evidence.get("limit"))
        if limit and limit > 0:
            return "memory limit", limit
        named = [(str(k), number(v)) for k, v in _map(f.evidence.get("limits")).items()]
        valid = [(k, v) for k, v in named if v is not None and v > 0]
        if valid:
            return min(valid, key=lambda kv: kv[1])
    cgroup = number(_map(doc.get("machine")).get("cgroup_memory_limit"))
    return ("cgroup memory limit", cgroup) if cgroup and cgroup > 0 else None


def _cell_starts(series: Series, records: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """Cell index -> seconds its run started: its first sample, else the previous cell's start plus its
    wall time; cells that never ran have none."""
    starts: dict[int, float] = {}
    prev: tuple[float, float] | None = None
    for r in records:
        index = int_or_none(r.get("index"))
        if index is None:
            continue
        start = series.first_of_cell.get(index)
        if start is None and prev is not None and r.get("status") not in ("not-run", "skipped"):
            start = prev[0] + prev[1]
        if start is not None:
            starts[index] = start
            prev = (start, number(r.get("wall")) or 0.0)
    return starts


def _events(findings: Sequence[Finding], starts: Mapping[int, float],
            records: Sequence[Mapping[str, Any]]) -> list[Event]:
    walls = {int_or_none(r.get("index")): number(r.get("wall")) for r in records}
    out = []
    for f in findings:
        kind = _EVENT_KIND.get(f.code)
        if kind is None or f.evidence.get("live_session"):
            continue
        start = starts.get(f.cell) if f.cell is not None else None
        t: float | None = None
        if start is not None and kind != "death":
            into = number(f.evidence.get("seconds_into_cell")) or number(f.evidence.get("elapsed"))
            if f.code != "RN111":
                t = start + (into if into is not None else (walls.get(f.cell) or 0.0))
        where = f" in cell {f.cell}" if f.cell is not None else ""
        out.append(Event(kind, t, f.cell, f.code, f"{_EVENT_LABEL[f.code]}{where}"))
    return out


def _run_block(nb: _Notebook, k: int, run: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    records = [r for r in _maps(run.get("cells")) if int_or_none(r.get("index")) is not None]
    facts = _run_facts(run)
    title = "Run" if len(nb.runs) == 1 else f"Run {k + 1}"
    out = [f'<div class="run" id="{nb.prefix}-run-{k}"><h3>{title}</h3><p class="run-facts">{facts}</p>']
    series = series_of(run.get("timeline"))
    if series is not None:
        starts = _cell_starts(series, records)
        chart = memory_chart(series, cell_starts=starts, limit=_limit_of(nb.findings, doc),
                             events=_events(nb.findings, starts, records), duration=number(run.get("duration")),
                             label="")
        out.append(f'<figure id="{nb.prefix}-memory" class="memory">{chart}</figure>')
    elif records:
        out.append('<p class="note">no memory timeline was recorded for this run</p>')
    if records:
        out.append(f'<figure class="cells">{cell_bars(records, label="")}</figure>')
    out.append("</div>")
    return "".join(out)


def _run_facts(run: Mapping[str, Any]) -> str:
    parts = []
    status = run.get("status")
    if isinstance(status, str):
        parts.append(f'<span class="badge st-{_esc(status)}">{_esc(status)}</span>')
    for key, label in (("kernel", "kernel"), ("output", "output")):
        if isinstance(run.get(key), str):
            parts.append(f"{label} {clean(run[key])}")
    duration, peak = number(run.get("duration")), number(run.get("peak_rss"))
    if duration is not None:
        parts.append(f"took {seconds_text(duration)}")
    if peak:
        parts.append(f"peak memory {format_bytes(peak)}")
    if int_or_none(run.get("exit_code")) is not None:
        parts.append(f"exit code {run['exit_code']}")
    return " · ".join(parts)


def _incident(nb: _Notebook, k: int, record: Mapping[str, Any]) -> str:
    memory = _map(record.get("memory"))
    cell = _map(record.get("cell"))
    rows = [("id", record.get("id")), ("kernel", record.get("kernelspec")), ("kernel id", record.get("kernel_id")),
            ("supervisor", record.get("supervisor")), ("pid", record.get("pid")), ("signal", record.get("signal")),
            ("exit code", record.get("exit_code")), ("execution count", cell.get("execution_count")),
            ("peak memory", format_bytes(memory["peak_rss"]) if number(memory.get("peak_rss")) else None),
            ("OOM killer", record.get("oom_kill_line"))]
    facts = "".join(f"<dt>{k_}</dt><dd>{clean(str(v))}</dd>" for k_, v in rows if v not in (None, ""))
    source = text_of(cell.get("source_head"))
    out = [f'<div class="incident" id="{nb.prefix}-incident-{k}"><h3>Incident in a monitored kernel</h3>'
           + f'<dl class="facts">{facts}</dl>']
    if source:
        out.append(f"<p>the running cell began:</p><pre>{clean(source[:MAX_TEXT])}</pre>")
    series = series_of_pairs(memory.get("timeline"))
    if series is not None:
        when = number(record.get("time"))
        first = _first_epoch(memory.get("timeline"))
        death = Event("death", when - first if when is not None and first is not None else None, None,
                      str(_map(record.get("finding")).get("code") or "RN100"), "the kernel died")
        limits = [(str(n), v) for n, v in ((n, number(v)) for n, v in _map(memory.get("limits")).items())
                  if v is not None and v > 0]
        chart = memory_chart(series, cell_starts={}, limit=min(limits, key=lambda kv: kv[1]) if limits else None,
                             events=[death], label=f"{nb.path}, incident: ", cls=" incident")
        out.append(f'<figure class="memory incident">{chart}<figcaption>Memory of the kernel before it died '
                   '(MiB against seconds)</figcaption></figure>')
    out.append("</div>")
    return "".join(out)


def _first_epoch(timeline: object) -> float | None:
    for row in timeline if isinstance(timeline, list) else []:
        if isinstance(row, (list, tuple)) and row and number(row[0]) is not None:
            return float(row[0])
    return None


# ------------------------------------------------------------------------------------------------- cells


def _cell_facts(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return ""
    parts = [str(record["status"])] if isinstance(record.get("status"), str) else []
    wall, peak = number(record.get("wall")), number(record.get("peak_rss"))
    if wall is not None:
        parts.append(seconds_text(wall))
    if peak:
        parts.append(f"peak {format_bytes(peak)}")
    return " · ".join(parts)


def _read(notebook: NotebookReader, path: object) -> dict[str, Any] | None:
    if not isinstance(path, str) or not path:
        return None
    try:
        return notebook(path)
    except (OSError, ValueError, UnicodeError):
        return None


def _cells(nb: _Notebook, notebook: NotebookReader) -> str:
    run = nb.runs[0] if nb.runs else None
    content = (_read(notebook, run.get("output")) or _read(notebook, run.get("path"))) if run else None
    content = content or _read(notebook, nb.path)
    cells = cells_of(content)
    records = {int_or_none(r.get("index")): r for r in _maps(run.get("cells"))} if run else {}
    out = [cell_html(nb.prefix, i, cell, _cell_facts(records.get(i))) for i, cell in enumerate(cells)]
    named = {f.cell for f in nb.findings if f.cell is not None} | {i for i in records if i is not None}
    absent = [i for i in named if i >= len(cells) or i < 0]
    why = "not in the notebook as it reads now" if cells else "the notebook's content could not be read"
    out += missing_cells(nb.prefix, absent, why)
    if not out:
        return ""
    return (f'<details class="cells" id="{nb.prefix}-cells" open><summary>Cells ({len(cells)})</summary>'
            f'{"".join(out)}</details>')


# ---------------------------------------------------------------------------------------------- sections


def _counts(findings: Sequence[Finding]) -> str:
    c = Counter(f.severity for f in findings)
    parts = [f"{c[s]} {s}{'s' if c[s] > 1 and s != 'info' else ''}" for s in ("error", "warning", "info") if c[s]]
    return ", ".join(parts) or "no problems found"


def _badge(nb: _Notebook) -> str:
    if not nb.findings:
        return '<span class="badge healthy">healthy</span>'
    sev = ("error", "warning", "info")[nb.worst]
    return f'<span class="badge sev-{sev}">{sev}</span>'


def _section(nb: _Notebook, doc: Mapping[str, Any], notebook: NotebookReader) -> str:
    status = f' data-status="{_esc(nb.status)}"' if nb.status else ""
    links = [f'<a href="#{nb.prefix}-findings">findings</a>' if nb.findings else "",
             f'<a href="#{nb.prefix}-run-0">run</a>' if nb.runs else "",
             f'<a href="#{nb.prefix}-incident-0">incidents</a>' if nb.incidents else ""]
    cells = _cells(nb, notebook)
    links.append(f'<a href="#{nb.prefix}-cells">cells</a>' if cells else "")
    out = [f'<section class="notebook" id="{nb.prefix}" data-path="{_esc(nb.path)}"{status}>'
           + f'<h2><a href="#{nb.prefix}">{clean(nb.path)}</a> {_badge(nb)}</h2>'
           f'<nav class="nb-toc">{"".join(links)}</nav>']
    out.extend(_run_block(nb, k, run, doc) for k, run in enumerate(nb.runs))
    out.extend(_incident(nb, k, record) for k, record in enumerate(nb.incidents))
    if nb.findings:
        out.append(f'<div class="findings" id="{nb.prefix}-findings"><h3>Findings ({_counts(nb.findings)})</h3>')
        out.extend(_finding(nb, m, f) for m, f in enumerate(nb.findings))
        out.append("</div>")
    else:
        out.append('<p class="healthy-note">✓ no problems found</p>')
    out.append(cells)
    out.append("</section>")
    return "".join(out)


def _machine_section(loose: Sequence[Finding]) -> str:
    if not loose:
        return ""
    nb = _Notebook(-1, "(machine)", list(loose))
    articles = "".join(_finding(nb, m, f).replace('id="nb--1-f-', 'id="machine-f-', 1) for m, f in enumerate(loose))
    return (f'<section class="machine" id="machine"><h2>The machine and environment</h2>'
            f'<p>{_counts(loose)} about no single notebook</p>{articles}</section>')


def _toc(notebooks: Sequence[_Notebook], loose: Sequence[Finding]) -> str:
    items = []
    for nb in notebooks:
        run = ""
        if nb.runs:
            duration, peak = number(nb.runs[0].get("duration")), number(nb.runs[0].get("peak_rss"))
            run = " · ran: " + _esc(nb.status or "?") + (f", {seconds_text(duration)}" if duration is not None else "") \
                + (f", peak {format_bytes(peak)}" if peak else "")
        items.append(f'<li>{_badge(nb)} <a href="#{nb.prefix}">{clean(nb.path)}</a> '
                     f'<span class="counts">{_counts(nb.findings)}{run}</span></li>')
    if loose:
        items.append(f'<li><a href="#machine">the machine and environment</a> '
                     f'<span class="counts">{_counts(loose)}</span></li>')
    return (f'<nav class="toc" id="contents" aria-label="Notebooks"><h2>Notebooks</h2><ol>{"".join(items)}</ol>'
            "</nav>")


# ----------------------------------------------------------------------------------------------- summary


def _summary(doc: Mapping[str, Any], notebooks: Sequence[_Notebook], findings: Sequence[Finding]) -> str:
    runs = _maps(doc.get("runs"))
    statuses = Counter(str(r.get("status")) for r in runs)
    rows = [("notebooks", f"{len(notebooks)} ({sum(1 for nb in notebooks if not nb.findings)} healthy)"),
            ("findings", _counts(findings) if findings else "none")]
    if runs:
        failed = sum(n for s, n in statuses.items() if s != "ok")
        detail = ", ".join(f"{n} {_esc(s)}" for s, n in sorted(statuses.items()) if s != "ok")
        rows.append(("runs", f"{len(runs)}: {statuses['ok']} passed, {failed} failed" + (f" ({detail})" if detail else "")))
        durations = [d for d in (number(r.get("duration")) for r in runs) if d is not None]
        rows.append(("total time", seconds_text(sum(durations))))
        peaks = [p for p in (number(r.get("peak_rss")) for r in runs) if p is not None]
        rows.append(("peak memory", format_bytes(max(peaks)) if peaks else "unknown"))
    incidents = _maps(doc.get("incidents"))
    if incidents:
        rows.append(("incidents", str(len(incidents))))
    rows.extend(_machine_rows(doc.get("machine")))
    facts = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (f'<section id="summary"><h2>Summary</h2><dl class="facts">{facts}</dl>{_by_code(findings)}'
            "</section>")


def _machine_rows(machine: object) -> list[tuple[str, str]]:
    if not isinstance(machine, Mapping):
        return []
    ram, cpus, cgroup = number(machine.get("ram")), int_or_none(machine.get("cpus")), number(machine.get("cgroup_memory_limit"))
    return [("machine RAM", format_bytes(ram) if ram else "unknown"),
            ("CPUs", str(cpus) if cpus else "unknown"),
            ("cgroup memory limit", format_bytes(cgroup) if cgroup else "none")]


def _by_code(findings: Sequence[Finding]) -> str:
    counts = Counter((f.severity, f.code) for f in findings)
    if not counts:
        return ""
    rows = []
    for (severity, code), n in sorted(counts.items(), key=lambda kv: (_RANK[kv[0][0]], kv[0][1])):
        info = CODES.get(code)
        rows.append(f'<tr class="sev-{severity}"><td><span class="badge">{severity}</span></td><td>{_esc(code)}</td>'
                    f'<td>{n}</td><td>{_esc(info.title) if info else ""}</td></tr>')
    return ('<table class="by-code"><caption>Findings by code</caption><thead><tr><th>severity</th><th>code</th>'
            f'<th>count</th><th>meaning</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def render_html(doc: Mapping[str, Any], *, notebook: Callable[[str], dict[str, Any] | None]) -> str:
    """The page for ``doc``; ``notebook(path)`` gives a notebook's content (None when unreadable)."""
    d: Mapping[str, Any] = doc if isinstance(doc, Mapping) else {}
    findings = _findings(d)
    notebooks, loose = _notebooks(d, findings)
    ordered = sorted(notebooks, key=lambda nb: (nb.worst, nb.index))
    csp = (f"default-src 'none'; script-src {csp_hash(SCRIPT)}; style-src {csp_hash(STYLE)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(csp)}">'
        '<meta name="referrer" content="no-referrer"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>nbmedic report: {_counts(findings)}</title><style>{STYLE}</style></head><body>{DEFS}"
        '<header><h1>nbmedic report</h1><div id="tools" hidden><button type="button" data-act="open">Expand all'
        '</button><button type="button" data-act="close">Collapse all</button></div></header><main>')
    page = "".join([
        head, _summary(d, notebooks, findings), _toc(ordered, loose),
        *(_section(nb, d, notebook) for nb in ordered), _machine_section(loose),
        f"</main><script>{SCRIPT}</script></body></html>\n"])
    return page.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(page) else page


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
