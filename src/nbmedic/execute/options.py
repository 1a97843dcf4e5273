"""Limits and switches of one monitored run.

Precedence (highest first): explicit arguments (the CLI), the notebook's ``metadata.nbmedic``,
``[tool.nbmedic.run]`` in pyproject.toml, then the defaults here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from nbmedic.config import Config
from nbmedic.errors import UsageError
from nbmedic.units import parse_size

_SIZE_FIELDS = {"memory_limit", "max_output"}
_SECONDS_FIELDS = {"cell_timeout", "timeout", "startup_timeout", "stall_after", "interrupt_grace",
                   "sample_interval"}
_BOOL_FIELDS = {"allow_errors", "compare", "fork", "profile_memory"}


@dataclass(frozen=True)
class RunOptions:
    kernel_name: str | None = None  # None: the notebook's metadata.kernelspec.name
    cell_timeout: float | None = None  # seconds per cell; None = no limit
    timeout: float | None = None  # seconds for the whole run
    startup_timeout: float = 60.0
    memory_limit: int | None = None  # bytes of RSS of the kernel's process tree
    max_output: int | None = None  # bytes of output kept per cell; more is truncated with a marker
    allow_errors: bool = False
    compare: bool = False  # compare new outputs with the stored ones (RN160)
    sample_interval: float = 0.1  # seconds between monitor samples (10 Hz)
    stall_after: float | None = 30.0  # seconds of no output and ~0 % CPU before RN112
    interrupt_grace: float = 5.0  # seconds a kernel gets to come back after an interrupt
    debug_file: str | None = None  # every kernel message as JSON lines
    parameters: Mapping[str, Any] = field(default_factory=dict)
    cwd: str | None = None  # working directory of the kernel; None = the notebook's folder
    fork: bool = True  # start the kernel by forking a warm template process when the kernelspec allows it
    profile_memory: bool = False  # tracemalloc in the kernel: each cell's top allocation sites (CellRecord)

    def merged(self, **overrides: Any) -> RunOptions:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def options_from_mapping(values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate ``metadata.nbmedic`` or ``[tool.nbmedic.run]`` values into RunOptions field values."""
    known = {f.name for f in fields(RunOptions)} - {"parameters", "debug_file", "cwd"}
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            continue  # other tools' keys and the per-cell figures nbmedic stores itself
        if key in _SIZE_FIELDS:
            out[key] = parse_size(value, what=f"{where} {raw_key}")
        elif key in _SECONDS_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise UsageError(f"{where} {raw_key}: expected a positive number of seconds, got {value!r}")
            out[key] = float(value)
        elif key in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise UsageError(f"{where} {raw_key}: expected true or false, got {value!r}")
            out[key] = value
        elif key == "kernel_name":
            if not isinstance(value, str) or not value:
                raise UsageError(f"{where} {raw_key}: expected a kernel name, got {value!r}")
            out[key] = value
    return out


def project_options(config: Config, **defaults: Any) -> RunOptions:
    """``[tool.nbmedic.run]`` of a notebook's project over nbmedic's defaults (and the caller's)."""
    table = config.extra.get("run", {})
    where = f"{config.source} [tool.nbmedic.run]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    return RunOptions(**defaults).merged(**options_from_mapping(table, where=where))
