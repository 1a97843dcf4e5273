"""NB001-NB004: is the file JSON, free of conflict markers, schema-valid, with sane cell ids?

NB003 carries one evidence layout whatever the version: ``errors`` (the first problems, each a JSON
``path`` in the file and a ``message``), ``count`` (how many problems) and ``nbformat`` (the version as
``"major.minor"``, null when the file has no valid version field).  An nbformat 1-3 notebook is judged
by what Jupyter does to open it (``oldformat``): an error when nbformat's conversion to 4 stops or its
result violates the 4.5 schema, info otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import marshal
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import CodeType
from typing import Any

from nbmedic.cache import read_cached, write_cached
from nbmedic.checks.rules import NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.notebook import oldformat
from nbmedic.notebook.format import CURRENT_MAJOR, CURRENT_MINOR, has_ids, json_path, valid_id

MAX_SCHEMA_ERRORS = 5
MAX_EXAMINED_ERRORS = 100  # a badly broken file is not worth describing error by error

RULES: RuleTable = []  # check_format runs first, on every parsed file


@cache
def _nbformat_folder() -> Path:
    """Where nbformat's schema files are, found without importing nbformat (importing it, with jsonschema,
    took longer than checking a folder of notebooks)."""
    spec = importlib.util.find_spec("nbformat")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - nbformat is a dependency
        raise ModuleNotFoundError("nbformat is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _schema(minor: int) -> dict[str, Any]:
    name = f"nbformat.v4.{min(max(minor, 0), CURRENT_MINOR)}.schema.json"
    text = (_nbformat_folder() / "v4" / name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    if minor > CURRENT_MINOR:
        # a notebook from a newer nbformat: judge it as nbformat does, by the newest schema we know with
        # extra keys and unknown cell/output types allowed
        schema = _relaxed(schema)
        definitions = schema.get("definitions", {})
        for name in ("cell", "output"):
            branches = definitions.get(name, {}).get("oneOf")
            if isinstance(branches, list) and f"unrecognized_{name}" in definitions:
                branches.append({"$ref": f"#/definitions/unrecognized_{name}"})
    return schema


def _relaxed(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: True if k == "additionalProperties" else _relaxed(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_relaxed(v) for v in node]
    return node


#: most frequent branch first; the branches exclude each other (distinct ``cell_type``/``output_type``
#: enums, or distinct JSON types), so ``anyOf`` accepts exactly what ``oneOf`` accepts, without trying
#: (and raising inside) every branch for every cell
_BRANCH_ORDER = {
    "cell": ["code_cell", "markdown_cell", "raw_cell"],
    "output": ["stream", "display_data", "execute_result", "error"],
}


def _fast_schema(minor: int) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(json.dumps(_schema(minor)))  # a deep copy
    definitions = schema.get("definitions", {})
    for name, order in _BRANCH_ORDER.items():
        branches = definitions.get(name, {}).get("oneOf")
        refs = [b.get("$ref", "").rpartition("/")[2] for b in branches or []]
        if branches and sorted(refs) == sorted(order):
            del definitions[name]["oneOf"]
            definitions[name]["anyOf"] = [{"$ref": f"#/definitions/{ref}"} for ref in order]
    multiline = definitions.get("misc", {}).get("multiline_string", {})
    types = [b.get("type") for b in multiline.get("oneOf", [])]
    if sorted(map(str, types)) == ["array", "string"]:
        multiline["anyOf"] = sorted(multiline.pop("oneOf"), key=lambda b: b.get("type") != "string")
    return schema


class _Dispatch:
    """The schema's verdict, reached by dispatching each cell on ``cell_type`` and each output on
    ``output_type`` to the one branch that can accept it: fastjsonschema tries ``anyOf`` branches by
    raising exceptions, and most of a valid notebook's validation time went to those."""

    def __init__(self, schema: dict[str, Any]) -> None:
        definitions = schema["definitions"]
        top = json.loads(json.dumps(schema))
        top["properties"]["cells"]["items"] = {}
        code = json.loads(json.dumps(definitions["code_cell"]))
        code["properties"]["outputs"]["items"] = {"type": "object"}
        self.top = _compile(top)
        self.cells = {
            "code": _compile(_part(code, schema)),
            "markdown": _compile(_part(definitions["markdown_cell"], schema)),
            "raw": _compile(_part(definitions["raw_cell"], schema)),
        }
        self.outputs = {name: _compile(_part(definitions[name], schema))
                        for name in ("stream", "display_data", "execute_result", "error")}

    def __call__(self, nb: Any) -> None:
        self.top(nb)
        for cell in nb["cells"]:
            kind = cell.get("cell_type") if isinstance(cell, dict) else None
            check = self.cells.get(kind) if isinstance(kind, str) else None
            if check is None:
                raise ValueError("a cell of no known cell_type")
            check(cell)
            if cell["cell_type"] == "code":
                for output in cell["outputs"]:
                    kind = output.get("output_type")
                    check = self.outputs.get(kind) if isinstance(kind, str) else None
                    if check is None:
                        raise ValueError("an output of no known output_type")
                    check(output)


@cache
def _fast_validator(minor: int) -> Any:
    """A compiled validator of exactly the schema of ``minor`` (a newer minor: nbformat's relaxed one)."""
    schema = _fast_schema(minor)
    if minor > CURRENT_MINOR or "unrecognized_cell" in json.dumps(schema["definitions"].get("cell", {})):
        return _compile(schema)
    return _Dispatch(schema)


def _part(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A part of ``schema`` as a schema of its own: the schema's draft (4; without ``$schema``
    fastjsonschema compiles draft 7, which takes 1.0 for an integer where nbformat's validators do not) and
    only the definitions it refers to, so that a part several minor versions share compiles once."""
    definitions = schema["definitions"]
    needed: dict[str, Any] = {}
    todo = [node]
    while todo:
        for ref in _refs(todo.pop()):
            keys = ref.removeprefix("#/definitions/").split("/")
            source, target = definitions, needed
            for key in keys[:-1]:
                source, target = source[key], target.setdefault(key, {})
            if keys[-1] not in target:
                target[keys[-1]] = source[keys[-1]]
                todo.append(source[keys[-1]])
    return {**node, "$schema": schema.get("$schema"), "definitions": needed}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _compile(schema: dict[str, Any]) -> Any:
    """fastjsonschema's validator of ``schema`` (compiled once per distinct schema), for a verdict only:
    jsonschema says where and why.  Without detailed exceptions, which embed the schema's text in the
    generated code and took most of the time of compiling it."""
    return _compile_text(json.dumps(schema, sort_keys=True))


@cache
def _compile_text(text: str) -> Any:
    """The validator's code is generated once per schema and fastjsonschema version, then kept in the cache
    folder as a code object: generating and compiling it cost more than checking a hundred notebooks."""
    key = hashlib.sha256(f"{_generator_stamp()}\0{text}".encode()).hexdigest()[:40]
    name = f"{key}.{sys.implementation.cache_tag}.marshal"
    code = _cached_code(name)
    if code is None:
        code = compile(_generate(json.loads(text)), f"<nbmedic schema {key[:12]}>", "exec")
        write_cached(marshal.dumps(code), "schemas", name)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - code generated by fastjsonschema from nbformat's own schema
    return namespace["validate"]


# The generated code imports fastjsonschema only for its exception classes; these stand in, so a warm
# cache never imports it.  Any exception means "not valid" to ``_fast_valid``.
_EXCEPTIONS = """
class JsonSchemaValueException(ValueError):
    def __init__(self, message, *args, **kwargs):
        super().__init__(message)


class JsonSchemaValuesException(ValueError):
    def __init__(self, errors=(), *args, **kwargs):
        super().__init__(errors)
"""
_IMPORT_LINE = "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException"


def _generate(schema: dict[str, Any]) -> str:
    import fastjsonschema

    try:
        code = fastjsonschema.compile_to_code(schema, detailed_exceptions=False)
    except TypeError:  # pragma: no cover - fastjsonschema before 2.19 has no such option
        code = fastjsonschema.compile_to_code(schema)
    return code.replace(_IMPORT_LINE, _EXCEPTIONS) if _IMPORT_LINE in code else code


def _cached_code(name: str) -> CodeType | None:
    data = read_cached("schemas", name)
    if data is None:
        return None
    try:
        code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None  # a damaged cache file: generate it again
    return code if isinstance(code, CodeType) else None


@cache
def _generator_stamp() -> str:
    """What the generated code depends on besides the schema: fastjsonschema's version (its installed
    files' mtime, read without importing it) and this interpreter's byte-code format."""
    spec = importlib.util.find_spec("fastjsonschema")
    origin = spec.origin if spec is not None else None
    try:
        mtime = os.stat(os.path.join(os.path.dirname(origin), "version.py")).st_mtime_ns if origin else 0
    except OSError:
        mtime = 0
    return f"{origin}|{mtime}|{sys.implementation.cache_tag}"


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


def _is_kernelspec_error(error: Any) -> bool:
    """Schema errors inside ``metadata.kernelspec`` are reported by NB030 (a warning: Jupyter opens such files)."""
    return list(error.absolute_path)[:2] == ["metadata", "kernelspec"]


def _leaf_errors(error: Any) -> Iterator[tuple[Any, str | None]]:
    """(error, better message or None): a cell's or output's "not valid under any of the given schemas"
    is replaced by the errors of the one branch its ``cell_type``/``output_type`` selects."""
    instance = error.instance
    if error.validator in ("oneOf", "anyOf") and error.context:
        if isinstance(instance, dict):
            key = next((k for k in ("cell_type", "output_type") if k in instance), None)
            if key is not None:
                branches: dict[Any, list[Any]] = {}
                for sub in error.context:
                    branch = sub.relative_schema_path[0] if sub.relative_schema_path else None
                    branches.setdefault(branch, []).append(sub)
                matching = [subs for subs in branches.values()
                            if not any(list(e.relative_path)[:1] == [key] for e in subs)]
                if len(matching) == 1:
                    for sub in matching[0]:
                        yield from _leaf_errors(sub)
                    return
                if not matching:
                    yield error, f"unknown {key} {instance[key]!r}"
                    return
        elif all(sub.validator == "type" for sub in error.context):
            wanted = sorted({str(sub.validator_value) for sub in error.context})
            yield error, f"expected {' or '.join(wanted)}, got {_got(instance)}"
            return
    yield error, None


def _fast_valid(nb: dict[str, Any], minor: int) -> bool:
    try:
        _fast_validator(minor)(nb)
    except Exception:  # noqa: BLE001 - fastjsonschema's JsonSchemaException, or anything it meets in odd data
        return False
    return True


def _with_ignored_put_right(nb: dict[str, Any], minor: int, skip_kernelspec: bool) -> dict[str, Any]:
    """A shallow copy of ``nb`` with valid cell ids (none before 4.5) and, with ``skip_kernelspec``, a
    valid ``metadata.kernelspec``: the errors ``schema_errors`` leaves to NB004 and NB030 put right."""
    copy = dict(nb)
    cells = nb.get("cells")
    if isinstance(cells, list):
        ids = has_ids(CURRENT_MAJOR, minor)
        copy["cells"] = [({**cell, "id": "c"} if ids else {k: v for k, v in cell.items() if k != "id"})
                         if isinstance(cell, dict) else cell for cell in cells]
    meta = nb.get("metadata")
    if skip_kernelspec and isinstance(meta, dict) and "kernelspec" in meta:
        copy["metadata"] = {**meta, "kernelspec": {"name": "k", "display_name": "k"}}
    return copy


def schema_errors(nb: dict[str, Any], minor: int, *, skip_kernelspec: bool = False) -> list[tuple[str, str]]:
    """(JSON path, message) for the first schema violations, ids excepted; [] when valid."""
    if _fast_valid(nb, minor) or _fast_valid(_with_ignored_put_right(nb, minor, skip_kernelspec), minor):
        return []  # (the second: only errors NB004 or NB030 report, found without jsonschema's slow walk)
    return _detailed_errors(nb, minor, skip_kernelspec)


def _detailed_errors(nb: dict[str, Any], minor: int, skip_kernelspec: bool) -> list[tuple[str, str]]:
    import jsonschema  # the fast validator's details are poor: ask jsonschema where and why

    validator = jsonschema.Draft4Validator(_schema(minor))
    errors = []
    leaves = itertools.islice((leaf for top in validator.iter_errors(nb) for leaf in _leaf_errors(top)),
                              MAX_EXAMINED_ERRORS)
    for error, better in sorted(leaves, key=lambda pair: [str(p) for p in pair[0].absolute_path]):
        if _is_id_error(error) or (skip_kernelspec and _is_kernelspec_error(error)):
            continue
        message = better or jsonschema.exceptions.best_match([error]).message
        if len(message) > 200:
            message = message[:197] + "..."
        errors.append((json_path(error.absolute_path), message))
    return errors


def check_format(ctx: NotebookContext) -> Iterator[Finding]:
    nb = ctx.nb
    old = oldformat.old_major(nb)
    if old is not None:
        yield _check_old_format(ctx, old)
        return
    if ctx.major != CURRENT_MAJOR:
        value = nb.get("nbformat")
        problem = oldformat.MISSING if "nbformat" not in nb else f"expected the integer 4, got {_got(value)}"
        yield _nb003(ctx, "no valid `nbformat` version field: "
                     + ("the key is missing" if "nbformat" not in nb else f"nbformat is {value!r}"),
                     [("$.nbformat", problem)], None)
        return
    errors = schema_errors(nb, ctx.minor, skip_kernelspec=ctx.config.wants("NB030"))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        yield _nb003(ctx, f"schema violation at {first[0]}: {first[1]}{more}", errors, f"4.{ctx.minor}",
                     cell=_cell_of(first[0]))
    yield from _check_ids(ctx)


def _nb003(ctx: NotebookContext, message: str, errors: list[tuple[str, str]], version: str | None,
           **kwargs: Any) -> Finding:
    """An NB003 finding in its one evidence layout."""
    evidence = {"errors": [{"path": p, "message": m} for p, m in errors[:MAX_SCHEMA_ERRORS]],
                "count": len(errors), "nbformat": version}
    return ctx.finding("NB003", message, evidence=evidence, **kwargs)


def _got(value: object) -> str:
    return f"{oldformat.json_kind(value)} {oldformat.short(value)}"


def _repair_mends(stop: oldformat.ConversionError) -> bool:
    """Does ``nbmedic repair`` mend this conversion stop?  It adds a missing ``metadata``, ``worksheets``
    (``cells`` in nbformat 1) or worksheet ``cells``, replaces metadata that is not an object and rewrites
    the version fields."""
    if stop.path in ("$.metadata", "$.nbformat", "$.nbformat_minor"):
        return True
    return stop.message == oldformat.MISSING and re.fullmatch(r"\$\.(worksheets|cells|worksheets\[\d+\]\.cells)",
                                                             stop.path) is not None


def _check_old_format(ctx: NotebookContext, major: int) -> Finding:
    """Info when Jupyter converts the file to a valid notebook on open; an error naming the problem when
    its conversion stops (Jupyter cannot open the file) or gives an invalid notebook (Jupyter opens it
    with a "Notebook validation failed" warning)."""
    version = f"{major}.{ctx.minor}"
    try:
        converted = oldformat.upgrade(ctx.nb, major)
    except oldformat.ConversionError as exc:
        fix = ("`nbmedic repair FILE` rebuilds what is missing and converts the notebook to nbformat 4"
               if _repair_mends(exc) else
               f"correct {exc.path} by hand (nbformat cannot convert the notebook until then), then "
               "`nbmedic repair FILE` converts it to nbformat 4")
        return _nb003(ctx, f"nbformat {version} notebook that Jupyter cannot open (\"Unreadable Notebook\"): "
                      f"converting it to nbformat 4 stops at {exc.path}: {exc.message}", [(exc.path, exc.message)],
                      version,
                      cell=exc.cell, cell_id=None, fix=fix)
    found = schema_errors(converted.nb, CURRENT_MINOR)
    if not found:
        return _nb003(ctx, f"old notebook format {major}: Jupyter converts it on open; `nbmedic repair` writes "
                      "nbformat 4", [], version, severity="info",
                      fix="`nbmedic repair FILE` converts it to nbformat 4")
    errors = [(converted.file_path(path), message) for path, message in found]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _nb003(ctx, f"nbformat {version} notebook that converts to an invalid nbformat 4 one (Jupyter warns "
                  f"\"Notebook validation failed\"): schema violation at {errors[0][0]}: {errors[0][1]}{more}",
                  errors, version,
                  cell=_cell_of(found[0][0]), cell_id=None,
                  fix="`nbmedic repair FILE` converts it to nbformat 4 and repairs what it can of the rest")


def _cell_of(path: str) -> int | None:
    m = re.match(r"^\$\.cells\[(\d+)\]", path)
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
           if not valid_id(v)]
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
                "ids must be unique; Jupyter renames the copies on open, so diffs and merges lose track of them",
                severity="warning", cell=where[1], evidence={"id": value, "cells": where})
