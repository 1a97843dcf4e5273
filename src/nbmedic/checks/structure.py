"""NB001-NB004: is the file JSON, free of conflict markers, schema-valid, with sane cell ids?"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from nbmedic.findings import Finding, make

if TYPE_CHECKING:
    from nbmedic.checks.engine import NotebookContext, Rule
    from nbmedic.notebook.io import NotebookReadError

CURRENT_MINOR = 5
ID_RE = re.compile(r"^[a-zA-Z0-9-_]+$")
MAX_SCHEMA_ERRORS = 5

RULES: list[tuple[tuple[str, ...], Rule]] = []  # check_format runs first, on every parsed file


def read_error_findings(path: str, exc: NotebookReadError) -> list[Finding]:
    evidence: dict[str, Any] = {"problem": exc.kind, **exc.evidence}
    if exc.line is not None:
        evidence["line"], evidence["column"] = exc.line, exc.column
    if exc.kind == "conflict":
        return [make("NB002", path, f"the file holds {exc.message}", evidence=evidence)]
    fix = None
    if exc.kind == "truncated":
        fix = "`nbmedic repair FILE` recovers every complete cell and the metadata"
    elif exc.kind == "bom":
        fix = "`nbmedic repair FILE` removes the byte-order mark"
    elif exc.kind == "html":
        fix = "download the notebook again with the site's 'Raw'/'Download' button, not 'Save page as'"
    return [make("NB001", path, f"not a notebook: {exc.message}", evidence=evidence, fix=fix)]


@lru_cache(maxsize=None)
def _schema(minor: int) -> dict[str, Any]:
    name = f"nbformat.v4.{min(max(minor, 0), CURRENT_MINOR)}.schema.json"
    text = resources.files("nbformat").joinpath("v4", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=None)
def _fast_validator(minor: int) -> Any:
    import fastjsonschema

    return fastjsonschema.compile(_schema(minor))


def _json_path(parts: Iterable[object]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _is_id_error(error: Any) -> bool:
    """Schema errors about cell ids are reported by NB004 with better words."""
    path = list(error.absolute_path)
    if path and path[-1] == "id":
        return True
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = set(error.instance) - set(error.schema.get("properties", {}))
        return extra == {"id"}
    if error.validator == "required" and "'id'" in error.message:
        return True
    if error.validator in ("oneOf", "anyOf") and error.context:
        return all(_is_id_error(e) or e.validator == "enum" for e in error.context)  # cell-type branches
    return False


def schema_errors(nb: dict[str, Any], minor: int) -> list[tuple[str, str]]:
    """(JSON path, message) for the first schema violations, ids excepted; [] when valid."""
    try:
        _fast_validator(minor)(nb)
        return []
    except Exception:  # fastjsonschema.JsonSchemaException; its details are poor, so ask jsonschema
        pass
    import jsonschema

    validator = jsonschema.Draft4Validator(_schema(minor))
    errors = []
    for error in sorted(validator.iter_errors(nb), key=lambda e: [str(p) for p in e.absolute_path]):
        if _is_id_error(error):
            continue
        best = jsonschema.exceptions.best_match([error])
        message = best.message
        if len(message) > 200:
            message = message[:197] + "..."
        errors.append((_json_path(best.absolute_path), message))
    return errors


def check_format(ctx: NotebookContext) -> Iterator[Finding]:
    nb = ctx.nb
    major = ctx.major
    if major == 3 or (major is not None and major < 3):
        yield ctx.finding(
            "NB003", f"old notebook format {major}: Jupyter converts it on open; `nbmedic repair` writes "
            "nbformat 4", severity="info", evidence={"nbformat": major, "nbformat_minor": nb.get("nbformat_minor")},
            fix="`nbmedic repair FILE` converts it to nbformat 4")
        return
    if major != 4:
        yield ctx.finding(
            "NB003", "no valid `nbformat` version field: "
            + ("the key is missing" if "nbformat" not in nb else f"nbformat is {nb.get('nbformat')!r}"),
            evidence={"nbformat": nb.get("nbformat"), "keys": sorted(nb)[:20]})
        return
    errors = schema_errors(nb, ctx.minor)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        cell = _cell_of(first[0])
        yield ctx.finding(
            "NB003", f"schema violation at {first[0]}: {first[1]}{more}", cell=cell,
            evidence={"errors": [{"path": p, "message": m} for p, m in errors[:MAX_SCHEMA_ERRORS]],
                      "count": len(errors), "nbformat": f"4.{ctx.minor}"})
    yield from _check_ids(ctx)


def _cell_of(json_path: str) -> int | None:
    m = re.match(r"^\$\.cells\[(\d+)\]", json_path)
    return int(m.group(1)) if m else None


def _check_ids(ctx: NotebookContext) -> Iterator[Finding]:
    cells = list(ctx.iter_cells())
    with_id = [(i, c["id"]) for i, c in cells if "id" in c]
    minor = ctx.minor
    if minor < CURRENT_MINOR:
        if with_id:
            yield ctx.finding(
                "NB004", f"{len(with_id)} cell(s) carry an `id` but nbformat_minor is {minor}: Jupyter "
                "refuses it with \"Additional properties are not allowed ('id' was unexpected)\"",
                evidence={"nbformat_minor": minor, "cells_with_id": [i for i, _ in with_id][:20]},
                fix="`nbmedic repair FILE` sets nbformat_minor to 5 (ids need nbformat 4.5)")
        return
    missing = [i for i, c in cells if "id" not in c]
    if missing:
        yield ctx.finding(
            "NB004", f"{len(missing)} cell(s) have no `id` although nbformat_minor is {minor}; Jupyter "
            "invents new ones on every open, so diffs churn", severity="warning",
            cell=missing[0], evidence={"cells": missing[:20], "count": len(missing)})
    bad = [(i, v) for i, v in with_id
           if not isinstance(v, str) or not ID_RE.match(v) or not 1 <= len(v) <= 64]
    for i, value in bad[:10]:
        yield ctx.finding(
            "NB004", f"cell id {value!r} is invalid: ids are 1-64 characters of letters, digits, '-' and '_'",
            cell=i, cell_id=None, evidence={"id": value})
    counts = Counter(v for _, v in with_id if isinstance(v, str))
    for value, count in counts.items():
        if count > 1:
            where = [i for i, v in with_id if v == value]
            yield ctx.finding(
                "NB004", f"cell id {value!r} is used by {count} cells ({', '.join(map(str, where[:10]))}); "
                "ids must be unique", cell=where[1], evidence={"id": value, "cells": where})
