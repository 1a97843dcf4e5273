"""``nbmedic check PATH...``: static rules over notebook files; never executes notebook code."""

from __future__ import annotations

import argparse

from nbmedic.commands.common import emit, load_notebooks, resolver_from_args, static_findings


def run_check(args: argparse.Namespace) -> int:
    files = load_notebooks(args.paths, resolver_from_args(args))
    findings, code = static_findings(files)
    emit(findings, [f.name for f in files], args.format)
    return code
