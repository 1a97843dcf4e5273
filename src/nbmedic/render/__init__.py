"""Renderers: findings in, text out.  Each is imported only by the command that needs it."""

from __future__ import annotations

from typing import Literal

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")
