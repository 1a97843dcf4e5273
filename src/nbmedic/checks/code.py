"""NB040-NB041: problems in the code cells' source, found statically (notebook code never runs).

NB040 looks for absolute home-directory paths with one regular expression over each code cell and
only then tells comments from code.  NB041 parses, with ``ast``, only the cells that mention
``import`` and asks the *kernel's* interpreter, in one subprocess per notebook and only for names
not already resolved during this run, whether ``importlib.util.find_spec`` finds each module.
"""

from __future__ import annotations

import ast
import bisect
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbmedic.findings import Finding

if TYPE_CHECKING:
    from nbmedic.checks.engine import CheckEnv, NotebookContext, Rule


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source")
    if isinstance(source, str):
        return source
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return ""


def _code_cells(ctx: NotebookContext) -> Iterator[tuple[int, str]]:
    for index, cell in ctx.iter_cells():
        if cell.get("cell_type") == "code":
            source = cell_source(cell)
            if source:
                yield index, source


# --- NB040: absolute local paths ------------------------------------------------------------------

_PATH_RE = re.compile(
    r"""
    (?<![\w.~/\\-])/(?:home|Users)/[A-Za-z0-9._-]+(?=[/'"\s]|$)[^'"\s]*     # /home/u/..., /Users/u/...
    | (?<![A-Za-z0-9])[A-Za-z]:(?:\\{1,2}|/)(?i:users)(?:\\{1,2}|/)[^\\/'"\n]+[^'"\n]*  # C:\Users\u\...
    """,
    re.VERBOSE,
)
MAX_PATHS = 10


def comment_spans(source: str) -> list[tuple[int, int]]:
    """(start, end) of every ``#`` comment, skipping strings (single, triple, raw, escaped quotes)."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "#":
            end = source.find("\n", i)
            end = n if end < 0 else end
            spans.append((i, end))
            i = end
        elif ch in "\"'":
            quote = ch * 3 if source.startswith(ch * 3, i) else ch
            i += len(quote)
            while i < n:
                c = source[i]
                if c == "\\":
                    i += 2
                elif source.startswith(quote, i):
                    i += len(quote)
                    break
                elif c == "\n" and len(quote) == 1:  # unterminated (a shell line's apostrophe)
                    break
                else:
                    i += 1
        else:
            i += 1
    return spans


def _in_spans(pos: int, spans: list[tuple[int, int]], starts: list[int]) -> bool:
    k = bisect.bisect_right(starts, pos) - 1
    return k >= 0 and spans[k][0] <= pos < spans[k][1]


def find_local_paths(source: str) -> list[tuple[int, str]]:
    """(line number, path) of absolute home-directory paths outside comments."""
    matches = list(_PATH_RE.finditer(source))
    if not matches:
        return []
    spans = comment_spans(source) if "#" in source else []
    starts = [s for s, _ in spans]
    found = []
    for m in matches:
        if not _in_spans(m.start(), spans, starts):
            found.append((source.count("\n", 0, m.start()) + 1, m.group(0).rstrip()[:300]))
    return found


def check_local_paths(ctx: NotebookContext) -> Iterator[Finding]:
    """NB040: one finding per code cell that uses absolute home-directory paths."""
    for index, source in _code_cells(ctx):
        found = find_local_paths(source)
        if not found:
            continue
        paths = list(dict.fromkeys(p for _, p in found))
        lines = sorted({n for n, _ in found})
        if len(paths) == 1:
            message = f"cell {index} uses the absolute path {paths[0]!r}, which exists only on one machine"
        else:
            shown = ", ".join(repr(p) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
            message = f"cell {index} uses {len(paths)} absolute paths ({shown}) that exist only on one machine"
        yield ctx.finding("NB040", message, cell=index,
                          evidence={"paths": paths[:MAX_PATHS], "lines": lines[:MAX_PATHS], "count": len(paths)})


# --- NB041: imports the kernel cannot resolve ---------------------------------------------------------

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

#: import name -> PyPI name, where they differ (for the fix line only)
PACKAGE_NAMES = {
    "sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "Pillow", "yaml": "PyYAML",
    "bs4": "beautifulsoup4", "skimage": "scikit-image", "dateutil": "python-dateutil",
    "dotenv": "python-dotenv", "Crypto": "pycryptodome", "OpenSSL": "pyOpenSSL", "serial": "pyserial",
    "jwt": "PyJWT", "docx": "python-docx", "pptx": "python-pptx", "fitz": "PyMuPDF", "attr": "attrs",
    "Bio": "biopython", "osgeo": "GDAL", "tensorflow_hub": "tensorflow-hub", "umap": "umap-learn",
    "magic": "python-magic", "Levenshtein": "python-Levenshtein", "igraph": "python-igraph",
}


@dataclass
class ImportScan:
    """The imports of one notebook's code cells, and what the notebook provides or installs itself."""

    modules: dict[str, list[int]] = field(default_factory=dict)  # top-level name -> cells, in order
    written: set[str] = field(default_factory=set)  # modules written by %%writefile
    installs: list[int] = field(default_factory=list)  # cells that pip/conda install


def _strip_magics(source: str) -> str:
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
            source = _strip_magics(source)
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


def scan_imports(ctx: NotebookContext) -> ImportScan:
    scan = ImportScan()
    for index, source in _code_cells(ctx):
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


_RESOLVE_SCRIPT = r"""
import importlib.util, json, os, sys
cwd = os.getcwd()
out = {}
for name in json.loads(sys.stdin.read()):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    if spec is None:
        out[name] = "missing"
        continue
    places = list(spec.submodule_search_locations or [])
    if spec.origin and spec.has_location:
        places.append(spec.origin)
    local = any(os.path.dirname(os.path.abspath(p)) == cwd for p in places)
    out[name] = "local" if local else "found"
sys.stdout.write(json.dumps(out))
"""
RESOLVE_TIMEOUT = 60.0
_CACHE_KEY = "nb041-importable"
_LOCAL_KEY = "nb041-local-modules"
_LOCAL_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pyw")


def local_modules(env: CheckEnv, folder: str) -> frozenset[str]:
    """Module names importable from ``folder`` itself (``foo.py``, ``foo/``, extension modules)."""
    cache: dict[str, frozenset[str]] = env.cache.setdefault(_LOCAL_KEY, {})
    if folder not in cache:
        names: set[str] = set()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        continue
                    if is_dir:
                        if name.isidentifier():
                            names.add(name)
                    elif name.endswith(_LOCAL_SUFFIXES):
                        stem = name.partition(".")[0]
                        if stem.isidentifier():
                            names.add(stem)
        except OSError:
            pass
        cache[folder] = frozenset(names)
    return cache[folder]


def _same_interpreter(path: str) -> bool:
    return os.path.normcase(os.path.abspath(path)) == os.path.normcase(os.path.abspath(sys.executable))


def resolve_modules(env: CheckEnv, interpreter: str, kernel_env: dict[str, str], folder: str,
                    names: list[str]) -> dict[str, bool] | None:
    """Which ``names`` the interpreter can import from ``folder``; None if it could not be asked."""
    all_cache: dict[str, dict[str, bool] | None] = env.cache.setdefault(_CACHE_KEY, {})
    key = interpreter + "\0" + json.dumps(kernel_env, sort_keys=True)
    if key not in all_cache:
        all_cache[key] = {}
    cache = all_cache[key]
    if cache is None:  # the interpreter failed before: do not pay for it again
        return None
    result: dict[str, bool] = {}
    unknown: list[str] = []
    same = _same_interpreter(interpreter) and not kernel_env
    for name in names:
        if name in cache:
            result[name] = cache[name]
        elif same and (name in sys.builtin_module_names
                       or (name in sys.stdlib_module_names and name in sys.modules)):
            result[name] = cache[name] = True
        else:
            unknown.append(name)
    if not unknown:
        return result
    run_env = {**os.environ, **kernel_env}
    try:
        proc = subprocess.run(
            [interpreter, "-c", _RESOLVE_SCRIPT], input=json.dumps(unknown), capture_output=True, text=True,
            cwd=folder, env=run_env, timeout=RESOLVE_TIMEOUT, check=False)
        answers = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        answers = None
    if not isinstance(answers, dict):
        all_cache[key] = None
        return None
    for name in unknown:
        state = answers.get(name)
        if state == "local":
            result[name] = True  # found in the notebook's folder only: not true elsewhere
        else:
            result[name] = cache[name] = state == "found"
    return result


def check_imports(ctx: NotebookContext) -> Iterator[Finding]:
    """NB041: imported modules the kernel's interpreter cannot find."""
    from nbmedic.checks.kernel import kernel_for, notebook_kernelspec

    spec = notebook_kernelspec(ctx)
    language = spec.get("language") if spec else None
    meta = ctx.nb.get("metadata")
    info = meta.get("language_info") if isinstance(meta, dict) else None
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        language = language or info["name"]
    if isinstance(language, str) and not language.lower().startswith("python"):
        return
    scan = scan_imports(ctx)
    candidates = [name for name in scan.modules if name not in scan.written]
    if not candidates:
        return
    kernel = kernel_for(ctx)
    if kernel is None or not (kernel.language or "python").startswith("python"):
        return  # not installed (NB031) or not a Python kernel
    interpreter = kernel.interpreter
    if interpreter is None:
        return
    folder = os.path.dirname(os.path.abspath(ctx.path))
    local = local_modules(ctx.env, folder)
    candidates = [name for name in candidates if name not in local]
    if not candidates:
        return
    resolved = resolve_modules(ctx.env, interpreter, kernel.env, folder, candidates)
    if resolved is None:
        return
    missing = [name for name in candidates if not resolved.get(name, True)]
    if not missing:
        return
    cells = sorted({c for name in missing for c in scan.modules[name]})
    first = min(scan.modules[name][0] for name in missing)
    where = f"cell {cells[0]}" if len(cells) == 1 else "cells " + ", ".join(map(str, cells[:5])) + (
        ", ..." if len(cells) > 5 else "")
    if len(missing) == 1:
        message = (f"{where} {'imports' if len(cells) == 1 else 'import'} `{missing[0]}`, which the kernel's "
                   f"Python ({interpreter}) cannot import")
    else:
        shown = ", ".join(f"`{m}`" for m in missing[:6]) + (", ..." if len(missing) > 6 else "")
        message = (f"{where} {'imports' if len(cells) == 1 else 'import'} {len(missing)} modules the kernel's "
                   f"Python ({interpreter}) cannot import: {shown}")
    packages = " ".join(PACKAGE_NAMES.get(m, m) for m in missing)
    evidence: dict[str, Any] = {
        "modules": missing, "cells": {m: scan.modules[m] for m in missing},
        "interpreter": interpreter, "kernel": kernel.name, "installs_in_notebook": scan.installs}
    if scan.installs:
        message += (f"; the notebook installs packages itself (cell {scan.installs[0]}), so they may be "
                    "present once it has run")
        fix = (f"run the install cell first, or install them into the kernel's environment: "
               f"`{shlex.quote(interpreter)} -m pip install {packages}`")
        yield ctx.finding("NB041", message, cell=first, evidence=evidence, severity="info", fix=fix)
    else:
        fix = (f"`%pip install {packages}` in the notebook (installs into the kernel's environment), or "
               f"`{shlex.quote(interpreter)} -m pip install {packages}`")
        yield ctx.finding("NB041", message, cell=first, evidence=evidence, fix=fix)


RULES: list[tuple[tuple[str, ...], Rule]] = [
    (("NB040",), check_local_paths),
    (("NB041",), check_imports),
]
