"""Time ``nbmedic slim`` on a generated 60 MB notebook, and its peak memory.

    python benchmarks/slim.py [--size-mb 60] [--repeat 3] [--workdir DIR] [--json]

1. Generates a notebook (deterministic, seeded) like the ones that stop saving: photo-like PNG images made
   with Pillow (over the pixel budget), the same images displayed again, matplotlib-like figures saved as
   both SVG and PNG, long training logs as streams, DataFrames whose ``text/plain`` is far larger than
   their HTML, a cell tagged ``remove-output``, and the widget state of hundreds of models only a few of
   which an output displays.  ``build_notebook`` is also what ``tests/test_slim.py`` uses.
2. Runs ``nbmedic slim NB --dry-run`` and ``nbmedic slim NB -o OUT`` (the default target: 10 MiB) as child
   processes, start-up included; the best of ``--repeat`` and the child's peak RSS (``ru_maxrss``).

Goals (issue 12): ``--dry-run`` <= 1 s and ``slim`` <= 2 s on the 2-core machine, peak memory <= 3x the
file size.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = os.path.dirname(sys.executable)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def photo_png(seed: int, width: int, height: int) -> bytes:
    """A photo-like RGB image (smooth noise over a gradient): large as PNG, like a real picture."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    small = Image.frombytes("RGB", (width // 8, height // 8), rng.randbytes(width // 8 * (height // 8) * 3))
    img = small.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    grain = Image.effect_noise((width, height), 24).convert("RGB")
    img = Image.blend(img, grain, 0.25)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def figure_png(seed: int) -> bytes:
    """A small flat-colour figure, the kind matplotlib saves next to its SVG."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(img)
    points = [(x * 8, 240 + int(150 * rng.uniform(-1, 1))) for x in range(80)]
    draw.line(points, fill=(31, 119, 180), width=2)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii") + "\n"


def _code(source: str, outputs: list[dict[str, Any]], n: int, tags: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"tags": tags} if tags else {}
    return {"cell_type": "code", "execution_count": n, "id": f"cell-{n}", "metadata": meta,
            "outputs": outputs, "source": _lines(source)}


def _image(png: bytes, n: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": _b64(png), "text/plain": [f"<Figure {n}>"], **(extra or {})}}


def _svg(seed: int) -> str:
    rng = random.Random(seed)
    path = " ".join(f"L{x * 2} {240 + rng.uniform(-150, 150):.3f}" for x in range(2000))
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480">\n<path d="M0 240 {path}"/>\n</svg>\n'


def _widgets(models: int, shown: int) -> tuple[dict[str, Any], list[str]]:
    state = {}
    rng = random.Random(models)
    ids = [rng.randbytes(16).hex() for _ in range(models)]
    for i, ident in enumerate(ids):
        state[ident] = {"model_module": "@jupyter-widgets/controls", "model_name": "FloatSliderModel",
                        "model_module_version": "2.0.0",
                        "state": {"value": i / 3, "layout": f"IPY_MODEL_{ids[(i + 1) % models]}" if i < shown else
                                  None, "description": "x" * 16_000}}
    return {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2,
                                                            "version_minor": 0}}, ids[:shown]


def build_notebook(path: Path, scale: float = 1.0, seed: int = 12) -> Path:  # long: one notebook, step by step
    """Write a bloated notebook of about ``60 * scale`` MB (nbformat's layout) to ``path``."""
    from nbmedic.notebook.io import write_notebook

    rng = random.Random(seed)
    cells: list[dict[str, Any]] = [{"cell_type": "markdown", "id": "intro", "metadata": {},
                                    "source": ["# A notebook too large to save\n"]}]
    photos = [photo_png(seed + i, 1800, 1200) for i in range(max(1, round(2 * scale)))]
    for i, png in enumerate(photos):
        cells.append(_code(f"show(photo_{i})", [_image(png, i)], len(cells)))
    for i, png in enumerate(photos * 2 if scale >= 0.5 else photos[:1]):  # the same pictures shown again
        cells.append(_code(f"show(photo_{i % len(photos)})  # again", [_image(png, i)], len(cells)))
    for i in range(max(2, round(20 * scale))):  # figures saved as SVG and PNG
        cells.append(_code(f"plot({i})", [_image(figure_png(seed + i), i, {"image/svg+xml": _svg(seed + i)})],
                           len(cells)))
    for i in range(max(1, round(4 * scale))):  # training logs
        log = "".join(f"epoch {s // 1000} step {s}: loss={rng.random():.5f} acc={rng.random():.4f}\n"
                      for s in range(int(60_000 * max(scale, 0.05))))
        cells.append(_code(f"train({i})", [{"output_type": "stream", "name": "stdout", "text": _lines(log)}],
                           len(cells)))
    for i in range(max(1, round(8 * scale))):  # a DataFrame's text/plain far larger than its HTML
        plain = "".join(f"{r:>6} {rng.random():.6f} {rng.random():.6f} {rng.random():.6f}\n" for r in range(8_000))
        html = "<table>" + "".join(f"<tr><td>{r}</td></tr>" for r in range(20)) + "</table>"
        cells.append(_code(f"frame_{i}", [{"output_type": "execute_result", "execution_count": len(cells),
                                          "metadata": {}, "data": {"text/plain": _lines(plain),
                                                                   "text/html": _lines(html)}}], len(cells)))
    noise = "".join(f"debug {r}: {'.' * 60}\n" for r in range(int(12_000 * max(scale, 0.05))))
    cells.append(_code("debug()", [{"output_type": "stream", "name": "stderr", "text": _lines(noise)}], len(cells),
                       tags=["remove-output"]))
    widgets, shown = _widgets(max(20, int(400 * scale)), max(2, int(10 * scale)))
    for ident in shown:
        view = {"model_id": ident, "version_major": 2, "version_minor": 0}
        cells.append(_code("slider", [{"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.jupyter.widget-view+json": view, "text/plain": ["FloatSlider(value=0.0)"]}}],
            len(cells)))
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                       "language_info": {"name": "python"}, "widgets": widgets}}
    write_notebook(path, nb)
    return path


def _child(args: list[str]) -> tuple[float, int, int, float]:
    """(seconds, peak RSS in bytes, exit code, CPU seconds) of ``nbmedic ARGS`` in a child process (its own
    rusage).  On a shared machine the CPU seconds vary less than the wall-clock ones."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([os.path.join(BIN, "nbmedic"), *args], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            err.seek(0)
            raise SystemExit(f"nbmedic {' '.join(args)} failed ({code}): {err.read().decode().strip()}")
    return seconds, usage.ru_maxrss * 1024, code, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.build:
        build_notebook(opts.build, scale=opts.size_mb / 60)
        return
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="nbmedic-slim-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    nb = work / "bloated.ipynb"
    start = time.perf_counter()
    # built in a child: a forked child's ru_maxrss counts the parent's pages, so this process stays small
    subprocess.run([sys.executable, __file__, "--build", str(nb), "--size-mb", str(opts.size_mb)], check=True)
    built = time.perf_counter() - start
    size = nb.stat().st_size
    dry_runs = [_child(["slim", str(nb), "--dry-run"]) for _ in range(opts.repeat)]
    dry = min(r[0] for r in dry_runs)
    base = _child(["slim", str(nb), "--target", "1G"])[1]  # start-up, read and parse only: nothing to slim
    out = work / "out.ipynb"
    runs = []
    for _ in range(opts.repeat):
        out.unlink(missing_ok=True)
        runs.append(_child(["slim", str(nb), "-o", str(out), "--format", "json"]))
    real = min(r[0] for r in runs)
    dry_cpu, real_cpu = min(r[3] for r in dry_runs), min(r[3] for r in runs)
    peak = max(r[1] for r in runs + dry_runs)
    figures = {"file_bytes": size, "build_s": round(built, 2), "dry_run_s": round(dry, 3), "slim_s": round(real, 3),
               "dry_run_cpu_s": round(dry_cpu, 3), "slim_cpu_s": round(real_cpu, 3), "load_average": os.getloadavg()[0],
               "peak_rss_bytes": peak, "peak_over_file": round(peak / size, 2), "read_only_rss_bytes": base, "out_bytes": out.stat().st_size,
               "exit_code": runs[-1][2]}
    if opts.json:
        print(json.dumps(figures, indent=2))
        return
    mb = 1024 * 1024
    print(f"notebook: {size / mb:.1f} MiB (built in {built:.1f} s) -> {figures['out_bytes'] / mb:.1f} MiB")
    print(f"slim --dry-run: {dry:.2f} s   (goal <= 1 s; CPU {dry_cpu:.2f} s)")
    print(f"slim:           {real:.2f} s   (goal <= 2 s; CPU {real_cpu:.2f} s)")
    print(f"peak RSS:       {peak / mb:.0f} MiB = {peak / size:.2f}x the file   (goal <= 3x)")
    print(f"  of which reading and parsing alone (slim --target 1G): {base / mb:.0f} MiB = {base / size:.2f}x")
    print(f"best of {opts.repeat}; load average {os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
