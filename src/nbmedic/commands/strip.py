"""``nbmedic strip``: remove outputs, execution counts and volatile metadata (nbstripout's defaults, ids kept).

In place, rewriting only the notebooks that stripping changes (atomically; the others keep their
mtime); ``--check`` writes nothing and exits 1 listing what would change; ``-`` filters stdin to stdout
and passes anything that is not a notebook through unchanged (what git's clean filter needs).

The work happens in ``nbmedic.vcs.strip`` (pure, light imports: the git filter uses it too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbmedic.commands.common import discover, emit
from nbmedic.config import ConfigResolver, parse_size
from nbmedic.errors import UsageError
from nbmedic.notebook.io import NotebookReadError, atomic_write_bytes
from nbmedic.notebook.record import read_error_findings
from nbmedic.vcs.strip import options_from_config, parse_keys, strip_data

if TYPE_CHECKING:
    from nbmedic.config import Config
    from nbmedic.findings import Finding
    from nbmedic.vcs.strip import StripOptions


def _cli_options(args: argparse.Namespace) -> dict[str, Any]:
    """The StripOptions fields given on the command line (they win over the configuration)."""
    given: dict[str, Any] = {}
    for name in ("keep_count", "keep_output", "keep_id", "drop_empty_cells"):
        value = getattr(args, name, None)
        if value is not None:
            given[name] = bool(value)
    for name in ("extra_keys", "keep_metadata_keys"):
        value = getattr(args, name, None)
        if value is not None:
            given[name] = parse_keys(value, what="--" + name.replace("_", "-"))
    if getattr(args, "max_output_size", None) is not None:
        given["max_output_size"] = parse_size(args.max_output_size, what="--max-output-size")
    return given


class _Options:
    """StripOptions per configuration file (the nearest ``[tool.nbmedic.strip]``), CLI values on top."""

    def __init__(self, resolver: ConfigResolver, cli: dict[str, Any]) -> None:
        self.resolver = resolver
        self.cli = cli
        self._cache: dict[int, StripOptions] = {}

    def for_path(self, path: Path) -> StripOptions:
        return self.for_config(self.resolver.for_path(path))

    def for_config(self, config: Config) -> StripOptions:
        opts = self._cache.get(id(config))
        if opts is None:
            from dataclasses import replace


            table = config.extra.get("strip", {})
            where = f"{config.source} [tool.nbmedic.strip]" if config.source else "[tool.nbmedic.strip]"
            opts = replace(options_from_config(table, where=where), **self.cli)
            self._cache[id(config)] = opts
        return opts


def run(args: argparse.Namespace) -> int:
    paths: list[str] = list(args.paths)
    pyproject = Path(args.config) if getattr(args, "config", None) else None
    if pyproject is not None and not pyproject.is_file():
        raise UsageError(f"--config {pyproject}: no such file")
    options = _Options(ConfigResolver(pyproject=pyproject), _cli_options(args))
    if "-" in paths:
        if len(paths) > 1:
            raise UsageError("`-` (stdin to stdout) cannot be combined with other paths")
        if args.format == "json":
            raise UsageError("--format json cannot be used with `-`: stdout carries the notebook")
        return _run_stdin(options, check=args.check)
    return _run_files(paths, options, check=args.check, fmt=args.format)


def _run_stdin(options: _Options, *, check: bool) -> int:
    """Filter stdin to stdout; bytes that are not a notebook pass through unchanged (exit 0)."""
    opts = options.for_config(options.resolver.for_path(Path.cwd()))
    data = sys.stdin.buffer.read()
    try:
        out, changed = strip_data(data, opts)
    except NotebookReadError as exc:
        print(f"nbmedic: warning: stdin is not a notebook ({exc}); passed through unchanged", file=sys.stderr)
        out, changed = data, False
        if check:
            return 0
    if check:
        if changed:
            print("nbmedic: stdin would be stripped", file=sys.stderr)
        return 1 if changed else 0
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0


def _run_files(paths: list[str], options: _Options, *, check: bool, fmt: str) -> int:
    files = discover(paths, options.resolver)
    changed_files: list[str] = []
    unchanged: list[str] = []
    findings: list[Finding] = []
    code = 0
    for path in files:
        name = str(path)
        try:
            opts = options.for_path(path)
            data = path.read_bytes()
            out, changed = strip_data(data, opts)
            if changed and not check:
                atomic_write_bytes(path, out)
        except NotebookReadError as exc:
            print(f"nbmedic: {name}: not stripped: {exc}", file=sys.stderr)
            findings.extend(read_error_findings(name, exc))
            code = 1
            continue
        except OSError as exc:
            why = exc.strerror or str(exc)
            print(f"nbmedic: {name}: not stripped: {why}", file=sys.stderr)
            findings.extend(read_error_findings(name, exc))
            code = 1
            continue
        (changed_files if changed else unchanged).append(name)
        if changed and fmt == "text":
            print(f"would strip {name}" if check else f"stripped {name}")
    if check and changed_files:
        code = 1
    if fmt == "json":

        key = "would_strip" if check else "stripped"
        emit(findings, [str(p) for p in files], "json",
             extra={"check": check, key: changed_files, "unchanged": unchanged})
    else:
        verb = "would be stripped" if check else "stripped"
        failed = f", {len(findings)} not readable" if findings else ""
        print(f"{len(changed_files)} of {len(files)} notebook(s) {verb}, {len(unchanged)} unchanged{failed}")
    return code
