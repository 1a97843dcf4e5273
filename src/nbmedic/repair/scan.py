"""A tolerant JSON reader for damaged notebooks: keep every complete piece, say where it broke.

``json.JSONDecoder.raw_decode`` (the C scanner) decodes each value in one go; only the few
containers that hold a notebook's structure (the root object, ``cells``, ``metadata``, and the
nbformat-3 ``worksheets``) are walked member by member, so that a file cut off in the middle of
cell 12 still yields cells 0-11 and everything that came before them.  Missing or doubled commas
between those members (a typical leftover of a plain-text merge) are tolerated and noted.
Everything from the first unreadable piece on is lost; the result records where that piece
started, so the report can say how many bytes could not be recovered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

_WS_RE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_MISSING: Any = object()

# containers walked member by member ("#" stands for any array index)
_WALKED: frozenset[tuple[str, ...]] = frozenset({
    (), ("cells",), ("metadata",), ("worksheets",), ("worksheets", "#"), ("worksheets", "#", "cells"),
})


def _shape(path: Path) -> tuple[str, ...]:
    return tuple("#" if isinstance(p, int) else p for p in path)


@dataclass
class ScanResult:
    """What a tolerant scan recovered.

    ``value`` is the recovered root (None when not even its first character is an object or
    array).  When ``complete`` is False, ``lost_path`` names the first piece that could not be
    read (e.g. ``("cells", 12)``: cell 12; ``("cells",)``: the list ends early, between cells),
    ``lost_offset`` is its character offset and ``reason`` what the decoder said there.
    """

    value: Any
    complete: bool
    lost_path: Path = ()
    lost_offset: int = 0
    reason: str = ""
    trailing_offset: int | None = None  # start of non-blank data after a complete root value
    notes: list[str] = field(default_factory=list)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.stopped = False
        self.lost_path: Path = ()
        self.lost_offset = 0
        self.reason = ""
        self.notes: list[str] = []

    def ws(self, pos: int) -> int:
        m = _WS_RE.match(self.text, pos)
        return m.end() if m else pos

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def stop(self, path: Path, pos: int, reason: str) -> None:
        if not self.stopped:
            self.stopped = True
            self.lost_path, self.lost_offset, self.reason = path, pos, reason

    def value(self, pos: int, path: Path) -> tuple[Any, int, bool]:
        """(value or _MISSING, end position, complete)."""
        pos = self.ws(pos)
        if pos >= self.n:
            self.stop(path, pos, "the data ends here")
            return _MISSING, pos, False
        try:
            value, end = _DECODER.raw_decode(self.text, pos)
            return value, end, True
        except json.JSONDecodeError as exc:
            error_pos, message = exc.pos, exc.msg.lower()
        except ValueError:  # an integer of more digits than int() converts (sys.get_int_max_str_digits)
            error_pos, message = pos, "a number too long to read"
        except RecursionError:
            self.stop(path, pos, "nesting too deep")
            return _MISSING, pos, False
        first = self.text[pos]
        if _shape(path) in _WALKED and first in "{[":
            return self.container(pos, path)
        at_end = not self.text[error_pos:].strip() and message != "a number too long to read"
        self.stop(path, pos, "the data ends inside this value" if at_end else message)
        return _MISSING, pos, False

    def container(self, pos: int, path: Path) -> tuple[Any, int, bool]:
        is_object = self.text[pos] == "{"
        close = "}" if is_object else "]"
        out: Any = {} if is_object else []
        pos += 1
        need_comma = pending_comma = False
        while True:
            pos = self.ws(pos)
            if pos >= self.n:
                self.stop(path, pos, "the data ends here")
                return out, pos, False
            ch = self.text[pos]
            if ch == close:
                if pending_comma:
                    self.notes.append(f"dropped a trailing comma before line {self.line(pos)}")
                return out, pos + 1, True
            if ch == ",":
                if not need_comma:
                    self.notes.append(f"dropped a stray comma at line {self.line(pos)}")
                need_comma, pending_comma = False, True
                pos += 1
                continue
            pending_comma = False
            if need_comma:
                self.notes.append(f"supplied a missing comma at line {self.line(pos)}")
            start = pos
            if is_object:
                if ch != '"':
                    self.stop(path, start, f"expected a key, found {ch!r}")
                    return out, start, False
                try:
                    key, pos = _DECODER.raw_decode(self.text, pos)
                except json.JSONDecodeError:
                    self.stop(path, start, "the data ends inside a key")
                    return out, start, False
                pos = self.ws(pos)
                if pos >= self.n or self.text[pos] != ":":
                    self.stop(path + (key,), start, "no value after the key")
                    return out, start, False
                value, pos, complete = self.value(pos + 1, path + (key,))
                if value is not _MISSING:
                    out[key] = value
            else:
                value, pos, complete = self.value(pos, path + (len(out),))
                if value is not _MISSING:
                    out.append(value)
            if not complete:
                if value is _MISSING:
                    self.lost_offset = min(self.lost_offset, start)
                return out, pos, False
            need_comma = True


def scan(text: str) -> ScanResult:
    """Recover what can be recovered from (possibly damaged) JSON text."""
    scanner = _Scanner(text)
    start = scanner.ws(0)
    if start >= len(text) or text[start] not in "{[":
        return ScanResult(None, False, (), start, "the data does not start with '{'")
    value, end, complete = scanner.value(start, ())
    if value is _MISSING:  # pragma: no cover - a walked root always yields a container
        value = None
    trailing = None
    if complete:
        rest = scanner.ws(end)
        if rest < len(text):
            trailing = rest
    return ScanResult(value, complete, scanner.lost_path, scanner.lost_offset, scanner.reason,
                      trailing, scanner.notes)
