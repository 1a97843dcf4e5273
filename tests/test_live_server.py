"""End to end through a real `jupyter server`: a monitored kernel dies, the server restarts it, the next
cell says why, and `nbmedic incidents` lists it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.livehelpers import JupyterServer, KernelSocket, incidents, streams, wait_for, write_kernelspec


@pytest.fixture
def server(tmp_path: Path, jupyter_home: dict[str, Path],
           run_cli: Callable[..., tuple[int, str, str]]) -> Iterator[JupyterServer]:
    write_kernelspec(jupyter_home["data"], "monitored")
    code, out, err = run_cli("monitor", "install", "monitored", "--memory-limit", "4G")
    assert code == 0 and "monitored by the nbmedic provisioner" in out, out + err
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)
    (root / "work" / "analysis.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    srv = JupyterServer(root, tmp_path / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


def test_a_killed_kernel_explains_itself_in_the_next_cell(
        server: JupyterServer, jupyter_home: dict[str, Path], run_cli: Callable[..., tuple[int, str, str]]) -> None:
    session = server.request("POST", "/api/sessions", {
        "path": "work/analysis.ipynb", "name": "analysis.ipynb", "type": "notebook",
        "kernel": {"name": "monitored"}})
    kernel_id = session["kernel"]["id"]
    ws = KernelSocket(server, kernel_id)
    try:
        first = ws.execute("x = 41", cell_id="cell-x")
        assert first[-1]["content"]["status"] == "ok"
        ws.send_execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", cell_id="cell-boom")

        found = wait_for(lambda: incidents(jupyter_home["data"]), 30, "an incident record")
        incident = found[0]
        assert incident["kernel_id"] == kernel_id
        assert incident["finding"]["code"] == "RN100"
        assert incident["signal"] == "SIGKILL" and incident["exit_code"] == -9
        assert incident["cell"]["cell_id"] == "cell-boom"
        assert incident["cell"]["execution_count"] == 2
        assert incident["notebook"] == str(server.root / "work" / "analysis.ipynb")
        assert incident["memory"]["timeline"], "the ring buffer's samples are kept"

        # the server's restarter notices (every 3 s) and starts a new kernel with the same id
        def restarted() -> bool:
            model = server.request("GET", f"/api/kernels/{kernel_id}")
            return bool(model["execution_state"] in ("idle", "busy") and _new_pid(jupyter_home, incident["pid"]))

        wait_for(restarted, 60, "the kernel to be restarted", interval=0.3)
        time.sleep(0.5)  # the websocket's channels reconnect to the new kernel
        after = ws.execute("print(x if 'x' in dir() else 'fresh')", cell_id="cell-after")
        texts = streams(after)
        assert texts[0][0] == "stderr"
        assert texts[0][1].startswith("nbmedic: at ")
        assert f"nbmedic incidents show {incident['id']}" in texts[0][1]
        assert 'while running cell [2] "import os, signal"' in texts[0][1]
        assert ("stdout", "fresh\n") in texts
        again = streams(ws.execute("print(1)"))
        assert again == [("stdout", "1\n")], "the notice is shown once"
    finally:
        ws.close()

    log = server.log_path.read_text(errors="replace")
    assert f"kernel {kernel_id}" in log and f"incident {incident['id']}" in log

    code, out, err = run_cli("incidents", "--format", "json")
    assert code == 0, err
    assert [i["id"] for i in json.loads(out)["incidents"]] == [incident["id"]]


def _new_pid(jupyter_home: dict[str, Path], old_pid: int) -> bool:
    folder = jupyter_home["runtime"] / "nbmedic" / "kernels"
    for path in folder.glob("*/session.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if record.get("pid") not in (None, old_pid):
            return True
    return False
