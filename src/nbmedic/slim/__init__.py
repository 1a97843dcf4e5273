"""Shrink notebooks that are too large to save, never touching a source: ``slim_notebook`` (pure but for
Pillow); the command in ``nbmedic.commands.slim`` reads, writes and reports."""

from __future__ import annotations

from nbmedic.slim.ledger import Ledger
from nbmedic.slim.plan import STEP_NAMES, Change, SlimResult, cut_text, slim_notebook

__all__ = ["STEP_NAMES", "Change", "Ledger", "SlimResult", "cut_text", "slim_notebook"]
