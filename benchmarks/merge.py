"""Time ``nbmedic merge`` against nbdime's ``nbmerge`` on a large notebook edited on both sides.

    python benchmarks/merge.py [--cells N] [--image-kib K] [--repeat N] [--no-ids] [--keep DIR] [--json]

Builds a base notebook of ``--cells`` cells (default 400; every other code cell holds a PNG-sized
base64 output, so the file is well over 10 MB), then a local side (source edits, re-run outputs on
some cells, one inserted cell) and a remote side (other source edits, one inserted cell, one deleted
cell).  The edits do not overlap, so both tools should merge cleanly.  ``--no-ids`` writes the three
notebooks as nbformat 4.4, without cell ids, so cells are matched by content instead of by id.

Side by side, in one run:

* the command lines as git runs them (``nbmedic merge BASE LOCAL REMOTE -o OUT`` against
  ``nbmerge BASE LOCAL REMOTE --out OUT``): wall time and peak memory (the child's maximum RSS, from
  ``resource.getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process per run), best of ``--repeat``;
* the Python APIs in this process (``nbmedic.vcs.merge.merge3`` against
  ``nbdime.merging.merge_notebooks``): wall time (best of ``--repeat``) and the peak of Python
  allocations (``tracemalloc``, one extra run each);
* whether both results hold the same cells (count, and the source of every cell).

Goals (issue 4): at least 10x faster than nbdime, and no more memory.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _cell_id(i: int) -> str:
    return f"cell-{i:05d}"


def build_base(cells: int, image_kib: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(cells):
        if i % 3 == 2:
            out.append({"cell_type": "markdown", "id": _cell_id(i), "metadata": {},
                        "source": f"## Step {i}\n\nExplains what cell {i + 1} computes and why.\n"})
            continue
        src = "\n".join(f"v{i}_{k} = compute({i}, {k})  # line {k}" for k in range(rng.randint(3, 25)))
        outputs: list[dict[str, Any]] = [{"output_type": "stream", "name": "stdout",
                                          "text": "".join(f"step {i}.{k}: {rng.random():.6f}\n" for k in range(20))}]
        if i % 2 == 0:
            png = base64.b64encode(rng.randbytes(image_kib * 1024)).decode()
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": png, "text/plain": ["<Figure size 640x480 with 1 Axes>"]}})
        out.append({"cell_type": "code", "id": _cell_id(i), "metadata": {}, "source": src,
                    "execution_count": i + 1, "outputs": outputs})
    return {"nbformat": 4, "nbformat_minor": 5, "cells": out, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "version": "3.11"}}}


def build_sides(base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    n = len(base["cells"])
    code = [i for i, c in enumerate(base["cells"]) if c["cell_type"] == "code"]
    for i in code[1::20]:  # local: source edits on every 20th code cell
        local["cells"][i]["source"] += "\nprint('local edit')"
    for i in code[3::25]:  # local: re-ran some cells (new stream output and count)
        local["cells"][i]["outputs"][0]["text"] = "re-run on the local side\n"
        local["cells"][i]["execution_count"] = 10_000 + i
    for i in code[10::20]:  # remote: source edits on other cells
        cell = remote["cells"][i]
        cell["source"] = "# remote edit\n" + cell["source"]
    local["cells"].insert(n // 3, {"cell_type": "markdown", "id": "local-insert", "metadata": {},
                                   "source": "# Inserted on the local side"})
    remote["cells"].insert(2 * n // 3, {"cell_type": "code", "id": "remote-insert", "metadata": {},
                                        "source": "inserted_on_remote = True", "execution_count": None,
                                        "outputs": []})
    del remote["cells"][n - 2]  # a cell the local side did not touch
    return local, remote


def drop_ids(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook as nbformat 4.4 writes it: no cell ids."""
    for cell in nb["cells"]:
        cell.pop("id", None)
    nb["nbformat_minor"] = 4
    return nb


def _sources(nb: dict[str, Any]) -> list[str]:
    out = []
    for cell in nb["cells"]:
        source = cell["source"]
        out.append("".join(source) if isinstance(source, list) else source)
    return out


def _child(cmd: list[str]) -> None:
    """Run ``cmd``; print its wall time, exit code and maximum RSS (KiB) as JSON."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"wall": wall, "rc": proc.returncode, "maxrss_kib": rss,
                      "stderr": proc.stderr.decode(errors="replace")[-2000:]}))


def measure(cmd: list[str], repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, __file__, "--child", "--", *cmd], capture_output=True, text=True,
                              check=True)
        runs.append(json.loads(proc.stdout))
    best = min(runs, key=lambda r: r["wall"])
    return {"wall": best["wall"], "maxrss_mib": max(r["maxrss_kib"] for r in runs) / 1024, "rc": best["rc"],
            "stderr": best["stderr"]}


def api_times(files: list[Path], repeat: int) -> dict[str, dict[str, float]]:
    """Both merges from the parsed files (each tool's own reader: nbformat joins multi-line strings)."""
    import nbformat
    from nbdime.merging import merge_notebooks

    from nbmedic.notebook.io import load_bytes
    from nbmedic.vcs.merge import merge3

    texts = [p.read_bytes() for p in files]
    base, local, remote = (load_bytes(t) for t in texts)
    nbs = [nbformat.reads(t.decode("utf-8"), as_version=4) for t in texts]

    def ours() -> Any:
        return merge3(base, local, remote).nb

    def theirs() -> Any:
        return merge_notebooks(*nbs)[0]

    out: dict[str, dict[str, float]] = {}
    for name, fn in (("nbmedic", ours), ("nbdime", theirs)):
        fn()  # warm-up (imports, caches)
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[name] = {"wall": best, "peak_mib": peak / 2**20}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--child", "--"]:
        _child(argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=400)
    parser.add_argument("--image-kib", type=int, default=60, help="size of each PNG before base64 (KiB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ids", action="store_true", help="nbformat 4.4 notebooks without cell ids")
    parser.add_argument("--keep", metavar="DIR", help="write the notebooks and results here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    nbmedic_cmd = shutil.which("nbmedic", path=str(BIN)) or "nbmedic"
    nbmerge_cmd = shutil.which("nbmerge", path=str(BIN)) or shutil.which("nbmerge")
    if nbmerge_cmd is None:
        print("nbmerge (nbdime) is not installed: `pip install nbdime`", file=sys.stderr)
        return 2
    from nbmedic.notebook.io import dumps

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nbmedic-bench-merge-"))
    work.mkdir(parents=True, exist_ok=True)
    base = build_base(args.cells, args.image_kib)
    local, remote = build_sides(base)
    if args.no_ids:
        base, local, remote = drop_ids(base), drop_ids(local), drop_ids(remote)
    paths = {}
    for name, nb in (("base", base), ("local", local), ("remote", remote)):
        paths[name] = work / f"{name}.ipynb"
        paths[name].write_text(dumps(nb), encoding="utf-8")
    size = paths["base"].stat().st_size
    files = [str(paths[n]) for n in ("base", "local", "remote")]

    cli = {
        "nbmedic": measure([nbmedic_cmd, "merge", *files, "-o", str(work / "out-nbmedic.ipynb")], args.repeat),
        "nbdime": measure([nbmerge_cmd, *files, "--out", str(work / "out-nbdime.ipynb")], args.repeat),
    }
    results = {name: json.loads((work / f"out-{name}.ipynb").read_text(encoding="utf-8")) for name in cli}
    same = _sources(results["nbmedic"]) == _sources(results["nbdime"])
    api = api_times([paths[n] for n in ("base", "local", "remote")], args.repeat)

    figures = {
        "notebook": {"cells": len(base["cells"]), "size_mib": size / 2**20, "ids": not args.no_ids},
        "cli": {k: {"wall_s": v["wall"], "maxrss_mib": v["maxrss_mib"], "rc": v["rc"]} for k, v in cli.items()},
        "api": api,
        "cells": {k: len(v["cells"]) for k, v in results.items()},
        "same_cells": same,
        "speedup_cli": cli["nbdime"]["wall"] / cli["nbmedic"]["wall"],
        "speedup_api": api["nbdime"]["wall"] / api["nbmedic"]["wall"],
        "memory_ratio_cli": cli["nbmedic"]["maxrss_mib"] / cli["nbdime"]["maxrss_mib"],
        "memory_ratio_api": api["nbmedic"]["peak_mib"] / api["nbdime"]["peak_mib"],
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        nb = figures["notebook"]
        print(f"notebook: {nb['cells']} cells, {nb['size_mib']:.1f} MiB (base), "
              f"{'cell ids' if nb['ids'] else 'no cell ids (nbformat 4.4)'}; work dir {work}")
        print(f"{'':24}{'nbmedic':>12}{'nbdime':>12}{'ratio':>10}")
        print(f"{'CLI wall (s)':24}{cli['nbmedic']['wall']:12.3f}{cli['nbdime']['wall']:12.3f}"
              f"{figures['speedup_cli']:9.1f}x")
        print(f"{'CLI max RSS (MiB)':24}{cli['nbmedic']['maxrss_mib']:12.1f}{cli['nbdime']['maxrss_mib']:12.1f}"
              f"{figures['memory_ratio_cli']:9.2f}x")
        print(f"{'API wall (s)':24}{api['nbmedic']['wall']:12.3f}{api['nbdime']['wall']:12.3f}"
              f"{figures['speedup_api']:9.1f}x")
        print(f"{'API peak alloc (MiB)':24}{api['nbmedic']['peak_mib']:12.1f}{api['nbdime']['peak_mib']:12.1f}"
              f"{figures['memory_ratio_api']:9.2f}x")
        print(f"{'exit code':24}{cli['nbmedic']['rc']:12}{cli['nbdime']['rc']:12}")
        print(f"{'cells in the result':24}{figures['cells']['nbmedic']:12}{figures['cells']['nbdime']:12}")
        print(f"same cells (count and every source): {'yes' if same else 'NO'}")
    for name, run in cli.items():
        if run["rc"] not in (0, 1):
            print(f"{name} failed: {run['stderr']}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
