"""`nbmedic ps` and `nbmedic stack` on real kernels: a monitored one (its session and cell records written as
the supervisor and the agent write them) running a busy loop, and a plain jupyter_client kernel."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.commands import ps, stack
from nbmedic.errors import NbmedicError
from nbmedic.execute.kernel import Kernel
from nbmedic.live.kernels import cell_label, format_duration, kernel_id_of, running_kernels
from nbmedic.live.paths import CELL, SESSION, kernel_dir, write_json

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ipc transport, /proc: Linux only")

Cli = Callable[..., tuple[int, str, str]]
SPIN_DEF = "def spin():\n    while True:\n        pass"


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _session(kernel_id: str, pid: int, **fields: Any) -> dict[str, Any]:
    """A SessionRecord as the supervisor writes it (live/paths.py)."""
    alive = psutil.pid_exists(pid)
    record: dict[str, Any] = {
        "schema": 1, "kernel_id": kernel_id, "pid": pid, "pgid": os.getpgid(pid) if alive else pid,
        "supervisor": "provisioner", "supervisor_pid": os.getpid(), "kernelspec": "python3", "language": "python",
        "python": True, "notebook": None, "cwd": os.getcwd(),
        "started": psutil.Process(pid).create_time() if alive else time.time() - 10, "argv": [],
        "faulthandler": None, "memory_limit": None, "limit_source": None, "guard": False,
        "interrupt_at": 0.9, "kill_at": 0.97}
    record.update(fields)
    write_json(os.path.join(kernel_dir(kernel_id), SESSION), record)
    return record


def _execute_and_wait_started(kernel: Kernel, code: str, timeout: float = 30.0) -> None:
    """Send ``code`` and return once the kernel announced it executes it (iopub execute_input)."""
    msg_id = kernel.execute(code)

    def started() -> bool:
        return any(ch == "iopub" and m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == msg_id
                   for ch, m in kernel.receive(0.1))

    _wait(started, timeout, f"the kernel to start {code!r}")


def _run_to_end(kernel: Kernel, code: str, timeout: float = 30.0) -> None:
    msg_id = kernel.execute(code)

    def replied() -> bool:
        return any(ch == "shell" and m["parent_header"].get("msg_id") == msg_id for ch, m in kernel.receive(0.1))

    _wait(replied, timeout, f"the reply to {code!r}")


@contextmanager
def spinning_kernel(tmp_path: Path) -> Iterator[tuple[Kernel, str, Path]]:
    """A real ipykernel, recorded as monitored, busy in ``spin()`` (cell [2])."""
    notebook = tmp_path / "busy.ipynb"
    notebook.write_text("{}", encoding="utf-8")
    kernel = Kernel("python3", cwd=str(tmp_path))
    try:
        kernel.start(60.0)
        assert kernel.pid is not None and kernel.faulthandler_path
        kernel_id = "f00d" + uuid.uuid4().hex[:4] + "-" + str(uuid.uuid4())
        _session(kernel_id, kernel.pid, notebook=str(notebook), faulthandler=kernel.faulthandler_path,
                 memory_limit=2 << 30, limit_source="--memory-limit")
        _run_to_end(kernel, SPIN_DEF)
        write_json(os.path.join(kernel_dir(kernel_id), CELL), {
            "running": True, "execution_count": 2, "cell_id": "spin-cell", "source_head": "spin()",
            "started": time.time(), "finished": None, "notebook": str(notebook), "pid": kernel.pid})
        _execute_and_wait_started(kernel, "spin()")
        yield kernel, kernel_id, notebook
    finally:
        kernel.close(graceful=False)


def _no_reply(kernel: Kernel, seconds: float) -> bool:
    """The running cell did not finish (no execute_reply) during ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(ch == "shell" and m["msg_type"] == "execute_reply" for ch, m in kernel.receive(0.05)):
            return False
    return True


def _spin_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.lstrip().startswith(stack.CELL_MARK.strip())
            and line.rstrip().endswith("in spin")]


def test_stack_shows_the_busy_cell_without_interrupting_it(jupyter_home: dict[str, Path], tmp_path: Path,
                                                          run_cli: Cli) -> None:
    with spinning_kernel(tmp_path) as (kernel, kernel_id, notebook):
        code, out, err = run_cli("stack", kernel_id[:6])
        assert code == 0, err
        head = out.splitlines()[0]
        assert head.startswith(f"kernel {kernel_id[:8]} · busy.ipynb · pid {kernel.pid} · cell [2] spin() running for ")
        assert _spin_lines(out), out  # the frame of spin(), marked as the cell's code
        assert out.splitlines()[1] in ("the cell is at line 2 in spin", "the cell is at line 3 in spin")
        assert "Thread" in out and "main thread" in out
        # by the notebook's path, absolute and as named from the working folder
        for target in (str(notebook), "busy.ipynb", "./busy.ipynb"):
            code, out, err = run_cli("stack", target)
            assert code == 0 and _spin_lines(out), (target, out, err)
        # nothing was interrupted: no reply to spin(), the process alive, and it still burns CPU
        assert _no_reply(kernel, 0.3) and kernel.is_alive()
        proc = psutil.Process(kernel.pid)
        before = sum(proc.cpu_times()[:2])
        _wait(lambda: sum(proc.cpu_times()[:2]) > before + 0.05, 20, "the kernel to keep spinning")
        code, out, err = run_cli("stack", kernel_id, "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["version"] == 1 and doc["method"] == "faulthandler"
        assert doc["kernel"]["kernel_id"] == kernel_id and doc["kernel"]["cell"]["execution_count"] == 2
        main = next(t for t in doc["threads"] if t["main"])
        assert main["frames"][0]["function"] == "spin" and main["frames"][0]["in_cell"] is True
        assert not any(f["in_cell"] for f in main["frames"] if "IPython" in f["file"])
        assert doc["where"] in ("line 2 in spin", "line 3 in spin")  # `while True:` or `pass`
        assert _no_reply(kernel, 0.1) and kernel.is_alive()


def test_ps_lists_the_monitored_kernel_busy_with_its_cell(jupyter_home: dict[str, Path], tmp_path: Path,
                                                         run_cli: Cli) -> None:
    with spinning_kernel(tmp_path) as (kernel, kernel_id, notebook):
        def mine() -> dict[str, Any] | None:
            code, out, err = run_cli("ps", "--format", "json")
            assert code == 0, err
            doc = json.loads(out)
            assert doc["version"] == 1
            found = [k for k in doc["kernels"] if k["pid"] == kernel.pid]
            assert len(found) == 1, found  # once, though its connection file names an ipykernel too
            return found[0] if found[0]["cpu_percent"] > 0 else None

        entry = _wait(mine, 30, "a CPU reading of the spinning kernel")
        assert entry["kernel_id"] == kernel_id and entry["monitored"] is True and entry["state"] == "busy"
        assert entry["notebook"] == str(notebook) and entry["kernelspec"] == "python3"
        assert entry["rss"] > 10 << 20 and entry["limit"] == 2 << 30 and entry["limit_source"] == "--memory-limit"
        assert entry["share"] == pytest.approx(entry["rss"] / (2 << 30))
        assert entry["uptime"] > 0 and entry["processes"] >= 1
        assert entry["cell"]["execution_count"] == 2 and entry["cell"]["cell_id"] == "spin-cell"
        assert entry["cell"]["source_head"] == "spin()" and entry["cell"]["seconds"] >= 0
        code, out, err = run_cli("ps")
        assert code == 0, err
        assert out.splitlines()[0].split() == list(ps.HEADERS)
        row = next(line for line in out.splitlines() if line.startswith(kernel_id[:8]))
        assert "busy.ipynb" in row and " busy " in row and "[2] spin() " in row and " s" in row
        assert "MiB" in row and "%" in row
        assert _no_reply(kernel, 0.1)


@pytest.fixture
def plain_kernel(jupyter_home: dict[str, Path], tmp_path: Path) -> Iterator[Any]:
    """A kernel started by jupyter_client's MultiKernelManager as a server does: its connection file
    ``kernel-<id>.json`` in the runtime folder, ``JPY_SESSION_NAME`` in its environment."""
    from jupyter_client.multikernelmanager import MultiKernelManager

    mkm = MultiKernelManager(connection_dir=str(jupyter_home["runtime"]))  # as jupyter_server sets it
    env = dict(os.environ, JPY_SESSION_NAME=str(tmp_path / "plain.ipynb"))
    kernel_id = mkm.start_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    km = mkm.get_kernel(kernel_id)
    try:
        assert km.connection_file == str(jupyter_home["runtime"] / f"kernel-{kernel_id}.json")
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        kc.stop_channels()
        yield km
    finally:
        mkm.shutdown_all(now=True)


def test_an_unmonitored_kernel_is_listed_from_its_connection_file(plain_kernel: Any, tmp_path: Path,
                                                                 run_cli: Cli) -> None:
    kernel_id = kernel_id_of(plain_kernel.connection_file)
    pid = plain_kernel.provisioner.pid
    code, out, err = run_cli("ps", "--format", "json")
    assert code == 0, err
    found = [k for k in json.loads(out)["kernels"] if k["kernel_id"] == kernel_id]
    assert len(found) == 1, out
    entry = found[0]
    assert entry["pid"] == pid and entry["monitored"] is False and entry["state"] == "unknown"
    assert entry["connection_file"] == plain_kernel.connection_file
    assert entry["notebook"] == str(tmp_path / "plain.ipynb")  # JPY_SESSION_NAME from its environment
    assert entry["rss"] > 0 and entry["limit"] and entry["limit_source"] in ("cgroup", "machine")
    assert entry["cell"] is None
    code, out, err = run_cli("ps")
    row = next(line for line in out.splitlines() if line.startswith(kernel_id[:8]))
    assert "plain.ipynb" in row and "unknown" in row
    assert "monitored" in out.splitlines()[-1]
    if not stack._py_spy_installed():
        code, out, err = run_cli("stack", kernel_id[:8])
        assert code == 1 and out == ""
        assert "is not monitored" in err and "nbmedic monitor install" in err and len(err.splitlines()) == 1
        assert psutil.pid_exists(pid) and plain_kernel.is_alive()


def test_ps_and_stack_through_the_nbmedic_provisioner(jupyter_home: dict[str, Path], tmp_path: Path,
                                                      run_cli: Cli) -> None:
    """The records written by the real supervisor and agent (a kernelspec with the nbmedic provisioner,
    started by jupyter_client as jupyter_server starts kernels) are what ps and stack read."""
    from jupyter_client.multikernelmanager import MultiKernelManager

    spec = jupyter_home["data"] / "kernels" / "monitored"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "monitored",
        "language": "python", "metadata": {"kernel_provisioner": {"provisioner_name": "nbmedic-provisioner",
                                                                  "config": {}}}}), encoding="utf-8")
    notebook = tmp_path / "served.ipynb"
    mkm = MultiKernelManager(connection_dir=str(jupyter_home["runtime"]))
    kernel_id = mkm.start_kernel(kernel_name="monitored", cwd=str(tmp_path),
                                 env=dict(os.environ, JPY_SESSION_NAME=str(notebook)))
    kc = mkm.get_kernel(kernel_id).client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        kc.execute(SPIN_DEF, reply=True, timeout=30)
        kc.execute("spin()")

        def busy() -> dict[str, Any] | None:
            code, out, err = run_cli("ps", "--format", "json")
            assert code == 0, err
            found = [k for k in json.loads(out)["kernels"] if k["kernel_id"] == kernel_id]
            return found[0] if found and found[0]["state"] == "busy" else None

        entry = _wait(busy, 30, "ps to show the monitored kernel busy")
        assert entry["monitored"] is True and entry["supervisor"] == "provisioner"
        assert entry["notebook"] == str(notebook) and entry["kernelspec"] == "monitored"
        assert entry["cell"]["source_head"] == "spin()" and entry["rss"] > 0
        code, out, err = run_cli("stack", "served.ipynb")
        assert code == 0 and _spin_lines(out), out + err
        assert mkm.get_kernel(kernel_id).is_alive()
        with pytest.raises(queue.Empty):  # spin() goes on: no reply
            kc.get_shell_msg(timeout=0.3)
    finally:
        kc.stop_channels()
        mkm.shutdown_all(now=True)


@contextmanager
def sleepers(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_stack_errors_are_one_line(jupyter_home: dict[str, Path], run_cli: Cli) -> None:
    with sleepers(2) as (a, b):
        _session("dup-aaaa", a.pid, language="bash", python=False, kernelspec="bash")
        # says it has a faulthandler file, but the process has no SIGUSR1 handler: never signalled
        _session("dup-bbbb", b.pid, faulthandler=str(jupyter_home["runtime"] / "fh.log"))
        code, out, err = run_cli("stack", "dup")
        assert code == 1 and "2 kernels match 'dup': dup-aaaa, dup-bbbb" in err and len(err.splitlines()) == 1
        code, out, err = run_cli("stack", "nope-no-such-kernel")
        assert code == 1 and "no running kernel for 'nope-no-such-kernel'" in err and "dup-aaaa" in err
        code, out, err = run_cli("stack", "missing.ipynb")
        assert code == 1 and "no running kernel for 'missing.ipynb'" in err
        if not stack._py_spy_installed():
            for target in ("dup-a", "dup-b"):
                code, out, err = run_cli("stack", target)
                assert code == 1 and out == "" and "no faulthandler on SIGUSR1" in err and len(err.splitlines()) == 1
        assert a.poll() is None and b.poll() is None  # no SIGUSR1 reached them (it would have killed them)
        kernels = {k.kernel_id: k for k in running_kernels(cpu_interval=0)}
        assert kernels["dup-aaaa"].state == "unknown" and kernels["dup-bbbb"].state == "idle"
        assert kernels["dup-bbbb"].faulthandler is not None
        b.kill()
        b.wait()
        with pytest.raises(NbmedicError, match=f"its process {b.pid} is gone"):
            stack._capture(kernels["dup-bbbb"])


def test_stale_session_records_are_not_kernels(jupyter_home: dict[str, Path]) -> None:
    with sleepers(1) as (live,):
        dead = subprocess.Popen(["true"])
        dead.wait()
        _session("ended-kernel", dead.pid)
        created = psutil.Process(live.pid).create_time()
        _session("reused-pid", live.pid, started=created - 3600)  # the pid now belongs to another process
        _session("still-here", live.pid, started=created - 0.5)
        write_json(os.path.join(kernel_dir("still-here"), CELL), {  # a cell record of the previous process
            "running": True, "execution_count": 9, "cell_id": None, "source_head": "x", "started": time.time(),
            "finished": None, "notebook": None, "pid": live.pid + 1})
        ids = [k.kernel_id for k in running_kernels(cpu_interval=0)]
        assert "still-here" in ids and "ended-kernel" not in ids and "reused-pid" not in ids
        kernel = next(k for k in running_kernels(cpu_interval=0) if k.kernel_id == "still-here")
        assert kernel.state == "idle" and kernel.cell is None


def test_ps_watch_prints_a_table_per_interval(jupyter_home: dict[str, Path], run_cli: Cli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ps.ROUNDS_ENV, "3")
    with sleepers(1) as (proc,):
        _session("watched-kernel", proc.pid, kernelspec="bash", python=False)
        started = time.monotonic()
        code, out, err = run_cli("ps", "--watch", "--interval", "0.3")
        assert code == 0, err
        assert time.monotonic() - started >= 0.6  # two waits between three tables
        assert out.count("nbmedic ps · ") == 3 and out.count("watched-") == 3
        code, out, err = run_cli("ps", "--watch", "--interval", "0.2", "--format", "json")
        docs = [json.loads(line) for line in out.splitlines()]
        assert len(docs) == 3 and all("watched-kernel" in [k["kernel_id"] for k in d["kernels"]] for d in docs)
    code, out, err = run_cli("ps", "--interval", "0")
    assert code == 2 and "--interval" in err


def test_ps_watch_runs_until_interrupted(jupyter_home: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "ps.out"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "nbmedic", "ps", "--watch", "--interval", "0.2"],
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: log.read_text(encoding="utf-8").count("nbmedic ps · ") >= 2, 60, "two tables")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ps_watch_on_a_terminal_redraws_one_table(jupyter_home: dict[str, Path]) -> None:
    import pty

    with sleepers(1) as (proc,):
        _session("tty-kernel", proc.pid, kernelspec="bash", python=False)
        primary, secondary = pty.openpty()
        env = dict(os.environ, **{ps.ROUNDS_ENV: "3"}, COLUMNS="120")
        child = subprocess.Popen([sys.executable, "-m", "nbmedic", "ps", "--watch", "--interval", "0.2"],
                                 stdin=secondary, stdout=secondary, stderr=secondary, env=env)
        os.close(secondary)
        chunks = []
        try:
            while True:
                try:
                    data = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            assert child.wait(30) == 0
        finally:
            os.close(primary)
            if child.poll() is None:
                child.kill()
                child.wait()
    out = b"".join(chunks).decode("utf-8", "replace")
    assert out.count("tty-kern") >= 3 and out.count("KERNEL") == out.count("tty-kern")  # rich redraws at exit too
    assert "\x1b[1A" in out  # the cursor goes back up: the table is redrawn in place, not printed again
    assert "nbmedic ps · " not in out


def test_words() -> None:
    assert ps._text([]) == "no running kernels"
    assert kernel_id_of("/run/user/1/jupyter/runtime/kernel-3f2a-b1.json") == "3f2a-b1"
    assert kernel_id_of("/tmp/nbmedic-kernel-x1/kernel.json") == "nbmedic-kernel-x1"
    assert kernel_id_of("/home/u/.vscode/kernel-v2-1234abc.json") == "v2-1234abc"
    assert format_duration(12.34) == "12.3 s" and format_duration(754) == "12 min 34 s"
    assert format_duration(7500) == "2 h 05 min" and format_duration(3 * 86400 + 4000) == "3 d 01 h"
    assert cell_label(7, "df = pd.read_csv('x.csv')") == "[7] df = pd.read_csv('x.csv')"
    assert cell_label(None, "import os\nimport sys") == "[ ] import os ..."
    assert cell_label(3, "x = '" + "a" * 80 + "'", 20) == "[3] x = '" + "a" * 12 + "..."  # 20 characters
