"""``nbmedic check PATH...``: static rules over notebook files; never executes notebook code."""

from __future__ import annotations

import argparse

from nbmedic.commands.common import discover, emit, resolve_config


def run_check(args: argparse.Namespace) -> int:
    from nbmedic.checks import check_paths
    from nbmedic.checks.engine import display_path

    config = resolve_config(args)
    paths = discover(args.paths, config)
    findings = check_paths(paths, config)
    return emit(findings, [display_path(p) for p in paths], args.format, config=config)
