"""Kernels forked from a warm template: every guarantee of a normal kernel, on real kernels.

Isolation runs on both start paths (forked and normal): nothing one notebook does (a variable, an
environment change, an open file, a random seed) reaches the next.  The forked path also keeps its own
process group (kill and interrupt reach the kernel and its children only), faulthandler's stack of a
crash, the exit code of a SIGKILL, the kernelspec's argv, flags and env; kernels it cannot fork start the
normal way.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.cli import build_parser
from nbmedic.commands.prelude import prestart
from nbmedic.execute.forkstart import _cmdline_bytes, fork_refusal, shutdown_templates, template_pids
from nbmedic.execute.kernel import Kernel, launch_prediction
from nbmedic.execute.runner import run_notebook
from tests.runhelpers import PY, kernelspec, make_nb, read_out, text_of

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked kernels: Linux only"),
    pytest.mark.usefixtures("jupyter_home"),
]

PATHS = ["fork", "normal"]


def _start(tmp_path: Path, *, fork: bool = True, name: str = "python3") -> Kernel:
    kernel = Kernel(name, cwd=str(tmp_path), fork=fork)
    kernel.start(60.0)
    assert kernel.start_path == ("fork" if fork else "normal"), kernel.fork_note
    return kernel


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[Callable[..., Kernel]]:
    """Start kernels (closed at the end of the test, whatever happens)."""
    started: list[Kernel] = []

    def start(**kw: Any) -> Kernel:
        started.append(_start(tmp_path, **kw))
        return started[-1]

    yield start
    for kernel in started:
        kernel.close()


def run_code(kernel: Kernel, code: str, timeout: float = 60.0) -> tuple[dict[str, Any], str]:
    """Execute ``code``; (the reply's content, the printed text) once the kernel is idle again."""
    msg_id = kernel.execute(code)
    reply: dict[str, Any] | None = None
    idle = False
    text = ""
    deadline = time.monotonic() + timeout
    while not (reply is not None and idle):
        assert time.monotonic() < deadline, f"no reply to {code!r}"
        for channel, msg in kernel.receive(0.05):
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if channel == "shell":
                reply = msg["content"]
            elif msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            elif msg["msg_type"] == "status":
                idle = idle or msg["content"]["execution_state"] == "idle"
    return reply, text


def wait_for(what: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.02)
    return what()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def printed_json(result: Any, cell: int = -1) -> Any:
    assert result.status == "ok", [f.message for f in result.findings]
    return json.loads(text_of(result.nb["cells"][cell]).strip().splitlines()[-1])


def started_how(debug_file: Path) -> dict[str, Any]:
    """The start path and any fallback reason, from a run's --debug file."""
    out: dict[str, Any] = {}
    for line in debug_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["msg_type"] == "kernel-started":
            out["start"] = record["content"]["start"]
        elif record["msg_type"] == "fork-fallback":
            out["reason"] = record["content"]["reason"]
    return out


# --- isolation, on every start path -----------------------------------------------------------------

DIRTY = """\
import json, os, random
first_random = random.random()
leaked_variable = 42
os.environ['NBMEDIC_LEAK'] = 'yes'
held = open({marker!r}, 'w')
random.seed(1234)
print(json.dumps({{'fd': held.fileno(), 'first_random': first_random, 'pid': os.getpid()}}))"""

CHECK = """\
import json, os, random
links = []
for fd in os.listdir('/proc/self/fd'):
    try:
        links.append(os.readlink('/proc/self/fd/' + fd))
    except OSError:
        pass
print(json.dumps({{'variable': 'leaked_variable' in globals(), 'env': os.environ.get('NBMEDIC_LEAK'),
                  'file_open': {marker!r} in links, 'random': random.random(), 'pid': os.getpid()}}))"""


@pytest.mark.parametrize("path", PATHS)
def test_nothing_leaks_from_one_notebook_to_the_next(tmp_path: Path, path: str) -> None:
    marker = str(tmp_path / "held-open.txt")
    dirty = make_nb(tmp_path, DIRTY.format(marker=marker), name="dirty.ipynb")
    check = make_nb(tmp_path, CHECK.format(marker=marker), name="check.ipynb")
    fork = path == "fork"
    first = printed_json(run_notebook(dirty, fork=fork, debug_file=str(tmp_path / "d1.jsonl")))
    second = printed_json(run_notebook(check, fork=fork, debug_file=str(tmp_path / "d2.jsonl")))
    assert started_how(tmp_path / "d1.jsonl")["start"] == started_how(tmp_path / "d2.jsonl")["start"] == path
    assert second["pid"] != first["pid"]
    assert second["variable"] is False
    assert second["env"] is None
    assert second["file_open"] is False
    assert second["random"] != random.Random(1234).random()
    assert second["random"] != first["first_random"]


@pytest.mark.parametrize("path", PATHS)
def test_a_file_open_in_a_running_kernel_is_not_in_the_next_one(
        tmp_path: Path, path: str, kernels: Callable[..., Kernel]) -> None:
    marker = tmp_path / "held-open.txt"
    first = kernels(fork=path == "fork")
    _reply, text = run_code(first, f"held = open({str(marker)!r}, 'w')\nprint(held.fileno())")
    assert (Path(f"/proc/{first.pid}/fd") / text.strip()).readlink() == marker
    second = kernels(fork=path == "fork")
    links = [os.readlink(f"/proc/{second.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{second.pid}/fd")]
    assert str(marker) not in links
    # the template holds nothing of the kernels either
    for pid in template_pids():
        assert str(marker) not in [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]


def test_forked_kernels_hold_only_their_own_descriptors(kernels: Callable[..., Kernel]) -> None:
    forked, normal = kernels(fork=True), kernels(fork=False)

    def links(pid: int) -> set[str]:  # anonymous inodes ("anon_inode:[eventpoll]") have no identity to compare
        return {link for fd in os.listdir(f"/proc/{pid}/fd")
                if not (link := os.readlink(f"/proc/{pid}/fd/{fd}")).startswith("anon_inode:")}

    def kinds(pid: int) -> set[str]:
        return {link.split(":")[0] if ":[" in link else ("kernel tmpdir" if "nbmedic-kernel-" in link else link)
                for link in links(pid)}

    assert forked.pid is not None and normal.pid is not None
    extra = kinds(forked.pid) - kinds(normal.pid) - {os.devnull}  # stdin: /dev/null, not a closed pipe
    assert extra == set()
    of_templates = set().union(*(links(pid) for pid in template_pids())) - {os.devnull}
    assert of_templates and not links(forked.pid) & of_templates  # not the template's socket, not its log


def test_two_forked_kernels_draw_different_random_numbers(kernels: Callable[..., Kernel]) -> None:
    code = ("import json, random\nout = {'random': random.random()}\ntry:\n    import numpy\n"
            "    out['numpy'] = float(numpy.random.random())\nexcept ImportError:\n    pass\nprint(json.dumps(out))")
    draws = [json.loads(run_code(kernels(fork=True), code)[1]) for _ in range(2)]
    assert draws[0]["random"] != draws[1]["random"]
    if "numpy" in draws[0]:
        assert draws[0]["numpy"] != draws[1]["numpy"]


def test_each_notebook_gets_its_argv_cwd_and_parent(tmp_path: Path) -> None:
    code = "import json, os, sys\nprint(json.dumps({'argv': sys.argv, 'cwd': os.getcwd(), 'ppid': os.getppid()}))"
    seen = []
    for folder in ("one", "two"):
        nb = make_nb(tmp_path / folder, code, name=f"{folder}.ipynb")
        seen.append(printed_json(run_notebook(nb, fork=True)))
        assert seen[-1]["cwd"] == str(tmp_path / folder)
        argv = seen[-1]["argv"]
        assert argv[0].endswith("ipykernel_launcher.py") and argv[1] == "-f" and argv[2].endswith("kernel.json")
        assert argv[3].startswith("--IPKernelApp.exec_lines=") and "faulthandler" in argv[3]
        assert seen[-1]["ppid"] in template_pids()  # forked: the template's child, not ours
    assert seen[0]["argv"][2] != seen[1]["argv"][2]


# --- signals and deaths of a forked kernel ----------------------------------------------------------


def test_killing_a_forked_kernel_kills_its_process_group_only(kernels: Callable[..., Kernel]) -> None:
    doomed, bystander = kernels(fork=True), kernels(fork=True)
    _reply, text = run_code(doomed, "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nprint(child.pid)")
    child = int(text)
    assert os.getpgid(child) == doomed.pgid == doomed.pid and bystander.pgid == bystander.pid
    templates = template_pids()
    assert templates and os.getppid() not in (doomed.pgid, bystander.pgid) and os.getpgid(0) != doomed.pgid
    doomed.kill()
    assert doomed.returncode() == -9 and not doomed.is_alive()
    assert wait_for(lambda: gone(child))
    assert bystander.is_alive() and run_code(bystander, "print('still here')")[1] == "still here\n"
    assert template_pids() == templates and all(not gone(pid) for pid in templates)


def test_interrupt_reaches_a_forked_kernel(kernels: Callable[..., Kernel]) -> None:
    kernel = kernels(fork=True)
    msg_id = kernel.execute("import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.05)")
    reply: dict[str, Any] | None = None
    deadline = time.monotonic() + 60
    interrupted = False
    while reply is None and time.monotonic() < deadline:
        for channel, msg in kernel.receive(0.05):
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream" and not interrupted:
                kernel.interrupt()
                interrupted = True
            elif channel == "shell":
                reply = msg["content"]
    assert reply is not None and reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert kernel.is_alive() and run_code(kernel, "print(1 + 1)")[1] == "2\n"


def test_a_cell_timeout_interrupts_a_forked_kernel(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "import time\n\ndef wait_forever():\n    while True:\n        time.sleep(0.05)\n\nwait_forever()",
                 "print('after')")
    result = run_notebook(nb, fork=True, cell_timeout=1.0, debug_file=str(tmp_path / "d.jsonl"))
    assert started_how(tmp_path / "d.jsonl")["start"] == "fork"
    found = [f for f in result.findings if f.code == "RN110"]
    assert len(found) == 1, [(f.code, f.message) for f in result.findings]
    evidence = found[0].evidence
    assert evidence["interrupted"] is True and evidence["escalated"] is False
    assert evidence["cell_function"] == "wait_forever" and "wait_forever" in evidence["stack"]


def test_a_segfault_in_a_forked_kernel_is_rn102_with_the_stack(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "print('first')", "import ctypes\n\ndef read_null():\n    return ctypes.string_at(0)\n\nread_null()")
    out = tmp_path / "out.ipynb"
    result = run_notebook(nb, fork=True, output=out, debug_file=str(tmp_path / "d.jsonl"))
    assert started_how(tmp_path / "d.jsonl")["start"] == "fork"
    found = [f for f in result.findings if f.code == "RN102"]
    assert len(found) == 1, [(f.code, f.message) for f in result.findings]
    assert result.status == "died" and result.exit_code == -11
    evidence = found[0].evidence
    assert evidence["signal"] == "SIGSEGV" and "Segmentation fault" in evidence["fatal_error"]
    assert "string_at" in evidence["stack"] and "in read_null" in evidence["stack"]
    assert evidence["cell_function"] == "read_null" and evidence["cell_line"] == 4
    assert read_out(out)["cells"][1]["metadata"]["nbmedic"]["status"] == "died"


def test_a_sigkilled_forked_kernel_is_rn100_with_exit_code_minus_9(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "print('first')", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print('never')")
    result = run_notebook(nb, fork=True, debug_file=str(tmp_path / "d.jsonl"))
    assert started_how(tmp_path / "d.jsonl")["start"] == "fork"
    found = [f for f in result.findings if f.code == "RN100"]
    assert len(found) == 1, [(f.code, f.message) for f in result.findings]
    assert result.status == "died" and result.exit_code == -9
    assert found[0].evidence["signal"] == "SIGKILL" and found[0].cell == 1


def test_an_exit_code_comes_back_through_the_template(kernels: Callable[..., Kernel]) -> None:
    kernel = kernels(fork=True)
    kernel.execute("import os\nos._exit(3)")
    assert wait_for(lambda: kernel.returncode() is not None)
    assert kernel.returncode() == 3


def test_the_monitor_samples_the_forked_kernel_tree(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "import subprocess\nsubprocess.run(['sleep', '0.5'])\nblob = bytearray(64 << 20)")
    result = run_notebook(nb, fork=True, sample_interval=0.05)
    assert result.status == "ok"
    assert result.peak_rss > 64 << 20
    assert any(s.children >= 1 for s in result.timeline)  # the sleep, a child of the forked kernel


def test_a_sigint_to_the_template_reaches_no_kernel(kernels: Callable[..., Kernel]) -> None:
    kernel = kernels(fork=True)
    for pid in template_pids():
        os.kill(pid, signal.SIGINT)
    assert run_code(kernel, "print('fine')")[1] == "fine\n"
    assert all(not gone(pid) for pid in template_pids())


# --- which path ------------------------------------------------------------------------------------


def test_a_kernelspec_that_is_not_ipykernel_launcher_starts_normally(tmp_path: Path,
                                                                      jupyter_home: dict[str, Path]) -> None:
    launch = "from ipykernel import kernelapp as app; app.launch_new_instance()"
    kernelspec(jupyter_home["data"], "viac", [PY, "-c", launch, "-f", "{connection_file}"])
    nb = make_nb(tmp_path, "print('ran')", kernelspec={"name": "viac", "display_name": "viac", "language": "python"})
    result = run_notebook(nb, fork=True, debug_file=str(tmp_path / "d.jsonl"))
    assert result.status == "ok" and text_of(result.nb["cells"][0]) == "ran\n"
    how = started_how(tmp_path / "d.jsonl")
    assert how["start"] == "normal" and "-c" in how["reason"]


def test_a_kernelspec_of_another_interpreter_starts_normally(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    base = os.path.realpath(PY)  # the interpreter the venv links to: another folder, so another Python
    site_dirs = [p for p in sys.path if p.endswith("site-packages")] + [str(Path(__file__).parent.parent / "src")]
    folder = kernelspec(jupyter_home["data"], "base", [base, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    spec["env"] = {"PYTHONPATH": os.pathsep.join(site_dirs)}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    nb = make_nb(tmp_path, "import sys\nprint(sys.executable)",
                 kernelspec={"name": "base", "display_name": "base", "language": "python"})
    result = run_notebook(nb, fork=True, debug_file=str(tmp_path / "d.jsonl"))
    assert result.status == "ok", [f.message for f in result.findings]
    how = started_how(tmp_path / "d.jsonl")
    assert how["start"] == "normal" and "another Python" in how["reason"]


def test_flags_and_env_of_the_kernelspec_reach_the_forked_kernel(tmp_path: Path,
                                                                  jupyter_home: dict[str, Path]) -> None:
    folder = kernelspec(jupyter_home["data"], "flags", ["python", "-X", "frozen_modules=off", "-m",
                                                         "ipykernel_launcher", "-f", "{connection_file}"])
    spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    spec["env"] = {"NBMEDIC_SPEC_VAR": "from-the-spec"}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    nb = make_nb(tmp_path, "import json, os, sys\nprint(json.dumps({'x': sys._xoptions, "
                 "'env': os.environ.get('NBMEDIC_SPEC_VAR'), 'orig': sys.orig_argv[:4]}))",
                 kernelspec={"name": "flags", "display_name": "flags", "language": "python"})
    result = run_notebook(nb, fork=True, debug_file=str(tmp_path / "d.jsonl"))
    assert started_how(tmp_path / "d.jsonl") == {"start": "fork"}
    seen = printed_json(result)
    assert seen["x"] == {"frozen_modules": "off"} and seen["env"] == "from-the-spec"
    assert seen["orig"] == [PY, "-X", "frozen_modules=off", "-m"]


def test_no_fork_and_the_fork_setting_use_the_normal_path(tmp_path: Path,
                                                          run_cli: Callable[..., tuple[int, str, str]]) -> None:
    code = "import os\nprint(os.getppid())"
    forked = make_nb(tmp_path, code, name="forked.ipynb")
    plain = make_nb(tmp_path, code, name="plain.ipynb")
    by_metadata = make_nb(tmp_path, code, name="meta.ipynb", nbmedic={"fork": False})
    out = tmp_path / "out"
    status, _out, err = run_cli("run", "--output-dir", str(out), str(forked), str(by_metadata))
    assert status == 0, err
    status, _out, err = run_cli("run", "--no-fork", "--output-dir", str(out), str(plain))
    assert status == 0, err

    def parent(name: str) -> int:
        return int(text_of(read_out(out / name)["cells"][0]))

    assert parent("forked.ipynb") in template_pids()
    assert parent("plain.ipynb") == os.getpid()  # launched by this process: the normal path
    assert parent("meta.ipynb") == os.getpid()


def test_refusals_name_the_reason(tmp_path: Path) -> None:
    env = dict(os.environ)
    ok = [PY, "-m", "ipykernel_launcher", "-f", "k.json"]
    assert fork_refusal(ok, env) is None
    assert fork_refusal([PY, "-Xfrozen_modules=off", "-m", "ipykernel", "-f", "k.json"], env) is None
    assert "another Python" in (fork_refusal([os.path.realpath(PY), *ok[1:]], env) or "")
    assert "ipykernel_launcher" in (fork_refusal([PY, "-m", "other_kernel", "-f", "k.json"], env) or "")
    assert "'-c'" in (fork_refusal([PY, "-c", "pass", "-m", "ipykernel_launcher"], env) or "")
    assert "relative" in (fork_refusal(ok, {**env, "PYTHONPATH": "lib"}) or "")


def test_preloads_are_in_the_kernel_before_its_first_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBMEDIC_FORK_PRELOAD", "wave, no_such_module_for_nbmedic")
    nb = make_nb(tmp_path, "import sys\nprint('wave' in sys.modules)")
    result = run_notebook(nb, fork=True, debug_file=str(tmp_path / "d.jsonl"))
    assert result.status == "ok" and text_of(result.nb["cells"][0]) == "True\n"
    started = [json.loads(line)["content"] for line in (tmp_path / "d.jsonl").read_text().splitlines()
               if '"kernel-started"' in line]
    assert started[0]["start"] == "fork" and started[0]["template"] in template_pids()
    assert "ModuleNotFoundError" in started[0]["preload_failed"]["no_such_module_for_nbmedic"]
    monkeypatch.delenv("NBMEDIC_FORK_PRELOAD")
    plain = printed_json(run_notebook(make_nb(tmp_path, "import json, sys\nprint(json.dumps('wave' in sys.modules))",
                                              name="plain.ipynb"), fork=True))
    assert plain is False  # another environment, another template: nothing preloaded


def test_a_template_without_ipykernel_falls_back_to_the_normal_start(tmp_path: Path,
                                                                     jupyter_home: dict[str, Path]) -> None:
    shadow = tmp_path / "shadow" / "ipykernel"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('this ipykernel is broken')\n", encoding="utf-8")
    folder = kernelspec(jupyter_home["data"], "broken", ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    spec["env"] = {"PYTHONPATH": str(tmp_path / "shadow")}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    nb = make_nb(tmp_path, "print('never')", kernelspec={"name": "broken", "display_name": "b", "language": "python"})
    result = run_notebook(nb, fork=True, startup_timeout=30.0, debug_file=str(tmp_path / "d.jsonl"))
    how = started_how(tmp_path / "d.jsonl")
    assert "cannot import ipykernel" in how["reason"] and "this ipykernel is broken" in how["reason"]
    assert result.status == "not-started"
    assert [f.code for f in result.findings] == ["RN140"]
    assert "this ipykernel is broken" in str(result.findings[0].evidence)


def test_the_umask_of_the_run_reaches_the_forked_kernel(kernels: Callable[..., Kernel]) -> None:
    before = os.umask(0o027)
    try:
        kernel = kernels(fork=True)
    finally:
        os.umask(before)
    assert run_code(kernel, "import os\nprint(oct(os.umask(0)))")[1] == "0o27\n"


def test_a_lost_template_takes_its_kernels_and_the_next_start_gets_a_new_one(kernels: Callable[..., Kernel]) -> None:
    kernel = kernels(fork=True)
    _reply, text = run_code(kernel, "import os\nprint(os.getppid())")
    template = int(text)
    os.kill(template, signal.SIGKILL)
    assert wait_for(lambda: kernel.returncode() is not None)
    assert kernel.returncode() == -9 and wait_for(lambda: gone(kernel.pid or 0))
    fresh = kernels(fork=True)
    _reply, text = run_code(fresh, "import os\nprint(os.getppid())")
    assert int(text) != template and int(text) in template_pids()


def test_ps_shows_the_kernel_command_not_the_template_s(kernels: Callable[..., Kernel]) -> None:
    first, second = kernels(fork=True), kernels(fork=True)
    for kernel in (first, second):
        assert psutil.Process(kernel.pid).cmdline() == kernel.argv
        assert kernel.argv[1:3] == ["-m", "ipykernel_launcher"] and kernel.argv[3] == "-f"
    assert psutil.Process(first.pid).cmdline() != psutil.Process(second.pid).cmdline()  # each its own file


# --- the end of a forked kernel: as the interpreter ends, short of its teardown -------------------------

EXIT_WORK = """\
import sys, threading, time
sys.path.insert(0, {folder!r})
import unflushed  # a module of the user's that keeps a file open in a global, never flushed nor closed
unflushed.LOG.write('written by a module global\\n')
kept = open({kept!r}, 'w')
kept.write('written in the namespace\\n')
def late():
    time.sleep(0.5)
    with open({late!r}, 'w') as fh:
        fh.write('written by a thread after shutdown\\n')
threading.Thread(target=late).start()  # not a daemon: the interpreter waits for it at exit
import atexit
atexit.register(lambda: open({hook!r}, 'w').write('written by an atexit function\\n'))"""


@pytest.mark.parametrize("path", PATHS)
def test_a_kernel_ends_as_the_interpreter_would_flushing_files_and_waiting_for_threads(tmp_path: Path,
                                                                                          path: str) -> None:
    files = {name: tmp_path / f"{name}.txt" for name in ("module", "kept", "late", "hook")}
    (tmp_path / "unflushed.py").write_text(f"LOG = open({str(files['module'])!r}, 'w')\n")
    nb = make_nb(tmp_path, EXIT_WORK.format(folder=str(tmp_path), kept=str(files["kept"]),
                                            late=str(files["late"]),
                                            hook=str(files["hook"])))
    result = run_notebook(nb, fork=path == "fork", debug_file=str(tmp_path / "d.jsonl"))
    assert result.status == "ok", [f.message for f in result.findings]
    assert started_how(tmp_path / "d.jsonl")["start"] == path
    assert wait_for(lambda: all(f.exists() and f.stat().st_size for f in files.values()), 10.0), \
        {name: f.exists() and f.read_text() for name, f in files.items()}
    assert files["module"].read_text() == "written by a module global\n"
    assert files["kept"].read_text() == "written in the namespace\n"
    assert files["late"].read_text() == "written by a thread after shutdown\n"
    assert files["hook"].read_text() == "written by an atexit function\n"


def test_a_forked_kernel_that_shuts_down_exits_0(kernels: Callable[..., Kernel]) -> None:
    kernel = kernels(fork=True)
    assert run_code(kernel, "x = 1")[0]["status"] == "ok"
    kernel.close(graceful=True)
    assert kernel.returncode() == 0


# --- the template started before the command is imported (commands.prelude) -------------------------


def _fresh_templates() -> None:
    shutdown_templates()
    assert template_pids() == []


def test_the_prestarted_template_is_the_one_a_run_forks_from(tmp_path: Path,
                                                             run_cli: Callable[..., tuple[int, str, str]]) -> None:
    """The prediction equals the key of the real launch: the run's kernel is forked from the template the
    CLI started before importing the command, and no second template starts."""
    _fresh_templates()
    nb = make_nb(tmp_path, "print('ran')")
    code, out, err = run_cli("run", str(nb), "-o", str(tmp_path / "out.ipynb"), "--debug", str(tmp_path / "d.jsonl"))
    assert code == 0, out + err
    assert started_how(tmp_path / "d.jsonl") == {"start": "fork"}
    started = [json.loads(line)["content"] for line in (tmp_path / "d.jsonl").read_text().splitlines()
               if '"kernel-started"' in line]
    assert [s["template"] for s in started] == template_pids()  # one template: the prestarted one


def test_the_prediction_is_the_command_line_and_environment_of_the_launch(tmp_path: Path) -> None:
    predicted = launch_prediction("python3")
    assert predicted is not None
    argv, env = predicted
    kernel = _start(tmp_path)
    try:
        assert len(argv) == len(kernel.argv) and _cmdline_bytes(argv) == _cmdline_bytes(kernel.argv)
        assert [a for a in argv if "nbmedic-kernel-" not in a] == [a for a in kernel.argv if "nbmedic-kernel-" not in a]
        assert env["PYTHONFAULTHANDLER"] == "1" and env["PATH"] == os.environ["PATH"]
    finally:
        kernel.close()


def test_no_guess_for_kernelspecs_that_are_not_plain_ipython(jupyter_home: dict[str, Path]) -> None:
    kernelspec(jupyter_home["data"], "bash", ["bash", "-c", "{connection_file}"], language="bash")
    with_env = kernelspec(jupyter_home["data"], "withenv", [PY, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    spec = json.loads((with_env / "kernel.json").read_text(encoding="utf-8"))
    spec["env"] = {"X": "1"}
    (with_env / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    assert launch_prediction("bash") is None
    assert launch_prediction("withenv") is None  # its env is templated by jupyter_client: not guessed
    assert launch_prediction("no-such-kernel") is None


@pytest.mark.parametrize("option", [["--no-fork"], ["--scheduler", "tcp://127.0.0.1:9"]])
def test_nothing_is_prestarted_when_nothing_will_be_forked(tmp_path: Path, option: list[str]) -> None:
    _fresh_templates()
    nb = str(make_nb(tmp_path, "1"))
    assert prestart(build_parser().parse_args(["run", nb, *option])) is False and template_pids() == []
    assert prestart(build_parser().parse_args(["run", nb])) is True and len(template_pids()) == 1


def test_nothing_is_prestarted_for_a_run_that_will_stop_at_a_missing_notebook(tmp_path: Path) -> None:
    _fresh_templates()
    args = build_parser().parse_args(["run", str(tmp_path / "missing.ipynb")])
    assert prestart(args) is False and template_pids() == []
