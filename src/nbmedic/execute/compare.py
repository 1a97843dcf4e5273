"""Compare re-executed outputs with the stored ones (``nbmedic run --compare``, finding RN160).

Only what a person would call "the output" is compared: stream text, the text forms of rich outputs,
images by their bytes, errors by name and value.  Execution counts, output metadata and anything that
changes on every run (addresses, timings, dates, progress bars) are ignored; see ``normalize``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.findings import Finding, make

MAX_DIFF_LINES = 20

TEXT_MIMES: tuple[str, ...] = ("text/plain", "text/markdown", "text/latex", "text/html", "application/json")
IMAGE_MIMES: tuple[str, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
# not compared: image/svg+xml (matplotlib writes random element ids into every SVG), widget views
# (model ids change on every run), javascript and any other mime type

# --- normalization ------------------------------------------------------------------------------

_TQDM = re.compile(
    r"\d{1,3}%\|[^|\n]*\|[ \t]*[\d.]+[kMGTPEZY]?/[\d.?]+[kMGTPEZY]?[ \t]*\[[^\]\n]*\]"  # known total
    r"|\b\d+(?:\.\d+)?[kMGTPEZY]?(?:it| ?[A-Za-z]+)? \[\d+(?::\d{2})+, *[^\]\n]*/s\]"  # unknown total
)
_CPU_TIMES = re.compile(r"^CPU times: .*$", re.MULTILINE)
_WALL_TIME = re.compile(r"^Wall time: .*$", re.MULTILINE)
_UNIT = r"(?:ns|[µμu]s|ms|s|sec|secs|seconds?|min|mins|minutes?|h|hr|hours?)"
_NUM = r"\d+(?:[.,]\d+)?"
_TIMEIT = re.compile(
    rf"{_NUM} ?{_UNIT} ± {_NUM} ?{_UNIT} per loop \(mean ± std\. dev\. of [\d,]+ runs?, [\d,]+ loops? each\)"
    rf"|[\d,]+ loops?, best of \d+: {_NUM} ?{_UNIT} per loop"
)
_TIMEIT_SLOWEST = re.compile(r"The slowest run took \d+(?:\.\d+)? times longer than the fastest\.")
_ISO_DATETIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d:])")
_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?![\d:])")
_DURATION = re.compile(
    rf"\b((?:took|taking|elapsed|duration|runtime|run time|time taken|(?:finished|completed|done|ran) in)"
    rf"\s*[:=]?\s*){_NUM}\s?{_UNIT}\b", re.IGNORECASE)
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{8,}\b")
_IDS = re.compile(r"\b((?:pid|ppid|parent|ident|native_id|tid)=)\d+|\b(started (?:daemon )?)\d+")
_IPYKERNEL_FILE = re.compile(r"\bipykernel_\d+([/\\])\d+\.py\b")
_TRAILING_SPACE = re.compile(r"[ \t\f\v]+$", re.MULTILINE)


def _carriage_returns(text: str) -> str:
    """What a terminal leaves of each line: the text after its last carriage return."""
    text = text.replace("\r\n", "\n")
    if "\r" not in text:
        return text
    lines = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def normalize(text: str) -> str:
    """The text with everything that changes from run to run replaced by a fixed marker.

    The rules, applied in this order:

    1. ANSI escape sequences (colours, cursor moves, OSC titles and links) are removed;
    2. carriage returns are applied as a terminal would: of each line only the text after its last
       ``\\r`` is kept (``\\r\\n`` is a plain newline), so a progress bar leaves its final state only;
    3. tqdm-style progress bars (``100%|█████| 10/10 [00:01<00:00, 9.8it/s]`` and, without a total,
       ``10it [00:01, 9.8it/s]``) become ``<progress>``; a description before the bar is kept;
    4. IPython timings: ``CPU times: ...`` and ``Wall time: ...`` lines keep only their label
       (``CPU times: …``); ``%timeit`` results (``1.23 ms ± 4.5 µs per loop (mean ± std. dev. of 7 runs,
       1,000 loops each)`` and the old ``100 loops, best of 3: 1.2 ms per loop``) become ``<timeit>``;
       ``The slowest run took 4.5 times longer`` loses its number;
    5. ISO dates and date-times (``2024-05-01``, ``2024-05-01T12:03:04.5+02:00``) become ``<datetime>``;
       clock times (``12:03:04``, ``9:05:00.123``) become ``<time>``;
    6. durations after a word that announces one (``took 3.21s``, ``elapsed: 2 min``,
       ``finished in 0.5 seconds``) become ``took <duration>``: the word is kept;
    7. memory addresses (``0x`` and 8 or more hex digits, as in ``<Foo object at 0x7f3a2b1c9d40>``)
       become ``0x…``;
    8. process and thread ids in common reprs (``pid=1234``, ``parent=12``, ``native_id=99``,
       ``<Thread(worker, started daemon 140234)>``) become ``…``, and ipykernel's per-process cell files
       (``/tmp/ipykernel_4012/3062374361.py``) become ``ipykernel_…/….py``;
    9. trailing whitespace is dropped from every line and from the end of the text.

    Everything else (numbers, words, blank lines inside the text, leading spaces) is kept exactly.
    """
    text = strip_ansi(text)
    text = _carriage_returns(text)
    text = _TQDM.sub("<progress>", text)
    text = _CPU_TIMES.sub("CPU times: …", text)
    text = _WALL_TIME.sub("Wall time: …", text)
    text = _TIMEIT.sub("<timeit>", text)
    text = _TIMEIT_SLOWEST.sub("The slowest run took … times longer than the fastest.", text)
    text = _ISO_DATETIME.sub("<datetime>", text)
    text = _CLOCK.sub("<time>", text)
    text = _DURATION.sub(r"\1<duration>", text)
    text = _ADDRESS.sub("0x…", text)
    text = _IDS.sub(lambda m: f"{m.group(1) or m.group(2)}…", text)
    text = _IPYKERNEL_FILE.sub(r"ipykernel_…\1….py", text)
    text = _TRAILING_SPACE.sub("", text)
    return text.rstrip()


# --- text forms of outputs ----------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _image_summary(mime: str, value: Any) -> tuple[str, int]:
    """A stable one-line stand-in for an image: its size and a short hash of its base64 text."""
    b64 = re.sub(r"\s+", "", _text(value))
    size = len(b64) * 3 // 4 - b64[-2:].count("=")  # decoded bytes
    digest = hashlib.sha256(b64.encode("ascii", "replace")).hexdigest()[:12]
    return f"<{mime} {size:,} bytes sha256:{digest}>", size


class _Rendered:
    """A cell's outputs as comparable lines, plus the facts the finding reports."""

    def __init__(self) -> None:
        self.lines: list[str] = []  # everything, in output order: what the diff shows
        self.text_lines: list[str] = []  # the same without images
        self.image_lines: list[str] = []
        self.mimes: list[str] = []
        self.images: dict[str, list[int]] = {}

    def add(self, header: str, mime: str, text: str, *, image_size: int | None = None) -> None:
        lines = [f"[{header}]", *(text.split("\n") if text else [])]
        self.lines.extend(lines)
        if image_size is None:
            self.text_lines.extend(lines)
        else:
            self.image_lines.extend(lines)
            self.images.setdefault(mime, []).append(image_size)
        if mime not in self.mimes:
            self.mimes.append(mime)


def _outputs(cell: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    outputs = cell.get("outputs")
    if not isinstance(outputs, list):
        return []
    return [o for o in outputs if isinstance(o, Mapping)]


def _coalesced(outputs: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Consecutive stream outputs of one stream joined: the kernel splits them wherever it flushes."""
    pending: dict[str, Any] | None = None
    for output in outputs:
        if output.get("output_type") == "stream":
            if pending is not None and pending.get("name") == output.get("name"):
                pending["text"] += _text(output.get("text"))
                continue
            if pending is not None:
                yield pending
            pending = {"output_type": "stream", "name": output.get("name"), "text": _text(output.get("text"))}
            continue
        if pending is not None:
            yield pending
            pending = None
        yield output
    if pending is not None:
        yield pending


def _render(cell: Mapping[str, Any]) -> _Rendered:
    rendered = _Rendered()
    for output in _coalesced(_outputs(cell)):
        kind = output.get("output_type")
        if kind == "stream":
            name = output.get("name") if isinstance(output.get("name"), str) else "stream"
            rendered.add(str(name), f"stream/{name}", normalize(_text(output.get("text"))))
        elif kind == "error":
            rendered.add("error", "error", normalize(f"{output.get('ename', '')}: {output.get('evalue', '')}"))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data")
            if not isinstance(data, Mapping):
                continue
            for mime in TEXT_MIMES:
                if mime in data:
                    value = data[mime]
                    if mime == "application/json":
                        text = json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False, default=str)
                    else:
                        text = _text(value)
                    rendered.add(f"{kind} {mime}", mime, normalize(text))
            for mime in IMAGE_MIMES:
                if mime in data:
                    line, size = _image_summary(mime, data[mime])
                    rendered.add(f"{kind} {mime}", mime, line, image_size=size)
    return rendered


# --- alignment ----------------------------------------------------------------------------------

def _code_cells(nb: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, cell) of the code cells, without papermill-style injected parameter cells."""
    cells = nb.get("cells")
    out: list[tuple[int, Mapping[str, Any]]] = []
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata")
        tags = meta.get("tags") if isinstance(meta, Mapping) else None
        if isinstance(tags, list) and "injected-parameters" in tags:
            continue
        out.append((index, cell))
    return out


def _cell_id(cell: Mapping[str, Any]) -> str | None:
    value = cell.get("id")
    return value if isinstance(value, str) and value else None


def _pairs(stored: Mapping[str, Any], new: Mapping[str, Any]
           ) -> Iterator[tuple[int, Mapping[str, Any], int, Mapping[str, Any]]]:
    """(stored index, stored cell, new index, new cell) of matching code cells.

    By id where both notebooks have ids; otherwise by position among the code cells (injected parameter
    cells left out, so a run with parameters still lines up).
    """
    old_cells, new_cells = _code_cells(stored), _code_cells(new)
    by_id: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for index, cell in new_cells:
        cid = _cell_id(cell)
        if cid is not None:
            by_id.setdefault(cid, (index, cell))
    for position, (old_index, old_cell) in enumerate(old_cells):
        cid = _cell_id(old_cell)
        if cid is not None and by_id:
            match = by_id.get(cid)
            if match is not None:
                yield old_index, old_cell, match[0], match[1]
            continue  # a cell the new notebook does not have
        if position < len(new_cells):
            yield old_index, old_cell, new_cells[position][0], new_cells[position][1]


# --- the comparison -----------------------------------------------------------------------------

def _short_diff(old: list[str], new: list[str]) -> str:
    lines = list(difflib.unified_diff(old, new, "stored", "new", n=1, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        rest = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"… {rest} more diff line{'s' if rest != 1 else ''}"]
    return "\n".join(line[:200] for line in lines)


def _describe(old: _Rendered, new: _Rendered, n_old: int, n_new: int) -> str:
    parts: list[str] = []
    if n_new == 0:
        return "the cell produced no output this time, but the stored notebook has some"
    if n_old != n_new:
        parts.append(f"{n_new} output{'s' if n_new != 1 else ''} instead of {n_old}")
    if old.text_lines != new.text_lines:
        parts.append("the text differs")
    if old.image_lines != new.image_lines:
        sizes = ", ".join(
            f"{mime} {_sizes(old.images.get(mime))} → {_sizes(new.images.get(mime))} bytes"
            for mime in sorted(set(old.images) | set(new.images)))
        parts.append(f"image differs ({sizes})")
    return "re-executed output differs from the stored one: " + "; ".join(parts or ["the outputs differ"])


def _sizes(values: list[int] | None) -> str:
    return "/".join(f"{v:,}" for v in values) if values else "none"


def compare_outputs(stored: Mapping[str, Any], new: Mapping[str, Any], *, path: str) -> list[Finding]:
    """One RN160 finding for each code cell whose new outputs differ from its stored ones.

    Cells are matched by id (by position among code cells when ids are missing).  A cell is not
    compared when its stored outputs are empty (it had never been run) or when it was not run this
    time (no outputs and no execution count: the run stopped before it).  Outputs are compared as
    text after ``normalize``; images by their base64 bytes; errors by name and value; execution
    counts and output metadata never matter.
    """
    findings: list[Finding] = []
    for old_index, old_cell, new_index, new_cell in _pairs(stored, new):
        old_outputs, new_outputs = _outputs(old_cell), _outputs(new_cell)
        if not old_outputs:
            continue
        if not new_outputs and new_cell.get("execution_count") is None:
            continue
        old_r, new_r = _render(old_cell), _render(new_cell)
        if old_r.lines == new_r.lines:
            continue
        mimes = list(dict.fromkeys([*old_r.mimes, *new_r.mimes]))
        evidence: dict[str, Any] = {
            "diff": _short_diff(old_r.lines, new_r.lines),
            "mime_types": mimes,
            "stored_outputs": len(old_outputs),
            "new_outputs": len(new_outputs),
        }
        if old_index != new_index:
            evidence["stored_cell"] = old_index
        if old_r.images or new_r.images:
            evidence["image_sizes"] = {
                mime: {"stored": old_r.images.get(mime, []), "new": new_r.images.get(mime, [])}
                for mime in sorted(set(old_r.images) | set(new_r.images))}
        findings.append(make(
            "RN160", path, _describe(old_r, new_r, len(old_outputs), len(new_outputs)),
            cell=new_index, cell_id=_cell_id(new_cell), evidence=evidence))
    return findings

