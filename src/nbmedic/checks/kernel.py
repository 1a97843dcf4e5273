"""NB030-NB031: does the notebook name a kernel, and is that kernel installed here?

The installed kernelspecs (``nbmedic.kernelspecs``, the model every layer shares) are read once per
command and kept in ``ctx.env.cache``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from nbmedic.checks.rules import CheckEnv, NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.kernelspecs import Kernelspec, Kernelspecs, read_kernelspecs
from nbmedic.notebook.cells import kernel_name_of

_SPECS_KEY = "kernelspecs"


def installed_kernelspecs(env: CheckEnv) -> Kernelspecs:
    """The kernelspecs Jupyter sees, read on the first call of a command."""
    specs = env.cache.get(_SPECS_KEY)
    if not isinstance(specs, Kernelspecs):
        specs = env.cache[_SPECS_KEY] = read_kernelspecs()
    return specs


def notebook_kernelspec(nb: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = nb.get("metadata")
    spec = meta.get("kernelspec") if isinstance(meta, dict) else None
    return spec if isinstance(spec, dict) else None


def kernel_for(nb: Mapping[str, Any], env: CheckEnv) -> Kernelspec | None:
    """The installed kernelspec that would run this notebook (``python3`` when it names none)."""
    return installed_kernelspecs(env).get(kernel_name_of(nb))


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
    specs = installed_kernelspecs(ctx.env)
    if specs.error is not None or name in specs:
        return  # a broken Jupyter installation is the EN family's business
    installed = specs.names
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
