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

__all__ = ["PROBES", "JupyterSetup", "ServerContext", "ServerReport", "examine", "find_setup"]


Probe = Callable[[ServerContext], list[Finding]]

PROBES: list[tuple[str, Probe]] = [
    ("which", which.findings),
    ("server-extensions", extensions.findings),
    ("config", config.findings),
    ("lab-extensions", labext.findings),
    ("runtime", runtime.findings),
]


@dataclass
class ServerReport:
    setup: JupyterSetup
    findings: list[Finding]
    seconds: dict[str, float]  # each probe's time
    fixed: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"setup": self.setup.to_dict(), "probes": {k: round(v, 4) for k, v in self.seconds.items()},
                "fixed": self.fixed}


def examine(ctx: ServerContext) -> ServerReport:
    """Every probe over ``ctx``, in order, each timed."""
    found: list[Finding] = []
    seconds: dict[str, float] = {}
    for name, probe in PROBES:
        began = time.perf_counter()
        found.extend(probe(ctx))
        seconds[name] = time.perf_counter() - began
    return ServerReport(ctx.setup, found, seconds, ctx.fixed)
