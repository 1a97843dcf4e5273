"""Read notebooks fast and say precisely where a broken one is broken; write them canonically.

Canonical form is exactly what Jupyter writes on save (``nbformat.write(nbformat.read(f))``):
multi-line text re-split into lists of lines, transient keys dropped, JSON with ``indent=1``,
sorted keys, ``ensure_ascii=False`` and a trailing newline.

CPython's ``json`` encoder is pure Python once ``indent`` is set, so the fast path serialises with
orjson (indent 2, sorted keys) and rewrites the result into nbformat's exact layout:

* indentation: a JSON string never contains a raw newline (nor a raw tab), so the leading spaces
  of every line are indentation, which is halved;
* floats: orjson writes ``0.00001`` where Python writes ``1e-05``.  orjson prints the shortest
  text that round-trips, so ``repr(float(token))`` is exactly what ``json.dumps`` prints.  A float
  is the only token that ends a line with a digit (a string line ends with a quote), which makes
  float tokens easy to find;
* anything orjson cannot express exactly (NaN and infinities, integers beyond 64 bits, lone
  surrogates, nesting deeper than 255, non-string keys) goes to the standard library encoder.

On the read side orjson turns integers beyond 64 bits into floats silently, so files holding a run
of 19 or more digits outside a string are parsed by the standard library instead.

Byte-identity with ``nbformat.writes`` is tested on every notebook of ``tests/corpus`` and on
generated notebooks (``tests/test_roundtrip.py``).
"""

from __future__ import annotations

import codecs
import copy
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Literal

import orjson

__all__ = [
    "NotebookReadError",
    "ReadProblem",
    "atomic_write_bytes",
    "canonical",
    "conflict_markers",
    "current_umask",
    "detect_newline",
    "dumps",
    "encode_text",
    "load_bytes",
    "load_large",
    "read_json_object",
    "read_notebook",
    "write_notebook",
]

ReadProblem = Literal[
    "empty", "bom", "html", "binary", "encoding", "conflict", "truncated", "syntax", "not-object", "too-large",
]

BOM = b"\xef\xbb\xbf"
_CONFLICT_RE = re.compile(rb"^(<<<<<<<|=======|>>>>>>>|\|\|\|\|\|\|\|)(?:[ \t][^\r\n]*)?\r?$", re.MULTILINE)
_HTML_RE = re.compile(
    rb"^\s*(?:<!doctype\s+html|<html|<head|<body|<!--|<\?xml|<div|<meta|<script|<title)", re.IGNORECASE)
_TITLE_RE = re.compile(rb"<title[^>]*>(.{0,200}?)</title>", re.IGNORECASE | re.DOTALL)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"), (b"PK\x03\x04", "a ZIP archive"), (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "gzip data"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an ELF executable"), (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"BZh", "bzip2 data"), (b"\xfd7zXZ\x00", "xz data"), (b"\x28\xb5\x2f\xfd", "zstd data"),
    (b"\x93NUMPY", "a NumPy array file"), (b"\x89HDF", "an HDF5 file"), (b"PAR1", "a Parquet file"),
)
_LFS_PREFIX = b"version https://git-lfs"
# a number token of 19+ digits: orjson would turn it into a float if it does not fit 64 bits
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))  # bytes.translate runs at C speed
_LONG_DIGITS = b"0" * 19
_ZEROS = re.compile(rb"0*")


def _may_hold_big_int(data: bytes) -> bool:
    """Is there a number token of 19+ digits (one that may not fit 64 bits)?  False positives are harmless."""
    mapped = data.translate(_DIGITS_AS_ZERO)
    pos = mapped.find(_LONG_DIGITS)
    while pos >= 0:
        before = mapped[max(0, pos - 64): pos].rstrip(b" \t\r\n-").rstrip(b" \t\r\n")
        if before[-1:] in (b"[", b":", b","):
            return True
        run = _ZEROS.match(mapped, pos)  # always matches: skip the whole run of digits
        pos = mapped.find(_LONG_DIGITS, run.end() if run else pos + 1)
    return False


@dataclass(frozen=True)
class NotebookReadError(Exception):
    """Why bytes are not a notebook, and where: a ``kind``, a one-line ``message``, line/column (1-based)."""

    kind: ReadProblem
    message: str
    line: int | None = None
    column: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def _line_col(data: bytes, pos: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte offset ``pos``."""
    line = data.count(b"\n", 0, pos) + 1
    start = data.rfind(b"\n", 0, pos) + 1
    col = len(data[start:pos].decode("utf-8", "replace")) + 1
    return line, col


def _excerpt(data: bytes, pos: int, width: int = 40) -> str:
    start = max(0, pos - width)
    text = data[start: pos + width].decode("utf-8", "replace")
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def conflict_markers(data: bytes) -> list[tuple[int, str]]:
    """(line number, marker) for each git conflict marker line in ``data``."""
    return [(data.count(b"\n", 0, m.start()) + 1, m.group(1).decode()) for m in _CONFLICT_RE.finditer(data)]


def _looks_binary(data: bytes) -> str | None:
    head = data[:4096]
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head.startswith(_LFS_PREFIX):
        return "a Git LFS pointer (run `git lfs pull` to fetch the notebook)"
    if b"\x00" in head:
        return "binary data (NUL bytes)"
    return None


def _wide_encoding(data: bytes) -> str | None:
    """UTF-16/32 (a Windows editor's "Unicode"): by byte-order mark, or by NULs between ASCII bytes."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    head = data[:64]
    even, odd = head[0::2], head[1::2]
    if len(head) >= 8 and head.isascii():
        if odd.count(0) == len(odd) and 0 not in even:
            return "UTF-16 (little-endian, no byte-order mark)"
        if even.count(0) == len(even) and 0 not in odd:
            return "UTF-16 (big-endian, no byte-order mark)"
    return None


def _diagnose(data: bytes) -> NotebookReadError:
    """Explain why ``data`` did not parse as a JSON object (only called on failure)."""
    size = len(data)
    if not data.strip():
        what = "empty (0 bytes)" if not data else f"only whitespace ({size} bytes)"
        return NotebookReadError("empty", f"the file is {what}; a failed save or copy leaves such files",
                                 evidence={"size": size})
    wide = _wide_encoding(data)
    if wide:
        return NotebookReadError(
            "encoding", f"the file is encoded as {wide}; notebooks must be UTF-8", line=1, column=1,
            evidence={"size": size, "encoding": wide, "first_bytes": data[:16].hex(" ")})
    binary = _looks_binary(data)
    if binary:
        return NotebookReadError("binary", f"the file is {binary}, not a notebook",
                                 evidence={"size": size, "first_bytes": data[:16].hex(" ")})
    markers = conflict_markers(data)
    if markers:
        starts = [n for n, m in markers if m == "<<<<<<<"]
        lines = [n for n, _ in markers]
        return NotebookReadError(
            "conflict",
            f"git conflict markers on {len(markers)} line(s), {len(starts)} conflict(s), first at line "
            f"{markers[0][0]}",
            line=markers[0][0], column=1,
            evidence={"conflicts": len(starts), "markers": len(markers), "marker_lines": lines[:50]},
        )
    if _HTML_RE.match(data):
        title = _TITLE_RE.search(data)
        what = "an HTML page"
        evidence: dict[str, Any] = {"size": size}
        if title:
            name = title.group(1).decode("utf-8", "replace").strip()
            what += f" titled {name!r}"
            evidence["title"] = name
        return NotebookReadError("html", f"the file is {what}, not a notebook (a web page saved as .ipynb?)",
                                 line=1, column=1, evidence=evidence)
    if data.startswith(BOM):
        return NotebookReadError("bom", "the file starts with a UTF-8 byte-order mark, which Jupyter "
                                 "cannot read", line=1, column=1, evidence={"size": size})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        bad = data[exc.start: exc.end]
        return NotebookReadError(
            "encoding", f"invalid UTF-8 at line {line}, column {col} (byte 0x{data[exc.start]:02x}): "
            "notebooks must be UTF-8; was it saved as Latin-1 or Windows-1252?", line=line, column=col,
            evidence={"offset": exc.start, "bytes": bad.hex(" "), "near": _excerpt(data, exc.start),
                      "reason": exc.reason})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return _syntax_error(data, text, exc)
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        return NotebookReadError("syntax", f"the JSON cannot be read: {exc}", evidence={"size": size})
    except RecursionError:
        return NotebookReadError("syntax", "the JSON is nested too deeply to read", evidence={"size": size})
    return NotebookReadError("not-object", f"the JSON holds {_json_type(value)}, not a notebook object",
                             line=1, column=1, evidence={"type": _json_type(value)})


# the last token of a file cut short: a prefix of true/false/null or of a number
_LAST_TOKEN = re.compile(r"[\[{,:]\s*([-+.\w]*)\s*\Z")
_PARTIAL_TOKEN = re.compile(
    r"t(?:r(?:ue?)?)?|f(?:a(?:l(?:se?)?)?)?|n(?:u(?:ll?)?)?|-|-?\d+\.?|-?\d+(?:\.\d+)?[eE][-+]?|-?\d+(?:\.\d+)?")


def _is_cut_short(text: str, exc: json.JSONDecodeError) -> bool:
    """Does the JSON error come from the end of the text (a file cut short) rather than a mistake?"""
    rest = text[exc.pos:]
    if not rest.strip() or exc.msg.startswith("Unterminated string"):
        return True
    if exc.msg.startswith("Invalid \\") and '"' not in rest and "\n" not in rest.rstrip():
        return True  # cut inside an escape sequence
    tail_start = max(0, len(text) - 200)
    last = _LAST_TOKEN.search(text, tail_start)
    return last is not None and exc.pos >= last.start(1) and _PARTIAL_TOKEN.fullmatch(last.group(1)) is not None


def _syntax_error(data: bytes, text: str, exc: json.JSONDecodeError) -> NotebookReadError:
    truncated = _is_cut_short(text, exc)
    byte_pos = len(text[:exc.pos].encode("utf-8"))
    if truncated:
        end_line, end_col = _line_col(data, len(data.rstrip()))
        cells = data.count(b'"cell_type"')
        return NotebookReadError(
            "truncated", f"the file is truncated: the JSON stops in the middle at line {end_line}, column "
            f"{end_col} ({exc.msg.lower()})", line=end_line, column=end_col,
            evidence={"size": len(data), "offset": byte_pos, "error": exc.msg,
                      "cells_started": cells, "tail": _excerpt(data, len(data), 60)})
    return NotebookReadError(
        "syntax", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg.lower()}",
        line=exc.lineno, column=exc.colno,
        evidence={"offset": byte_pos, "error": exc.msg, "near": _excerpt(data, byte_pos)})


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _stdlib_loads(data: bytes) -> Any:
    """Python's parser (NaN, Infinity, huge integers, lone surrogates); NotebookReadError on failure."""
    if data.startswith(BOM):  # json.loads refuses it too; say so precisely
        raise _diagnose(data)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise _diagnose(data) from None


def load_bytes(data: bytes) -> dict[str, Any]:
    """Parse notebook bytes into a plain dict (lines not joined); raise NotebookReadError if not a notebook.

    The value is what ``json.loads`` returns for the text, whichever parser did the work.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = _stdlib_loads(data)
    else:
        if _may_hold_big_int(data):
            value = _stdlib_loads(data)  # orjson would have made floats of integers beyond 64 bits
    if not isinstance(value, dict):
        raise NotebookReadError("not-object", f"the JSON holds {_json_type(value)}, not a notebook object",
                                line=1, column=1, evidence={"type": _json_type(value)})
    return value


def detect_newline(data: bytes) -> str:
    """``"\\r\\n"`` if the file's first line ends with CRLF, else ``"\\n"``."""
    first = data.find(b"\n")
    return "\r\n" if first > 0 and data[first - 1: first] == b"\r" else "\n"


def read_notebook(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """Read and parse a notebook file; OSError and NotebookReadError propagate."""
    data = Path(path).read_bytes()
    return load_bytes(data), data


LARGE_FILE = 4 * 1024 * 1024  # bytes: from here on ``load_large`` parses with the standard library
MAX_ESCAPED = 100_000  # non-ASCII characters ``load_large`` escapes (one Python call per run of them)
_BLOCK = 1 << 20
_BELOW_C2 = bytes(range(0xC2))  # what is left is one lead byte per non-ASCII character (in valid UTF-8)
_BELOW_C4 = bytes(range(0xC4))  # ... per character beyond U+00FF (two or four bytes each in a str)


def _json_escape(exc: UnicodeError) -> tuple[str, int]:
    """Error handler of ``str.encode``: a run of non-ASCII characters as JSON ``\\u`` escapes."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text, start, end = exc.object, exc.start, exc.end
    if start and text[start - 1] == "\\":  # not valid JSON: let the precise reader say what is wrong
        raise ValueError("a non-ASCII character after a backslash")
    return encode_basestring_ascii(text[start:end])[1:-1], end


codecs.register_error("nbmedic-json-escape", _json_escape)


def _compact_text(data: bytes) -> str:
    """``data`` decoded into a string of one byte per character whose JSON means the same: characters
    beyond U+00FF (legal only inside JSON strings) become ``\\u`` escapes, block by block, so no string
    of two or four bytes per character is ever made of the whole file.  ValueError (UnicodeDecodeError
    included) when that cannot be done: not UTF-8, too many such characters, one after a backslash."""
    if data.isascii():
        return data.decode("ascii")
    leads = data.translate(None, _BELOW_C2)
    if not leads.translate(None, _BELOW_C4):
        return data.decode("utf-8")  # Latin-1 only: one byte per character already
    if len(leads) > MAX_ESCAPED:
        raise ValueError("too many non-ASCII characters to escape")
    out = bytearray()
    start, size = 0, len(data)
    while start < size:
        end = min(size, start + _BLOCK)
        while end < size and data[end] >= 0x80:  # cut between characters
            end -= 1
        if end == start:  # a megabyte without one ASCII byte: not UTF-8 text, the decoder will say so
            end = min(size, start + _BLOCK)
        block = data[start:end]
        out += block if block.isascii() else block.decode("utf-8").encode("ascii", "nbmedic-json-escape")
        start = end
    return out.decode("ascii")


def load_large(path: str | os.PathLike[str]) -> tuple[dict[str, Any], int, str]:
    """Read and parse a notebook file: (notebook, size in bytes, ``detect_newline`` of it).

    The value, and the error for a file that is not a notebook, are what ``load_bytes`` gives for the
    file's bytes.  For a file of ``LARGE_FILE`` bytes or more (long strings: images, logs), the bytes are
    dropped once decoded and the text once parsed, and the standard library parses (it is exact for any
    integer, so no scan for long ones is needed): about twice the file's size at the peak instead of
    orjson's three and a half.  When that parse fails, ``load_bytes`` reads the file again to say why.
    """
    data = Path(path).read_bytes()
    size, newline = len(data), detect_newline(data)
    if size < LARGE_FILE or data.startswith(BOM):
        return load_bytes(data), size, newline
    try:
        text = _compact_text(data)
    except ValueError:  # UnicodeDecodeError included
        return load_bytes(data), size, newline
    del data  # the caller holds no reference: the text and the objects never meet the bytes
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        value = None
    del text
    if not isinstance(value, dict):
        return load_bytes(Path(path).read_bytes()), size, newline
    return value, size, newline


# --- canonical form ---------------------------------------------------------------------------

_NON_TEXT_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})
_TRANSIENT_NB_META = ("orig_nbformat", "orig_nbformat_minor", "signature")


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def _all_str(items: list[Any]) -> bool:
    return all(isinstance(item, str) for item in items)


def _bundle(data: Any) -> Any:
    """nbformat's rejoin then split of a mime bundle, without mutating the input."""
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if isinstance(value, list) and not _is_json_mime(key) and _all_str(value):
            value = "".join(value)
        if isinstance(value, str) and (key.startswith("text/") or key in _NON_TEXT_SPLIT_MIMES):
            value = value.splitlines(True)
        out[key] = value
    return out


def canonical(nb: Mapping[str, Any]) -> dict[str, Any]:
    """The nbformat-4 notebook as Jupyter stores it: lines re-split, transient keys dropped.

    The input is not modified; unchanged sub-objects are shared with it, not copied.
    """
    out = dict(nb)
    meta = out.get("metadata")
    if isinstance(meta, dict) and not meta.keys().isdisjoint(_TRANSIENT_NB_META):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _TRANSIENT_NB_META}
    cells = out.get("cells")
    if isinstance(cells, list):
        out["cells"] = [_canonical_cell(c) if isinstance(c, dict) else c for c in cells]
    return out


def _canonical_cell(cell: dict[str, Any]) -> dict[str, Any]:
    c = dict(cell)
    source = c.get("source")
    if isinstance(source, list) and _all_str(source):
        source = "".join(source)
    if isinstance(source, str):
        c["source"] = source.splitlines(True)
    meta = c.get("metadata")
    if isinstance(meta, dict) and "trusted" in meta:
        c["metadata"] = {k: v for k, v in meta.items() if k != "trusted"}
    attachments = c.get("attachments")
    if isinstance(attachments, dict):
        c["attachments"] = {k: _bundle(v) for k, v in attachments.items()}
    outputs = c.get("outputs")
    if c.get("cell_type") == "code" and isinstance(outputs, list):
        c["outputs"] = [_canonical_output(o) if isinstance(o, dict) else o for o in outputs]
    return c


def _canonical_output(output: dict[str, Any]) -> dict[str, Any]:
    out = dict(output)
    kind = out.get("output_type", "")
    if kind in ("execute_result", "display_data"):
        if "data" in out:
            out["data"] = _bundle(out["data"])
        return out
    text = out.get("text")
    if kind and isinstance(text, list) and _all_str(text):
        text = out["text"] = "".join(text)
    if kind == "stream" and isinstance(text, str):
        out["text"] = text.splitlines(True)
    return out


# --- serialisation ----------------------------------------------------------------------------

# a float token ends its line (a string token ends with a quote) and follows a space (indentation or
# the ": " after a key); orjson always writes a fraction or an exponent for floats, never for integers
_FLOAT_RE = re.compile(rb" (-?\d+(?:\.\d+(?:e[-+]?\d+)?|e[-+]?\d+))(?=,?\n|,?\Z)")


def _refloat(m: re.Match[bytes]) -> bytes:
    return b" " + repr(float(m.group(1))).encode()


def _reindent(raw: bytes) -> bytes:
    """Halve the indentation of orjson's indent-2 output: every line's leading spaces are indentation."""
    return b"\n".join([line[(len(line) - len(line.lstrip(b" "))) >> 1:] for line in raw.split(b"\n")])


def _floats(obj: Any) -> int:
    """0: no float in ``obj``; 1: finite floats only; 2: NaN or an infinity somewhere."""
    found = 0
    stack = [obj]
    isfinite = math.isfinite
    while stack:
        item = stack.pop()
        for value in item.values() if isinstance(item, dict) else item:
            kind = type(value)
            if kind is str:
                continue
            if kind is float or isinstance(value, float):
                if not isfinite(value):
                    return 2
                found = 1
            elif kind is dict or kind is list or isinstance(value, (dict, list)):
                stack.append(value)
    return found


def _bytes_default(obj: Any) -> Any:
    """nbformat's BytesEncoder: bytes are written as the ASCII text they hold."""
    if isinstance(obj, bytes):
        return obj.decode("ascii")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class _BytesEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        return _bytes_default(o)


def _dumps_stdlib(doc: Any, ensure_ascii: bool = False) -> str:
    return json.dumps(doc, cls=_BytesEncoder, indent=1, sort_keys=True, separators=(",", ": "),
                      ensure_ascii=ensure_ascii)


def _encode(doc: Any) -> str:
    try:
        raw = orjson.dumps(doc, default=_bytes_default, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # huge ints, lone surrogates, deep nesting, odd keys
        return _dumps_stdlib(doc)
    floats = _floats(doc)
    if floats == 2:  # orjson writes NaN and infinities as null; Python writes NaN, Infinity
        return _dumps_stdlib(doc)
    raw = _reindent(raw)
    if floats:
        raw = _FLOAT_RE.sub(_refloat, raw)
    return raw.decode("utf-8")


def _is_v3(nb: Mapping[str, Any]) -> bool:
    major = nb.get("nbformat")
    return type(major) is int and major == 3 and isinstance(nb.get("worksheets"), list)


def _dumps_v3(nb: Mapping[str, Any]) -> str | None:
    """nbformat 3 is rare and has its own layout (ASCII escapes): let nbformat do it."""
    try:
        from nbformat.v3 import nbjson

        v3nb = nbjson.to_notebook(copy.deepcopy(dict(nb)))  # type: ignore[no-untyped-call]
        text: str = nbjson.writes(v3nb)  # type: ignore[no-untyped-call]
    except Exception:  # a malformed v3 notebook: write it as plain canonical JSON instead
        return None
    return text


def dumps(nb: Mapping[str, Any], newline: str = "\n") -> str:
    """Serialise exactly as ``nbformat.writes(nbformat.reads(text, NO_CONVERT))`` + ``"\\n"`` would.

    ``newline`` is the line ending to use (``detect_newline`` gives a file's own).  Notebooks that
    nbformat cannot write (non-dict cells, missing keys) are still written, canonically.
    """
    text = _dumps_v3(nb) if _is_v3(nb) else None
    if text is None:
        text = _encode(canonical(nb))
    text += "\n"
    if newline != "\n":
        text = text.replace("\n", newline)
    return text


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_text(text: str) -> bytes:
    """UTF-8 bytes of ``dumps`` output; a lone surrogate (legal in JSON, not in UTF-8) stays a ``\\u`` escape."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in a small record file (nbmedic's own); None when it is missing, unreadable or not
    an object."""
    try:
        with open(path, "rb") as fh:
            value = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --- writing files ----------------------------------------------------------------------------

TEMP_SUFFIX = ".nbmedic-tmp"


def _temp_pattern(name: str) -> re.Pattern[str]:
    """The names of the temporary files written for a target ``name``: ``.NAME.PID.XXXXXXXX.nbmedic-tmp``."""
    return re.compile(rf"\.{re.escape(name)}\.(\d+)\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` exist (another user's counts: it cannot be signalled, but it runs)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def dead_writers(folder: str, pattern: re.Pattern[str]) -> list[str]:
    """The paths in ``folder`` whose whole name matches ``pattern`` (its first group: the pid of the
    process that made it) and whose process no longer runs: what a killed nbmedic left."""
    try:
        names = [entry.name for entry in os.scandir(folder or ".")]
    except OSError:
        return []
    dead = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is not None and not pid_alive(int(match.group(1))):
            dead.append(os.path.join(folder, name))
    return dead


def sweep_stale_temps(target: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files a killed writer left beside ``target`` (its pid is in the name and no
    longer runs); return their paths.  A live writer's file, and anything not named by nbmedic, stay."""
    folder, name = os.path.split(os.path.realpath(target))
    removed: list[str] = []
    for path in dead_writers(folder, _temp_pattern(name)):
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def current_umask() -> int:
    """This process's umask, read without changing it: ``os.umask`` sets it, for an instant, for every
    thread, and a file another thread creates then gets the wrong mode (Linux: ``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)  # no /proc: the only way left
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> bool:
    """Replace ``path`` with ``data`` atomically; return False (and touch nothing) if unchanged.

    The temporary file lives in the target's folder (so ``os.replace`` is a rename on one file
    system) and carries the writer's pid, so the next write to the target removes what a killed
    writer left (``sweep_stale_temps``); the target's permission bits are kept; a symlink is
    followed, not replaced; on any error the temporary file is removed and the original is left as it was.
    ``mode``, when given, is the new file's permission bits from its first byte (0o600: private records).
    """
    target = Path(os.path.realpath(path))
    sweep_stale_temps(target)
    try:
        if target.stat().st_size == len(data) and target.read_bytes() == data:
            return False
        if mode is None:
            mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            mode = 0o666 & ~current_umask()
        os.chmod(tmp, mode)
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
    return atomic_write_bytes(path, encode_text(dumps(nb, newline)))
