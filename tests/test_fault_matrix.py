"""The kernel fault matrix of ``nbmedic run``: every fault x ``-j 1``/``-j 4`` x with/without
``--memory-limit`` x cell timeout/whole-run timeout.

One real ``nbmedic run --format json`` subprocess per combination runs a folder holding one notebook per
fault (SIGKILL, SIGSEGV, ``os._exit``, memory past the limit, a loop that ignores SIGINT, an output flood,
a kernel that crashes at start-up, one that hangs at start-up, an interpreter without ipykernel,
``input()``) and 16 healthy notebooks.  Each notebook gets its code, its status, an end time within its
limit plus a few seconds, and its saved partial notebook; afterwards no process of the run is left (every
process started carries this run's marker in its environment) and no file is left in the runtime folder,
the temporary folder the run was given, or the notebook folder (connection files, ipc sockets, templates'
folders, atomic-write temporaries).  The healthy notebooks must all succeed beside the faults, and a
``-j 16`` batch starts 16 kernels at once.

Single faults in depth: ``test_run_faults.py``; the batch machinery: ``test_batch.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.runhelpers import PY, kernelspec, make_nb, read_out, text_of

pytestmark = [
    pytest.mark.fault_matrix,
    pytest.mark.usefixtures("jupyter_home"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals, /proc and ipc: Linux only"),
]

FIRST = "print('first cell ran')"
NEVER = "print('never')"
CELL_TIMEOUT = 3.0
RUN_TIMEOUT = 5.0
GRACE = 1.0  # the stubborn notebook's interrupt_grace (its metadata)
START_TIMEOUT = 2.0  # the hanging kernel's startup_timeout (its notebook's metadata)
MiB = 1 << 20
CLI_LIMIT, NB_LIMIT = 400 * MiB, 300 * MiB  # --memory-limit wins over the notebook's own limit
HEALTHY = 16
SLACK = 8.0  # seconds past a limit a loaded 2-core machine may take to notice, kill and save

GROW = "import time\nchunks = []\nwhile True:\n    chunks.append(b'\\x01' * (32 << 20))\n    time.sleep(0.02)"
STUBBORN = ("import time\n\ndef spin():\n    while True:\n        try:\n            time.sleep(0.05)\n"
            "        except KeyboardInterrupt:\n            pass\n\nspin()")
FLOOD = "for i in range(20000):\n    print('x' * 99)"  # 2 MB of stream output
CRASH_AT_START = ("import os, signal, sys; sys.stderr.write('crashing at start-up\\n'); sys.stderr.flush(); "
                  "os.kill(os.getpid(), signal.SIGSEGV)")


@dataclass(frozen=True)
class Fault:
    name: str
    sources: tuple[str, ...]
    code: str  # the finding; under the two timeout kinds a stubborn cell is RN110 or RN111
    status: str  # the run's status
    cell_status: str | None  # the failing cell's (index 1) saved status; None: the kernel never started
    kernel: str = "python3"
    metadata: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None


FAULTS = (
    Fault("sigkill", (FIRST, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", NEVER),
          "RN100", "died", "died", exit_code=-9),
    Fault("segfault", (FIRST, "import ctypes\nctypes.string_at(0)", NEVER), "RN102", "died", "died", exit_code=-11),
    Fault("os_exit", (FIRST, "import os\nos._exit(3)", NEVER), "RN103", "died", "died", exit_code=3),
    Fault("memory", (FIRST, GROW, NEVER), "RN101", "died", "died", metadata={"memory_limit": "300M"},
          exit_code=-9),
    Fault("stubborn", (FIRST, STUBBORN, NEVER), "RN11x", "timeout", "timeout",
          metadata={"interrupt_grace": GRACE}, exit_code=-9),
    Fault("flood", (FIRST, FLOOD, "print('after')"), "RN130", "ok", "ok", metadata={"max_output": "256K"}),
    Fault("crash_at_start", (FIRST,), "RN140", "not-started", None, kernel="crash-at-start"),
    Fault("hang_at_start", (FIRST,), "RN141", "not-started", None, kernel="hang-at-start",
          metadata={"startup_timeout": START_TIMEOUT}),
    Fault("no_ipykernel", (FIRST,), "RN140", "not-started", None, kernel="no-ipykernel"),
    Fault("input", (FIRST, "name = input('Your name: ')", NEVER), "RN150", "failed", "error"),
)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter without ipykernel: a fresh venv without pip."""
    env = tmp_path_factory.mktemp("bare") / "env"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(env)], check=True)
    return str(env / "bin" / "python")


def _kernelspecs(data: Path, bare_python: str) -> None:
    kernelspec(data, "crash-at-start", [PY, "-c", CRASH_AT_START, "{connection_file}"])
    kernelspec(data, "hang-at-start", [PY, "-c", "import time; time.sleep(120)", "{connection_file}"])
    kernelspec(data, "no-ipykernel", [bare_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"])


def _healthy_source(i: int) -> str:
    return f"import os\nprint('healthy {i} in', os.getpid())"


def _folder(root: Path, healthy: int, faults: tuple[Fault, ...] = FAULTS) -> list[Path]:
    paths = []
    for fault in faults:
        spec = {"name": fault.kernel, "display_name": fault.kernel, "language": "python"}
        paths.append(make_nb(root, *fault.sources, name=f"{fault.name}.ipynb", kernelspec=spec,
                             nbmedic=dict(fault.metadata)))
    for i in range(healthy):
        paths.append(make_nb(root, _healthy_source(i), name=f"healthy{i:02d}.ipynb"))
    return paths


def _marked(tag: str) -> list[psutil.Process]:
    """Every live process whose environment carries this run's marker (kernels, templates, nbmedic)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("NBMEDIC_FAULT_MATRIX") == tag:
                found.append(proc)
        except psutil.Error:
            continue
    return found


@dataclass
class Batch:
    code: int
    doc: dict[str, Any]
    stderr: str
    took: float


def _run_batch(tmp_path: Path, jupyter_home: dict[str, Path], socket_dir: Path, nbs: list[Path], *args: str,
               limit: float = 240) -> Batch:
    """``nbmedic run --format json ARGS NBS`` as a subprocess with a private TMPDIR and a marker; then the
    clean-up checks every combination shares: no process left, no file left anywhere it could write.

    The TMPDIR is under the short ``socket_dir``, so the kernels talk over ipc as with a usual /tmp; under
    ``tmp_path`` their folders pass the 107-byte limit of a socket's name and nbmedic falls back to TCP on
    127.0.0.1 (tested in ``test_run_faults.py``), where jupyter_client's choice of ports races with the
    other kernels starting on the machine (jupyter_client#487)."""
    tag = uuid.uuid4().hex
    tmp = socket_dir / "tmp"
    tmp.mkdir()
    assert len(os.fsencode(tmp / "nbmedic-kernel-4194304-xxxxxxxx" / "kernel-9")) <= 107  # ipc, not TCP
    before = {p for p in tmp_path.rglob("*")}
    env = {**os.environ, "NBMEDIC_FAULT_MATRIX": tag, "TMPDIR": str(tmp)}
    began = time.monotonic()
    proc = subprocess.run([PY, "-m", "nbmedic", "run", "--format", "json", *args, *map(str, nbs)],
                          env=env, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL,
                          check=False)
    took = time.monotonic() - began
    deadline = time.monotonic() + 10
    while _marked(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [(p.pid, p.cmdline()) for p in _marked(tag)]
    assert left == [], f"processes of the run left behind: {left}"
    outputs = {nb.with_name(nb.stem + ".out.ipynb") for nb in nbs}
    new = {p for p in tmp_path.rglob("*")} - before - outputs
    assert new == set(), f"files left behind: {sorted(map(str, new))}"  # runtime, TMPDIR, the notebooks' folder
    assert list(tmp.iterdir()) == []
    assert list(jupyter_home["runtime"].iterdir()) == []
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON document (exit {proc.returncode}): {proc.stderr[-3000:]}") from None
    return Batch(proc.returncode, doc, proc.stderr, took)


def _by_path(doc: dict[str, Any], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in doc[key]:
        out.setdefault(Path(item["path"]).stem, []).append(item)
    return out


def _assert_partial(saved: dict[str, Any], fault: Fault) -> None:
    """Cells before the failing one kept their outputs, the failing one is marked, later ones not run."""
    cells = saved["cells"]
    if fault.cell_status is None:  # never started: the notebook is written as it was, nothing ran
        assert [c["outputs"] for c in cells] == [[]] and "".join(cells[0]["source"]) == FIRST
        return
    assert "first cell ran" in text_of(cells[0]) and cells[0]["metadata"]["nbmedic"]["status"] == "ok"
    assert cells[1]["metadata"]["nbmedic"]["status"] == fault.cell_status
    if fault.status == "ok":  # the flood: truncated with a marker, and the run went on
        assert "[nbmedic: output truncated after 256.0 KiB" in text_of(cells[1])
        assert text_of(cells[2]) == "after\n"
        return
    for later in cells[2:]:
        assert later["metadata"]["nbmedic"]["status"] == "not-run" and later["outputs"] == []


def _end_bound(fault: Fault, timeout_kind: str) -> tuple[float, float]:
    """(least, most) seconds the notebook's run may take."""
    if fault.name == "stubborn":
        limit = CELL_TIMEOUT if timeout_kind == "cell" else RUN_TIMEOUT
        return limit, limit + GRACE + SLACK
    if fault.name == "hang_at_start":
        return START_TIMEOUT, START_TIMEOUT + SLACK
    return 0.0, 2 * SLACK  # dies, fails or finishes at once: no limit is waited for


def _check_fault(fault: Fault, findings: list[dict[str, Any]], run: dict[str, Any], saved: dict[str, Any],
                 timeout_kind: str, memory_limit: int | None) -> None:
    expected = fault.code if fault.code != "RN11x" else ("RN110" if timeout_kind == "cell" else "RN111")
    assert [f["code"] for f in findings] == [expected], [(f["code"], f["message"]) for f in findings]
    f = findings[0]
    ev = f["evidence"]
    assert run["status"] == fault.status
    if fault.exit_code is not None:
        assert run["exit_code"] == fault.exit_code
    if fault.cell_status is not None:
        assert f["cell"] == 1
    least, most = _end_bound(fault, timeout_kind)
    assert least <= run["duration"] <= most, (fault.name, run["duration"], least, most)
    if fault.name == "memory":
        assert ev["killed_by_watchdog"] is True and ev["limit"] == (memory_limit or NB_LIMIT)
        assert ev["peak_rss"] > ev["limit"]
    elif fault.name == "stubborn":
        assert ev["escalated"] is True and ev["exit_code"] == -9 and ev["cell_function"] == "spin"
    elif fault.name == "segfault":
        assert ev["signal"] == "SIGSEGV" and "string_at" in ev["stack"]
    elif fault.name == "crash_at_start":
        assert ev["signal"] == "SIGSEGV" and "crashing at start-up" in ev["stderr_tail"]
    elif fault.name == "hang_at_start":
        assert ev["startup_timeout"] == START_TIMEOUT
    elif fault.name == "no_ipykernel":
        assert "No module named ipykernel_launcher" in ev["stderr_tail"] and "has no ipykernel" in f["message"]
    elif fault.name == "input":
        assert ev["prompt"] == "Your name: "
    elif fault.name == "flood":
        assert ev["max_output"] == 256 * 1024 and ev["total"] == 2_000_000
    _assert_partial(saved, fault)


@pytest.mark.parametrize("timeout_kind", ["cell", "run"])
@pytest.mark.parametrize("memory_limit", [None, CLI_LIMIT], ids=["no-limit", "memory-limit"])
@pytest.mark.parametrize("jobs", [1, 4])
def test_fault_matrix(tmp_path: Path, jupyter_home: dict[str, Path], socket_dir: Path, bare_python: str,
                      jobs: int, memory_limit: int | None, timeout_kind: str) -> None:
    _kernelspecs(jupyter_home["data"], bare_python)
    nbs = _folder(tmp_path / "nbs", HEALTHY)
    args = ["-j", str(jobs)]
    args += ["--memory-limit", str(memory_limit)] if memory_limit else []
    args += ["--cell-timeout", str(CELL_TIMEOUT)] if timeout_kind == "cell" else ["--timeout", str(RUN_TIMEOUT)]
    batch = _run_batch(tmp_path, jupyter_home, socket_dir, nbs, *args)
    assert batch.code == 1, batch.stderr  # error findings
    findings, runs = _by_path(batch.doc, "findings"), _by_path(batch.doc, "runs")
    assert len(batch.doc["runs"]) == len(nbs)
    for fault in FAULTS:
        saved = read_out(tmp_path / "nbs" / f"{fault.name}.out.ipynb")
        _check_fault(fault, findings.get(fault.name, []), runs[fault.name][0], saved, timeout_kind, memory_limit)
    pids = set()
    for i in range(HEALTHY):
        name = f"healthy{i:02d}"
        assert name not in findings, findings.get(name)
        assert runs[name][0]["status"] == "ok" and runs[name][0]["duration"] < 2 * SLACK
        out = text_of(read_out(tmp_path / "nbs" / f"{name}.out.ipynb")["cells"][0])
        assert out.startswith(f"healthy {i} in ")
        pids.add(int(out.split()[-1]))
    assert len(pids) == HEALTHY  # a fresh kernel each
    # the whole batch: the notebooks' own times, `jobs` at a time, plus the command's start
    assert batch.took < sum(r["duration"] for r in batch.doc["runs"]) / jobs + 4 * SLACK, batch.took


HEALTHY_SLEEP = 3.0
RECORD = ("import os, time\nbegan = time.time()\ntime.sleep({sleep})\n"
          "print(os.getpid(), began, time.time())")


def test_sixteen_kernels_started_at_once_all_succeed(tmp_path: Path, jupyter_home: dict[str, Path],
                                                    socket_dir: Path) -> None:
    folder = tmp_path / "nbs"
    nbs = [make_nb(folder, RECORD.format(sleep=HEALTHY_SLEEP), name=f"k{i:02d}.ipynb") for i in range(HEALTHY)]
    batch = _run_batch(tmp_path, jupyter_home, socket_dir, nbs, "-j", str(HEALTHY), "--memory-limit", str(CLI_LIMIT),
                       "--cell-timeout", str(HEALTHY_SLEEP + 3 * SLACK))
    # on failure, each finding's evidence too (the kernel's stderr tail and pid for RN140/RN141)
    assert batch.code == 0, batch.stderr + json.dumps(batch.doc["findings"], indent=1)[:6000]
    assert batch.doc["findings"] == []
    assert [r["status"] for r in batch.doc["runs"]] == ["ok"] * HEALTHY
    spans = []
    for nb in nbs:
        pid, began, ended = text_of(read_out(nb.with_name(nb.stem + ".out.ipynb"))["cells"][0]).split()
        spans.append((int(pid), float(began), float(ended)))
    assert len({pid for pid, _, _ in spans}) == HEALTHY
    # all sixteen cells were running at one moment: the last began before the first ended
    assert max(b for _, b, _ in spans) < min(e for _, _, e in spans), spans
