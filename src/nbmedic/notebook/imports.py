"""What a notebook's code cells import, found statically with ``ast`` (notebook code never runs).

Shared by NB041 (imports the kernel cannot resolve), environment locks (``env capture --imports-only``)
and the GPU probe (EN242).  IPython syntax (magics, shell escapes, help) is neutralised before parsing;
imports guarded by ``try/except ImportError``, version or platform tests are left out.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbmedic.notebook.cells import source_text

PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "python", "python3", "memit"})
SHELL_CELL_MAGICS = frozenset({"bash", "sh", "script", "system"})
WRITE_CELL_MAGICS = frozenset({"writefile", "file"})
GUARD_EXCEPTIONS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
_GUARD_ATTRS = frozenset({"version_info", "platform", "TYPE_CHECKING", "python_implementation"})

_CELL_MAGIC_RE = re.compile(r"^\s*%%(\w+)")
_HELP_RE = re.compile(r"^\s*(?:\?{1,2}[\w.*\[\]]+|[\w.*\[\]()]+\?{1,2})\s*$")
_SHELL_ASSIGN_RE = re.compile(r"^\s*[\w.,\s\[\]]+=\s*[!%]")
_INSTALL_RE = re.compile(
    r"\b(?:pip3?|conda|mamba|micromamba)\s+install\b|\buv\s+pip\s+install\b|-m\s+pip\s+install\b"
    r"|[\"']pip[\"']\s*,\s*[\"']install[\"']")


def code_cells(nb: Mapping[str, Any]) -> Iterator[tuple[int, str]]:
    """(index, source) of every code cell with a source."""
    cells = nb.get("cells")
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = source_text(cell)
            if source:
                yield index, source


@dataclass
class ImportScan:
    """The imports of one notebook's code cells, and what the notebook provides or installs itself."""

    modules: dict[str, list[int]] = field(default_factory=dict)  # top-level name -> cells, in order
    written: set[str] = field(default_factory=set)  # modules written by %%writefile
    installs: list[int] = field(default_factory=list)  # cells that pip/conda install


def strip_magics(source: str) -> str:
    """Turn IPython-only lines (magics, shell escapes, help) into ``pass``; keep line numbers."""
    out = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped[:1] in ("%", "!") or _HELP_RE.match(line) or _SHELL_ASSIGN_RE.match(line):
            line = line[: len(line) - len(stripped)] + "pass"
        out.append(line)
    return "\n".join(out)


def parse_cell(source: str) -> ast.Module | None:
    """The cell as Python, IPython syntax neutralised; None if it still does not parse."""
    for attempt in range(3):
        if attempt == 1:
            source = strip_magics(source)
        elif attempt == 2:
            source = textwrap.dedent(source)
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError):  # ValueError: NUL bytes
            continue
    return None


def _names(node: ast.expr | None) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.Tuple):
        for elt in node.elts:
            yield from _names(elt)


def _catches_import_error(handlers: Sequence[ast.ExceptHandler]) -> bool:
    return any(h.type is None or any(n in GUARD_EXCEPTIONS for n in _names(h.type)) for h in handlers)


def _is_guard_test(test: ast.expr) -> bool:
    """``if sys.version_info ...``, ``if sys.platform ...``, ``if TYPE_CHECKING``, ``if IN_COLAB``..."""
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and (node.attr in _GUARD_ATTRS or (
                node.attr == "name" and isinstance(node.value, ast.Name) and node.value.id == "os")):
            return True
        if isinstance(node, ast.Name) and (node.id in ("TYPE_CHECKING", "platform") or "colab" in node.id.lower()):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "colab" in node.value:
            return True
    return False


def _suppresses_import_error(node: ast.With | ast.AsyncWith) -> bool:
    for item in node.items:
        call = item.context_expr
        if isinstance(call, ast.Call) and any(n == "suppress" for n in _names(call.func)):
            if any(n in GUARD_EXCEPTIONS for arg in call.args for n in _names(arg)):
                return True
    return False


def collect_imports(body: Sequence[ast.stmt], found: list[str]) -> None:
    """Top-level names of absolute imports that must work, in order (guarded imports left out)."""
    for node in body:
        if isinstance(node, ast.Import):
            found.extend(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module != "__future__":
                found.append(node.module.partition(".")[0])
        elif isinstance(node, ast.Try) or (sys.version_info >= (3, 11) and isinstance(node, ast.TryStar)):
            handlers = node.handlers
            if not _catches_import_error(handlers):
                collect_imports(node.body, found)
                collect_imports(node.orelse, found)
            for handler in handlers:
                collect_imports(handler.body, found)
            collect_imports(node.finalbody, found)
        elif isinstance(node, ast.If):
            if not _is_guard_test(node.test):
                collect_imports(node.body, found)
                collect_imports(node.orelse, found)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            if not _suppresses_import_error(node):
                collect_imports(node.body, found)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            collect_imports(node.body, found)
            collect_imports(node.orelse, found)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            collect_imports(node.body, found)
        elif isinstance(node, ast.Match):
            for case in node.cases:
                collect_imports(case.body, found)


def _written_module(args: str) -> str | None:
    """``%%writefile [-a] pkg/mod.py`` -> ``pkg``; ``foo.py`` -> ``foo``; anything else -> None."""
    try:
        words = [w for w in shlex.split(args) if not w.startswith("-")]
    except ValueError:
        return None
    if not words or not words[-1].endswith(".py"):
        return None
    target = words[-1].replace("\\", "/")
    if target.startswith(("/", "~")) or ":" in target:
        return None
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    name = parts[0][:-3] if len(parts) == 1 else parts[0]
    return name if name.isidentifier() else None


def scan_imports(nb: Mapping[str, Any]) -> ImportScan:
    """The imports of a notebook's code cells (guarded imports left out), what it writes and installs."""
    scan = ImportScan()
    for index, source in code_cells(nb):
        if "install" in source and _installs(source):
            scan.installs.append(index)
        magic = _CELL_MAGIC_RE.match(source)
        if magic:
            name = magic.group(1)
            first, _, body = source.lstrip().partition("\n")
            if name in WRITE_CELL_MAGICS:
                written = _written_module(first[2 + len(name):])
                if written:
                    scan.written.add(written)
                continue
            if name not in PYTHON_CELL_MAGICS:
                continue  # %%bash, %%html, %%sql, ...: not Python
            source = "\n" + body  # keep line numbers
        for module in _magic_imports(source):
            cells = scan.modules.setdefault(module, [])
            if not cells or cells[-1] != index:
                cells.append(index)
        if "import" not in source:
            continue
        tree = parse_cell(source)
        if tree is None:
            continue  # a syntax error is the author's to see; never guess
        names: list[str] = []
        collect_imports(tree.body, names)
        for module in names:
            cells = scan.modules.setdefault(module, [])
            if not cells or cells[-1] != index:
                cells.append(index)
    return scan


# `%matplotlib inline` imports matplotlib when it runs (other magics load IPython's own extensions)
_MATPLOTLIB_MAGIC_RE = re.compile(r"^[ \t]*%matplotlib\b", re.MULTILINE)


def _magic_imports(source: str) -> list[str]:
    return ["matplotlib"] if "%matplotlib" in source and _MATPLOTLIB_MAGIC_RE.search(source) else []


def _installs(source: str) -> bool:
    """Does the cell install packages (``!pip install``, ``%conda install``, ``%%bash`` + pip, subprocess)?"""
    for line in source.splitlines():
        if not line.lstrip().startswith("#") and _INSTALL_RE.search(line):
            return True
    return False
