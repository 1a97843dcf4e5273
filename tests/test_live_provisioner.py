"""The nbmedic provisioner through jupyter_client's async manager and restarter (what jupyter_server uses)
and through nbclient: every kind of death gives the right incident; the guard interrupts a growing cell
and kills a kernel that allocates past the limit in one native call."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.livehelpers import incidents, wait_for, write_kernelspec

MiB = 1 << 20


class Live:
    """A monitored kernel under AsyncIOLoopKernelManager with its restarter, and a client."""

    def __init__(self, name: str, notebook: Path) -> None:
        self.name = name
        self.notebook = notebook

    async def __aenter__(self) -> Live:  # noqa: PYI034 - typing.Self needs Python 3.11
        from jupyter_client.ioloop import AsyncIOLoopKernelManager

        self.km = AsyncIOLoopKernelManager(kernel_name=self.name)
        env = dict(os.environ, JPY_SESSION_NAME=str(self.notebook))
        await self.km.start_kernel(env=env, cwd=str(self.notebook.parent))
        self.km.start_restarter()
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kc.stop_channels()
        self.km.stop_restarter()
        await self.km.shutdown_kernel(now=True)

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.pid)

    async def execute(self, code: str, timeout: float = 60) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(execute_reply content, iopub messages of the request)."""
        msg_id = self.kc.execute(code)
        out: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.kc.get_iopub_msg(timeout=max(0.1, deadline - loop.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            out.append(msg)
        reply = await self.kc.get_shell_msg(timeout=max(0.1, deadline - loop.time()))
        return reply["content"], out


def _stderr(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    path = tmp_path / "nbs" / "study.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _death(name: str, notebook: Path, data: Path, code: str) -> dict[str, Any]:
    """Run ``code`` in a monitored kernel that dies of it; the incident."""

    async def scenario() -> dict[str, Any]:
        async with Live(name, notebook) as live:
            live.kc.execute(code)
            found = await asyncio.to_thread(wait_for, lambda: incidents(data), 30, "an incident")
            assert found[0]["pid"] == live.pid or found[0]["pid"] is not None
            return dict(found[0])

    return asyncio.run(scenario())


def test_segfault_is_rn102_with_the_faulthandler_stack(jupyter_home: dict[str, Path], notebook: Path) -> None:
    write_kernelspec(jupyter_home["data"], "mon", provisioner={})
    incident = _death("mon", notebook, jupyter_home["data"],
                      "import ctypes\ndef crash():\n    ctypes.string_at(0)\ncrash()")
    finding = incident["finding"]
    assert finding["code"] == "RN102", finding["message"]
    assert incident["signal"] == "SIGSEGV"
    assert "string_at" in finding["evidence"]["stack"]
    assert finding["evidence"]["cell_function"] == "crash"
    assert incident["notebook"] == str(notebook)
    assert "Fatal Python error" in incident["faulthandler"]


def test_os_exit_is_rn103(jupyter_home: dict[str, Path], notebook: Path) -> None:
    write_kernelspec(jupyter_home["data"], "mon", provisioner={})
    incident = _death("mon", notebook, jupyter_home["data"], "import os\nos._exit(3)")
    assert incident["finding"]["code"] == "RN103"
    assert incident["exit_code"] == 3
    assert "exited by itself with code 3" in incident["finding"]["message"]


def test_guard_interrupts_a_growing_cell_and_the_kernel_survives(
        jupyter_home: dict[str, Path], notebook: Path) -> None:
    write_kernelspec(jupyter_home["data"], "mon", provisioner={"memory_limit": 500 * MiB})
    hog = ("import time\nchunks = []\n"
           "for _ in range(200):\n    chunks.append(b'\\x01' * (10 << 20))\n    time.sleep(0.1)\n")  # 100 MiB/s

    async def scenario() -> None:
        async with Live("mon", notebook) as live:
            pid = live.pid
            await live.execute("keep = 'still here'")
            reply, messages = await live.execute(hog)
            assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
            said = _stderr(messages)
            assert "nbmedic: this cell was interrupted because the kernel's memory reached" in said
            reply, messages = await live.execute("del chunks\nprint(keep)")
            assert reply["status"] == "ok", reply
            assert any(m["content"].get("text") == "still here\n" for m in messages if m["msg_type"] == "stream")
            assert live.pid == pid
        assert incidents(jupyter_home["data"]) == []

    asyncio.run(scenario())


def test_guard_kills_a_kernel_that_allocates_past_the_limit_in_one_call(
        jupyter_home: dict[str, Path], notebook: Path) -> None:
    write_kernelspec(jupyter_home["data"], "mon", provisioner={"memory_limit": 400 * MiB})
    incident = _death("mon", notebook, jupyter_home["data"],
                      "import time\nblob = b'\\x01' * (600 << 20)\ntime.sleep(30)")
    finding = incident["finding"]
    assert finding["code"] == "RN101", finding["message"]
    assert finding["evidence"]["killed_by_watchdog"] is True
    assert "memory guard" in finding["message"]
    assert incident["memory"]["peak_rss"] >= 0.97 * 400 * MiB


def test_nbclient_run_of_a_monitored_kernel_leaves_an_incident(
        jupyter_home: dict[str, Path], notebook: Path) -> None:
    import nbclient
    import nbformat

    write_kernelspec(jupyter_home["data"], "mon", provisioner={})
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("import os\nos._exit(7)")]
    client = nbclient.NotebookClient(nb, kernel_name="mon", timeout=60)
    with pytest.raises(nbclient.exceptions.DeadKernelError):
        client.execute()
    found = wait_for(lambda: incidents(jupyter_home["data"]), 30, "an incident")
    assert found[0]["finding"]["code"] == "RN103" and found[0]["exit_code"] == 7


def test_a_shutdown_or_restart_asked_for_is_not_an_incident(
        jupyter_home: dict[str, Path], notebook: Path, run_cli: Callable[..., tuple[int, str, str]]) -> None:
    write_kernelspec(jupyter_home["data"], "mon", provisioner={})

    async def scenario() -> None:
        async with Live("mon", notebook) as live:
            await live.execute("x = 1")
            await live.km.restart_kernel(now=True)
            await live.kc.wait_for_ready(timeout=60)
            await live.km.restart_kernel(now=False)
            await live.kc.wait_for_ready(timeout=60)
            reply, _ = await live.execute("y = 2")
            assert reply["status"] == "ok"

    asyncio.run(scenario())
    assert incidents(jupyter_home["data"]) == []
    assert not list((jupyter_home["runtime"] / "nbmedic" / "kernels").glob("*")), "the kernel folder is removed"


def test_a_non_python_kernel_is_watched_for_process_facts(jupyter_home: dict[str, Path], notebook: Path) -> None:
    """No agent, no faulthandler (argv unchanged), but its death is still an incident."""
    import signal
    import sys

    argv = [sys.executable, "-c", "import sys, time; time.sleep(120)", "{connection_file}"]
    write_kernelspec(jupyter_home["data"], "other", provisioner={}, argv=argv, language="bash")

    async def scenario() -> dict[str, Any]:
        from jupyter_client.ioloop import AsyncIOLoopKernelManager

        km = AsyncIOLoopKernelManager(kernel_name="other")
        await km.start_kernel(env=dict(os.environ, JPY_SESSION_NAME=str(notebook)))
        try:
            session = json.loads((jupyter_home["runtime"] / "nbmedic" / "kernels" / km.kernel_id
                                  / "session.json").read_text())
            assert session["python"] is False and session["faulthandler"] is None
            assert session["argv"][:3] == argv[:3], "the command line is not touched"
            os.kill(km.provisioner.pid, signal.SIGTERM)
            found = await asyncio.to_thread(wait_for, lambda: incidents(jupyter_home["data"]), 30, "an incident")
            return dict(found[0])
        finally:
            await km.shutdown_kernel(now=True)

    incident = asyncio.run(scenario())
    assert incident["finding"]["code"] == "RN100" and incident["signal"] == "SIGTERM"
    assert incident["cell"] is None and incident["faulthandler"] == ""
    assert "between cells" in incident["finding"]["message"]


def test_the_oom_killer_line_is_read_from_the_kernel_log(tmp_path: Path) -> None:
    from nbmedic.live.kmsg import oom_kill_line

    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        "6,100,1000,-;eth0: link up\n"
        "3,101,2000,-;Out of memory: Killed process 4242 (python) total-vm:9000kB, anon-rss:8000kB\n"
        " SUBSYSTEM=memory\n"
        "3,102,3000,-;Memory cgroup out of memory: Killed process 42 (python) total-vm:1kB\n")
    assert oom_kill_line(4242, path=str(kmsg)) == \
        "Out of memory: Killed process 4242 (python) total-vm:9000kB, anon-rss:8000kB"
    assert oom_kill_line(42, path=str(kmsg)).startswith("Memory cgroup out of memory: Killed process 42 ")
    assert oom_kill_line(424, path=str(kmsg)) is None
    assert oom_kill_line(4242, path=str(tmp_path / "missing")) is None
