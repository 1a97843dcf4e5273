"""Parameter sweeps (``nbmedic run --grid FILE``): a grid expanded into runs, and the names of their outputs.

A grid maps parameter names to lists of values (a scalar is a list of one); it expands to the cartesian
product, in the file's order (the last parameter varies fastest).  Each combination is labelled
``alpha=0.1,n=100`` (what reports show) and its executed notebook is named ``report[alpha=0.1,n=100].ipynb``.

Output names are safe on every common file system: no ``/`` or ``\\``, no NUL, no control or invisible
format characters, none of Windows' reserved ``<>:"|?*`` (each becomes ``_``); brackets inside values
become parentheses so the outer pair stays unambiguous; a value longer than ``VALUE_LIMIT`` characters is
cut and ends with ``~`` and a short hash of the whole value; a name longer than 255 bytes of UTF-8 is cut
the same way.  Names of one grid never differ only by case (macOS and Windows would merge them): those
that would collide get the hash of their combination.

Pure functions: no files, no kernels.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import keyword
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from nbmedic.errors import UsageError

__all__ = [
    "NAME_LIMIT",
    "VALUE_LIMIT",
    "Grid",
    "combinations",
    "grid_from_mapping",
    "label",
    "output_name",
    "output_names",
    "safe_text",
    "value_text",
]

Grid = dict[str, list[Any]]

NAME_LIMIT = 255  # bytes of a file name on ext4, APFS, NTFS (UTF-16 units there: never fewer than bytes here)
VALUE_LIMIT = 40  # characters of one value in an output name before it is cut and hashed
_SUFFIX = ".ipynb"
_RESERVED = frozenset('<>:"/\\|?*')
_BRACKETS = str.maketrans("[]", "()")


def _canonical(value: Any) -> str:
    """A text that tells values apart by type too (``1``, ``1.0``, ``"1"`` and ``true`` all differ)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _describe(value: Any) -> str:
    text = _printable(value_text(value))
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def grid_from_mapping(raw: object, *, where: str) -> Grid:
    """Validate a grid read from YAML: a non-empty mapping of Python identifiers to non-empty lists of
    distinct values (a scalar stands for a list of one).  UsageError (one line, naming ``where``) if not."""
    if not isinstance(raw, Mapping):
        kind = "a list" if isinstance(raw, list) else f"a {type(raw).__name__}" if raw is not None else "empty"
        raise UsageError(f"{where}: a grid must be a mapping of parameter names to lists of values, not {kind}")
    if not raw:
        raise UsageError(f"{where}: the grid names no parameters")
    grid: Grid = {}
    for name, values in raw.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"{where}: parameter name {name!r} is not a valid Python variable name")
        listed = list(values) if isinstance(values, list) else [values]
        if not listed:
            raise UsageError(f"{where}: parameter {name} has no values (an empty list)")
        seen: set[str] = set()
        for value in listed:
            key = _canonical(value)
            if key in seen:
                raise UsageError(f"{where}: parameter {name} lists the value {_describe(value)} twice")
            seen.add(key)
        grid[name] = listed
    return grid


def combinations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the file's order (the last parameter varies fastest)."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def value_text(value: Any) -> str:
    """A value as people read it in a label: strings as they are, numbers and constants as Python writes
    them, lists and mappings as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def _printable(text: str) -> str:
    """Control, format, surrogate, private and unassigned characters and line separators as ``_``."""
    return "".join("_" if _invisible(unicodedata.category(ch)) else ch for ch in text)


def _invisible(category: str) -> bool:
    return category[0] == "C" or category in ("Zl", "Zp")


def label(params: Mapping[str, Any]) -> str:
    """``alpha=0.1,n=100``: the combination as reports show it (control characters made visible as ``_``)."""
    return ",".join(f"{name}={_printable(value_text(value))}" for name, value in params.items())


def safe_text(text: str) -> str:
    """``text`` with every character a file name cannot (or should not) hold replaced by ``_``, and
    brackets by parentheses."""
    return "".join("_" if ch in _RESERVED else ch for ch in _printable(text)).translate(_BRACKETS)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` of at most ``limit`` bytes of UTF-8 (never half a character)."""
    return text.encode("utf-8")[: max(0, limit)].decode("utf-8", "ignore")


def _safe_value(value: Any) -> str:
    text = safe_text(value_text(value))
    if len(text) <= VALUE_LIMIT:
        return text
    return f"{text[: VALUE_LIMIT - 9]}~{_digest(_canonical(value))}"


def _safe_label(params: Mapping[str, Any]) -> str:
    return ",".join(f"{name}={_safe_value(value)}" for name, value in params.items())


def _fit(stem: str, text: str, key: str, *, tag: bool = False) -> str:
    """``stem[text].ipynb`` in at most NAME_LIMIT bytes; cut (and tagged with the hash of ``key``) if not."""
    name = f"{stem}[{text}]{_SUFFIX}"
    if not tag and _size(name) <= NAME_LIMIT:
        return name
    mark = f"~{_digest(key)}"
    room = NAME_LIMIT - _size(f"[{mark}]{_SUFFIX}")
    keep_stem = _cut(stem, min(_size(stem), max(room // 2, room - _size(text))))
    return f"{keep_stem}[{_cut(text, room - _size(keep_stem))}{mark}]{_SUFFIX}"


def output_name(stem: str, params: Mapping[str, Any]) -> str:
    """The file name of one combination's executed notebook: ``report[alpha=0.1,n=100].ipynb``.

    ``stem`` is the notebook's file name without ``.ipynb`` (a name the file system already holds)."""
    key = _canonical(list(params.items()))
    return _fit(safe_text(stem), _safe_label(params), key)


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def output_names(stem: str, combos: Sequence[Mapping[str, Any]]) -> list[str]:
    """The output names of a grid's combinations: ``output_name`` each, made distinct where two would be
    equal (ignoring case and Unicode normalisation) by the hash of each one's combination."""
    names = [output_name(stem, params) for params in combos]
    counts = collections.Counter(_fold(n) for n in names)
    for i, params in enumerate(combos):
        if counts[_fold(names[i])] > 1:
            names[i] = _fit(safe_text(stem), _safe_label(params), _canonical(list(params.items())), tag=True)
    if len({_fold(n) for n in names}) != len(names):  # two equal combinations: the grid refuses them
        raise ValueError(f"combinations of {stem} are not distinct")
    return names
