"""Split a file holding git conflict markers back into the texts of its two (or three) sides.

A plain-text merge leaves::

    <<<<<<< ours          local side
    ||||||| base          (merge.conflictStyle=diff3 or zdiff3 only) the common ancestor
    =======
    >>>>>>> theirs        remote side

Text outside the markers (already merged by git) belongs to every side.  JSON strings never hold
a raw newline, so a line that is exactly a marker is always a marker, never notebook content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")
_MARKER_RE = re.compile(r"^(<{7}|\|{7}|={7}|>{7})(?:[ \t][^\r\n]*)?\r?\n?$")


@dataclass(frozen=True)
class Sides:
    local: str
    remote: str
    base: str | None  # None unless every conflict carried a ``|||||||`` section
    conflicts: int
    problems: tuple[str, ...] = ()  # malformed marker sequences, in words


def split_conflicts(text: str) -> Sides | None:
    """The sides of a conflicted text, or None when it holds no conflict marker."""
    local: list[str] = []
    remote: list[str] = []
    base: list[str] = []
    state = "common"  # common | local | base | remote
    conflicts = with_base = 0
    problems: list[str] = []
    seen_marker = False
    for lineno, m in enumerate(_LINE_RE.finditer(text), start=1):
        line = m.group(0)
        marker = _MARKER_RE.match(line)
        if marker is None:
            if state in ("common", "local"):
                local.append(line)
            if state in ("common", "remote"):
                remote.append(line)
            if state in ("common", "base"):
                base.append(line)
            continue
        seen_marker = True
        kind = marker.group(1)[0]
        if kind == "<":
            if state != "common":
                problems.append(f"line {lineno}: a conflict starts inside another one")
            state = "local"
            conflicts += 1
        elif kind == "|":
            if state != "local":
                problems.append(f"line {lineno}: a base marker outside a conflict's local part was ignored")
            else:
                state = "base"
                with_base += 1
        elif kind == "=":
            if state not in ("local", "base"):
                problems.append(f"line {lineno}: a '=======' marker outside a conflict was ignored")
            else:
                state = "remote"
        else:
            if state != "remote":
                problems.append(f"line {lineno}: a '>>>>>>>' marker without its '=======' was ignored")
            state = "common"
    if not seen_marker:
        return None
    if state != "common":
        problems.append("the last conflict is not closed by a '>>>>>>>' marker")
    return Sides("".join(local), "".join(remote),
                 "".join(base) if conflicts and with_base == conflicts else None, conflicts, tuple(problems))
