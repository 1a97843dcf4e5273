"""What the reporting commands share: config resolution, notebook discovery, static checks, output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbmedic.config import ConfigResolver, split_codes
from nbmedic.errors import UsageError
from nbmedic.findings import Finding, exit_code


def resolver_from_args(args: argparse.Namespace) -> ConfigResolver:
    """Per-notebook configuration: the nearest ``[tool.nbmedic]`` (or ``--config``), then the CLI options."""
    pyproject = Path(args.config) if getattr(args, "config", None) else None
    if pyproject is not None and not pyproject.is_file():
        raise UsageError(f"--config {pyproject}: no such file")
    overrides = {
        "select": split_codes(args.select, what="--select") if getattr(args, "select", None) else None,
        "ignore": split_codes(args.ignore, what="--ignore") if getattr(args, "ignore", None) else None,
        "strict": getattr(args, "strict", None),
    }
    return ConfigResolver(overrides, pyproject=pyproject)


def discover(paths: Sequence[str], resolver: ConfigResolver) -> list[Path]:
    from nbmedic.discover import excluded, iter_notebooks

    found = [p for p in iter_notebooks(paths) if not excluded(p.as_posix(), resolver.for_path(p).exclude)]
    if not found:
        raise UsageError(f"no notebooks (*.ipynb) found under {', '.join(paths)}")
    return found


def static_findings(paths: Sequence[Path], resolver: ConfigResolver) -> tuple[list[Finding], int]:
    """Every static finding for ``paths`` and the exit code they imply (each file under its own config)."""
    from nbmedic.checks import CheckEnv, check_file

    env = CheckEnv()
    findings: list[Finding] = []
    code = 0
    for path in paths:
        config = resolver.for_path(path)
        found = check_file(path, config, env)
        code = max(code, exit_code(found, strict=config.strict))
        findings.extend(found)
    return findings, code


def emit(findings: list[Finding], files: list[str], fmt: str, *, title: str | None = None,
         extra: Mapping[str, Any] | None = None, notes: Mapping[str, str] | None = None,
         verb: str | None = None, noun: str = "notebook") -> None:
    from nbmedic.findings import sort_findings
    from nbmedic.render.json import summary

    ordered = sort_findings(findings)
    if fmt == "json":
        from nbmedic.render.json import render_json

        sys.stdout.write(render_json(ordered, extra={"summary": summary(ordered, len(files)), **(extra or {})}))
    else:
        from nbmedic.render.text import render_text

        render_text(ordered, files=files, title=title, notes=notes, summary=verb, noun=noun)
