"""Where commands that write notebooks put them (light: ``slim`` and ``repair`` import nothing heavier)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nbmedic.errors import UsageError

__all__ = ["beside", "check_output_option", "destination"]


def beside(path: Path, suffix: str) -> Path:
    """``NAME.<suffix>.ipynb`` next to ``NAME.ipynb`` (a file not named ``.ipynb`` keeps its whole name)."""
    stem = path.name[: -len(".ipynb")] if path.name.lower().endswith(".ipynb") else path.name
    return path.with_name(f"{stem}.{suffix}.ipynb")


def destination(path: Path, args: argparse.Namespace, suffix: str) -> Path:
    """Where a command that rewrites a notebook (repair, slim) writes it: the file itself with
    ``--in-place``; ``-o`` (a file, or a folder to write into); else ``NAME.<suffix>.ipynb`` beside it."""
    if args.in_place:
        return path
    if args.output:
        out = Path(args.output)
        return out / path.name if out.is_dir() else out
    return beside(path, suffix)


def check_output_option(args: argparse.Namespace, paths: list[Path], suffix: str) -> None:
    """``-o`` of a command that rewrites notebooks: one input only, into a folder that exists (UsageError)."""
    if not args.output:
        return
    if len(paths) > 1:
        raise UsageError(f"-o/--output takes one input notebook; use --in-place or the default NAME.{suffix}.ipynb "
                         "for several")
    out = Path(args.output)
    if not out.is_dir() and not out.parent.is_dir() and str(out.parent) != "":
        raise UsageError(f"-o {out}: the folder {out.parent} does not exist")
