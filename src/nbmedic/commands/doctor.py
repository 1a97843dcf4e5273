"""``nbmedic doctor PATH...``: the main command; every probe, one readable report.

For now the probes are the static checks; later probes (environment, monitored execution)
add their findings to the same report.
"""

from __future__ import annotations

import argparse

from nbmedic.commands.common import discover, emit, resolve_config


def run_doctor(args: argparse.Namespace) -> int:
    from nbmedic.checks import check_paths
    from nbmedic.checks.engine import display_path

    config = resolve_config(args)
    paths = discover(args.paths, config)
    findings = check_paths(paths, config)
    title = f"nbmedic doctor: {len(paths)} notebook{'s' if len(paths) != 1 else ''}"
    return emit(findings, [display_path(p) for p in paths], args.format, config=config, title=title)
