"""Interpreter probes: which Python a kernel really runs, and what else competes with it.

* EN210: the ``pip`` (``python``, ``jupyter``) first on PATH belongs to another interpreter than the
  kernel's, so ``!pip install`` lands elsewhere;
* EN211: user-site packages shadow the kernel environment's packages;
* EN212: a kernelspec whose argv[0] is ``python``/``python3``/``pythonX.Y`` is rewritten by
  jupyter_client to the *server's* ``sys.executable``.

Which interpreter a kernelspec runs is decided by ``nbmedic.kernelspecs`` (one rule for every layer);
facts about an interpreter are asked of the interpreter itself (one short subprocess, with the kernel's
interpreter options and environment).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbmedic.findings import Finding, make
from nbmedic.kernelspecs import is_rewritten_python

__all__ = ["InterpreterFacts", "interpreter_facts", "is_rewritten_python", "path_tool_findings",
           "rewrite_finding", "tool_interpreter", "user_site_findings"]

_FACTS_SCRIPT = r"""
import json, os, re, site, sys
out = {"executable": sys.executable, "prefix": sys.prefix,
       "base_prefix": getattr(sys, "base_prefix", sys.prefix),
       "version": "%d.%d.%d" % tuple(sys.version_info[:3])}
try:
    import importlib.util
    out["ipykernel"] = importlib.util.find_spec("ipykernel") is not None
except Exception:
    out["ipykernel"] = False
try:
    out["enable_user_site"] = bool(site.ENABLE_USER_SITE)
    out["user_site"] = site.getusersitepackages()
except Exception:
    out["enable_user_site"], out["user_site"] = False, None
try:
    sp = list(site.getsitepackages())
except Exception:
    sp = [p for p in sys.path if p.endswith("site-packages")]
out["site_packages"] = sp
def dists(paths):
    paths = [p for p in paths if p and os.path.isdir(p)]
    if not paths:
        return {}
    try:
        from importlib.metadata import distributions
    except ImportError:
        return {}
    found = {}
    for d in distributions(path=paths):
        name = d.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), d.version)
    return found
user = dists([out["user_site"]]) if out["enable_user_site"] else {}
out["user_dists"] = user
out["env_dists"] = dists(sp) if user else {}
print(json.dumps(out))
"""

_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?")


@dataclass(frozen=True)
class InterpreterFacts:
    """What an interpreter says about itself."""

    executable: str
    prefix: str
    version: str
    ipykernel: bool
    enable_user_site: bool
    user_site: str | None
    site_packages: list[str] = field(default_factory=list)
    user_dists: dict[str, str] = field(default_factory=dict)
    env_dists: dict[str, str] = field(default_factory=dict)


def interpreter_facts(python: str, *, env: Mapping[str, str] | None = None, flags: Sequence[str] = (),
                      timeout: float = 20.0) -> InterpreterFacts | str:
    """Ask ``python`` (with the kernel's interpreter ``flags``, in the kernel's whole environment ``env``,
    default os.environ) about itself; an error message (str) when it cannot answer."""
    full_env = dict(os.environ if env is None else env)
    try:
        proc = subprocess.run([python, *flags, "-c", _FACTS_SCRIPT], capture_output=True, text=True,
                              timeout=timeout, env=full_env, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return f"{python} did not answer within {timeout:g} s"
    except OSError as exc:
        return f"{python} cannot run: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        return f"{python} exited with code {proc.returncode}" + (f": {tail[-1]}" if tail else "")
    try:
        data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"{python} printed no facts (is it a Python interpreter?)"
    return InterpreterFacts(
        executable=str(data.get("executable") or python), prefix=str(data.get("prefix") or ""),
        version=str(data.get("version") or ""), ipykernel=bool(data.get("ipykernel")),
        enable_user_site=bool(data.get("enable_user_site")), user_site=data.get("user_site"),
        site_packages=[str(p) for p in data.get("site_packages") or []],
        user_dists={str(k): str(v) for k, v in (data.get("user_dists") or {}).items()},
        env_dists={str(k): str(v) for k, v in (data.get("env_dists") or {}).items()})


# --- EN212 ------------------------------------------------------------------------------------------

def rewrite_finding(name: str, argv: Sequence[str], *, path: str | None = None,
                    server_python: str | None = None) -> Finding | None:
    """EN212 when the kernelspec's argv[0] is rewritten to the server's interpreter."""
    if not argv or not is_rewritten_python(argv[0]):
        return None
    server = server_python or sys.executable
    on_path = shutil.which(argv[0])
    return make("EN212", path,
                f"the kernelspec {name!r} runs {argv[0]!r}, which Jupyter replaces by the server's interpreter "
                f"{server}: the kernel is whatever environment the server runs in, not the one the spec's "
                "author meant", evidence={"kernel": name, "argv0": argv[0], "server_python": server,
                                          "python_on_path": on_path})


# --- EN210 ------------------------------------------------------------------------------------------

def _shebang(path: str) -> list[str]:
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1024)
    except OSError:
        return []
    if not first.startswith(b"#!"):
        return []
    return first[2:].decode("utf-8", "replace").strip().split()


def tool_interpreter(tool_path: str, *, path: str | None = None) -> str | None:
    """The Python interpreter that runs ``tool_path``: itself for ``python*``, else its shebang's."""
    if _PYTHON_NAME.fullmatch(os.path.basename(tool_path)):
        return tool_path
    parts = _shebang(tool_path)
    if not parts:
        return None
    interp = parts[0]
    if os.path.basename(interp) == "env":
        rest = [p for p in parts[1:] if not p.startswith("-") and "=" not in p]
        if not rest:
            return None
        interp = shutil.which(rest[0], path=path) or rest[0]
    if not os.path.basename(interp).startswith("python"):
        return None
    return interp


_prefix_cache: dict[str, str | None] = {}


def _prefix_of(python: str) -> str | None:
    if python in _prefix_cache:
        return _prefix_cache[python]
    try:
        proc = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                              timeout=15, stdin=subprocess.DEVNULL, check=False)
        prefix = proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        prefix = None
    _prefix_cache[python] = prefix
    return prefix


def _pip_location(pip: str) -> str | None:
    """``pip --version``: 'pip 24.0 from /x/lib/python3.11/site-packages/pip (python 3.11)' → the folder."""
    try:
        proc = subprocess.run([pip, "--version"], capture_output=True, text=True, timeout=15,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r" from (.+?) \(python", proc.stdout)
    return m.group(1) if m else None


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def path_tool_findings(kernel_name: str, kernel_prefix: str, *, kernel_python: str | None = None,
                       path: str | None = None, where: str | None = None,
                       tools: Sequence[str] = ("pip", "python", "jupyter")) -> list[Finding]:
    """EN210: the tools first on PATH (``path``, default $PATH) that belong to another interpreter."""
    others: dict[str, dict[str, Any]] = {}
    for tool in tools:
        found = shutil.which(tool, path=path)
        if found is None:
            continue
        interp = tool_interpreter(found, path=path)
        prefix: str | None = None
        if interp is not None:
            # the very same path: the same interpreter (venvs share one binary, so no samefile here)
            if kernel_python and os.path.abspath(interp) == os.path.abspath(kernel_python):
                continue
            prefix = _prefix_of(interp)
        elif tool == "pip":
            location = _pip_location(found)
            if location is None:
                continue
            if _inside(location, kernel_prefix):
                continue
            others[tool] = {"path": found, "location": location}
            continue
        if prefix is None or os.path.realpath(prefix) == os.path.realpath(kernel_prefix):
            continue
        others[tool] = {"path": found, "interpreter": interp, "prefix": prefix}
    if not others:
        return []
    names = ", ".join(f"`{t}`" for t in others)
    pip_like = bool({"pip", "python"} & set(others))
    message = (f"{names} first on PATH belong{'s' if len(others) == 1 else ''} to another interpreter than the "
               f"kernel {kernel_name!r} ({kernel_prefix})")
    if "pip" in others:
        message += ": `!pip install` installs elsewhere; use `%pip install` in the notebook"
    return [make("EN210", where, message, severity=None if pip_like else "info",
                 evidence={"kernel": kernel_name, "kernel_prefix": kernel_prefix, "tools": others})]


# --- EN211 ------------------------------------------------------------------------------------------

def user_site_findings(kernel_name: str, facts: InterpreterFacts, *, where: str | None = None) -> list[Finding]:
    """EN211: distributions installed both in the user site and in the kernel environment's site-packages."""
    if not facts.enable_user_site or not facts.user_dists:
        return []
    both = sorted(set(facts.user_dists) & set(facts.env_dists))
    if not both:
        return []
    shadowed = {n: {"user_site": facts.user_dists[n], "environment": facts.env_dists[n]} for n in both}
    listed = ", ".join(f"{n} {facts.user_dists[n]} (env has {facts.env_dists[n]})" for n in both[:5])
    more = f" and {len(both) - 5} more" if len(both) > 5 else ""
    return [make("EN211", where,
                 f"user-site packages shadow the kernel {kernel_name!r}'s environment: {listed}{more} "
                 f"are imported from {facts.user_site}",
                 evidence={"kernel": kernel_name, "user_site": facts.user_site, "prefix": facts.prefix,
                           "shadowed": shadowed})]
