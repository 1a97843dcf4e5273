"""Which Jupyter runs (EN261, EN262) of ``nbmedic server``: the commands on PATH and their interpreters.

* EN261: ``jupyter``, ``jupyter-lab``, ``jupyter-notebook`` (scripts: the environment of their shebang's
  interpreter) and ``python``, ``python3`` (the environment they belong to) found first on PATH come from
  more than one environment.  An interpreter's environment is found from the files, without running it:
  the folder holding ``pyvenv.cfg`` above it while following its symlinks one link at a time (a venv's
  ``python`` is a symlink to the base interpreter: the venv is its environment, not the base), else the
  prefix of the file it resolves to (``/usr/bin/python3`` -> ``/usr``).  Commands run by a wrapper that is
  not Python (pyenv's shims are shell scripts) are left out: their environment is chosen when they run.
* EN262: a ``jupyter*`` script found first on PATH for its name whose shebang names an interpreter that no
  longer exists or cannot run (``bad interpreter`` after an environment was deleted).  pip's ``/bin/sh``
  trampoline for long or spaced interpreter paths (``'''exec' "/path/python" "$0" "$@"``) is read too.
  ``--fix`` offers to remove such a script (asking).
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from nbmedic.envs.server.where import SHELLS as _SHELLS
from nbmedic.envs.server.where import interpreter_of
from nbmedic.findings import Finding, make

if TYPE_CHECKING:
    from nbmedic.envs.server.context import ServerContext

__all__ = ["COMMANDS", "PYTHONS", "environment_of", "findings", "interpreter_of", "jupyter_scripts"]

COMMANDS = ("jupyter", "jupyter-lab", "jupyter-notebook")
PYTHONS = ("python", "python3")


def _runs(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def environment_of(interpreter: str) -> str | None:
    """The environment (prefix folder) ``interpreter`` belongs to, from the files alone; None when it does
    not exist, or is a script (a shim chooses its interpreter when it runs)."""
    path = os.path.abspath(interpreter)
    for _ in range(40):
        folder = os.path.dirname(path)
        if os.path.isfile(os.path.join(os.path.dirname(folder), "pyvenv.cfg")):
            return os.path.realpath(os.path.dirname(folder))
        if not os.path.islink(path):
            break
        path = os.path.normpath(os.path.join(folder, os.readlink(path)))
    if not _runs(path) or _is_script(path):
        return None
    return os.path.dirname(os.path.dirname(os.path.realpath(path)))


def jupyter_scripts(path_env: tuple[str, ...]) -> dict[str, str]:
    """Every ``jupyter*`` command found first on PATH for its name: name -> path."""
    found: dict[str, str] = {}
    for folder in path_env:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("jupyter") and entry.name not in found and _runs(entry.path):
                found[entry.name] = entry.path
    return found


def _mixed(path_env: tuple[str, ...], scripts: dict[str, str]) -> Finding | None:
    """EN261 when the commands and pythons found first on PATH belong to different environments."""
    search = os.pathsep.join(path_env)
    commands: dict[str, str] = {n: scripts[n] for n in COMMANDS if n in scripts}
    if not commands:
        return None
    commands.update({n: p for n in PYTHONS if (p := shutil.which(n, path=search))})
    interpreters: dict[str, str] = {}
    envs: dict[str, str] = {}
    for name, path in commands.items():
        interpreter = interpreter_of(path) if name in COMMANDS else path
        if interpreter is None or os.path.basename(interpreter) in _SHELLS:
            continue
        interpreters[name] = interpreter
        env = environment_of(interpreter)
        if env is not None:
            envs[name] = env
    if len(set(envs.values())) < 2:
        return None
    by_env: dict[str, list[str]] = {}
    for name, env in envs.items():
        by_env.setdefault(env, []).append(name)
    said = "; ".join(f"{', '.join(names)} from {env}" for env, names in by_env.items())
    return make("EN261", commands.get("jupyter") or next(iter(commands.values())),
                f"Jupyter commands and python on PATH come from {len(by_env)} environments: {said}",
                evidence={"commands": commands, "interpreters": interpreters})


def _dead(ctx: ServerContext, script: str) -> Finding | None:
    """EN262 when ``script``'s interpreter does not exist or cannot run."""
    interpreter = interpreter_of(script)
    if interpreter is None:
        return None
    if not os.path.isabs(interpreter):
        problem = "is not on PATH"
    elif _runs(interpreter):
        return None
    else:
        problem = "no longer exists" if not os.path.exists(interpreter) else "is not executable"
    removed = ctx.fix and _remove(ctx, script, interpreter)
    return make("EN262", script, f"cannot run: its interpreter {interpreter} {problem}"
                + ("; removed" if removed else ""), evidence={"script": script, "interpreter": interpreter})


def _remove(ctx: ServerContext, script: str, interpreter: str) -> bool:
    return ctx.change(f"remove {script} (its interpreter {interpreter} is gone)", lambda: os.remove(script),
                      f"removed {script} (its interpreter {interpreter} is gone)")


def findings(ctx: ServerContext) -> list[Finding]:
    path_env = ctx.setup.path_env
    scripts = jupyter_scripts(path_env)
    found = [f for f in (_dead(ctx, p) for p in scripts.values()) if f is not None]
    mixed = _mixed(path_env, scripts)
    return ([mixed] if mixed is not None else []) + found
