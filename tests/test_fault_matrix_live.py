"""The kernel fault matrix of the monitored kernels: every fault that applies to a live kernel, under both
supervisors ``nbmedic monitor install`` sets up (the provisioner inside jupyter_client, and ``--wrapper``'s
``nbmedic kernel-wrapper`` argv), with the memory limit given to ``monitor install``.

The kernels are started as a Jupyter server starts them (jupyter_client's AsyncKernelManager with the
installed kernelspec, ``JPY_SESSION_NAME`` naming the notebook), all of a kind at once.  Each death must
leave one incident with its code and cause; what is not a death (an output flood, a start-up that hung and
was shut down) must leave none; and afterwards no process of the test is left (each carries a marker in
its environment) nor a connection file or kernel folder in the runtime folder.

Single faults in depth: ``test_live_provisioner.py``, ``test_live_wrapper.py``, ``test_live_sampler.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.live.launch import remove_stale_dirs
from nbmedic.live.paths import kernel_dir, write_json
from nbmedic.live.wrapper import kernel_id_from_argv
from tests.livehelpers import incidents, wait_for, write_kernelspec
from tests.runhelpers import PY

pytestmark = [
    pytest.mark.fault_matrix,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux only"),
]

Cli = Callable[..., tuple[int, str, str]]
MiB = 1 << 20
LIMIT = 400 * MiB
SUPERVISORS = ["provisioner", "wrapper"]
MARK = "NBMEDIC_FAULT_MATRIX_LIVE"

RUNAWAY = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nchunks = []\nwhile True:\n"
           "    chunks.append(b'\\x01' * (4 << 20))\n    time.sleep(0.1)")  # ~40 MiB/s, deaf to SIGINT
CELL_FAULTS = {
    "sigkill": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "segfault": "import ctypes\n\ndef crash():\n    ctypes.string_at(0)\n\ncrash()",
    "os_exit": "import os\nos._exit(3)",
    "memory": "import time\nblob = b'\\x01' * (600 << 20)\ntime.sleep(30)",  # past the limit in one call
    "runaway": RUNAWAY,
    "flood": "for i in range(20000):\n    print('x' * 99)",
}
CRASH_AT_START = ("import os, signal, sys; sys.stderr.write('crashing at start-up\\n'); sys.stderr.flush(); "
                  "os.kill(os.getpid(), signal.SIGSEGV)")


def _install(cli: Cli, supervisor: str, *names: str) -> None:
    extra = ["--wrapper"] if supervisor == "wrapper" else []
    code, out, err = cli("monitor", "install", *names, "--memory-limit", str(LIMIT), *extra)
    assert code == 0, out + err


def _marked(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARK) == tag:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _assert_nothing_left(tag: str, runtime: Path, kernel_name: str = "mon") -> None:
    """No process of the test and no connection file; the kernel folders a forced shutdown left (a
    wrapper killed outright cannot remove its own) are gone after the next monitored launch."""
    deadline = time.monotonic() + 10
    while _marked(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(p.pid, p.cmdline()) for p in _marked(tag)] == [], "kernel or wrapper processes left behind"
    assert list(runtime.glob("kernel-*.json")) == [], "connection files left behind"
    assert [p for p in runtime.rglob("*") if ".nbmedic-tmp" in p.name or p.name.endswith(".tmp")] == []
    nxt = Kernel(kernel_name, runtime / "next.ipynb", tag)
    folders = runtime / "nbmedic" / "kernels"

    async def next_launch() -> list[str]:
        try:
            await nxt.start()
            return sorted(p.name for p in folders.iterdir())
        finally:
            if nxt.kc is not None:
                nxt.kc.stop_channels()
            await nxt.km.shutdown_kernel(now=False)  # as a user's shutdown: the kernel exits cleanly

    assert asyncio.run(next_launch()) == [nxt.kernel_id], "the folders of kernels gone are not removed"
    left = {p.name: (p / "session.json").read_text() if (p / "session.json").exists() else None
            for p in folders.iterdir()}
    assert left == {}, "a kernel shut down cleanly left its folder"
    assert list(runtime.glob("kernel-*.json")) == [], "connection files left behind"
    assert _marked(tag) == []


class Kernel:
    """One kernel of the installed kernelspec, started as jupyter_server starts it."""

    def __init__(self, kernel_name: str, notebook: Path, tag: str, ipc: str | None = None) -> None:
        from jupyter_client.manager import AsyncKernelManager

        # as jupyter_server's MultiKernelManager names it: <runtime>/kernel-<id>.json
        self.kernel_id = str(uuid.uuid4())
        runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
        self.km = AsyncKernelManager(kernel_name=kernel_name,
                                     connection_file=str(runtime / f"kernel-{self.kernel_id}.json"))
        if ipc is not None:  # Unix sockets named from this (short) path prefix instead of TCP ports
            self.km.transport = "ipc"
            self.km.ip = ipc
        self.notebook = notebook
        self.tag = tag
        self.kc: Any = None

    async def start(self, ready: float = 60) -> None:
        env = dict(os.environ, JPY_SESSION_NAME=str(self.notebook), **{MARK: self.tag})
        await self.km.start_kernel(kernel_id=self.kernel_id, env=env, cwd=str(self.notebook.parent))
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=ready)

    async def execute(self, code: str, timeout: float = 60) -> dict[str, Any]:
        msg_id = self.kc.execute(code)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self.kc.get_shell_msg(timeout=max(0.1, deadline - loop.time()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    async def close(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        with contextlib.suppress(Exception):  # a kernel that never started: nothing to shut down
            await self.km.shutdown_kernel(now=True)


def _incident_of(data: Path, kernel_id: str) -> list[dict[str, Any]]:
    return [i for i in incidents(data) if i["kernel_id"] == kernel_id]


def _rss(runtime: Path, kernel_id: str) -> int:
    """The resident memory of a monitored kernel's process (its ``session.json`` names it); 0 if unknown."""
    try:
        session = json.loads((runtime / "nbmedic" / "kernels" / kernel_id / "session.json").read_text())
        return int(psutil.Process(session["pid"]).memory_info().rss)
    except (OSError, ValueError, KeyError, psutil.Error):
        return 0


@pytest.mark.parametrize("supervisor", SUPERVISORS)
def test_cell_faults_of_monitored_kernels_started_at_once(
        supervisor: str, jupyter_home: dict[str, Path], tmp_path: Path, run_cli: Cli) -> None:
    data, runtime = jupyter_home["data"], jupyter_home["runtime"]
    write_kernelspec(data, "mon")
    _install(run_cli, supervisor, "mon")
    tag = uuid.uuid4().hex
    kernels = {name: Kernel("mon", tmp_path / "nbs" / f"{name}.ipynb", tag) for name in CELL_FAULTS}
    (tmp_path / "nbs").mkdir()

    async def scenario() -> dict[str, dict[str, Any]]:
        try:
            await asyncio.gather(*(k.start() for k in kernels.values()))
            for k in kernels.values():
                assert (await k.execute("first = 'ran'"))["status"] == "ok"
            for name, k in kernels.items():
                k.kc.execute(CELL_FAULTS[name])
            # the runaway ignores the user's interrupt as it ignores the guard's
            runaway = kernels["runaway"]
            await asyncio.to_thread(wait_for, lambda: _rss(runtime, runaway.km.kernel_id) > 120 * MiB, 30,
                                    "the runaway to grow (so its SIGINT is ignored already)")
            await runaway.km.interrupt_kernel()
            dead = {name: k for name, k in kernels.items() if name != "flood"}
            try:
                await asyncio.to_thread(wait_for, lambda: all(_incident_of(data, k.km.kernel_id)
                                                              for k in dead.values()), 60, "incidents")
            except AssertionError:
                missing = [n for n, k in dead.items() if not _incident_of(data, k.km.kernel_id)]
                raise AssertionError(f"no incident of {missing}") from None
            flood = kernels["flood"]
            reply = await flood.execute("print(first)")  # the flood's kernel lives on and answers
            assert reply["status"] == "ok", reply
            return {name: _incident_of(data, k.km.kernel_id) for name, k in kernels.items()}
        finally:
            await asyncio.gather(*(k.close() for k in kernels.values()))

    began = time.monotonic()
    found = asyncio.run(scenario())
    took = time.monotonic() - began
    assert found["flood"] == [], "an output flood is not a death"
    for name in ("sigkill", "segfault", "os_exit", "memory", "runaway"):
        assert len(found[name]) == 1, (name, found[name])
        incident = found[name][0]
        assert incident["supervisor"] == supervisor and incident["notebook"] == str(kernels[name].notebook)
        assert incident["cell"]["source_head"].startswith(CELL_FAULTS[name][:10])
    f = {name: found[name][0]["finding"] for name in found if found[name]}
    assert f["sigkill"]["code"] == "RN100" and found["sigkill"][0]["signal"] == "SIGKILL"
    assert "SIGKILL" in f["sigkill"]["message"]
    assert f["segfault"]["code"] == "RN102" and found["segfault"][0]["signal"] == "SIGSEGV"
    assert f["segfault"]["evidence"]["cell_function"] == "crash" and "string_at" in f["segfault"]["evidence"]["stack"]
    assert f["os_exit"]["code"] == "RN103" and found["os_exit"][0]["exit_code"] == 3
    assert "exited by itself with code 3" in f["os_exit"]["message"]
    for name in ("memory", "runaway"):
        assert f[name]["code"] == "RN101", f[name]["message"]
        assert f[name]["evidence"]["killed_by_watchdog"] is True and "memory guard" in f[name]["message"]
        assert f[name]["evidence"]["limit"] == LIMIT
        assert found[name][0]["memory"]["peak_rss"] >= 0.9 * LIMIT
    assert f["runaway"]["evidence"]["guard_interrupts"] >= 1  # interrupted first, deaf to it, then killed
    assert took < 90, took
    _assert_nothing_left(tag, runtime)


START_FAULTS = {
    "crash-at-start": [PY, "-c", CRASH_AT_START, "{connection_file}"],
    "hang-at-start": [PY, "-c", "import time; time.sleep(120)", "{connection_file}"],
    "no-ipykernel": None,  # the bare interpreter's ipykernel_launcher
}
START_WAIT = 8.0  # what the test's client waits for the kernel to answer


@pytest.mark.parametrize("supervisor", SUPERVISORS)
def test_start_up_faults_of_monitored_kernels(
        supervisor: str, jupyter_home: dict[str, Path], tmp_path: Path, run_cli: Cli) -> None:
    data, runtime = jupyter_home["data"], jupyter_home["runtime"]
    bare = tmp_path / "bare-env"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(bare)], check=True)
    for name, argv in START_FAULTS.items():
        argv = argv or [str(bare / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        write_kernelspec(data, name, argv=argv)
    write_kernelspec(data, "mon")
    _install(run_cli, supervisor, *START_FAULTS, "mon")
    (tmp_path / "nbs").mkdir()
    tag = uuid.uuid4().hex
    kernels = {name: Kernel(name, tmp_path / "nbs" / f"{name}.ipynb", tag) for name in START_FAULTS}

    async def scenario() -> dict[str, BaseException | None]:
        outcome: dict[str, BaseException | None] = {}

        async def start(name: str) -> None:
            try:
                await kernels[name].start(ready=START_WAIT)
                outcome[name] = None
            except (RuntimeError, TimeoutError) as exc:
                outcome[name] = exc

        try:
            await asyncio.gather(*(start(name) for name in kernels))
            crashed = [kernels["crash-at-start"], kernels["no-ipykernel"]]
            await asyncio.to_thread(wait_for, lambda: all(_incident_of(data, k.km.kernel_id) for k in crashed),
                                    30, "an incident of each kernel that died at start-up")
        finally:
            await asyncio.gather(*(k.close() for k in kernels.values()))
        return outcome

    outcome = asyncio.run(scenario())
    assert all(isinstance(outcome[name], (RuntimeError, TimeoutError)) for name in kernels), outcome
    by_name = {name: _incident_of(data, k.km.kernel_id) for name, k in kernels.items()}
    assert by_name["hang-at-start"] == [], "a kernel shut down after it hung at start-up is not an incident"
    crash = by_name["crash-at-start"]
    assert len(crash) == 1 and crash[0]["signal"] == "SIGSEGV" and crash[0]["finding"]["code"] == "RN102"
    assert crash[0]["cell"] is None
    missing = by_name["no-ipykernel"]
    assert len(missing) == 1 and missing[0]["exit_code"] == 1
    assert missing[0]["finding"]["code"] == "RN103" and missing[0]["cell"] is None
    assert "before it ran any cell" in missing[0]["finding"]["message"]  # an IPython kernel that never started
    _assert_nothing_left(tag, runtime)


# the cell says when SIGINT's default is in place: an interrupt that came before (the cell had begun, by
# cell.json, but not reached that line on a loaded machine) would only raise KeyboardInterrupt
SIG_DFL_SLEEP = ("import pathlib, signal, time\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\n"
                 "pathlib.Path({ready!r}).touch()\ntime.sleep(60)")


@pytest.mark.parametrize("supervisor", SUPERVISORS)
def test_an_interrupt_ends_a_kernel_still_starting_without_an_incident_but_not_one_running_a_cell(
        supervisor: str, jupyter_home: dict[str, Path], tmp_path: Path, run_cli: Cli) -> None:
    """jupyter_client interrupts every kernel before it shuts it down, and a kernel still starting has no
    SIGINT handler: that death was the client's doing.  A kernel that dies of an interrupt in a cell (some
    code reset SIGINT to its default) is an incident."""
    data, runtime = jupyter_home["data"], jupyter_home["runtime"]
    write_kernelspec(data, "hang-at-start", argv=START_FAULTS["hang-at-start"])
    write_kernelspec(data, "mon")
    _install(run_cli, supervisor, "hang-at-start", "mon")
    (tmp_path / "nbs").mkdir()
    tag = uuid.uuid4().hex
    starting = Kernel("hang-at-start", tmp_path / "nbs" / "starting.ipynb", tag)
    running = Kernel("mon", tmp_path / "nbs" / "running.ipynb", tag)
    live = runtime / "nbmedic" / "kernels"

    async def scenario() -> None:
        try:
            env = dict(os.environ, JPY_SESSION_NAME=str(starting.notebook), **{MARK: tag})
            await starting.km.start_kernel(kernel_id=starting.kernel_id, env=env, cwd=str(tmp_path / "nbs"))
            await running.start()
            ready = tmp_path / "sigint-default"
            running.kc.execute(SIG_DFL_SLEEP.format(ready=str(ready)))
            await asyncio.to_thread(wait_for, ready.exists, 30, "the cell to reset SIGINT to its default")
            assert json.loads((live / running.kernel_id / "cell.json").read_text()).get("running")
            for k in (starting, running):
                await k.km.interrupt_kernel()  # not a shutdown: the manager is not shutting down
            await asyncio.to_thread(wait_for, lambda: _incident_of(data, running.kernel_id), 30,
                                    "the incident of the kernel that died of SIGINT in a cell")
            process = getattr(starting.km.provisioner, "process", None)  # the supervisor's Popen
            await asyncio.to_thread(wait_for, lambda: process is None or process.poll() is not None, 30,
                                    "the kernel still starting to die of SIGINT")
            await asyncio.sleep(1.0)  # past the sampler's grace: a death it saw would be recorded by now
        finally:
            await asyncio.gather(starting.close(), running.close())

    asyncio.run(scenario())
    assert _incident_of(data, starting.kernel_id) == [], "an interrupt that ended a start-up is not an incident"
    found = _incident_of(data, running.kernel_id)
    assert len(found) == 1 and found[0]["signal"] == "SIGINT", found
    assert found[0]["cell"] is not None
    _assert_nothing_left(tag, runtime)


SIXTEEN = 16


@pytest.mark.parametrize("supervisor", SUPERVISORS)
def test_sixteen_monitored_kernels_started_at_once(
        supervisor: str, jupyter_home: dict[str, Path], tmp_path: Path, socket_dir: Path, run_cli: Cli) -> None:
    data, runtime = jupyter_home["data"], jupyter_home["runtime"]
    write_kernelspec(data, "mon")
    _install(run_cli, supervisor, "mon")
    (tmp_path / "nbs").mkdir()
    tag = uuid.uuid4().hex
    # Unix sockets, not TCP: jupyter_client picks a kernel's five ports by binding and releasing them, so
    # with 16 kernels starting at once another one's connection can take a port before its kernel binds
    # it ("Address already in use", seen once in CI): a race of jupyter_client's, not what this tests
    kernels = [Kernel("mon", tmp_path / "nbs" / f"k{i:02d}.ipynb", tag, ipc=str(socket_dir / f"k{i:02d}"))
               for i in range(SIXTEEN)]

    async def scenario() -> list[str]:
        try:
            await asyncio.gather(*(k.start(ready=120) for k in kernels))
            sessions = [json.loads((runtime / "nbmedic" / "kernels" / k.km.kernel_id / "session.json").read_text())
                        for k in kernels]
            assert {s["supervisor"] for s in sessions} == {supervisor}
            assert len({s["pid"] for s in sessions}) == SIXTEEN
            replies = await asyncio.gather(*(k.execute("import os\nprint(os.getpid())") for k in kernels))
            return [r["status"] for r in replies]
        finally:
            await asyncio.gather(*(k.close() for k in kernels))

    assert asyncio.run(scenario()) == ["ok"] * SIXTEEN
    assert incidents(data) == [], "sixteen shutdowns asked for are not incidents"
    _assert_nothing_left(tag, runtime)


def test_a_launch_removes_the_kernel_folders_of_supervisors_killed_outright(jupyter_home: dict[str, Path]) -> None:
    """What a forced shutdown of a wrapper leaves (its kernel folder) goes at the next monitored launch;
    the folder of a kernel whose supervisor or process lives, or that is being launched, stays."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    for kernel_id, pid, supervisor in [("dead", gone.pid, gone.pid), ("server-alive", gone.pid, os.getpid()),
                                       ("reused", gone.pid, 1)]:
        write_json(os.path.join(kernel_dir(kernel_id), "session.json"),
                   {"pid": pid, "supervisor_pid": supervisor, "started": now if kernel_id != "reused" else 0.0})
    os.makedirs(kernel_dir("launching"))  # no session.json yet
    removed = remove_stale_dirs(keep=kernel_dir("mine"))
    assert sorted(os.path.basename(p) for p in removed) == ["dead", "reused"]  # pid 1 was not this session's
    assert sorted(p.name for p in (jupyter_home["runtime"] / "nbmedic" / "kernels").iterdir()) == [
        "launching", "server-alive"]


def test_the_wrapper_names_a_kernel_after_a_connection_file_given_as_a_plain_argument() -> None:
    assert kernel_id_from_argv(["R", "--slave", "-e", "IRkernel::main()", "--args", "/rt/kernel-4f2a.json"]) == "4f2a"
    assert kernel_id_from_argv([PY, "-m", "ipykernel_launcher", "-f", "/rt/kernel-9b.json"]) == "9b"
    assert kernel_id_from_argv([PY, "-c", "pass"]).startswith("wrapper-")
