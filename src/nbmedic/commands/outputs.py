"""Where commands that write notebooks put them (light: ``slim`` and ``repair`` import nothing heavier)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["beside", "destination"]


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
