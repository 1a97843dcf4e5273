"""NB040-NB041: problems in the code cells' source, found statically (notebook code never runs).

NB040 looks for absolute home-directory paths with one regular expression over each code cell and
only then tells comments from code.  NB041 parses, with ``ast``, only the cells that mention
``import`` and asks the *kernel's* interpreter, in one subprocess per notebook and only for names
not already resolved during this run, whether ``importlib.util.find_spec`` finds each module.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from nbmedic.checks.kernel import kernel_for, notebook_kernelspec
from nbmedic.checks.rules import CheckEnv, NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.notebook.imports import code_cells, scan_imports

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
    spec = notebook_kernelspec(ctx.nb)
    language = spec.get("language") if spec else None
    meta = ctx.nb.get("metadata")
    info = meta.get("language_info") if isinstance(meta, dict) else None
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        language = language or info["name"]
    if isinstance(language, str) and not language.lower().startswith("python"):
        return
    scan = scan_imports(ctx.nb)
    candidates = [name for name in scan.modules if name not in scan.written]
    if not candidates:
        return
    kernel = kernel_for(ctx.nb, ctx.env)
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


RULES: RuleTable = [
    (("NB040",), check_local_paths),
    (("NB041",), check_imports),
]
