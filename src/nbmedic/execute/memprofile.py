"""``nbmedic run --profile-memory``, the client's side: install the in-kernel profiler, read what it wrote.

``install`` sends the source of ``memprofile_agent.py`` to a ready IPython kernel in one silent execute
request (``store_history=False``: no execution count is used, no output reaches the notebook) and points it
at the kernel's temporary folder.  After each cell the runner asks ``MemoryProfiler.cell_profile`` for the
cell's record (the agent wrote it in ``post_run_cell``, before the kernel replied); after a death
``top_allocation`` reads the agent's latest peak file, written during the fatal cell.

The agent names cells by execution count (the number IPython compiled a cell under); the runner tells this
module each cell's count from its reply, so every site is mapped back to the notebook's cell index.  A site
(``CellRecord.memory_profile["end"]``, ``["peak"]``, largest first) is::

    {"where": "cell 2, line 3 (in make_arrays, called from cell 3)", "cell": 2, "line": 3,
     "function": "make_arrays", "called_from": 3, "package": None, "bytes": 41943040, "count": 4}

``package`` is the library the cell's line called into ("numpy", "pandas", "python" for the standard
library) when the allocation happened there: ``"where": "numpy, called from cell 3, line 3"``; a site
whose traceback was cut before any cell frame is the package alone.
"""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbmedic.execute.forensics import TopAllocation
from nbmedic.execute.kernel import Kernel, is_ipykernel
from nbmedic.execute.memprofile_agent import AGENT_FILE, CELL_FILE, PEAK_FILE
from nbmedic.execute.outputs import OutputCollector
from nbmedic.execute.replies import Deadline, wait_reply
from nbmedic.notebook.cells import source_text
from nbmedic.notebook.imports import parse_cell
from nbmedic.notebook.io import read_json_object

__all__ = ["MemoryProfiler", "function_at", "install"]

AGENT_SOURCE = Path(__file__).with_name("memprofile_agent.py")
MODULE = "nbmedic_memprofile"  # the agent's name in the kernel's sys.modules
_LOADER = f"""\
import sys, types
from IPython import get_ipython
m = sys.modules.get({MODULE!r})
if m is None:
    m = types.ModuleType({MODULE!r})
    sys.modules[{MODULE!r}] = m
    exec(compile(S, F, 'exec'), m.__dict__)
m.install(get_ipython(), D)
"""


def install(kernel: Kernel, cells: Sequence[Any], timeout: float = 30.0) -> MemoryProfiler | None:
    """Start the profiler in a ready IPython kernel; None for another kernel or when it could not start."""
    if not is_ipykernel(kernel.argv, kernel.language):
        return None
    source = AGENT_SOURCE.read_text(encoding="utf-8")
    code = f"exec({_LOADER!r}, {{'S': {source!r}, 'F': {AGENT_FILE!r}, 'D': {kernel.tmpdir!r}}})"
    msg_id = kernel.send("shell", "execute_request", {
        "code": code, "silent": True, "store_history": False, "user_expressions": {},
        "allow_stdin": False, "stop_on_error": False})
    waited = wait_reply(kernel, msg_id, OutputCollector({}), [Deadline("install", time.monotonic() + timeout)],
                        stdin=False)
    reply = waited.reply or {}
    if waited.ending != "done" or reply.get("status") != "ok":
        if kernel.debug:
            kernel.debug.event("memprofile-not-installed", ending=waited.ending, reply=reply)
        return None
    return MemoryProfiler(kernel.tmpdir, cells)


def function_at(source: str, line: int) -> str | None:
    """The innermost function of ``source`` that holds ``line`` (IPython syntax read as ``notebook.imports``
    reads it)."""
    tree = parse_cell(source)
    if tree is None:
        return None
    best: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                node.body[0].lineno <= line <= (node.end_lineno or node.lineno) and \
                (best is None or node.lineno >= best.lineno):
            best = node
    return best.name if best is not None else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class MemoryProfiler:
    """The records the agent leaves in ``folder``, mapped onto the notebook's ``cells``."""

    def __init__(self, folder: str, cells: Sequence[Any]) -> None:
        self.cell_path = os.path.join(folder, CELL_FILE)
        self.peak_path = os.path.join(folder, PEAK_FILE)
        self.cells = cells
        self.counts: dict[int, int] = {}  # execution count -> cell index
        self._functions: dict[tuple[int, int], str | None] = {}

    def cell_profile(self, index: int, count: int | None, *, died: bool = False) -> dict[str, Any] | None:
        """The profile of cell ``index`` that just ended (``count``: its reply's execution count); a cell
        that died has only its peak, as the agent saw it last."""
        if died:
            peak = self._peak(index)
            if peak is None:
                return None
            return {"traced_end": None, "traced_peak": peak["traced"], "peak_at": peak["traced"], "end": [],
                    "peak": peak["sites"]}
        record = read_json_object(self.cell_path)
        got = _int(record.get("count")) if record is not None else None
        if record is None or got is None or (got != count if count is not None else got in self.counts):
            return None  # no record, or the previous cell's
        self.counts[got] = index
        return {"traced_end": _int(record.get("traced_end")), "traced_peak": _int(record.get("traced_peak")),
                "peak_at": _int(record.get("peak_at")), "end": self._sites(record.get("end")),
                "peak": self._sites(record.get("peak"))}

    def top_allocation(self, index: int) -> TopAllocation | None:
        """The site that allocated most in cell ``index``, which was running when the kernel died."""
        peak = self._peak(index)
        if peak is None or not peak["sites"]:
            return None
        top = peak["sites"][0]
        return TopAllocation(where=top["where"], bytes=top["bytes"], line=self.source_line(top["cell"], top["line"]))

    def source_line(self, cell: int | None, line: int | None) -> str | None:
        if cell is None or line is None or not 0 <= cell < len(self.cells):
            return None
        lines = source_text(self.cells[cell]).splitlines()
        return lines[line - 1].strip() if 0 < line <= len(lines) else None

    # --- reading ---------------------------------------------------------------------------------------

    def _peak(self, index: int) -> dict[str, Any] | None:
        """The peak file of the running cell ``index`` (the agent removes it as each cell starts)."""
        record = read_json_object(self.peak_path)
        if record is None:
            return None
        count = _int(record.get("count"))
        if count is not None and count not in self.counts:
            self.counts[count] = index
        return {"traced": _int(record.get("traced")), "sites": self._sites(record.get("sites"))}

    def _sites(self, raw: Any) -> list[dict[str, Any]]:
        return [self._site(s) for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []

    def _site(self, raw: dict[str, Any]) -> dict[str, Any]:
        count, line, caller = _int(raw.get("exec")), _int(raw.get("line")), _int(raw.get("from"))
        package = raw.get("package") if isinstance(raw.get("package"), str) else None
        cell = self.counts.get(count) if count is not None else None
        called_from = self.counts.get(caller) if caller is not None else None
        function = self._function(cell, line)
        where = None
        if count is not None and line is not None:
            where = f"{self._label(cell, count)}, line {line}"
            if caller is not None and caller != count:
                called = self._label(called_from, caller)
                where += f" (in {function}, called from {called})" if function else f" (called from {called})"
        if package:
            where = f"{package}, called from {where}" if where else package
        return {"where": where or "unknown", "cell": cell, "line": line, "function": function,
                "called_from": called_from if caller != count else cell, "package": package,
                "bytes": _int(raw.get("bytes")) or 0, "count": _int(raw.get("count")) or 0}

    @staticmethod
    def _label(cell: int | None, count: int) -> str:
        return f"cell {cell}" if cell is not None else f"In [{count}]"

    def _function(self, cell: int | None, line: int | None) -> str | None:
        if cell is None or line is None or not 0 <= cell < len(self.cells):
            return None
        key = (cell, line)
        if key not in self._functions:
            self._functions[key] = function_at(source_text(self.cells[cell]), line)
        return self._functions[key]
