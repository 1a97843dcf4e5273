"""The repair pipeline: bytes in, a repaired notebook dict plus what was done and what was lost out.

Pure: no file is read or written here (the command does that).  Steps, each only when needed:
byte-order mark → decoding → conflict markers (rebuild and merge both sides) or tolerant
recovery of damaged JSON → nbformat 3 → 4 → required fields → cell ids → schema validation.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from nbmedic.notebook import oldformat
from nbmedic.notebook.format import CURRENT_MINOR, json_path
from nbmedic.notebook.io import NotebookReadError, detect_newline, load_bytes
from nbmedic.repair.cells import fix_ids, normalize_cells
from nbmedic.repair.conflicts import split_conflicts
from nbmedic.repair.merge import Prefer, merge_sides
from nbmedic.repair.scan import ScanResult, scan

Status = Literal["repaired", "unchanged", "failed"]
BOM = b"\xef\xbb\xbf"
_REQUIRED = ("cells", "metadata", "nbformat", "nbformat_minor")


@dataclass
class RepairResult:
    """``nb`` is set when ``status`` is "repaired"; ``message`` says in one line what happened."""

    status: Status
    message: str
    nb: dict[str, Any] | None = None
    newline: str = "\n"
    actions: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


class _Unrecoverable(Exception):
    pass


def repair_bytes(data: bytes, *, prefer: Prefer | None = None) -> RepairResult:
    """Repair the bytes of one notebook file; never raises for bad input."""
    actions: list[str] = []
    lost: list[str] = []
    if data.startswith(BOM):
        data = data[len(BOM):]
        actions.append("removed the UTF-8 byte-order mark")
    newline = detect_newline(data)
    try:
        nb = _read(data, prefer, actions, lost)
        nb = _finish(nb, actions, lost)
    except _Unrecoverable as exc:
        return RepairResult("failed", _one_line(str(exc)), None, newline, actions, lost)
    if not actions and not lost:
        return RepairResult("unchanged", "nothing to repair: the notebook is valid", None, newline)
    message = "repaired" if not lost else "repaired, but not everything could be recovered"
    return RepairResult("repaired", message, nb, newline, actions, lost)


def _read(data: bytes, prefer: Prefer | None, actions: list[str], lost: list[str]) -> dict[str, Any]:
    try:
        return load_bytes(data)
    except NotebookReadError as exc:
        error = exc
    if error.kind in ("empty", "binary", "html", "not-object", "bom"):
        raise _Unrecoverable(f"cannot be repaired: {error.message}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        bad = len(data) - len(data.decode("utf-8", "ignore").encode("utf-8"))
        lost.append(f"{bad} byte(s) that are not valid UTF-8 were replaced by U+FFFD "
                    "(was the file saved in another encoding?)")
    sides = split_conflicts(text) if error.kind in ("conflict", "encoding") else None
    if sides is not None:
        return _merge(sides.local, sides.remote, sides.base, sides.conflicts, sides.problems,
                      prefer, actions, lost)
    return _recover(text, "", actions, lost)


def _recover(text: str, label: str, actions: list[str], lost: list[str]) -> dict[str, Any]:
    """Tolerant parse of one side's text; raises _Unrecoverable when nothing useful is left."""
    result = scan(text)
    prefix = f"{label}: " if label else ""
    nb = result.value
    if not isinstance(nb, dict):
        what = "a JSON array" if isinstance(nb, list) else "no JSON object"
        raise _Unrecoverable(f"cannot be repaired: {prefix}the text holds {what}, not a notebook")
    if result.complete and not result.trailing_offset and not result.notes:
        return nb
    actions.extend(prefix + note for note in result.notes)
    if result.trailing_offset is not None:
        extra = len(text[result.trailing_offset:].encode("utf-8"))
        lost.append(f"{prefix}dropped {extra} byte(s) of unexpected data after the end of the notebook "
                    f"(line {_line(text, result.trailing_offset)} on)")
    if not result.complete:
        _describe_cut(text, result, nb, prefix, actions, lost)
    return nb


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _cells_of(nb: dict[str, Any]) -> list[Any]:
    cells = nb.get("cells")
    if isinstance(cells, list):
        return cells
    sheets = nb.get("worksheets")
    if isinstance(sheets, list):
        return [c for s in sheets if isinstance(s, dict) and isinstance(s.get("cells"), list)
                for c in s["cells"]]
    return []


def _describe_cut(text: str, result: ScanResult, nb: dict[str, Any], prefix: str,
                  actions: list[str], lost: list[str]) -> None:
    path = result.lost_path
    size = len(text[result.lost_offset:].encode("utf-8"))
    line = _line(text, result.lost_offset)
    byte = len(text[:result.lost_offset].encode("utf-8"))
    if path == () and all(k in nb for k in _REQUIRED) and not text[result.lost_offset:].strip():
        actions.append(f"{prefix}closed the unterminated JSON (the end of the file was missing, "
                       "but no content)")
        return
    cells = _cells_of(nb)
    if "cells" in path:
        k = path.index("cells")
        if len(path) > k + 1:
            where = f"cell {len(cells)} and every cell after it"
        else:
            where = f"any cell after cell {len(cells) - 1}" if cells else "all cells"
        kept = f"; the {len(cells)} complete cell(s) before it are kept" if cells else ""
        what = f"{where} could not be recovered{kept}"
    elif path:
        what = f"`{'.'.join(map(str, path))}` (and whatever followed it) could not be recovered"
    else:
        what = "the rest of the file could not be recovered"
    lost.append(f"{prefix}the file breaks off at line {line} (byte {byte}: {result.reason}): {what} "
                f"({size} byte(s) lost)")
    if not cells and not (isinstance(nb.get("metadata"), dict) and nb["metadata"]):
        raise _Unrecoverable(f"cannot be repaired: {prefix}no complete cell or metadata before the break "
                             f"at line {line} (byte {byte}: {result.reason})")
    if "worksheets" in nb or nb.get("nbformat") == 3:
        return
    if not isinstance(nb.get("metadata"), dict):
        nb["metadata"] = {}
        lost.append(f"{prefix}the notebook metadata (kernel, language) was lost; rebuilt an empty one: "
                    "pick the kernel again when you open it")
    missing = [k for k in ("nbformat", "nbformat_minor") if not isinstance(nb.get(k), int)]
    if missing:
        nb["nbformat"] = 4
        has_ids = any(isinstance(c, dict) and "id" in c for c in cells)
        if not isinstance(nb.get("nbformat_minor"), int):
            nb["nbformat_minor"] = CURRENT_MINOR if has_ids else 4
        actions.append(f"{prefix}rebuilt the lost version fields: nbformat {nb['nbformat']}."
                       f"{nb['nbformat_minor']}")


def _merge(local_text: str, remote_text: str, base_text: str | None, conflicts: int,
           problems: tuple[str, ...], prefer: Prefer | None,
           actions: list[str], lost: list[str]) -> dict[str, Any]:
    actions.extend(f"conflict markers: {p}" for p in problems)
    sides: dict[str, dict[str, Any] | None] = {}
    failures: dict[str, str] = {}
    for label, text in (("local", local_text), ("remote", remote_text)):
        try:
            side = _recover(text, f"{label} side", actions, lost)
            sides[label] = _finish_side(side, f"{label} side", actions, lost)
        except _Unrecoverable as exc:
            sides[label] = None
            failures[label] = str(exc).removeprefix("cannot be repaired: ")
    base: dict[str, Any] | None = None
    if base_text is not None:
        try:
            base = _finish_side(_recover(base_text, "base", [], []), "base", [], [])
        except _Unrecoverable:
            base = None
    local, remote = sides["local"], sides["remote"]
    if local is None and remote is None:
        raise _Unrecoverable(f"cannot be repaired: neither side of the {conflicts} git conflict(s) can be "
                             f"read ({failures['local']}; {failures['remote']})")
    if local is None or remote is None:
        bad = "local" if local is None else "remote"
        good = "remote" if bad == "local" else "local"
        lost.append(f"the {bad} side of the git conflict(s) could not be read ({failures[bad]}); "
                    f"kept the {good} side only")
        kept = remote if local is None else local
        assert kept is not None
        return kept
    merged = merge_sides(local, remote, base, prefer)
    how = "both versions of each conflicting cell are kept" if prefer is None else f"preferring {prefer}"
    actions.append(f"resolved {conflicts} git conflict(s) by merging the local and remote notebooks "
                   f"cell by cell ({how}"
                   + (", using the common ancestor from diff3 markers)" if base is not None else ")"))
    actions.extend(merged.notes + merged.taken + merged.conflicts)
    return merged.nb


def _finish_side(nb: dict[str, Any], label: str, actions: list[str], lost: list[str]) -> dict[str, Any]:
    nb = _upgrade(nb, f"{label}: ", actions, lost)
    sub_actions, sub_lost = normalize_cells(nb)
    actions.extend(f"{label}: {a}" for a in sub_actions)
    lost.extend(f"{label}: {x}" for x in sub_lost)
    return nb


def _finish(nb: dict[str, Any], actions: list[str], lost: list[str]) -> dict[str, Any]:
    nb = _upgrade(nb, "", actions, lost)
    if not isinstance(nb.get("metadata"), dict):
        actions.append("added the missing notebook metadata" if "metadata" not in nb
                       else "replaced the notebook metadata, which was not an object, by an empty one")
        nb["metadata"] = {}
    cell_actions, cell_lost = normalize_cells(nb)
    actions.extend(cell_actions)
    lost.extend(cell_lost)
    actions.extend(fix_ids(nb))
    problem = validation_error(nb)
    if problem is not None:
        raise _Unrecoverable("cannot be repaired: the notebook still violates the nbformat schema: "
                             f"{problem}")
    return nb


def _upgrade(nb: dict[str, Any], prefix: str, actions: list[str], lost: list[str]) -> dict[str, Any]:
    old = _old_version(nb, prefix, actions)
    if old is not None:
        return _convert_old(nb, old, prefix, actions, lost)
    major = nb.get("nbformat")
    if major != 4:
        if isinstance(major, int) and major > 4:
            raise _Unrecoverable(f"cannot be repaired: {prefix}nbformat {major} is newer than this "
                                 "tool knows")
        actions.append(f"{prefix}set the missing or invalid nbformat version ({major!r}) to 4")
        nb["nbformat"] = 4
    minor = nb.get("nbformat_minor")
    if not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
        has_ids = any(isinstance(c, dict) and "id" in c for c in _cells_of(nb))
        nb["nbformat_minor"] = CURRENT_MINOR if has_ids else 4
        actions.append(f"{prefix}set the missing or invalid nbformat_minor ({minor!r}) to "
                       f"{nb['nbformat_minor']}")
    return nb


def _old_version(nb: dict[str, Any], prefix: str, actions: list[str]) -> int | None:
    """The nbformat version (1-3) to convert the notebook from; None for nbformat 4 content (a notebook
    whose version says 3 but that holds nbformat 4 cells gets version 4 here)."""
    major = oldformat.old_major(nb)
    if major is None and "worksheets" in nb and not isinstance(nb.get("cells"), list):
        what = "missing" if "nbformat" not in nb else f"invalid ({nb['nbformat']!r})"
        actions.append(f"{prefix}set the {what} nbformat version to 3: the notebook keeps its cells in "
                       "nbformat 3 `worksheets`")
        nb["nbformat"] = major = 3
    if major in (2, 3) and "worksheets" not in nb and _holds_v4_cells(nb.get("cells")):
        has_ids = any(isinstance(c, dict) and "id" in c for c in nb["cells"])
        nb["nbformat"], nb["nbformat_minor"] = 4, CURRENT_MINOR if has_ids else 4
        actions.append(f"{prefix}set the version to nbformat 4.{nb['nbformat_minor']}: the notebook says "
                       f"nbformat {major} but holds nbformat 4 `cells` (code in `source`), not `worksheets`")
        return None
    return major


def _holds_v4_cells(cells: Any) -> bool:
    """Top-level cells whose code is in ``source``: nbformat 4 cells, that a conversion from 3 would empty."""
    return isinstance(cells, list) and any(
        isinstance(c, dict) and c.get("cell_type") == "code" and "source" in c and "input" not in c for c in cells)


def _convert_old(nb: dict[str, Any], major: int, prefix: str, actions: list[str],
                 lost: list[str]) -> dict[str, Any]:
    """nbformat ``major`` (1-3) to 4 with nbformat's own converter, as Jupyter converts it on open, once
    the structure the conversion needs is there; one clear line when it still cannot be converted."""
    _old_version_fields(nb, major, prefix, actions)
    _add_old_structure(nb, major, prefix, actions, lost)
    try:
        oldformat.upgrade(nb, major)  # names the key nbformat would stop on, where its message does not
    except oldformat.ConversionError as exc:
        raise _Unrecoverable(f"cannot be repaired: {prefix}nbformat {major} cannot be converted to 4 (nor "
                             f"opened by Jupyter): {exc.path}: {exc.message}") from None
    nbf = _nbformat()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read = nbf.versions[major].to_notebook_json(copy.deepcopy(nb))  # the reader (rejoin_lines)
            converted = _plain(nbf.convert(read, 4))
    except Exception as exc:  # noqa: BLE001 - nbformat's converters raise anything on odd input
        first = (str(exc).strip().splitlines() or [""])[0]
        raise _Unrecoverable(f"cannot be repaired: {prefix}converting nbformat {major} to 4 failed: "
                             f"{type(exc).__name__}: {first}") from None
    meta = converted.get("metadata")
    if isinstance(meta, dict):
        for key in ("orig_nbformat", "orig_nbformat_minor"):
            meta.pop(key, None)
    actions.append(f"{prefix}converted the notebook from nbformat {major}.{nb['nbformat_minor']} to "
                   f"{converted.get('nbformat')}.{converted.get('nbformat_minor')}")
    return dict(converted)


def _old_version_fields(nb: dict[str, Any], major: int, prefix: str, actions: list[str]) -> None:
    """Integer version fields, as nbformat's conversion of an nbformat 3 file asserts (3.0 is not 3
    there, and 3.0 is the only nbformat 3)."""
    if type(nb.get("nbformat")) is not int:
        nb["nbformat"] = major
    minor = nb.get("nbformat_minor")
    if "nbformat_minor" not in nb:
        nb["nbformat_minor"] = 0  # what nbformat reads a missing minor version as
    elif type(minor) is not int or minor < 0 or (major == 3 and minor > 0):
        nb["nbformat_minor"] = 0
        actions.append(f"{prefix}set nbformat_minor ({minor!r}) to 0: "
                       + ("nbformat 3.0 is the only nbformat 3" if type(minor) is int and minor > 0
                          else "not a valid minor version"))


def _add_old_structure(nb: dict[str, Any], major: int, prefix: str, actions: list[str],
                       lost: list[str]) -> None:
    """What nbformat's conversion needs and a file may lack: the notebook metadata, the worksheets
    (cells in nbformat 1), each worksheet's cells."""
    if major == 1:
        if "cells" not in nb:
            nb["cells"] = []
            actions.append(f"{prefix}added the missing `cells` list (empty: the notebook had no cells)")
        return
    if not isinstance(nb.get("metadata"), dict):
        actions.append(f"{prefix}added the missing notebook `metadata` (empty: pick the kernel when you open "
                       "it)" if "metadata" not in nb else
                       f"{prefix}replaced the notebook metadata, which was not an object, by an empty one")
        nb["metadata"] = {}
    cells = nb.get("cells")
    if "worksheets" not in nb:
        if isinstance(cells, list) and cells:
            nb["worksheets"] = [{"cells": nb.pop("cells"), "metadata": {}}]
            actions.append(f"{prefix}added the missing `worksheets`: one worksheet holding the notebook's "
                           f"{len(cells)} top-level cell(s)")
        else:
            nb["worksheets"] = []
            actions.append(f"{prefix}added the missing `worksheets` (empty: the notebook had no cells)")
    elif isinstance(cells, list) and cells:
        lost.append(f"{prefix}dropped {len(cells)} top-level cell(s) found next to `worksheets`: nbformat "
                    f"{major} keeps cells in worksheets, and its conversion overwrites `cells`")
    for i, sheet in enumerate(nb["worksheets"] if isinstance(nb["worksheets"], list) else []):
        if isinstance(sheet, dict) and "cells" not in sheet:
            sheet["cells"] = []
            actions.append(f"{prefix}added the missing `cells` list to worksheets[{i}] (empty: it had no cells)")


def _nbformat() -> Any:
    """nbformat, imported on first use (it is slow to import) and typed loosely (it is untyped)."""
    import nbformat

    return nbformat


def _plain(value: Any) -> Any:
    """NotebookNode trees to plain dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def validation_error(nb: dict[str, Any]) -> str | None:
    """None when ``nbformat.validate`` accepts the notebook, else its first complaint in one line."""
    nbf = _nbformat()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nbf.validate(nbf.from_dict(copy.deepcopy(nb)))
        except nbf.ValidationError as exc:
            message = (str(getattr(exc, "message", exc)).splitlines() or [""])[0]
            if len(message) > 200:
                message = message[:197] + "..."
            return f"at {json_path(exc.absolute_path)}: {message}"
        except Exception as exc:  # noqa: BLE001 - a notebook nbformat cannot even look at
            return _one_line(f"{type(exc).__name__}: {exc}")
    return None


def _one_line(text: str) -> str:
    """``text`` on one line: each line break (any that ``str.splitlines`` knows) becomes a space."""
    return " ".join(text.splitlines())
