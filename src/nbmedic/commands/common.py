"""What the reporting commands share: config resolution, notebook discovery, output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbmedic.config import Config, load_config, split_codes
from nbmedic.errors import UsageError
from nbmedic.findings import Finding, exit_code


def resolve_config(args: argparse.Namespace) -> Config:
    pyproject = Path(args.config) if getattr(args, "config", None) else None
    if pyproject is not None and not pyproject.is_file():
        raise UsageError(f"--config {pyproject}: no such file")
    first = Path(args.paths[0]) if getattr(args, "paths", None) else Path.cwd()
    config = load_config(first if first.exists() else Path.cwd(), pyproject=pyproject)
    return config.with_overrides(
        select=split_codes(args.select, what="--select") if getattr(args, "select", None) else None,
        ignore=split_codes(args.ignore, what="--ignore") if getattr(args, "ignore", None) else None,
        strict=getattr(args, "strict", None),
    )


def discover(paths: Sequence[str], config: Config) -> list[Path]:
    from nbmedic.discover import iter_notebooks

    found = list(iter_notebooks(paths, exclude=config.exclude))
    if not found:
        raise UsageError(f"no notebooks (*.ipynb) found under {', '.join(paths)}")
    return found


def emit(findings: list[Finding], files: list[str], fmt: str, *, config: Config,
         title: str | None = None, extra: Mapping[str, Any] | None = None) -> int:
    from nbmedic.findings import sort_findings
    from nbmedic.render.json import summary

    ordered = sort_findings(findings)
    if fmt == "json":
        from nbmedic.render.json import render_json

        sys.stdout.write(render_json(ordered, extra={"summary": summary(ordered, len(files)), **(extra or {})}))
    else:
        from nbmedic.render.text import render_text

        render_text(ordered, files=files, title=title)
    return exit_code(ordered, strict=config.strict)
