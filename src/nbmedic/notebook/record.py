"""One record per notebook a command works on: read once, then handed to checks, probes and runs.

``NotebookFile.name`` is the notebook's identity in every finding (the path as discovered or named);
only renderers turn it into display text.  ``read_error_findings`` is the one place a file that cannot
be read or parsed becomes a finding (NB000, NB001, NB002, or NB020 for a file too large to parse).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbmedic.config import Config
from nbmedic.findings import Finding, make
from nbmedic.notebook.io import NotebookReadError, load_bytes
from nbmedic.units import format_bytes

HARD_SIZE_LIMIT = 512 * 1024 * 1024  # larger files are reported, not parsed

_FIXES = {
    "truncated": "`nbmedic repair FILE` recovers every complete cell and the metadata",
    "bom": "`nbmedic repair FILE` removes the byte-order mark",
    "html": "download the notebook again with the site's 'Raw'/'Download' button, not 'Save page as'",
}


@dataclass
class NotebookFile:
    """A notebook as a command sees it: its bytes, the parsed notebook or why it has none, its config."""

    path: Path
    config: Config
    data: bytes = b""
    nb: dict[str, Any] | None = None
    error: NotebookReadError | OSError | None = None
    size: int = 0

    @property
    def name(self) -> str:
        """The identity findings carry (renderers show it relative to the working folder)."""
        return os.fspath(self.path)

    def error_findings(self) -> list[Finding]:
        """Why this file cannot be used as a notebook (NB000/NB001/NB002/NB020); [] when it parsed."""
        return [] if self.error is None else read_error_findings(self.name, self.error)


def read_notebook_file(path: Path, config: Config, *, max_size: int = HARD_SIZE_LIMIT) -> NotebookFile:
    """Read and parse ``path`` once (one open and fstat); never raises for a bad file."""
    record = NotebookFile(path=path, config=config)
    try:
        with open(path, "rb") as fh:
            record.size = os.fstat(fh.fileno()).st_size
            if record.size > max_size:
                record.error = NotebookReadError(
                    "too-large", f"the file is {format_bytes(record.size)}, too large to analyse "
                    f"(limit {format_bytes(max_size)})", evidence={"size": record.size, "limit": max_size})
                return record
            record.data = fh.read()
    except OSError as exc:
        record.error = exc
        return record
    try:
        record.nb = load_bytes(record.data)
    except NotebookReadError as exc:
        record.error = exc
    return record


def read_error_findings(name: str, error: NotebookReadError | OSError) -> list[Finding]:
    """Why a file cannot be used as a notebook, as one finding."""
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return [make("NB000", name, f"cannot read the file: {reason}",
                     evidence={"errno": error.errno, "error": reason})]
    evidence: dict[str, Any] = {"problem": error.kind, **error.evidence}
    if error.line is not None:
        evidence["line"], evidence["column"] = error.line, error.column
    if error.kind == "too-large":
        return [make("NB020", name, error.message, evidence={"size": error.evidence["size"],
                                                               "limit": error.evidence["limit"]})]
    if error.kind == "conflict":
        return [make("NB002", name, f"the file holds {error.message}", evidence=evidence)]
    return [make("NB001", name, f"not a notebook: {error.message}", evidence=evidence, fix=_FIXES.get(error.kind))]
