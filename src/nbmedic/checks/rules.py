"""The types every static rule works with: what one notebook offers a rule, and what rules share.

Rule modules (``structure``, ``execution``, ``size``, ``kernel``, ``code``, ``outputs``, ``conflicts``, ``cells``)
import these; the engine imports the rule modules.  Nothing here imports a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.config import Config
from nbmedic.findings import Finding, make
from nbmedic.notebook.cells import cell_id
from nbmedic.notebook.record import NotebookFile


@dataclass
class CheckEnv:
    """What rules share across the notebooks of one command: caches of machine facts (kernelspecs,
    imports)."""

    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class NotebookContext:
    """One parsed notebook, as rules see it."""

    file: NotebookFile
    nb: dict[str, Any]
    env: CheckEnv

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def data(self) -> bytes:
        return self.file.data

    @property
    def config(self) -> Config:
        return self.file.config

    @property
    def cells(self) -> list[dict[str, Any]]:
        cells = self.nb.get("cells")
        return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []

    def iter_cells(self) -> Iterator[tuple[int, dict[str, Any]]]:
        cells = self.nb.get("cells")
        if isinstance(cells, list):
            for index, cell in enumerate(cells):
                if isinstance(cell, dict):
                    yield index, cell

    @property
    def major(self) -> int | None:
        value = self.nb.get("nbformat")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def minor(self) -> int:
        value = self.nb.get("nbformat_minor")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def finding(self, code: str, message: str, *, cell: int | None = None, **kwargs: Any) -> Finding:
        """A finding about this notebook (the cell's id is filled in from the cell)."""
        ident = kwargs.pop("cell_id", None)
        if cell is not None and ident is None:
            cells = self.nb.get("cells")
            if isinstance(cells, list) and 0 <= cell < len(cells):
                ident = cell_id(cells[cell])
        return make(code, self.name, message, cell=cell, cell_id=ident, **kwargs)


Rule = Callable[[NotebookContext], Iterable[Finding]]
RuleTable = list[tuple[tuple[str, ...], Rule]]  # (codes a rule can emit, rule)
