"""The kernelspecs Jupyter sees and the Python each one runs: the one model every layer reads.

``read_kernelspecs()`` lists the kernel folders exactly as jupyter_client's ``KernelSpecManager`` finds
them — ``jupyter_path("kernels")`` (``JUPYTER_PATH``, the user folder, the environment's and the system's
``share/jupyter``) then the IPython folder, the first folder of a name winning, names lower-cased, and
the native ``python3`` of the ipykernel nbmedic runs with when no folder provides one — and remembers the
folders each winner shadows.  It reads the ``kernel.json`` files itself: importing jupyter_client costs
a third of a second, more than ``nbmedic check`` spends on a hundred notebooks.

``Kernelspec.interpreter`` is the one rule for "which Python runs this kernel", the way jupyter_client
launches it: argv[0] ``python``/``python3``/``pythonX.Y`` (the server's version) becomes the server's
``sys.executable``; ``{prefix}`` and ``{resource_dir}`` are substituted and ``~`` expanded; a bare name is
looked up on the kernel's own PATH (os.environ plus the spec's ``env``, ``${VAR}`` substituted); the
program is the kernel's Python only when it is named ``python*``/``pypy*`` — a wrapper (``conda run``,
``env``, a shell script) runs some Python nobody can name from outside.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from string import Template
from typing import Any

__all__ = [
    "NATIVE_KERNEL",
    "SOURCES",
    "KernelInterpreter",
    "Kernelspec",
    "Kernelspecs",
    "installed_kernels",
    "interpreter_of",
    "is_rewritten_python",
    "kernel_dirs",
    "python_flags",
    "read_kernelspecs",
]

NATIVE_KERNEL = "python3"
#: where a kernelspec folder lives, in jupyter_client's order of priority
SOURCES = ("path", "user", "env", "system", "ipython", "other", "builtin")

_TEMPLATE = re.compile(r"\{([A-Za-z0-9_]+)\}")  # jupyter_client's format_kernel_cmd
_PYTHON_PROGRAM = re.compile(r"(?:python|pypy)(?:\d+(?:\.\d+)*t?)?(?:\.exe)?", re.IGNORECASE)
# interpreter options that change what the kernel can import; the others are left out of probes
_PATH_FLAGS = frozenset("IsSEPBbdOqRu")


def is_rewritten_python(argv0: str) -> bool:
    """jupyter_client replaces argv[0] ``python``, ``python3`` and ``pythonX.Y`` (the server's version) by
    the server's ``sys.executable``."""
    return argv0 in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}


def python_flags(argv: Sequence[str]) -> tuple[str, ...]:
    """The interpreter options of a Python kernel's argv that bear on imports (``-I``, ``-s``, ``-S``,
    ``-E``, ``-P``, ``-X OPT``), in order; stops at ``-m``, ``-c`` or the first argument."""
    flags: list[str] = []
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg in ("-m", "-c", "-", "--") or not arg.startswith("-") or arg.startswith("--"):
            break
        letters = arg[1:]
        if letters.startswith("X"):
            value = letters[1:] or (rest.pop(0) if rest else "")
            flags.extend(["-X", value] if value else [])
        elif letters.startswith("W"):
            if not letters[1:] and rest:
                rest.pop(0)
        elif letters and set(letters) <= _PATH_FLAGS:
            flags.append(arg)
    return tuple(flags)


@dataclass(frozen=True)
class KernelInterpreter:
    """What runs when jupyter_client launches a kernelspec."""

    argv0: str  # argv[0] as jupyter_client hands it to the OS (rewritten, substituted, ~ expanded)
    program: str | None  # the file that runs; None when it does not exist or is not on PATH
    python: str | None  # the Python that runs the kernel's code; None when unknown (see ``problem``)
    rewritten: bool = False  # argv[0] was python/python3/pythonX.Y: the server's interpreter
    flags: tuple[str, ...] = ()  # interpreter options that bear on imports (``python_flags``)
    problem: str | None = None  # why ``python`` is None, as a phrase ("is not on PATH", "is a wrapper")


def _python_language(language: str) -> bool:
    return not language or language.lower().startswith("python")


def interpreter_of(argv: Sequence[str], *, language: str = "python", resource_dir: str = "",
                   environ: Mapping[str, str] | None = None) -> KernelInterpreter:
    """The one rule: the program and the Python a kernel with this argv runs (see the module docstring).
    ``environ`` is the kernel's environment (its PATH finds bare names); default os.environ."""
    if not argv:
        return KernelInterpreter(argv0="", program=None, python=None, problem="has no argv")
    env = os.environ if environ is None else environ
    rewritten = is_rewritten_python(argv[0])
    if rewritten:
        argv0 = sys.executable
    else:
        names = {"prefix": sys.prefix, "resource_dir": resource_dir}
        argv0 = os.path.expanduser(_TEMPLATE.sub(lambda m: names.get(m.group(1), m.group()), argv[0]))
    flags = python_flags(argv)
    program: str | None
    if rewritten:
        program, problem = argv0, None
    elif os.sep in argv0 or (os.altsep and os.altsep in argv0):
        executable = os.path.isfile(argv0) and os.access(argv0, os.X_OK)
        program = argv0 if executable else None
        problem = None if executable else "is not executable" if os.path.lexists(argv0) else "does not exist"
    else:
        program = shutil.which(argv0, path=env.get("PATH", os.defpath))
        problem = None if program else "is not on PATH"
    if program is None:
        return KernelInterpreter(argv0, None, None, rewritten, flags, problem)
    if not _python_language(language):
        return KernelInterpreter(argv0, program, None, rewritten, flags, "is not a Python kernel")
    if not _PYTHON_PROGRAM.fullmatch(os.path.basename(program)):
        return KernelInterpreter(argv0, program, None, rewritten, flags,
                                 "is a wrapper, not a Python interpreter")
    return KernelInterpreter(argv0, program, program, rewritten, flags)


@dataclass(frozen=True, eq=False)
class Kernelspec:
    """One kernelspec folder (or the built-in native kernel), as jupyter_client reads it."""

    name: str  # lower case, as jupyter_client keys it
    resource_dir: str
    source: str  # one of SOURCES
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    language: str = ""
    display_name: str = ""
    interrupt_mode: str = "signal"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None  # kernel.json cannot be read or is not an object: why
    shadows: tuple[Kernelspec, ...] = ()  # same name in lower-priority folders

    @property
    def provisioner(self) -> str | None:
        """``metadata.kernel_provisioner.provisioner_name``: None means jupyter_client's local provisioner."""
        block = self.metadata.get("kernel_provisioner")
        name = block.get("provisioner_name") if isinstance(block, Mapping) else None
        return name if isinstance(name, str) and name else None

    @property
    def is_python(self) -> bool:
        return _python_language(self.language)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The kernel process's environment: ``base`` (os.environ) plus the spec's ``env``, each value's
        ``$VAR``/``${VAR}`` filled from ``base``; a Python kernel loses PYTHONEXECUTABLE (jupyter_client)."""
        env = dict(os.environ if base is None else base)
        env.update({k: Template(v).safe_substitute(env) for k, v in self.env.items()})
        if self.language.lower().startswith("python"):
            env.pop("PYTHONEXECUTABLE", None)
        return env

    @cached_property
    def environment(self) -> Mapping[str, str]:
        """``environ()`` as of the first use (a snapshot of the kernelspecs is read once per command)."""
        return self.environ()

    @cached_property
    def interpreter(self) -> KernelInterpreter:
        """The program and the Python this kernel runs (``interpreter_of``), in its own environment."""
        return interpreter_of(self.argv, language=self.language, resource_dir=self.resource_dir,
                              environ=self.environment)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "display_name": self.display_name, "resource_dir": self.resource_dir,
                "argv": list(self.argv), "language": self.language, "source": self.source}


@dataclass(frozen=True)
class Kernelspecs:
    """Every kernelspec Jupyter sees: the winner of each name (with the folders it shadows)."""

    specs: Mapping[str, Kernelspec]  # by lower-case name
    kernel_dirs: tuple[str, ...] = ()
    error: str | None = None  # the lookup itself failed (a broken Jupyter installation)

    def get(self, name: str) -> Kernelspec | None:
        return self.specs.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.specs

    def __iter__(self) -> Iterator[Kernelspec]:
        return iter([self.specs[n] for n in sorted(self.specs)])

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)


# --- where jupyter_client looks -------------------------------------------------------------------

def _ipython_kernel_dir() -> str:
    """``IPython.paths.get_ipython_dir()/kernels`` without importing IPython (IPYTHONDIR or ~/.ipython)."""
    ipdir = os.environ.get("IPYTHONDIR") or os.path.join(os.path.expanduser("~"), ".ipython")
    return os.path.join(os.path.normpath(os.path.expanduser(ipdir)), "kernels")


def kernel_dirs() -> list[tuple[str, str]]:
    """(folder, source) for every folder jupyter_client searches for kernelspecs, highest priority first."""
    from jupyter_core.paths import ENV_JUPYTER_PATH, SYSTEM_JUPYTER_PATH, jupyter_data_dir, jupyter_path

    def norm(path: str) -> str:
        return os.path.normcase(os.path.normpath(path))

    explicit = {norm(os.path.join(p.rstrip(os.sep), "kernels"))
                for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p}
    user = norm(os.path.join(jupyter_data_dir(), "kernels"))
    env = {norm(os.path.join(p, "kernels")) for p in ENV_JUPYTER_PATH}
    system = {norm(os.path.join(p, "kernels")) for p in SYSTEM_JUPYTER_PATH}
    ipython = _ipython_kernel_dir()
    found: dict[str, tuple[str, str]] = {}
    for folder in [*jupyter_path("kernels"), ipython]:
        key = norm(folder)
        source = ("path" if key in explicit else "user" if key == user else "env" if key in env
                  else "system" if key in system else "ipython" if folder == ipython else "other")
        found.setdefault(key, (folder, source))  # a folder listed twice is searched once
    return list(found.values())


def _read(name: str, folder: str, source: str) -> Kernelspec:
    try:
        with open(os.path.join(folder, "kernel.json"), "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        return Kernelspec(name=name, resource_dir=folder, source=source, display_name=name,
                          error=f"cannot read kernel.json: {exc}")
    if not isinstance(data, dict):
        return Kernelspec(name=name, resource_dir=folder, source=source, display_name=name,
                          error="kernel.json is not a JSON object")
    return _from_dict(name, folder, source, data)


def _from_dict(name: str, folder: str, source: str, data: Mapping[str, Any]) -> Kernelspec:
    argv, env, meta = data.get("argv"), data.get("env"), data.get("metadata")
    return Kernelspec(
        name=name, resource_dir=folder, source=source,
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else (),
        env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
        language=str(data.get("language") or ""), display_name=str(data.get("display_name") or name),
        interrupt_mode=str(data.get("interrupt_mode") or "signal"),
        metadata=dict(meta) if isinstance(meta, dict) else {},
        error=None if isinstance(argv, list) else "kernel.json has no argv list")


def _list(folder: str) -> list[tuple[str, str]]:
    """(lower-case name, spec folder) of the kernelspecs in ``folder`` (``_list_kernels_in``)."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    return [(entry.lower(), os.path.join(folder, entry)) for entry in entries
            if os.path.isfile(os.path.join(folder, entry, "kernel.json"))]


def _native() -> Kernelspec | None:
    """The ``python3`` jupyter_client adds from the ipykernel it runs with when no folder provides one
    (``ipykernel.kernelspec.get_kernel_dict()``), found without importing ipykernel."""
    try:
        spec = importlib.util.find_spec("ipykernel")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return None
    return Kernelspec(name=NATIVE_KERNEL, resource_dir=os.path.join(os.path.dirname(spec.origin), "resources"),
                      source="builtin", argv=(sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"),
                      language="python", display_name=f"Python {sys.version_info[0]} (ipykernel)",
                      metadata={"debugger": True})


def read_kernelspecs() -> Kernelspecs:
    """Every kernelspec jupyter_client finds now (a fresh read: a few listdirs and small JSON files)."""
    try:
        dirs = kernel_dirs()
    except Exception as exc:  # noqa: BLE001 - a broken Jupyter installation is reported, not raised
        return Kernelspecs(specs={}, error=f"cannot list the kernel folders: {exc}")
    winners: dict[str, Kernelspec] = {}
    shadowed: dict[str, list[Kernelspec]] = {}
    for folder, source in dirs:
        for name, path in _list(folder):
            if name in winners:
                shadowed.setdefault(name, []).append(_read(name, path, source))
            else:
                winners[name] = _read(name, path, source)
    if NATIVE_KERNEL not in winners:
        native = _native()
        if native is not None:
            winners[NATIVE_KERNEL] = native
    specs = {name: _with_shadows(spec, shadowed.get(name, [])) for name, spec in winners.items()}
    return Kernelspecs(specs=specs, kernel_dirs=tuple(folder for folder, _ in dirs))


def _with_shadows(spec: Kernelspec, hidden: list[Kernelspec]) -> Kernelspec:
    return replace(spec, shadows=tuple(hidden)) if hidden else spec


def installed_kernels() -> dict[str, str]:
    """Kernel name -> resource folder, as ``KernelSpecManager().find_kernel_specs()`` returns it."""
    return {spec.name: spec.resource_dir for spec in read_kernelspecs()}
