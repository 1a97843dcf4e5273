"""Run every static rule over every notebook; the rules live in sibling modules, one per theme."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.config import Config
from nbmedic.findings import Finding, make

HARD_SIZE_LIMIT = 512 * 1024 * 1024  # larger files are reported, not parsed


@dataclass
class CheckEnv:
    """What rules share across notebooks of one run: caches of machine facts (kernelspecs, imports)."""

    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class NotebookContext:
    path: Path
    display: str  # the path as the user should see it
    data: bytes
    nb: dict[str, Any]
    config: Config
    env: CheckEnv

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
        cell_id = kwargs.pop("cell_id", None)
        if cell is not None and cell_id is None:
            cells = self.nb.get("cells")
            if isinstance(cells, list) and 0 <= cell < len(cells) and isinstance(cells[cell], dict):
                value = cells[cell].get("id")
                cell_id = value if isinstance(value, str) else None
        return make(code, self.display, message, cell=cell, cell_id=cell_id, **kwargs)


Rule = Callable[[NotebookContext], Iterable[Finding]]


def _rules() -> list[tuple[tuple[str, ...], Rule]]:
    """(codes a rule can emit, rule) for every rule on a parsed nbformat-4 notebook."""
    from nbmedic.checks import code, conflicts, execution, kernel, outputs, size, structure

    return [
        *structure.RULES, *execution.RULES, *size.RULES, *kernel.RULES, *code.RULES, *outputs.RULES,
        *conflicts.RULES,
    ]


def _active_rules(config: Config, env: CheckEnv) -> list[Rule]:
    """The rules that can emit a wanted code, worked out once per configuration of a run."""
    cache: dict[int, tuple[Config, list[Rule]]] = env.cache.setdefault("active-rules", {})
    hit = cache.get(id(config))
    if hit is None or hit[0] is not config:
        hit = (config, [rule for codes, rule in _rules() if any(config.wants(c) for c in codes)])
        cache[id(config)] = hit
    return hit[1]


def display_path(path: Path) -> str:
    """The path as the user should see it: relative to the working folder when it lies below it."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return os.path.normpath(text)  # already relative (as named, or found under a relative folder)
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive on Windows
        return text
    return rel if not rel.startswith(".." + os.sep) else text


def check_file(path: Path, config: Config, env: CheckEnv | None = None) -> list[Finding]:
    """All findings for one file; never raises for a bad file (that is a finding)."""
    from nbmedic.checks import structure
    from nbmedic.notebook.io import NotebookReadError, load_bytes

    env = env or CheckEnv()
    shown = display_path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > HARD_SIZE_LIMIT:
                return [f for f in [make("NB020", shown, f"the file is {size / 2**20:.0f} MiB, too large to "
                                         f"analyse (limit {HARD_SIZE_LIMIT // 2**20} MiB)", evidence={"size": size})]
                        if config.wants(f.code)]
            data = fh.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return [make("NB000", shown, f"cannot read the file: {reason}",
                     evidence={"errno": exc.errno, "error": reason})]
    try:
        nb = load_bytes(data)
    except NotebookReadError as exc:
        return [f for f in structure.read_error_findings(shown, exc) if config.wants(f.code)]
    ctx = NotebookContext(path=path, display=shown, data=data, nb=nb, config=config, env=env)
    found: list[Finding] = []
    for f in structure.check_format(ctx):
        if config.wants(f.code):
            found.append(f)
    if ctx.major != 4:  # other rules understand nbformat 4 only
        return found
    for rule in _active_rules(config, env):
        found.extend(f for f in rule(ctx) if config.wants(f.code))
    return found


def check_paths(paths: Iterable[Path], config: Config, env: CheckEnv | None = None) -> list[Finding]:
    """Every finding for ``paths`` under one configuration (the CLI resolves one per folder instead)."""
    env = env or CheckEnv()
    found: list[Finding] = []
    for path in paths:
        found.extend(check_file(path, config, env))
    return found
