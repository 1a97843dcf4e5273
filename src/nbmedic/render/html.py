"""The HTML report (``--report FILE.html``, ``nbmedic report DOC.json -o FILE.html``): one self-contained
page rendered from the report document (``render.document``)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["render_html"]


def render_html(doc: Mapping[str, Any], *, notebook: Callable[[str], dict[str, Any] | None]) -> str:
    """The page for ``doc``; ``notebook(path)`` gives a notebook's content (None when unreadable)."""
    count = len(doc.get("findings") or [])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>nbmedic report</title>"
            f"</head><body><p>{html.escape(str(count))} findings</p></body></html>\n")
