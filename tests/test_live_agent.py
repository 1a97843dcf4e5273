"""The agent inside monitored kernels and their launch recipe, with real ipykernel kernels over ZMQ.

The kernels are started by jupyter_client's KernelManager whose formatted command line goes through
``monitored_argv`` (as a supervisor does it) and whose environment gets ``monitored_env``.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager

from nbmedic import units
from nbmedic.live import agent, paths
from nbmedic.live.incidents import save_incident
from nbmedic.live.launch import agent_path, loader_line, monitored_argv, monitored_env, prepare_live_dir
from tests.runhelpers import PY, kernelspec

GiB = 2**30
BASE_ARGV = [PY, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


# --- the launch recipe, without kernels ---------------------------------------------------------------

def _exec_lines(argv: list[str]) -> list[str]:
    found = [a for a in argv if a.startswith("--IPKernelApp.exec_lines=")]
    assert len(found) == 1, argv
    lines = json.loads(found[0].partition("=")[2])
    assert isinstance(lines, list)
    return lines


def test_non_python_kernels_are_launched_unchanged(tmp_path: Path) -> None:
    for argv, language in ((["R", "--slave", "-e", "IRkernel::main()", "--args", "/c.json"], "R"),
                           (["xpython", "-f", "/c.json"], "python"),  # Python, but not ipykernel
                           ([*BASE_ARGV[:4], "/c.json"], "julia")):
        assert monitored_argv(argv, language, str(tmp_path)) == (argv, False)


def test_ipykernel_argv_gets_faulthandler_and_the_agent_loader(tmp_path: Path) -> None:
    argv = [*BASE_ARGV[:4], "/run/kernel-1.json"]
    new, is_python = monitored_argv(argv, "python", str(tmp_path))
    assert is_python
    assert new[:-1] == argv
    lines = _exec_lines(new)
    log = repr(str(tmp_path / paths.FAULTHANDLER))
    assert lines[0] == f"__import__('faulthandler').enable(file=open({log}, 'a'), all_threads=True)"
    assert "SIGUSR1" in lines[1] and log in lines[1]
    assert lines[2] == loader_line()
    assert repr(agent_path()) in lines[2] and os.path.isfile(agent_path())
    assert "nbmedic." not in lines[2].replace(agent_path(), "")  # loaded by path, nbmedic never imported


def test_exec_lines_already_on_the_command_line_are_kept_first(tmp_path: Path) -> None:
    live = str(tmp_path)
    argv = [*BASE_ARGV[:4], "/c.json", "--IPKernelApp.exec_lines=import a", "--IPKernelApp.exec_lines", "import b",
            "--debug"]
    new, _ = monitored_argv(argv, "python", live)
    assert new[:-1] == [*BASE_ARGV[:4], "/c.json", "--debug"]
    assert _exec_lines(new)[:2] == ["import a", "import b"]
    assert _exec_lines(new)[2:] == _exec_lines(monitored_argv(BASE_ARGV, "python", live)[0])
    # the single list literal traitlets also reads (JSON or Python), and the parent class's name
    for value in ('["x = 1", "y = 2"]', "['x = 1', 'y = 2']"):
        new, _ = monitored_argv([*BASE_ARGV, f"--InteractiveShellApp.exec_lines={value}"], "python", live)
        assert new[:-1] == BASE_ARGV
        assert _exec_lines(new)[:2] == ["x = 1", "y = 2"]
        assert len(_exec_lines(new)) == 5
    # a command line monitored twice loads the agent once
    again, _ = monitored_argv(new, "python", live)
    assert again == new


def test_monitored_env_names_the_kernel_and_its_folders(jupyter_home: dict[str, Path]) -> None:
    live = paths.kernel_dir("k-1")
    env = monitored_env("k-1", live)
    assert env == {paths.ENV_KERNEL_ID: "k-1", paths.ENV_LIVE_DIR: live, paths.ENV_NOTICES_DIR: paths.notices_dir(),
                   paths.ENV_INCIDENTS_DIR: paths.incidents_dir(), "PYTHONFAULTHANDLER": "1"}
    assert paths.notices_dir().startswith(str(jupyter_home["runtime"]))
    assert paths.incidents_dir().startswith(str(jupyter_home["data"]))


def test_prepare_live_dir_keeps_only_the_session(tmp_path: Path) -> None:
    live = tmp_path / "kernels" / "k"
    prepare_live_dir(str(live))
    assert sorted(os.listdir(live)) == [paths.FAULTHANDLER]
    assert (live / paths.FAULTHANDLER).read_bytes() == b""
    for name in (paths.SESSION, paths.CELL, paths.EXITED, paths.GUARD, paths.FAULTHANDLER):
        (live / name).write_text("{}", encoding="utf-8")
    prepare_live_dir(str(live))  # a restart reuses the folder
    assert sorted(os.listdir(live)) == sorted([paths.FAULTHANDLER, paths.SESSION])
    assert (live / paths.FAULTHANDLER).read_bytes() == b""
    assert (live / paths.SESSION).read_text(encoding="utf-8") == "{}"


# --- the agent's duplicates of nbmedic's names ------------------------------------------------------

def test_agent_duplicates_equal_the_live_contract(jupyter_home: dict[str, Path]) -> None:
    for name in ("CELL", "EXITED", "GUARD", "ENV_KERNEL_ID", "ENV_LIVE_DIR", "ENV_NOTICES_DIR", "ENV_INCIDENTS_DIR"):
        assert getattr(agent, name) == getattr(paths, name), name
    notebooks = ["a.ipynb", "/home/u/analysis.ipynb", "./x/../y/z.ipynb", "données/é.ipynb", "/a//b/./c.ipynb"]
    for notebook in notebooks:
        assert agent.notebook_key(notebook) == paths.notebook_key(notebook)
    for kernel_id, notebook in (("8f0c-11", None), ("odd id/with:chars", "/home/u/analysis.ipynb"), ("", "x.ipynb")):
        assert agent.notice_files(paths.notices_dir(), kernel_id, notebook) == paths.notice_paths(kernel_id, notebook)
    for n in (0, 1, 1023, 1024, 1536, 10 * 2**20 - 1, 2**30, int(1.84 * GiB), 5 * 2**40, -2048):
        assert agent.format_bytes(n) == units.format_bytes(n)


def test_agent_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(agent.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add((node.module or "").split(".")[0])
    assert imported, "the walk found the imports"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_agent_texts() -> None:
    assert agent.source_head("\n\nimport pandas as pd\n\n   \ndf = pd.read_csv('x')\nx = 1\ny = 2\n") == (
        "import pandas as pd\ndf = pd.read_csv('x')\nx = 1")
    assert agent.source_head("x = '" + "a" * 500 + "'") == ("x = '" + "a" * 500)[:200]
    guard = {"time": 1.0, "action": "interrupt", "rss": int(1.84 * GiB), "limit": 2 * GiB,
             "limit_source": "cgroup memory.max", "share": 0.92, "execution_count": 3, "cell_id": None}
    assert agent.guard_message(guard) == (
        "nbmedic: this cell was interrupted because the kernel's memory reached 1.8 GiB, 92 % of the 2.0 GiB "
        "memory limit (cgroup memory.max). The kernel and its variables are still there; free memory "
        "(del big objects) or raise the limit.")
    assert "reached 1.0 GiB, 50 % of the 2.0 GiB memory limit." in agent.guard_message({"rss": GiB, "limit": 2 * GiB})


# --- real kernels -------------------------------------------------------------------------------------

class _MonitoredManager(KernelManager):
    """A KernelManager whose formatted command line goes through monitored_argv, as a supervisor's does."""

    live_dir: str | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv = super().format_kernel_cmd(extra_arguments)
        if self.live_dir is None:
            return argv
        return monitored_argv(argv, self.kernel_spec.language, self.live_dir)[0]


class Exec:
    """What one execute request produced: its reply, its execute_input and its streams, in order."""

    def __init__(self) -> None:
        self.reply: dict[str, Any] = {}
        self.input_count: int | None = None
        self.streams: list[tuple[str, str]] = []

    def text(self, name: str) -> str:
        return "".join(text for stream, text in self.streams if stream == name)


class LiveKernel:
    """One kernel: started by ``start``, client by ``connect``, always ``close``d."""

    def __init__(self, data: Path, folder: Path, *, monitored: bool, user_args: tuple[str, ...] = (),
                 notebook: str | None = None) -> None:
        import zmq

        self.kernel_id = str(uuid.uuid4())
        self.live_dir = paths.kernel_dir(self.kernel_id)
        self.name = f"k{self.kernel_id[:8]}"
        kernelspec(data, self.name, [*BASE_ARGV, *user_args])
        self.env = dict(os.environ)
        if monitored:
            prepare_live_dir(self.live_dir)
            self.env.update(monitored_env(self.kernel_id, self.live_dir))
        if notebook:
            self.env["JPY_SESSION_NAME"] = notebook
        self.tmp = str(folder)  # short: ipc socket paths have a length limit
        os.makedirs(self.tmp)
        self.ctx = zmq.Context()
        km = self.km = _MonitoredManager(kernel_name=self.name, context=self.ctx)
        km.live_dir = self.live_dir if monitored else None
        km.transport = "ipc"
        km.ip = os.path.join(self.tmp, "k")
        km.connection_file = os.path.join(self.tmp, "kernel.json")
        self.kc: Any = None
        self.closed = False

    def start(self) -> LiveKernel:
        self.km.start_kernel(env=self.env, cwd=self.tmp)
        return self

    def connect(self) -> LiveKernel:
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        return self

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.process.pid)

    def file(self, name: str) -> str:
        return os.path.join(self.live_dir, name)

    def send(self, code: str, cell_id: str | None = None) -> str:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": False}
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def collect(self, msg_id: str, timeout: float = 30.0) -> Exec:
        out = Exec()
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.streams.append((content["name"], content["text"]))
            elif kind == "execute_input":
                out.input_count = content["execution_count"]
            idle = kind == "status" and content["execution_state"] == "idle"
        while not out.reply:
            msg = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                out.reply = msg["content"]
        return out

    def run(self, code: str, cell_id: str | None = None) -> Exec:
        return self.collect(self.send(code, cell_id))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.kc is not None:
            self.kc.stop_channels()
        try:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
            self.km.cleanup_resources()
        finally:
            self.ctx.destroy(linger=0)


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def kernels(jupyter_home: dict[str, Path], socket_dir: Path) -> Iterator[Callable[..., LiveKernel]]:
    made: list[LiveKernel] = []

    def _make(**kw: Any) -> LiveKernel:
        made.append(LiveKernel(jupyter_home["data"], socket_dir / str(len(made)), **kw))
        return made[-1]

    yield _make
    for k in made:
        k.close()


def _notice(kernel_id: str, notebook: str | None, text: str, age: float = 5.0) -> dict[str, Any]:
    return {"incident": "0123456789ab", "time": time.time() - age, "kernel_id": kernel_id, "notebook": notebook,
            "text": text}


def _check_namespace_and_modules(mon: LiveKernel, plain: LiveKernel) -> None:
    """The agent adds no name to the user namespace and imports nothing of nbmedic."""
    code = "print(sorted(dir()))"
    assert mon.run(code).text("stdout") == plain.run(code).text("stdout")
    mods = mon.run("import sys\nprint(sorted(m for m in sys.modules if 'nbmedic' in m))").text("stdout")
    assert mods.strip() == "['nbmedic_agent']"


def _check_running_cell(k: LiveKernel, notebook: str | None, flag: str) -> None:
    """cell.json while the kernel's first cell runs (cell id, count, first lines) and after; SIGUSR1 dumps
    the stacks."""
    code = f"import os, time\n\n_end = time.time() + 30\nwhile not os.path.exists({flag!r}) and time.time() < _end:\n" \
           "    time.sleep(0.01)\n"
    before = time.time()
    msg_id = k.send(code, cell_id="abc")
    cell = _wait_for("the running cell", lambda: (r := paths.read_json(k.file(paths.CELL))) and r["running"] and r)
    assert cell["cell_id"] == "abc"
    assert cell["source_head"] == agent.source_head(code) and cell["source_head"].startswith("import os, time\n_end")
    assert cell["notebook"] == notebook and cell["pid"] == k.pid and cell["finished"] is None
    assert before <= cell["started"] <= time.time()
    os.kill(k.pid, signal.SIGUSR1)
    dump = _wait_for("a faulthandler dump", lambda: "File " in (text := Path(k.file(paths.FAULTHANDLER)).read_text(
        encoding="utf-8", errors="replace")) and text)
    assert "Thread 0x" in dump or "Current thread" in dump
    Path(flag).touch()
    done = k.collect(msg_id)
    assert done.reply["status"] == "ok"
    assert cell["execution_count"] == done.input_count == done.reply["execution_count"] == 1
    after = paths.read_json(k.file(paths.CELL))
    assert after is not None and after["running"] is False and after["finished"] >= after["started"]
    assert after["execution_count"] == cell["execution_count"] and after["cell_id"] == "abc"
    nxt = k.run("1 + 1")
    last = paths.read_json(k.file(paths.CELL))
    assert last is not None and last["execution_count"] == nxt.reply["execution_count"] == cell["execution_count"] + 1
    assert last["cell_id"] is None and last["source_head"] == "1 + 1"


def _check_notices(k: LiveKernel, notebook: str) -> None:
    """A notice is shown once, on stderr, above the cell's own output; a stale one silently removed."""
    kernel_file, notebook_file = paths.notice_paths(k.kernel_id, notebook)
    text = "nbmedic: the previous kernel died at 10:42:13 while running cell [7]"
    paths.write_json(kernel_file, _notice(k.kernel_id, notebook, text))
    paths.write_json(notebook_file, _notice(k.kernel_id, notebook, text))
    shown = k.run("print('own output')")
    assert shown.streams[0] == ("stderr", text + "\n")
    assert shown.text("stdout") == "own output\n"
    assert not os.path.exists(kernel_file) and not os.path.exists(notebook_file)
    assert k.run("print('again')").streams == [("stdout", "again\n")]
    # a notice for the notebook only (a kernel started afresh), and a stale one
    paths.write_json(notebook_file, _notice("another-kernel", notebook, "from the notebook"))
    assert k.run("pass").text("stderr") == "from the notebook\n"
    paths.write_json(kernel_file, _notice(k.kernel_id, notebook, "too old", age=25 * 3600))
    assert k.run("pass").streams == []
    assert not os.path.exists(kernel_file)


def _check_guard(k: LiveKernel) -> None:
    """The cell the memory guard interrupted says why; the kernel and its variables survive."""
    flag = k.file("kept.flag")  # the cell's own code has run (cell.json says running before it does)
    msg_id = k.send(f"import time\nkept = 41\nopen({flag!r}, 'w').close()\ntime.sleep(30)")
    _wait_for("the sleeping cell", lambda: os.path.exists(flag))
    paths.write_json(k.file(paths.GUARD), {
        "time": time.time(), "action": "interrupt", "rss": int(1.84 * GiB), "limit": 2 * GiB,
        "limit_source": "--memory-limit", "share": 0.92, "execution_count": None, "cell_id": None})
    k.km.interrupt_kernel()  # SIGINT, as the guard sends it
    done = k.collect(msg_id)
    assert done.reply["status"] == "error" and done.reply["ename"] == "KeyboardInterrupt"
    assert ("nbmedic: this cell was interrupted because the kernel's memory reached 1.8 GiB, 92 % of the 2.0 GiB "
            "memory limit (--memory-limit). The kernel and its variables are still there") in done.text("stderr")
    assert not os.path.exists(k.file(paths.GUARD))
    assert k.run("print(kept + 1)").text("stdout") == "42\n"


def _check_why(k: LiveKernel, notebook: str) -> None:
    """``%nbmedic why``: the latest incident of this kernel, else of this notebook; usage otherwise."""
    assert k.run("%nbmedic why").text("stdout") == "nbmedic: no incident recorded for this kernel or notebook\n"
    assert k.run("%nbmedic").text("stdout").startswith("usage: %nbmedic why")
    assert k.run("%nbmedic what").text("stdout").startswith("usage: %nbmedic why")
    finding = {"code": "RN101", "severity": "error", "message": "killed by the OOM killer: memory limit 2.0 GiB",
               "fix": "Free memory or raise the limit", "cell_id": "abc", "evidence": {}}
    cell = {"execution_count": 7, "cell_id": "abc", "source_head": "df = pd.read_csv(x)\ndf.head()",
            "started": time.time() - 60, "seconds": 12.5}
    save_incident({"id": "aaaaaaaaaaaa", "time": time.time() - 30, "kernel_id": "dead-kernel", "notebook": notebook,
                   "finding": finding, "cell": cell})
    out = k.run("%nbmedic why").text("stdout")
    assert "Details: nbmedic incidents show aaaaaaaaaaaa" in out
    assert "RN101 killed by the OOM killer: memory limit 2.0 GiB" in out
    assert 'cell [7] "df = pd.read_csv(x)" (cell id abc), running for 12.5 s' in out
    assert "Free memory or raise the limit" in out
    save_incident({"id": "bbbbbbbbbbbb", "time": time.time() - 3600, "kernel_id": k.kernel_id, "notebook": None,
                   "finding": dict(finding, code="RN102", message="segfault"), "cell": None})
    out = k.run("%nbmedic why").text("stdout")  # this kernel's own incident first, though older
    assert "Details: nbmedic incidents show bbbbbbbbbbbb" in out and "RN102 segfault" in out
    assert out.startswith("nbmedic: the kernel died at ")


def _check_loaded_once(k: LiveKernel) -> None:
    """Loading the agent again (by its loader line, or its function) registers nothing twice."""
    code = (f"{loader_line()}\nimport sys\nsys.modules['nbmedic_agent'].load_ipython_extension(get_ipython())\n"
            "print(len([c for c in get_ipython().events.callbacks['pre_run_cell'] "
            "if type(getattr(c, '__self__', None)).__name__ == 'Agent']))")
    assert k.run(code).text("stdout") == "1\n"


def _check_interrupt_in_the_hook(k: LiveKernel) -> None:
    """A real SIGINT that lands while the agent's pre_run_cell writes cell.json (IPython swallows what a
    hook raises) still interrupts the cell: it raises KeyboardInterrupt before its first line."""
    k.run("import os, signal, time\n"
          "_a = get_ipython()._nbmedic_agent\n"
          "def _once(info, _a=_a, _orig=_a.cell_started):\n"
          "    _a.cell_started = _orig\n"
          "    os.kill(os.getpid(), signal.SIGINT)\n"
          "    time.sleep(5)\n"
          "_a.cell_started = _once\n")
    done = k.run("print('the cell ran')")
    assert done.reply["status"] == "error" and done.reply["ename"] == "KeyboardInterrupt"
    assert "the cell ran" not in done.text("stdout")
    again = k.run("print('the next cell runs')")
    assert again.reply["status"] == "ok" and again.text("stdout") == "the next cell runs\n"


def test_agent_in_a_monitored_kernel(kernels: Callable[..., LiveKernel], tmp_path: Path) -> None:
    notebook = str(tmp_path / "analysis.ipynb")
    mon = kernels(monitored=True, notebook=notebook).start()
    plain = kernels(monitored=False, notebook=notebook).start()
    mon.connect()
    plain.connect()
    assert not os.path.exists(mon.file(paths.CELL))  # the exec lines are not cells
    _check_namespace_and_modules(mon, plain)
    plain.close()
    _check_notices(mon, notebook)
    _check_guard(mon)
    _check_why(mon, notebook)
    _check_loaded_once(mon)
    _check_interrupt_in_the_hook(mon)
    assert not os.path.exists(mon.file(paths.EXITED))
    mon.kc.shutdown()  # a shutdown_request: a clean exit runs atexit
    _wait_for("the kernel's exit", lambda: mon.km.provisioner.process.poll() is not None)
    exited = paths.read_json(mon.file(paths.EXITED))
    assert exited is not None and exited["clean"] is True and time.time() - exited["time"] < 60


def test_running_cell_user_exec_lines_and_a_killed_kernel(kernels: Callable[..., LiveKernel], tmp_path: Path) -> None:
    user_line = "import sys; sys.nbmedic_user_line = 'nbmedic_agent' in sys.modules"
    k = kernels(monitored=True, user_args=(f"--IPKernelApp.exec_lines={user_line}",)).start().connect()
    _check_running_cell(k, None, str(tmp_path / "flag"))
    assert k.run("print(sys.nbmedic_user_line)").text("stdout") == "False\n"  # ran, before the agent loaded
    msg_id = k.send("import time\ntime.sleep(30)")
    _wait_for("the sleeping cell", lambda: (r := paths.read_json(k.file(paths.CELL))) and r["running"])
    os.kill(k.pid, signal.SIGKILL)
    _wait_for("the kernel's death", lambda: k.km.provisioner.process.poll() is not None)
    assert k.km.provisioner.process.poll() == -signal.SIGKILL
    assert not os.path.exists(k.file(paths.EXITED))
    last = paths.read_json(k.file(paths.CELL))
    assert last is not None and last["running"] is True  # what the supervisor reads after a death
    assert msg_id
