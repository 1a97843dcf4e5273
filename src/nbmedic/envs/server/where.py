"""Which Jupyter installation ``nbmedic server`` examines: the ``jupyter`` on PATH, the Python it runs (its
shebang; this interpreter when there is no ``jupyter`` command), and the folders that Python's jupyter_core
reads.  The folders are asked of that Python itself (another environment has other ``sys.prefix`` folders);
``run_python`` runs any other question there the same way."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from nbmedic.errors import NbmedicError

__all__ = ["SHELLS", "JupyterSetup", "ProbeError", "answer_of", "ask_early", "find_setup", "interpreter_of", "run_python",
           "shebang", "start_python"]

_PATHS = """\
import json, sys
from jupyter_core import paths
print(json.dumps({"config": paths.jupyter_config_path(), "data": paths.jupyter_path(),
                  "runtime": paths.jupyter_runtime_dir(), "prefix": sys.prefix, "executable": sys.executable}))
"""


SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_TRAMPOLINE = re.compile(r"""^'''exec' ("[^"]+"|'[^']+'|\S+)""")


class ProbeError(NbmedicError):
    """A question to the Jupyter installation's Python got no answer (it failed, timed out, printed no JSON)."""


@dataclass(frozen=True)
class JupyterSetup:
    jupyter: str | None  # the `jupyter` command on PATH (None: there is none)
    python: str  # the Python that runs it (its shebang's interpreter), else this interpreter
    python_exists: bool
    prefix: str | None = None  # that Python's sys.prefix (its environment)
    config_path: tuple[str, ...] = ()  # jupyter_config_path(), highest priority first
    data_path: tuple[str, ...] = ()  # jupyter_path()
    runtime_dir: str | None = None
    error: str | None = None  # why the folders could not be read (then the probes that need them skip)
    path_env: tuple[str, ...] = field(default_factory=tuple)  # PATH, as searched

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config_path"], out["data_path"], out["path_env"] = (list(self.config_path), list(self.data_path),
                                                                 list(self.path_env))
        return out


def shebang(script: str) -> str | None:
    """The interpreter a script's ``#!`` line names (``/usr/bin/env python3`` resolved on PATH); None when
    the file has no shebang or cannot be read."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    parts = first[2:].decode("utf-8", "replace").strip().split()
    if not parts:
        return None
    if os.path.basename(parts[0]) == "env" and len(parts) > 1:
        args = [a for a in parts[1:] if not a.startswith("-")]
        return shutil.which(args[0]) if args else None
    return parts[0]


def interpreter_of(script: str) -> str | None:
    """The interpreter a script runs: its shebang's (``/usr/bin/env NAME`` as NAME on PATH, or NAME itself
    when it is not on PATH), or the one pip's ``/bin/sh`` trampoline execs; None for a file without a
    shebang (a binary) or one that cannot be read."""
    try:
        with open(script, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    if not head or not head[0].startswith("#!"):
        return None
    parts = head[0][2:].split()
    if not parts:
        return None
    if os.path.basename(parts[0]) in SHELLS and len(head) > 1:
        m = _TRAMPOLINE.match(head[1])
        if m:
            return m[1].strip("\"'")
    if os.path.basename(parts[0]) == "env":
        names = [a for a in parts[1:] if not a.startswith("-")]
        return (shebang(script) or names[0]) if names else None
    return parts[0]


def start_python(python: str, code: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``code`` in ``python`` (its answer: ``answer_of``); ProbeError when it cannot start."""
    try:
        return subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        raise ProbeError(f"{python} cannot run: {exc.strerror or exc}") from None


def answer_of(proc: subprocess.Popen[str], *, timeout: float = 30.0) -> Any:
    """The JSON a started ``python -c`` printed last; ProbeError (one line) otherwise (killed on timeout)."""
    python = str(proc.args[0]) if isinstance(proc.args, list) else "python"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ProbeError(f"{python} did not answer within {timeout:g} s") from None
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise ProbeError(f"{python} failed: {last}")
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise ProbeError(f"{python} printed no JSON: {lines[-1][:200]}") from None


def run_python(python: str, code: str, *, timeout: float = 30.0, env: dict[str, str] | None = None) -> Any:
    """Run ``code`` in ``python`` and parse the JSON it prints last; ProbeError (one line) otherwise.  A
    question asked early (``ask_early``) is answered by the process started then."""
    early = _EARLY.pop((python, code), None) if env is None else None
    return answer_of(early if early is not None else start_python(python, code, env=env), timeout=timeout)


_EARLY: dict[tuple[str, str], subprocess.Popen[str]] = {}  # questions asked ahead (``ask_early``)


def ask_early(python: str, code: str) -> bool:
    """Start ``code`` in ``python`` now, so that it works while the caller imports and probes; the next
    ``run_python`` of the same question takes its answer (once), and at exit a question nobody asked
    again is stopped.  Whether it was started."""
    if (python, code) in _EARLY:
        return True
    try:
        proc = start_python(python, code)
    except ProbeError:
        return False
    if not _EARLY:
        atexit.register(_abandon)
    _EARLY[(python, code)] = proc
    return True


def _abandon() -> None:
    while _EARLY:
        proc = _EARLY.popitem()[1]
        with contextlib.suppress(OSError):
            proc.kill()
            proc.communicate()


def find_setup() -> JupyterSetup:
    """The installation `jupyter` on PATH resolves to, and its folders."""
    path_env = tuple(p for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    jupyter = shutil.which("jupyter")
    python = (interpreter_of(jupyter) if jupyter else None) or sys.executable
    exists = os.path.isfile(python) and os.access(python, os.X_OK)
    if not exists:
        return JupyterSetup(jupyter, python, False, error=f"{python} does not exist", path_env=path_env)
    try:
        found = run_python(python, _PATHS)
    except ProbeError as exc:
        return JupyterSetup(jupyter, python, True, error=str(exc), path_env=path_env)
    return JupyterSetup(jupyter, python, True, prefix=found["prefix"], config_path=tuple(found["config"]),
                        data_path=tuple(found["data"]), runtime_dir=found["runtime"], path_env=path_env)
