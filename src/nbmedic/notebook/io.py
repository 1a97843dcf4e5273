"""Read notebooks fast and say precisely where a broken one is broken; write them canonically.

Canonical form is exactly what Jupyter writes on save (``nbformat.write(nbformat.read(f))``):
multi-line text re-split into lists of lines, transient keys dropped, JSON with ``indent=1``,
sorted keys, ``ensure_ascii=False`` and a trailing newline.  CPython's ``json`` encoder is pure
Python once ``indent`` is set, so the fast path serialises with orjson (indent 2) and rewrites
the indentation line by line: a JSON string never contains a raw newline, so every line's
leading spaces are indentation.  Floats are re-rendered with ``repr`` (orjson writes ``1e-5``
where Python writes ``1e-05``), and anything orjson cannot express exactly (NaN, infinities,
integers beyond 64 bits, lone surrogates) falls back to the standard library encoder.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

ReadProblem = Literal[
    "empty", "bom", "html", "binary", "encoding", "conflict", "truncated", "syntax", "not-object",
]

_CONFLICT_RE = re.compile(rb"^(<<<<<<<|=======|>>>>>>>|\|\|\|\|\|\|\|)(?:[ \t][^\r\n]*)?\r?$", re.MULTILINE)
_HTML_RE = re.compile(rb"^\s*(?:<!doctype\s+html|<html|<head|<body|<!--|<\?xml|<div|<meta)", re.IGNORECASE)
_TITLE_RE = re.compile(rb"<title[^>]*>(.{0,200}?)</title>", re.IGNORECASE | re.DOTALL)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"), (b"PK\x03\x04", "a ZIP archive"), (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip data"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an ELF executable"), (b"SQLite format 3", "an SQLite database"),
    (b"version https://git-lfs", "a Git LFS pointer"),
)


@dataclass(frozen=True)
class NotebookReadError(Exception):
    """Why bytes are not a notebook, and where: a ``kind``, a one-line ``message``, line/column."""

    kind: ReadProblem
    message: str
    line: int | None = None
    column: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def _line_col(data: bytes, pos: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return line, col


def _excerpt(data: bytes, pos: int, width: int = 40) -> str:
    start = max(0, pos - width)
    text = data[start: pos + width].decode("utf-8", "replace")
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def conflict_markers(data: bytes) -> list[tuple[int, str]]:
    """(line number, marker) for each git conflict marker line in ``data``."""
    out = []
    for m in _CONFLICT_RE.finditer(data):
        out.append((data.count(b"\n", 0, m.start()) + 1, m.group(1).decode()))
    return out


def _looks_binary(data: bytes) -> str | None:
    head = data[:4096]
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if b"\x00" in head:
        return "binary data (NUL bytes)"
    return None


def _diagnose(data: bytes) -> NotebookReadError:
    """Explain why ``data`` did not parse as a JSON object (only called on failure)."""
    if not data.strip():
        what = "empty (0 bytes)" if not data else f"only whitespace ({len(data)} bytes)"
        return NotebookReadError("empty", f"the file is {what}; a failed save or copy leaves such files",
                                 evidence={"size": len(data)})
    binary = _looks_binary(data)
    if binary:
        return NotebookReadError("binary", f"the file is {binary}, not a notebook",
                                 evidence={"size": len(data), "first_bytes": data[:16].hex(" ")})
    markers = conflict_markers(data)
    if markers:
        starts = [n for n, m in markers if m == "<<<<<<<"]
        return NotebookReadError(
            "conflict",
            f"git conflict markers on {len(markers)} line(s), {len(starts)} conflict(s), first at line "
            f"{markers[0][0]}",
            line=markers[0][0], column=1,
            evidence={"conflicts": len(starts), "marker_lines": [n for n, _ in markers][:50]},
        )
    if _HTML_RE.match(data):
        title = _TITLE_RE.search(data)
        what = "an HTML page"
        if title:
            what += f" titled {title.group(1).decode('utf-8', 'replace').strip()!r}"
        return NotebookReadError("html", f"the file is {what}, not a notebook (a web page saved as .ipynb?)",
                                 line=1, column=1, evidence={"size": len(data)})
    if data.startswith(b"\xef\xbb\xbf"):
        return NotebookReadError("bom", "the file starts with a UTF-8 byte-order mark, which Jupyter "
                                 "cannot read", line=1, column=1, evidence={"size": len(data)})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        return NotebookReadError(
            "encoding", f"invalid UTF-8 at line {line}, column {col} (byte 0x{data[exc.start]:02x}); "
            "notebooks must be UTF-8", line=line, column=col,
            evidence={"offset": exc.start, "near": _excerpt(data, exc.start)})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        rest = text[exc.pos:].strip()
        if not rest:
            return NotebookReadError(
                "truncated", f"the JSON ends abruptly at line {exc.lineno}, column {exc.colno} "
                f"({exc.msg.lower()}): the file is truncated", line=exc.lineno, column=exc.colno,
                evidence={"size": len(data), "offset": exc.pos, "tail": _excerpt(data, len(data), 60)})
        byte_pos = len(text[:exc.pos].encode("utf-8"))
        return NotebookReadError(
            "syntax", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg.lower()}",
            line=exc.lineno, column=exc.colno, evidence={"offset": byte_pos, "near": _excerpt(data, byte_pos)})
    # parsed by the standard library but not by orjson, and still no object
    return NotebookReadError("not-object", f"the JSON holds {type(value).__name__}, not a notebook object",
                             line=1, column=1)


def load_bytes(data: bytes) -> dict[str, Any]:
    """Parse notebook bytes into a plain dict (lines not joined); raise NotebookReadError if not JSON."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = None
        # NaN, Infinity, integers beyond 64 bits and lone surrogates: valid for Python's json
        if data.strip() and not data.startswith(b"\xef\xbb\xbf"):
            try:
                value = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                value = None
        if value is None:
            raise _diagnose(data) from None
    if not isinstance(value, dict):
        raise NotebookReadError("not-object", f"the JSON holds {_json_type(value)}, not a notebook object",
                                line=1, column=1)
    return value


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def detect_newline(data: bytes) -> str:
    """``"\\r\\n"`` if the file's first line ends with CRLF, else ``"\\n"``."""
    first = data.find(b"\n")
    return "\r\n" if first > 0 and data[first - 1: first] == b"\r" else "\n"


def read_notebook(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """Read and parse a notebook file; OSError and NotebookReadError propagate."""
    data = Path(path).read_bytes()
    return load_bytes(data), data


# --- canonical writing --------------------------------------------------------------------------

_NON_TEXT_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def _bundle(data: Any) -> Any:
    """nbformat's rejoin_lines then split_lines on a mime bundle, without mutating the input."""
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if isinstance(value, list) and not _is_json_mime(key) and all(isinstance(v, str) for v in value):
            value = "".join(value)
        if isinstance(value, str) and (key.startswith("text/") or key in _NON_TEXT_SPLIT_MIMES):
            value = value.splitlines(True)
        out[key] = value
    return out


def _join(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) else value


def canonical(nb: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook as Jupyter would store it: lines re-split, transient keys dropped (input untouched)."""
    out = dict(nb)
    meta = out.get("metadata")
    if isinstance(meta, dict) and ({"orig_nbformat", "orig_nbformat_minor", "signature"} & meta.keys()):
        out["metadata"] = {k: v for k, v in meta.items()
                           if k not in ("orig_nbformat", "orig_nbformat_minor", "signature")}
    cells = out.get("cells")
    if isinstance(cells, list):
        out["cells"] = [_canonical_cell(c) if isinstance(c, dict) else c for c in cells]
    return out


def _canonical_cell(cell: dict[str, Any]) -> dict[str, Any]:
    c = dict(cell)
    if "source" in c:
        source = c["source"]
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        c["source"] = source.splitlines(True) if isinstance(source, str) else source
    meta = c.get("metadata")
    if isinstance(meta, dict) and "trusted" in meta:
        c["metadata"] = {k: v for k, v in meta.items() if k != "trusted"}
    attachments = c.get("attachments")
    if isinstance(attachments, dict):
        c["attachments"] = {k: _bundle(v) for k, v in attachments.items()}
    outputs = c.get("outputs")
    if c.get("cell_type") == "code" and isinstance(outputs, list):
        new_outputs = []
        for output in outputs:
            if isinstance(output, dict):
                output = dict(output)
                kind = output.get("output_type", "")
                if kind in ("execute_result", "display_data"):
                    if "data" in output:
                        output["data"] = _bundle(output["data"])
                elif kind and isinstance(output.get("text"), list):
                    output["text"] = _join(output["text"])
                if kind == "stream" and isinstance(output.get("text"), str):
                    output["text"] = output["text"].splitlines(True)
            new_outputs.append(output)
        c["outputs"] = new_outputs
    return c


_INDENT_RE = re.compile(rb"^((?:  )+)", re.MULTILINE)
_FLOAT_RE = re.compile(
    rb'^( *(?:"(?:[^"\\\n]|\\.)*": )?)(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(,?)$', re.MULTILINE)


def _halve(m: re.Match[bytes]) -> bytes:
    return m.group(1)[: len(m.group(1)) // 2]


def _refloat(m: re.Match[bytes]) -> bytes:
    token = m.group(2)
    if b"." in token or b"e" in token or b"E" in token:
        token = repr(float(token)).encode()
    return m.group(1) + token + m.group(3)


def _has_nonfinite(obj: Any) -> bool:
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _dumps_stdlib(nb: Any) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)


def dumps(nb: Mapping[str, Any], newline: str = "\n") -> str:
    """Serialise exactly as ``nbformat.write`` would (plus the file's newline style)."""
    doc = canonical(nb)
    try:
        raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        text = _dumps_stdlib(doc)
    else:
        if b"null" in raw and _has_nonfinite(doc):
            text = _dumps_stdlib(doc)
        else:
            raw = _INDENT_RE.sub(_halve, raw)
            if b"." in raw or b"e" in raw or b"E" in raw:
                raw = _FLOAT_RE.sub(_refloat, raw)
            text = raw.decode("utf-8")
    text += "\n"
    if newline != "\n":
        text = text.replace("\n", newline)
    return text


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> bool:
    """Replace ``path`` with ``data`` atomically; return False (and touch nothing) if unchanged."""
    target = Path(path)
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    mode = None
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True


def write_notebook(path: str | os.PathLike[str], nb: Mapping[str, Any], newline: str = "\n") -> bool:
    """Write ``nb`` canonically and atomically; False if the file already held exactly that."""
    return atomic_write_bytes(path, dumps(nb, newline).encode("utf-8"))
