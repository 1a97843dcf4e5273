"""NB030-NB031: does the notebook name a kernel, and is that kernel installed here?

The installed kernelspecs are looked up once per run (cached in ``ctx.env.cache``); jupyter_client
is imported only when a notebook needs it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from nbmedic.checks.rules import CheckEnv, NotebookContext, RuleTable
from nbmedic.findings import Finding

_SPECS_KEY = "kernelspecs"
_SPEC_JSON_KEY = "kernelspec-json"
NATIVE_KERNEL = "python3"


def installed_kernels(env: CheckEnv) -> dict[str, str] | None:
    """Kernel name (lower case) -> resource dir, as Jupyter finds them; None if that lookup failed."""
    if _SPECS_KEY not in env.cache:
        specs: dict[str, str] | None
        try:
            from jupyter_client.kernelspec import KernelSpecManager

            found = KernelSpecManager().find_kernel_specs()
            specs = {str(k).lower(): str(v) for k, v in found.items()}
        except Exception:  # a broken Jupyter installation is the EN family's business
            specs = None
        env.cache[_SPECS_KEY] = specs
    value: dict[str, str] | None = env.cache[_SPECS_KEY]
    return value


def notebook_kernelspec(nb: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = nb.get("metadata")
    spec = meta.get("kernelspec") if isinstance(meta, dict) else None
    return spec if isinstance(spec, dict) else None


@dataclass(frozen=True)
class KernelInfo:
    """What NB041 needs to know about the kernel that would run a notebook."""

    name: str
    resource_dir: str
    language: str | None
    argv: tuple[str, ...]
    env: dict[str, str]

    @property
    def interpreter(self) -> str | None:
        """The kernel's Python, as the Jupyter server would start it; None if not a plain Python."""
        if not self.argv:
            return None
        exe = self.argv[0]
        if exe in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
            return sys.executable  # what jupyter_client's KernelManager does
        base = os.path.basename(exe).lower()
        if not base.startswith("python") or not os.path.isabs(exe):
            return None  # a wrapper (conda run, env, a shell script): cannot tell which Python
        return exe if os.path.isfile(exe) else None


def _spec_json(env: CheckEnv, name: str, resource_dir: str) -> dict[str, Any] | None:
    cache: dict[str, dict[str, Any] | None] = env.cache.setdefault(_SPEC_JSON_KEY, {})
    if name not in cache:
        try:
            with open(os.path.join(resource_dir, "kernel.json"), "rb") as fh:
                doc = json.load(fh)
            cache[name] = doc if isinstance(doc, dict) else None
        except (OSError, ValueError):
            cache[name] = None
    return cache[name]


def kernel_for(nb: Mapping[str, Any], env: CheckEnv) -> KernelInfo | None:
    """The installed kernel that would run this notebook (the native one if none is named); None if
    it is not installed or cannot be read."""
    specs = installed_kernels(env)
    if not specs:
        return None
    spec = notebook_kernelspec(nb)
    name = spec.get("name") if spec else None
    if not isinstance(name, str) or not name:
        name = NATIVE_KERNEL  # Jupyter falls back to the default kernel
    name = name.lower()
    resource_dir = specs.get(name)
    if resource_dir is None:
        return None
    doc = _spec_json(env, name, resource_dir)
    if doc is None:
        return None
    argv = doc.get("argv")
    extra_env = doc.get("env")
    language = doc.get("language")
    return KernelInfo(
        name=name, resource_dir=resource_dir,
        language=language.lower() if isinstance(language, str) else None,
        argv=tuple(a for a in argv if isinstance(a, str)) if isinstance(argv, list) else (),
        env={str(k): str(v) for k, v in extra_env.items()} if isinstance(extra_env, dict) else {},
    )


def check_kernelspec(ctx: NotebookContext) -> Iterator[Finding]:
    """NB030: ``metadata.kernelspec`` missing or incomplete."""
    meta = ctx.nb.get("metadata")
    raw = meta.get("kernelspec") if isinstance(meta, dict) else None
    if raw is None:
        lang = None
        info = meta.get("language_info") if isinstance(meta, dict) else None
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            lang = info["name"]
        yield ctx.finding(
            "NB030", "the notebook names no kernel (`metadata.kernelspec` is missing), so Jupyter has to ask "
            "which one to use and tools like nbconvert or papermill pick the default"
            + (f" (its language_info says {lang})" if lang else ""),
            evidence={"kernelspec": None, "language_info": lang})
        return
    if not isinstance(raw, dict):
        yield ctx.finding(
            "NB030", f"`metadata.kernelspec` is {type(raw).__name__} instead of an object with "
            "`name` and `display_name`", evidence={"kernelspec": raw if isinstance(raw, (str, int, float, bool))
                                                     else type(raw).__name__})
        return
    missing = [key for key in ("name", "display_name")
               if not isinstance(raw.get(key), str) or not raw.get(key, "").strip()]
    if missing:
        keys = " and ".join(f"`{k}`" for k in missing)
        yield ctx.finding(
            "NB030", f"`metadata.kernelspec` lacks {keys}, which the notebook format requires and Jupyter "
            "uses to start the right kernel",
            evidence={"kernelspec": {k: v for k, v in raw.items() if isinstance(v, (str, int, float, bool))},
                      "missing": missing})


def check_installed(ctx: NotebookContext) -> Iterator[Finding]:
    """NB031: the named kernel is not installed here."""
    spec = notebook_kernelspec(ctx.nb)
    name = spec.get("name") if spec else None
    if not isinstance(name, str) or not name.strip():
        return  # NB030's business
    specs = installed_kernels(ctx.env)
    if specs is None or name.lower() in specs:
        return
    installed = sorted(specs)
    display = spec.get("display_name") if spec else None
    shown = f"{name!r}" + (f" ({display})" if isinstance(display, str) and display and display != name else "")
    yield ctx.finding(
        "NB031", f"the notebook's kernel {shown} is not installed on this machine; installed: "
        + (", ".join(installed) if installed else "none"),
        evidence={"kernel": name, "display_name": display, "installed": installed},
        fix=f"install it (`python -m ipykernel install --user --name {name}` from the environment it "
        "should use), or switch the notebook to an installed kernel"
        + (f", e.g. `{installed[0]}`" if installed else ""))


RULES: RuleTable = [
    (("NB030",), check_kernelspec),
    (("NB031",), check_installed),
]
