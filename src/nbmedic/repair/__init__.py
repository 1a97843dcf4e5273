"""Repair broken notebook files: pure functions from bytes to a repaired notebook and a report.

``repair_bytes`` is the entry point; the command in ``nbmedic.commands.repair`` does the I/O.
"""

from __future__ import annotations

from nbmedic.notebook.cells import CONFLICT_TAG
from nbmedic.repair.core import RepairResult, Status, repair_bytes, validation_error
from nbmedic.repair.merge import Prefer

__all__ = ["CONFLICT_TAG", "Prefer", "RepairResult", "Status", "repair_bytes", "validation_error"]
