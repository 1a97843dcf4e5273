"""``nbmedic git``: install, inspect and remove nbmedic's git drivers; ``filter-process`` is what git runs.

Keep this module light at import: the CLI imports it to build its parser, and ``nbmedic git
filter-process`` is started by git once per ``git add``/``git status``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SUBCOMMANDS = "{install,status,uninstall}"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "git", help="install nbmedic's git filter, diff and merge drivers for notebooks",
        description="Make git strip notebook outputs on `git add` (one long-running filter process), show "
        "notebooks cell by cell in `git diff`, and merge them cell by cell.")
    p.set_defaults(handler=run, git_command=None)
    verbs = p.add_subparsers(dest="git_command", metavar=SUBCOMMANDS, parser_class=type(p))

    install = verbs.add_parser(
        "install", help="configure the drivers and add the *.ipynb line to .gitattributes",
        description="Write the filter (and the diff and merge drivers) into the repository's git config "
        "(or your user config with --global) and add `*.ipynb filter=nbmedic diff=nbmedic merge=nbmedic` "
        "to .gitattributes (the global attributes file with --global). Running it again is harmless.")
    install.add_argument("--global", dest="scope", action="store_const", const="global", default="local",
                         help="your user git config and global attributes file instead of this repository's")
    install.add_argument("--no-diff", action="store_true", help="no cell-aware `git diff` (textconv driver)")
    install.add_argument("--no-merge", action="store_true", help="no cell-aware merge driver")

    verbs.add_parser("status", help="what is installed where, and whether git can run it",
                     description="Show nbmedic's drivers in the repository and global config, the attributes "
                     "lines that apply them, and whether `nbmedic` resolves on PATH. Exit 1 when the filter "
                     "is not active for notebooks.")

    uninstall = verbs.add_parser("uninstall", help="remove exactly what install added",
                                 description="Remove nbmedic's git config keys and its .gitattributes line.")
    uninstall.add_argument("--global", dest="scope", action="store_const", const="global", default="local",
                           help="your user git config and global attributes file")

    verbs.add_parser("filter-process")  # run by git (filter.nbmedic.process); no help: not for people


def run(args: argparse.Namespace) -> int:
    command = args.git_command
    if command == "filter-process":
        from nbmedic.vcs.filter import run_filter_process

        return run_filter_process()
    if command == "install":
        return _install(args)
    if command == "uninstall":
        return _uninstall(args)
    if command == "status":
        return _status()
    from nbmedic.errors import UsageError

    raise UsageError(f"nbmedic git needs a command: {SUBCOMMANDS}")


def _print_report(report: Any, *, nothing: str) -> None:
    for change in report.changes:
        print(f"  {change}")
    if not report.changes:
        print(f"  {nothing}")
    for warning in report.warnings:
        print(f"nbmedic: warning: {warning}", file=sys.stderr)


def _install(args: argparse.Namespace) -> int:
    from nbmedic.vcs.gitconfig import Drivers, install

    drivers = Drivers(filter=True, diff=not args.no_diff, merge=not args.no_merge)
    report = install(drivers, scope=args.scope)
    where = "your user git config" if args.scope == "global" else "this repository"
    print(f"nbmedic git drivers ({', '.join(drivers.enabled())}) installed for {where}:")
    _print_report(report, nothing="already installed; nothing changed")
    print(f"config: {report.config_file}\nattributes: {report.attributes_file}")
    if any(change.startswith("set filter.nbmedic.process") for change in report.changes):
        print("Notebooks committed before keep their outputs in history; `git add --renormalize .` "
              "stores them stripped.")
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from nbmedic.vcs.gitconfig import uninstall

    report = uninstall(scope=args.scope)
    where = "your user git config" if args.scope == "global" else "this repository"
    print(f"nbmedic git drivers removed from {where}:")
    _print_report(report, nothing="nothing was installed; nothing changed")
    return 0


def _status() -> int:
    from nbmedic.vcs.gitconfig import KINDS, status

    st = status()
    assert st.repo is not None
    print(f"repository: {st.repo.toplevel}")
    print("drivers:")
    for kind in KINDS:
        scopes = st.installed(kind)
        if scopes:
            line = f"installed in {' and '.join(f'{s} config' for s in scopes)}"
        else:
            found = {scope: {k: v for k, v in values.items() if k.startswith(f'{kind}.')}
                     for scope, values in st.config.items()}
            found = {s: v for s, v in found.items() if v}
            line = "not installed"
            if found:
                line = "configured differently from what nbmedic installs: " + "; ".join(
                    f"{k} = {v!r} ({s})" for s, values in found.items() for k, v in values.items())
        applies = st.effective.get(kind, "unspecified")
        print(f"  {kind:<6} {line}; *.ipynb has {kind}={applies}")
    print("attributes:")
    for path, lines in st.attribute_files:
        for n, text in lines:
            print(f"  {path}:{n}: {text}")
    if not any(lines for _, lines in st.attribute_files):
        print("  no *.ipynb line names an nbmedic driver")
    if st.nbmedic_path:
        print(f"nbmedic on PATH: {st.nbmedic_path}")
    else:
        print("nbmedic on PATH: not found: git cannot run the filter (install nbmedic where git finds it)")
    active = st.active
    print("filter: active" if active else "filter: not active (run `nbmedic git install`)")
    return 0 if active else 1
