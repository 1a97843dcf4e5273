"""The environment probes the doctor runs for a set of notebooks: their kernels, interpreters and locks.

Each probe is asked once per kernel (not per notebook); a probe that cannot run (a kernel that is not
installed, an interpreter that will not answer) is skipped: the static checks and the runs already say
why.  Every probe reads the kernelspecs from ``nbmedic.kernelspecs`` (pass ``specs`` to share one read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbmedic.envs.ipython import ipython_config_findings
from nbmedic.envs.kernelspecs import check_spec, duplicate_findings
from nbmedic.envs.lock import drift_findings, lock_in_notebook
from nbmedic.envs.resources import (
    disk_findings,
    disk_paths_for,
    gpu_findings,
    memory_headroom_findings,
    needed_from_notebooks,
)
from nbmedic.envs.server import JupyterSetup, ServerContext, examine, find_setup
from nbmedic.errors import NbmedicError
from nbmedic.findings import Finding
from nbmedic.kernelspecs import Kernelspecs, read_kernelspecs
from nbmedic.notebook.cells import kernel_name_of


def kernel_names(notebooks: Sequence[tuple[Path, dict[str, Any]]]) -> set[str]:
    return {kernel_name_of(nb).lower() for _, nb in notebooks}


def kernel_findings(names: set[str], *, specs: Kernelspecs | None = None) -> list[Finding]:
    """EN200, EN201, EN203, EN210-EN212 for the installed kernels the notebooks use (no launch: the
    monitored runs launch them and report RN140 if they fail)."""
    specs = specs if specs is not None else read_kernelspecs()
    found: list[Finding] = []
    for spec in specs:
        if spec.name in names:
            found.extend(check_spec(spec, launch=False).findings)
    found.extend(duplicate_findings(specs, only=names))
    return found


def drift(notebooks: Sequence[tuple[Path, dict[str, Any]]], require_lock: Mapping[Path, bool], *,
          specs: Kernelspecs | None = None) -> list[Finding]:
    """EN220-EN223 for every notebook that carries an environment lock (or must)."""
    found: list[Finding] = []
    for path, nb in notebooks:
        if specs is None and lock_in_notebook(nb) is not None:
            specs = read_kernelspecs()  # once, and only when a notebook needs its kernel's interpreter
        try:
            found.extend(drift_findings(path, nb, require_lock=require_lock.get(path, False), specs=specs))
        except NbmedicError:
            continue  # its kernel is not installed or will not answer: reported elsewhere
    return found


def ipython_findings(names: set[str], cwd: str, *, specs: Kernelspecs | None = None) -> list[Finding]:
    """EN230/EN231: each installed Python kernel the notebooks use, started once to read its start-up output."""
    specs = specs if specs is not None else read_kernelspecs()
    found: list[Finding] = []
    for spec in specs:
        if spec.name in names and spec.language.lower().startswith("python"):
            found.extend(ipython_config_findings(spec.name, cwd=cwd))
    return found


def resource_findings(notebooks: Sequence[tuple[Path, dict[str, Any]]], *,
                      memory_limit: int | None = None) -> list[Finding]:
    """EN240 (memory headroom against the last recorded peaks), EN241 (disk), EN242 (GPU expected)."""
    found = memory_headroom_findings(needed=needed_from_notebooks(nb for _, nb in notebooks),
                                     limit_override=memory_limit)
    found.extend(disk_findings(disk_paths_for([str(p) for p, _ in notebooks])))
    found.extend(gpu_findings([(str(p), nb) for p, nb in notebooks]))
    return found


def server_findings(setup: JupyterSetup | None = None) -> list[Finding]:
    """EN250-EN262: the Jupyter installation (`nbmedic server`, without --fix); ``setup``: the one the CLI's
    prelude found (its questions already asked), else found now."""
    return examine(ServerContext(setup or find_setup())).findings
