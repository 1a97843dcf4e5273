"""A notebook's cells in the HTML report, rendered safely: notebook content is untrusted.

Sources and text outputs are escaped into ``<pre>``; ``text/html``, ``image/svg+xml``, ``text/markdown``,
``application/javascript`` and every other type are shown as escaped text, never as markup; a PNG or JPEG
becomes an ``<img src="data:...">`` only once its base64 decodes to that type (magic bytes), and only
under ``MAX_IMAGE``.  Text is cut at ``MAX_TEXT`` per cell.  No ``href`` or ``src`` is made from notebook
data but such checked images.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.units import format_bytes

__all__ = ["MAX_IMAGE", "MAX_TEXT", "cell_html", "cells_of", "clean", "image_src", "missing_cells", "text_of"]

MAX_TEXT = 20_000  # characters of source, and of outputs, shown per cell
MAX_IMAGE = 200_000  # bytes of base64 an embedded image may have
_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",)}
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_WS_RE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Text as it can be shown: no terminal escapes, no control characters or lone surrogates, escaped."""
    if "\x1b" in text:
        text = strip_ansi(text)
    return html.escape(_CONTROL_RE.sub("\ufffd", text), quote=True)


def text_of(value: object) -> str:
    """A notebook string: a str, or a list of str (multi-line form); anything else is empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


def _cut(text: str, budget: int) -> tuple[str, str]:
    """``text`` within ``budget`` characters, and a note of what was left out."""
    if len(text) <= budget:
        return text, ""
    return text[:budget], f"… {len(text) - budget:,} more characters not shown"


def image_src(mime: str, data: object) -> str | None:
    """A ``data:`` URI for a PNG or JPEG whose base64 decodes to that type; None otherwise."""
    b64 = _WS_RE.sub("", text_of(data))
    if mime not in _MAGIC or not b64 or len(b64) > MAX_IMAGE:
        return None
    try:
        head = base64.b64decode(b64[:64], validate=True)
        base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not head.startswith(_MAGIC[mime]):
        return None
    return f"data:{mime};base64,{b64}"


def _pre(cls: str, text: str, budget: list[int]) -> str:
    shown, note = _cut(text, max(budget[0], 0))
    budget[0] -= len(shown)
    more = f'<p class="note">{note}</p>' if note else ""
    return f'<pre class="{cls}">{clean(shown)}</pre>{more}' if shown else more


def _data_output(data: Mapping[str, Any], budget: list[int]) -> str:
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            src = image_src(mime, data[mime])
            if src is not None:
                return f'<img class="output-image" alt="{mime} output" src="{html.escape(src, quote=True)}">'
            size = len(text_of(data[mime]))
            why = "too large to embed" if size > MAX_IMAGE else "not a valid image, not shown"
            return f'<p class="note">{mime} output ({format_bytes(size)} of base64): {why}</p>' + (
                _pre("out", text_of(data.get("text/plain")), budget) if "text/plain" in data else "")
    parts = []
    if "text/plain" in data:
        parts.append(_pre("out", text_of(data["text/plain"]), budget))
    for mime, value in data.items():
        if mime == "text/plain" or not isinstance(mime, str):
            continue
        body = text_of(value) if isinstance(value, (str, list)) else repr(value)
        parts.append(f'<details class="raw-output"><summary>{clean(mime)} output, shown as text</summary>'
                     f'{_pre("out raw", body, budget)}</details>')
    return "".join(parts)


def _output(out: object, budget: list[int]) -> str:
    if not isinstance(out, Mapping):
        return ""
    kind = out.get("output_type")
    if kind == "stream":
        name = out.get("name")
        return _pre("out err" if name == "stderr" else "out", text_of(out.get("text")), budget)
    if kind == "error":
        tb = text_of(out.get("traceback")) if not isinstance(out.get("traceback"), list) else "\n".join(
            t for t in out["traceback"] if isinstance(t, str))
        text = tb or f"{text_of(out.get('ename'))}: {text_of(out.get('evalue'))}"
        return _pre("out tb", text, budget)
    data = out.get("data")
    if isinstance(data, Mapping):
        return _data_output(data, budget)
    return ""


def cell_html(prefix: str, index: int, cell: object, facts: str = "") -> str:
    """``<div class="cell" id="{prefix}-cell-{index}">`` (``cell markdown``, ``cell raw`` for those kinds):
    a line with its index, execution count and ``facts`` (escaped text: its run's figures), its source and
    its outputs."""
    c = cell if isinstance(cell, Mapping) else {}
    kind = f" {c['cell_type']}" if c.get("cell_type") in ("markdown", "raw") else ""
    count = c.get("execution_count")
    label = f"[{count}]" if isinstance(count, int) and not isinstance(count, bool) else ""
    head = f'<p>cell {index}{" " + label if label else ""}{" · " + html.escape(facts) if facts else ""}</p>'
    source, note = _cut(text_of(c.get("source")), MAX_TEXT)
    src = f'<pre>{clean(source)}</pre>' + (f'<p class="note">{note}</p>' if note else "")
    outputs = c.get("outputs")
    budget = [MAX_TEXT]
    outs = "".join(_output(o, budget) for o in outputs) if isinstance(outputs, list) else ""
    return f'<div class="cell{kind}" id="{prefix}-cell-{index}">{head}{src}{outs}</div>'


def missing_cells(prefix: str, indices: Iterable[int], why: str) -> list[str]:
    """Placeholders for cells the report names (findings, run records) but cannot show."""
    return [f'<div class="cell missing" id="{prefix}-cell-{i}"><p>'
            f'cell {i} · {html.escape(why)}</p></div>'
            for i in sorted(set(indices))]


def cells_of(nb: object) -> Sequence[Any]:
    """The cells list of a notebook dict (empty when it has none or is not one)."""
    cells = nb.get("cells") if isinstance(nb, Mapping) else None
    return cells if isinstance(cells, list) else []
