"""``nbmedic doctor PATH...``: the main command; every probe, one readable report.

For now the probes are the static checks; later probes (environment, monitored execution)
add their findings to the same report.
"""

from __future__ import annotations

import argparse

from nbmedic.commands.common import discover, emit, resolver_from_args, static_findings


def run_doctor(args: argparse.Namespace) -> int:
    from nbmedic.checks.engine import display_path

    resolver = resolver_from_args(args)
    paths = discover(args.paths, resolver)
    findings, code = static_findings(paths, resolver)
    title = f"nbmedic doctor: {len(paths)} notebook{'s' if len(paths) != 1 else ''}"
    emit(findings, [display_path(p) for p in paths], args.format, title=title)
    return code
