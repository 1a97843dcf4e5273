"""``--format json``: the public, versioned contract ``{"version": 1, "findings": [...], ...}``.

Paths appear as the command found them: as named on the command line, or joined to the folder that was
searched (the text report shows them relative to the working folder instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from nbmedic.findings import JSON_VERSION, Finding, sort_findings


def summary(findings: Iterable[Finding], files: int) -> dict[str, int]:
    counts = {"files": files, "error": 0, "warning": 0, "info": 0}
    for f in findings:
        counts[f.severity] += 1
    return counts


def render_json(findings: Iterable[Finding], *, extra: Mapping[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"version": JSON_VERSION, "findings": [f.to_dict() for f in sort_findings(findings)]}
    if extra:
        doc.update(extra)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode("utf-8") + "\n"
