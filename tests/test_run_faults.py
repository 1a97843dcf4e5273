"""One sick notebook per fault, run in a real kernel: the right code, the evidence, the saved partial notebook.

Every run must end quickly (generous bounds, 2-core CI machines): nbmedic detects deaths by watching the
kernel process, not by waiting for a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from nbmedic.execute import RunResult, run_notebook
from tests.runhelpers import PY, kernelspec, make_nb, read_out, text_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux only")

FIRST = "print('first cell ran')"


def run(path: Path, **kw: object) -> tuple[RunResult, dict, float]:
    out = path.with_name(path.stem + ".out.ipynb")
    t = time.monotonic()
    result = run_notebook(path, output=out, **kw)  # type: ignore[arg-type]
    elapsed = time.monotonic() - t
    return result, read_out(out), elapsed


def only(result: RunResult, code: str) -> dict:
    found = [f for f in result.findings if f.code == code]
    assert len(found) == 1, [(f.code, f.message) for f in result.findings]
    return found[0].to_dict()


def assert_partial(saved: dict, failing: int, status: str) -> None:
    """The cells before ``failing`` kept their outputs; the failing cell is marked; later cells not run."""
    cells = saved["cells"]
    assert "first cell ran" in text_of(cells[0])
    assert cells[0]["metadata"]["nbmedic"]["status"] == "ok"
    assert cells[failing]["metadata"]["nbmedic"]["status"] == status
    for later in cells[failing + 1:]:
        assert later["metadata"]["nbmedic"]["status"] == "not-run"
        assert later["outputs"] == []


def test_sigkill_without_memory_signs_is_rn100(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print('never')")
    result, saved, elapsed = run(nb)
    f = only(result, "RN100")
    assert result.status == "died" and result.exit_code == -9
    assert f["cell"] == 1 and f["evidence"]["signal"] == "SIGKILL"
    assert "SIGKILL" in f["message"] and "cell 1" in f["message"]
    assert f["evidence"]["killed_by_watchdog"] is False
    assert_partial(saved, 1, "died")
    assert elapsed < 20


def test_segfault_is_rn102_with_the_python_stack(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "import ctypes\n\ndef read_null():\n    return ctypes.string_at(0)\n\nread_null()",
                 "print('never')")
    result, saved, elapsed = run(nb)
    f = only(result, "RN102")
    assert result.status == "died" and result.exit_code == -11
    assert f["evidence"]["signal"] == "SIGSEGV"
    assert "SIGSEGV" in f["message"] and "cell 1" in f["message"]
    assert "read_null" in f["message"] and "string_at" in f["message"]
    stack = f["evidence"]["stack"]
    assert "string_at" in stack and "in read_null" in stack and "ipykernel_" in stack
    assert f["evidence"]["cell_function"] == "read_null" and f["evidence"]["cell_line"] == 4
    assert "Segmentation fault" in f["evidence"]["fatal_error"]
    assert_partial(saved, 1, "died")
    assert any(o.get("ename") == "DeadKernelError" for o in saved["cells"][1]["outputs"])
    assert elapsed < 20


def test_os_exit_is_rn103_with_the_code(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "import os\nos._exit(3)", "print('never')")
    result, saved, elapsed = run(nb)
    f = only(result, "RN103")
    assert result.exit_code == 3 and f["evidence"]["exit_code"] == 3
    assert "code 3" in f["message"] and "cell 1" in f["message"]
    assert_partial(saved, 1, "died")
    assert elapsed < 20


def test_memory_past_the_limit_is_rn101(tmp_path: Path) -> None:
    grow = ("import time\nchunks = []\nwhile True:\n    chunks.append(b'\\x01' * (32 * 2**20))\n"
            "    time.sleep(0.02)")
    nb = make_nb(tmp_path, FIRST, "small = b'\\x02' * (20 * 2**20)", grow, "print('never')")
    limit = 400 * 2**20
    result, saved, elapsed = run(nb, memory_limit=limit)
    f = only(result, "RN101")
    assert result.status == "died" and result.exit_code == -9
    assert f["cell"] == 2 and f["evidence"]["killed_by_watchdog"] is True
    assert f["evidence"]["limit"] == limit and f["evidence"]["peak_rss"] > limit
    assert "memory" in f["message"] and "cell 2" in f["message"]
    assert f["evidence"]["cells_growing_rss"][0]["cell"] == 2
    assert result.peak_rss > limit and result.timeline
    assert_partial(saved, 2, "died")
    assert saved["cells"][2]["metadata"]["nbmedic"]["peak_rss"] > 300 * 2**20
    assert elapsed < 30


def test_cell_timeout_is_rn110_with_the_stuck_function(tmp_path: Path) -> None:
    stuck = "import time\n\ndef wait_for_data():\n    time.sleep(60)\n\nwait_for_data()"
    nb = make_nb(tmp_path, FIRST, stuck, "print('never')")
    result, saved, elapsed = run(nb, cell_timeout=2.0)
    f = only(result, "RN110")
    assert result.status == "timeout"
    ev = f["evidence"]
    assert ev["stack_method"] == "faulthandler"
    assert ev["cell_function"] == "wait_for_data" and ev["cell_line"] == 4
    assert "line 4 in wait_for_data" in f["message"]
    assert "in wait_for_data" in ev["stack"] and "ipykernel_" in ev["stack"]
    assert ev["escalated"] is False
    assert_partial(saved, 1, "timeout")
    # the faulthandler dump does not leak into the cell's output
    assert "most recent call first" not in text_of(saved["cells"][1])
    assert elapsed < 15


def test_a_cell_that_swallows_interrupts_is_killed(tmp_path: Path) -> None:
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                "    except KeyboardInterrupt:\n        pass")
    nb = make_nb(tmp_path, FIRST, stubborn, "print('never')")
    result, saved, elapsed = run(nb, cell_timeout=1.5, interrupt_grace=1.0)
    f = only(result, "RN110")
    assert f["evidence"]["escalated"] is True and f["evidence"]["exit_code"] == -9
    assert "killed" in f["message"]
    assert result.status == "timeout"
    assert_partial(saved, 1, "timeout")
    assert elapsed < 15


def test_whole_run_timeout_is_rn111(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "import time\ntime.sleep(0.8)", "time.sleep(0.8)", "time.sleep(0.8)",
                 "time.sleep(30)")
    result, saved, elapsed = run(nb, timeout=4.0)
    f = only(result, "RN111")
    assert result.status == "timeout" and f["cell"] == 4
    assert saved["cells"][1]["metadata"]["nbmedic"]["status"] == "ok"
    assert elapsed < 15


def test_input_is_rn150_at_once(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "name = input('Your name: ')", "print('never')")
    result, saved, elapsed = run(nb)
    f = only(result, "RN150")
    assert f["evidence"]["prompt"] == "Your name: " and f["evidence"]["escalated"] is False
    assert result.status == "failed"
    assert_partial(saved, 1, "error")
    assert elapsed < 10


def test_output_flood_is_truncated_rn130(tmp_path: Path) -> None:
    flood = "for i in range(40000):\n    print('x' * 99)"
    nb = make_nb(tmp_path, FIRST, flood, "print('after')")
    out = tmp_path / "flood.out.ipynb"
    result = run_notebook(nb, output=out, max_output=2**20)
    f = only(result, "RN130")
    assert result.status == "ok"
    ev = f["evidence"]
    assert ev["max_output"] == 2**20 and ev["kept"] <= 2**20 and ev["total"] == 4_000_000
    assert ev["dropped"] == 4_000_000 - ev["kept"]
    saved = read_out(out)
    text = text_of(saved["cells"][1])
    assert "[nbmedic: output truncated after 1.0 MiB; 2.8 MiB dropped]" in text
    assert text_of(saved["cells"][2]) == "after\n"
    assert out.stat().st_size < 1.3 * 2**20
    assert result.cells[1].output_bytes <= 2**20


def test_error_is_rn120_and_stops(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "def f():\n    raise ValueError('boom')\nf()", "print('never')")
    result, saved, _ = run(nb)
    f = only(result, "RN120")
    assert result.status == "failed" and f["severity"] == "error"
    assert f["evidence"]["ename"] == "ValueError" and f["evidence"]["evalue"] == "boom"
    assert "\x1b[" not in f["evidence"]["traceback"] and "ValueError: boom" in f["evidence"]["traceback"]
    assert_partial(saved, 1, "error")
    assert saved["cells"][1]["outputs"][0]["output_type"] == "error"


def test_allow_errors_goes_on(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "raise ValueError('boom')", "print('still here')")
    result, saved, _ = run(nb, allow_errors=True)
    f = only(result, "RN120")
    assert f["severity"] == "warning" and result.status == "ok"
    assert text_of(saved["cells"][2]) == "still here\n"
    assert [c.status for c in result.cells] == ["ok", "error", "ok"]


def test_raises_exception_tag_is_expected(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "raise KeyError('expected')", "print('still here')",
                 tags={1: ["raises-exception"]})
    result, saved, _ = run(nb)
    assert result.findings == [] and result.status == "ok"
    assert text_of(saved["cells"][2]) == "still here\n"


def test_missing_interpreter_is_rn140(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "jupyter"
    gone = str(tmp_path / "deleted-env" / "bin" / "python")
    kernelspec(root, "gone", [gone, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    nb = make_nb(tmp_path, FIRST)
    result, saved, elapsed = run(nb, kernel_name="gone")
    f = only(result, "RN140")
    assert result.status == "not-started"
    assert gone in f["message"] and "does not exist" in f["message"]
    assert f["evidence"]["missing"] == gone and f["evidence"]["argv"][0] == gone
    assert "".join(saved["cells"][0]["source"]) == FIRST  # the notebook is still written
    assert elapsed < 10


def test_interpreter_without_ipykernel_is_rn140(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "bare-env"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(env)], check=True)
    python = str(env / "bin" / "python")
    root = tmp_path / "jupyter"
    kernelspec(root, "bare", [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    nb = make_nb(tmp_path, FIRST)
    result, _, elapsed = run(nb, kernel_name="bare")
    f = only(result, "RN140")
    assert "ipykernel_launcher" in f["message"] and "ipykernel" in f["fix"]
    assert f["evidence"]["exit_code"] == 1
    assert "No module named ipykernel_launcher" in f["evidence"]["stderr_tail"]
    assert elapsed < 15


def test_unknown_kernel_name_is_rn140_listing_installed(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST)
    result, _, _ = run(nb, kernel_name="no-such-kernel")
    f = only(result, "RN140")
    assert "no-such-kernel" in f["message"] and "python3" in f["message"]
    assert "python3" in f["evidence"]["installed"]


def test_a_kernel_that_never_answers_is_rn141(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "jupyter"
    kernelspec(root, "mute", [PY, "-c", "import time; time.sleep(60)", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    nb = make_nb(tmp_path, FIRST)
    result, _, elapsed = run(nb, kernel_name="mute", startup_timeout=1.5)
    f = only(result, "RN141")
    assert result.status == "not-started" and f["evidence"]["startup_timeout"] == 1.5
    assert f["evidence"]["heard"] == [] and "did not answer within 1.5 s" in f["message"]
    assert elapsed < 10


def _patched_ipykernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str) -> None:
    """A kernelspec ``name`` running ``script`` (a patched ipykernel) under this test's JUPYTER_PATH.
    -Xfrozen_modules=off: no debugger warning on iopub's stderr, which would stand in for its status."""
    root = tmp_path / "jupyter"
    kernelspec(root, name, [PY, "-Xfrozen_modules=off", "-c", script, "-f", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))


# an ipykernel that never answers kernel_info (stuck in its start, say on a locked file): its iopub speaks
# (ipykernel 7 welcomes each subscriber), so the finding can say it is alive but stuck
STUCK_INFO = """
import asyncio, ipykernel.kernelbase as kb
from ipykernel import kernelapp
async def never(self, *args):
    await asyncio.sleep(3600)
kb.Kernel.kernel_info_request = never
kernelapp.launch_new_instance()
"""


def test_a_kernel_alive_on_iopub_but_mute_on_shell_is_rn141_heard_on_iopub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _patched_ipykernel(tmp_path, monkeypatch, "stuck", STUCK_INFO)
    result, _, elapsed = run(make_nb(tmp_path, FIRST), kernel_name="stuck", startup_timeout=8)
    f = only(result, "RN141")
    assert f["evidence"]["heard"] == ["iopub"], f
    assert f["message"] == "the kernel 'stuck' sent messages on iopub but did not answer kernel_info within 8 s of starting"
    assert result.status == "not-started" and elapsed < 20


# a kernel without ipykernel 7's iopub_welcome (older ipykernels, other languages) whose iopub lost the
# status messages of its start and of the first kernel_info request, as when the client's SUB socket
# connects after the kernel published them (a loaded machine): the reply comes on shell, but nothing on
# iopub until another request
LATE_IOPUB = """
import ipykernel.iostream as io, ipykernel.kernelbase as kb
from ipykernel import kernelapp
io.IOPubThread._send_welcome_message = lambda self, subscription: None
publish, first = kb.Kernel._publish_status, []
def lossy(self, status, channel, parent=None):
    header = (parent or self.get_parent(channel) or {}).get("header") or {}
    if header.get("msg_type") == "kernel_info_request" and not first:
        first.append(header["msg_id"])
    if not header or header.get("msg_id") in first:
        return
    publish(self, status, channel, parent)
kb.Kernel._publish_status = lossy
kernelapp.launch_new_instance()
"""


def test_a_kernel_whose_first_iopub_messages_were_lost_still_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start asks kernel_info again until iopub has spoken, not only until shell replied."""
    _patched_ipykernel(tmp_path, monkeypatch, "late", LATE_IOPUB)
    result, saved, elapsed = run(make_nb(tmp_path, FIRST), kernel_name="late", startup_timeout=30)
    assert result.status == "ok", [(f.code, f.message) for f in result.findings]
    assert "first cell ran" in text_of(saved["cells"][0])
    assert elapsed < 20  # a second request a second later; without it, RN141 after the 30 s


@pytest.mark.parametrize("startup_timeout", [0.001, 0.01])
def test_a_start_up_timeout_that_cuts_the_launch_short_leaves_no_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, startup_timeout: float) -> None:
    """A timeout that fires while jupyter_client is still launching (after it started the process: on a
    loaded machine, with a short startup_timeout) must still kill that process."""
    root = tmp_path / "jupyter"
    kernelspec(root, "mute", [PY, "-c", "import time; time.sleep(60)", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    tag = uuid.uuid4().hex
    monkeypatch.setenv("NBMEDIC_TEST_LAUNCH", tag)
    result, _, _ = run(make_nb(tmp_path, FIRST), kernel_name="mute", startup_timeout=startup_timeout)
    assert [f.code for f in result.findings] == ["RN141"]

    def left() -> list[int]:
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("NBMEDIC_TEST_LAUNCH") == tag \
                        and proc.pid != os.getpid():
                    found.append(proc.pid)
            except psutil.Error:
                continue
        return found

    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == []


@pytest.mark.parametrize("fork", [True, False])
def test_a_temporary_folder_too_deep_for_unix_sockets_runs_over_loopback_tcp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool) -> None:
    """A kernel's ipc sockets live in its temporary folder; where that path is longer than a Unix socket's
    name may be (107 bytes), the kernel talks TCP on 127.0.0.1 instead of failing to start."""
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    nb = make_nb(tmp_path, FIRST, "print('second')")
    result, saved, _ = run(nb, fork=fork)
    assert result.status == "ok", [(f.code, f.message) for f in result.findings]
    assert "second" in text_of(saved["cells"][1])


def test_stall_is_reported_once_and_the_cell_goes_on(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, FIRST, "import threading\n\ndef wait_on_lock():\n    threading.Event().wait(3.5)\n\n"
                 "wait_on_lock()", "print('after')")
    result, saved, _ = run(nb, stall_after=1.5)
    f = only(result, "RN112")
    assert f["severity"] == "warning" and result.status == "ok"
    assert f["evidence"]["cell_function"] == "wait_on_lock"
    assert text_of(saved["cells"][2]) == "after\n"
