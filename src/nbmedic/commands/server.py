"""``nbmedic server``: the Jupyter installation that `jupyter` on PATH and this interpreter resolve to.

The probes live in ``nbmedic.envs.server``; this module reads the options, asks before changes other than
removing stale runtime files, and prints the report (``--format json``: the document plus ``server``: the
installation examined, each probe's time, what ``--fix`` changed).
"""

from __future__ import annotations

import argparse
import sys

from nbmedic.commands.common import emit
from nbmedic.config import code_selection
from nbmedic.envs.server import ServerContext, examine, find_setup
from nbmedic.errors import UsageError
from nbmedic.findings import exit_code

__all__ = ["run"]


def _asker(args: argparse.Namespace) -> ServerContext:
    def confirm(question: str) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            print(f"nbmedic: {question} skipped (not a terminal; --yes to allow)", file=sys.stderr)
            return False
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    return ServerContext(getattr(args, "server_setup", None) or find_setup(), fix=args.fix, confirm=confirm)


def run(args: argparse.Namespace) -> int:
    if args.yes and not args.fix:
        raise UsageError("--yes only makes sense with --fix")
    config = code_selection(args.select, args.ignore)
    report = examine(_asker(args), config.wants)
    found = [f for f in report.findings if config.wants(f.code)]
    where = report.setup.jupyter or report.setup.python
    emit(found, [where], args.format, title=f"nbmedic server: the Jupyter installation of {where}",
         extra={"server": report.to_dict()}, verb="examined", noun="installation", verbose=args.verbose)
    for line in report.fixed:
        print(f"fixed: {line}", file=sys.stderr)
    return exit_code(found)
