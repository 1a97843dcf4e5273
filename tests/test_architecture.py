"""The shape of the source tree: one way down (no import cycles), nbmedic's own modules imported at the
top of each module, and short functions.  ARCHITECTURE.md describes the layers these tests guard."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "nbmedic"
MAX_FUNCTION_LINES = 60
# Lazy on purpose, to keep start-up light: the CLI imports a command's module only to run it, and the
# packages export run_notebook (PEP 562 __getattr__) without importing the kernel machinery.
LAZY_OWN_IMPORTS = {"nbmedic", "nbmedic.cli", "nbmedic.execute"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, *, in_function: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement and whether it sits inside a function (``if TYPE_CHECKING`` skipped)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _imports(node, in_function=inner)


def _targets(node: ast.stmt, modules: dict[str, Path]) -> list[str]:
    """The nbmedic modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return [n for n in names if n.split(".")[0] == "nbmedic" and n in modules]


def _graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    lazy: dict[str, list[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, in_function in _imports(tree):
            targets = _targets(node, modules)
            graph[name].update(t for t in targets if t != name)
            if in_function and targets and name not in LAZY_OWN_IMPORTS:
                lazy.setdefault(name, []).extend(f"line {node.lineno}: {t}" for t in targets)
    return graph, lazy


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle() -> None:
    graph, _ = _graph()
    assert len(graph) > 50  # the walk really found the package
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_own_modules_are_imported_at_module_top() -> None:
    _, lazy = _graph()
    assert lazy == {}, "nbmedic modules imported inside functions (import them at the top): " + repr(lazy)


def _long_functions() -> Iterator[str]:
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                head = "\n".join(lines[max(0, node.lineno - 3): node.lineno + 2])
                if length > MAX_FUNCTION_LINES and "# long:" not in head:
                    yield f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)"


def test_functions_are_short_or_say_why() -> None:
    long = list(_long_functions())
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines without a `# long: reason` comment: {long}"
