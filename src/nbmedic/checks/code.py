"""NB040-NB041: problems in the code cells' source, found statically (notebook code never runs).

NB040 looks for absolute home-directory paths with one regular expression over each code cell and
only then tells comments from code.  NB041 parses, with ``ast``, only the cells that mention
``import`` and asks the *kernel's* interpreter (``Kernelspec.interpreter``, the rule every layer uses)
whether it can import each module: ``nbmedic.envs.importable`` asks it once per interpreter and state of
its environment and remembers the answer on disk, so a warm run starts no subprocess.
"""

from __future__ import annotations

import bisect
import os
import re
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from nbmedic.checks.kernel import kernel_for
from nbmedic.checks.rules import CheckEnv, NotebookContext, RuleTable
from nbmedic.envs.importable import ImportProber
from nbmedic.findings import Finding
from nbmedic.kernelspecs import Kernelspec
from nbmedic.notebook.cells import kernel_language_of
from nbmedic.notebook.imports import ImportScan, code_cells, scan_imports

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
    for index, source in code_cells(ctx.nb):
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

#: import name -> PyPI name, where they differ (for the fix line only)
PACKAGE_NAMES = {
    "sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "Pillow", "yaml": "PyYAML",
    "bs4": "beautifulsoup4", "skimage": "scikit-image", "dateutil": "python-dateutil",
    "dotenv": "python-dotenv", "Crypto": "pycryptodome", "OpenSSL": "pyOpenSSL", "serial": "pyserial",
    "jwt": "PyJWT", "docx": "python-docx", "pptx": "python-pptx", "fitz": "PyMuPDF", "attr": "attrs",
    "Bio": "biopython", "osgeo": "GDAL", "tensorflow_hub": "tensorflow-hub", "umap": "umap-learn",
    "magic": "python-magic", "Levenshtein": "python-Levenshtein", "igraph": "python-igraph",
}


_PROBER_KEY = "nb041-prober"
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


def import_prober(env: CheckEnv) -> ImportProber:
    """The command's import prober (memory and disk cache of what each interpreter can import)."""
    prober = env.cache.get(_PROBER_KEY)
    if not isinstance(prober, ImportProber):
        prober = env.cache[_PROBER_KEY] = ImportProber()
    return prober


def resolve_modules(env: CheckEnv, kernel: Kernelspec, folder: str, names: list[str]) -> dict[str, bool] | None:
    """Which ``names`` the kernel's interpreter can import (the notebook's folder apart); None if it could
    not be asked.  Built-in and already-imported stdlib modules of nbmedic's own interpreter are answered
    here, the rest by ``ImportProber`` (one subprocess per interpreter and environment state)."""
    python = kernel.interpreter.python
    if python is None:
        return None
    flags = kernel.interpreter.flags
    same = _same_interpreter(python) and not flags and not kernel.env
    result: dict[str, bool] = {}
    unknown: list[str] = []
    for name in names:
        if same and (name in sys.builtin_module_names
                     or (name in sys.stdlib_module_names and name in sys.modules)):
            result[name] = True
        else:
            unknown.append(name)
    if unknown:
        answers = import_prober(env).importable(python, unknown, flags=flags, environ=kernel.environment,
                                                cwd=folder)
        if answers is None:
            return None
        result.update(answers)
    return result


def _python_notebook(nb: dict[str, Any]) -> bool:
    return kernel_language_of(nb).lower().startswith("python")


def check_imports(ctx: NotebookContext) -> Iterator[Finding]:
    """NB041: imported modules the kernel's interpreter cannot find."""
    if not _python_notebook(ctx.nb):
        return
    scan = scan_imports(ctx.nb)
    candidates = [name for name in scan.modules if name not in scan.written]
    if not candidates:
        return
    kernel = kernel_for(ctx.nb, ctx.env)
    if kernel is None or kernel.interpreter.python is None:
        return  # not installed (NB031), not a Python kernel, or a Python nobody can name (EN200)
    folder = os.path.dirname(os.path.abspath(ctx.path))
    local = local_modules(ctx.env, folder)
    candidates = [name for name in candidates if name not in local]
    if not candidates:
        return
    resolved = resolve_modules(ctx.env, kernel, folder, candidates)
    if resolved is None:
        return
    missing = [name for name in candidates if not resolved.get(name, True)]
    if missing:
        yield _missing_finding(ctx, scan, missing, kernel.interpreter.python, kernel.name)


def _missing_finding(ctx: NotebookContext, scan: ImportScan, missing: list[str], interpreter: str,
                     kernel: str) -> Finding:
    cells = sorted({c for name in missing for c in scan.modules[name]})
    first = min(scan.modules[name][0] for name in missing)
    where = f"cell {cells[0]}" if len(cells) == 1 else "cells " + ", ".join(map(str, cells[:5])) + (
        ", ..." if len(cells) > 5 else "")
    verb = "imports" if len(cells) == 1 else "import"
    if len(missing) == 1:
        message = f"{where} {verb} `{missing[0]}`, which the kernel's Python ({interpreter}) cannot import"
    else:
        shown = ", ".join(f"`{m}`" for m in missing[:6]) + (", ..." if len(missing) > 6 else "")
        message = (f"{where} {verb} {len(missing)} modules the kernel's Python ({interpreter}) cannot "
                   f"import: {shown}")
    packages = " ".join(PACKAGE_NAMES.get(m, m) for m in missing)
    evidence: dict[str, Any] = {
        "modules": missing, "cells": {m: scan.modules[m] for m in missing},
        "interpreter": interpreter, "kernel": kernel, "installs_in_notebook": scan.installs}
    if scan.installs:
        message += (f"; the notebook installs packages itself (cell {scan.installs[0]}), so they may be "
                    "present once it has run")
        fix = (f"run the install cell first, or install them into the kernel's environment: "
               f"`{shlex.quote(interpreter)} -m pip install {packages}`")
        return ctx.finding("NB041", message, cell=first, evidence=evidence, severity="info", fix=fix)
    fix = (f"`%pip install {packages}` in the notebook (installs into the kernel's environment), or "
           f"`{shlex.quote(interpreter)} -m pip install {packages}`")
    return ctx.finding("NB041", message, cell=first, evidence=evidence, fix=fix)


RULES: RuleTable = [
    (("NB040",), check_local_paths),
    (("NB041",), check_imports),
]
