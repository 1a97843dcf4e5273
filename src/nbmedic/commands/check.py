"""``nbmedic check PATH...``: static rules over notebook files; never executes notebook code."""

from __future__ import annotations

import argparse

from nbmedic.commands.common import discover, emit, resolver_from_args, static_findings


def run_check(args: argparse.Namespace) -> int:
    from nbmedic.checks.engine import display_path

    resolver = resolver_from_args(args)
    paths = discover(args.paths, resolver)
    findings, code = static_findings(paths, resolver)
    emit(findings, [display_path(p) for p in paths], args.format)
    return code
