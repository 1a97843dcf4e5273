"""``nbmedic ps [--watch]``: every Jupyter kernel of this user, its memory, CPU, uptime and running cell.

The kernels come from ``nbmedic.live.kernels`` (monitored ones from their session records, the others from
the connection files and the process table).  ``--watch`` redraws a live table on a terminal until Ctrl-C;
elsewhere it prints one table per interval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.live.kernels import LiveKernel, cell_label, format_duration, running_kernels
from nbmedic.render.paths import display_path
from nbmedic.units import format_bytes

__all__ = ["HEADERS", "kernel_rows", "plain_table", "run"]

HEADERS = ("KERNEL", "NOTEBOOK", "STATE", "MEMORY", "CPU", "UPTIME", "CELL")
CPU_INTERVAL = 0.2  # seconds between the two CPU readings of every table
ROUNDS_ENV = "NBMEDIC_PS_WATCH_ROUNDS"  # not documented: stop --watch after this many tables (tests)
_STATE_STYLE = {"busy": "yellow", "idle": "green", "unknown": "dim"}


def _memory(kernel: LiveKernel) -> str:
    share = kernel.share
    return format_bytes(kernel.rss) + (f" ({share * 100:.0f} %)" if share is not None else "")


def _cell(kernel: LiveKernel) -> str:
    cell = kernel.cell
    if cell is None:
        return ""
    return f"{cell_label(cell.execution_count, cell.source_head)} {format_duration(cell.seconds)}"


def kernel_rows(kernels: Sequence[LiveKernel]) -> list[tuple[str, ...]]:
    """One row of text per kernel, in the order of ``HEADERS``."""
    return [(k.kernel_id[:8], display_path(k.notebook) if k.notebook else "", k.state, _memory(k),
             f"{k.cpu_percent:.0f} %", format_duration(k.uptime), _cell(k)) for k in kernels]


def plain_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded with spaces (no terminal needed)."""
    table = [HEADERS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


def _footer(kernels: Sequence[LiveKernel]) -> str:
    watched = sum(1 for k in kernels if k.monitored)
    text = f"{len(kernels)} kernel{'s' if len(kernels) != 1 else ''}, {watched} monitored"
    if watched < len(kernels):
        text += " (`nbmedic monitor install` monitors the others from their next start)"
    return text


def _text(kernels: Sequence[LiveKernel]) -> str:
    if not kernels:
        return "no running kernels"
    return plain_table(kernel_rows(kernels)) + "\n" + _footer(kernels)


def _document(kernels: Sequence[LiveKernel]) -> dict[str, Any]:
    return {"version": 1, "kernels": [k.to_dict() for k in kernels]}


def _rich(kernels: Sequence[LiveKernel]) -> Any:
    """The table as a rich renderable (terminals)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not kernels:
        return Text("no running kernels")
    rows = kernel_rows(kernels)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, header in enumerate(HEADERS):
        # on a narrow terminal the notebook and the cell are shortened, never the figures
        fixed = None if header in ("NOTEBOOK", "CELL") else max(len(r[i]) for r in [HEADERS, *rows])
        table.add_column(header, no_wrap=True, overflow="ellipsis", min_width=fixed,
                         justify="right" if header in ("MEMORY", "CPU") else "left")
    for kernel, row in zip(kernels, rows):
        cells = [Text(c) for c in row]
        cells[2].stylize(_STATE_STYLE.get(kernel.state, ""))
        table.add_row(*cells)
    return Group(table, Text(_footer(kernels), style="dim"))


def _print_once(fmt: str, *, stamp: bool = False) -> None:
    kernels = running_kernels(cpu_interval=CPU_INTERVAL)
    if fmt == "json":
        sys.stdout.write(json.dumps(_document(kernels), separators=(",", ":") if stamp else None,
                                    indent=None if stamp else 2) + "\n")
    elif sys.stdout.isatty() and not stamp:
        from rich.console import Console

        Console(highlight=False, emoji=False).print(_rich(kernels))
    else:
        if stamp:
            sys.stdout.write(f"nbmedic ps · {time.strftime('%H:%M:%S')}\n")
        sys.stdout.write(_text(kernels) + "\n" + ("\n" if stamp else ""))
    sys.stdout.flush()


def _rounds() -> int | None:
    value = os.environ.get(ROUNDS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _sleep_rest(began: float, interval: float) -> None:
    """Wait for the rest of an interval that began at ``began`` (a table takes time to measure)."""
    time.sleep(max(0.0, interval - (time.monotonic() - began)))


def _live(interval: float, rounds: int | None) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(highlight=False, emoji=False)
    done = 1
    began = time.monotonic()
    with Live(_rich(running_kernels(cpu_interval=CPU_INTERVAL)), console=console, auto_refresh=False) as live:
        while rounds is None or done < rounds:
            _sleep_rest(began, interval)
            began = time.monotonic()
            live.update(_rich(running_kernels(cpu_interval=CPU_INTERVAL)), refresh=True)
            done += 1


def _watch(fmt: str, interval: float) -> None:
    rounds = _rounds()
    if fmt == "text" and sys.stdout.isatty():
        _live(interval, rounds)
        return
    done = 0
    while True:
        began = time.monotonic()
        _print_once(fmt, stamp=True)
        done += 1
        if rounds is not None and done >= rounds:
            return
        _sleep_rest(began, interval)


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise UsageError(f"--interval {args.interval}: expected a positive number of seconds")
    if not args.watch:
        _print_once(args.format)
        return 0
    try:
        _watch(args.format, args.interval)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        pass
    return 0
