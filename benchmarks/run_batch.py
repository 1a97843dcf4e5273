"""Run a batch of small notebooks, each in a fresh kernel: nbmedic against nbclient and papermill.

    python benchmarks/run_batch.py [--notebooks N] [--work S] [--repeat N] [--phases] [--keep DIR] [--json]
    python benchmarks/run_batch.py --performance [--medium-work S] [--scheduler local] [--timeline] [--repeat N] [--json]

``--performance`` is the scale-out comparison: a tiny batch (``--work``, 0.1 s of work per notebook) and a
medium one (``--medium-work``, 1 s), ``--notebooks`` (20) each, every notebook in a fresh kernel, with
``nbmedic run -j 2`` (kernels forked from a warm template, and ``--no-fork``), the papermill CLI one notebook
after another and nbclient in one process one after another; ``--scheduler local`` adds ``nbmedic run -j 2
--scheduler local`` (a 2-worker Dask LocalCluster).  It prints the ratios against the goals: on the tiny
batch papermill CLI ÷ nbmedic ≥ 10 and nbclient ÷ nbmedic ≥ 5; on the medium batch nbmedic within 10 % of
the ideal, the notebooks' total work ÷ the cores (total work: the CPU seconds the kernels spent in the
cells, as nbmedic measured them in its own outputs).  ``--timeline`` runs the medium batch once more with a
first and a last code cell that stamp the time in every kernel and breaks the run's cores × wall seconds
down: the cells' CPU, the cells' wall beyond it, and the time fewer notebooks than cores were running
(before the first, between notebooks, at the end), with the CPU the command and its kernels spent outside
the cells.

It writes ``--notebooks`` (20) small "report" notebooks (stdlib imports, ~``--work`` s (0.1) of arithmetic
calibrated on this machine, a print, an HTML and a Markdown display, a result) into a temporary folder,
then times executing all of them, sequentially unless said, each into a new output file, with:

* ``nbmedic API``      ``nbmedic.run_notebook(path, output=...)`` in a loop, one process;
* ``nbmedic CLI``      ``nbmedic run --output-dir D nb1 ... nbN`` (one process), and the same with ``-j 2``;
* ``nbclient``         ``NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": folder}})
                       .execute()`` + ``nbformat.write`` in a loop, one process;
* ``papermill API``    ``papermill.execute_notebook(in, out, kernel_name="python3", progress_bar=False)``
                       in a loop, one process;
* ``papermill CLI``    ``papermill in out`` once per notebook, as users run it.

Every case runs in fresh processes (a worker started from this script for the API cases), so each pays its
own interpreter start-up and imports, as a user's script or command would.  The figure per case is the
wall time of its process(es) divided by the number of notebooks; for the API cases the time of the loop
alone (after the import of the tool) is shown as well.  The cases are interleaved (the order rotates every
repeat) after one untimed warm-up of every case on two notebooks; the median over ``--repeat`` (3) repeats
is reported with the min-max spread.  Goal: ``nbmedic / nbclient <= 1.00`` for the sequential API and CLI.

Every output notebook is checked (every code cell executed, no error output, the printed line, the HTML
display and the result present) and a case that ran any notebook badly fails the benchmark.  Kernels are
tagged through an environment variable; one still alive after a case is reported (and killed).

``--phases`` adds a breakdown of where each notebook's time goes in nbmedic's ``run_notebook`` and in
nbclient (kernel launch, wait for the kernel to answer, monitor start, cells, monitor stop, shutdown,
writing), by timing wrappers around their functions in a separate worker (nothing in nbmedic is changed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TAG_VAR = "NBMEDIC_BENCH_TAG"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# --------------------------------------------------------------------------------------------- notebooks

WORK = """\
values = [random.gauss(100, 15) for _ in range(2000)]
acc = 0
for i in range({loops}):
    acc += (i * i) % 97
checksum = acc + round(sum(values))"""


def calibrate(seconds: float) -> int:
    """Loop count for WORK to take about ``seconds`` here (the kernel runs the same bytecode)."""
    import random

    code = compile(WORK.format(loops=200_000), "<calibrate>", "exec")
    took = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        exec(code, {"random": random})  # noqa: S102 (our own generated code)
        took = min(took, time.perf_counter() - began)
    return max(10_000, int(200_000 * seconds / took))


def make_notebook(index: int, loops: int) -> Any:
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        v4.new_markdown_cell(f"# Weekly report {index:02d}\n\nFigures for region {index}."),
        v4.new_code_cell("import collections, csv, datetime, decimal, io, json, math, random, statistics, textwrap\n"
                         "from IPython.display import HTML, Markdown, display"),
        v4.new_code_cell(f"random.seed({index})\nregion = {index}\n" + WORK.format(loops=loops)),
        v4.new_code_cell("mean = statistics.fmean(values)\nspread = statistics.pstdev(values)\n"
                         "share = decimal.Decimal(checksum % 1000) / 10\n"
                         "counts = collections.Counter(int(v // 10) * 10 for v in values)\n"
                         f"print(f'report {index:02d} ok: mean={{mean:.2f}} spread={{spread:.2f}} "
                         "share={share}% buckets={len(counts)}')"),
        v4.new_markdown_cell("## Distribution"),
        v4.new_code_cell("rows = ''.join(f'<tr><td>{k}</td><td>{n}</td></tr>' for k, n in sorted(counts.items()))\n"
                         "display(HTML(f'<table><tr><th>bucket</th><th>count</th></tr>{rows}</table>'))\n"
                         "display(Markdown(f'**{len(values)}** values, mean **{mean:.1f}**'))"),
        v4.new_code_cell("buf = io.StringIO()\ncsv.writer(buf).writerows(sorted(counts.items()))\n"
                         "{'region': region, 'date': datetime.date(2024, 1, 1 + region % 28).isoformat(), "
                         "'rows': len(buf.getvalue().splitlines()), 'hypot': math.hypot(mean, spread)}"),
    ]
    return nb


STAMP_FIRST = "import time as _tl\n_tl_began = _tl.time()"
STAMP_LAST = "print('TIMELINE', _tl_began, _tl.time())"


def write_notebooks(folder: Path, count: int, loops: int, stamped: bool = False) -> list[Path]:
    """``count`` report notebooks in ``folder``; ``stamped``: with a first and a last code cell that stamp
    the time in the kernel (``STAMP_FIRST``, ``STAMP_LAST``) for ``--timeline``."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, count + 1):
        nb = make_notebook(i, loops)
        if stamped:
            nb.cells.insert(0, nbformat.v4.new_code_cell(STAMP_FIRST))
            nb.cells.append(nbformat.v4.new_code_cell(STAMP_LAST))
        path = folder / f"report_{i:02d}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def read_output(path: Path) -> dict[str, Any] | str:
    """The executed notebook at ``path``, or why it cannot be read."""
    if not path.is_file():
        return "no output file"
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    return nb if isinstance(nb, dict) else "not a notebook"


def verify(path: Path) -> str | None:
    """None if ``path`` is a fully and successfully executed report notebook, else what is wrong."""
    nb = read_output(path)
    return nb if isinstance(nb, str) else verify_cells([c for c in nb.get("cells", []) if c.get("cell_type") == "code"])


def verify_cells(code: list[dict[str, Any]]) -> str | None:
    """None if ``code`` (a report notebook's code cells) all ran as they should, else what is wrong."""
    if len(code) != 5:
        return f"{len(code)} code cells, expected 5"
    for i, cell in enumerate(code):
        if cell.get("execution_count") is None:
            return f"code cell {i} not executed"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"code cell {i} raised {out.get('ename')}: {out.get('evalue')}"
    stream = "".join("".join(o.get("text", "")) for o in code[2]["outputs"] if o.get("output_type") == "stream")
    if " ok: mean=" not in stream:
        return "the print is missing"
    kinds = [o.get("output_type") for o in code[3]["outputs"]]
    if kinds.count("display_data") != 2 or "text/html" not in code[3]["outputs"][0].get("data", {}):
        return f"the displays are missing ({kinds})"
    if [o.get("output_type") for o in code[4]["outputs"]] != ["execute_result"]:
        return "the result is missing"
    return None


# --------------------------------------------------------------------------------------------- workers
# Each API case runs in its own process: ``run_batch.py --worker CASE OUTDIR NB...``; it prints JSON.


def worker_nbmedic(paths: list[Path], out: Path) -> list[float]:
    from nbmedic import run_notebook

    times = []
    for path in paths:
        began = time.perf_counter()
        result = run_notebook(path, output=out / path.name)
        times.append(time.perf_counter() - began)
        if result.status != "ok":
            print(f"{path.name}: nbmedic status {result.status}: "
                  + "; ".join(f.message for f in result.findings), file=sys.stderr)
    return times


def worker_nbclient(paths: list[Path], out: Path) -> list[float]:
    import nbformat
    from nbclient import NotebookClient

    times = []
    for path in paths:
        began = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, out / path.name)
        times.append(time.perf_counter() - began)
    return times


def worker_papermill(paths: list[Path], out: Path) -> list[float]:
    import papermill

    times = []
    for path in paths:
        began = time.perf_counter()
        papermill.execute_notebook(str(path), str(out / path.name), kernel_name="python3", progress_bar=False)
        times.append(time.perf_counter() - began)
    return times


WORKERS: dict[str, Callable[[list[Path], Path], list[float]]] = {
    "nbmedic": worker_nbmedic, "nbclient": worker_nbclient, "papermill": worker_papermill,
}


def worker_main(case: str, out: Path, paths: list[Path]) -> int:
    import logging

    logging.getLogger("traitlets").setLevel(logging.ERROR)
    began = time.perf_counter()
    cpu = time.process_time()
    fn = WORKERS[case]
    times = fn(paths, out)
    print(json.dumps({"loop": time.perf_counter() - began, "each": times, "cpu": time.process_time() - cpu}))
    return 0


# --------------------------------------------------------------------------------------------- phases


class Phases:
    """Wall time spent in named functions (patched in place, in this worker process only)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, label: str) -> None:
        import inspect

        original = getattr(owner, name)
        totals = self.totals

        if inspect.iscoroutinefunction(original):
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    totals[label] = totals.get(label, 0.0) + time.perf_counter() - began
            setattr(owner, name, timed_async)
        else:
            def timed(*args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    totals[label] = totals.get(label, 0.0) + time.perf_counter() - began
            setattr(owner, name, timed)


def phases_main(case: str, out: Path, paths: list[Path]) -> int:
    import logging

    logging.getLogger("traitlets").setLevel(logging.ERROR)
    ph = Phases()
    if case == "nbmedic":
        from jupyter_client.manager import AsyncKernelManager

        from nbmedic.execute import kernel as kmod
        from nbmedic.execute import monitor as mmod
        from nbmedic.execute import runner

        ph.wrap(runner, "read_notebook_file", "read")
        ph.wrap(kmod.Kernel, "__init__", "Kernel() (temp dir, event loop)")
        ph.wrap(AsyncKernelManager, "start_kernel", "kernel launch (km.start_kernel)")
        ph.wrap(kmod.Kernel, "_wait_ready", "wait for kernel_info + iopub")
        ph.wrap(kmod.Kernel, "start", "Kernel.start (all)")
        ph.wrap(mmod.Monitor, "__init__", "Monitor() (psutil, cgroup)")
        ph.wrap(mmod.Monitor, "start", "Monitor.start")
        ph.wrap(runner._Run, "run_all", "cells (run_all)")
        ph.wrap(mmod.Monitor, "stop", "Monitor.stop")
        ph.wrap(AsyncKernelManager, "shutdown_kernel", "km.shutdown_kernel")
        ph.wrap(kmod.Kernel, "_reap", "Kernel._reap")
        ph.wrap(kmod.Kernel, "close", "Kernel.close (all)")
        ph.wrap(runner, "write_notebook", "write output")
        worker: Callable[[list[Path], Path], list[float]] = worker_nbmedic
    else:
        import nbformat
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient

        ph.wrap(nbformat, "read", "read")
        ph.wrap(AsyncKernelManager, "start_kernel", "kernel launch (km.start_kernel)")
        ph.wrap(NotebookClient, "async_start_new_kernel_client", "start client + wait_for_ready")
        ph.wrap(NotebookClient, "async_execute_cell", "cells (execute_cell)")
        ph.wrap(AsyncKernelManager, "shutdown_kernel", "km.shutdown_kernel")
        ph.wrap(NotebookClient, "_async_cleanup_kernel", "cleanup kernel (all)")
        ph.wrap(nbformat, "write", "write output")
        worker = worker_nbclient
    per: dict[str, list[float]] = {}
    times = []
    for path in paths:  # one notebook at a time, so each phase gets a median over the notebooks
        ph.totals.clear()
        times += worker([path], out)
        for label, secs in ph.totals.items():
            per.setdefault(label, []).append(secs)
    print(json.dumps({"per_notebook": statistics.median(times),
                      "phases": {k: statistics.median(v) for k, v in per.items()}}))
    return 0


# --------------------------------------------------------------------------------------------- driver


def script(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def tagged_env(tag: str) -> dict[str, str]:
    env = dict(os.environ)
    env[TAG_VAR] = tag
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def leftovers(tag: str) -> list[int]:
    """Processes (ours: only they carry the tag) still alive after a case: leaked kernels."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(TAG_VAR) == tag:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def run_case(case: str, paths: list[Path], out: Path) -> dict[str, Any]:
    """Run one case over ``paths`` into the empty folder ``out``; wall seconds, loop seconds, problems."""
    out.mkdir(parents=True)
    tag = uuid.uuid4().hex
    env = tagged_env(tag)
    names = [str(p) for p in paths]
    this = str(Path(__file__).resolve())
    loop = cpu = None
    each: list[float] = []
    errors: list[str] = []
    began = time.perf_counter()
    if case in ("nbmedic-api", "nbclient", "papermill-api"):
        proc = subprocess.run([sys.executable, this, "--worker", case.split("-")[0], str(out), *names],
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        if proc.returncode == 0:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            loop, each, cpu = data["loop"], data["each"], data["cpu"]
        else:
            errors.append(f"worker exited {proc.returncode}: {proc.stderr[-2000:]}")
        if proc.stderr.strip() and case == "nbmedic-api":
            errors.append(proc.stderr[-2000:])
    elif case.startswith("nbmedic-cli"):
        cmd = [script("nbmedic"), "run", "--output-dir", str(out)]
        if "-j2" in case:
            cmd += ["-j", "2"]
        if case.endswith("-nofork"):
            cmd += ["--no-fork"]
        if case.endswith("-dask"):
            cmd += ["--scheduler", "local"]
        proc = subprocess.run(cmd + names, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        if proc.returncode != 0:
            errors.append(f"nbmedic run exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
    elif case == "papermill-cli":
        for path in paths:
            one = time.perf_counter()
            proc = subprocess.run([script("papermill"), str(path), str(out / path.name)],
                                  env=env, capture_output=True, text=True, check=False)
            each.append(time.perf_counter() - one)
            if proc.returncode != 0:
                errors.append(f"papermill {path.name} exited {proc.returncode}: {proc.stderr[-1000:]}")
        wall = time.perf_counter() - began
    else:
        raise ValueError(case)
    for path in paths:
        problem = verify(out / path.name)
        if problem:
            errors.append(f"{case}: {path.name}: {problem}")
    leaked = leftovers(tag)
    if leaked:
        errors.append(f"{case}: {len(leaked)} process(es) left running: {leaked} (killed)")
        import psutil

        for pid in leaked:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
    return {"wall": wall, "loop": loop, "each": each, "cpu": cpu, "errors": errors}


DEFAULT_CASES = ["nbmedic-api", "nbmedic-cli", "nbmedic-cli-j2", "nbclient", "papermill-api", "papermill-cli"]
CASES = [*DEFAULT_CASES, "nbmedic-cli-j2-nofork", "nbmedic-cli-j2-dask"]
PERFORMANCE_CASES = ["nbmedic-cli-j2", "nbmedic-cli-j2-nofork", "nbclient", "papermill-cli"]
LABELS = {
    "nbmedic-api": "nbmedic run_notebook()",
    "nbmedic-cli": "nbmedic run (CLI)",
    "nbmedic-cli-j2": "nbmedic run -j 2 (CLI)",
    "nbmedic-cli-j2-nofork": "nbmedic run -j 2 --no-fork",
    "nbmedic-cli-j2-dask": "nbmedic run -j 2 --scheduler local",
    "nbclient": "nbclient NotebookClient",
    "papermill-api": "papermill execute_notebook()",
    "papermill-cli": "papermill CLI (per notebook)",
}


def run_phases(paths: list[Path], work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    this = str(Path(__file__).resolve())
    for case in ("nbclient", "nbmedic"):
        folder = work / f"phases-{case}"
        folder.mkdir()
        tag = uuid.uuid4().hex
        proc = subprocess.run([sys.executable, this, "--phases-worker", case, str(folder), *map(str, paths)],
                              env=tagged_env(tag), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"phases worker {case} failed: {proc.stderr[-2000:]}")
        out[case] = json.loads(proc.stdout.strip().splitlines()[-1])
        bad = [p.name for p in paths if verify(folder / p.name)]
        if bad or leftovers(tag):
            raise SystemExit(f"phases worker {case}: bad outputs {bad} or leaked kernels")
    return out


def summarise(rows: dict[str, list[dict[str, Any]]], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case, runs in rows.items():
        walls = [r["wall"] / n for r in runs]
        entry: dict[str, Any] = {
            "per_notebook_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "repeats_s": walls,
        }
        loops = [r["loop"] / n for r in runs if r["loop"] is not None]
        if loops:
            entry["loop_per_notebook_s"] = statistics.median(loops)
            entry["client_cpu_per_notebook_s"] = statistics.median(r["cpu"] / n for r in runs)
        if runs[0]["each"]:
            each = [statistics.median(r["each"]) for r in runs]
            entry["median_single_notebook_s"] = statistics.median(each)
        out[case] = entry
    return out


def timed(cases: list[str], paths: list[Path], work: Path, repeat: int, warmup: bool,
          note: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """Every case over ``paths`` ``repeat`` times, interleaved (after an untimed warm-up on two notebooks)."""
    n = len(paths)
    if warmup:
        for case in cases:
            r = run_case(case, paths[:2], work / "warmup" / case)
            if r["errors"]:
                raise SystemExit("warm-up failed:\n" + "\n".join(r["errors"]))
        note("warm-up done")
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
    for rep in range(repeat):
        order = cases[rep % len(cases):] + cases[:rep % len(cases)]
        for case in order:
            r = run_case(case, paths, work / f"rep{rep}" / case)
            if r["errors"]:
                raise SystemExit("\n".join(r["errors"]))
            rows[case].append(r)
            note(f"repeat {rep + 1} {LABELS[case]:34s} {r['wall']:7.2f} s  "
                 f"({1000 * r['wall'] / n:6.0f} ms per notebook)")
    return rows


def cell_cpu(folder: Path) -> float:
    """CPU seconds the kernels spent in the code cells of the executed notebooks in ``folder``, as nbmedic
    measured them (``cell.metadata.nbmedic.cpu``): the batch's total work."""
    total = 0.0
    for path in sorted(folder.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            total += float(((cell.get("metadata") or {}).get("nbmedic") or {}).get("cpu") or 0.0)
    return total


def timeline(loops: int, n: int, work: Path, cores: int) -> dict[str, Any]:
    """One ``nbmedic run -j 2`` of ``n`` report notebooks, each with a first code cell and a last one that
    stamp ``time.time()`` in the kernel, broken down into where the ``cores`` × wall "slot-seconds" went:
    the cells' CPU (the ideal's work), the cells' wall beyond their CPU (messages, and CPU the cells lost to
    the client's and other kernels' start-up and shutdown), a notebook's time between its cells, and time
    with fewer than ``cores`` notebooks in their cells: before the first (the command's and the first
    kernels' start), between notebooks (waiting for a kernel or a slot), at the end (the last notebooks
    running with a core idle, then the shutdowns and the report).  The parts add up to ``cores`` × wall.
    The CPU of the whole command (its process and every kernel, from ``getrusage``) less the cells' CPU is
    the overhead, shown per notebook."""
    import resource

    folder = work / "timeline"
    paths = write_notebooks(folder / "in", n, loops, stamped=True)
    tag = uuid.uuid4().hex
    cmd = [script("nbmedic"), "run", "-j", str(cores), "--output-dir", str(folder / "out"), *map(str, paths)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.time()
    proc = subprocess.run(cmd, env=tagged_env(tag), capture_output=True, text=True, check=False)
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"timeline: nbmedic run exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
    if leftovers(tag):
        raise SystemExit("timeline: kernels left running")
    spans: list[tuple[float, float]] = []
    cells_cpu = cells_wall = 0.0
    for path in paths:
        nb = read_output(folder / "out" / path.name)
        code = [] if isinstance(nb, str) else [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
        problem = nb if isinstance(nb, str) else verify_cells(code[1:-1])
        stamp = "".join("".join(o.get("text", "")) for o in code[-1].get("outputs", [])).split() if code else []
        if problem or stamp[:1] != ["TIMELINE"]:
            raise SystemExit(f"timeline: {path.name}: {problem or 'no TIMELINE stamp'}")
        spans.append((float(stamp[1]), float(stamp[2])))
        for cell in code[1:-1]:
            measured = (cell.get("metadata") or {}).get("nbmedic") or {}
            cells_cpu += float(measured.get("cpu") or 0.0)
            cells_wall += float(measured.get("wall") or 0.0)
    first_start = min(a for a, _b in spans)
    last_start = max(a for a, _b in spans)
    idle = {"before the first notebook": 0.0, "between notebooks": 0.0, "at the end": 0.0}
    events = sorted([(a, 1) for a, _b in spans] + [(b, -1) for _a, b in spans] + [(ended, 0)])
    active, last = 0, began
    for moment, change in events:
        part = ("before the first notebook" if last < first_start
                else "between notebooks" if last < last_start else "at the end")
        idle[part] += max(0, cores - active) * max(0.0, moment - last)
        active, last = active + change, moment
    wall = ended - began
    total_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    in_notebooks = sum(b - a for a, b in spans)
    parts = {"cells' CPU": cells_cpu, "cells' wall beyond their CPU": cells_wall - cells_cpu,
             "in a notebook between its cells": in_notebooks - cells_wall,
             **{f"fewer than {cores} notebooks running, {k}": v for k, v in idle.items()}}
    return {"wall_s": wall, "cores": cores, "slot_s": cores * wall, "parts_slot_s": parts,
            "ideal_s": cells_cpu / cores, "ratio": wall * cores / cells_cpu if cells_cpu else float("nan"),
            "first_cell_after_s": first_start - began, "last_cell_end_before_exit_s": ended - max(b for _a, b in spans),
            "command_cpu_s": total_cpu, "overhead_cpu_s": total_cpu - cells_cpu,
            "overhead_cpu_per_notebook_s": (total_cpu - cells_cpu) / n,
            "spans_s": [(a - began, b - began) for a, b in sorted(spans)]}


def performance_batch(label: str, seconds: float, cases: list[str], args: argparse.Namespace, work: Path,
                      note: Callable[[str], None]) -> dict[str, Any]:
    """One batch of --performance: the timings of every case, the total work, the ratios and the goals."""
    loops = calibrate(seconds)
    paths = write_notebooks(work / "in", args.notebooks, loops)
    n = len(paths)
    note(f"{label}: {n} notebooks ({loops} loop iterations ≈ {seconds:g} s of work each)")
    rows = timed(cases, paths, work, args.repeat, not args.no_warmup, note)
    s = summarise(rows, n)
    ours = s.get("nbmedic-cli-j2")
    out: dict[str, Any] = {"notebooks": n, "work_s": seconds, "cases": s, "ratios": {}, "goals": {}}
    if ours is not None:
        for base in ("papermill-cli", "nbclient", "nbmedic-cli-j2-nofork"):
            if base in s:
                out["ratios"][f"{base} / nbmedic -j 2"] = s[base]["per_notebook_s"] / ours["per_notebook_s"]
        cpus = min(2, os.cpu_count() or 1)
        total = statistics.median(cell_cpu(work / f"rep{r}" / "nbmedic-cli-j2") for r in range(args.repeat))
        ideal = total / cpus
        out["total_work_s"], out["ideal_s"] = total, ideal
        out["ratios"]["nbmedic -j 2 / ideal"] = ours["per_notebook_s"] * n / ideal if ideal else float("nan")
    if "nbmedic-cli-j2-dask" in s and ours is not None:
        out["dask_overhead_per_notebook_s"] = s["nbmedic-cli-j2-dask"]["per_notebook_s"] - ours["per_notebook_s"]
    if args.timeline and label == "medium":
        note(f"{label}: timeline run ...")
        out["timeline"] = timeline(loops, n, work, min(2, os.cpu_count() or 1))
    r = out["ratios"]
    goals = ({"papermill CLI >= 10x": ("papermill-cli / nbmedic -j 2", 10.0, 1), "nbclient >= 5x":
              ("nbclient / nbmedic -j 2", 5.0, 1)} if label == "tiny"
             else {"within 10 % of ideal": ("nbmedic -j 2 / ideal", 1.10, -1)})
    out["goals"] = {goal: (r[ratio] - bound) * sign >= 0 for goal, (ratio, bound, sign) in goals.items() if ratio in r}
    return out


def performance_main(args: argparse.Namespace, cases: list[str], note: Callable[[str], None]) -> int:
    work = args.keep or Path(tempfile.mkdtemp(prefix="nbmedic-scale-"))
    work.mkdir(parents=True, exist_ok=bool(not args.keep))
    figures: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "repeat": args.repeat,
                               "load_before": list(os.getloadavg()), "batches": {}}
    try:
        for label, seconds in (("tiny", args.work), ("medium", args.medium_work)):
            figures["batches"][label] = performance_batch(label, seconds, cases, args, work / label, note)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    figures["load_after"] = list(os.getloadavg())
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"every notebook in a fresh kernel (Python {figures['python']}, {figures['cpus']} CPUs; median of "
          f"{args.repeat} interleaved repeats, min-max in brackets; every output verified; load average "
          f"{figures['load_before'][0]:.2f} before, {figures['load_after'][0]:.2f} after)")
    for label, batch in figures["batches"].items():
        print(f"{label} batch: {batch['notebooks']} notebooks, ~{batch['work_s']:g} s of work each")
        for case in cases:
            e = batch["cases"][case]
            print(f"  {LABELS[case]:36s} {e['per_notebook_s'] * 1000:7.0f} ms per notebook   "
                  f"[{e['min_s'] * 1000:5.0f}-{e['max_s'] * 1000:5.0f} ms]   total {e['per_notebook_s'] * batch['notebooks']:6.1f} s")
        if "ideal_s" in batch:
            print(f"  total work {batch['total_work_s']:.1f} CPU s in the cells; ideal on 2 cores {batch['ideal_s']:.1f} s")
        for name, value in batch["ratios"].items():
            print(f"  {name:36s} {value:6.2f}x")
        if "dask_overhead_per_notebook_s" in batch:
            print(f"  LocalCluster overhead per notebook   {batch['dask_overhead_per_notebook_s'] * 1000:6.0f} ms")
        for goal, met in batch["goals"].items():
            print(f"  goal {goal:31s} {'met' if met else 'NOT met'}")
        if "timeline" in batch:
            t = batch["timeline"]
            print(f"  timeline (one more run, with time stamps in the kernels): {t['wall_s']:.2f} s, "
                  f"{t['ratio']:.2f}x the ideal of its own cells ({t['ideal_s']:.2f} s); first cell "
                  f"{t['first_cell_after_s']:.2f} s after the command's start, exit {t['last_cell_end_before_exit_s']:.2f} s "
                  f"after the last cell; {t['cores']} cores x {t['wall_s']:.2f} s = {t['slot_s']:.2f} slot-seconds:")
            for part, secs in t["parts_slot_s"].items():
                print(f"    {part:52s} {secs:6.2f} s  ({100 * secs / t['slot_s']:4.1f} %)")
            print(f"    CPU of the command and its kernels {t['command_cpu_s']:.2f} s, of which outside the cells "
                  f"{t['overhead_cpu_s']:.2f} s ({1000 * t['overhead_cpu_per_notebook_s']:.0f} ms per notebook)")
    return 0


def compile_nbmedic() -> str | None:
    """Byte-compile nbmedic's modules where they lack it, as ``pip install`` does for every package it
    installs (papermill's and nbclient's modules are compiled).  An editable checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module on every start: about 0.35 s of
    the CLI's start measured here, a cost no installed nbmedic pays.  The folder compiled, or None."""
    import compileall

    import nbmedic

    folder = Path(nbmedic.__file__).parent
    if not os.access(folder, os.W_OK):
        return None
    compileall.compile_dir(str(folder), quiet=2)
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1], Path(argv[2]), [Path(p) for p in argv[3:]])
    if argv[:1] == ["--phases-worker"]:
        return phases_main(argv[1], Path(argv[2]), [Path(p) for p in argv[3:]])

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=int, default=20, help="notebooks in the batch")
    parser.add_argument("--work", type=float, default=0.1, help="seconds of computation per notebook")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats of every case (median shown)")
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated subset of {','.join(CASES)} (default: {','.join(DEFAULT_CASES)}; "
                             f"with --performance: {','.join(PERFORMANCE_CASES)})")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up of every case")
    parser.add_argument("--phases", action="store_true", help="also break nbmedic's and nbclient's time down")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it, instead of a temp one")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--performance", action="store_true",
                        help="the scale-out comparison: a tiny and a medium batch, nbmedic -j 2 against the "
                             "papermill CLI and nbclient, ratios against the goals")
    parser.add_argument("--medium-work", type=float, default=1.0,
                        help="seconds of computation per notebook of --performance's medium batch")
    parser.add_argument("--scheduler", choices=["local"],
                        help="--performance also runs the batches with nbmedic run -j 2 --scheduler local "
                             "(a 2-worker Dask LocalCluster)")
    parser.add_argument("--timeline", action="store_true",
                        help="--performance also runs the medium batch once more with time stamps in the kernels "
                             "and shows where the time above the ideal went")
    args = parser.parse_args(argv)
    if args.timeline and not args.performance:
        parser.error("--timeline goes with --performance")
    default = PERFORMANCE_CASES + (["nbmedic-cli-j2-dask"] if args.scheduler else [])
    cases = [c for c in (args.cases or ",".join(default if args.performance else DEFAULT_CASES)).split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")

    def note(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    compiled = compile_nbmedic()
    if compiled:
        note(f"byte-compiled {compiled} (as pip does when it installs a package)")
    if args.performance:
        return performance_main(args, cases, note)

    if args.keep:
        args.keep.mkdir(parents=True)
        work = args.keep
    else:
        work = Path(tempfile.mkdtemp(prefix="nbmedic-batch-"))
    try:
        load_before = list(os.getloadavg())  # other work on the machine shows in the spread
        loops = calibrate(args.work)
        paths = write_notebooks(work / "in", args.notebooks, loops)
        n = len(paths)
        note(f"{n} notebooks in {work / 'in'} ({loops} loop iterations ≈ {args.work:g} s of work each)")
        rows = timed(cases, paths, work, args.repeat, not args.no_warmup, note)
        figures: dict[str, Any] = {
            "notebooks": n, "work_s": args.work, "repeat": args.repeat, "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "cases": summarise(rows, n), "all_verified": True,
            "load_before": load_before, "load_after": list(os.getloadavg()),
        }
        s = figures["cases"]
        ratios: dict[str, float] = {}
        for ours, base in (("nbmedic-api", "nbclient"), ("nbmedic-cli", "nbclient"),
                           ("nbmedic-api", "papermill-api"), ("nbmedic-cli", "papermill-cli"),
                           ("nbmedic-cli-j2", "nbclient")):
            if ours in s and base in s:
                ratios[f"{ours}/{base}"] = s[ours]["per_notebook_s"] / s[base]["per_notebook_s"]
        if "nbmedic-api" in s and "nbclient" in s and "loop_per_notebook_s" in s["nbmedic-api"]:
            ratios["nbmedic-api/nbclient (loops only)"] = (s["nbmedic-api"]["loop_per_notebook_s"]
                                                           / s["nbclient"]["loop_per_notebook_s"])
        figures["ratios"] = ratios
        if args.phases:
            note("phases ...")
            figures["phases"] = run_phases(paths, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    ms = 1000.0
    print(f"{n} notebooks, each in a fresh kernel, sequential unless said (Python {figures['python']}, "
          f"{figures['cpus']} CPUs; median of {args.repeat} interleaved repeats, min-max in brackets; "
          f"every output verified; load average {figures['load_before'][0]:.2f} before, "
          f"{figures['load_after'][0]:.2f} after)")
    print(f"  {'case':31s} {'per notebook':>12s}   {'spread':>15s}  {'loop only':>9s}  {'client CPU':>10s}")
    for case in cases:
        e = s[case]
        loop = f"{e['loop_per_notebook_s'] * ms:6.0f} ms" if "loop_per_notebook_s" in e else ""
        cpu = f"{e['client_cpu_per_notebook_s'] * ms:7.0f} ms" if "client_cpu_per_notebook_s" in e else ""
        print(f"  {LABELS[case]:31s} {e['per_notebook_s'] * ms:9.0f} ms   "
              f"[{e['min_s'] * ms:5.0f}-{e['max_s'] * ms:5.0f} ms]  {loop:>9s}  {cpu:>10s}")
    for name, value in ratios.items():
        goal = "   (goal <= 1.00)" if name in ("nbmedic-api/nbclient", "nbmedic-cli/nbclient") else ""
        print(f"  {name:42s} {value:5.2f}x{goal}")
    if args.phases:
        for case, data in figures["phases"].items():
            print(f"phases, {case}: {data['per_notebook'] * ms:.0f} ms per notebook (medians over one sequential "
                  "pass; phases nest, so they do not add up)")
            for label, secs in data["phases"].items():
                print(f"  {label:36s} {secs * ms:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
