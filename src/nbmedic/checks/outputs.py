"""NB050-NB051: saved outputs that will not show as the author saw them, or that record failures.

Both rules first look for a marker in the raw bytes (C speed) and walk the cells only if it is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nbmedic.ansi import strip_ansi
from nbmedic.checks.rules import NotebookContext, RuleTable
from nbmedic.findings import Finding
from nbmedic.notebook.cells import RAISES_TAG, cell_tags

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MAX_LISTED = 20


def _outputs(cell: dict[str, Any]) -> list[Any]:
    outputs = cell.get("outputs")
    return outputs if isinstance(outputs, list) else []


def _saved_widget_ids(ctx: NotebookContext) -> set[str] | None:
    meta = ctx.nb.get("metadata")
    widgets = meta.get("widgets") if isinstance(meta, dict) else None
    saved = widgets.get(WIDGET_STATE) if isinstance(widgets, dict) else None
    state = saved.get("state") if isinstance(saved, dict) else None
    return {str(k) for k in state} if isinstance(state, dict) else None


def check_widgets(ctx: NotebookContext) -> Iterator[Finding]:
    """NB050: widget views whose model state was not saved with the notebook."""
    if b"widget-view+json" not in ctx.data:
        return
    views: list[tuple[int, str]] = []  # (cell, model id)
    for index, cell in ctx.iter_cells():
        for output in _outputs(cell):
            if not isinstance(output, dict):
                continue
            data = output.get("data")
            view = data.get(WIDGET_VIEW) if isinstance(data, dict) else None
            if isinstance(view, str):  # some writers store JSON mime data as a string
                import orjson

                try:
                    view = orjson.loads(view)
                except orjson.JSONDecodeError:
                    view = None
            model_id = view.get("model_id") if isinstance(view, dict) else None
            if isinstance(model_id, str) and model_id:
                views.append((index, model_id))
    if not views:
        return
    saved = _saved_widget_ids(ctx)
    missing = [(c, m) for c, m in views if saved is None or m not in saved]
    if not missing:
        return
    cells = sorted({c for c, _ in missing})
    where = f"cell {cells[0]}" if len(cells) == 1 else f"cells {', '.join(map(str, cells[:5]))}" + (
        ", ..." if len(cells) > 5 else "")
    one = len(missing) == 1
    why = "the notebook saved no widget state" if saved is None else \
        f"{'its' if one else 'their'} state is missing from the saved widget state"
    yield ctx.finding(
        "NB050", f"{where} {'shows' if len(cells) == 1 else 'show'} {len(missing)} interactive "
        f"widget{'' if one else 's'} but {why}, so {'it' if one else 'they'} "
        "will show as plain text when the notebook is reopened or rendered",
        cell=cells[0],
        evidence={"cells": cells[:MAX_LISTED], "model_ids": [m for _, m in missing][:MAX_LISTED],
                  "widgets": len(missing), "saved_state": saved is not None})


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _tags(cell: dict[str, Any]) -> list[Any]:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return tags if isinstance(tags, list) else []


def check_errors(ctx: NotebookContext) -> Iterator[Finding]:
    """NB051: error outputs saved in the notebook (cells tagged ``raises-exception`` excepted)."""
    if b'"error"' not in ctx.data:
        return
    errors: list[dict[str, Any]] = []
    for index, cell in ctx.iter_cells():
        for output in _outputs(cell):
            if isinstance(output, dict) and output.get("output_type") == "error":
                if RAISES_TAG in cell_tags(cell):
                    break  # the author expects this error (nbclient honours the tag too)
                evalue = strip_ansi(_text(output.get("evalue"))).strip()
                if len(evalue) > 200:
                    evalue = evalue[:197] + "..."
                ename = _text(output.get("ename")) or "Error"
                errors.append({"cell": index, "ename": ename, "evalue": evalue})
                break  # one error per cell: a cell stops at its first exception
    if not errors:
        return
    first = errors[0]
    shown = f"{first['ename']}: {first['evalue']}" if first["evalue"] else first["ename"]
    more = f" ({len(errors) - 1} more cell{'s' if len(errors) > 2 else ''} with errors)" if len(errors) > 1 else ""
    yield ctx.finding(
        "NB051", f"cell {first['cell']} was saved showing an error, {shown}{more}",
        cell=first["cell"], evidence={"errors": errors[:MAX_LISTED], "count": len(errors)})


RULES: RuleTable = [
    (("NB050",), check_widgets),
    (("NB051",), check_errors),
]
