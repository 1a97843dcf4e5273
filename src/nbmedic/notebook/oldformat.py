"""Can Jupyter open an nbformat 1, 2 or 3 notebook?  nbformat's conversion to nbformat 4, replayed.

Jupyter opens an old notebook with ``nbformat.read(f, as_version=4)``: the reader of the file's version
(``rejoin_lines``, and ``restore_bytes`` for nbformat 2), the converters ``v2.upgrade`` (1 → 2),
``v3.upgrade`` (2 → 3) and ``v4.upgrade`` (3 → 4), then the converted notebook is validated against the
nbformat 4.5 schema.  ``upgrade`` replays those steps on plain dicts, without importing nbformat (slow to
import): each check below stands for one operation of nbformat that raises on the file's data (an
attribute or key that is missing, a loop over something that is not a list, a join of non-strings, an
``int()`` that fails...), so the first one that fails is where Jupyter's conversion stops.  What it
returns is the notebook nbformat would make, to be validated by the caller, with the path of each cell
in the file.  ``tests/test_oldformat_props.py`` holds the verdicts to nbformat's own on generated files.
``nbmedic check`` (NB003) and ``nbmedic repair`` both use it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

OLD_MAJORS = (1, 2, 3)
MISSING = "required key missing"
V3_MINOR = 0  # nbformat 3's only minor version: nbformat has no schema for 3.1 and stops on it
_MULTILINE_OUTPUT_KEYS = ("text", "html", "svg", "latex", "javascript", "json")
_MIME_ALIASES = {"text": "text/plain", "html": "text/html", "svg": "image/svg+xml", "png": "image/png",
                 "jpeg": "image/jpeg", "latex": "text/latex", "json": "application/json",
                 "javascript": "application/javascript"}  # nbformat.v4.convert._mime_map, in its order


def old_major(nb: Mapping[str, Any]) -> int | None:
    """1, 2 or 3 for a notebook nbformat reads as that version (its lookup by version takes 2.0 for 2;
    a file without ``nbformat`` would be version 1 to nbformat, but is a damaged notebook, not an old one)."""
    value = nb.get("nbformat")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in OLD_MAJORS:
        return None
    return int(value)


class ConversionError(Exception):
    """Where nbformat's conversion of the file to nbformat 4 stops: a JSON path in the file, why, and the
    index the cell would have in the converted notebook (None outside cells)."""

    def __init__(self, path: str, message: str, cell: int | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.cell = cell


@dataclass(frozen=True)
class Converted:
    """The nbformat 4.5 notebook nbformat makes of the file, and the file's path of each of its cells."""

    nb: dict[str, Any]
    cell_paths: list[str]
    original: Mapping[str, Any]
    major: int

    def file_path(self, path: str) -> str:
        """The path in the file of a ``$...`` path in the converted notebook (keys nbformat renamed
        are named as the file has them)."""
        head, sep, rest = path.partition("]")
        index = head[len("$.cells["):]
        if head.startswith("$.cells[") and sep and index.isdigit() and int(index) < len(self.cell_paths):
            return self._cell_path(self.cell_paths[int(index)], rest)
        for key in ("orig_nbformat_minor", "orig_nbformat"):
            if path.startswith(f"$.metadata.{key}"):
                return "$." + path[len("$.metadata."):]
        return path

    def _cell_path(self, cell_path: str, rest: str) -> str:
        cell = _resolve(self.original, cell_path)
        kind = cell.get("cell_type") if isinstance(cell, Mapping) else None
        if self.major == 1:
            renames = {".source": ".code" if kind == "code" else ".text", ".execution_count": ".prompt_number"}
        elif kind == "code":
            renames = {".source": ".input", ".execution_count": ".prompt_number", ".metadata.collapsed": ".collapsed"}
        else:
            renames = {}
        if rest.startswith(".outputs["):
            index, _, tail = rest[len(".outputs["):].partition("]")
            output = _resolve(cell, f"$.outputs[{index}]")
            return f"{cell_path}.outputs[{index}]{_output_path(output, tail)}"
        return cell_path + _renamed(rest, renames)


def _renamed(path: str, renames: Mapping[str, str]) -> str:
    for new, old in renames.items():
        if path == new or path.startswith((new + ".", new + "[")):
            return old + path[len(new):]
    return path


def _output_path(output: Any, tail: str) -> str:
    """An output's key in the file: nbformat 3 keeps the data at the output's top level, some of it
    under short names (``text`` for ``text/plain``)."""
    if tail.startswith(".data."):
        mime = tail[len(".data."):].split("[")[0]
        alias = next((a for a, m in _MIME_ALIASES.items() if m == mime), None)
        key = alias if alias is not None and isinstance(output, Mapping) and alias in output else mime
        return f".{key}{tail[len('.data.') + len(mime):]}"
    return _renamed(tail, {".execution_count": ".prompt_number", ".name": ".stream"})


def _resolve(doc: Any, path: str) -> Any:
    """The value at a ``$.a[0].b`` path (None when the path does not lead anywhere)."""
    value = doc
    for part in path[1:].replace("[", ".").replace("]", "").split("."):
        if not part:
            continue
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def json_kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _at(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def _got(value: object) -> str:
    return f"{json_kind(value)} {short(value)}" if not isinstance(value, (dict, list)) else json_kind(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _node(value: Any, path: str) -> dict[str, Any]:
    """A value nbformat reads attributes of (a NotebookNode): anything but an object raises."""
    if not isinstance(value, dict):
        raise ConversionError(path, f"expected an object, got {_got(value)}")
    return value


def _get(obj: Any, key: str, path: str) -> Any:
    """``obj.key`` on a NotebookNode: a missing key raises AttributeError."""
    node = _node(obj, path)
    if key not in node:
        raise ConversionError(_at(path, key), MISSING)
    return node[key]


def _each(value: Any, path: str) -> list[tuple[str, Any]]:
    """What ``for item in value`` gives nbformat: a list's items; an empty object or string gives none,
    anything else gives strings (that nbformat then fails on) or raises."""
    if isinstance(value, list):
        return [(_at(path, i), item) for i, item in enumerate(value)]
    if isinstance(value, (dict, str)) and not value:
        return []
    raise ConversionError(path, f"expected an array, got {_got(value)}")


@contextmanager
def _cell_index(index: int) -> Iterator[None]:
    try:
        yield
    except ConversionError as exc:
        if exc.cell is None:
            exc.cell = index
        raise


def _join(lines: list[Any], path: str, major: int) -> str:
    """nbformat 3's ``_join_lines`` (``"".join`` for lines that keep their ends), nbformat 2's
    ``"\\n".join``."""
    bad = next((i for i, line in enumerate(lines) if not isinstance(line, str)), None)
    if bad is not None:
        raise ConversionError(_at(path, bad), f"expected a string, got {_got(lines[bad])}")
    if major == 3 and lines and lines[0].endswith(("\n", "\r")):
        return "".join(lines)
    return "\n".join(lines)


def upgrade(nb: Mapping[str, Any], major: int) -> Converted:
    """The nbformat 4 notebook ``nbformat.read(..., as_version=4)`` makes of an nbformat ``major`` (1, 2
    or 3) file, not yet validated; raises ConversionError where nbformat's reader or converters stop."""
    doc = _copy(dict(nb))
    if major == 1:
        doc, cell_paths = _v1_to_v2(doc)
    else:
        cell_paths = _rejoin_lines(doc, major)
        if major == 2:
            _v2_to_v3(doc)
    _v3_to_v4(doc, cell_paths, check_version=major == 3)
    return Converted(doc, cell_paths, nb, major)


def _rejoin_lines(doc: dict[str, Any], major: int) -> list[str]:
    """The reader of nbformat 2 and 3 files (``rejoin_lines``; nbformat 2's ``restore_bytes``); the path
    of every cell, in order."""
    cell_paths: list[str] = []
    for ws_path, ws in _each(_get(doc, "worksheets", "$"), "$.worksheets"):
        for cell_path, cell in _each(_get(ws, "cells", ws_path), _at(ws_path, "cells")):
            with _cell_index(len(cell_paths)):
                _rejoin_cell(_node(cell, cell_path), cell_path, major)
            cell_paths.append(cell_path)
    return cell_paths


def _rejoin_cell(cell: dict[str, Any], path: str, major: int) -> None:
    if _get(cell, "cell_type", path) == "code":
        if isinstance(cell.get("input"), list):
            cell["input"] = _join(cell["input"], _at(path, "input"), major)
        for out_path, output in _each(_get(cell, "outputs", path), _at(path, "outputs")):
            output = _node(output, out_path)  # output.get(...)
            for key in _MULTILINE_OUTPUT_KEYS:
                if isinstance(output.get(key), list):
                    output[key] = _join(output[key], _at(out_path, key), major)
            for key in ("png", "jpeg") if major == 2 else ():  # output.png.encode("ascii")
                value = output.get(key)
                if key in output and not (isinstance(value, str) and value.isascii()):
                    raise ConversionError(_at(out_path, key), f"expected an ASCII string, got {_got(value)}")
    else:
        for key in ("source", "rendered"):
            if isinstance(cell.get(key), list):
                cell[key] = _join(cell[key], _at(path, key), major)


def _v1_to_v2(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``nbformat.v2.upgrade``: a new notebook of the code and text cells (an unknown cell type repeats the
    cell before it, as nbformat's loop does, or stops the conversion when it comes first)."""
    cells: list[dict[str, Any]] = []
    cell_paths: list[str] = []
    previous: dict[str, Any] | None = None
    for cell_path, cell in _each(_get(doc, "cells", "$"), "$.cells"):
        with _cell_index(len(cells)):
            kind = _get(cell, "cell_type", cell_path)
            if kind == "code":
                new: dict[str, Any] = {"cell_type": "code", "language": "python"}
                if cell.get("code") is not None:
                    new["input"] = str(cell["code"])
                if cell.get("prompt_number") is not None:
                    new["prompt_number"] = _int(cell["prompt_number"], _at(cell_path, "prompt_number"))
                new.update(outputs=[], collapsed=False)
            elif kind == "text":
                new = {} if cell.get("text") is None else {"source": str(cell["text"])}
                new["cell_type"] = "markdown"
            elif previous is None:
                raise ConversionError(_at(cell_path, "cell_type"), f"unknown cell_type {short(kind)}: "
                                      "nbformat 1 cells are `code` or `text`")
            else:
                new = previous
        cells.append(new)
        cell_paths.append(cell_path)
        previous = new
    return {"metadata": {}, "nbformat": 2, "worksheets": [{"cells": cells}]}, cell_paths


def _int(value: Any, path: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConversionError(path, f"expected an integer, got {_got(value)}") from None


def _v2_to_v3(doc: dict[str, Any]) -> None:
    """``nbformat.v3.upgrade`` from nbformat 2."""
    doc["nbformat"] = 3
    doc["nbformat_minor"] = V3_MINOR
    doc["orig_nbformat"] = 2
    for _, ws in _each(doc["worksheets"], "$.worksheets"):
        for _, cell in _each(ws["cells"], "$"):
            cell.setdefault("metadata", {})


def _check_version(doc: dict[str, Any]) -> None:
    """nbformat validates an nbformat 3 file against the nbformat 3 schema before converting it: it asserts
    that ``nbformat`` (3.0 is not 3 there) and ``nbformat_minor`` are integers, and finds no schema for a
    minor version above 0."""
    if not isinstance(doc["nbformat"], int):
        raise ConversionError("$.nbformat", f"expected an integer, got {_got(doc['nbformat'])}")
    if "nbformat_minor" not in doc:
        return
    minor = doc["nbformat_minor"]
    if not isinstance(minor, int):
        raise ConversionError("$.nbformat_minor", f"expected an integer, got {_got(minor)}")
    if minor > V3_MINOR:
        raise ConversionError("$.nbformat_minor", f"nbformat 3.{int(minor)} does not exist (3.0 is the only "
                              "nbformat 3): nbformat finds no schema for it")


def _v3_to_v4(doc: dict[str, Any], cell_paths: list[str], *, check_version: bool) -> None:
    """``nbformat.v4.upgrade`` from nbformat 3."""
    if check_version:
        _check_version(doc)
    orig, orig_minor = doc.pop("orig_nbformat", None), doc.pop("orig_nbformat_minor", None)
    meta = _get(doc, "metadata", "$")
    if not isinstance(meta, dict):  # nb.metadata.orig_nbformat = ...
        raise ConversionError("$.metadata", f"expected an object, got {_got(meta)}")
    meta["orig_nbformat"] = orig or 3
    meta["orig_nbformat_minor"] = orig_minor or 0
    doc["nbformat"], doc["nbformat_minor"] = 4, 5
    cells: list[dict[str, Any]] = []
    doc["cells"] = cells
    sheets = doc.pop("worksheets", [])
    for _, ws in _each(sheets, "$.worksheets"):
        for _, cell in _each(ws["cells"], "$"):
            with _cell_index(len(cells)):
                cells.append(_upgrade_cell(cell, cell_paths[len(cells)], len(cells)))
    meta.pop("name", None)
    meta.pop("signature", None)


def _upgrade_cell(cell: dict[str, Any], path: str, index: int) -> dict[str, Any]:
    cell.setdefault("metadata", {})
    cell["id"] = f"cell-{index}"
    kind = cell["cell_type"]
    if kind == "code":
        cell.pop("language", None)
        if "collapsed" in cell:  # cell.metadata["collapsed"] = cell.pop("collapsed")
            collapsed = cell.pop("collapsed")
            if not isinstance(cell["metadata"], dict):
                raise ConversionError(_at(path, "metadata"), f"expected an object, got {_got(cell['metadata'])}")
            cell["metadata"]["collapsed"] = collapsed
        cell["source"] = cell.pop("input", "")
        cell["execution_count"] = cell.pop("prompt_number", None)
        cell["outputs"] = [_upgrade_output(output, out_path)
                           for out_path, output in _each(cell["outputs"], _at(path, "outputs"))]
    elif kind == "heading":
        cell["cell_type"] = "markdown"
        level = cell.pop("level", 1)
        # "#" * level; a level of billions would make nbformat build a string that large: not replayed
        if not isinstance(level, int) or level > sys.maxsize:
            raise ConversionError(_at(path, "level"), f"expected an integer, got {_got(level)}")
        source = cell.get("source", "")
        if not isinstance(source, str):  # source.splitlines()
            raise ConversionError(_at(path, "source"), f"expected a string, got {_got(source)}")
        cell["source"] = "#" * min(max(level, 0), 6) + " " + " ".join(source.splitlines())
    elif kind == "html":
        cell["cell_type"] = "markdown"
    return cell


def _upgrade_output(output: dict[str, Any], path: str) -> dict[str, Any]:
    if "output_type" not in output:
        raise ConversionError(_at(path, "output_type"), MISSING)
    kind = output["output_type"]
    if isinstance(kind, (list, dict)):  # kind in {"pyout", "display_data"}: unhashable
        raise ConversionError(_at(path, "output_type"), f"expected a string, got {_got(kind)}")
    if kind in ("pyout", "display_data"):
        output.setdefault("metadata", {})
        if kind == "pyout":
            output["output_type"] = "execute_result"
            output["execution_count"] = output.pop("prompt_number", None)
        data = {key: output.pop(key) for key in list(output)
                if key not in ("output_type", "execution_count", "metadata")}
        json_key = "json" if "json" in data else "application/json"
        _to_mime_key(data)
        output["data"] = data
        if not isinstance(output["metadata"], dict):  # to_mime_key(output.metadata)
            raise ConversionError(_at(path, "metadata"), f"expected an object, got {_got(output['metadata'])}")
        _to_mime_key(output["metadata"])
        if "application/json" in data:
            data["application/json"] = _json_value(data["application/json"], _at(path, json_key))
    elif kind == "pyerr":
        output["output_type"] = "error"
    elif kind == "stream":
        output["name"] = output.pop("stream", "stdout")
    return output


def _to_mime_key(d: dict[str, Any]) -> None:
    for alias, mime in _MIME_ALIASES.items():
        if alias in d:
            d[mime] = d.pop(alias)


def _json_value(text: Any, path: str) -> Any:
    if not isinstance(text, str):
        raise ConversionError(path, f"expected a string of JSON, got {_got(text)}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ConversionError(path, f"not valid JSON: {short(text)}") from None
