"""NB070-NB071: cells that do too much: long code cells, and cells whose many top-level variables later
cells read (the hidden state that breaks when cells run out of order).

NB070 counts the non-blank lines of a code cell's source (comments count: they are read too; blank
lines do not), after a cheap gate on the raw line count.  NB071 parses each code cell once with ``ast``
(IPython syntax neutralised by ``notebook.imports.parse_cell``; cells that still do not parse are skipped)
and walks the cells in order, remembering which cell last bound each name at top level:

- a cell *binds* a variable by assignment (plain, augmented, annotated with a value), ``for`` and ``with``
  targets and ``:=`` outside functions, at module level including inside ``if``/``for``/``try`` blocks;
  imports, ``def`` and ``class`` bind too but are not variables (they are the modular form) and
  UPPER_CASE names are constants (a configuration cell), so neither counts;
- a later cell *reads* a name when it loads it (anywhere, inside functions too, outside the function's
  or comprehension's own locals) before binding it at its own top level; a name rebound by a later cell
  belongs to that cell from then on.

Cells tagged ``parameters`` (papermill's) are meant to hold variables and are left out.
"""

from __future__ import annotations

import ast
import keyword
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from nbmedic.checks.rules import NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.notebook.cells import cell_tags, kernel_language_of, source_text
from nbmedic.notebook.imports import PYTHON_CELL_MAGICS, parse_cell, strip_magics

_CELL_MAGIC_RE = re.compile(r"\A\s*%%(\w+)")
_IPYTHON_LINE_RE = re.compile(r"^[ \t]*[%!]|\?[ \t]*$", re.MULTILINE)
_PARAMETER_TAGS = frozenset({"parameters", "injected-parameters"})
SHOWN_NAMES = 5  # names in the message


def _python_source(source: str) -> str | None:
    """The Python of a code cell: a Python cell magic's body (line numbers kept), None for ``%%bash``,
    ``%%writefile``, ``%%html``... (not Python, or Python written to a module)."""
    magic = _CELL_MAGIC_RE.match(source)
    if magic is None:
        return source
    if magic.group(1) not in PYTHON_CELL_MAGICS:
        return None
    _, _, body = source.lstrip().partition("\n")
    return "\n" + body


def _code_cells(ctx: NotebookContext) -> Iterator[tuple[int, dict[str, object], str]]:
    """(index, cell, Python source) of every code cell holding Python source."""
    for index, cell in ctx.iter_cells():
        if cell.get("cell_type") == "code":
            source = _python_source(source_text(cell))
            if source and not source.isspace():
                yield index, cell, source


# --- NB070: long cells -------------------------------------------------------------------------------

def code_lines(source: str) -> int:
    """Non-blank lines of ``source``."""
    return sum(1 for line in source.splitlines() if line and not line.isspace())


def check_long_cells(ctx: NotebookContext) -> Iterator[Finding]:
    """NB070: a code cell with more than ``max_cell_lines`` non-blank lines."""
    limit = ctx.config.max_cell_lines
    for index, _, source in _code_cells(ctx):
        if source.count("\n") < limit:  # at most `limit` lines in all
            continue
        lines = code_lines(source)
        if lines > limit:
            yield ctx.finding(
                "NB070", f"cell {index} has {lines:,} lines of code (not counting blank lines), over the "
                f"{limit:,}-line limit; a cell that long is hard to read, test and re-run",
                cell=index, evidence={"lines": lines, "limit": limit})


# --- NB071: hidden state -----------------------------------------------------------------------------

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_TRIES: tuple[type[ast.stmt], ...] = (ast.Try, ast.TryStar) if sys.version_info >= (3, 11) else (ast.Try,)


def _target_names(node: ast.expr | None) -> Iterator[str]:
    """Names an assignment target binds (``a``, ``a, (b, *c)``), not ``a.x`` or ``a[i]``."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, (ast.Tuple, ast.List)):
        for elt in node.elts:
            yield from _target_names(elt)
    elif isinstance(node, ast.Starred):
        yield from _target_names(node.value)


def _locals_of(node: ast.AST) -> set[str]:
    """Names local to a function, class or comprehension: its parameters and every name stored inside
    (nested scopes included: close enough), less those declared ``global``."""
    names: set[str] = set()
    declared: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
            names.add(sub.id)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.Global):
            declared.update(sub.names)
    return names - declared


@dataclass
class _Free:
    """The names an expression or statement loads from the module (free names), and the names its
    ``:=`` bind there."""

    loads: dict[str, None] = field(default_factory=dict)  # in the order first loaded
    walrus: list[str] = field(default_factory=list)

    def visit(self, node: ast.AST, *, top: bool = True) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.loads[node.id] = None
        elif isinstance(node, _SCOPES):
            self._scope(node)
        elif isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, top=top)
        else:
            if isinstance(node, ast.NamedExpr) and top:
                self.walrus.extend(_target_names(node.target))
            for child in ast.iter_child_nodes(node):
                self.visit(child, top=top)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp, *,
                       top: bool) -> None:
        """The first iterable is evaluated outside; the rest sees the module less the loop variables."""
        first = node.generators[0]
        self.visit(first.iter, top=top)
        inner = _Free()
        for child in ast.iter_child_nodes(node):
            parts = [child] if not isinstance(child, ast.comprehension) else \
                [child.target, *child.ifs] if child is first else [child.target, child.iter, *child.ifs]
            for part in parts:
                inner.visit(part, top=top)
        self._add(inner.loads, _locals_of(node))
        self.walrus.extend(inner.walrus)

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef) -> None:
        """Decorators, defaults, bases are evaluated outside; the body sees the module less its locals."""
        inner = _Free()
        if isinstance(node, ast.Lambda):
            outside: list[ast.AST] = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            inside: list[ast.AST] = [node.body]
        elif isinstance(node, ast.ClassDef):
            outside = [*node.decorator_list, *node.bases, *node.keywords]
            inside = list(node.body)
        else:
            outside = [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            inside = list(node.body)
        for child in outside:
            self.visit(child)
        for child in inside:
            inner.visit(child, top=False)
        self._add(inner.loads, _locals_of(node))

    def _add(self, loads: dict[str, None], local: set[str]) -> None:
        for name in loads:
            if name not in local:
                self.loads[name] = None


@dataclass
class _CellNames:
    """What one cell reads from earlier cells and binds at its top level (name -> is a variable)."""

    reads: dict[str, None] = field(default_factory=dict)  # in the order first read
    binds: dict[str, bool] = field(default_factory=dict)

    def load(self, node: ast.AST | None) -> list[str]:
        """Record what ``node`` reads before this cell binds it; return the names its ``:=`` bind."""
        if node is None:
            return []
        free = _Free()
        free.visit(node)
        self.reads.update((name, None) for name in free.loads if name not in self.binds)
        return free.walrus

    def bind(self, names: Iterable[str], *, variable: bool = True) -> None:
        for name in names:
            self.binds[name] = variable

    def statements(self, body: Iterable[ast.stmt]) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:  # long: one branch per kind of statement
        if isinstance(stmt, ast.Assign):
            walrus = self.load(stmt.value) + [n for t in stmt.targets for n in self.load(t)]
            self.bind([*walrus, *(n for t in stmt.targets for n in _target_names(t))])
        elif isinstance(stmt, ast.AugAssign):
            walrus = self.load(stmt.value) + self.load(stmt.target)
            names = list(_target_names(stmt.target))
            self.reads.update((n, None) for n in names if n not in self.binds)
            self.bind([*walrus, *names])
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.bind(self.load(stmt.value) + self.load(stmt.target) + list(_target_names(stmt.target)))
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            self.bind(self.load(stmt.iter) + list(_target_names(stmt.target)))
            self.statements(stmt.body)
            self.statements(stmt.orelse)
        elif isinstance(stmt, (ast.While, ast.If)):
            self.bind(self.load(stmt.test))
            self.statements(stmt.body)
            self.statements(stmt.orelse)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self.bind(self.load(item.context_expr) + list(_target_names(item.optional_vars)))
            self.statements(stmt.body)
        elif isinstance(stmt, _TRIES):
            tried = cast(ast.Try, stmt)  # ast.TryStar has the same fields
            self.statements(tried.body)
            for handler in tried.handlers:
                self.bind(self.load(handler.type))
                self.statements(handler.body)
            self.statements(tried.orelse)
            self.statements(tried.finalbody)
        elif isinstance(stmt, ast.Match):
            self.bind(self.load(stmt.subject))
            for case in stmt.cases:
                self.bind(self.load(case.guard))
                self.statements(case.body)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self.bind(((alias.asname or alias.name.partition(".")[0]) for alias in stmt.names if alias.name != "*"),
                      variable=False)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bind(self.load(stmt))
            self.bind([stmt.name], variable=False)
        elif not isinstance(stmt, (ast.Global, ast.Nonlocal, ast.Delete)):
            self.bind(self.load(stmt))


def _counted(name: str) -> bool:
    """A variable NB071 counts: not ``_`` and not an UPPER_CASE constant."""
    return name != "_" and not (name.isupper() and any(c.isalpha() for c in name))


@dataclass
class _Owner:
    cell: int
    variable: bool


def hidden_state(cells: Iterable[tuple[int, _CellNames]]) -> dict[int, tuple[list[str], list[int]]]:
    """For each cell whose top-level variables later cells read: (those names in the order first read,
    the later cells that read them)."""
    owner: dict[str, _Owner] = {}
    read: dict[int, tuple[dict[str, None], dict[int, None]]] = {}
    for index, names in cells:
        for name in names.reads:
            own = owner.get(name)
            if own is not None and own.variable and _counted(name):
                found, readers = read.setdefault(own.cell, ({}, {}))
                found[name] = None
                readers[index] = None
        for name, variable in names.binds.items():
            owner[name] = _Owner(index, variable)
    return {cell: (list(found), list(readers)) for cell, (found, readers) in read.items()}


# A name a cell may bind at top level: followed by `=`, `,`, `)`, `]`, `:` (annotation, `:=`), `in` or an
# augmented operator, or after `as`.  A superset (call arguments match too), so a cell with no more such
# names than the limit cannot fire and is never parsed.
_MAY_BIND_RE = re.compile(
    r"(?<![\w.])([^\W\d]\w*)\s*(?=[=,)\]:]|in\b|[-+*/%@&|^]=|//=|\*\*=|>>=|<<=)|\bas\s+([^\W\d]\w*)")


def may_bind_more(source: str, limit: int) -> bool:
    """Could ``source`` bind more than ``limit`` counted variables (a cheap, never-too-low estimate)?"""
    if source.count("=") + source.count(",") + source.count(" as ") + source.count(" in ") < 1:
        return False
    names = {a or b for a, b in _MAY_BIND_RE.findall(source)}
    return sum(1 for name in names if _counted(name) and not keyword.iskeyword(name)) > limit


def parse(source: str) -> ast.Module | None:
    """``parse_cell`` parsing once: IPython lines are neutralised first where there are some."""
    return parse_cell(strip_magics(source) if _IPYTHON_LINE_RE.search(source) else source)


def cell_names(source: str) -> _CellNames | None:
    """What a cell's Python reads from earlier cells and binds; None if it does not parse."""
    tree = parse(source)
    if tree is None:
        return None
    names = _CellNames()
    names.statements(tree.body)
    return names


def _relevant_cells(ctx: NotebookContext, limit: int) -> list[tuple[int, _CellNames]]:
    """The parsed cells NB071 must follow: from the first cell binding more than ``limit`` variables on,
    those binding that many and those mentioning one of their names (no other can read or rebind them);
    empty when no cell binds that many.  Cheap gates first: a regex estimate, then the parse."""
    cells = list(_code_cells(ctx))
    parsed: dict[int, _CellNames | None] = {}
    many: list[int] = []  # positions in `cells`
    interest: set[str] = set()
    for k, (_, _, source) in enumerate(cells):
        if may_bind_more(source, limit):
            names = parsed[k] = cell_names(source)
            variables = [] if names is None else [n for n, var in names.binds.items() if var and _counted(n)]
            if len(variables) > limit:
                many.append(k)
                interest.update(variables)
    if not many:
        return []
    mentions = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(interest))) + r")\b")
    out: list[tuple[int, _CellNames]] = []
    chosen = set(many)
    for k in range(many[0], len(cells)):
        index, _, source = cells[k]
        if k in chosen or mentions.search(source):
            names = parsed[k] if k in parsed else cell_names(source)
            if names is not None:
                out.append((index, names))
    return out


def check_hidden_state(ctx: NotebookContext) -> Iterator[Finding]:
    """NB071: a cell binding more than ``max_cell_names`` top-level variables that later cells read."""
    if not kernel_language_of(ctx.nb).lower().startswith("python"):
        return
    limit = ctx.config.max_cell_names
    relevant = _relevant_cells(ctx, limit)
    if not relevant:
        return
    parameters = {index for index, cell in ctx.iter_cells() if _PARAMETER_TAGS & set(cell_tags(cell))}
    found = hidden_state(relevant)
    for index in sorted(found):
        names, readers = found[index]
        if len(names) <= limit or index in parameters:
            continue
        shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
        where = f"cell {readers[0]}" if len(readers) == 1 else f"{len(readers)} later cells (from cell {readers[0]})"
        yield ctx.finding(
            "NB071", f"cell {index} defines {len(names)} top-level variables that {where} read ({shown}): "
            f"hidden state, over the limit of {limit}", cell=index,
            evidence={"names": names, "count": len(names), "limit": limit, "read_by": len(readers)})


RULES: RuleTable = [
    (("NB070",), check_long_cells),
    (("NB071",), check_hidden_state),
]
