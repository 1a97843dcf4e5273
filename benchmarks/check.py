"""Time ``nbmedic check`` against nbformat over a folder of notebooks, in one process.

    python benchmarks/check.py [--corpus DIR] [--repeat N] [--startup-runs N] [--profile] [--json]

Prints, for the same files (read from the warm page cache):

* nbmedic's structural rules (``check_paths`` with ``--select NB00``: JSON parse + schema + ids) and
  the full rule set, against ``nbformat.read`` + ``nbformat.validate`` (what Jupyter does to open a
  notebook), and the ratio (goal: structural check <= 0.5x nbformat).  NB041's answers are cached
  (in a temporary ``NBMEDIC_CACHE_DIR`` unless one is set): the timed passes run with the cache the
  warm-up pass filled; ``check_process.py`` times the whole command, cold and warm;
* ``nbmedic.notebook.dumps`` against ``nbformat.writes`` (both from parsed notebooks);
* start-up: ``nbmedic --version`` against ``python -c pass`` (subprocesses, median of N runs).

Each timing is the best of ``--repeat`` passes after one warm-up pass (imports, schema compilation).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall seconds of ``fn`` over ``repeat`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def nbformat_open(paths: list[Path]) -> Callable[[], int]:
    import nbformat

    def run() -> int:
        ok = 0
        for path in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
                    nbformat.validate(nb)
                ok += 1
            except Exception:  # noqa: BLE001, S110 - unreadable or invalid: nbformat's verdict, counted as done
                pass
        return ok

    return run


def nbmedic_check(paths: list[Path], select: tuple[str, ...]) -> Callable[[], int]:
    from nbmedic.checks import check_paths
    from nbmedic.config import Config

    config = Config(select=select)

    def run() -> int:
        return len(check_paths(paths, config))

    return run


def startup(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def writers(paths: list[Path]) -> tuple[Callable[[], object], Callable[[], object], Callable[[], object], int]:
    """dumps vs nbformat.writes (which validates first) vs nbformat's bare JSON writer, on valid v4 files."""
    import nbformat
    from nbformat.v4 import nbjson

    from nbmedic.notebook.io import NotebookReadError, load_bytes
    from nbmedic.notebook.io import dumps as nbmedic_dumps

    ours: list[dict[str, Any]] = []
    theirs: list[Any] = []
    for path in paths:
        data = path.read_bytes()
        try:
            nb = load_bytes(data)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                node = nbformat.reads(data.decode("utf-8"), as_version=nbformat.NO_CONVERT)
                nbformat.validate(node)
        except (NotebookReadError, Exception):  # noqa: BLE001, S112 - only valid notebooks are written
            continue
        if nb.get("nbformat") == 4:
            ours.append(nb)
            theirs.append(node)

    def run_ours() -> object:
        return [nbmedic_dumps(nb) for nb in ours]

    def run_theirs() -> object:
        return [nbformat.writes(nb) for nb in theirs]

    def run_bare() -> object:
        return [nbjson.writes(nb) for nb in theirs]

    return run_ours, run_theirs, run_bare, len(ours)


def nbmedic_command() -> list[str]:
    script = Path(sys.executable).with_name("nbmedic")
    found = str(script) if script.exists() else shutil.which("nbmedic")
    return [found, "--version"] if found else [sys.executable, "-m", "nbmedic", "--version"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus", help="folder of notebooks")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per measurement (best is shown)")
    parser.add_argument("--startup-runs", type=int, default=10, help="subprocess runs for start-up times")
    parser.add_argument("--profile", action="store_true", help="also profile the structural check")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    logging.disable(logging.CRITICAL)  # nbformat logs every invalid notebook
    if "NBMEDIC_CACHE_DIR" not in os.environ:  # NB041's cache: not the user's
        os.environ["NBMEDIC_CACHE_DIR"] = tempfile.mkdtemp(prefix="nbmedic-bench-cache-")
    paths = sorted(args.corpus.rglob("*.ipynb"))
    if not paths:
        parser.error(f"no .ipynb files under {args.corpus}")
    size = sum(p.stat().st_size for p in paths)

    results: dict[str, Any] = {"files": len(paths), "bytes": size, "corpus": str(args.corpus),
                               "python": sys.version.split()[0], "cpus": os.cpu_count()}
    nbf, _ = best_of(nbformat_open(paths), args.repeat)
    structural, _ = best_of(nbmedic_check(paths, ("NB00",)), args.repeat)
    full, _ = best_of(nbmedic_check(paths, ()), args.repeat)
    results.update(nbformat_read_validate_s=nbf, nbmedic_structural_s=structural, nbmedic_all_rules_s=full)

    run_ours, run_theirs, run_bare, n_written = writers(paths)
    dumps_s, _ = best_of(run_ours, args.repeat)
    writes_s, _ = best_of(run_theirs, args.repeat)
    bare_s, _ = best_of(run_bare, args.repeat)
    results.update(written=n_written, nbmedic_dumps_s=dumps_s, nbformat_writes_s=writes_s,
                   nbformat_bare_writer_s=bare_s)

    python_s = startup([sys.executable, "-c", "pass"], args.startup_runs)
    version_s = startup(nbmedic_command(), args.startup_runs)
    results.update(python_startup_s=python_s, nbmedic_version_s=version_s)

    if args.json:
        print(json.dumps(results, indent=1))
    else:
        ms = 1000.0
        print(f"corpus: {len(paths)} notebooks, {size / 2**20:.1f} MiB in {args.corpus} "
              f"(Python {results['python']}, {results['cpus']} CPUs; best of {args.repeat})")
        print(f"  nbformat.read + validate     {nbf * ms:8.1f} ms")
        print(f"  nbmedic check --select NB00  {structural * ms:8.1f} ms   {structural / nbf:5.2f}x nbformat "
              f"(goal <= 0.50x)")
        print(f"  nbmedic check (all rules)    {full * ms:8.1f} ms   {full / nbf:5.2f}x nbformat")
        print(f"writing {n_written} valid v4 notebooks:")
        print(f"  nbformat.writes              {writes_s * ms:8.1f} ms")
        print(f"  nbformat v4 JSON writer only {bare_s * ms:8.1f} ms")
        print(f"  nbmedic dumps                {dumps_s * ms:8.1f} ms   {dumps_s / writes_s:5.2f}x nbformat.writes, "
              f"{dumps_s / bare_s:5.2f}x the bare writer")
        print(f"start-up (median of {args.startup_runs}):")
        print(f"  python -c pass               {python_s * ms:8.1f} ms")
        print(f"  nbmedic --version            {version_s * ms:8.1f} ms   (+{(version_s - python_s) * ms:.1f} ms)")

    if args.profile:
        check = nbmedic_check(paths, ("NB00",))
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.repeat):
            check()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
