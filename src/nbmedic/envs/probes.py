"""The environment probes the doctor runs for a set of notebooks: their kernels, interpreters and locks.

Each probe is asked once per kernel (not per notebook); a probe that cannot run (a kernel that is not
installed, an interpreter that will not answer) is skipped: the static checks and the runs already say
why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbmedic.errors import NbmedicError
from nbmedic.findings import Finding


def kernel_names(notebooks: Sequence[tuple[Path, dict[str, Any]]]) -> set[str]:
    from nbmedic.notebook.cells import kernel_name_of

    return {kernel_name_of(nb).lower() for _, nb in notebooks}


def kernel_findings(names: set[str]) -> list[Finding]:
    """EN200, EN201, EN203, EN210-EN212 for the installed kernels the notebooks use (no launch: the
    monitored runs launch them and report RN140 if they fail)."""
    from nbmedic.envs.kernelspecs import check_spec, duplicate_findings, installed_specs

    specs = installed_specs()
    found: list[Finding] = []
    for spec in specs:
        if spec.name in names:
            found.extend(check_spec(spec, launch=False).findings)
    found.extend(duplicate_findings(specs, only=names))
    return found


def drift(notebooks: Sequence[tuple[Path, dict[str, Any]]], require_lock: Mapping[Path, bool]) -> list[Finding]:
    """EN220-EN223 for every notebook that carries an environment lock (or must)."""
    from nbmedic.envs.lock import drift_findings

    found: list[Finding] = []
    for path, nb in notebooks:
        try:
            found.extend(drift_findings(path, nb, require_lock=require_lock.get(path, False)))
        except NbmedicError:
            continue  # its kernel is not installed or will not answer: reported elsewhere
    return found


def ipython_findings(names: set[str], cwd: str) -> list[Finding]:
    """EN230/EN231: each installed Python kernel the notebooks use, started once to read its start-up output."""
    from nbmedic.envs.ipython import ipython_config_findings
    from nbmedic.envs.kernelspecs import installed_specs

    found: list[Finding] = []
    for spec in installed_specs():
        if spec.name in names and spec.language.lower().startswith("python"):
            found.extend(ipython_config_findings(spec.name, cwd=cwd))
    return found


def resource_findings(notebooks: Sequence[tuple[Path, dict[str, Any]]], *,
                      memory_limit: int | None = None) -> list[Finding]:
    """EN240 (memory headroom against the last recorded peaks), EN241 (disk), EN242 (GPU expected)."""
    from nbmedic.envs.resources import (
        disk_findings,
        disk_paths_for,
        gpu_findings,
        memory_headroom_findings,
        needed_from_notebooks,
    )

    found = memory_headroom_findings(needed=needed_from_notebooks(nb for _, nb in notebooks),
                                     limit_override=memory_limit)
    found.extend(disk_findings(disk_paths_for([str(p) for p, _ in notebooks])))
    found.extend(gpu_findings([(str(p), nb) for p, nb in notebooks]))
    return found
