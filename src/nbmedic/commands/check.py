"""``nbmedic check PATH...``: static rules over notebook files; never executes notebook code."""

from __future__ import annotations

import argparse

from nbmedic.checks import check_notebooks
from nbmedic.commands.common import emit, load_notebooks, resolver_from_args


def run(args: argparse.Namespace) -> int:
    files = load_notebooks(args.paths, resolver_from_args(args))
    findings, code = check_notebooks(files)
    emit(findings, [f.name for f in files], args.format)
    return code
