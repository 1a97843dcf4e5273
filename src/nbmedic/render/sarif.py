"""SARIF 2.1.0 (``--report FILE.sarif``, ``--format sarif``): findings for code scanning (GitHub and others).

Rendered from the report document (``render.document``): one run of the ``nbmedic`` tool whose rules are
the finding codes that occur (their help and fix from ``findings.CODES``) and whose results are the
findings, in the document's order.

Where a result points:

- ``artifactLocation.uri``: the finding's path as a URI, relative to the current folder when the file is
  under it (forward slashes, percent-encoded, ``uriBaseId`` ``%SRCROOT%`` = the current folder), else an
  absolute ``file://`` URI.  A folder (a kernelspec) ends with ``/``.  A finding about no file (the
  machine) has no location unless its evidence names a kernelspec folder or a file.
- ``region``: a cell has no line numbers of its own, so a cell's region is the lines of that cell's JSON
  object in the notebook file (nbformat writes one key, and one source line, per line); a line inside the
  cell the finding knows (a stack's ``cell_line``, NB040's ``lines``, EN242's ``cuda_lines``) narrows it
  to that source line, with the cell as ``contextRegion``.  A finding with a line of the file itself
  (NB001/NB002 ``line``/``column``, a log's ``lines``) points there; one about a notebook's metadata at
  that member (NB030/NB031 the kernelspec, NB004 ``nbformat_minor``), NB010 at the first cell with
  outputs.  A file that cannot be read or parsed gets no region.
- ``logicalLocations``: ``cell N`` (``$.cells[N]``); ``properties`` has ``cell``, ``cell_id``, the
  evidence and the fix.

``partialFingerprints["nbmedic/v1"]`` hashes the code, the location, the cell id (else index) and the
message with its numbers blanked, so code scanning follows one alert across runs whose figures change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nbmedic import PROJECT_URL, __version__
from nbmedic.findings import CODES, to_json
from nbmedic.render.document import int_or_none

__all__ = ["FINGERPRINT", "SCHEMA", "artifact_location", "cell_lines", "fingerprint", "render_sarif", "rule_name"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
CODES_URL = f"{PROJECT_URL}#finding-codes"
FINGERPRINT = "nbmedic/v1"
SRCROOT = "%SRCROOT%"
_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
_FAMILIES = {"NB": "notebook", "RN": "execution", "EN": "environment", "LG": "logs"}
_FILE_LINE_CODES = ("NB001", "NB002")  # evidence line/column: a position in the file's own text
# findings about a notebook's metadata: the member they concern, by preference
_MEMBERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "NB030": (("metadata", "kernelspec"), ("metadata",)), "NB031": (("metadata", "kernelspec"),),
    "NB004": (("nbformat_minor",),),
}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def render_sarif(doc: Mapping[str, Any]) -> str:
    """The SARIF log of the document's findings."""
    findings = [f for f in doc.get("findings") or [] if isinstance(f, Mapping)]
    codes = sorted({str(f.get("code")) for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    files = _FileLines()
    results = [_result(f, index, files) for f in findings]
    run = {
        "tool": {"driver": {"name": "nbmedic", "version": __version__, "semanticVersion": __version__,
                            "informationUri": PROJECT_URL, "rules": [_rule(code) for code in codes]}},
        "invocations": [{"executionSuccessful": True}],
        "originalUriBaseIds": {SRCROOT: {"uri": _folder_uri(os.getcwd())}},
        "columnKind": "utf16CodeUnits",
        "results": results,
    }
    log = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return to_json(log)


# --- rules -------------------------------------------------------------------------------------------------

def rule_name(title: str) -> str:
    """A short CamelCase name from a code's title: ``the file is not JSON: ...`` -> ``FileIsNotJSON``."""
    head = re.split(r"[:,;]| - ", re.sub(r"\s*\([^)]*\)", "", title))[0]
    words = [w for w in re.findall(r"[A-Za-z0-9_]+", head.replace("'s ", " ")) if w.lower() not in ("the", "a", "an")]
    return "".join(w[:1].upper() + w[1:] for w in words[:6]) or "Finding"


def _rule(code: str) -> dict[str, Any]:
    info = CODES.get(code)
    title = info.title if info else f"finding {code}"
    short = title.split(":")[0].strip()
    rule: dict[str, Any] = {
        "id": code, "name": rule_name(title) if info else code,
        "shortDescription": {"text": short[:1].upper() + short[1:]},
        "fullDescription": {"text": title[:1].upper() + title[1:] + "."},
        "helpUri": CODES_URL,
    }
    if info:
        rule["help"] = {"text": f"{title[:1].upper() + title[1:]}.\n\nFix: {info.fix}",
                        "markdown": f"**{code}**: {title}.\n\n**Fix:** {info.fix}"}
        rule["defaultConfiguration"] = {"level": _LEVELS[info.severity]}
    rule["properties"] = {"tags": ["nbmedic", _FAMILIES.get(code[:2], "other")]}
    return rule


# --- results -----------------------------------------------------------------------------------------------

def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def fingerprint(finding: Mapping[str, Any]) -> str:
    """A stable id of a finding across runs: code, path, cell (by id, else index) and the message with its
    numbers blanked (sizes, counts and times change from run to run; the alert is the same)."""
    cell = _str(finding.get("cell_id")) or str(int_or_none(finding.get("cell")))
    message = _NUMBER.sub("#", str(finding.get("message", "")))
    path = _str(finding.get("path"))
    where = artifact_location(path)["uri"] if path else ""  # one file, however the command was given it
    key = "\x1f".join((str(finding.get("code")), where, cell, message))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _message(finding: Mapping[str, Any]) -> str:
    text = str(finding.get("message", ""))
    info = CODES.get(str(finding.get("code")))
    fix = _str(finding.get("fix"))
    if fix and (info is None or fix != info.fix):  # a fix of its own: the rule's help has the general one
        text += f"\nFix: {fix}"
    return text


def _result(finding: Mapping[str, Any], index: Mapping[str, int], files: _FileLines) -> dict[str, Any]:
    code = str(finding.get("code"))
    severity = str(finding.get("severity"))
    cell, cell_id = int_or_none(finding.get("cell")), _str(finding.get("cell_id"))
    result: dict[str, Any] = {
        "ruleId": code, "ruleIndex": index[code], "level": _LEVELS.get(severity, "warning"),
        "message": {"text": _message(finding)},
    }
    location = _location(finding, files)
    if location:
        result["locations"] = [location]
    result["partialFingerprints"] = {FINGERPRINT: fingerprint(finding)}
    properties: dict[str, Any] = {"severity": severity}
    if cell is not None:
        properties["cell"] = cell
    if cell_id is not None:
        properties["cell_id"] = cell_id
    evidence = finding.get("evidence")
    if isinstance(evidence, Mapping) and evidence:
        properties["evidence"] = dict(evidence)
    if _str(finding.get("fix")):
        properties["fix"] = finding["fix"]
    result["properties"] = properties
    return result


# --- locations ---------------------------------------------------------------------------------------------

def _folder_uri(path: str) -> str:
    uri = Path(os.path.abspath(path)).as_uri()
    return uri if uri.endswith("/") else uri + "/"


def artifact_location(path: str) -> dict[str, str]:
    """``path`` as a SARIF artifactLocation: relative to the current folder when under it, else file://."""
    full = os.path.abspath(path)
    folder = os.path.isdir(full)
    try:
        rel = os.path.relpath(full, os.getcwd())
    except ValueError:  # another drive (Windows)
        rel = os.pardir
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        uri = _folder_uri(full) if folder else Path(full).as_uri()
        return {"uri": uri}
    uri = quote(Path(rel).as_posix(), safe="/")
    if folder:
        uri = "./" if uri == "." else uri.rstrip("/") + "/"
    return {"uri": uri, "uriBaseId": SRCROOT}


def _where(finding: Mapping[str, Any]) -> str | None:
    """The file or folder a finding is about: its path, else a kernelspec folder or file its evidence names."""
    path = _str(finding.get("path"))
    if path:
        return path
    evidence = finding.get("evidence")
    if isinstance(evidence, Mapping):
        for key in ("resource_dir", "file"):
            if _str(evidence.get(key)):
                return str(evidence[key])
    return None


def _location(finding: Mapping[str, Any], files: _FileLines) -> dict[str, Any] | None:
    where = _where(finding)
    if where is None:
        return None
    physical: dict[str, Any] = {"artifactLocation": artifact_location(where)}
    cell = int_or_none(finding.get("cell"))
    if _str(finding.get("path")):
        physical.update(_regions(finding, cell, files))
    location: dict[str, Any] = {"physicalLocation": physical}
    if cell is not None:
        location["logicalLocations"] = [{"name": f"cell {cell}", "fullyQualifiedName": f"$.cells[{cell}]",
                                         "kind": "object"}]
    return location


def _region(start: int, end: int | None = None, column: int | None = None) -> dict[str, int]:
    region = {"startLine": start}
    if column is not None and column >= 1:
        region["startColumn"] = column
    if end is not None and end > start:
        region["endLine"] = end
    return region


def _regions(finding: Mapping[str, Any], cell: int | None, files: _FileLines) -> dict[str, Any]:
    """``region`` (and ``contextRegion``) of a finding about a file."""
    code = str(finding.get("code"))
    evidence = finding.get("evidence")
    evidence = evidence if isinstance(evidence, Mapping) else {}
    if code in _FILE_LINE_CODES and int_or_none(evidence.get("line")):
        return {"region": _region(evidence["line"], column=int_or_none(evidence.get("column")))}
    if code.startswith("LG"):
        lines = [n for n in evidence.get("lines") or [] if int_or_none(n) and n >= 1]
        return {"region": _region(lines[0])} if lines else {}
    path = str(finding["path"])
    if cell is None and code == "NB010":  # outputs committed: the first cell that has them
        cell = int_or_none(evidence.get("first_cell"))
    if cell is None:
        found = next(filter(None, (files.member(path, keys) for keys in _MEMBERS.get(code, ()))), None)
        return {"region": _region(*found)} if found else {}
    where = files.cell(path, cell)
    if where is None:
        return {}
    whole = _region(where.start, where.end)
    inside = [line for n in _cell_lines(code, cell, evidence) if (line := where.source_line(n)) is not None]
    if not inside:
        return {"region": whole}
    return {"region": _region(min(inside), max(inside)), "contextRegion": whole}


def _cell_lines(code: str, cell: int, evidence: Mapping[str, Any]) -> list[int]:
    """The 1-based lines of the cell's source a finding names."""
    if code == "NB040":
        return [n for n in evidence.get("lines") or [] if int_or_none(n)]
    if code == "EN242":
        return [int(item["line"]) for item in evidence.get("cuda_lines") or []
                if isinstance(item, Mapping) and int_or_none(item.get("cell")) == cell and int_or_none(item.get("line"))]
    line = int_or_none(evidence.get("cell_line"))
    return [line] if line else []


# --- cells in the notebook file's JSON text ----------------------------------------------------------------

@dataclass(frozen=True)
class CellLines:
    """Where a cell lies in the notebook file: its object's first and last line, and the file line of each
    line of its source."""

    start: int
    end: int
    source: tuple[int, ...] = ()

    def source_line(self, n: int) -> int | None:
        return self.source[n - 1] if 1 <= n <= len(self.source) else None


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Text:
    """JSON text with 1-based line numbers of offsets, and the members and items of its values by offset
    (``json``'s scanner skips each value: the text is parsed once, never built into objects twice)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def line(self, pos: int) -> int:
        return bisect_right(self.newlines, pos - 1) + 1

    def skip(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def expect(self, pos: int, char: str) -> int:
        if self.text[pos:pos + 1] != char:
            raise ValueError(f"expected {char!r} at {pos}")
        return self.skip(pos + 1)

    def members(self, pos: int) -> Iterator[tuple[str, int, int]]:
        """(key, start, end) of each member of the object at ``pos``."""
        pos = self.expect(pos, "{")
        while self.text[pos:pos + 1] != "}":
            key, pos = _DECODER.raw_decode(self.text, pos)
            pos = self.expect(self.skip(pos), ":")
            _, end = _DECODER.raw_decode(self.text, pos)
            yield str(key), pos, end
            pos = self.skip(end)
            if self.text[pos:pos + 1] == ",":
                pos = self.skip(pos + 1)

    def items(self, pos: int) -> Iterator[tuple[Any, int, int]]:
        """(value, start, end) of each item of the array at ``pos``."""
        pos = self.expect(pos, "[")
        while self.text[pos:pos + 1] != "]":
            value, end = _DECODER.raw_decode(self.text, pos)
            yield value, pos, end
            pos = self.skip(end)
            if self.text[pos:pos + 1] == ",":
                pos = self.skip(pos + 1)


def _source_lines(doc: _Text, pos: int) -> tuple[int, ...]:
    """The file line of each line of a cell's ``source`` (a list of lines, or one string)."""
    if doc.text[pos:pos + 1] == "[":
        parts = [(value, start) for value, start, _ in doc.items(pos)]
    else:
        parts = [(_DECODER.raw_decode(doc.text, pos)[0], pos)]
    out: list[int] = []
    for text, start in parts:
        if not isinstance(text, str):
            return ()
        out += [doc.line(start)] * max(1, text.count("\n") + (not text.endswith("\n")))
    return tuple(out)


def cell_lines(text: str) -> list[CellLines]:
    """Where each cell of a notebook's JSON text lies; ValueError when it is not a notebook's JSON."""
    return _cells(_Text(text))


def _cells(doc: _Text) -> list[CellLines]:
    for key, pos, _ in doc.members(doc.skip(0)):
        if key != "cells":
            continue
        cells = []
        for _, start, end in doc.items(pos):
            source = next((s for k, s, _ in doc.members(start) if k == "source"), None)
            cells.append(CellLines(doc.line(start), doc.line(end - 1),
                                   _source_lines(doc, source) if source is not None else ()))
        return cells
    return []


def member_lines(doc: _Text, keys: Sequence[str]) -> tuple[int, int] | None:
    """The first and last line of the member at ``keys`` (``("metadata", "kernelspec")``), None if absent."""
    pos = doc.skip(0)
    found = None
    for key in keys:
        found = next(((s, e) for k, s, e in doc.members(pos) if k == key), None)
        if found is None or (key != keys[-1] and doc.text[found[0]:found[0] + 1] != "{"):
            return None
        pos = found[0]
    return (doc.line(found[0]), doc.line(found[1] - 1)) if found else None


@dataclass
class _Notebook:
    """A notebook file's JSON text, read once per rendering, and its cells once asked for."""

    doc: _Text
    cells: list[CellLines] | None = None


@dataclass
class _FileLines:
    """The notebook files of a rendering, each read once; a file that cannot be read or parsed has no lines."""

    files: dict[str, _Notebook | None] = field(default_factory=dict)

    def _file(self, path: str) -> _Notebook | None:
        if path not in self.files:
            try:
                self.files[path] = _Notebook(_Text(Path(path).read_bytes().decode("utf-8-sig")))
            except (OSError, ValueError):  # unreadable, not UTF-8, a NUL in the name (a hand-edited document)
                self.files[path] = None
        return self.files[path]

    def cell(self, path: str, index: int) -> CellLines | None:
        nb = self._file(path)
        if nb is None:
            return None
        if nb.cells is None:
            try:
                nb.cells = _cells(nb.doc)
            except (ValueError, IndexError):
                self.files[path] = None
                return None
        return nb.cells[index] if 0 <= index < len(nb.cells) else None

    def member(self, path: str, keys: Sequence[str]) -> tuple[int, int] | None:
        nb = self._file(path)
        try:
            return member_lines(nb.doc, keys) if nb else None
        except (ValueError, IndexError):
            return None
