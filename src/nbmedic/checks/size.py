"""NB020-NB022: notebooks too large to save or keep in version control, outputs and streams too large.

NB020 compares the file with every limit a save must pass (``savelimits``: the project's ``max_size``, the
team's proxy from ``deployment``/``save_limit``, the browser, the Jupyter server) and names the smallest.

Cheap gates first: an output cannot exceed the limit if the whole file does not, and a stream
cannot hold N lines unless the file holds N-1 escaped newlines.  Sizes are measured on the parsed
strings (base64 images, text) without re-serialising anything except JSON mime bundles.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from nbmedic.checks.rules import CheckEnv, NotebookContext, RuleTable
from nbmedic.config import Config
from nbmedic.findings import Finding
from nbmedic.notebook.sizes import OutputSize, bundle_size, output_size
from nbmedic.savelimits import MAX_SIZE, SaveLimit, save_limits
from nbmedic.units import format_bytes

MAX_REPORTED = 10  # NB021/NB022 findings per notebook
TOP_N = 3


def iter_output_sizes(ctx: NotebookContext, *, attachments: bool = False) -> Iterator[OutputSize]:
    for index, cell in ctx.iter_cells():
        outputs = cell.get("outputs")
        if isinstance(outputs, list):
            for k, output in enumerate(outputs):
                if isinstance(output, dict):
                    yield output_size(index, k, output)
        if attachments:
            found = cell.get("attachments")
            if isinstance(found, dict):
                for name, bundle in found.items():
                    size, mime = bundle_size(bundle)
                    yield OutputSize(size, index, None, mime or "none", "attachment", str(name))


_LIMITS_KEY = "nb020-save-limits"


def _limits_of(config: Config, env: CheckEnv) -> tuple[list[SaveLimit], SaveLimit | None]:
    """(every save limit, smallest first; the ``max_size`` one) of ``config``, worked out once per
    configuration of a command."""
    cache: dict[int, tuple[Config, list[SaveLimit], SaveLimit | None]] = env.cache.setdefault(_LIMITS_KEY, {})
    hit = cache.get(id(config))
    if hit is None or hit[0] is not config:
        limits = save_limits(config)
        own = next((limit for limit in limits if limit.name == MAX_SIZE), None)
        hit = cache[id(config)] = (config, limits, own)
    return hit[1], hit[2]


def _named(limit: SaveLimit, own: SaveLimit | None) -> str:
    return f"the {format_bytes(limit.bytes)} limit (`max_size`)" if limit is own else \
        f"the {format_bytes(limit.bytes)} {limit.name}"


def check_notebook_size(ctx: NotebookContext) -> Iterator[Finding]:
    """NB020: the file is larger than the smallest limit a save must pass (``max_size``, the deployment's
    proxy, ``save_limit``, the browser, the Jupyter server: ``savelimits``), named with what happens there."""
    size = len(ctx.data)
    limits, own = _limits_of(ctx.config, ctx.env)
    if size <= limits[0].bytes:  # the cheap path: one compare
        return
    over = [limit for limit in limits if size > limit.bytes]
    first = over[0]
    largest = heapq.nlargest(TOP_N, iter_output_sizes(ctx, attachments=True), key=lambda o: o.bytes)
    what = ""
    if largest:
        top = largest[0]
        where = f"the attachment {top.attachment!r} of cell {top.cell}" if top.attachment is not None \
            else f"output {top.output} of cell {top.cell}"
        what = f"; the largest part is {where} ({top.mime_type}, {format_bytes(top.bytes)})"
    effect = "" if first is own else f" ({first.effect})"
    also = "; also over " + ", ".join(_named(limit, own) for limit in over[1:]) if len(over) > 1 else ""
    yield ctx.finding(
        "NB020", f"the notebook is {format_bytes(size)}, over {_named(first, own)}{effect}{also}{what}",
        evidence={"size": size, "limit": first.bytes, "limit_name": first.name,
                  "save_limits": [limit.as_evidence() for limit in over],
                  "largest_outputs": [o.as_evidence() for o in largest]})


def check_output_size(ctx: NotebookContext) -> Iterator[Finding]:
    """NB021: one output is larger than ``max_output_size``."""
    limit = ctx.config.max_output_size
    if len(ctx.data) <= limit:  # no output can be larger than the file holding it
        return
    reported = 0
    for item in iter_output_sizes(ctx):
        if item.bytes > limit:
            reported += 1
            if reported > MAX_REPORTED:
                return
            yield ctx.finding(
                "NB021", f"output {item.output} of cell {item.cell} is {format_bytes(item.bytes)} of "
                f"{item.mime_type}, over the {format_bytes(limit)} limit per output",
                cell=item.cell, evidence={**item.as_evidence(), "limit": limit})


def _lines(text: Any) -> int:
    if isinstance(text, str):
        return text.count("\n") + (0 if not text or text.endswith("\n") else 1)
    if isinstance(text, list):
        return sum(_lines(t) for t in text)
    return 0


def check_stream_lines(ctx: NotebookContext) -> Iterator[Finding]:
    """NB022: a stream output (consecutive same-name streams counted together) with too many lines."""
    limit = ctx.config.max_stream_lines  # (walking the stream outputs costs less than scanning the file)
    reported = 0
    for index, cell in ctx.iter_cells():
        outputs = cell.get("outputs")
        if not isinstance(outputs, list):
            continue
        runs: list[tuple[int, str, int]] = []  # (first output index, stream name, lines)
        previous_name: str | None = None
        for k, output in enumerate(outputs):
            if not isinstance(output, dict) or output.get("output_type") != "stream":
                previous_name = None
                continue
            name = output.get("name")
            name = name if isinstance(name, str) else "stdout"
            lines = _lines(output.get("text"))
            if name == previous_name and runs:
                first, _, total = runs[-1]
                runs[-1] = (first, name, total + lines)
            else:
                runs.append((k, name, lines))
            previous_name = name
        for first, name, lines in runs:
            if lines > limit:
                reported += 1
                if reported > MAX_REPORTED:
                    return
                yield ctx.finding(
                    "NB022", f"cell {index} printed {lines:,} lines to {name} (limit {limit:,}); such output "
                    "bloats the file and slows the browser",
                    cell=index, evidence={"output": first, "name": name, "lines": lines, "limit": limit})


RULES: RuleTable = [
    (("NB020",), check_notebook_size),
    (("NB021",), check_output_size),
    (("NB022",), check_stream_lines),
]
