"""Cell-aware notebook diffs: a terminal diff of two notebooks and a text rendering for ``git diff``.

``diff_notebooks(a, b)`` lists what changed, cell by cell: sources as unified diffs, outputs
summarised (type, mime types, size, changed or not), execution counts, metadata key by key, cells
added, deleted or moved.  ``textconv(nb)`` renders one notebook as stable, line-oriented text, so
git's own line diff of two renderings reads cell by cell (git's ``diff.<driver>.textconv``).

Both are pure: notebook dicts in, lines out.  Each output line carries a kind that the command
colours on a terminal.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from nbmedic.ansi import strip_ansi
from nbmedic.notebook.cells import source_text
from nbmedic.notebook.format import valid_id
from nbmedic.units import format_bytes
from nbmedic.vcs.align import align

Kind = Literal["file", "cell", "hunk", "add", "del", "ctx", "info", "change"]

__all__ = ["DiffLine", "Kind", "diff_notebooks", "output_summary", "textconv"]

_TEXT_MIMES = ("text/plain", "text/markdown", "text/latex")


@dataclass(frozen=True)
class DiffLine:
    kind: Kind
    text: str


def _cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    cells = nb.get("cells")
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v if isinstance(v, str) else str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _digest(value: Any) -> str:
    data = _text(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:12]


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "), default=str)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to compact JSON values (dicts are walked, everything else is a leaf)."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for key in sorted(value, key=str):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: _compact(value)} if prefix else {}


def _count(cell: dict[str, Any]) -> Any:
    return cell.get("execution_count")


def _outputs(cell: dict[str, Any]) -> list[Any]:
    outputs = cell.get("outputs")
    return outputs if isinstance(outputs, list) else []


def output_summary(output: Any) -> str:
    """One line: the output's type, stream name or mime types, and size."""
    if not isinstance(output, dict):
        return f"invalid output ({type(output).__name__})"
    kind = str(output.get("output_type", "?"))
    if kind == "stream":
        text = _text(output.get("text", ""))
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        return f"stream {output.get('name', '?')}, {lines} line{'s' if lines != 1 else ''}, " \
               f"{format_bytes(len(text.encode('utf-8', 'surrogatepass')))}"
    if kind == "error":
        return f"error {output.get('ename', '?')}: {_text(output.get('evalue', ''))[:80]}"
    data = output.get("data")
    parts = []
    if isinstance(data, dict):
        for mime in sorted(data):
            parts.append(f"{mime} {format_bytes(len(_text(data[mime]).encode('utf-8', 'surrogatepass')))}")
    return f"{kind}: {', '.join(parts) if parts else 'no data'}"


def _output_lines(output: Any) -> Iterator[str]:
    """The readable text of one output (for the textconv rendering)."""
    if not isinstance(output, dict):
        return
    kind = output.get("output_type")
    if kind == "stream":
        yield from _text(output.get("text", "")).splitlines()
    elif kind == "error":
        frames = output.get("traceback")
        for line in frames if isinstance(frames, list) else [frames or ""]:  # a list by the schema
            yield from strip_ansi(_text(line)).splitlines()
    else:
        data = output.get("data")
        if isinstance(data, dict):
            for mime in sorted(data):
                if mime in _TEXT_MIMES:
                    yield f"[{mime}]"
                    yield from _text(data[mime]).splitlines()
                else:
                    yield f"[{mime}] sha256 {_digest(data[mime])}"


# --- textconv ------------------------------------------------------------------------------------

def textconv(nb: dict[str, Any], *, outputs: bool = True, metadata: bool = True) -> str:
    """A stable, line-oriented rendering of one notebook (git's textconv)."""
    lines: list[str] = [f"#### nbformat {nb.get('nbformat')}.{nb.get('nbformat_minor')}"]
    if metadata:
        lines += [f"#### metadata.{k}: {v}" for k, v in _flatten(nb.get("metadata")).items()]
    for cell in _cells(nb):
        head = f"#### {cell.get('cell_type', '?')} cell"
        if valid_id(cell.get("id")):
            head += f" {cell['id']}"
        lines.append("")
        lines.append(head)
        if metadata:
            lines += [f"#### metadata.{k}: {v}" for k, v in _flatten(cell.get("metadata")).items()]
        lines += source_text(cell).splitlines()
        if outputs and cell.get("cell_type") == "code":
            if _count(cell) is not None:
                lines.append(f"#### execution_count: {_count(cell)}")
            for index, output in enumerate(_outputs(cell)):
                lines.append(f"#### output {index}: {output_summary(output)}")
                lines += _output_lines(output)
        attachments = cell.get("attachments")
        if isinstance(attachments, dict):
            for name in sorted(attachments):
                lines.append(f"#### attachment {name}: sha256 {_digest(attachments[name])}")
    return "\n".join(lines) + "\n"


# --- diff ----------------------------------------------------------------------------------------

def _describe(cell: dict[str, Any]) -> str:
    text = str(cell.get("cell_type", "?"))
    if valid_id(cell.get("id")):
        text += f", id {cell['id']}"
    return text


def _meta_changes(a: Any, b: Any, indent: str) -> list[DiffLine]:
    fa, fb = _flatten(a if isinstance(a, dict) else {}), _flatten(b if isinstance(b, dict) else {})
    out: list[DiffLine] = []
    for key in sorted(set(fa) | set(fb)):
        if key not in fb:
            out.append(DiffLine("del", f"{indent}- {key}: {fa[key]}"))
        elif key not in fa:
            out.append(DiffLine("add", f"{indent}+ {key}: {fb[key]}"))
        elif fa[key] != fb[key]:
            out.append(DiffLine("change", f"{indent}~ {key}: {fa[key]} -> {fb[key]}"))
    return out


def _source_diff(a: str, b: str, name_a: str, name_b: str, indent: str) -> list[DiffLine]:
    out: list[DiffLine] = []
    la, lb = a.splitlines(), b.splitlines()
    for line in difflib.unified_diff(la, lb, name_a, name_b, n=3, lineterm=""):
        if line.startswith(("---", "+++")):
            continue
        kind: Kind = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else \
            "del" if line.startswith("-") else "ctx"
        out.append(DiffLine(kind, indent + line))
    if la == lb and a != b:  # only the final newline differs
        out.append(DiffLine("info", f"{indent}(only the newline at the end of the source differs)"))
    return out


def _output_changes(a: dict[str, Any], b: dict[str, Any], indent: str) -> list[DiffLine]:
    oa, ob = _outputs(a), _outputs(b)
    out: list[DiffLine] = []
    if _count(a) != _count(b):
        out.append(DiffLine("change", f"{indent}execution_count: {_count(a)} -> {_count(b)}"))
    if oa == ob:
        return out
    out.append(DiffLine("info", f"{indent}outputs: {len(oa)} -> {len(ob)}"))
    for index in range(max(len(oa), len(ob))):
        if index >= len(ob):
            out.append(DiffLine("del", f"{indent}  - output {index}: {output_summary(oa[index])} (removed)"))
        elif index >= len(oa):
            out.append(DiffLine("add", f"{indent}  + output {index}: {output_summary(ob[index])} (added)"))
        elif oa[index] == ob[index]:
            out.append(DiffLine("ctx", f"{indent}    output {index}: {output_summary(ob[index])} (unchanged)"))
        else:
            sa, sb = output_summary(oa[index]), output_summary(ob[index])
            what = sb if sa == sb else f"{sa} -> {sb}"
            out.append(DiffLine("change", f"{indent}  ~ output {index}: {what} (changed)"))
    return out


def _cell_body(cell: dict[str, Any], sign: str, kind: Kind, indent: str, outputs: bool) -> list[DiffLine]:
    out = [DiffLine(kind, f"{indent}{sign}{line}") for line in source_text(cell).splitlines()]
    if outputs and _outputs(cell):
        n = len(_outputs(cell))
        out.append(DiffLine("info", f"{indent}({n} output{'s' if n != 1 else ''}: "
                            f"{'; '.join(output_summary(o) for o in _outputs(cell)[:5])}"
                            f"{'; ...' if n > 5 else ''})"))
    return out


def _changes(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str], outputs: bool,
             metadata: bool) -> list[DiffLine]:
    indent = "  "
    out: list[DiffLine] = []
    if a.get("cell_type") != b.get("cell_type"):
        out.append(DiffLine("change", f"{indent}cell_type: {a.get('cell_type')} -> {b.get('cell_type')}"))
    sa, sb = source_text(a), source_text(b)
    if sa != sb:
        out += _source_diff(sa, sb, names[0], names[1], indent)
    if outputs:
        out += _output_changes(a, b, indent)
        if a.get("attachments") != b.get("attachments"):
            out.append(DiffLine("change", f"{indent}attachments changed"))
    if metadata:
        meta = _meta_changes(a.get("metadata"), b.get("metadata"), indent + "  ")
        if meta:
            out.append(DiffLine("info", f"{indent}metadata:"))
            out += meta
    return out


def diff_notebooks(a: dict[str, Any], b: dict[str, Any], *, names: tuple[str, str] = ("a", "b"),
                   outputs: bool = True, metadata: bool = True) -> list[DiffLine]:
    """What changed from ``a`` to ``b``; an empty list when nothing did (under the options)."""
    out: list[DiffLine] = []
    if metadata:
        fmt_a = (a.get("nbformat"), a.get("nbformat_minor"))
        fmt_b = (b.get("nbformat"), b.get("nbformat_minor"))
        if fmt_a != fmt_b:
            out.append(DiffLine("change", f"nbformat: {fmt_a[0]}.{fmt_a[1]} -> {fmt_b[0]}.{fmt_b[1]}"))
        meta = _meta_changes(a.get("metadata"), b.get("metadata"), "  ")
        if meta:
            out.append(DiffLine("cell", "notebook metadata:"))
            out += meta
    ca, cb = _cells(a), _cells(b)
    pairs = align(ca, cb)
    # a deleted and an added cell with the same id: the cell moved
    deleted_ids = {ca[i]["id"]: i for i, j in pairs if j is None and i is not None and valid_id(ca[i].get("id"))}
    moved_from: dict[int, int] = {}
    for i, j in pairs:
        if i is None and j is not None and valid_id(cb[j].get("id")) and cb[j]["id"] in deleted_ids:
            moved_from[j] = deleted_ids.pop(cb[j]["id"])
    moved_away = set(moved_from.values())
    unchanged = 0
    for i, j in pairs:
        if j is None:
            assert i is not None
            if i in moved_away:
                continue
            out.append(DiffLine("cell", f"cell {i} ({_describe(ca[i])}) deleted:"))
            out += _cell_body(ca[i], "- ", "del", "  ", outputs)
        elif i is None and j not in moved_from:
            out.append(DiffLine("cell", f"cell {j} ({_describe(cb[j])}) added:"))
            out += _cell_body(cb[j], "+ ", "add", "  ", outputs)
        else:
            k = moved_from[j] if i is None else i
            where = f"cell {k} -> {j}" if k != j else f"cell {j}"
            body = _changes(ca[k], cb[j], (f"{names[0]} cell {k}", f"{names[1]} cell {j}"), outputs, metadata)
            if i is None:
                out.append(DiffLine("cell", f"{where} ({_describe(cb[j])}) moved" + (" and modified:" if body else "")))
            elif body:
                out.append(DiffLine("cell", f"{where} ({_describe(cb[j])}) modified:"))
            else:
                unchanged += 1
            out += body
    if out and unchanged:
        out.append(DiffLine("info", f"{unchanged} cell{'s' if unchanged != 1 else ''} unchanged"))
    return out
