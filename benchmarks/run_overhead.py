"""What does watching a kernel cost? A CPU-bound notebook through plain nbclient, with and without the Monitor.

    python benchmarks/run_overhead.py [--runs N] [--seconds S] [--interval I] [--json]

The notebook is pure-Python loops (about ``--seconds`` of work in four cells, calibrated on this machine).
Each round executes it once with ``nbclient.NotebookClient`` as is and once with a ``Monitor`` sampling the
kernel's process tree at ``1/--interval`` Hz (started from nbclient's ``on_notebook_start`` hook on
``client.km.provisioner.pid``; ``set_cell`` from ``on_cell_execute`` / ``on_cell_executed``). The order
alternates from round to round (ABBA), after one warm-up run. Reported: medians of the whole execution
(kernel start and shutdown included) and of the cells alone (hook to hook), the overhead in percent
(goal: <= 3 %), the median of the per-round ratios (robust to load from other
work on the machine), and the client process's CPU time, where the sampler thread's cost shows.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from typing import Any

import nbformat
from nbclient import NotebookClient

from nbmedic.execute.monitor import Monitor

CELL = """\
x = 0
for i in range({loops}):
    x += i % 7
x"""


def calibrate(seconds: float) -> int:
    """Loop count for one cell of ``seconds`` (the kernel runs the same bytecode at module level)."""
    code = compile(CELL.format(loops=2_000_000), "<calibrate>", "exec")
    took = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        exec(code, {})  # noqa: S102 (our own calibration code)
        took = min(took, time.perf_counter() - began)
    return max(100_000, int(2_000_000 * seconds / took))


def make_notebook(total_seconds: float, cells: int = 4) -> Any:
    loops = calibrate(total_seconds / cells)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\nstarted = time.perf_counter()")]
    nb.cells += [nbformat.v4.new_code_cell(CELL.format(loops=loops)) for _ in range(cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def kernel_pid(client: NotebookClient) -> int:
    provisioner = client.km.provisioner
    pid = getattr(provisioner, "pid", None)
    if pid is None:
        pid = provisioner.process.pid
    return int(pid)


def run_once(nb: Any, *, monitored: bool, interval: float) -> dict[str, Any]:
    nb = nbformat.from_dict(nb)
    state: dict[str, Any] = {"monitor": None, "cell_start": None, "cells": 0.0}

    def on_start(notebook: Any) -> None:
        if monitored:
            state["monitor"] = mon = Monitor(kernel_pid(client), interval=interval)
            mon.start()

    def on_execute(cell: Any, cell_index: int) -> None:
        state["cell_start"] = time.perf_counter()
        if state["monitor"] is not None:
            state["monitor"].set_cell(cell_index)

    def on_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        state["cells"] += time.perf_counter() - state["cell_start"]
        if state["monitor"] is not None:
            state["monitor"].set_cell(None)

    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", on_notebook_start=on_start, on_cell_execute=on_execute,
        on_cell_executed=on_executed,
    )
    cpu0 = time.process_time()
    began = time.perf_counter()
    client.execute()
    total = time.perf_counter() - began
    cpu = time.process_time() - cpu0
    out: dict[str, Any] = {"total": total, "cells": state["cells"], "client_cpu": cpu}
    mon: Monitor | None = state["monitor"]
    if mon is not None:
        mon.stop()
        out.update(
            samples=len(mon.samples), peak_rss=mon.peak_rss, kernel_cpu=mon.cpu_seconds,
            rate=len(mon.samples) / max(1e-9, mon.samples[-1].t - mon.samples[0].t) if mon.samples else 0.0,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="rounds (each: one plain, one monitored run)")
    ap.add_argument("--seconds", type=float, default=4.0, help="CPU work in the notebook, seconds")
    ap.add_argument("--interval", type=float, default=0.1, help="monitor sample interval, seconds")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    logging.getLogger("traitlets").setLevel(logging.ERROR)

    nb = make_notebook(args.seconds)
    run_once(nb, monitored=False, interval=args.interval)  # warm-up: imports, page cache, kernelspec
    plain: list[dict[str, Any]] = []
    watched: list[dict[str, Any]] = []
    for i in range(args.runs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for monitored in order:
            r = run_once(nb, monitored=monitored, interval=args.interval)
            (watched if monitored else plain).append(r)
            if not args.json:
                tag = "monitored" if monitored else "plain    "
                extra = f"  samples {r['samples']} ({r['rate']:.1f}/s)" if monitored else ""
                print(f"round {i + 1} {tag} total {r['total']:.3f} s  cells {r['cells']:.3f} s  "
                      f"client cpu {r['client_cpu']:.3f} s{extra}", file=sys.stderr)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    figures = {
        "runs": args.runs,
        "interval": args.interval,
        "plain": {k: med(plain, k) for k in ("total", "cells", "client_cpu")},
        "monitored": {k: med(watched, k) for k in ("total", "cells", "client_cpu", "samples", "kernel_cpu")},
    }
    figures["overhead_total_pct"] = 100 * (figures["monitored"]["total"] / figures["plain"]["total"] - 1)
    figures["overhead_cells_pct"] = 100 * (figures["monitored"]["cells"] / figures["plain"]["cells"] - 1)
    # paired within each round (same machine state): less sensitive to other load on a shared machine
    figures["overhead_paired_pct"] = 100 * (
        statistics.median(w["cells"] / p["cells"] for p, w in zip(plain, watched)) - 1
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    p, m = figures["plain"], figures["monitored"]
    print(f"medians over {args.runs} interleaved rounds, sampling every {args.interval} s")
    print(f"  whole run   plain {p['total']:.3f} s   monitored {m['total']:.3f} s   "
          f"overhead {figures['overhead_total_pct']:+.2f} %")
    print(f"  cells only  plain {p['cells']:.3f} s   monitored {m['cells']:.3f} s   "
          f"overhead {figures['overhead_cells_pct']:+.2f} %")
    print(f"  cells, paired per round (median of monitored/plain): "
          f"overhead {figures['overhead_paired_pct']:+.2f} %")
    print(f"  client CPU  plain {p['client_cpu']:.3f} s   monitored {m['client_cpu']:.3f} s   "
          f"({m['samples']:.0f} samples; sampler ≈ "
          f"{1000 * (m['client_cpu'] - p['client_cpu']) / max(1, m['samples']):.2f} ms CPU per sample)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
