"""Monitor against real processes (no mocks of psutil): memory growth, per-cell figures, process trees,
idle detection, the memory watchdog, a process that exits by itself. Plus GpuProbe without a GPU.

Timings use generous margins: CI is a loaded 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from nbmedic.execute.gpu import GpuProbe
from nbmedic.execute.monitor import CellUsage, Monitor, ProcessTree
from nbmedic.execute.result import CgroupInfo, Sample

MB = 1 << 20

# A child driven line by line over stdin; answers "ok" after each command.
#   grow N   : keep N more MB (touched pages)      free     : drop everything grown
#   busy S   : burn CPU for S seconds               spawn K  : start K descendants (see below)
#   tspawn   : start a sleeper from a thread that stays alive
#   exit     : leave
WORKER = textwrap.dedent(
    """
    import subprocess, sys, time
    held = []
    kids = []
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "grow":
            for _ in range(int(arg[0]) // 10):
                held.append(bytearray(b"\\x01") * (10 << 20))
                time.sleep(0.03)
        elif cmd == "free":
            held.clear()
        elif cmd == "busy":
            end = time.monotonic() + float(arg[0])
            x = 0
            while time.monotonic() < end:
                x += 1
        elif cmd == "spawn":
            # one child keeping 40 MB that itself starts a grandchild keeping 40 MB, and a plain sleeper
            inner = "import time; b = bytearray(b'\\\\x01') * (40 << 20); time.sleep(60)"
            outer = (
                "import subprocess, sys, time; b = bytearray(b'\\\\x01') * (40 << 20); "
                f"p = subprocess.Popen([sys.executable, '-c', {inner!r}]); time.sleep(60)"
            )
            kids.append(subprocess.Popen([sys.executable, "-c", outer]))
            kids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        elif cmd == "tspawn":
            # a sleeper started by a thread that stays alive (Linux lists it under that thread only)
            import threading
            started = threading.Event()

            def parent():
                kids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
                started.set()
                threading.Event().wait()

            threading.Thread(target=parent, daemon=True).start()
            started.wait()
        elif cmd == "exit":
            break
        print("ok", flush=True)
    """
)


class Worker:
    def __init__(self, script: str = WORKER) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        try:
            for child in psutil.Process(self.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(script: str = WORKER) -> Worker:
        w = Worker(script)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    made: list[Monitor] = []
    yield made
    for m in made:
        m.stop()


def wait_until(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def ready(w: Worker) -> None:
    w.send("busy 0")  # the interpreter has started and read its first line


def test_memory_growth_and_cell_figures(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid, interval=0.05)
    monitors.append(m)
    m.start()
    base = wait_until(lambda: m.latest).rss

    m.set_cell(0)
    w.send("grow 100")
    m.set_cell(None)
    m.set_cell(1)
    w.send("grow 200")
    m.set_cell(2)
    w.send("free")
    m.set_cell(None)

    c0, c1, c2 = m.cell_usage(0), m.cell_usage(1), m.cell_usage(2)
    assert isinstance(c0, CellUsage)
    assert c0.rss_start == pytest.approx(base, abs=5 * MB)
    assert c0.rss_delta == pytest.approx(100 * MB, abs=15 * MB)
    assert c0.peak_rss >= c0.rss_end >= c0.rss_start
    assert c1.rss_start == c0.rss_end or abs(c1.rss_start - c0.rss_end) < 5 * MB
    assert c1.rss_delta == pytest.approx(200 * MB, abs=20 * MB)
    assert c1.peak_rss == pytest.approx(base + 300 * MB, abs=25 * MB)
    assert c2.rss_start == pytest.approx(c1.rss_end, abs=5 * MB)
    assert c2.rss_delta < -250 * MB  # large bytearrays are mmap'ed: freeing returns them to the OS
    assert c2.peak_rss >= c1.rss_end - 5 * MB
    for c in (c0, c1, c2):
        assert c.samples >= 2 and c.start is not None and c.end is not None and c.end >= c.start
        assert c.gpu_peak is None  # no GPU here
    assert c1.samples > 5  # growth takes ~0.6 s at 20 Hz
    assert m.cell_usage(99) == CellUsage(index=99)

    # the timeline saw the growth step by step, in order, labelled with the cells
    growing = [s.rss for s in m.samples if s.cell == 1]
    assert len({r // (10 * MB) for r in growing}) >= 4
    assert m.peak_rss == max(s.rss for s in m.samples) >= base + 290 * MB
    assert all(isinstance(s, Sample) for s in m.samples)
    ts = [s.t for s in m.samples]
    assert ts == sorted(ts)
    assert {s.cell for s in m.samples} >= {0, 1, 2}
    assert all(s.children == 0 and s.threads >= 1 for s in m.samples)

    # recent(): the tail of the timeline
    tail = m.recent(0.3)
    assert tail and tail[-1] is m.samples[-1]
    assert all(s.t >= m.samples[-1].t - 0.3 for s in tail)
    assert m.recent(1e9) == m.samples

    m.stop()
    m.stop()  # idempotent
    assert not m.running and m.error is None


def test_cpu_seconds_per_cell(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid)
    monitors.append(m)
    m.start()
    m.set_cell(0)
    w.send("busy 0.8")
    m.set_cell(1)
    time.sleep(0.4)
    m.set_cell(None)
    busy, quiet = m.cell_usage(0), m.cell_usage(1)
    assert 0.3 < busy.cpu_seconds < 1.2  # a loaded machine may give the worker less than a full core
    assert quiet.cpu_seconds < 0.1
    assert max(s.cpu for s in m.samples if s.cell == 0) > 30.0
    assert m.cpu_seconds >= busy.cpu_seconds


def test_process_tree_is_summed(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid, interval=0.05)
    monitors.append(m)
    m.start()
    base = wait_until(lambda: m.latest).rss
    w.send("spawn 2")
    # worker -> (outer -> inner), sleeper: three descendants, two of them holding 40 MB each
    full = wait_until(lambda: next((s for s in m.samples if s.children == 3 and s.rss > base + 90 * MB), None))
    assert full.threads >= 4
    pids = m.tree_pids()
    assert pids[0] == w.pid and len(pids) == 4
    assert set(pids[1:]) == {p.pid for p in psutil.Process(w.pid).children(recursive=True)}

    # a descendant that exits is no longer counted (here: a zombie, since the worker never reaps it)
    sleeper = next(p for p in psutil.Process(w.pid).children() if "bytearray" not in " ".join(p.cmdline()))
    sleeper.kill()
    wait_until(lambda: m.latest is not None and m.latest.children == 2 and m.latest.t > full.t)
    assert m.error is None and m.running


def test_idle_for_grows_while_sleeping_and_resets_while_busy(
    spawn: Callable[..., Worker], monitors: list[Monitor]
) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid, interval=0.05, idle_window=0.5)
    monitors.append(m)
    assert m.idle_for() == 0.0  # no samples yet
    m.start()
    time.sleep(1.5)
    idle1 = m.idle_for()
    assert idle1 > 0.8
    time.sleep(0.5)
    assert m.idle_for() > idle1  # still growing

    assert w.proc.stdin is not None
    w.proc.stdin.write("busy 1.5\n")  # do not wait for "ok": look while it burns
    w.proc.stdin.flush()
    time.sleep(0.9)
    assert m.idle_for() < 0.3
    assert m.idle_for(cpu_threshold=1000.0) > 2.0  # nothing is ever above 10 cores
    assert w.proc.stdout is not None and w.proc.stdout.readline().strip() == "ok"
    time.sleep(1.6)
    after = m.idle_for()
    assert 0.6 < after < 2.0


def test_watchdog_kills_the_tree(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    ready(w)
    w.send("spawn 1")
    descendants = wait_until(lambda: [c for c in [psutil.Process(w.pid).children(recursive=True)] if len(c) == 3])[0]
    m = Monitor(w.pid, interval=0.1)
    monitors.append(m)
    m.start()
    settled = wait_until(lambda: next((s for s in m.samples if s.children == 3 and s.rss > 100 * MB), None))
    limit = settled.rss + 150 * MB
    m.memory_limit = limit  # read by the sampler thread at every sample

    assert w.proc.stdin is not None
    began = time.monotonic()
    w.proc.stdin.write("grow 1000\n")  # ~330 MB/s
    w.proc.stdin.flush()
    assert w.proc.wait(timeout=15) == -9
    took = time.monotonic() - began
    wait_until(lambda: not m.running)

    hit = m.killed_for_memory
    assert hit is not None and hit.rss > limit
    assert hit.rss < limit + 200 * MB  # reacted within a couple of intervals of growth
    assert took < 5.0
    assert not m.alive
    assert set(m.killed_pids) == {w.pid, *(p.pid for p in descendants)}
    assert m.killed_pids[-1] == w.pid  # the kernel last
    for p in descendants:
        wait_until(lambda p=p: not p.is_running() or p.status() == psutil.STATUS_ZOMBIE)
    n = len(m.samples)
    m.stop()
    assert len(m.samples) == n  # no sample after the kill


def test_kill_tree_on_demand(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid)
    monitors.append(m)
    m.start()
    killed = m.kill_tree()
    assert killed == [w.pid]
    assert w.proc.wait(timeout=10) == -9
    assert m.killed_for_memory is None
    wait_until(lambda: not m.running)


def test_thread_ends_quietly_when_the_process_exits(
    spawn: Callable[..., Worker], monitors: list[Monitor]
) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid, interval=0.05)
    monitors.append(m)
    m.start()
    m.set_cell(0)
    wait_until(lambda: len(m.samples) >= 3)
    assert w.proc.stdin is not None
    w.proc.stdin.write("exit\n")
    w.proc.stdin.flush()
    # not reaped yet (a zombie): the monitor notices anyway
    wait_until(lambda: not m.running, timeout=5)
    assert w.proc.poll() == 0
    assert not m.alive and m.error is None and m.killed_for_memory is None
    n = len(m.samples)
    m.set_cell(None)  # after the death: marks the end with the last reading, no exception
    usage = m.cell_usage(0)
    assert usage.end is not None and usage.rss_end == m.samples[-1].rss
    m.stop()
    assert len(m.samples) == n
    assert m.idle_for() >= 0.0 and m.recent(1.0)


def test_pid_already_gone(monitors: list[Monitor]) -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    m = Monitor(p.pid)
    monitors.append(m)
    m.start()
    m.set_cell(0)
    m.set_cell(None)
    m.stop()
    assert m.samples == [] and m.peak_rss == 0 and not m.alive
    assert m.cell_usage(0).samples == 0
    assert m.recent(5) == [] and m.idle_for() == 0.0
    assert m.tree_pids() == []
    assert isinstance(m.cgroup_now(), CgroupInfo)


def test_many_short_cells_and_context_manager(spawn: Callable[..., Worker]) -> None:
    w = spawn()
    ready(w)
    with Monitor(w.pid, boundary_gap=0.0) as m:
        for i in range(50):
            m.set_cell(i)
            m.set_cell(None)
        usages = [m.cell_usage(i) for i in range(50)]
        assert all(u.samples >= 2 and u.end is not None for u in usages)  # fresh readings at both ends
        assert all(abs(u.rss_delta) < 5 * MB for u in usages)
    assert not m.running


def test_cgroup_snapshots(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    m = Monitor(w.pid, gpu=False)
    monitors.append(m)
    m.start()
    before = m.cgroup_before()
    now = m.cgroup_now()
    assert before.version == now.version
    if before.version is not None:  # this machine: v1 with a nested memory cgroup
        assert before.usage is not None and before.usage > 0
        assert now.oom_kills == before.oom_kills
    m.stop()
    w.close()
    assert m.cgroup_now().version == before.version  # still readable after the process is gone


# --------------------------------------------------------------------------------------------- GPU


def test_gpu_probe_real_nvml() -> None:
    probe = GpuProbe()
    if probe.available:  # a GPU machine with nvidia-ml-py: real answers
        devices = probe.devices()
        assert devices is not None and all(d["total"] and d["name"] for d in devices)
        assert probe.used_by({os.getpid()}) == 0  # this test process holds no GPU memory
    else:  # this CI machine: no GPU (and maybe no nvidia-ml-py)
        assert probe.used_by({1, 2}) is None
        assert probe.devices() is None
        assert probe.error
    probe.close()
    probe.close()


def test_gpu_probe_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with GpuProbe() as probe:
        assert probe.used_by({1}) is None and probe.devices() is None
        assert probe.error is not None and "pynvml" in probe.error


def _fake_nvml(*, init_fails: bool = False) -> types.ModuleType:
    """A stand-in NVML with two devices, to check the arithmetic that a GPU machine would exercise."""

    class NVMLError(Exception):
        pass

    def proc(pid: int, used: int | None) -> types.SimpleNamespace:
        return types.SimpleNamespace(pid=pid, usedGpuMemory=used)

    compute = {0: [proc(10, 100), proc(11, 50), proc(99, 1000)], 1: [proc(10, 7)]}
    graphics = {0: [proc(10, 100), proc(12, None)], 1: NVMLError("not supported")}
    mod = types.ModuleType("pynvml")
    state = {"shutdown": 0}

    def init() -> None:
        if init_fails:
            raise NVMLError("Driver Not Loaded")

    def graphics_for(h: int) -> Any:
        result = graphics[h]
        if isinstance(result, Exception):
            raise result
        return result

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: compute[h]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetGraphicsRunningProcesses = graphics_for  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: b"Fake GPU" if h == 0 else "Fake GPU 2"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        total=1000, free=600, used=400
    )
    mod.state = state  # type: ignore[attr-defined]
    return mod


def test_gpu_probe_arithmetic_with_a_fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    probe = GpuProbe()
    assert probe.available
    # pid 10: 100 on device 0 (compute and graphics counted once) + 7 on device 1; 11: 50; 12: unknown
    assert probe.used_by({10, 11, 12}) == 157
    assert probe.used_by({42}) == 0
    assert probe.devices() == [
        {"index": 0, "name": "Fake GPU", "total": 1000, "free": 600, "used": 400},
        {"index": 1, "name": "Fake GPU 2", "total": 1000, "free": 600, "used": 400},
    ]
    probe.close()
    assert fake.state["shutdown"] == 1


def test_gpu_probe_init_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(init_fails=True))
    probe = GpuProbe()
    assert probe.used_by({1}) is None and probe.devices() is None
    assert probe.error == "NVMLError: Driver Not Loaded"


def test_monitor_records_gpu_through_a_probe(
    spawn: Callable[..., Worker], monitors: list[Monitor], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = spawn()
    ready(w)
    fake = _fake_nvml()
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: (  # type: ignore[attr-defined]
        [types.SimpleNamespace(pid=w.pid, usedGpuMemory=123 * MB)] if h == 0 else []
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    m = Monitor(w.pid, interval=0.05)
    monitors.append(m)
    m.start()
    m.set_cell(0)
    wait_until(lambda: len(m.samples) >= 3)
    m.set_cell(None)
    assert all(s.gpu == 123 * MB for s in m.samples)
    assert m.cell_usage(0).gpu_peak == 123 * MB
    assert m.gpu_devices() is not None
    m.stop()
    assert fake.state["shutdown"] == 1  # the monitor's own probe is closed by stop()


def test_children_files_find_the_same_tree_as_a_full_scan(spawn: Callable[..., Worker]) -> None:
    from nbmedic.execute import monitor as module

    if not module._CHILDREN_FILES:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children files")
    w = spawn()
    ready(w)
    w.send("spawn 1")  # worker -> (outer -> inner), sleeper
    w.send("tspawn")  # and a sleeper whose parent is a thread still running
    expected = wait_until(lambda: len(pids := {p.pid for p in psutil.Process(w.pid).children(recursive=True)}) == 4
                          and pids)
    tree = ProcessTree(w.pid)
    fast = tree._scan()
    assert {p.pid for p in fast} == {p.pid for p in tree._scan(full=True)} == expected
    order = [p.pid for p in fast]
    outer = next(p for p in psutil.Process(w.pid).children() if p.children())
    assert order.index(outer.pid) < order.index(outer.children()[0].pid)  # parents before children
    assert module._children(w.pid + 10_000_000) == []  # no such process: nothing, no error


def test_sparse_tree_scans_still_kill_everything(spawn: Callable[..., Worker], monitors: list[Monitor]) -> None:
    w = spawn()
    ready(w)
    m = Monitor(w.pid, interval=0.05, scan_budget=1e-9)  # one full scan (at start), then only the known tree
    monitors.append(m)
    m.start()
    w.send("spawn 1")
    wait_until(lambda: len(psutil.Process(w.pid).children(recursive=True)) == 3)
    n = len(m.samples)
    wait_until(lambda: len(m.samples) >= n + 3)
    assert m.latest is not None and m.latest.children == 0  # not discovered yet, by design
    descendants = psutil.Process(w.pid).children(recursive=True)
    killed = m.kill_tree()  # rescans
    assert set(killed) == {w.pid, *(p.pid for p in descendants)}
    assert w.proc.wait(timeout=10) == -9
