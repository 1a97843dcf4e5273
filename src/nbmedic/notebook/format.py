"""nbformat's constants, the rules for cell ids and how a place in a notebook is named, in one place.

The values follow nbformat's own (``nbformat.v4.nbformat``/``nbformat_minor``, the 4.5 schema's
``id`` pattern, ``nbformat.v4.nbbase.random_cell_id``) without importing nbformat, which is slow.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

CURRENT_MAJOR = 4  # the nbformat major version every nbmedic rule understands
CURRENT_MINOR = 5  # the newest nbformat 4 minor version nbmedic knows the schema of
IDS_SINCE_MINOR = 5  # cell ids are required from nbformat 4.5 on, and forbidden before it
ID_MAX_LENGTH = 64
ID_RE = re.compile(r"^[a-zA-Z0-9-_]+$")
BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9-_]+")
CELL_TYPES = ("code", "markdown", "raw")


def json_path(parts: Iterable[object]) -> str:
    """A place in a notebook as schema errors name it: ``$.cells[3].outputs[0].data.image/png``.  A key
    that is empty or holds a character that is not printable (a line break, a control character) is
    written as a JSON string, ``["def f(:\\n"]``, so a message naming it stays on one line."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = str(part)
            out += f".{key}" if key and key.isprintable() else f"[{json.dumps(key)}]"
    return out


def valid_id(value: object) -> bool:
    """A cell id the nbformat 4.5 schema accepts."""
    return isinstance(value, str) and 1 <= len(value) <= ID_MAX_LENGTH and ID_RE.match(value) is not None


def new_id(taken: set[str]) -> str:
    """A fresh id as nbformat makes them (8 random hex digits, as ``uuid4().hex[:8]``) that is not in
    ``taken``; adds it to ``taken``."""
    while True:
        candidate = os.urandom(4).hex()
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def ids_of(cells: Iterable[Any]) -> set[str]:
    """The ids already used by ``cells`` (to pass to ``new_id``)."""
    return {c["id"] for c in cells if isinstance(c, dict) and isinstance(c.get("id"), str)}


def has_ids(major: object, minor: object) -> bool:
    """Does an nbformat ``major.minor`` notebook carry cell ids (4.5 and later)?"""
    if type(major) is not int or type(minor) is not int:
        return False
    return major > CURRENT_MAJOR or (major == CURRENT_MAJOR and minor >= IDS_SINCE_MINOR)


def empty_notebook() -> dict[str, Any]:
    """A valid notebook with no cells, of the current format."""
    return {"cells": [], "metadata": {}, "nbformat": CURRENT_MAJOR, "nbformat_minor": CURRENT_MINOR}
