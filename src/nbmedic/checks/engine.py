"""Run every static rule over every notebook; the rules live in sibling modules, one per theme."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nbmedic.checks import cells, code, conflicts, execution, kernel, outputs, size, structure
from nbmedic.checks.rules import CheckEnv, NotebookContext, Rule, RuleTable
from nbmedic.config import Config
from nbmedic.findings import Finding, exit_code
from nbmedic.notebook.record import NotebookFile, read_notebook_file


def _rules() -> RuleTable:
    """(codes a rule can emit, rule) for every rule on a parsed nbformat-4 notebook."""
    return [
        *structure.RULES, *execution.RULES, *size.RULES, *kernel.RULES, *code.RULES, *outputs.RULES,
        *conflicts.RULES, *cells.RULES,
    ]


def _active_rules(config: Config, env: CheckEnv) -> list[Rule]:
    """The rules that can emit a wanted code, worked out once per configuration of a run."""
    cache: dict[int, tuple[Config, list[Rule]]] = env.cache.setdefault("active-rules", {})
    hit = cache.get(id(config))
    if hit is None or hit[0] is not config:
        hit = (config, [rule for codes, rule in _rules() if any(config.wants(c) for c in codes)])
        cache[id(config)] = hit
    return hit[1]


def check_notebook(file: NotebookFile, env: CheckEnv | None = None) -> list[Finding]:
    """All static findings for one notebook record (under its own config); never raises for a bad file."""
    config = file.config
    if file.nb is None:
        return [f for f in file.error_findings() if config.wants(f.code)]
    ctx = NotebookContext(file=file, nb=file.nb, env=env or CheckEnv())
    found = [f for f in structure.check_format(ctx) if config.wants(f.code)]
    if ctx.major != 4:  # other rules understand nbformat 4 only
        return found
    for rule in _active_rules(config, ctx.env):
        found.extend(f for f in rule(ctx) if config.wants(f.code))
    return found


def check_notebooks(files: Iterable[NotebookFile]) -> tuple[list[Finding], int]:
    """Every static finding for ``files`` and the exit code they imply (each under its own config)."""
    env = CheckEnv()
    findings: list[Finding] = []
    code = 0
    for file in files:
        found = check_notebook(file, env)
        code = max(code, exit_code(found, strict=file.config.strict))
        findings.extend(found)
    return findings, code


def check_file(path: Path, config: Config, env: CheckEnv | None = None) -> list[Finding]:
    """All findings for the file at ``path`` under ``config``."""
    return check_notebook(read_notebook_file(path, config), env)


def check_paths(paths: Iterable[Path], config: Config, env: CheckEnv | None = None) -> list[Finding]:
    """Every finding for ``paths`` under one configuration (the CLI resolves one per folder instead)."""
    env = env or CheckEnv()
    found: list[Finding] = []
    for path in paths:
        found.extend(check_file(path, config, env))
    return found
