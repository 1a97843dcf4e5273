"""Security promises: reading a notebook never runs it, names never lead a write out of its folder, every
listener binds 127.0.0.1 only, and the files that may hold code and paths are the user's alone.

Every command runs as a real ``python -m nbmedic`` subprocess in a private Jupyter home.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.execute import memprofile_agent
from nbmedic.live import agent
from nbmedic.live import paths as live_paths
from nbmedic.live.incidents import save_incident
from nbmedic.live.launch import prepare_live_dir
from tests.runhelpers import kernelspec

KINDS = ("code", "bash", "bang", "run", "system", "shell", "backtick", "html", "js", "svg", "widget",
         "kernelspec", "attachment", "jupytext", "traceback", "log")


def nbmedic(*args: str) -> list[str]:
    return [sys.executable, "-m", "nbmedic", *args]


def sh(path: Path) -> str:
    """A shell payload that creates ``path`` if anything ever runs it through a shell."""
    return f"$(touch {path}) `touch {path}`; touch {path}"


def hostile(markers: Path, script: Path, kernel: str) -> dict[str, Any]:
    """A notebook whose every part would create its own marker file in ``markers`` if run or rendered."""
    m = {k: markers / k for k in KINDS}
    js = f"require('fs').writeFileSync('{m['js']}', 'x')"
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' onload=\"{js}\"><script>{js}</script></svg>"
    outputs = [
        {"output_type": "display_data", "metadata": {}, "data": {
            "text/html": f"<script id='nbmedic-evil'>require('fs').writeFileSync('{m['html']}', 'x')</script>"
                         f"<img src=x onerror=\"{js}\">",
            "application/javascript": js, "image/svg+xml": svg, "text/plain": sh(m["shell"]),
            "application/vnd.jupyter.widget-view+json": {"model_id": "evil", "version_major": 2,
                                                          "version_minor": 0}}},
        {"output_type": "error", "ename": "E", "evalue": sh(m["traceback"]), "traceback": [sh(m["traceback"])]},
    ]
    cells = [
        {"cell_type": "code", "id": "code", "execution_count": 1, "metadata": {}, "outputs": outputs,
         "source": f"open({str(m['code'])!r}, 'w').close()\nimport os\nos.system('touch {m['system']}')\n"},
        {"cell_type": "code", "id": "bash", "execution_count": 2, "metadata": {}, "outputs": [],
         "source": f"%%bash\ntouch {m['bash']}\n"},
        {"cell_type": "code", "id": "bang", "execution_count": 3, "metadata": {}, "outputs": [],
         "source": f"!touch {m['bang']}\nx = '`touch {m['backtick']}`'\n"},
        {"cell_type": "code", "id": "run", "execution_count": 4, "metadata": {}, "outputs": [],
         "source": f"%run {script}\n"},
        {"cell_type": "markdown", "id": "attach", "metadata": {}, "source": "![evil](attachment:evil.svg)",
         "attachments": {"evil.svg": {"image/svg+xml": svg.replace(str(m["js"]), str(m["attachment"]))}}},
    ]
    widgets = {"application/vnd.jupyter.widget-state+json": {"state": {"evil": {
        "model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
        "state": {"value": f"<script>require('fs').writeFileSync('{m['widget']}', 'x')</script>"}}},
        "version_major": 2, "version_minor": 0}}
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": {
        "kernelspec": {"name": kernel, "display_name": sh(m["kernelspec"]), "language": "python"},
        "language_info": {"name": "python"}, "widgets": widgets,
        "jupytext": {"formats": "ipynb,py:percent", "notebook_metadata_filter": sh(m["jupytext"])}}}


@pytest.fixture
def stage(tmp_path: Path, jupyter_home: dict[str, Path]) -> dict[str, Any]:
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "evil_script.py"
    script.write_text(f"open({str(markers / 'run')!r}, 'w').close()\n")
    evil_kernel = tmp_path / "evil_kernel.sh"
    evil_kernel.write_text(f"#!/bin/sh\ntouch {markers / 'kernelspec'}\nexec {sys.executable} \"$@\"\n")
    evil_kernel.chmod(0o755)
    kernelspec(jupyter_home["data"], "evilspec", [str(evil_kernel), "-m", "ipykernel_launcher", "-f",
                                                  "{connection_file}"])
    work = tmp_path / "work"
    work.mkdir()
    doc = hostile(markers, script, "evilspec")
    return {"markers": markers, "work": work, "doc": doc, "env": {**os.environ}}


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def _nbmedic(stage: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nbmedic(*args), check=False, cwd=stage["work"], env=stage["env"], capture_output=True,
                          text=True, timeout=120)


def test_reading_commands_never_run_or_render_a_notebook(stage: dict[str, Any]) -> None:
    work, doc = stage["work"], stage["doc"]
    nb = _write(work / "evil.ipynb", doc)
    other = json.loads(json.dumps(doc))
    other["cells"][0]["source"] += "y = 2\n"
    other_nb = _write(work / "evil2.ipynb", other)
    truncated = work / "cut.ipynb"
    truncated.write_bytes(nb.read_bytes()[:-40])
    log = work / "server.log"
    log.write_text("".join(f"[E 2024-01-01 00:00:00 ServerApp] {sh(stage['markers'] / 'log')} line {i}\n"
                           "Traceback (most recent call last):\nKernelRestarter: restart failed\n"
                           for i in range(3)))
    for copy_name in ("strip.ipynb", "slim.ipynb", "local.ipynb"):
        _write(work / copy_name, doc)
    runs = {
        "check": ["check", nb.name, "--format", "json"],
        "strip": ["strip", "strip.ipynb"],
        "diff": ["diff", nb.name, other_nb.name],
        "merge": ["merge", nb.name, nb.name, other_nb.name, "-o", "merged.ipynb"],
        "merge --driver": ["merge", "--driver", nb.name, "local.ipynb", other_nb.name, "7", "x.ipynb"],
        "repair": ["repair", "--in-place", truncated.name],
        "slim": ["slim", "--in-place", "--target", "1K", "slim.ipynb"],
        "logs": ["logs", log.name],
        "server": ["server"],
    }
    outcome: dict[str, int] = {}
    for name, args in runs.items():
        proc = _nbmedic(stage, *args)
        outcome[name] = proc.returncode
        assert proc.returncode in (0, 1, 2), (name, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-2000:])
        if name == "check":
            (work / "doc.json").write_text(proc.stdout)
    assert outcome["merge"] in (0, 1) and (work / "merged.ipynb").exists()
    proc = _nbmedic(stage, "report", "doc.json", "-o", "page.html")
    assert proc.returncode in (0, 1), proc.stderr
    page = (work / "page.html").read_text()
    assert "<script id='nbmedic-evil'>" not in page and "onerror=\"require" not in page
    assert sorted(p.name for p in stage["markers"].iterdir()) == []


def test_the_markers_do_fire_when_the_notebook_is_run(stage: dict[str, Any], jupyter_home: dict[str, Path]) -> None:
    """The control: ``nbmedic run`` does execute the notebook, so the test above would notice execution."""
    nb = _write(stage["work"] / "evil.ipynb", stage["doc"])
    proc = _nbmedic(stage, "run", nb.name, "--allow-errors")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    fired = {p.name for p in stage["markers"].iterdir()}
    assert {"kernelspec", "code", "system", "bang", "run"} <= fired, (fired, proc.stdout[-2000:])


# --- names never lead a write out of the chosen folder ----------------------------------------------

def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _new_outside(root: Path, before: set[str], allowed: Path) -> list[str]:
    jupyter = root / "jupyter-home"
    return sorted(p for p in _tree(root) - before
                  if not (root / p).is_relative_to(allowed) and not (root / p).is_relative_to(jupyter))


def test_grid_values_never_name_a_file_outside_the_output_folder(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    nb = deep / "nb.ipynb"
    _write(nb, {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "P", "language": "python"}}, "cells": [
        {"cell_type": "code", "id": "p", "execution_count": None, "metadata": {"tags": ["parameters"]},
         "outputs": [], "source": "v = 0\n"}]})
    grid = deep / "grid.yaml"
    values = ["../../x", "/etc/passwd", "..", ".", "a\0b", "x/../../../y", "~", "z" * 400, "\\..\\..\\w"]
    grid.write_text("v: " + json.dumps(values) + "\n")
    out = deep / "out"
    before = _tree(tmp_path)
    proc = subprocess.run(nbmedic("run", str(nb), "--grid", str(grid), "--output-dir", str(out), "-j", "4",
                                  "--debug", str(out / "debug.jsonl")),
                          check=False, cwd=deep, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _new_outside(tmp_path, before, out) == []
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".ipynb")
    assert len(written) == len(values) and all("/" not in n and "\0" not in n for n in written)
    assert not Path("/etc/passwd]").exists()


def test_output_dir_keeps_every_notebook_inside(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    names = ["..ipynb", "-rf.ipynb", " .ipynb", "sub/../x.ipynb"]
    for name in names:
        _write(tmp_path / "src" / name, {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
            "name": "python3", "display_name": "P", "language": "python"}}, "cells": []})
    out = tmp_path / "out"
    before = _tree(tmp_path)
    proc = subprocess.run(nbmedic("run", "--output-dir", str(out), "--", *(f"src/{n}" for n in names)),
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _new_outside(tmp_path, before, out) == []
    assert sorted(p.name for p in out.iterdir()) == sorted({" .ipynb", "-rf.ipynb", "..ipynb", "x.ipynb"})


def test_incident_ids_never_reach_outside_the_incident_folder(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    secret = {"schema": 1, "id": "secret", "time": time.time(), "kernel_id": "k", "notebook": "SECRET-NOTEBOOK"}
    _write(jupyter_home["data"] / "secret.json", secret)
    _write(tmp_path / "secret.json", secret)
    save_incident({"time": time.time(), "kernel_id": "k1", "notebook": "real.ipynb"})
    before = _tree(tmp_path)
    for ident in ("../../secret", "../secret", str(tmp_path / "secret"), "..", "/etc/passwd", "x" * 5000):
        proc = subprocess.run(nbmedic("incidents", "show", ident), check=False, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode in (1, 2) and "SECRET-NOTEBOOK" not in proc.stdout, (ident, proc.stdout)
        assert len(proc.stderr.strip().splitlines()) == 1, (ident, proc.stderr)
    assert _tree(tmp_path) == before
    for ident in ("../../x", "..", ".", "/etc/passwd", "a/b", ""):
        for path in (live_paths.incident_path(ident), live_paths.kernel_dir(ident),
                     *live_paths.notice_paths(ident, "../../nb.ipynb")):
            resolved = os.path.realpath(path)
            assert os.path.dirname(resolved) in (os.path.realpath(live_paths.incidents_dir()),
                                                 os.path.realpath(live_paths.kernels_dir()),
                                                 os.path.realpath(live_paths.notices_dir())), (ident, path)


# --- listeners ----------------------------------------------------------------------------------------

def _ours(marker: str) -> Iterator[psutil.Process]:
    for proc in psutil.process_iter(["pid"]):
        try:
            if marker in " ".join(proc.cmdline()) or any(marker in v for v in proc.environ().values()):
                yield proc
        except (psutil.Error, OSError):
            continue


def _listeners_while_running(cmd: list[str], cwd: Path, marker: str, started: Path) -> tuple[set[str], set[str]]:
    """What every process of the run listens on while its cell sleeps: (TCP addresses, Unix socket paths)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tcp: set[str] = set()
    unix: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.Error:
                break
            for p in [*family, *_ours(marker)]:
                try:
                    for conn in p.net_connections(kind="all"):
                        if conn.status == psutil.CONN_LISTEN:
                            tcp.add(conn.laddr.ip)
                        elif conn.family == socket.AF_UNIX and conn.laddr:
                            unix.add(str(conn.laddr))
                except psutil.Error:
                    continue
            if started.exists() and (tcp or unix):
                break
            time.sleep(0.05)
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return tcp, unix


@pytest.mark.parametrize("start", ["forked", "normal"])
def test_kernel_ports_bind_localhost_only(tmp_path: Path, jupyter_home: dict[str, Path], start: str) -> None:
    env = {"PYTHONPATH": "relative-entry"} if start == "normal" else {}  # relative PYTHONPATH: no fork
    folder = kernelspec(jupyter_home["data"], "listen", [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"])
    spec = json.loads((folder / "kernel.json").read_text())
    (folder / "kernel.json").write_text(json.dumps({**spec, "env": env}))
    started = tmp_path / "started"
    nb = _write(tmp_path / "nb.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "listen", "display_name": "L", "language": "python"}}, "cells": [
        {"cell_type": "code", "id": "a", "execution_count": None, "metadata": {}, "outputs": [],
         "source": f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(2)\n"}]})
    tcp, unix = _listeners_while_running(nbmedic("run", nb.name), tmp_path, str(jupyter_home["runtime"]), started)
    assert tcp <= {"127.0.0.1"}, tcp
    # the kernel's five ZMQ channels are Unix sockets (ipc transport) in a folder only this user can enter
    kernel_sockets = [u for u in unix if os.path.basename(u).startswith("kernel-")]
    assert len(kernel_sockets) >= 5, unix
    for path in kernel_sockets:
        if os.path.exists(os.path.dirname(path)):
            assert _mode(os.path.dirname(path)) == 0o700, path


def test_the_local_cluster_binds_localhost_only(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    pytest.importorskip("dask.distributed", reason="--scheduler local needs dask[distributed]")
    started = tmp_path / "started"
    nb = _write(tmp_path / "nb.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "P", "language": "python"}}, "cells": [
        {"cell_type": "code", "id": "a", "execution_count": None, "metadata": {}, "outputs": [],
         "source": f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(3)\n"}]})
    tcp, _ = _listeners_while_running(nbmedic("run", nb.name, "--scheduler", "local"), tmp_path,
                                      str(jupyter_home["runtime"]), started)
    assert tcp == {"127.0.0.1"}  # scheduler, workers, nannies, dashboard


# --- file modes ---------------------------------------------------------------------------------------

@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_incidents_and_live_state_are_private(jupyter_home: dict[str, Path], umask: int) -> None:
    path = save_incident({"time": time.time(), "kernel_id": "k1", "notebook": "/home/u/secret.ipynb",
                          "cell": {"source_head": "password = 'x'"}})
    assert _mode(path) == 0o600
    assert _mode(live_paths.incidents_dir()) == 0o700 and _mode(os.path.dirname(live_paths.incidents_dir())) == 0o700
    cell = os.path.join(live_paths.kernel_dir("k1"), live_paths.SESSION)
    live_paths.write_json(cell, {"argv": ["python"], "cwd": "/home/u"})
    assert _mode(cell) == 0o600
    for folder in (live_paths.kernel_dir("k1"), live_paths.kernels_dir(), live_paths.live_root()):
        assert _mode(folder) == 0o700, folder


def test_the_in_kernel_writers_files_are_private(tmp_path: Path, umask: int) -> None:
    """The agents' records (cell.json, exit.json, the memory profile's files) are made by mkstemp: 0600."""
    for write in (agent._write_json, memprofile_agent._write_json):
        target = tmp_path / f"{write.__module__}.json"
        write(str(target), {"source_head": "password = 'x'"})
        assert _mode(target) == 0o600


def test_the_debug_file_is_private(tmp_path: Path, jupyter_home: dict[str, Path], umask: int) -> None:
    nb = _write(tmp_path / "nb.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "P", "language": "python"}}, "cells": [
        {"cell_type": "code", "id": "a", "execution_count": None, "metadata": {}, "outputs": [],
         "source": "password = 'x'\n"}]})
    proc = subprocess.run(nbmedic("run", nb.name, "--debug", "debug.jsonl"), check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, umask=umask)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "password" in (tmp_path / "debug.jsonl").read_text()
    assert _mode(tmp_path / "debug.jsonl") == 0o600


def test_a_monitored_kernels_folder_is_private_from_launch(jupyter_home: dict[str, Path], umask: int) -> None:
    folder = live_paths.kernel_dir("k2")
    prepare_live_dir(folder)
    assert _mode(folder) == 0o700 and _mode(live_paths.live_root()) == 0o700
    assert _mode(os.path.join(folder, live_paths.FAULTHANDLER)) == 0o600
