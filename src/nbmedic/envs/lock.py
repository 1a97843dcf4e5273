"""Environment locks: capture what a kernel's interpreter has installed, compare it later, export it.

The facts are always read *inside the interpreter that runs the notebook* (a small script run with
that Python, using ``importlib.metadata``), never from nbmedic's own environment.  A lock is a JSON
object, stored either in the notebook (``metadata.nbmedic.environment``) or in a lock file::

    {"format": "nbmedic-lock", "version": 1, "python": "3.11.7", "implementation": "cpython",
     "platform": "linux", "machine": "x86_64", "interpreter": "/path/bin/python",
     "imports_only": false, "packages": {"six": "1.16.0", ...}, "direct": {"mypkg": "file:///src"}}

Package names are normalized (PEP 503: lower case, runs of ``-_.`` as ``-``).  ``direct`` holds the
distributions installed from a URL or a local folder (not from an index); ``imports`` (with
``--imports-only``) maps each imported module to the distributions that provide it.  There is no
timestamp, so capturing an unchanged environment leaves the notebook byte-identical.

Findings of ``compare``: EN220 (a package missing or at another version: major -> error, minor ->
warning, patch -> info), EN221 (Python version), EN222 (platform), EN223 (unpinned entries).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbmedic.errors import NbmedicError, UsageError
from nbmedic.findings import Finding, Severity, make
from nbmedic.kernelspecs import Kernelspecs, read_kernelspecs
from nbmedic.notebook.cells import kernel_name_of
from nbmedic.notebook.imports import scan_imports
from nbmedic.notebook.io import (
    NotebookReadError,
    atomic_write_bytes,
    detect_newline,
    read_notebook,
    write_notebook,
)

LOCK_FORMAT = "nbmedic-lock"
LOCK_VERSION = 1
METADATA_KEY = "environment"  # under metadata.nbmedic
BOOTSTRAP = frozenset({"pip", "setuptools", "wheel", "distribute"})  # what `python -m venv` brings itself

# run with the kernel's interpreter: stdin {"imports": [modules] | null}, stdout one JSON object
_CAPTURE_SCRIPT = r"""
import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]  # a json.py or re.py next to the notebook must not break the query
import json, platform, re
import importlib.metadata as md
req = json.loads(sys.stdin.read() or "{}")
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
packages, direct = {}, {}
for dist in md.distributions():
    try:
        name = dist.metadata["Name"]
    except Exception:
        name = None
    if not name:
        continue
    key = norm(name)
    if key in packages:
        continue  # the first one on sys.path is the one imports get
    packages[key] = dist.version
    try:
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except Exception:
        info = None
    if isinstance(info, dict) and isinstance(info.get("url"), str):
        direct[key] = info["url"]
out = {"python": platform.python_version(), "implementation": sys.implementation.name,
       "platform": sys.platform, "machine": platform.machine(), "executable": sys.executable,
       "packages": packages, "direct": direct}
imports = req.get("imports")
if imports is not None:
    if hasattr(md, "packages_distributions"):
        provided = md.packages_distributions()
    else:  # Python < 3.10: top_level.txt, else the top folders and modules of RECORD
        provided = {}
        for dist in md.distributions():
            names = (dist.read_text("top_level.txt") or "").split()
            if not names:
                names = {f.parts[0][:-3] if f.parts[0].endswith(".py") else f.parts[0]
                         for f in (dist.files or []) if f.parts and not f.parts[0].endswith(".dist-info")}
            for top in names:
                provided.setdefault(top, []).append(dist.metadata["Name"])
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    out["imports"] = {m: sorted({norm(d) for d in provided.get(m, [])}) for m in imports}
    out["unresolved"] = sorted(m for m in imports if not provided.get(m) and m not in stdlib
                               and m not in sys.builtin_module_names)
json.dump(out, sys.stdout)
"""


def normalize(name: str) -> str:
    """PEP 503 name: ``packaging.utils.canonicalize_name`` (imported on use: it pulls in packaging.tags)."""
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


# --- the interpreter ------------------------------------------------------------------------------

def resolve_python(python: str) -> str:
    """``--python`` as given: a path, or a command looked up on PATH; UsageError if neither."""
    if os.sep in python or (os.altsep and os.altsep in python):
        if not os.path.isfile(python):
            raise UsageError(f"--python {python}: no such file")
        return python
    found = shutil.which(python)
    if found is None:
        raise UsageError(f"--python {python}: not found on PATH")
    return found


@dataclass(frozen=True)
class KernelPython:
    """The interpreter a lock is read from: the kernel's (with its options and environment) or --python."""

    python: str
    flags: tuple[str, ...] = ()
    environ: Mapping[str, str] | None = None  # the kernel's whole environment; None: nbmedic's own


def kernel_interpreter(path: Path, nb: Mapping[str, Any], specs: Kernelspecs | None = None) -> KernelPython:
    """The Python that runs this notebook's kernel (``Kernelspec.interpreter``, the rule every layer
    uses), with its interpreter options and environment; NbmedicError (one line) when there is none."""
    name = kernel_name_of(nb)
    spec = (specs if specs is not None else read_kernelspecs()).get(name)
    if spec is None:
        raise NbmedicError(f"{path}: the kernel {name!r} is not installed here; pass --python INTERPRETER")
    interp = spec.interpreter
    if interp.python is None:
        what = interp.argv0 or "(empty argv)"
        raise NbmedicError(f"{path}: cannot tell which Python the kernel {spec.name!r} runs: {what} "
                           f"{interp.problem}; pass --python INTERPRETER")
    return KernelPython(interp.python, interp.flags, spec.environ())


def query_interpreter(python: str, imports: list[str] | None = None, *, env: Mapping[str, str] | None = None,
                      cwd: str | None = None, timeout: float = 120, flags: Sequence[str] = ()) -> dict[str, Any]:
    """Run the capture script in ``python`` as a kernel would run (with its interpreter ``flags``, in its
    whole environment ``env`` — default os.environ — and in the notebook's folder: user site-packages and
    PYTHONPATH count); NbmedicError (one line) if it cannot."""
    payload = json.dumps({"imports": imports})
    full_env = dict(os.environ if env is None else env)
    full_env.pop("PYTHONSTARTUP", None)
    try:
        proc = subprocess.run([python, *flags, "-c", _CAPTURE_SCRIPT], check=False, input=payload,
                              capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    except FileNotFoundError:
        raise NbmedicError(f"the interpreter {python} does not exist") from None
    except PermissionError:
        raise NbmedicError(f"the interpreter {python} is not executable") from None
    except subprocess.TimeoutExpired:
        raise NbmedicError(f"the interpreter {python} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise NbmedicError(f"the interpreter {python} cannot run: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise NbmedicError(f"cannot read the installed packages of {python}: {last}")
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise NbmedicError(f"{python} is not a Python this nbmedic can query (it printed no JSON)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("packages"), dict):
        raise NbmedicError(f"{python} answered the package query with something unexpected")
    return doc


def capture(python: str, imports: list[str] | None = None, *, env: Mapping[str, str] | None = None,
            cwd: str | None = None, flags: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """The lock for ``python`` (only the providers of ``imports`` if given) and the imports no
    installed distribution provides (stdlib excluded); ``env`` and ``flags`` as ``query_interpreter``."""
    facts = query_interpreter(python, imports, env=env, cwd=cwd, flags=flags)
    packages: dict[str, str] = {str(k): str(v) for k, v in facts["packages"].items()}
    direct: dict[str, str] = {str(k): str(v) for k, v in (facts.get("direct") or {}).items()}
    lock: dict[str, Any] = {
        "format": LOCK_FORMAT, "version": LOCK_VERSION,
        "python": str(facts.get("python", "")), "implementation": str(facts.get("implementation", "")),
        "platform": str(facts.get("platform", "")), "machine": str(facts.get("machine", "")),
        "interpreter": str(facts.get("executable") or python),
        "imports_only": imports is not None,
    }
    unresolved: list[str] = []
    if imports is not None:
        providers: dict[str, list[str]] = {
            str(m): [str(d) for d in ds] for m, ds in facts.get("imports", {}).items()}
        keep = {d for ds in providers.values() for d in ds if d in packages}
        packages = {k: v for k, v in packages.items() if k in keep}
        direct = {k: v for k, v in direct.items() if k in keep}
        lock["imports"] = {m: ds for m, ds in sorted(providers.items()) if ds}
        unresolved = [str(m) for m in facts.get("unresolved", [])]
    lock["packages"] = dict(sorted(packages.items()))
    lock["direct"] = dict(sorted(direct.items()))
    return lock, unresolved


def notebook_imports(path: Path, nb: dict[str, Any], data: bytes) -> list[str]:
    """The top-level modules the notebook's code cells import (``scan_imports``), minus those it writes."""
    scan = scan_imports(nb)
    return sorted(m for m in scan.modules if m not in scan.written)


# --- where locks live -----------------------------------------------------------------------------

def is_notebook(path: Path) -> bool:
    return path.suffix.lower() == ".ipynb"


def read_nb(path: Path) -> tuple[dict[str, Any], bytes]:
    """Read a notebook; UsageError (one line) if it is missing or not a notebook."""
    try:
        return read_notebook(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such notebook") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a notebook") from None
    except NotebookReadError as exc:
        raise UsageError(f"{path}: not a readable notebook: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def lock_in_notebook(nb: Mapping[str, Any]) -> Any:
    meta = nb.get("metadata")
    section = meta.get("nbmedic") if isinstance(meta, dict) else None
    return section.get(METADATA_KEY) if isinstance(section, dict) else None


def validate(doc: Any, where: str) -> dict[str, Any]:
    """Check a lock's shape; UsageError naming ``where`` if it is not one this nbmedic reads."""
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: not an nbmedic environment lock (expected a JSON object)")
    if doc.get("format") != LOCK_FORMAT:
        raise UsageError(f"{where}: not an nbmedic environment lock (no \"format\": \"{LOCK_FORMAT}\")")
    version = doc.get("version")
    if not isinstance(version, int) or version > LOCK_VERSION:
        raise UsageError(f"{where}: lock version {version!r} is not supported "
                         f"(this nbmedic reads {LOCK_VERSION})")
    packages = doc.get("packages")
    if not isinstance(packages, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in packages.items()):
        raise UsageError(f"{where}: \"packages\" must map names to version strings")
    direct = doc.get("direct")
    if direct is not None and not (isinstance(direct, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in direct.items())):
        raise UsageError(f"{where}: \"direct\" must map names to URLs")
    for key in ("python", "platform", "machine", "implementation"):
        if not isinstance(doc.get(key, ""), str):
            raise UsageError(f"{where}: \"{key}\" must be a string")
    return doc


def read_lock_file(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such lock file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a lock file") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"{path}: not a lock file (JSON nested too deeply to read)") from None
    return validate(doc, str(path))


def load_lock(path: Path) -> dict[str, Any]:
    """The lock in a notebook (``*.ipynb``) or a lock file; UsageError if there is none."""
    if is_notebook(path):
        nb, _ = read_nb(path)
        doc = lock_in_notebook(nb)
        if doc is None:
            raise UsageError(f"{path}: no environment lock in its metadata "
                             f"(`nbmedic env capture {path}` records one)")
        return validate(doc, f"{path} metadata.nbmedic.{METADATA_KEY}")
    return read_lock_file(path)


def dump_lock(lock: Mapping[str, Any]) -> bytes:
    return (json.dumps(lock, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_lock_file(path: Path, lock: Mapping[str, Any]) -> bool:
    try:
        return atomic_write_bytes(path, dump_lock(lock))
    except OSError as exc:
        raise NbmedicError(f"{path}: cannot write the lock: {exc.strerror or exc}") from None


def store_in_notebook(path: Path, nb: dict[str, Any], data: bytes, lock: Mapping[str, Any]) -> bool:
    """Set ``metadata.nbmedic.environment`` and rewrite the notebook canonically and atomically."""
    meta = nb.get("metadata")
    if not isinstance(meta, dict):
        meta = nb["metadata"] = {}
    section = meta.get("nbmedic")
    if not isinstance(section, dict):
        section = meta["nbmedic"] = {}
    section[METADATA_KEY] = dict(lock)
    try:
        return write_notebook(path, nb, detect_newline(data))
    except OSError as exc:
        raise NbmedicError(f"{path}: cannot write the notebook: {exc.strerror or exc}") from None


# --- compare --------------------------------------------------------------------------------------

def _release(version: str) -> tuple[int, ...] | None:
    """The release numbers of a version (``packaging``; a version it rejects: its leading digits)."""
    from packaging.version import InvalidVersion, Version

    try:
        return tuple(Version(version).release)
    except InvalidVersion:
        pass
    parts: list[int] = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if m is None:
            break
        parts.append(int(m.group()))
        if m.end() != len(piece):
            break
    return tuple(parts) or None


def version_level(locked: str, installed: str) -> str:
    """Which part differs first: ``major``, ``minor``, ``patch`` (or a pre/post/local part) or ``same``."""
    if locked == installed:
        return "same"
    a, b = _release(locked), _release(installed)
    if a is None or b is None:
        return "major"  # cannot compare: assume the worst
    width = max(len(a), len(b), 3)
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    if a[0] != b[0]:
        return "major"
    if a[1] != b[1]:
        return "minor"
    return "patch"


_LEVEL_SEVERITY: dict[str, Severity] = {"major": "error", "minor": "warning", "patch": "info"}


def unpinned(lock: Mapping[str, Any]) -> list[str]:
    packages = lock.get("packages") or {}
    return sorted(k for k, v in packages.items()
                  if not isinstance(v, str) or not v.strip() or v.strip() == "*")


def compare(lock: Mapping[str, Any], current: Mapping[str, Any], path: str | None, *,
            lock_source: str | None = None) -> list[Finding]:
    """EN220-EN223: how the environment ``current`` (a capture) differs from ``lock``."""
    findings: list[Finding] = []
    where = lock_source or path
    installed: Mapping[str, str] = current.get("packages") or {}
    interpreter = current.get("interpreter") or current.get("executable")
    loose = unpinned(lock)
    if loose:
        findings.append(make(
            "EN223", path, f"the environment lock has {len(loose)} unpinned package(s): {', '.join(loose)}",
            evidence={"unpinned": loose, "lock": where}))
    missing_severity: Severity = "error" if lock.get("imports_only") else "warning"
    for name, locked in sorted((lock.get("packages") or {}).items()):
        key = normalize(name)
        if name in loose:
            continue
        now = installed.get(key)
        evidence: dict[str, Any] = {"package": key, "locked": locked, "installed": now,
                                    "interpreter": interpreter}
        if now is None:
            findings.append(make(
                "EN220", path, f"{key} {locked} is locked but not installed in the kernel's environment",
                evidence={**evidence, "difference": "missing"}, severity=missing_severity,
                fix=f"install it: `{interpreter or 'python'} -m pip install {key}=={locked}` "
                    "(or `nbmedic env rebuild`)"))
            continue
        level = version_level(locked, now)
        if level == "same":
            continue
        severity = _LEVEL_SEVERITY[level]
        if key in BOOTSTRAP and not lock.get("imports_only"):
            severity = "info"  # every venv brings its own pip/setuptools/wheel; `env rebuild` keeps them
        findings.append(make(
            "EN220", path,
            f"{key} is {now} in the kernel's environment but {locked} in the lock ({level} version differs)",
            evidence={**evidence, "difference": level}, severity=severity,
            fix=f"install the locked version: `{interpreter or 'python'} -m pip install {key}=={locked}` "
                "(or `nbmedic env rebuild`, or `nbmedic env capture` if the new version is intended)"))
    findings.extend(_python_findings(lock, current, path))
    lock_plat = (lock.get("platform") or "", lock.get("machine") or "")
    now_plat = (current.get("platform") or "", current.get("machine") or "")
    if all(lock_plat) and lock_plat != now_plat:
        findings.append(make(
            "EN222", path,
            f"the lock was captured on {' '.join(lock_plat)}, the kernel runs on {' '.join(now_plat)}",
            evidence={"locked": {"platform": lock_plat[0], "machine": lock_plat[1]},
                      "current": {"platform": now_plat[0], "machine": now_plat[1]}}))
    return findings


def drift_findings(path: Path, nb: dict[str, Any], *, python: str | None = None,
                   require_lock: bool = False, specs: Kernelspecs | None = None) -> list[Finding]:
    """EN220-EN223 for a notebook against its own lock (``metadata.nbmedic.environment``): what
    ``nbmedic run``/``doctor`` call before executing.  No lock: [] (EN223 if ``require_lock``).
    Raises NbmedicError/UsageError (one line) if the interpreter cannot be queried or the lock is bad."""
    raw = lock_in_notebook(nb)
    if raw is None:
        if not require_lock:
            return []
        return [make("EN223", str(path), "the notebook has no environment lock although "
                     "[tool.nbmedic] require-lock = true")]
    lock = validate(raw, f"{path} metadata.nbmedic.{METADATA_KEY}")
    kernel = KernelPython(python) if python else kernel_interpreter(path, nb, specs)
    current, _ = capture(kernel.python, env=kernel.environ, flags=kernel.flags, cwd=str(path.parent.absolute()))
    return compare(lock, current, str(path))


def _python_findings(lock: Mapping[str, Any], current: Mapping[str, Any], path: str | None) -> list[Finding]:
    locked, now = str(lock.get("python") or ""), str(current.get("python") or "")
    impl_locked, impl_now = str(lock.get("implementation") or ""), str(current.get("implementation") or "")
    evidence = {"locked": locked, "current": now,
                "implementation": {"locked": impl_locked, "current": impl_now},
                "interpreter": current.get("interpreter") or current.get("executable")}
    if impl_locked and impl_now and impl_locked != impl_now:
        return [make("EN221", path,
                     f"the lock was captured with {impl_locked} {locked}, the kernel runs {impl_now} {now}",
                     evidence=evidence)]
    if not locked or not now or locked == now:
        return []
    level = version_level(locked, now)
    severity: Severity = {"major": "error", "minor": "warning"}.get(level, "info")  # type: ignore[assignment]
    what = "Python version" if level != "patch" else "Python patch release"
    return [make("EN221", path,
                 f"the kernel runs Python {now}, the lock has Python {locked} ({what} differs)",
                 evidence={**evidence, "difference": level}, severity=severity)]


# --- export ---------------------------------------------------------------------------------------

def _requirement(name: str, version: str, direct: Mapping[str, str]) -> str:
    url = direct.get(name)
    if url and not url.startswith("file:"):
        return f"{name} @ {url}"
    return f"{name}=={version}"


def export_requirements(lock: Mapping[str, Any]) -> str:
    direct: Mapping[str, str] = lock.get("direct") or {}
    header = (f"# nbmedic env export: Python {lock.get('python') or '?'} "
              f"({lock.get('implementation') or '?'}) "
              f"on {lock.get('platform') or '?'} {lock.get('machine') or '?'}")
    lines = [header]
    for name, version in sorted((lock.get("packages") or {}).items()):
        if not isinstance(version, str) or not version.strip() or version == "*":
            lines.append(name)
        elif (direct.get(name) or "").startswith("file:"):
            lines.append(f"# {name}=={version}  (installed from {direct[name]}, not from an index)")
        else:
            lines.append(_requirement(name, version, direct))
    return "\n".join(lines) + "\n"


def export_environment_yml(lock: Mapping[str, Any], name: str) -> str:
    import yaml

    direct: Mapping[str, str] = lock.get("direct") or {}
    pins: list[str] = []
    for pkg, version in sorted((lock.get("packages") or {}).items()):
        if (direct.get(pkg) or "").startswith("file:"):
            continue
        pins.append(pkg if not isinstance(version, str) or not version.strip() or version == "*"
                    else _requirement(pkg, version, direct))
    python = ".".join(str(lock.get("python") or "").split(".")[:2])
    deps: list[Any] = [f"python={python}" if python else "python", "pip"]
    if pins:
        deps.append({"pip": pins})
    doc = {"name": name, "channels": ["conda-forge"], "dependencies": deps}
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def describe(lock: Mapping[str, Any]) -> str:
    n = len(lock.get("packages") or {})
    return (f"Python {lock.get('python') or '?'} ({lock.get('implementation') or '?'}, "
            f"{lock.get('platform') or '?'} {lock.get('machine') or '?'}), {n} distribution(s)")


def current_python() -> str:
    return sys.executable
