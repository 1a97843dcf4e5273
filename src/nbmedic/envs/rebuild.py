"""``nbmedic env rebuild``: a virtual environment with the locked versions, a kernelspec, and proof it starts.

Steps, each reported through ``say``: create (or reuse) the venv with ``python -m venv``; install the
locked versions and ipykernel with the venv's pip (its own pip/setuptools/wheel and packages installed
from local folders are kept out); register a user kernelspec with ``ipykernel install --user``;
launch that kernel through jupyter_client and wait for its ``kernel_info`` reply.  Any failure is an
``NbmedicError`` with one line (exit 1).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.envs.lock import BOOTSTRAP, normalize, query_interpreter, version_level
from nbmedic.errors import NbmedicError, UsageError
from nbmedic.execute.kernel import Kernel, KernelStartError
from nbmedic.execute.startup import diagnose_start
from nbmedic.kernelspecs import read_kernelspecs

_KERNEL_NAME_RE = re.compile(r"^[a-zA-Z0-9._-]+$")


@dataclass
class RebuildResult:
    venv: str
    python: str
    kernel_name: str
    kernelspec_dir: str = ""
    installed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # package -> why
    kernel_info: dict[str, Any] = field(default_factory=dict)


def default_kernel_name(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.") or "notebook"
    return f"nbmedic-{slug}"


def check_kernel_name(name: str) -> str:
    if not _KERNEL_NAME_RE.match(name):
        raise UsageError(f"--kernel-name {name!r}: use only letters, digits, '.', '_' and '-'")
    return name


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors[0] if errors else lines[-1] if lines else "no output")[:300]


def _run(argv: list[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise NbmedicError(f"{what} failed: {argv[0]} does not exist") from None
    except subprocess.TimeoutExpired:
        raise NbmedicError(f"{what} failed: no result within {timeout:g} s") from None
    except OSError as exc:
        raise NbmedicError(f"{what} failed: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        raise NbmedicError(f"{what} failed: {_tail(proc.stderr or proc.stdout)}")
    return proc


def plan_installs(lock: Mapping[str, Any], present: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The pip requirements that bring a venv holding ``present`` to ``lock``; what is left out and why."""
    direct: Mapping[str, str] = lock.get("direct") or {}
    packages: Mapping[str, Any] = lock.get("packages") or {}
    reqs: list[str] = []
    skipped: dict[str, str] = {}
    for raw, version in sorted(packages.items()):
        name = normalize(raw)
        url = direct.get(raw) or direct.get(name) or ""
        if name in BOOTSTRAP and name in present:
            skipped[name] = f"kept the venv's own {name} {present[name]} (locked {version})"
        elif url.startswith("file:"):
            skipped[name] = f"installed from {url}, not from an index: install it yourself"
        elif not isinstance(version, str) or not version.strip() or version == "*":
            reqs.append(name)
        elif present.get(name) is not None and version_level(version, present[name]) == "same":
            skipped[name] = f"already {version}"
        elif url:
            reqs.append(f"{name} @ {url}")
        else:
            reqs.append(f"{name}=={version}")
    if "ipykernel" not in {normalize(n) for n in packages} and "ipykernel" not in present:
        reqs.append("ipykernel")
    return reqs, skipped


def rebuild(lock: Mapping[str, Any], venv: Path, kernel_name: str, *, python: str, cwd: str,
            say: Callable[[str], None], startup_timeout: float = 60) -> RebuildResult:
    venv = venv.absolute()
    vpy = venv_python(venv)
    result = RebuildResult(venv=str(venv), python=str(vpy), kernel_name=kernel_name)
    # 1. the venv
    if (venv / "pyvenv.cfg").is_file() and vpy.is_file():
        say(f"venv: reusing {venv}")
    elif venv.exists() and (not venv.is_dir() or any(venv.iterdir())):
        raise UsageError(f"--venv {venv}: exists and is not an empty folder nor a virtual environment")
    else:
        _run([python, "-m", "venv", str(venv)], f"creating the venv {venv} with {python}", 600)
        say(f"venv: created {venv} with {python}")
    facts = query_interpreter(str(vpy))
    present: dict[str, str] = {str(k): str(v) for k, v in facts["packages"].items()}
    locked_py, now_py = str(lock.get("python") or ""), str(facts.get("python") or "")
    if locked_py and now_py and version_level(locked_py, now_py) in ("major", "minor"):
        say(f"warning: the venv runs Python {now_py}, the lock has {locked_py} "
            "(pass --python for a matching one)")
    # 2. the packages
    reqs, skipped = plan_installs(lock, present)
    result.skipped = skipped
    for name, why in skipped.items():
        if not why.startswith("already"):
            say(f"skip: {name}: {why}")
    if reqs:
        say(f"install: pip install {' '.join(reqs)}")
        _run([str(vpy), "-m", "pip", "install", "--no-input", *reqs], "pip install", 1800)
        result.installed = reqs
        say(f"install: {len(reqs)} requirement(s) installed")
    else:
        say("install: nothing to install, every locked version is there")
    # 3. the kernelspec
    display = f"Python ({kernel_name})"
    proc = _run([str(vpy), "-m", "ipykernel", "install", "--user", "--name", kernel_name,
                 "--display-name", display], "registering the kernelspec", 120)
    m = re.search(r"Installed kernelspec \S+ in (.+)$", proc.stdout.strip())
    result.kernelspec_dir = m.group(1).strip() if m else ""
    where = f" in {result.kernelspec_dir}" if result.kernelspec_dir else ""
    say(f"kernelspec: registered {kernel_name!r}{where}")
    _check_spec(kernel_name, vpy)
    # 4. the proof
    result.kernel_info = _launch(kernel_name, cwd, startup_timeout)
    lang = result.kernel_info.get("language_info", {})
    say(f"launch: kernel {kernel_name!r} answered kernel_info "
        f"({lang.get('name', '?')} {lang.get('version', '?')}, "
        f"{result.kernel_info.get('implementation', '?')} "
        f"{result.kernel_info.get('implementation_version', '?')})")
    return result


def _check_spec(kernel_name: str, vpy: Path) -> None:
    """The registered spec must be the one Jupyter finds under that name, pointing to the venv's Python."""
    spec = read_kernelspecs().get(kernel_name)
    if spec is None:
        raise NbmedicError(f"the kernelspec {kernel_name!r} was registered "
                           "but Jupyter does not find it")
    runs = spec.interpreter.program or spec.interpreter.argv0
    try:
        same = os.path.samefile(runs, vpy)
    except OSError:
        same = False
    if not same:
        where = os.path.join(spec.resource_dir, "kernel.json")
        raise NbmedicError(f"the kernel {kernel_name!r} Jupyter finds runs {runs}, not {vpy} "
                           f"(another spec of that name shadows it: {where})")


def _launch(kernel_name: str, cwd: str, startup_timeout: float) -> dict[str, Any]:
    kernel = Kernel(kernel_name, cwd=cwd)
    try:
        kernel.start(startup_timeout)
        info = dict(kernel.info or {})
    except KernelStartError as exc:
        message = diagnose_start(exc.facts).message
        tail = exc.facts.stderr_tail.strip().splitlines()
        if tail:
            message += f" (last kernel output: {tail[-1][:200]})"
        raise NbmedicError(f"the new kernel {kernel_name!r} does not start: {message}") from None
    finally:
        kernel.close()
    if not info:
        raise NbmedicError(f"the new kernel {kernel_name!r} started but sent no kernel_info reply")
    return json.loads(json.dumps(info, default=str))  # type: ignore[no-any-return]
