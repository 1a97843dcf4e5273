"""A batch of notebooks ``workers`` at a time (``execute.batch``), on real kernels: no more notebooks run
cells at once than asked, the next kernels start while cells run, the wait for a turn is not part of a
run (its time, its ``--timeout``), and Ctrl-C stops the whole batch, leaving no kernel behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.execute.batch import execute
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.options import RunOptions
from tests.runhelpers import make_nb

pytestmark = pytest.mark.usefixtures("jupyter_home")

RECORD = """\
import json, os, time, psutil
began = time.time()
time.sleep({sleep})
with open({log!r}, 'a') as fh:
    fh.write(json.dumps({{'name': {name!r}, 'pid': os.getpid(), 'created': psutil.Process().create_time(),
                         'began': began, 'ended': time.time()}}) + '\\n')"""


def _recording_nbs(tmp_path: Path, count: int, sleep: float) -> tuple[list[RunJob], Path]:
    log = tmp_path / "cells.jsonl"
    paths = [make_nb(tmp_path, RECORD.format(sleep=sleep, log=str(log), name=f"n{i}"), name=f"n{i}.ipynb")
             for i in range(count)]
    return [RunJob(str(p), RunOptions()) for p in paths], log


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _most_at_once(records: list[dict[str, Any]]) -> int:
    edges = sorted([(r["began"], 1) for r in records] + [(r["ended"], -1) for r in records])
    running = most = 0
    for _t, step in edges:
        running += step
        most = max(most, running)
    return most


def test_workers_notebooks_run_cells_at_once_and_the_next_kernels_start_meanwhile(tmp_path: Path) -> None:
    jobs, log = _recording_nbs(tmp_path, 4, sleep=1.0)
    results = execute(jobs, 2)
    assert [r.status for r in results] == ["ok"] * 4
    records = sorted(_records(log), key=lambda r: r["began"])
    assert _most_at_once(records) == 2  # two at a time: parallel, and never more
    first_done = min(r["ended"] for r in records[:2])
    for later in records[2:]:  # their kernels were up before a turn was free
        assert later["created"] < first_done, records
    assert len({r["pid"] for r in records}) == 4  # a fresh kernel each


def test_the_wait_for_a_turn_is_not_part_of_a_run_nor_of_its_timeout(tmp_path: Path) -> None:
    log = tmp_path / "cells.jsonl"
    paths = [make_nb(tmp_path, RECORD.format(sleep=1.0, log=str(log), name=f"n{i}"), name=f"n{i}.ipynb")
             for i in range(4)]
    jobs = [RunJob(str(p), RunOptions(timeout=2.5)) for p in paths]
    began = time.monotonic()
    results = execute(jobs, 2)
    took = time.monotonic() - began
    assert [r.status for r in results] == ["ok"] * 4, [f.message for r in results for f in r.findings]
    assert took > 2.0  # the last two waited about a second for a turn
    assert all(r.duration < 2.5 for r in results), [r.duration for r in results]


def _tagged_processes(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("NBMEDIC_TEST_TAG") == tag:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _kernels(tag: str) -> list[psutil.Process]:
    out = []
    for proc in _tagged_processes(tag):
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.Error:
            continue
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads other processes' environments")
def test_ctrl_c_stops_the_batch_and_leaves_no_kernel(tmp_path: Path) -> None:
    paths = [make_nb(tmp_path, "import time\ntime.sleep(120)", name=f"s{i}.ipynb") for i in range(4)]
    tag = uuid.uuid4().hex
    env = {**os.environ, "NBMEDIC_TEST_TAG": tag}
    with subprocess.Popen([sys.executable, "-m", "nbmedic", "run", "-j", "2", *map(str, paths)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL) as proc:
        try:
            deadline = time.monotonic() + 60
            while len(_kernels(tag)) < 3 and time.monotonic() < deadline:  # two running, the next ones started
                time.sleep(0.2)
            assert len(_kernels(tag)) >= 3
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()  # the pipes are closed as the block ends, even when the test failed
    assert proc.returncode == 130, err
    assert "nbmedic: interrupted" in err.decode()
    deadline = time.monotonic() + 10
    while _tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _tagged_processes(tag) == []
    for out in tmp_path.glob("*.out.ipynb"):  # what was written is whole (atomic writes)
        assert json.loads(out.read_text(encoding="utf-8"))["cells"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def _kernel_children() -> list[psutil.Process]:
    """This process's kernels: descendants running ipykernel (a fork template's children included)."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def test_a_batch_that_fails_midway_leaves_no_kernel_behind(tmp_path: Path) -> None:
    jobs, _log = _recording_nbs(tmp_path, 6, sleep=0.5)

    def boom(index: int, _result: Any) -> None:
        raise RuntimeError(f"the display failed on notebook {index}")

    with pytest.raises(RuntimeError, match="the display failed"):
        execute(jobs, 2, boom)
    deadline = time.monotonic() + 15
    while _kernel_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _kernel_children() == []  # the running ones killed, the ones started ahead shut down


def test_a_finished_batch_leaves_no_kernel_behind(tmp_path: Path) -> None:
    jobs, _log = _recording_nbs(tmp_path, 4, sleep=0.1)
    assert [r.status for r in execute(jobs, 2)] == ["ok"] * 4
    deadline = time.monotonic() + 15
    while _kernel_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _kernel_children() == []
