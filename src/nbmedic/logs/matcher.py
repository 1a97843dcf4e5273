"""Match log lines against the signature catalogue: lines in, findings out (pure, streaming).

A line is cleaned (ANSI colours and the ``[I 2026-01-02 10:11:12.345 ServerApp]`` /
``[IPKernelApp] WARNING |`` prefix removed) and pre-filtered by the catalogue's literal needles (one
combined regex); only lines that contain a needle meet the signature regexes.  Lines without a prefix
(tracebacks, wrapped messages) belong to the record above: they inherit its timestamp.
Occurrences are grouped per signature and per its ``group_by`` variables (one group per kernel id...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.findings import Finding, make
from nbmedic.logs.catalogue import CATALOGUE, Pattern, Signature, render

# container runtimes (docker, kubectl --timestamps) put an ISO timestamp before everything
_OUTER_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?\s+")
# [I 2026-01-02 10:11:12.345 ServerApp] / [W 12:00:01.123 NotebookApp] / JupyterHub's [I … SingleUserLabApp mixins:547]
_TRAITLETS_RE = re.compile(
    r"^\[(?P<level>[DIWEC])\s+(?:(?P<date>\d{4}-\d{2}-\d{2})[ T])?(?P<time>\d{1,2}:\d{2}:\d{2})(?:[.,]\d+)?"
    r"(?:\s+[\w.-]+)?(?:\s+[\w./-]+:\d+)?\]\s?")
# [IPKernelApp] WARNING | …
_APP_LEVEL_RE = re.compile(r"^\[[\w.-]+\]\s+(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*\|\s?")
# Python logging's default and common "2026-01-02 10:11:12,345 WARNING …" forms
_PLAIN_TS_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2})(?:[.,]\d+)?\s+(?:\[?(?:DEBUG|INFO|WARNING|WARN|"
    r"ERROR|CRITICAL)\]?\s+)?")
_MAX_LINES = 200
_OOM_CODE = "LG324"
_DEATH_CODES = frozenset({"LG300", "LG301", "LG312", "LG325"})  # deaths the OOM killer explains
_ROLE_ORDER = {"trigger": 0, "event": 1, "attach": 2}
_MAX_EXCERPT = 300


def clean(line: str) -> tuple[str, datetime | time | None, bool]:
    """The message text of ``line``, its timestamp (a datetime, or a time of day) and whether it starts a record."""
    if "\x1b" in line:
        line = strip_ansi(line)
    line = line.rstrip("\r\n")
    outer = _OUTER_TS_RE.match(line)
    if outer:
        line = line[outer.end():]
    stamp: datetime | time | None = None
    for regex in (_TRAITLETS_RE, _PLAIN_TS_RE):
        m = regex.match(line)
        if m:
            stamp = _stamp(m.group("date"), m.group("time"))
            return line[m.end():].rstrip(), stamp, True
    m = _APP_LEVEL_RE.match(line)
    if m:
        return line[m.end():].rstrip(), None, True
    return line.rstrip(), None, outer is not None


def _stamp(day: str | None, clock: str) -> datetime | time | None:
    try:
        t = time.fromisoformat(clock.zfill(8))
        return datetime.combine(date.fromisoformat(day), t) if day else t
    except ValueError:
        return None


def parse_since(text: str) -> datetime | time:
    """``--since``: ``2026-01-02 10:11[:12]``, ``2026-01-02T10:11``, ``2026-01-02`` or a time of day ``10:11``."""
    value = text.strip()
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", value):
            return time.fromisoformat(value.zfill(len(value) + (len(value.split(":")[0]) == 1)))
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a time such as '2026-01-02 10:11' or '10:11', got {text!r}") from None


def _before(stamp: datetime | time, since: datetime | time) -> bool:
    if isinstance(stamp, datetime):
        if isinstance(since, datetime):
            return stamp.replace(tzinfo=None) < since.replace(tzinfo=None)
        return stamp.time() < since
    if isinstance(since, datetime):
        return stamp < since.time()  # no date in the log: compare the time of day
    return stamp < since


@dataclass
class _Group:
    sig: Signature
    key: tuple[tuple[str, str], ...]
    lines: list[int] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    first_text: str = ""
    last_text: str = ""
    last_no: int = 0
    total_lines: int = 0

    def add(self, no: int, text: str, kind: str, values: dict[str, str]) -> None:
        if not self.total_lines:
            self.first_text = text
        self.total_lines += 1
        if len(self.lines) < _MAX_LINES:
            self.lines.append(no)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.values.update(values)
        self.last_text = text
        self.last_no = max(self.last_no, no)

    def merge(self, other: _Group) -> None:
        if not self.total_lines or (other.lines and self.lines and other.lines[0] < self.lines[0]):
            self.first_text = other.first_text or self.first_text
        self.lines = sorted(set(self.lines) | set(other.lines))[:_MAX_LINES]
        self.total_lines += other.total_lines
        for kind, n in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + n
        self.values.update(other.values)  # pending lines are the newer ones
        if other.last_no > self.last_no:
            self.last_no, self.last_text = other.last_no, other.last_text

    @property
    def count(self) -> int:
        return max(self.kinds.values(), default=0)


@dataclass
class _State:
    groups: dict[tuple[tuple[str, str], ...], _Group] = field(default_factory=dict)
    pending: _Group | None = None
    trigger_no: int = -(10**9)
    latest: _Group | None = None


class Matcher:
    """Feed lines one by one (``feed``), then collect ``findings``.  Holds only per-group counters."""

    def __init__(self, path: str | None, signatures: Sequence[Signature] = CATALOGUE, *,
                 since: datetime | time | None = None) -> None:
        self.path = path
        self.since = since
        self.signatures = tuple(signatures)
        self._states = {sig.code: _State() for sig in self.signatures}
        self._by_needle: dict[str, list[tuple[Signature, Pattern, re.Pattern[str]]]] = {}
        for sig in self.signatures:
            for pat in sig.patterns:
                self._by_needle.setdefault(pat.needle, []).append((sig, pat, pat.compiled()))
        needles = sorted(self._by_needle, key=len, reverse=True)
        self._needle_re = re.compile("|".join(re.escape(n) for n in needles)) if needles else None
        self._stamp: datetime | time | None = None
        self.lines_read = 0

    def feed(self, no: int, raw: str) -> None:
        self.lines_read = no
        needle_re = self._needle_re
        if self.since is None:
            if needle_re is None or needle_re.search(raw) is None:
                return
            text, _, _ = clean(raw)
        else:
            text, stamp, starts = clean(raw)
            if starts:
                self._stamp = stamp
            if self._stamp is not None and _before(self._stamp, self.since):
                return
            if needle_re is None or needle_re.search(raw) is None:
                return
        # the regex found one needle; overlapping ones can hide behind it, so list them all (hit lines only)
        candidates = [c for needle, entries in self._by_needle.items() if needle in raw for c in entries]
        candidates.sort(key=lambda c: _ROLE_ORDER[c[1].role])  # triggers, then events, then attachments
        seen: set[str] = set()
        for sig, pat, regex in candidates:
            if pat.role == "event" and sig.code in seen:
                continue  # one occurrence per signature and line
            m = regex.search(text)
            if m is not None and self._hit(no, text, sig, pat, m):
                seen.add(sig.code)

    def _hit(self, no: int, text: str, sig: Signature, pat: Pattern, m: re.Match[str]) -> bool:
        state = self._states[sig.code]
        values = {k: v for k, v in m.groupdict().items() if v is not None}
        values.update(pat.values)
        if pat.role == "trigger":
            state.trigger_no = no
            return False
        if pat.role == "attach":
            latest = state.latest
            if latest is not None and no - latest.last_no <= pat.window:
                for k, v in values.items():
                    latest.values.setdefault(k, v)
            return False
        if pat.need_trigger and no - state.trigger_no > pat.window:
            return False
        key = tuple((name, values[name]) for name in sig.group_by if name in values)
        if sig.group_by and not key:
            if state.pending is None:
                state.pending = _Group(sig, ())
            group = state.pending
        else:
            group = state.groups.get(key) or state.groups.setdefault(key, _Group(sig, key))
            if state.pending is not None:  # e.g. "restarting kernel (1/5)" lines before "kernel <id> restarted"
                group.merge(state.pending)
                state.pending = None
        group.add(no, text, pat.kind, values)
        state.latest = group
        return True

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for sig in self.signatures:
            state = self._states[sig.code]
            groups = list(state.groups.values())
            if state.pending is not None:
                unkeyed = state.groups.get(())
                if unkeyed is not None:
                    unkeyed.merge(state.pending)
                else:
                    groups.append(state.pending)
            out.extend(self._finding(g) for g in groups if g.count)
        return out

    def _oom_lines(self) -> list[int]:
        state = self._states.get(_OOM_CODE)
        return sorted(n for g in state.groups.values() for n in g.lines) if state else []

    def _finding(self, g: _Group) -> Finding:
        sig = g.sig
        count = g.count
        first, last = g.lines[0], g.last_no
        values = dict(g.values)
        text_values = {**values, "count": str(count), "times": "once" if count == 1 else f"{count} times"}
        where = f"line {first}" if first == last else f"lines {first}–{last}"
        cause = sig.cause
        oom = self._oom_lines() if sig.code in _DEATH_CODES else []
        if oom:  # the kernel log in the same file names the killer
            cause = f"the OOM killer killed a process in this log (line {', '.join(map(str, oom[:5]))})"
        if "{times}" not in sig.message:
            where = f"{text_values['times']}, {where}"
        message = f"{render(sig.message, text_values)} ({where}): {cause}"
        evidence: dict[str, Any] = {
            "count": count,
            "lines": g.lines,
            "first_line": _excerpt(g.first_text),
            "last_line": _excerpt(g.last_text),
            **{k: _typed(v) for k, v in values.items()},
            "source": sig.source,
        }
        if oom:
            evidence["oom_killer_lines"] = oom
        if g.total_lines > len(g.lines):
            evidence["lines_total"] = g.total_lines
        return make(sig.code, self.path, message, evidence=evidence, fix=render(sig.fix, values))


def _excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_EXCERPT else text[: _MAX_EXCERPT - 1] + "…"


def _typed(value: str) -> int | str:
    return int(value) if re.fullmatch(r"-?\d{1,18}", value) else value


def match_lines(lines: Iterable[str], path: str | None, signatures: Sequence[Signature] = CATALOGUE, *,
                since: datetime | time | None = None) -> list[Finding]:
    """Findings for the log ``lines`` (numbered from 1); ``path`` names the log in each finding."""
    matcher = Matcher(path, signatures, since=since)
    for no, line in enumerate(lines, 1):
        matcher.feed(no, line)
    return matcher.findings()
