"""`nbmedic kernel-wrapper` started as VS Code starts a kernel: from argv alone, talking over the
connection file.  Interrupts reach the kernel, a death leaves the same incident as the provisioner's,
and the wrapper leaves with the kernel's own exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.livehelpers import incidents, wait_for


class Wrapped:
    def __init__(self, tmp: Path, extra: list[str], notebook: Path | None) -> None:
        from jupyter_client.blocking.client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        self.conn_file = str(tmp / "kernel-vscode-1234.json")
        write_connection_file(self.conn_file, ip="127.0.0.1")
        env = dict(os.environ)
        if notebook is not None:
            env["JPY_SESSION_NAME"] = str(notebook)
        argv = [sys.executable, "-m", "nbmedic", "kernel-wrapper", *extra, "--kernel-name", "python3", "--",
                sys.executable, "-m", "ipykernel_launcher", "-f", self.conn_file]
        self.proc = subprocess.Popen(argv, env=env, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.kc = BlockingKernelClient()
        self.kc.load_connection_file(self.conn_file)
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def session(self, runtime: Path) -> dict[str, Any]:
        path = runtime / "nbmedic" / "kernels" / "vscode-1234" / "session.json"
        return dict(json.loads(wait_for(lambda: path.is_file() and path.read_text(), 10, "session.json")))

    def run(self, code: str, timeout: float = 60) -> dict[str, Any]:
        return dict(self.kc.execute_interactive(code, timeout=timeout, output_hook=lambda _m: None)["content"])

    def close(self) -> None:
        self.kc.stop_channels()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()


def _wait_running(runtime: Path) -> None:
    cell = runtime / "nbmedic" / "kernels" / "vscode-1234" / "cell.json"
    wait_for(lambda: cell.is_file() and json.loads(cell.read_text()).get("running"), 20, "the cell to run")


@pytest.fixture
def wrapped(tmp_path: Path, jupyter_home: dict[str, Path]) -> Iterator[Wrapped]:
    w = Wrapped(tmp_path, [], tmp_path / "vs.ipynb")
    try:
        yield w
    finally:
        w.close()


def test_interrupt_sent_to_the_wrapper_reaches_the_kernel(wrapped: Wrapped, jupyter_home: dict[str, Path]) -> None:
    session = wrapped.session(jupyter_home["runtime"])
    assert session["supervisor"] == "wrapper" and session["pid"] != wrapped.proc.pid
    wrapped.run("keep = 5")
    msg_id = wrapped.kc.execute("import time\nwhile True: time.sleep(0.05)")
    _wait_running(jupyter_home["runtime"])
    os.kill(wrapped.proc.pid, signal.SIGINT)  # VS Code interrupts the process it started
    reply = wrapped.kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert wrapped.run("assert keep == 5")["status"] == "ok"
    assert wrapped.proc.poll() is None


def test_a_killed_kernel_gives_an_incident_and_the_same_exit_status(
        wrapped: Wrapped, jupyter_home: dict[str, Path]) -> None:
    session = wrapped.session(jupyter_home["runtime"])
    wrapped.kc.execute("import time\ntime.sleep(60)")
    _wait_running(jupyter_home["runtime"])
    os.kill(session["pid"], signal.SIGKILL)
    assert wrapped.proc.wait(30) == -signal.SIGKILL
    found = incidents(jupyter_home["data"])
    assert len(found) == 1
    assert found[0]["supervisor"] == "wrapper" and found[0]["kernel_id"] == "vscode-1234"
    assert found[0]["finding"]["code"] == "RN100" and found[0]["signal"] == "SIGKILL"
    assert found[0]["notebook"].endswith("vs.ipynb")
    assert found[0]["cell"]["source_head"].startswith("import time")


def test_an_exit_code_of_the_kernel_is_the_wrapper_s(wrapped: Wrapped, jupyter_home: dict[str, Path]) -> None:
    wrapped.kc.execute("import os\nos._exit(5)")
    assert wrapped.proc.wait(30) == 5
    assert [i["finding"]["code"] for i in incidents(jupyter_home["data"])] == ["RN103"]


def test_a_clean_shutdown_is_not_an_incident(wrapped: Wrapped, jupyter_home: dict[str, Path]) -> None:
    wrapped.kc.shutdown()
    assert wrapped.proc.wait(30) == 0
    assert incidents(jupyter_home["data"]) == []
    assert not (jupyter_home["runtime"] / "nbmedic" / "kernels" / "vscode-1234").exists()


def test_kernel_wrapper_without_argv_is_a_usage_error(
        jupyter_home: dict[str, Path], run_cli: Any) -> None:
    code, _, err = run_cli("kernel-wrapper", "--")
    assert code == 2 and "needs the kernel's command line" in err


def test_a_wrapper_kernelspec_under_jupyter_client_interrupts_restarts_and_leaves_no_orphan(
        jupyter_home: dict[str, Path], run_cli: Any) -> None:
    """What JupyterLab does with a kernelspec installed with --wrapper: interrupt, restart, shut down."""
    import asyncio

    import psutil

    from tests.livehelpers import write_kernelspec

    write_kernelspec(jupyter_home["data"], "wrapped")
    code, out, err = run_cli("monitor", "install", "wrapped", "--wrapper")
    assert code == 0, out + err
    spec = json.loads((jupyter_home["data"] / "kernels" / "wrapped" / "kernel.json").read_text())
    assert spec["argv"][1] == "kernel-wrapper" and spec["argv"][-4:-1] == ["-m", "ipykernel_launcher", "-f"]

    async def scenario() -> list[int]:
        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(kernel_name="wrapped")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            wrapper = psutil.Process(km.provisioner.pid)
            kernels = [p.pid for p in wrapper.children()]
            msg_id = kc.execute("import time\nwhile True: time.sleep(0.05)")
            await asyncio.sleep(1.0)
            await km.interrupt_kernel()
            while True:
                reply = await kc.get_shell_msg(timeout=30)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            assert reply["content"]["ename"] == "KeyboardInterrupt"
            await km.restart_kernel(now=True)
            await kc.wait_for_ready(timeout=60)
            kernels += [p.pid for p in psutil.Process(km.provisioner.pid).children()]
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=False)
        return kernels

    kernels = asyncio.run(scenario())
    assert len(kernels) == 2
    wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                             for pid in kernels), 10, "every kernel process to be gone")
    assert incidents(jupyter_home["data"]) == [], "an interrupt, a restart and a shutdown are not incidents"
