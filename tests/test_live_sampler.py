"""LiveSampler against real processes: the ring buffer's bounds, the adaptive rate, the memory guard
(interrupt once per episode, kill of the whole tree), exit detection that leaves the exit status to the
owner's Popen, limits from the configuration and from a cgroup tree.

Limits are small (300-400 MiB) so the memory hogs are quick and harmless; timings have generous margins
(a loaded 2-core machine).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.execute.result import Sample
from nbmedic.live.sampler import CONFIGURED_LIMIT, RING_MAX_BYTES, GuardEvent, LiveSampler, SampleRing
from tests.livehelpers import wait_for

MIB = 1 << 20

# A child driven line by line over stdin; answers "<word> <SIGINTs received so far>" after each command.
#   to BYTES MODE : grow by 1 MiB every 10 ms (~100 MiB/s, pages touched) until its RSS reaches BYTES;
#                   MODE "stop": a SIGINT stops the growth and frees everything (a KeyboardInterrupt in a
#                   cell), answer "interrupted"; MODE "keep": SIGINTs are counted and the growth goes on
#   free          : drop everything grown                 exit : leave
WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    PAGE = os.sysconf("SC_PAGE_SIZE")
    held, sigints, mode = [], 0, "idle"

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def on_sigint(signum, frame):
        global sigints
        sigints += 1
        if mode == "stop":
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    for line in sys.stdin:
        cmd, *arg = line.split()
        word = "ok"
        if cmd == "to":
            mode = arg[1]
            try:
                while rss() < int(arg[0]):
                    held.append(b"\\x01" * (1 << 20))
                    time.sleep(0.01)
            except KeyboardInterrupt:
                held.clear()
                word = "interrupted"
            mode = "idle"
        elif cmd == "free":
            held.clear()
        elif cmd == "exit":
            break
        print(word, sigints, flush=True)
    """
)


class Worker:
    def __init__(self, script: str = WORKER) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid

    def send(self, line: str) -> tuple[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        word, count = self.proc.stdout.readline().split()
        return word, int(count)

    def close(self) -> None:
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
        made.append(Worker(script))
        return made[-1]

    yield make
    for w in made:
        w.close()


@pytest.fixture
def popen() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``python -c CODE``; whatever is left is killed and reaped afterwards."""
    made: list[subprocess.Popen[bytes]] = []

    def make(code: str, **kw: Any) -> subprocess.Popen[bytes]:
        made.append(subprocess.Popen([sys.executable, "-c", code], **kw))
        return made[-1]

    yield make
    for p in made:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        for stream in (p.stdin, p.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def samplers() -> Iterator[list[LiveSampler]]:
    made: list[LiveSampler] = []
    yield made
    for s in made:
        s.stop()


def wait_until(cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    return wait_for(cond, timeout, "the condition", interval=0.01)


def wait_samples(s: LiveSampler, n: int) -> None:
    target = s.count + n
    wait_until(lambda: s.count >= target)


def gaps(samples: list[Sample]) -> list[float]:
    return [b.t - a.t for a, b in itertools.pairwise(samples)]


def no_cgroup(tmp_path: Path) -> str:
    """Point the sampler at an empty folder: no cgroup limit, whatever the test machine has."""
    empty = tmp_path / "no-cgroup"
    empty.mkdir(exist_ok=True)
    return str(empty)


# ------------------------------------------------------------------------------------------ ring buffer
def test_ring_keeps_the_newest_samples_within_capacity_and_window() -> None:
    ring = SampleRing(capacity=50, window=1.0)
    for i in range(30):  # 0.1 s apart: the window keeps the last 1 s
        ring.append(Sample(t=1000.0 + i * 0.1, rss=i, cpu=1.5, threads=1, children=0, gpu=None if i % 2 else i))
    kept = ring.samples()
    assert [s.rss for s in kept] == list(range(19, 30))
    assert kept[-1].t - kept[0].t <= 1.0 + 1e-9
    assert kept[0].gpu is None and kept[1].gpu == 20 and kept[0].cpu == 1.5
    assert [s.rss for s in ring.since(1000.0 + 2.75)] == [28, 29]
    for i in range(200):  # 1 ms apart: now the capacity binds
        ring.append(Sample(t=2000.0 + i * 0.001, rss=1000 + i, cpu=0.0, threads=1, children=0))
    assert len(ring) == 50
    assert [s.rss for s in ring.samples()] == list(range(1150, 1200))
    assert ring.nbytes == 50 * SampleRing.BYTES_PER_SAMPLE


def test_full_ring_stays_under_one_mib() -> None:
    """300 s at the near rate (50 Hz), and the largest ring any settings can ask for, measured."""
    for window, fastest in ((300.0, 0.02), (86400.0, 0.001)):
        tracemalloc.start()
        try:
            s = LiveSampler(os.getpid(), window=window, near_interval=fastest, gpu=False)
            before = tracemalloc.get_traced_memory()[0]
            for i in range(s.capacity + 500):
                s._ring.append(Sample(t=1e9 + i * fastest, rss=1 << 33, cpu=99.9, threads=40, children=3,
                                      gpu=1 << 34))
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(s._ring) == s.capacity
        assert s.capacity * SampleRing.BYTES_PER_SAMPLE <= RING_MAX_BYTES
        assert used <= 1 << 20, (window, used)
        if window == 300.0:
            assert s.capacity >= 300 / 0.02  # the whole window at the near rate


def test_live_ring_holds_the_window(popen: Callable[..., subprocess.Popen[bytes]], samplers: list[LiveSampler],
                                    tmp_path: Path) -> None:
    p = popen("import time; time.sleep(60)")
    s = LiveSampler(p.pid, window=0.5, idle_interval=0.01, busy_interval=0.01, near_interval=0.01, gpu=False,
                    cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    wait_samples(s, 150)
    timeline = s.timeline()
    assert len(timeline) <= s.capacity <= 0.5 / 0.01 + 1
    assert 0 < timeline[-1].t - timeline[0].t <= 0.5
    assert abs(timeline[-1].t - time.time()) < 5  # epoch seconds
    assert all(a.t <= b.t for a, b in itertools.pairwise(timeline))
    assert s.count > len(timeline)
    recent = s.recent(0.1)
    assert recent and recent[-1] == timeline[-1] and recent[0].t >= timeline[-1].t - 0.1
    assert s.error is None


# ------------------------------------------------------------------------------------------ rate
def test_idle_and_busy_spacing(popen: Callable[..., subprocess.Popen[bytes]], samplers: list[LiveSampler],
                               tmp_path: Path) -> None:
    p = popen("import time; time.sleep(60)")
    busy = threading.Event()
    s = LiveSampler(p.pid, busy=busy.is_set, idle_interval=0.3, busy_interval=0.05, gpu=False,
                    cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    wait_samples(s, 5)
    idle = statistics.median(gaps(s.timeline()[-5:]))
    busy.set()
    wait_samples(s, 2)  # the first reading after the flip may still follow an idle wait
    wait_samples(s, 12)
    fast = statistics.median(gaps(s.timeline()[-12:]))
    assert 0.25 <= idle < 1.0
    assert fast < 0.12
    began = time.monotonic()
    s.stop()  # wakes the thread out of its wait
    assert time.monotonic() - began < 1.0
    assert not s.running


def test_cpu_bound_tree_is_sampled_at_the_busy_rate(popen: Callable[..., subprocess.Popen[bytes]],
                                                    samplers: list[LiveSampler], tmp_path: Path) -> None:
    p = popen("import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass")
    s = LiveSampler(p.pid, idle_interval=0.5, busy_interval=0.05, gpu=False, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    wait_until(lambda: s.last is not None and s.last.cpu >= 20.0)
    wait_samples(s, 12)
    assert statistics.median(gaps(s.timeline()[-10:])) < 0.25


# ------------------------------------------------------------------------------------------ guard
def test_growth_of_100_mib_per_second_is_interrupted_before_the_kill(
    spawn: Callable[..., Worker], samplers: list[LiveSampler], tmp_path: Path
) -> None:
    w = spawn()
    limit = 400 * MIB
    events: list[GuardEvent] = []
    s = LiveSampler(w.pid, memory_limit=limit, busy=lambda: True, on_guard=events.append, gpu=False,
                    cgroup_root=no_cgroup(tmp_path))  # interrupt: the default, SIGINT to the kernel
    samplers.append(s)
    s.start()
    assert (s.limit, s.limit_source) == (limit, CONFIGURED_LIMIT)
    began = time.monotonic()
    assert w.send(f"to {2 * limit} stop") == ("interrupted", 1)  # the KeyboardInterrupt freed the memory
    took = time.monotonic() - began
    assert s.killed_for_memory is None and w.proc.poll() is None
    assert [e.action for e in events] == ["interrupt"] and s.interrupts == events
    event = events[0]
    assert 0.90 * limit <= event.rss < 0.97 * limit
    assert event.limit == limit and event.limit_source == CONFIGURED_LIMIT
    assert event.share == pytest.approx(event.rss / limit)
    assert max(x.rss for x in s.timeline()) < 0.97 * limit
    assert took < 30  # ~100 MiB/s growth, not a crawl
    wait_until(lambda: s.last is not None and s.last.rss < 0.5 * limit)
    assert s.peak_rss >= event.rss


def test_one_interrupt_per_episode(spawn: Callable[..., Worker], samplers: list[LiveSampler],
                                   tmp_path: Path) -> None:
    w = spawn()
    limit = 400 * MIB
    busy = threading.Event()
    busy.set()
    calls: list[float] = []
    s = LiveSampler(w.pid, memory_limit=limit, busy=busy.is_set, interrupt=lambda: calls.append(time.time()),
                    gpu=False, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    w.send(f"to {int(0.93 * limit)} keep")
    wait_until(lambda: len(calls) == 1)
    wait_samples(s, 10)  # above the threshold all along: no second interrupt
    assert len(calls) == 1 and len(s.interrupts) == 1
    busy.clear()
    wait_samples(s, 3)
    busy.set()  # a new cell runs with memory still above the threshold, allocating nothing
    wait_samples(s, 10)
    assert len(calls) == 1
    w.send(f"to {int(0.95 * limit)} keep")  # ... then it allocates more: a new episode
    wait_until(lambda: len(calls) == 2)
    w.send("free")
    wait_until(lambda: s.last is not None and s.last.rss < 0.9 * limit)
    w.send(f"to {int(0.93 * limit)} keep")  # fell below and crossed again
    wait_until(lambda: len(calls) == 3)
    assert s.killed_for_memory is None and w.proc.poll() is None
    assert [e.action for e in s.interrupts] == ["interrupt"] * 3
    assert s.error is None


def test_no_interrupt_while_no_cell_runs(spawn: Callable[..., Worker], samplers: list[LiveSampler],
                                         tmp_path: Path) -> None:
    w = spawn()
    limit = 400 * MIB
    calls: list[float] = []
    s = LiveSampler(w.pid, memory_limit=limit, busy=lambda: False, interrupt=lambda: calls.append(1.0),
                    gpu=False, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    w.send(f"to {int(0.93 * limit)} keep")
    wait_until(lambda: s.last is not None and s.last.rss >= 0.92 * limit)
    wait_samples(s, 10)
    assert calls == [] and s.interrupts == [] and s.killed_for_memory is None


KILLED_IN_ONE_CALL = textwrap.dedent(
    """
    import subprocess, sys, time
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(kid.pid, flush=True)
    time.sleep(0.5)
    b = b"x" * (900 << 20)
    time.sleep(60)
    """
)


def test_allocation_in_one_native_call_is_killed_with_the_tree(
    popen: Callable[..., subprocess.Popen[bytes]], samplers: list[LiveSampler], tmp_path: Path
) -> None:
    p = popen(KILLED_IN_ONE_CALL, stdout=subprocess.PIPE)
    assert p.stdout is not None
    kid = int(p.stdout.readline())
    limit = 300 * MIB
    order: list[str] = []
    events: list[GuardEvent] = []
    exited = threading.Event()

    def on_guard(e: GuardEvent) -> None:
        events.append(e)
        order.append(e.action)

    def on_exit() -> None:  # the kernel is dead by now: a zombie until its Popen reaps it
        try:
            order.append("exit" if psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE else "exit, still alive")
        except psutil.NoSuchProcess:
            order.append("exit")
        exited.set()

    s = LiveSampler(p.pid, memory_limit=limit, busy=lambda: True, interrupt=lambda: None, on_guard=on_guard,
                    on_exit=on_exit, gpu=False, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    assert exited.wait(30)
    assert p.wait(timeout=10) == -9
    killed = s.killed_for_memory
    assert killed is not None and killed.rss >= 0.97 * limit
    assert events[-1].action == "kill" and events[-1] is s.kill_event
    assert events[-1].rss == killed.rss and events[-1].share >= 0.97
    assert order[-2:] == ["kill", "exit"]
    assert not s.alive
    # the grandchild went down with the kernel (an orphan may linger as a zombie until init reaps it)
    wait_until(lambda: not psutil.pid_exists(kid) or psutil.Process(kid).status() == psutil.STATUS_ZOMBIE)


def test_no_guard_without_a_limit_or_when_off(spawn: Callable[..., Worker], samplers: list[LiveSampler],
                                             tmp_path: Path) -> None:
    calls: list[float] = []
    w1, w2 = spawn(), spawn()
    unlimited = LiveSampler(w1.pid, busy=lambda: True, interrupt=lambda: calls.append(1.0), gpu=False,
                            cgroup_root=no_cgroup(tmp_path))
    off = LiveSampler(w2.pid, memory_limit=100 * MIB, guard=False, busy=lambda: True,
                      interrupt=lambda: calls.append(2.0), gpu=False, cgroup_root=no_cgroup(tmp_path))
    samplers.extend([unlimited, off])
    assert unlimited.limit is None and unlimited.limit_source is None
    assert off.limit == 100 * MIB
    unlimited.start()
    off.start()
    w1.send(f"to {200 * MIB} keep")
    w2.send(f"to {200 * MIB} keep")
    wait_until(lambda: min(x.peak_rss for x in (unlimited, off)) >= 190 * MIB)
    wait_samples(off, 5)
    assert calls == []
    for s in (unlimited, off):
        assert s.interrupts == [] and s.killed_for_memory is None and s.kill_event is None
    assert w1.proc.poll() is None and w2.proc.poll() is None


# ------------------------------------------------------------------------------------------ limits
def fake_cgroup_v2(root: Path, limit: int) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{50 * MIB}\n")
    (root / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\n")
    return root


def test_effective_limit_is_the_smaller_one(popen: Callable[..., subprocess.Popen[bytes]],
                                            samplers: list[LiveSampler], tmp_path: Path) -> None:
    p = popen("import time; time.sleep(60)")
    cg = fake_cgroup_v2(tmp_path / "cg", 300 * MIB)
    by_cgroup = LiveSampler(p.pid, memory_limit=1 << 30, cgroup_root=str(cg), gpu=False)
    assert (by_cgroup.limit, by_cgroup.limit_source) == (300 * MIB, "the cgroup v2 memory limit")
    assert by_cgroup.cgroup_before.version == 2 and by_cgroup.cgroup_before.oom_kills == 2
    configured = LiveSampler(p.pid, memory_limit=200 * MIB, cgroup_root=str(cg), gpu=False)
    assert (configured.limit, configured.limit_source) == (200 * MIB, CONFIGURED_LIMIT)
    assert isinstance(by_cgroup.host_oom_before, (int, type(None)))
    # a limit changed while the kernel runs is picked up
    samplers.append(by_cgroup)
    by_cgroup.start()
    wait_until(lambda: by_cgroup.count >= 1)
    (cg / "memory.max").write_text(f"{250 * MIB}\n")
    (cg / "memory.events").write_text("oom_kill 3\n")
    wait_until(lambda: by_cgroup.limit == 250 * MIB, timeout=10)
    assert by_cgroup.cgroup_now().oom_kills == 3
    assert by_cgroup.cgroup_before.oom_kills == 2


# ------------------------------------------------------------------------------------------ exit, errors
def test_on_exit_once_and_popen_keeps_the_exit_status(popen: Callable[..., subprocess.Popen[bytes]],
                                                      samplers: list[LiveSampler], tmp_path: Path) -> None:
    p = popen("import time; time.sleep(0.5); raise SystemExit(3)")
    calls: list[str] = []
    s = LiveSampler(p.pid, on_exit=lambda: calls.append(threading.current_thread().name), gpu=False,
                    cgroup_root=no_cgroup(tmp_path))  # idle interval 1 s: the pidfd wakes the thread at once
    samplers.append(s)
    s.start()
    wait_until(lambda: calls)
    assert p.poll() is None or p.returncode == 3  # nobody but the Popen reaps
    assert p.wait(timeout=10) == 3
    wait_until(lambda: not s.running)
    assert calls == [f"nbmedic-sampler-{p.pid}"]
    assert not s.alive and s.last is not None and s.error is None


def test_exit_seen_quickly_at_the_idle_rate(popen: Callable[..., subprocess.Popen[bytes]],
                                            samplers: list[LiveSampler], tmp_path: Path) -> None:
    p = popen("import sys; sys.stdin.readline()", stdin=subprocess.PIPE)
    seen = threading.Event()
    s = LiveSampler(p.pid, idle_interval=30.0, on_exit=seen.set, gpu=False, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    wait_until(lambda: s.count >= 1)
    assert p.stdin is not None
    p.stdin.close()
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd on this platform: the exit is seen at the next reading")
    assert seen.wait(10)
    assert p.wait(timeout=10) == 0


def test_stop_before_the_exit_means_no_on_exit(popen: Callable[..., subprocess.Popen[bytes]],
                                               tmp_path: Path) -> None:
    p = popen("import time; time.sleep(60)")
    calls: list[int] = []
    s = LiveSampler(p.pid, on_exit=lambda: calls.append(1), gpu=False, cgroup_root=no_cgroup(tmp_path))
    s.start()
    wait_until(lambda: s.count >= 1)
    s.stop()
    s.stop()  # idempotent
    s.start()  # a stopped sampler stays stopped
    assert not s.running
    p.kill()
    p.wait()
    time.sleep(0.1)
    assert calls == []


def test_pid_already_gone(popen: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    p = popen("pass")
    p.wait()
    seen = threading.Event()
    s = LiveSampler(p.pid, on_exit=seen.set, gpu=False, cgroup_root=no_cgroup(tmp_path))
    s.start()
    assert seen.wait(10)
    s.stop()
    assert s.timeline() == [] and s.last is None and s.recent(5) == [] and s.error is None


def test_callbacks_that_raise_do_not_stop_sampling(popen: Callable[..., subprocess.Popen[bytes]],
                                                   samplers: list[LiveSampler], tmp_path: Path) -> None:
    p = popen("import time; time.sleep(60)")

    def broken() -> bool:
        raise RuntimeError("cell.json half written")

    def stop_from_inside() -> None:
        s.stop()  # from the sampler thread itself: must not deadlock

    s = LiveSampler(p.pid, busy=broken, idle_interval=0.02, on_exit=stop_from_inside, gpu=False,
                    cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    wait_samples(s, 5)
    assert s.error == "busy: RuntimeError: cell.json half written"
    p.kill()
    p.wait()
    wait_until(lambda: not s.running)


def test_gpu_memory_through_nvml_at_most_once_a_second(
    popen: Callable[..., subprocess.Popen[bytes]], samplers: list[LiveSampler], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in NVML (no GPU on the test machine): the tree's GPU memory in every sample, queried ~1/s."""
    p = popen("import time; time.sleep(60)")
    queries: list[float] = []
    shutdowns: list[int] = []

    def compute(handle: int) -> list[types.SimpleNamespace]:
        queries.append(time.monotonic())
        return [types.SimpleNamespace(pid=p.pid, usedGpuMemory=123 * MIB),
                types.SimpleNamespace(pid=1, usedGpuMemory=999 * MIB)]

    def unsupported(handle: int) -> list[types.SimpleNamespace]:
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    fake = types.ModuleType("pynvml")
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]
    fake.nvmlShutdown = lambda: shutdowns.append(1)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 1  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    fake.nvmlDeviceGetComputeRunningProcesses = compute  # type: ignore[attr-defined]
    fake.nvmlDeviceGetGraphicsRunningProcesses = unsupported  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    s = LiveSampler(p.pid, idle_interval=0.05, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    began = time.monotonic()
    s.start()
    wait_until(lambda: len(queries) >= 2)
    elapsed = time.monotonic() - began
    assert all(x.gpu == 123 * MIB for x in s.timeline())
    assert s.count > 2 * len(queries)  # many samples, few NVML queries
    assert len(queries) <= elapsed / 1.0 + 2
    s.stop()
    assert shutdowns == [1]


def test_without_nvml_no_gpu_figure(popen: Callable[..., subprocess.Popen[bytes]], samplers: list[LiveSampler],
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    p = popen("import time; time.sleep(60)")
    s = LiveSampler(p.pid, idle_interval=0.02, cgroup_root=no_cgroup(tmp_path))
    samplers.append(s)
    s.start()
    wait_until(lambda: s.count >= 5)
    assert all(x.gpu is None for x in s.timeline()) and s.error is None
