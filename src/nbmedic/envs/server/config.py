"""The config probe of ``nbmedic server``: EN256 (a configuration file that cannot be loaded: Python that
raises, JSON that does not parse) and EN257 (a setting naming a class or trait that does not exist).

Every ``jupyter_*config.py`` / ``.json`` / ``.d/*.json`` of the installation's config folders that an
installed application reads is loaded in that installation's Python, the way traitlets does
(``PyFileConfigLoader``), in the one run the extensions probe shares (``extensions.installation_facts``).
Settings are checked against the configurable classes of the applications that read the file: jupyter_server's
``ServerApp`` and the enabled extensions' applications for ``jupyter_config``, ``jupyter_server_config`` and
the extensions' own files (``jupyter_lab_config`` ...), another application's classes for its file
(``jupyter_nbconvert_config``: the ``jupyter-nbconvert`` command's application).  A class that is merely not
installed here is not reported: only a name close to a known class is (``ServerApps`` → ``ServerApp``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from nbmedic.envs.server.extensions import installation_facts
from nbmedic.findings import Finding, make

if TYPE_CHECKING:
    from nbmedic.envs.server.context import ServerContext

__all__ = ["findings"]


def findings(ctx: ServerContext) -> list[Finding]:
    facts = installation_facts(ctx.setup)
    if facts is None:
        return []
    return [*_unloadable(facts["files"]), *_unknown(facts["unknown"])]


def _unloadable(files: list[dict[str, Any]]) -> list[Finding]:
    out: list[Finding] = []
    for entry in files:
        if not entry["loaded"] or entry["error"] is None:
            continue
        at = f" (line {entry['line']})" if entry["line"] else ""
        message = f"{entry['error']}{at}: Jupyter cannot load {os.path.basename(entry['path'])} and skips it"
        evidence: dict[str, Any] = {"config_file": entry["path"], "error": entry["error"]}
        if entry["line"]:
            evidence["line"] = entry["line"]
        out.append(make("EN256", entry["path"], message, evidence=evidence))
    return out


def _unknown(unknown: list[dict[str, str]]) -> list[Finding]:
    out: list[Finding] = []
    for item in unknown:
        setting, suggestion = item["setting"], item["suggestion"]
        cls = setting.split(".", 1)[0]
        what = "class" if suggestion and suggestion.split(".", 1)[0] != cls else "trait"
        hint = f"did you mean {suggestion}? " if suggestion else ""
        name = os.path.basename(item["config_file"])
        message = f"{setting}: no such {what}, {hint}(Jupyter ignores it silently in {name})"
        out.append(make("EN257", item["config_file"], message,
                        evidence={"setting": setting, "suggestion": suggestion,
                                  "config_file": item["config_file"]}))
    return out
