"""What does monitoring a live kernel cost?

    python benchmarks/live_monitor.py [--seconds S] [--starts N] [--kernel ipykernel|python] [--skip-start] [--json]

(a) **Sampler CPU.** One ``LiveSampler`` (defaults: 1 s idle, 0.1 s busy, 0.02 s near the limit; GPU probe
    on, as the provisioner runs it) watches a real ipykernel started with jupyter_client (or, with
    ``--kernel python``, a plain ``python -c`` child) for ``--seconds`` while it is idle, then while a cell
    burns CPU (``busy()`` reads a ``cell.json`` as the supervisor does), then busy with RSS at 80 % of a
    memory limit (the near rate).  The figure is the sampler thread's own CPU time
    (``time.thread_time()`` inside the thread) over the wall time.  Goals: <= 1 % of one core idle,
    <= 3 % busy.
(b) **Ring buffer memory.** A ring sized by the default settings (300 s at the near rate), filled past
    capacity, measured with tracemalloc; beside it the same samples as a list of ``Sample`` objects.
    Goal: <= 1 MiB per kernel.
(c) **Start latency.** Kernel start to the ``kernel_info`` reply with the nbmedic provisioner against
    the plain LocalProvisioner, through ``AsyncKernelManager`` with two kernelspecs in a temporary
    JUPYTER_PATH, alternating (ABBA) after a warm-up; medians of ``--starts`` each.  Goal: <= +50 ms.

Everything Jupyter writes (connection files, the live folders, incidents) goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nbmedic.execute.result import Sample
from nbmedic.live.paths import read_json, write_json
from nbmedic.live.sampler import LiveSampler, SampleRing

MIB = 1 << 20


class TimedSampler(LiveSampler):
    """A LiveSampler that measures the CPU time of its own thread."""

    thread_cpu = 0.0

    def _loop(self) -> bool:
        began = time.thread_time()
        try:
            return super()._loop()
        finally:
            self.thread_cpu = time.thread_time() - began


# ------------------------------------------------------------------------------------------ kernels
class Kernel:
    """A kernel to watch: an ipykernel through jupyter_client, or a plain python child."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.km: Any = None
        self.kc: Any = None
        self.proc: subprocess.Popen[bytes] | None = None
        if kind == "ipykernel":
            from jupyter_client.manager import KernelManager

            self.km = KernelManager(kernel_name="python3")
            self.km.start_kernel()
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=60)
            self.pid = int(self.km.provisioner.pid)
        else:
            code = "import sys\nfor line in sys.stdin:\n    exec(line.replace(';;', '\\n'))"
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
            self.pid = self.proc.pid

    def burn(self, seconds: float) -> None:
        """Run a CPU-bound cell for ``seconds`` and wait for it to end."""
        loop = f"import time;;end = time.monotonic() + {seconds};;while time.monotonic() < end: pass"
        if self.kc is not None:
            self.kc.execute_interactive(loop.replace(";;", "\n"), timeout=seconds + 60, output_hook=lambda m: None)
        else:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write((loop + "\n").encode())
            self.proc.stdin.flush()
            time.sleep(seconds)

    def close(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def cpu_phase(kernel: Kernel, seconds: float, *, busy: bool, near: bool, folder: str) -> dict[str, Any]:
    """Watch ``kernel`` for ``seconds`` (idle, or while a cell burns CPU); the sampler thread's CPU."""
    cell = os.path.join(folder, "cell.json")
    write_json(cell, {"running": busy, "execution_count": 1, "started": time.time()})

    def running() -> bool:  # what the supervisor's busy() does: read the agent's cell.json
        record = read_json(cell)
        return bool(record and record.get("running"))

    limit = None
    if near:
        probe = LiveSampler(kernel.pid, gpu=False)
        probe._tree.read()
        reading = probe._tree.read()
        assert reading is not None
        limit = int(reading.rss / 0.80)
    s = TimedSampler(kernel.pid, memory_limit=limit, busy=running, interrupt=lambda: None)
    began = time.monotonic()
    s.start()
    if busy:
        kernel.burn(seconds)
    else:
        time.sleep(seconds)
    s.stop()
    wall = time.monotonic() - began
    return {
        "seconds": wall, "thread_cpu": s.thread_cpu, "core_pct": 100 * s.thread_cpu / wall,
        "samples": s.count, "rate": s.count / wall, "per_sample_ms": 1000 * s.thread_cpu / max(1, s.count),
        "interrupts": len(s.interrupts), "error": s.error,
    }


# ------------------------------------------------------------------------------------------ ring memory
def ring_memory() -> dict[str, Any]:
    """Bytes of a full ring at the default settings (tracemalloc), and of the same samples as objects."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        s = LiveSampler(os.getpid(), gpu=False)  # defaults: 300 s window, 0.02 s near interval
        for i in range(s.capacity + 1000):
            s._ring.append(Sample(t=1.8e9 + i * 0.02, rss=(6 << 30) + i, cpu=97.5, threads=42, children=3,
                                  gpu=(2 << 30) + i))
        ring = tracemalloc.get_traced_memory()[0] - base
        base = tracemalloc.get_traced_memory()[0]
        as_objects = s.timeline()
        objects = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return {"capacity": s.capacity, "kept": len(as_objects), "sampler_bytes": ring,
            "bytes_per_sample": SampleRing.BYTES_PER_SAMPLE, "as_sample_objects_bytes": objects}


# ------------------------------------------------------------------------------------------ start latency
KERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def write_kernelspecs(path_root: str) -> None:
    """Two kernelspecs, the same kernel: one plain, one with ``nbmedic-provisioner``."""
    for name, metadata in (
        ("bench-plain", {}),
        ("bench-nbmedic", {"kernel_provisioner": {"provisioner_name": "nbmedic-provisioner", "config": {}}}),
    ):
        folder = os.path.join(path_root, "kernels", name)
        os.makedirs(folder, exist_ok=True)
        spec = {"argv": KERNEL_ARGV, "display_name": name, "language": "python", "metadata": metadata}
        with open(os.path.join(folder, "kernel.json"), "w", encoding="utf-8") as fh:
            json.dump(spec, fh)


async def _one_start(kernel_name: str) -> float:
    """Seconds from ``start_kernel`` to the ``kernel_info`` reply; the kernel is shut down afterwards."""
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=kernel_name)
    began = time.perf_counter()
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)  # sends kernel_info_request, waits for the reply
        took = time.perf_counter() - began
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()
    return took


def start_latency(starts: int, path_root: str) -> dict[str, Any]:
    """Kernel start to ``kernel_info`` reply: the nbmedic provisioner vs the plain LocalProvisioner (ABBA)."""
    write_kernelspecs(path_root)

    async def run() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"bench-plain": [], "bench-nbmedic": []}
        for name in out:  # warm-up: imports, page cache, the provisioner's entry point
            await _one_start(name)
        for i in range(starts):
            order = ("bench-plain", "bench-nbmedic") if i % 2 == 0 else ("bench-nbmedic", "bench-plain")
            for name in order:
                out[name].append(await _one_start(name))
        return out

    times = asyncio.run(run())
    plain, monitored = statistics.median(times["bench-plain"]), statistics.median(times["bench-nbmedic"])
    return {"starts": starts, "plain_ms": 1000 * plain, "nbmedic_ms": 1000 * monitored,
            "delta_ms": 1000 * (monitored - plain),
            "paired_delta_ms": 1000 * statistics.median(
                m - p for p, m in zip(times["bench-plain"], times["bench-nbmedic"])),
            "plain_all_ms": [round(1000 * x, 1) for x in times["bench-plain"]],
            "nbmedic_all_ms": [round(1000 * x, 1) for x in times["bench-nbmedic"]]}


# ------------------------------------------------------------------------------------------ main
@contextmanager
def private_jupyter() -> Iterator[str]:
    """Temporary Jupyter data/runtime/config/path folders for everything this benchmark starts."""
    keys = ("JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_PATH")
    saved = {k: os.environ.get(k) for k in keys}
    with tempfile.TemporaryDirectory(prefix="nbmedic-bench-live-") as home:
        for key, sub in zip(keys, ("data", "runtime", "config", "data")):
            os.environ[key] = os.path.join(home, sub)
            os.makedirs(os.environ[key], exist_ok=True)
        try:
            yield home
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def measure(args: argparse.Namespace, home: str, say: Callable[[str], None]) -> dict[str, Any]:
    figures: dict[str, Any] = {"seconds": args.seconds, "kernel": args.kernel}
    kernel = Kernel(args.kernel)
    try:
        time.sleep(1.0)  # let the kernel settle after start-up
        for key, busy, near in (("idle", False, False), ("busy", True, False), ("busy_near", True, True)):
            say(f"sampler CPU: {key.replace('_', ' near the limit, ')} kernel, {args.seconds:g} s ...")
            figures[key] = cpu_phase(kernel, args.seconds, busy=busy, near=near, folder=home)
    finally:
        kernel.close()
    say("ring buffer memory ...")
    figures["ring"] = ring_memory()
    if not args.skip_start:
        say(f"start latency: {args.starts} starts each ...")
        figures["start"] = start_latency(args.starts, os.environ["JUPYTER_PATH"])
    return figures


def report(f: dict[str, Any]) -> None:
    print(f"live monitoring, {f['kernel']} kernel, {f['seconds']:g} s per CPU phase")
    print(f"  {'figure':<34} {'value':<58} goal")
    rows = (("idle", "sampler CPU, idle kernel", "<= 1 %"), ("busy", "sampler CPU, busy kernel", "<= 3 %"),
            ("busy_near", "sampler CPU, busy, RSS at 80 % of limit", "-"))
    for key, label, goal in rows:
        r = f[key]
        value = (f"{r['core_pct']:.3f} % of a core ({r['samples']} samples, {r['rate']:.1f}/s, "
                 f"{r['per_sample_ms']:.3f} ms each)")
        print(f"  {label:<34} {value:<58} {goal}")
    ring = f["ring"]
    value = (f"{ring['sampler_bytes'] / 1024:.0f} KiB ({ring['capacity']} samples x {ring['bytes_per_sample']} B;"
             f" as Sample objects {ring['as_sample_objects_bytes'] / MIB:.1f} MiB)")
    print(f"  {'ring buffer, full (300 s at 50 Hz)':<34} {value:<58} <= 1 MiB")
    if "start" in f:
        s = f["start"]
        value = (f"plain {s['plain_ms']:.0f} ms, nbmedic {s['nbmedic_ms']:.0f} ms ({s['delta_ms']:+.0f} ms; "
                 f"paired {s['paired_delta_ms']:+.0f} ms)")
        print(f"  {'start to kernel_info reply':<34} {value:<58} <= +50 ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each CPU phase (idle, busy, near)")
    ap.add_argument("--starts", type=int, default=10, help="kernel starts per provisioner for the latency")
    ap.add_argument("--kernel", choices=("ipykernel", "python"), default="ipykernel",
                    help="what the sampler watches: a real ipykernel, or a plain python child")
    ap.add_argument("--skip-start", action="store_true", help="do not measure the start latency")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    logging.getLogger("traitlets").setLevel(logging.ERROR)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with private_jupyter() as home:
        figures = measure(args, home, say)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
