"""The execution options of ``run`` and ``doctor`` as given on the command line."""

from __future__ import annotations

import argparse
import os
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.execute.grid import Grid, grid_from_mapping
from nbmedic.execute.params import load_params_file, load_params_yaml, parse_cli_value, read_text_file
from nbmedic.units import parse_size


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The execution options given on the command line (None = not given)."""
    for name in ("cell_timeout", "timeout", "startup_timeout", "stall_after"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    out: dict[str, Any] = {
        "kernel_name": getattr(args, "kernel", None),
        "cell_timeout": getattr(args, "cell_timeout", None),
        "timeout": getattr(args, "timeout", None),
        "startup_timeout": getattr(args, "startup_timeout", None),
        "stall_after": getattr(args, "stall_after", None),
        "allow_errors": getattr(args, "allow_errors", None),
        "memory_limit": parse_size(args.memory_limit, what="--memory-limit") if getattr(
            args, "memory_limit", None) else None,
        "max_output": parse_size(args.max_output, what="--max-output") if getattr(
            args, "max_output", None) else None,
        "fork": False if getattr(args, "no_fork", None) else None,
        "profile_memory": True if getattr(args, "profile_memory", None) else None,
    }
    params = parameters_from_args(args)
    if params:
        out["parameters"] = params
    return {k: v for k, v in out.items() if v is not None}


def parameters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if getattr(args, "parameters_file", None):
        params.update(load_params_file(args.parameters_file))
    for name, value in getattr(args, "parameter", None) or []:
        if not name.isidentifier():
            raise UsageError(f"-p {name}: a parameter name must be a Python identifier")
        params[name] = parse_cli_value(value)
    return params


def jobs_from_args(args: argparse.Namespace, count: int, *, default: int = 1) -> int:
    """How many notebooks run at once: ``-j`` (or ``default``), never more than there are notebooks."""
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    return max(1, min(jobs or default, count))


def scheduler_from_args(args: argparse.Namespace) -> str | None:
    """``--scheduler``, else ``$DASK_SCHEDULER_ADDRESS``; None: this machine (``execute.batch``)."""
    value = getattr(args, "scheduler", None) or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    return value.strip() if value else None


def grid_from_args(args: argparse.Namespace) -> Grid | None:
    """``--grid FILE``: the sweep (a mapping of parameter -> list of values), None without the option.

    Refused with one line: a missing or unreadable file, invalid YAML, not a mapping, a name that is not a
    Python variable name, an empty list of values, a value listed twice, a parameter also given by
    ``-p``/``-f`` (which one should win is not obvious, so neither does), and ``-o``/``--in-place`` (every
    combination needs its own output)."""
    source = getattr(args, "grid", None)
    if not source:
        return None
    where = f"--grid {source}"
    text = read_text_file(source, where)
    grid = grid_from_mapping(load_params_yaml(text, where=where), where=where)
    both = [name for name in grid if name in parameters_from_args(args)]
    if both:
        raise UsageError(f"{where}: {', '.join(both)} also given by -p/-f; give each parameter in one place")
    if getattr(args, "output", None):
        raise UsageError("-o/--output names one file; a --grid writes one notebook per combination "
                         "(use --output-dir)")
    if getattr(args, "in_place", False):
        raise UsageError("--in-place would overwrite the notebook once per combination of --grid "
                         "(use --output-dir)")
    return grid
