"""``nbmedic repair PATH...``: fix what can be fixed in broken notebook files, say what was lost.

The repair itself is pure (``nbmedic.repair.repair_bytes``); this module reads, writes (always
atomically, in nbformat's canonical layout and the input's newline style) and reports.  An input
file is only ever replaced with ``--in-place``, after its ``NAME.ipynb.bak`` copy was written.

Exit codes: 0 every file repaired with nothing lost (or nothing to repair); 1 something was lost
or a file could not be repaired or written; 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.commands.outputs import check_output_option, destination
from nbmedic.findings import JSON_VERSION
from nbmedic.notebook.io import atomic_write_bytes, dumps, encode_text
from nbmedic.render.document import to_json
from nbmedic.repair import repair_bytes


@dataclass
class FileReport:
    path: str
    output: str | None
    status: str  # repaired | unchanged | failed
    message: str
    actions: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "output": self.output, "status": self.status, "message": self.message,
                "actions": self.actions, "lost": self.lost}


def repair_file(path: Path, args: argparse.Namespace) -> FileReport:
    shown = str(path)
    if path.is_dir():
        return FileReport(shown, None, "failed", "is a folder: repair takes notebook files")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileReport(shown, None, "failed", f"cannot read the file: {exc.strerror or exc}")
    result = repair_bytes(data, prefer=args.prefer)
    report = FileReport(shown, None, result.status, result.message, result.actions, result.lost)
    if result.status != "repaired" or result.nb is None:
        return report
    target = destination(path, args, "repaired")
    payload = encode_text(dumps(result.nb, result.newline))
    try:
        if args.in_place:
            backup = path.with_name(path.name + ".bak")
            atomic_write_bytes(backup, data)
            report.actions.append(f"kept the original as {backup}")
        atomic_write_bytes(target, payload)
    except OSError as exc:
        report.status = "failed"
        where = exc.filename or target
        report.message = f"repaired, but cannot write {where}: {exc.strerror or exc}; the input is untouched"
        return report
    report.output = str(target)
    return report


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths]
    check_output_option(args, paths, "repaired")
    reports = [repair_file(p, args) for p in paths]
    if args.format == "json":
        sys.stdout.write(to_json({"version": JSON_VERSION, "findings": [], "repairs": [r.to_dict() for r in reports]}))
    else:
        sys.stdout.write(render_text(reports))
    failing = any(r.status == "failed" or r.lost for r in reports)
    return 1 if failing else 0


def render_text(reports: list[FileReport]) -> str:
    lines: list[str] = []
    for r in reports:
        if r.status == "repaired":
            lines.append(f"{r.path} -> {r.output}: {r.message}")
        elif r.status == "unchanged":
            lines.append(f"{r.path}: {r.message}")
        else:
            lines.append(f"{r.path}: {r.message}" + (" (nothing written)" if r.output is None else ""))
        lines += [f"  fixed: {a}" for a in r.actions]
        lines += [f"  LOST:  {x}" for x in r.lost]
    counts = {s: sum(r.status == s for r in reports) for s in ("repaired", "unchanged", "failed")}
    with_loss = sum(bool(r.lost) and r.status == "repaired" for r in reports)
    summary = (f"{counts['repaired']} repaired" + (f" ({with_loss} with losses)" if with_loss else "")
               + f", {counts['unchanged']} with nothing to repair, {counts['failed']} failed")
    lines.append(summary)
    return "\n".join(lines) + "\n"
