"""``nbmedic git``: install, inspect and remove nbmedic's git drivers; ``filter-process`` is what git runs.

``nbmedic git filter-process`` is started by git once per ``git add``/``git status``: it serves every
notebook of the command from one process (``nbmedic.vcs.filter``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.vcs.filter import run_filter_process
from nbmedic.vcs.gitconfig import KINDS, Drivers, install, status, uninstall

SUBCOMMANDS = "{install,status,uninstall}"


def run(args: argparse.Namespace) -> int:
    command = args.git_command
    if command == "filter-process":

        return run_filter_process()
    if command == "install":
        return _install(args)
    if command == "uninstall":
        return _uninstall(args)
    if command == "status":
        return _status()

    raise UsageError(f"nbmedic git needs a command: {SUBCOMMANDS}")


def _print_report(report: Any, *, nothing: str) -> None:
    for change in report.changes:
        print(f"  {change}")
    if not report.changes:
        print(f"  {nothing}")
    for warning in report.warnings:
        print(f"nbmedic: warning: {warning}", file=sys.stderr)


def _install(args: argparse.Namespace) -> int:
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
    report = uninstall(scope=args.scope)
    where = "your user git config" if args.scope == "global" else "this repository"
    print(f"nbmedic git drivers removed from {where}:")
    _print_report(report, nothing="nothing was installed; nothing changed")
    return 0


def _status() -> int:
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
