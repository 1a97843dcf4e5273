"""Time git's clean filter over a repository of notebooks: nbmedic vs nbstripout vs nbstripout-fast.

    python benchmarks/strip.py [--notebooks 120] [--size-mb 40] [--repeat 3] [--workdir DIR] [--json]

1. Generates a repository's worth of real-sized, executed notebooks (deterministic, seeded): markdown,
   code cells with stream output, HTML tables, PNG figures as base64, tracebacks, widget metadata,
   written in nbformat's layout.
2. For each tool, in a fresh copy of that folder (``git init``, the tool's filter installed, an isolated
   global git config) times ``git add -A``:

   * nbmedic: ``nbmedic git install --no-diff --no-merge`` (the long-running filter process: one Python
     process for the whole ``git add``);
   * nbstripout: ``nbstripout --install`` (a per-file ``clean`` command), with ``--keep-id`` added to
     the command so it does the same work as nbmedic (whose default keeps cell ids);
   * nbstripout-fast (Rust) as its README configures it: ``filter.jupyter.clean = nbstripout-fast``,
     ``filter.jupyter.smudge = cat``, ``*.ipynb filter=jupyter``.

   then ``git status`` after every notebook's mtime changed (git cleans each one again), and checks
   that every stored notebook is stripped (and that nbmedic's blobs equal nbstripout's).
3. Times ``nbmedic strip NB`` on one notebook (a subprocess, start-up included; median of 7).

Goals (issue 4): ``git add -A`` >= 100x faster than nbstripout and no slower than nbstripout-fast;
``nbmedic strip`` on one notebook <= 150 ms.  nbstripout is timed once (it takes minutes), the others
best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = os.path.dirname(sys.executable)
WORDS = ("alpha beta gamma delta model data frame train loss epoch value mean std plot figure result "  # noqa: SIM905
         "load save split test error rate sample batch layer feature").split()


# --- corpus ------------------------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _source(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(2, 25)):
        indent = "    " * rng.randint(0, 2)
        lines.append(f"{indent}{rng.choice(WORDS)}_{rng.randint(0, 99)} = {rng.choice(WORDS)}("
                     f"{rng.randint(0, 1000)}, '{_sentence(rng, 2)}')")
    return "\n".join(lines)


def _html_table(rng: random.Random, rows: int) -> str:
    head = "".join(f"<th>{w}</th>" for w in rng.sample(WORDS, 6))
    body = "".join("<tr>" + "".join(f"<td>{rng.random():.6f}</td>" for _ in range(6)) + "</tr>\n"
                   for _ in range(rows))
    return f'<div>\n<table border="1" class="dataframe">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}' \
           "</tbody>\n</table>\n</div>"


def _outputs(rng: random.Random, count: int, budget: int) -> list[dict[str, Any]]:
    outs: list[dict[str, Any]] = []
    kind = rng.random()
    if kind < 0.35:
        text = "".join(f"epoch {i}: {_sentence(rng, 6)} {rng.random():.5f}\n" for i in range(rng.randint(1, 60)))
        outs.append({"name": "stdout", "output_type": "stream", "text": _lines(text)})
    if 0.25 < kind < 0.55:
        outs.append({"data": {"text/html": _lines(_html_table(rng, rng.randint(5, 40))),
                              "text/plain": _lines(f"<DataFrame {rng.randint(5, 40)} rows x 6 columns>")},
                     "execution_count": count, "metadata": {}, "output_type": "execute_result"})
    if 0.5 < kind < 0.9 and budget > 0:
        size = min(budget, rng.randint(20_000, 180_000))
        png = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)
        outs.append({"data": {"image/png": base64.b64encode(png).decode() + "\n",
                              "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
                     "metadata": {"needs_background": "light"}, "output_type": "display_data"})
    if kind > 0.97:
        tb = [f"\x1b[0;31m{rng.choice(WORDS)}Error\x1b[0m Traceback (most recent call last)",
              *(f"\x1b[0;32m/lib/{rng.choice(WORDS)}.py\x1b[0m in {rng.choice(WORDS)}()" for _ in range(8))]
        outs.append({"ename": "ValueError", "evalue": _sentence(rng, 4), "output_type": "error",
                     "traceback": tb})
    return outs


def make_notebook(rng: random.Random, target: int) -> str:
    cells: list[dict[str, Any]] = []
    size = 0
    count = 0
    while size < target or len(cells) < 4:
        if rng.random() < 0.25:
            cell: dict[str, Any] = {"cell_type": "markdown", "id": f"{rng.getrandbits(32):08x}", "metadata": {},
                                    "source": _lines(f"## {_sentence(rng, 4)}\n\n{_sentence(rng, 40)}")}
        else:
            count += 1
            outputs = _outputs(rng, count, target - size)
            cell = {"cell_type": "code", "execution_count": count, "id": f"{rng.getrandbits(32):08x}",
                    "metadata": {"collapsed": False, "scrolled": rng.random() < 0.3}, "outputs": outputs,
                    "source": _lines(_source(rng))}
        cells.append(cell)
        size += len(json.dumps(cell))
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                         "file_extension": ".py", "codemirror_mode": {"name": "ipython",
                                                                                      "version": 3}},
                       "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                 "version_minor": 0}}}}
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def make_corpus(folder: Path, notebooks: int, total_mb: float, seed: int = 4) -> list[Path]:
    rng = random.Random(seed)
    weights = [rng.lognormvariate(0, 0.9) for _ in range(notebooks)]
    scale = total_mb * 1e6 / sum(weights)
    paths = []
    for i, w in enumerate(weights):
        path = folder / f"project{i % 7}" / f"analysis_{i:03d}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make_notebook(rng, int(w * scale)), encoding="utf-8")
        paths.append(path)
    (folder / "README.md").write_text("notebooks\n", encoding="utf-8")
    return paths


# --- git ---------------------------------------------------------------------------------------------------

def env_for(home: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "NBMEDIC_FILTER_LOG"):
        env.pop(var, None)
    return env


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{done.stderr}")
    return done


def setup_nbmedic(repo: Path, env: dict[str, str]) -> None:
    sh(["nbmedic", "git", "install", "--no-diff", "--no-merge"], repo, env)


def setup_nbstripout(repo: Path, env: dict[str, str]) -> None:
    sh(["nbstripout", "--install"], repo, env)
    clean = sh(["git", "config", "filter.nbstripout.clean"], repo, env).stdout.strip()
    sh(["git", "config", "filter.nbstripout.clean", clean + " --keep-id"], repo, env)


def setup_fast(repo: Path, env: dict[str, str]) -> None:
    sh(["git", "config", "filter.jupyter.clean", "nbstripout-fast"], repo, env)
    sh(["git", "config", "filter.jupyter.smudge", "cat"], repo, env)
    (repo / ".gitattributes").write_text("*.ipynb filter=jupyter\n", encoding="utf-8")


TOOLS = {"nbmedic": setup_nbmedic, "nbstripout": setup_nbstripout, "nbstripout-fast": setup_fast}


def fresh_repo(corpus: Path, dest: Path, env: dict[str, str]) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(corpus, dest)
    sh(["git", "init", "-q", "-b", "main"], dest, env)
    sh(["git", "config", "user.email", "bench@example.com"], dest, env)
    sh(["git", "config", "user.name", "bench"], dest, env)
    return dest


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    sh(args, cwd, env)
    return time.perf_counter() - start


def stored_blobs(repo: Path, env: dict[str, str]) -> dict[str, bytes]:
    names = sh(["git", "ls-files", "*.ipynb"], repo, env).stdout.split()
    batch = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, env=env, capture_output=True,
                           input="".join(f":{n}\n" for n in names).encode(), check=True).stdout
    blobs: dict[str, bytes] = {}
    pos = 0
    for name in names:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        blobs[name] = batch[header_end + 1: header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return blobs


def bench_tool(tool: str, corpus: Path, work: Path, env: dict[str, str], repeat: int) -> dict[str, Any]:
    adds, statuses = [], []
    blobs: dict[str, bytes] = {}
    for _ in range(repeat):
        repo = fresh_repo(corpus, work / tool, env)
        TOOLS[tool](repo, env)
        adds.append(timed(["git", "add", "-A"], repo, env))
        sh(["git", "commit", "-q", "-m", "notebooks"], repo, env)
        stamp = time.time() + 10
        for path in repo.rglob("*.ipynb"):
            os.utime(path, (stamp, stamp))  # same size, new mtime: git must clean every notebook again
        statuses.append(timed(["git", "status", "--porcelain"], repo, env))
        blobs = stored_blobs(repo, env)
    stripped = sum(1 for b in blobs.values() if b'"outputs": []' in b and b'"output_type"' not in b)
    return {"add_s": min(adds), "add_runs": adds, "status_s": min(statuses), "stripped": stripped,
            "notebooks": len(blobs), "blobs": blobs}


def bench_strip_one(notebook: Path, work: Path, env: dict[str, str], runs: int = 7) -> dict[str, Any]:
    out: dict[str, Any] = {"file": notebook.name, "bytes": notebook.stat().st_size}
    commands = {"nbmedic strip": ["nbmedic", "strip"], "nbstripout": ["nbstripout", "--keep-id"],
                "nbstripout-fast": ["nbstripout-fast"]}
    for label, cmd in commands.items():
        times = []
        for i in range(runs):
            copy = work / f"one-{i}.ipynb"
            shutil.copyfile(notebook, copy)
            times.append(timed([*cmd, str(copy)], work, env))
            assert copy.read_bytes() != notebook.read_bytes(), f"{label} did not strip {notebook}"
        out[label] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=int, default=120)
    parser.add_argument("--size-mb", type=float, default=40.0, help="total size of the notebooks (MB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of nbmedic and nbstripout-fast (best)")
    parser.add_argument("--skip-nbstripout", action="store_true", help="skip the slow nbstripout run")
    parser.add_argument("--workdir", type=Path, help="keep the generated repositories here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="nbmedic-bench-strip-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = env_for(home)
    for tool in ("nbmedic", "nbstripout", "nbstripout-fast", "git"):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise SystemExit(f"{tool} is not on PATH")
    corpus = work / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    paths = make_corpus(corpus, args.notebooks, args.size_mb)
    total = sum(p.stat().st_size for p in paths)
    print(f"corpus: {len(paths)} notebooks, {total / 1e6:.1f} MB, median "
          f"{statistics.median(p.stat().st_size for p in paths) / 1e3:.0f} kB, largest "
          f"{max(p.stat().st_size for p in paths) / 1e6:.1f} MB; git {sh(['git', '--version'], work, env).stdout.split()[-1]}",
          file=sys.stderr)

    results: dict[str, dict[str, Any]] = {}
    for tool in ("nbmedic", "nbstripout-fast", "nbstripout"):
        if tool == "nbstripout" and args.skip_nbstripout:
            continue
        print(f"timing {tool} ...", file=sys.stderr, flush=True)
        results[tool] = bench_tool(tool, corpus, work, env, 1 if tool == "nbstripout" else args.repeat)
    same_as_nbstripout = None
    if "nbstripout" in results:
        ours, theirs = results["nbmedic"]["blobs"], results["nbstripout"]["blobs"]
        same_as_nbstripout = sum(1 for name in ours if ours[name] == theirs.get(name))
    median_nb = sorted(paths, key=lambda p: p.stat().st_size)[len(paths) // 2]
    one = bench_strip_one(median_nb, work, env)

    report: dict[str, Any] = {
        "corpus": {"notebooks": len(paths), "bytes": total},
        "git_add": {tool: r["add_s"] for tool, r in results.items()},
        "git_status": {tool: r["status_s"] for tool, r in results.items()},
        "stripped": {tool: f"{r['stripped']}/{r['notebooks']}" for tool, r in results.items()},
        "blobs_identical_to_nbstripout": same_as_nbstripout,
        "strip_one": one,
    }
    add = report["git_add"]
    ratios = {"nbstripout / nbmedic": add["nbstripout"] / add["nbmedic"] if "nbstripout" in add else None,
              "nbstripout-fast / nbmedic": add["nbstripout-fast"] / add["nbmedic"]}
    report["ratios"] = ratios
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"\n`git add -A` of {len(paths)} notebooks ({total / 1e6:.1f} MB), best of {args.repeat} "
          "(nbstripout: one run)")
    print(f"  {'tool':<16}{'git add -A':>12}{'per file':>11}{'git status*':>13}  stored stripped")
    for tool, r in results.items():
        print(f"  {tool:<16}{r['add_s']:>11.2f}s{r['add_s'] / len(paths) * 1000:>9.1f}ms"
              f"{r['status_s']:>12.2f}s  {r['stripped']}/{r['notebooks']}")
    print("  * every notebook's mtime changed after the commit, so git cleans each one again")
    if ratios["nbstripout / nbmedic"] is not None:
        print(f"  nbmedic is {ratios['nbstripout / nbmedic']:.0f}x faster than nbstripout (goal >= 100x); "
              f"{same_as_nbstripout}/{len(paths)} stored notebooks byte-identical to nbstripout --keep-id's")
    print(f"  nbstripout-fast / nbmedic = {ratios['nbstripout-fast / nbmedic']:.2f} "
          "(goal >= 1: nbmedic no slower)")
    print(f"\none notebook ({one['file']}, {one['bytes'] / 1e3:.0f} kB), subprocess incl. start-up, median of 7:")
    for label in ("nbmedic strip", "nbstripout", "nbstripout-fast"):
        goal = "  (goal <= 150 ms)" if label == "nbmedic strip" else ""
        print(f"  {label:<16}{one[label] * 1000:>8.0f} ms{goal}")
    print(f"\nrepositories kept in {work}" if args.workdir else "", end="\n" if args.workdir else "")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
