"""Rendering speed and size of the HTML report (``render.html.render_html``) for a big batch.

    python benchmarks/report.py                 # 500 notebooks with runs
    python benchmarks/report.py --notebooks 50 --samples 2000 --cells 20 --repeat 5 --out /tmp/big.html

A synthetic report document like the one ``nbmedic run --format json`` prints: each notebook with a run
of ``--cells`` cells, a memory timeline of ``--samples`` samples (10 Hz, growing and falling, a spike)
and a few findings (a raised exception with its traceback, a kernel killed for memory, a slow cell...);
the notebooks themselves come through the ``notebook`` callable, small (a line or two of source and of
output per cell).  It prints the best of ``--repeat`` render times and the page's size against the goal
(at most 1 s and under 5 MB for 500 notebooks), and what the bytes are spent on.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nbmedic.findings import make
from nbmedic.render.document import build_document
from nbmedic.render.html import render_html

GOAL_SECONDS = 1.0
GOAL_BYTES = 5 * 1000 * 1000
MiB = 2**20


def _timeline(rng: random.Random, samples: int, cells: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    base = 60 * MiB
    timeline = []
    per_cell = max(samples // cells, 1)
    for i in range(samples):
        cell = min(i // per_cell, cells - 1)
        rss = base + int(40 * MiB * math.sin(i / 150) ** 2) + cell * 3 * MiB + rng.randrange(MiB)
        if i == samples * 2 // 3:
            rss += 500 * MiB
        timeline.append({"t": round(0.7 + i * 0.1, 3), "rss": rss, "cpu": rng.uniform(0, 110), "threads": 13,
                         "children": 0, "gpu": None, "cell": cell})
    records = []
    for c in range(cells):
        chunk = timeline[c * per_cell:(c + 1) * per_cell] or timeline[-1:]
        records.append({"index": c, "id": f"cell-{c}", "status": "ok", "wall": per_cell * 0.1, "cpu": 1.0,
                        "peak_rss": max(s["rss"] for s in chunk), "rss_delta": MiB, "gpu_peak": None,
                        "output_bytes": 20})
    return timeline, records


def _notebook(cells: int) -> dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": f"cell-{c}", "metadata": {}, "execution_count": c + 1,
         "source": f"x{c} = compute({c})\nprint(x{c})",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": f"{c * 17}\n"}]}
        for c in range(cells)]}


_TRACEBACK = "\n".join(f"  File \"lib{i}.py\", line {i * 7}, in step{i}\n    step{i + 1}(x)" for i in range(7))


def document(notebooks: int, samples: int, cells: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    runs, findings, files = [], [], []
    for n in range(notebooks):
        path = f"analysis/part{n // 50}/notebook_{n:04d}.ipynb"
        files.append(path)
        timeline, records = _timeline(rng, samples, cells)
        status = "ok"
        if n % 3 == 0:
            status = "failed"
            records[5]["status"] = "error"
            findings.append(make("RN120", path, f"cell 5 raised ValueError: bad value {n}", cell=5,
                                 evidence={"ename": "ValueError", "evalue": f"bad value {n}",
                                           "traceback": _TRACEBACK + f"\nValueError: bad value {n}"}))
        if n % 7 == 0:
            status = "died"
            findings.append(make("RN101", path, "the kernel was killed for memory while running cell 12",
                                 cell=12, evidence={"peak_rss": 900 * MiB, "limit": 800 * MiB,
                                                    "cells_growing_rss": [{"cell": 12, "rss_growth": 500 * MiB}],
                                                    "signal": "SIGKILL", "exit_code": -9}))
        findings.append(make("NB040", path, "cell 2 uses an absolute path", cell=2,
                             evidence={"paths": ["/home/alice/data.csv"], "lines": [1], "count": 1}))
        runs.append({"path": path, "status": status, "kernel": "python3", "output": path.replace(".ipynb", ".out.ipynb"),
                     "duration": timeline[-1]["t"] + 0.2, "peak_rss": max(s["rss"] for s in timeline),
                     "exit_code": -9 if status == "died" else None, "cells": records, "timeline": timeline})
    return build_document(findings, files, {"runs": runs, "machine": {"ram": 64 * 2**30, "cpus": 16,
                                                                      "cgroup_memory_limit": None}})


_PARTS = {
    "memory lines (RSS, CPU)": r'<path class="series[^>]*>',
    "per-cell bars and boundaries": r'<path class="(?:bars|cell-boundaries)[^>]*>',
    "cells (source, outputs, figures)": r'<div class="cell.*?</div>',
    "findings": r"<article.*?</article>",
}


def breakdown(page: str) -> dict[str, int]:
    """Bytes of the page's main parts (what the size goal is spent on)."""
    out = {what: sum(len(m.encode("utf-8")) for m in re.findall(pattern, page, re.DOTALL))
           for what, pattern in _PARTS.items()}
    out["everything else"] = len(page.encode("utf-8")) - sum(out.values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notebooks", type=int, default=500)
    ap.add_argument("--samples", type=int, default=2000, help="timeline samples per run")
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="write the page there")
    ap.add_argument("--profile", action="store_true", help="cProfile of one render (stderr)")
    args = ap.parse_args(argv)
    doc = document(args.notebooks, args.samples, args.cells)
    nb = _notebook(args.cells)

    def notebook(path: str) -> dict[str, Any] | None:
        return nb

    if args.profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.runcall(render_html, doc, notebook=notebook)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    times, page = [], ""
    for _ in range(max(args.repeat, 1)):
        start = time.perf_counter()
        page = render_html(doc, notebook=notebook)
        times.append(time.perf_counter() - start)
    size = len(page.encode("utf-8"))
    if args.out:
        Path(args.out).write_text(page, encoding="utf-8")
    best = min(times)
    samples = args.notebooks * args.samples
    print(f"HTML report: {args.notebooks} notebooks with runs, {args.cells} cells and {args.samples:,} timeline "
          f"samples each ({samples:,} samples)")
    print(f"  render time: {best:.3f} s best of {len(times)} (median {sorted(times)[len(times) // 2]:.3f} s); "
          f"goal <= {GOAL_SECONDS:.1f} s: {'met' if best <= GOAL_SECONDS else 'NOT met'}")
    print(f"  page size:   {size / 1e6:.2f} MB ({size / args.notebooks / 1000:.1f} kB per notebook); "
          f"goal < {GOAL_BYTES / 1e6:.0f} MB: {'met' if size < GOAL_BYTES else 'NOT met'}")
    for what, share in breakdown(page).items():
        print(f"    {what:<34} {share / 1e6:5.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
