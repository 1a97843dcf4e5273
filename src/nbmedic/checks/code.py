"""(rules to be written)"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbmedic.checks.engine import Rule

RULES: list[tuple[tuple[str, ...], Rule]] = []
