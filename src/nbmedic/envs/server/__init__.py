"""The Jupyter installation itself (``nbmedic server``, and the doctor): EN250-EN262.

``where.find_setup()`` resolves the installation once: the ``jupyter`` on PATH, the Python it runs, and
the folders that Python's jupyter_core reads (config, data, runtime).  Each probe takes a ``ServerContext``
and returns findings; ``examine`` runs them in order and times each one (the JSON document carries the
times):

* ``extensions``: enabled jupyter_server extensions that fail to import or load (EN250), classic Notebook
  settings jupyter_server ignores (EN251);
* ``config``: config files that fail to load (EN256), names of classes or traits that do not exist (EN257);
* ``labext``: prebuilt JupyterLab extensions for another JupyterLab major (EN252), duplicates (EN253),
  disabled ones (EN254), a needed rebuild (EN255);
* ``runtime``: stale server files (EN258, removed by ``--fix``), exposed servers (EN259), the runtime
  folder (EN260);
* ``which``: Jupyter commands and python from different environments (EN261), dead shebangs (EN262).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbmedic.envs.server import config, extensions, labext, runtime, which
from nbmedic.envs.server.context import ServerContext
from nbmedic.envs.server.where import JupyterSetup, find_setup
from nbmedic.findings import Finding

__all__ = ["PROBES", "JupyterSetup", "ServerContext", "ServerReport", "examine", "find_setup", "wanted"]


Probe = Callable[[ServerContext], list[Finding]]

# (name, probe, the codes it can report): a probe whose codes are all deselected is not run
PROBES: list[tuple[str, Probe, tuple[str, ...]]] = [
    ("which", which.findings, ("EN261", "EN262")),
    ("server-extensions", extensions.findings, ("EN250", "EN251")),
    ("config", config.findings, ("EN256", "EN257")),
    ("lab-extensions", labext.findings, ("EN252", "EN253", "EN254", "EN255")),
    ("runtime", runtime.findings, ("EN258", "EN259", "EN260")),
]


def wanted(wants: Callable[[str], bool] | None, *names: str) -> bool:
    """Will one of the probes ``names`` run (some code of theirs is wanted; ``wants`` None: all are)?"""
    return any(wants is None or any(wants(code) for code in codes) for name, _, codes in PROBES if name in names)


@dataclass
class ServerReport:
    setup: JupyterSetup
    findings: list[Finding]
    seconds: dict[str, float]  # each probe's time (the probes that ran)
    fixed: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"setup": self.setup.to_dict(), "probes": {k: round(v, 4) for k, v in self.seconds.items()},
                "fixed": self.fixed}


def examine(ctx: ServerContext, wants: Callable[[str], bool] | None = None) -> ServerReport:
    """Every probe over ``ctx`` (those with a code ``wants``), in order, each timed."""
    found: list[Finding] = []
    seconds: dict[str, float] = {}
    for name, probe, codes in PROBES:
        if wants is not None and not any(wants(code) for code in codes):
            continue
        began = time.perf_counter()
        found.extend(probe(ctx))
        seconds[name] = time.perf_counter() - began
    return ServerReport(ctx.setup, found, seconds, ctx.fixed)
