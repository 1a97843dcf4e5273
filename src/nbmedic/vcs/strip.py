"""Strip outputs, execution counts and volatile metadata: nbstripout's semantics, cell ids kept.

``strip_bytes(data)`` is byte-identical to ``nbstripout --keep-id --textconv`` for every notebook that
nbstripout accepts (tests/test_strip_nbstripout.py checks it option by option), except that a CRLF file
keeps its CRLF line endings (nbstripout writes the platform's).  What nbstripout does, step by step
(``nbstripout._utils.strip_output``), and what is done here in the same order:

1. the notebook's own ``metadata.keep_output`` decides the default unless ``keep_output`` is set;
2. the extra keys (nbstripout's defaults, ``metadata.signature``, ``metadata.widgets``,
   ``cell.metadata.collapsed`` …, plus ``extra_keys``, less ``keep_metadata_keys``) are removed from
   the notebook metadata;
3. with ``drop_empty_cells``, cells whose source is only whitespace go;
4. per cell: outputs go unless the cell has ``init_cell: true``, ``keep_output: true`` in its metadata or
   the tag ``keep_output`` (outputs not larger than ``max_output_size`` characters stay); execution
   counts of the cell and of the kept outputs are nulled unless ``keep_count``; the cell keys of the
   extra keys are removed.

nbmedic adds one thing: the run figures ``nbmedic run`` stores in ``cell.metadata.nbmedic`` (status,
wall, cpu, peak_rss …) are run output and go too, unless ``keep_metadata_keys`` names
``cell.metadata.nbmedic``.  A notebook without them is untouched by this step, so byte-identity with
nbstripout holds for every notebook nbstripout has seen.

Two deliberate differences where nbstripout gives up: a cell whose ``keep_output`` metadata is false
while it carries the ``keep_output`` tag (nbstripout raises MetadataError) keeps its outputs here, and
a key such as ``cell`` without a dot (nbstripout ignores it with a warning) is refused by
``options_from_config`` and ignored by ``strip_notebook``.

This module is on the hot path of git's clean filter: it imports nothing heavy (no nbformat, no
jsonschema) and copies only what it changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.notebook.io import NotebookReadError, detect_newline, dumps, encode_text, load_bytes
from nbmedic.units import parse_size

__all__ = [
    "DEFAULT_EXTRA_KEYS",
    "NBMEDIC_CELL_KEY",
    "RUN_FIGURES",
    "StripOptions",
    "options_from_config",
    "parse_keys",
    "strip_bytes",
    "strip_data",
    "strip_notebook",
]

# nbstripout 0.9.1's ``extra_keys``: always removed unless named in keep_metadata_keys
DEFAULT_EXTRA_KEYS: tuple[str, ...] = (
    "metadata.signature",
    "metadata.widgets",
    "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime",
    "cell.metadata.execution",
    "cell.metadata.heading_collapsed",
    "cell.metadata.hidden",
    "cell.metadata.scrolled",
)
NBMEDIC_CELL_KEY = "cell.metadata.nbmedic"
# what ``CellRecord.to_metadata`` writes into cell.metadata.nbmedic (nbmedic.execute.result; not imported:
# this module must stay light)
RUN_FIGURES = frozenset({"status", "wall", "cpu", "peak_rss", "rss_delta", "gpu_peak", "output_bytes",
                         "memory_profile"})


@dataclass(frozen=True)
class StripOptions:
    """What to keep; the defaults are nbstripout's (``nbstripout --keep-id``)."""

    keep_count: bool = False
    keep_output: bool = False  # False: the notebook's metadata.keep_output, cell tags and metadata decide
    keep_id: bool = True  # nbmedic keeps cell ids (nbstripout --keep-id); False numbers them 0, 1, 2 …
    drop_empty_cells: bool = False
    extra_keys: tuple[str, ...] = ()  # e.g. ("metadata.celltoolbar", "cell.metadata.heading_collapsed")
    keep_metadata_keys: tuple[str, ...] = ()  # default extra keys to keep, e.g. ("cell.metadata.collapsed",)
    max_output_size: int | None = None  # keep outputs of at most this many characters (nbstripout --max-size)


_DEFAULT_OPTIONS = StripOptions()


@functools.lru_cache(maxsize=64)
def _key_paths(opts: StripOptions) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(notebook metadata paths, cell paths, strip nbmedic's run figures) for ``opts``."""
    keep = set(opts.keep_metadata_keys)
    meta: list[str] = []
    cell: list[str] = []
    for key in (*DEFAULT_EXTRA_KEYS, *opts.extra_keys):
        if key in keep:
            continue
        namespace, dot, sub = key.partition(".")
        if not dot or namespace not in ("cell", "metadata"):
            continue  # nbstripout: "Ignoring invalid extra key"
        (meta if namespace == "metadata" else cell).append(sub)
    return tuple(meta), tuple(cell), NBMEDIC_CELL_KEY not in keep


def _pop_path(obj: Any, key: str) -> Any:
    """nbstripout's ``pop_recursive`` without mutation: ``obj`` itself when nothing goes, else a copy."""
    if not isinstance(obj, dict):
        return obj
    if key in obj:
        out = dict(obj)
        del out[key]
        return out
    head, dot, tail = key.partition(".")
    if not dot or head not in obj:
        return obj
    inner = obj[head]
    new_inner = _pop_path(inner, tail)
    if new_inner is inner:
        return obj
    out = dict(obj)
    out[head] = new_inner
    return out


def _size_at_most(item: Any, limit: int) -> bool:
    """Is nbstripout's ``get_size(item)`` (string lengths, ``len(str(x))`` for other scalars) <= limit?"""
    total = 0
    stack = [item]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        else:
            total += len(str(value))
        if total > limit:
            return False
    return True


def _is_empty(cell: Mapping[str, Any]) -> bool:
    """nbstripout's ``--drop-empty-cells`` test: no ``source``, or a source of whitespace only."""
    source = cell.get("source", [])
    if isinstance(source, str):
        return not source.strip()
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return not any(line.strip() for line in source)
    return False  # a malformed source (nbstripout fails on it): keep the cell


def _keep_output(cell: Mapping[str, Any], default: bool) -> bool:
    """nbstripout's ``determine_keep_output`` (``init_cell``, ``keep_output`` metadata or tag)."""
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        return default
    if "init_cell" in meta:
        return bool(meta["init_cell"])
    has_meta = "keep_output" in meta
    meta_value = bool(meta.get("keep_output", False))
    tags = meta.get("tags", [])
    try:
        has_tag = "keep_output" in tags
    except TypeError:  # tags that are neither a list nor a string
        has_tag = False
    if has_meta or has_tag:
        return meta_value or has_tag  # metadata false + tag: nbstripout raises; keeping is the safe side
    return default


def _null_count(output: Any) -> Any:
    if isinstance(output, dict) and "execution_count" in output and output["execution_count"] is not None:
        output = dict(output)
        output["execution_count"] = None
    return output


def _strip_cell(cell: dict[str, Any], index: int, keep_default: bool, opts: StripOptions,
                cell_keys: tuple[str, ...], figures: bool) -> dict[str, Any]:
    c = dict(cell)
    outputs = c.get("outputs")
    if isinstance(outputs, list):
        if not _keep_output(c, keep_default):
            limit = opts.max_output_size or 0
            outputs = [o for o in outputs if _size_at_most(o, limit)]
        if not opts.keep_count:
            outputs = [_null_count(o) for o in outputs]
        c["outputs"] = outputs
    if not opts.keep_count:
        if "prompt_number" in c:
            c["prompt_number"] = None
        if "execution_count" in c:
            c["execution_count"] = None
    if not opts.keep_id and "id" in c:
        c["id"] = str(index)
    for key in cell_keys:
        c = _pop_path(c, key)
    if figures:
        meta = c.get("metadata")
        own = meta.get("nbmedic") if isinstance(meta, dict) else None
        if isinstance(meta, dict) and isinstance(own, dict) and not RUN_FIGURES.isdisjoint(own):
            rest = {k: v for k, v in own.items() if k not in RUN_FIGURES}
            meta = dict(meta)
            if rest:
                meta["nbmedic"] = rest
            else:
                del meta["nbmedic"]
            c["metadata"] = meta
    return c


def _strip_cells(cells: list[Any], start: int, keep_default: bool, opts: StripOptions,
                 cell_keys: tuple[str, ...], figures: bool) -> list[Any]:
    out: list[Any] = []
    for cell in cells:
        if not isinstance(cell, dict):
            out.append(cell)  # not a cell (nbstripout fails on it): left as it is
            continue
        if opts.drop_empty_cells and _is_empty(cell):
            continue
        out.append(_strip_cell(cell, start + len(out), keep_default, opts, cell_keys, figures))
    return out


def strip_notebook(nb: Mapping[str, Any], opts: StripOptions = _DEFAULT_OPTIONS) -> dict[str, Any]:
    """The notebook with outputs, counts and volatile metadata removed as ``opts`` says.

    Pure: ``nb`` is not modified.  Unchanged sub-objects are shared with ``nb``, not copied (copy the
    result deeply before mutating it in place).  Cells and objects of the wrong type are left as they are.
    """
    meta_keys, cell_keys, figures = _key_paths(opts)
    out = dict(nb)
    meta = out.get("metadata")
    keep_default = opts.keep_output
    if not keep_default and isinstance(meta, dict) and "keep_output" in meta:
        keep_default = bool(meta["keep_output"])
    if "metadata" in out:
        for key in meta_keys:
            meta = _pop_path(meta, key)
        out["metadata"] = meta
    major = out.get("nbformat")
    worksheets = out.get("worksheets")
    if isinstance(major, int) and major < 4 and isinstance(worksheets, list):
        new_sheets: list[Any] = []
        count = 0
        for sheet in worksheets:
            if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list):
                sheet = dict(sheet)
                sheet["cells"] = _strip_cells(sheet["cells"], count, keep_default, opts, cell_keys, figures)
                count += len(sheet["cells"])
            new_sheets.append(sheet)
        out["worksheets"] = new_sheets
    elif isinstance(out.get("cells"), list):
        out["cells"] = _strip_cells(out["cells"], 0, keep_default, opts, cell_keys, figures)
    return out


def _check_notebook(nb: Mapping[str, Any]) -> None:
    """A JSON object that is not a notebook (a package.json renamed, nbformat 1/2) is not stripped."""
    major = nb.get("nbformat")
    if type(major) is int and (
            (major >= 4 and isinstance(nb.get("cells"), list))
            or (major in (2, 3) and isinstance(nb.get("worksheets"), list))):
        return
    if "nbformat" not in nb:
        why = "it has no \"nbformat\" key"
    elif type(major) is not int:
        why = f"its \"nbformat\" is {major!r}, not a version number"
    elif major < 2:
        why = f"it is in the old nbformat {major} (upgrade it: `jupyter nbconvert --to notebook`)"
    else:
        why = f"its \"{'cells' if major >= 4 else 'worksheets'}\" is not a list"
    raise NotebookReadError("not-object", f"the JSON object is not a notebook: {why}", line=1, column=1,
                            evidence={"nbformat": major if isinstance(major, (int, str)) else None})


def strip_data(data: bytes, opts: StripOptions = _DEFAULT_OPTIONS) -> tuple[bytes, bool]:
    """(the stripped file, whether stripping removed anything).

    The bytes are always the canonical form (``nbformat.write``'s layout, the input's newline style);
    the flag is False when only the layout would change (nbstripout leaves such files alone in place).
    Raises NotebookReadError for bytes that are not a notebook.
    """
    nb = load_bytes(data)
    _check_notebook(nb)
    stripped = strip_notebook(nb, opts)
    newline = detect_newline(data)
    text = _dumps_v2(stripped, newline) if nb.get("nbformat") == 2 else dumps(stripped, newline)
    return encode_text(text), stripped != nb


def _dumps_v2(nb: Mapping[str, Any], newline: str) -> str:
    """nbformat 2 (2011-2012 files, still in some repositories) has its own layout: nbformat writes it."""
    import copy

    try:
        from nbformat.v2 import nbjson

        text: str = nbjson.writes(nbjson.to_notebook(copy.deepcopy(dict(nb))))  # type: ignore[no-untyped-call]
    except Exception as exc:  # noqa: BLE001 - a malformed v2 notebook: do not guess a layout
        raise NotebookReadError("not-object", f"this nbformat 2 notebook cannot be written: {exc}",
                                evidence={"nbformat": 2}) from None
    text += "\n"
    return text if newline == "\n" else text.replace("\n", newline)


def strip_bytes(data: bytes, opts: StripOptions = _DEFAULT_OPTIONS) -> bytes:
    """Parse, strip and serialise in the file's newline style (what git's clean filter stores).

    Raises NotebookReadError for bytes that are not a notebook (the caller passes them through).
    """
    return strip_data(data, opts)[0]


# --- configuration ------------------------------------------------------------------------------

_BOOL_KEYS = ("keep_count", "keep_output", "keep_id", "drop_empty_cells")
_KEY_LIST_KEYS = ("extra_keys", "keep_metadata_keys")


def parse_keys(value: object, *, what: str) -> tuple[str, ...]:
    """Key paths such as ``metadata.widgets cell.metadata.scrolled``: a string (space or comma separated)
    or a list of strings.  UsageError for anything else or a path outside ``metadata.``/``cell.``."""
    if isinstance(value, str):
        parts: list[str] = value.replace(",", " ").split()
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = [p for v in value for p in v.replace(",", " ").split()]
    else:
        raise UsageError(f"{what}: expected key paths such as \"metadata.widgets cell.metadata.scrolled\", "
                         f"got {value!r}")
    for key in parts:
        namespace, dot, sub = key.partition(".")
        if not dot or namespace not in ("cell", "metadata") or not sub:
            raise UsageError(f"{what}: {key!r} is not a key path starting with metadata. or cell. "
                             "(e.g. metadata.widgets, cell.metadata.scrolled)")
    return tuple(dict.fromkeys(parts))


def options_from_config(table: Mapping[str, Any], *, where: str) -> StripOptions:
    """StripOptions from ``[tool.nbmedic.strip]`` (kebab-case or snake_case keys); UsageError on bad values."""
    if not isinstance(table, Mapping):
        raise UsageError(f"{where}: expected a table of strip options, got {table!r}")
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = str(raw_key).replace("-", "_")
        what = f"{where} {raw_key}"
        if key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise UsageError(f"{what}: expected true or false, got {value!r}")
            values[key] = value
        elif key in _KEY_LIST_KEYS:
            values[key] = parse_keys(value, what=what)
        elif key in ("max_output_size", "max_size"):
            values["max_output_size"] = parse_size(value, what=what)
        else:
            known = ", ".join(k.replace("_", "-") for k in (*_BOOL_KEYS, *_KEY_LIST_KEYS, "max_output_size"))
            raise UsageError(f"{what}: unknown option (known: {known})")
    return StripOptions(**values)
