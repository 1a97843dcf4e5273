"""The server-extension probe of ``nbmedic server``: EN250 (an enabled jupyter_server extension that fails to
import, to list its extension points, or has no load function) and EN251 (classic Notebook settings that
jupyter_server ignores).

The facts come from one run of ``inside.py`` in the installation's Python (``installation_facts``), shared
with the config probe: that Python's start and its imports of jupyter_server and every enabled extension are
most of the time either probe takes.  Nothing is started and no load function is called.

EN251 reports only what is really ignored given what is installed: ``NotebookApp.*`` in jupyter_server's own
files (``jupyter_config``, ``jupyter_server_config``: ``jupyter server`` ignores them; JupyterLab and
Notebook 7 pass them on only through notebook_shim's deprecation shim); ``NotebookApp.*`` in
``jupyter_notebook_config`` only when nothing installed reads that file (no classic Notebook, no Notebook 7 or
nbclassic); an extension enabled in ``NotebookApp.nbserver_extensions`` that jupyter_server does not enable
itself (unless a classic Notebook reads the file, or notebook_shim adds the JSON file's entries).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from nbmedic.envs.server import inside
from nbmedic.envs.server.where import JupyterSetup, ProbeError, ask_early, run_python
from nbmedic.findings import Finding, make

if TYPE_CHECKING:
    from nbmedic.envs.server.context import ServerContext

__all__ = ["begin", "findings", "installation_facts"]

TIMEOUT = 90.0  # the installation's Python importing jupyter_server and every enabled extension

_last: tuple[JupyterSetup, dict[str, Any] | None] | None = None
_STAGES = {"import": "fails to import", "points": "cannot list its extension points",
           "load-function": "has no load function"}


def _script(setup: JupyterSetup) -> str:
    return inside.script({"config_path": list(setup.config_path)})


def begin(setup: JupyterSetup) -> bool:
    """Start the run of ``inside.py`` for ``setup`` now (``where.ask_early``), so that it imports
    jupyter_server and the extensions while the caller still imports and probes; whether it started."""
    return setup.python_exists and setup.error is None and ask_early(setup.python, _script(setup))


def installation_facts(setup: JupyterSetup) -> dict[str, Any] | None:
    """What ``inside.py`` reports about ``setup`` (None: no Python to ask, jupyter_server not installed
    there, or it gave no answer).  One run per setup object: the probes of one examination share it."""
    global _last
    if _last is not None and _last[0] is setup:
        return _last[1]
    facts: dict[str, Any] | None = None
    if setup.python_exists and setup.error is None:
        try:
            answer = run_python(setup.python, _script(setup), timeout=TIMEOUT)
        except ProbeError:
            answer = None
        if isinstance(answer, dict) and answer.get("error") is None:
            facts = answer
    _last = (setup, facts)
    return facts


def findings(ctx: ServerContext) -> list[Finding]:
    facts = installation_facts(ctx.setup)
    if facts is None:
        return []
    return [*_failures(facts, ctx.setup.python), *_ignored(facts)]


def _failures(facts: dict[str, Any], python: str) -> list[Finding]:
    """EN250: each failing extension point of an enabled extension."""
    out: list[Finding] = []
    for ext in facts["extensions"]:
        for failure in ext["failures"]:
            module = failure["module"]
            what = ext["name"] if module == ext["name"] else f"{ext['name']} ({module})"
            verb = _STAGES.get(failure["stage"], "fails")
            message = f"server extension {what} {verb}: {failure['error']}"
            out.append(make("EN250", ext["config_file"], message, evidence={
                "extension": ext["name"], "module": failure["module"], "stage": failure["stage"],
                "error": failure["error"], "config_file": ext["config_file"], "interpreter": python}))
    return out


def _ignored(facts: dict[str, Any]) -> list[Finding]:
    """EN251: NotebookApp settings, and nbserver_extensions, that nothing installed here reads."""
    readers = facts["readers"]
    jpserver = facts["jpserver_extensions"]
    out: list[Finding] = []
    for entry in facts["files"]:
        app, kind = entry["app"], entry["kind"]
        dead = (app == "server" or (app == "" and not readers["classic_notebook"])
                or (app == "notebook" and not readers["notebook_reader"]))
        if kind != "d" and dead:
            out.extend(_notebookapp_settings(entry, facts["renames"]))
        legacy_read = app == "notebook" and (readers["classic_notebook"]
                                              or (kind != "py" and readers["notebook_shim"]))
        if not legacy_read:
            out.extend(_legacy_extension(entry, name) for name, on in entry["nbserver_extensions"].items()
                       if on and name not in jpserver)
    return out


def _notebookapp_settings(entry: dict[str, Any], renames: dict[str, str]) -> list[Finding]:
    out: list[Finding] = []
    name = os.path.basename(entry["path"])
    for trait in entry["settings"].get("NotebookApp", []):
        if trait == "nbserver_extensions":
            continue  # per extension, in _legacy_extension
        new = renames.get(trait, "")
        todo = f"use {new}" if new else "it has no such setting"
        why = ("`jupyter server` ignores it; JupyterLab and Notebook 7 pass it on only as deprecated"
               if entry["app"] in ("", "server") else
               f"nothing installed here reads {name} (no classic Notebook, Notebook 7 or nbclassic): "
               "jupyter_server reads jupyter_server_config")
        message = f"NotebookApp.{trait} is ignored by jupyter_server: {todo} ({why})"
        out.append(make("EN251", entry["path"], message,
                        evidence={"setting": f"NotebookApp.{trait}", "replacement": new,
                                  "config_file": entry["path"]}))
    return out


def _legacy_extension(entry: dict[str, Any], ext: str) -> Finding:
    name = os.path.basename(entry["path"])
    return make("EN251", entry["path"],
                f"{ext} is enabled only in NotebookApp.nbserver_extensions, which jupyter_server does not "
                f"read in {name}: `jupyter server extension enable {ext}` (ServerApp.jpserver_extensions)",
                evidence={"setting": f"NotebookApp.nbserver_extensions.{ext}",
                          "replacement": f"ServerApp.jpserver_extensions.{ext}",
                          "config_file": entry["path"]})
