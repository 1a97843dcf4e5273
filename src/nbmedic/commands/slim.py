"""``nbmedic slim NB...``: shrink notebooks under a size target without touching any source.

The work is ``nbmedic.slim.slim_notebook`` (the same function makes the ``--dry-run`` plan and the real
run).  Like ``repair``, the result goes to ``NAME.slim.ipynb`` next to the input unless ``-o OUT`` or
``--in-place`` (which keeps ``NAME.ipynb.bak``) says otherwise; writes are atomic, in Jupyter's layout and
the input's newline style, and a notebook that needs no change is not written at all.  When the target
cannot be met even once every output is cleared, the smallest result is still written and the exit code
is 1.

Exit codes: 0 every notebook is under its target; 1 a target was not met or a file could not be written;
2 usage error or a file that is not a notebook (named on one line; the file is left as it was).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.commands.outputs import check_output_option, destination
from nbmedic.config import ConfigResolver
from nbmedic.errors import UsageError
from nbmedic.findings import JSON_VERSION, to_json
from nbmedic.notebook.io import (
    NotebookReadError,
    atomic_write_bytes,
    dumps,
    encode_text,
    load_large,
)
from nbmedic.savelimits import smallest
from nbmedic.slim import Change, slim_notebook
from nbmedic.units import format_bytes, parse_size


@dataclass
class FileReport:
    path: str
    status: str  # slimmed | unchanged | failed
    message: str = ""
    output: str | None = None  # the file written (or that would be, with --dry-run)
    written: bool = False
    before: int = 0
    after: int = 0
    target: int = 0
    limit: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    readable: bool = True  # False: not a notebook (said on stderr, in one line)

    @property
    def met(self) -> bool:
        return self.status != "failed" and self.after <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "message": self.message, "output": self.output,
                "written": self.written, "size_before": self.before, "size_after": self.after,
                "target": self.target, "limit": self.limit, "met": self.met, "steps": self.steps,
                "changes": [c.as_dict() for c in self.changes], "notes": self.notes}


def _read(path: Path) -> tuple[dict[str, Any], str, int]:
    """(notebook, newline, size on disk); UsageError naming the file when it is not an nbformat-4 notebook.

    ``load_large`` never holds the file's bytes, its text and its objects at once: a 60 MB notebook peaks
    at about twice its size while it is read, where ``load_bytes`` of the bytes took three and a half."""
    if path.is_dir():
        raise UsageError(f"{path}: is a folder: slim takes notebook files")
    try:
        nb, size, newline = load_large(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except NotebookReadError as exc:
        raise UsageError(f"{path}: not a notebook: {exc} (try `nbmedic repair`)") from None
    cells = nb.get("cells")
    if nb.get("nbformat") != 4 or not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise UsageError(f"{path}: not an nbformat 4 notebook (`nbmedic repair` converts and mends it)")
    return nb, newline, size


def _write(path: Path, target: Path, payload: bytes, report: FileReport, *, in_place: bool) -> None:
    try:
        if in_place:
            backup = path.with_name(path.name + ".bak")
            atomic_write_bytes(backup, path.read_bytes())
            report.notes.append(f"kept the original as {backup}")
        atomic_write_bytes(target, payload)
    except OSError as exc:
        report.status = "failed"
        report.message = f"cannot write {exc.filename or target}: {exc.strerror or exc}; the input is untouched"
        return
    report.written = True


def slim_file(path: Path, args: argparse.Namespace, resolver: ConfigResolver, target: int | None) -> FileReport:
    nb, newline, size = _read(path)
    limit = smallest(resolver.for_path(path))
    report = FileReport(str(path), "unchanged", before=size, after=size, target=limit.bytes if target is None
                        else target, limit=limit.name if target is None else "--target")
    if size <= report.target:
        report.message = "already under the target"
        return report
    result = slim_notebook(nb, report.target, newline=newline, lossy=args.lossy)
    report.notes += result.notes
    if not result.changes:
        report.message = "nothing left to slim: no output to shrink or clear"
        return report
    if result.after >= size:  # a file written more compactly than Jupyter writes notebooks
        report.message = (f"slimmed, in Jupyter's layout, it would take {result.after:,} bytes, "
                          f"not fewer than the file's {size:,}")
        return report
    report.status, report.steps, report.changes = "slimmed", result.steps(), result.changes
    report.after = result.after
    report.output = str(destination(path, args, "slim"))
    if not args.dry_run:
        payload = encode_text(dumps(nb, newline))
        report.after = len(payload)
        _write(path, Path(report.output), payload, report, in_place=args.in_place)
    report.message = "under the target" if report.met else "still over the target after every step"
    return report


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths]
    check_output_option(args, paths, "slim")
    pyproject = Path(args.config) if args.config else None
    if pyproject is not None and not pyproject.is_file():
        raise UsageError(f"--config {pyproject}: no such file")
    target = parse_size(args.target, what="--target") if args.target is not None else None
    resolver = ConfigResolver(pyproject=pyproject)
    reports: list[FileReport] = []
    bad = 0
    for path in paths:
        try:
            reports.append(slim_file(path, args, resolver, target))
        except UsageError as exc:
            bad += 1
            print(f"nbmedic: error: {exc}", file=sys.stderr)
            reports.append(FileReport(str(path), "failed", str(exc), readable=False))
    if args.format == "json":
        sys.stdout.write(to_json({"version": JSON_VERSION, "findings": [], "dry_run": args.dry_run,
                                   "slim": [r.to_dict() for r in reports]}))
    elif any(r.readable for r in reports):
        sys.stdout.write(render_text([r for r in reports if r.readable], dry_run=args.dry_run))
    if bad:
        return 2
    return 0 if all(r.met for r in reports) else 1


def _headline(r: FileReport, dry_run: bool) -> str:
    target = f"the target {format_bytes(r.target)} ({r.limit})"
    if r.status == "failed":
        return f"{r.path}: {r.message}"
    if r.status == "unchanged":
        verdict = "under" if r.met else "over"
        return f"{r.path}: {format_bytes(r.before)}, {verdict} {target}: {r.message}; nothing written"
    where = f"{r.path} (dry run, would write {r.output})" if dry_run else f"{r.path} -> {r.output}"
    verdict = "under" if r.met else "STILL OVER"
    return f"{where}: {format_bytes(r.before)} -> {format_bytes(r.after)}, {verdict} {target}"


def _change_line(c: Change) -> str:
    where = "notebook metadata" if c.cell is None else f"cell {c.cell} output {c.output}"
    return (f"    {where:<20} {c.mime_type:<28} {format_bytes(c.size):>10}  {c.step:<16} "
            f"-{format_bytes(c.saved):<10} {c.detail}")


def render_text(reports: list[FileReport], *, dry_run: bool) -> str:
    lines: list[str] = []
    for r in reports:
        lines.append(_headline(r, dry_run))
        for step in r.steps:
            line = f"  {step['step']:<17} saved {format_bytes(step['saved']):>10} in {step['outputs']} output(s)"
            if step["step"] == "clear-outputs":
                cells = sorted({c.cell for c in r.changes if c.step == "clear-outputs" and c.cell is not None})
                line += ": cells " + ", ".join(map(str, cells))
            lines.append(line)
        lines += [f"  note: {n}" for n in r.notes]
        if dry_run and r.changes:
            lines.append("  plan:")
            lines += [_change_line(c) for c in r.changes]
    counts = {s: sum(r.status == s for r in reports) for s in ("slimmed", "unchanged", "failed")}
    over = sum(not r.met and r.status != "failed" for r in reports)
    verb = "would be slimmed" if dry_run else "slimmed"
    lines.append(f"{counts['slimmed']} {verb}, {counts['unchanged']} unchanged, {over} over the target, "
                 f"{counts['failed']} failed")
    return "\n".join(lines) + "\n"
