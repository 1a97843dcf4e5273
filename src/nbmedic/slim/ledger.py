"""The exact size of a notebook as nbmedic writes it, kept up to date while outputs change.

Serialising a 60 MB notebook after every change would cost seconds, so each output is serialised once,
alone, at the depth it has in the file (``{"cells": [{"cell_type": "code", "outputs": [OUTPUT]}]}``: same
indentation, same canonical form, same newline), and the file's size is the sum of its parts plus the
separators of JSON lists.  For a list whose closing bracket is indented by ``I`` spaces, with items that
each cost ``c`` when alone in the list (``len(W([x])) - len(W([]))``), the list of n items costs
``sum(c) - (n - 1) * (nl + I - 1)`` more than ``[]`` (``nl``: the newline's length).  ``tests/test_slim.py``
checks the running total against ``dumps`` of the result, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from nbmedic.notebook.io import canonical, dumps, encode_text

__all__ = ["Ledger"]

_CELLS_INDENT = 1  # the closing bracket of "cells"
_OUTPUTS_INDENT = 3  # the closing bracket of a cell's "outputs"
_STREAM_DEPTH, _BUNDLE_DEPTH = 5, 6  # of a stream's text and of a mime bundle's values, in _wrap_outputs
_SPLIT_MIMES = ("image/svg+xml", "application/javascript")  # split into lines like text/* (nbformat)
_ASCII_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e")  # where str.splitlines also cuts, besides \n and \r


def _layout(doc: Any) -> tuple[int, int] | None:
    """(bytes the indented layout adds to compact JSON besides newlines, newlines) of nbformat's layout
    (``indent=1``, ``": "``), with Python's float repr; None where only the writer itself can tell."""
    extra = newlines = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is str or kind is int or value is None or kind is bool:
            continue
        if kind is dict or kind is list:
            n = len(value)
            if n:
                extra += n * (depth + 1) + depth + (n if kind is dict else 0)
                newlines += n + 1
                items = value.values() if kind is dict else value
                stack.extend([(v, depth + 1) for v in items if type(v) is not str])
        elif kind is float and math.isfinite(value):
            extra += len(repr(value)) - len(orjson.dumps(value))
        else:  # NaN, infinities, bytes, subclasses: the writer's own rules
            return None
    return extra, newlines


def _joined(value: Any) -> str | None:
    """The text of a string or a list of strings (what nbformat joins); None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        try:
            return "".join(value)
        except TypeError:
            return None
    return None


def _line_count(text: str) -> int:
    """``len(text.splitlines(True))``, without making the lines."""
    if not text.isascii() or any(brk in text for brk in _ASCII_BREAKS):
        return len(text.splitlines(True))
    breaks = text.count("\n")
    if "\r" in text:  # a lone \r ends a line too; \r\n ends one line
        breaks += text.count("\r") - text.count("\r\n")
    return breaks + (text[-1:] not in ("", "\n", "\r"))


def _wrap_outputs(outputs: list[Any]) -> dict[str, Any]:
    return {"cells": [{"cell_type": "code", "outputs": outputs}]}


def _wrap_cells(cells: list[Any]) -> dict[str, Any]:
    return {"cells": cells}


class Ledger:
    """A notebook's outputs as slim changes them, and the size the notebook would have once written.

    ``outputs[cell][k]`` is None for an output that was removed (indices always refer to the notebook as
    read).  A new output also goes into the notebook at once, and a removed one is replaced there by an
    empty placeholder, so the notebook never holds what slim already cut (the 60 MB notebook's peak
    memory); ``finish`` drops the placeholders.
    """

    def __init__(self, nb: dict[str, Any], newline: str = "\n") -> None:
        self.nb = nb
        self.newline = newline
        self._nl = len(newline.encode("utf-8"))
        self._out_empty = self.size_of(_wrap_outputs([]))
        self._cell_empty = self.size_of(_wrap_cells([]))
        self.outputs: list[list[dict[str, Any] | None]] = []
        self.costs: list[list[int]] = []
        self._bare: list[int] = []
        self._cell_cost: list[int] = []
        self._touched: set[int] = set()
        for cell in nb["cells"]:
            outs = cell.get("outputs") if isinstance(cell, dict) else None
            if isinstance(outs, list) and cell.get("cell_type") == "code" and all(isinstance(o, dict) for o in outs):
                self.outputs.append(list(outs))
                self.costs.append([self.output_cost(o) for o in outs])
                bare = {**cell, "outputs": []}
            else:
                self.outputs.append([])
                self.costs.append([])
                bare = cell
            self._bare.append(self.size_of(_wrap_cells([bare])) - self._cell_empty)
            self._cell_cost.append(self._bare[-1] + self._list_extra(self.costs[-1], _OUTPUTS_INDENT))
        self._skeleton = self._skeleton_size()
        self.total = self._skeleton + self._list_extra(self._cell_cost, _CELLS_INDENT)

    def size_of(self, doc: Mapping[str, Any]) -> int:
        """Bytes of ``doc`` written by nbmedic's writer: compact JSON from orjson plus the layout's
        indentation and newlines (serialising with the writer itself is several times slower)."""
        form = canonical(doc)
        layout = _layout(form)
        if layout is not None:
            try:
                compact = len(orjson.dumps(form))
            except (TypeError, orjson.JSONEncodeError):  # huge ints, lone surrogates, odd keys, deep nesting
                pass
            else:
                extra, newlines = layout
                return compact + extra + (newlines + 1) * self._nl
        return len(encode_text(dumps(doc, self.newline)))

    def output_cost(self, output: dict[str, Any]) -> int:
        """Bytes one output adds to a cell whose only output it is."""
        cost = self._text_cost(output)
        return self.size_of(_wrap_outputs([output])) - self._out_empty if cost is None else cost

    def _lines_size(self, text: str, depth: int) -> int | None:
        """Bytes the canonical list of ``text``'s lines (a value at ``depth``) takes more than ``[]``: JSON
        escapes each character alone, so the lines' escaped lengths add up to the text's."""
        lines = _line_count(text)
        if not lines:
            return 0
        try:
            escaped = len(orjson.dumps(text)) - 2
        except orjson.JSONEncodeError:  # a lone surrogate: the writer's own rules
            return None
        return escaped + 3 * lines - 1 + lines * (depth + 1) + depth + (lines + 1) * self._nl

    def _text_cost(self, output: dict[str, Any]) -> int | None:
        """``output_cost`` of a stream or a display output with its text values measured as whole texts
        rather than as the hundreds of thousands of lines a long log is split into; None: not such an output."""
        kind = output.get("output_type")
        data = output.get("data")
        texts: list[tuple[str, int]] = []
        if kind == "stream":
            text = _joined(output.get("text"))
            if text is None:
                return None
            rest, texts = {**output, "text": []}, [(text, _STREAM_DEPTH)]
        elif kind in ("execute_result", "display_data") and isinstance(data, dict):
            data = dict(data)
            for key, value in data.items():
                split = isinstance(key, str) and (key.startswith("text/") or key in _SPLIT_MIMES)
                text = _joined(value) if split else None
                if text is not None:
                    data[key] = []
                    texts.append((text, _BUNDLE_DEPTH))
            rest = {**output, "data": data}
        else:
            return None
        sizes = [self._lines_size(text, depth) for text, depth in texts]
        if any(size is None for size in sizes):
            return None
        return self.size_of(_wrap_outputs([rest])) - self._out_empty + sum(size or 0 for size in sizes)

    def _list_extra(self, costs: list[int], indent: int) -> int:
        alive = [c for c in costs if c >= 0]
        if not alive:
            return 0
        return sum(alive) - (len(alive) - 1) * (self._nl + indent - 1)

    def _skeleton_size(self) -> int:
        return self.size_of({**{k: v for k, v in self.nb.items() if k != "cells"}, "cells": []})

    def _recost(self, cell: int) -> int:
        """Bring cell ``cell``'s cost and the total up to date; return the bytes saved."""
        old = self._cell_cost[cell]
        new = self._bare[cell] + self._list_extra(self.costs[cell], _OUTPUTS_INDENT)
        self._cell_cost[cell] = new
        self.total += new - old
        self._touched.add(cell)
        return old - new

    def replace(self, cell: int, index: int, output: dict[str, Any]) -> int:
        """Put ``output`` in place of output ``index`` of cell ``cell`` if that makes the file smaller;
        return the bytes saved (0: nothing changed)."""
        cost = self.output_cost(output)
        if cost >= self.costs[cell][index]:
            return 0
        self.outputs[cell][index] = output
        self.nb["cells"][cell]["outputs"][index] = output
        self.costs[cell][index] = cost
        return self._recost(cell)

    def remove(self, cell: int, index: int) -> int:
        self.outputs[cell][index] = None
        self.nb["cells"][cell]["outputs"][index] = {}
        self.costs[cell][index] = -1
        return self._recost(cell)

    def set_metadata(self, metadata: dict[str, Any]) -> int:
        """Replace the notebook's metadata; return the bytes saved."""
        self.nb["metadata"] = metadata
        old, self._skeleton = self._skeleton, self._skeleton_size()
        self.total += self._skeleton - old
        return old - self._skeleton

    def alive(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(cell, index, output) of every output still there, in notebook order."""
        return [(c, k, o) for c, outs in enumerate(self.outputs) for k, o in enumerate(outs) if o is not None]

    def finish(self) -> dict[str, Any]:
        """The notebook with every change applied (cells keep their place; removed outputs are gone)."""
        for index in sorted(self._touched):
            self.nb["cells"][index]["outputs"] = [o for o in self.outputs[index] if o is not None]
        self._touched.clear()
        return self.nb
