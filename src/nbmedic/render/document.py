"""The report document: what ``--format json`` prints, and what every other format is rendered from.

``{"version": 1, "findings": [...], "summary": {...}, "files": [...], ...}`` plus what a command adds:
``runs`` (``RunResult.to_dict``: per-cell figures and the sampled memory timeline), ``grid``, ``machine``
(the limits of the machine that ran them), ``incidents``.  ``--report FILE.html`` / ``.sarif`` /
``.json`` and ``nbmedic report DOC.json -o FILE`` all render one such document, so a saved
``--format json`` output gives the same page as the command that made it.

``load_document`` reads a saved one back with one-line errors; ``findings_of`` turns its findings into
``Finding`` objects again (for the terminal report of a saved document).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from nbmedic.errors import UsageError
from nbmedic.execute.cgroup import read_cgroup
from nbmedic.execute.forensics import host_memory_total
from nbmedic.findings import CODES, JSON_VERSION, Finding, sort_findings, to_json

__all__ = ["build_document", "findings_of", "int_or_none", "load_document", "machine_facts", "summary", "to_json"]


def summary(findings: Iterable[Finding], files: int) -> dict[str, int]:
    counts = {"files": files, "error": 0, "warning": 0, "info": 0}
    for f in findings:
        counts[f.severity] += 1
    return counts


def build_document(findings: Iterable[Finding], files: Sequence[str],
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document of a command's result: its findings (in report order), their counts, the files it
    looked at, and ``extra`` (runs, grid, machine, ...)."""
    ordered = sort_findings(findings)
    doc: dict[str, Any] = {"version": JSON_VERSION, "findings": [f.to_dict() for f in ordered],
                           "summary": summary(ordered, len(files)), "files": list(files)}
    if extra:
        doc.update(extra)
    return doc


def machine_facts() -> dict[str, Any]:
    """The limits of this machine, for a report's summary: RAM, CPUs, the cgroup's memory limit."""
    cgroup = read_cgroup()
    return {"ram": host_memory_total(), "cpus": os.cpu_count(), "cgroup_memory_limit": cgroup.limit}


def load_document(path: str) -> dict[str, Any]:
    """A saved ``--format json`` document; UsageError (one line) when it cannot be read or is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc}); give the output of a command run with --format json") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list) or "version" not in doc:
        raise UsageError(f"{path}: not an nbmedic document (no version and findings); give the output of a "
                         "command run with --format json")
    if doc["version"] != JSON_VERSION:
        raise UsageError(f"{path}: document version {doc['version']!r}; this nbmedic reads version {JSON_VERSION}")
    try:
        findings_of(doc)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    for key in ("runs", "files", "incidents"):
        if key in doc and not isinstance(doc[key], list):
            raise UsageError(f"{path}: {key!r} is not a list")
    return doc


def int_or_none(value: object) -> int | None:
    """``value`` when it is an integer (not a boolean), else None: how a document's counts and indices are
    read (a saved document may have been edited by hand)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def findings_of(doc: Mapping[str, Any]) -> list[Finding]:
    """The document's findings as ``Finding`` objects; ValueError naming the first malformed one."""
    out = []
    for i, raw in enumerate(doc.get("findings") or []):
        if not isinstance(raw, dict) or not isinstance(raw.get("code"), str) or not isinstance(raw.get("message"), str):
            raise ValueError(f"finding {i} is not a finding (code and message are required)")  # noqa: TRY004 - one error type for every malformed document
        info = CODES.get(raw["code"])
        severity = raw.get("severity") if raw.get("severity") in ("error", "warning", "info") else None
        evidence = raw.get("evidence")
        out.append(Finding(
            code=raw["code"], severity=severity or (info.severity if info else "warning"),
            path=raw.get("path") if isinstance(raw.get("path"), str) else None, message=raw["message"],
            cell=int_or_none(raw.get("cell")),
            cell_id=raw.get("cell_id") if isinstance(raw.get("cell_id"), str) else None,
            evidence=evidence if isinstance(evidence, dict) else {}, fix=_text(raw.get("fix"))))
    return out
