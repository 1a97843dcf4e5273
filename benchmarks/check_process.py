"""Time ``nbmedic check FOLDER`` as a whole process against a process that opens the same notebooks with
nbformat, side by side.

    python benchmarks/check_process.py [--corpus DIR] [--limit N] [--repeat N] [--json]

What a user feels is the whole command: interpreter start-up, imports, discovery, every rule, the report.
So each measurement is a fresh process, run on the same files:

* ``nbformat``: ``python -c`` that imports nbformat and runs ``nbformat.read`` + ``nbformat.validate`` on
  every ``*.ipynb`` under the folder (what Jupyter does to open each one);
* ``check NB00``: ``nbmedic check --select NB00 FOLDER`` (the structural rules);
* ``check -NB041``: every rule but NB041 (``--ignore NB041``), to tell NB041's share;
* ``check, cold``: ``nbmedic check FOLDER`` (every rule) with an empty cache folder, so NB041 asks each
  kernel's interpreter what it can import (one subprocess per interpreter);
* ``check, warm``: the same with the cache the previous run left (NB041 starts no subprocess);
* ``warm, json``: the same with ``--format json``, to tell the text report's share (rich renders each
  finding).

The cases are interleaved (their order rotates each repeat) after one untimed run of each; the figures are
the median wall time of ``--repeat`` runs (best in brackets) and the median CPU time (user + system, the
process with its subprocesses: steadier than wall time on a shared machine), each as a ratio of the
nbformat process (goal: every rule, warm, <= 0.5x).  ``NBMEDIC_CACHE_DIR`` points at a temporary folder:
the user's cache is not touched.  Byte code is compiled once, by the untimed runs, into a temporary
``PYTHONPYCACHEPREFIX`` (``PYTHONDONTWRITEBYTECODE`` is dropped): an installed nbmedic has its ``.pyc``
files as nbformat has, while a source checkout run with PYTHONDONTWRITEBYTECODE would compile every
module on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

NBFORMAT_WORKER = r"""
import logging, sys, warnings
from pathlib import Path
import nbformat
logging.disable(logging.CRITICAL)
ok = 0
for path in sorted(Path(sys.argv[1]).rglob("*.ipynb")):
    if ".ipynb_checkpoints" in path.parts:
        continue
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
            nbformat.validate(nb)
        ok += 1
    except Exception:
        pass
print(ok)
"""


def nbmedic_command() -> list[str]:
    script = Path(sys.executable).with_name("nbmedic")
    found = str(script) if script.exists() else shutil.which("nbmedic")
    return [found] if found else [sys.executable, "-m", "nbmedic"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # with the children's own waited-for children
    return usage.ru_utime + usage.ru_stime


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its subprocesses)."""
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed, used = time.perf_counter() - start, _cpu() - cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, used


def subset(corpus: Path, limit: int, into: Path) -> Path:
    """The first ``limit`` notebooks of ``corpus`` (sorted paths), copied with their relative paths."""
    paths = sorted(p for p in corpus.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)[:limit]
    for path in paths:
        target = into / path.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return into


def measure(folder: Path, repeat: int, cache: Path, pycache: Path) -> dict[str, list[tuple[float, float]]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NBMEDIC_CACHE_DIR=str(cache), PYTHONPYCACHEPREFIX=str(pycache))
    nbmedic = nbmedic_command()
    cases: dict[str, list[str]] = {
        "nbformat": [sys.executable, "-c", NBFORMAT_WORKER, str(folder)],
        "check NB00": [*nbmedic, "check", "--select", "NB00", str(folder)],
        "check -NB041": [*nbmedic, "check", "--ignore", "NB041", str(folder)],
        "check, cold": [*nbmedic, "check", str(folder)],
        "check, warm": [*nbmedic, "check", str(folder)],
        "warm, json": [*nbmedic, "check", "--format", "json", str(folder)],
    }

    def one(name: str) -> tuple[float, float]:
        if name == "check, cold":
            shutil.rmtree(cache, ignore_errors=True)
        elif name in ("check, warm", "warm, json") and not cache.exists():
            run_once(cases[name], env)  # fill the cache first
        return run_once(cases[name], env)

    names = list(cases)
    for name in names:
        one(name)  # warm-up: page cache, bytecode, the NB041 cache
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for i in range(repeat):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            times[name].append(one(name))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus", help="folder of notebooks")
    parser.add_argument("--limit", type=int, help="only the first N notebooks (sorted paths), copied apart")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each case (median is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbmedic-bench-") as tmp:
        folder = subset(args.corpus, args.limit, Path(tmp) / "nbs") if args.limit else args.corpus
        paths = [p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
        if not paths:
            parser.error(f"no .ipynb files under {args.corpus}")
        size = sum(p.stat().st_size for p in paths)
        times = measure(folder, args.repeat, Path(tmp) / "cache", Path(tmp) / "pycache")
    wall = {name: [w for w, _ in t] for name, t in times.items()}
    cpu = {name: [c for _, c in t] for name, t in times.items()}
    base_wall, base_cpu = statistics.median(wall["nbformat"]), statistics.median(cpu["nbformat"])
    results: dict[str, Any] = {
        "corpus": str(args.corpus), "limit": args.limit, "files": len(paths), "bytes": size,
        "python": sys.version.split()[0], "cpus": os.cpu_count(), "repeat": args.repeat,
        "cases": {name: {"median_s": statistics.median(wall[name]), "best_s": min(wall[name]),
                         "ratio": statistics.median(wall[name]) / base_wall,
                         "cpu_median_s": statistics.median(cpu[name]),
                         "cpu_ratio": statistics.median(cpu[name]) / base_cpu} for name in times}}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{results['files']} notebooks, {size / 2**20:.1f} MiB in {args.corpus}"
          f"{f' (first {args.limit})' if args.limit else ''}; Python {results['python']}, "
          f"{results['cpus']} CPUs; median of {args.repeat} fresh processes: wall [best], CPU")
    for name, row in results["cases"].items():
        ratio = "" if name == "nbformat" else f"  {row['ratio']:5.2f}x / {row['cpu_ratio']:5.2f}x nbformat"
        print(f"  {name:<13} {row['median_s'] * 1000:7.0f} ms [{row['best_s'] * 1000:5.0f}]  "
              f"CPU {row['cpu_median_s'] * 1000:6.0f} ms{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
