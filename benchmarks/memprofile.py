"""What does ``nbmedic run --profile-memory`` cost?  One allocation-heavy notebook, run plain and profiled.

    python benchmarks/memprofile.py [--rounds N] [--scale S] [--no-fork] [--json]

The notebook is pandas-heavy when pandas is importable in this interpreter (frames built, grouped, joined,
turned into strings), else pure Python of the same spirit (a few hundred thousand dicts and strings built,
serialised to JSON and back, grouped, freed); the report says which ran.  Each round runs it once plain and
once with ``profile_memory=True`` (order alternating, ABBA, after one warm-up of each), with the same
kernel start (forked by default).  Reported: the medians of the cells' wall time (kernel start and shutdown
left out) and of the whole run, and the median of the per-round ratios (robust to other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

from nbmedic.execute import run_notebook

PANDAS_CELLS = [
    "import numpy as np\nimport pandas as pd\nN = int({n})",
    "df = pd.DataFrame({{'key': np.arange(N) % 1000, 'x': np.random.rand(N), 'name': [f'n{{i}}' for i in range(N)]}})",
    "g = df.groupby('key').agg({{'x': ['sum', 'mean'], 'name': 'count'}})",
    "joined = df.merge(df[['key', 'x']].groupby('key').mean().rename(columns={{'x': 'mean_x'}}), on='key')",
    "text = joined.astype(str)\nsize = text.memory_usage(deep=True).sum()\ndel text",
    "records = df.head(N // 4).to_dict('records')\nback = pd.DataFrame.from_records(records)\ndel records",
]
PYTHON_CELLS = [
    "import json\nN = int({n})",
    "rows = [{{'id': i, 'name': f'name-{{i}}', 'value': i * 0.5, 'tags': ['a', 'b']}} for i in range(N)]",
    "text = json.dumps(rows)\nback = json.loads(text)\ndel text",
    ("groups = {{}}\nfor row in back:\n    groups.setdefault(row['id'] % 1000, []).append(row['value'])\n"
     "means = {{k: sum(v) / len(v) for k, v in groups.items()}}"),
    "tmp = [str(i) * 4 for i in range(N)]\njoined = ','.join(tmp)\ndel tmp, joined",
    "pairs = sorted(((r['name'], r['value']) for r in back), reverse=True)\ndel pairs",
]


def has_pandas() -> bool:
    try:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def make_notebook(folder: Path, pandas: bool, scale: float) -> Path:
    cells = PANDAS_CELLS if pandas else PYTHON_CELLS
    n = (200_000 if pandas else 50_000) * scale
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src.format(n=n)) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "alloc.ipynb"
    nbformat.write(nb, str(path))
    return path


def run_once(path: Path, profiled: bool, fork: bool) -> dict[str, float]:
    began = time.perf_counter()
    result = run_notebook(path, output=path.with_suffix(".out.ipynb"), profile_memory=profiled, fork=fork)
    total = time.perf_counter() - began
    if result.status != "ok":
        raise SystemExit(f"the run failed: {[f.message for f in result.findings]}")
    if profiled and not all(c.memory_profile for c in result.cells):
        raise SystemExit("a profiled run came back without a cell's memory profile")
    return {"cells": sum(c.wall for c in result.cells), "total": total,
            "peak_rss": float(max(c.peak_rss for c in result.cells))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="size of the data (1 = the default)")
    parser.add_argument("--no-fork", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    pandas = has_pandas()
    fork = not args.no_fork
    rows: dict[str, list[dict[str, float]]] = {"plain": [], "profiled": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = make_notebook(Path(tmp), pandas, args.scale)
        run_once(path, False, fork)  # warm-ups: the fork template, the page cache
        run_once(path, True, fork)
        for i in range(args.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            for profiled in order:
                rows["profiled" if profiled else "plain"].append(run_once(path, profiled, fork))
    report: dict[str, Any] = {"notebook": "pandas" if pandas else "pure Python (pandas is not importable)",
                              "rounds": args.rounds, "fork": fork, "python": sys.version.split()[0]}
    for what in ("cells", "total"):
        plain = statistics.median(r[what] for r in rows["plain"])
        profiled = statistics.median(r[what] for r in rows["profiled"])
        ratios = [p[what] / q[what] for p, q in zip(rows["profiled"], rows["plain"], strict=True)]
        report[what] = {"plain_s": round(plain, 3), "profiled_s": round(profiled, 3),
                        "ratio": round(statistics.median(ratios), 2)}
    report["peak_rss_mib"] = {k: round(statistics.median(r["peak_rss"] for r in v) / 2**20, 1)
                              for k, v in rows.items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"notebook: {report['notebook']}; {args.rounds} rounds, {'forked' if fork else 'launched'} kernels, "
          f"Python {report['python']}")
    for what, label in (("cells", "cells only"), ("total", "whole run")):
        r = report[what]
        print(f"{label:>11}: plain {r['plain_s']:.2f} s, --profile-memory {r['profiled_s']:.2f} s, "
              f"ratio {r['ratio']:.2f}x (median of rounds)")
    peak = report["peak_rss_mib"]
    print(f"   peak RSS: plain {peak['plain']} MiB, --profile-memory {peak['profiled']} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
