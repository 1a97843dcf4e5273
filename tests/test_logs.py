"""``nbmedic logs``: the signature catalogue against realistic Jupyter logs."""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nbmedic.cli import main
from nbmedic.commands import logs as logs_cmd
from nbmedic.findings import CODES, Finding
from nbmedic.logs.catalogue import CATALOGUE, render
from nbmedic.logs.matcher import clean, match_lines

KID = "3f2a9c1e-5b7d-4e2a-9c61-0d8e4f2b7a10"
KID2 = "a81c44d0-2f0e-4b8e-8a53-6c1d9e7f3b22"


def find(text: str) -> list[Finding]:
    return match_lines(text.strip("\n").splitlines(), "jupyter.log")


def codes(text: str) -> list[str]:
    return sorted(f.code for f in find(text))


def one(text: str, code: str) -> Finding:
    found = [f for f in find(text) if f.code == code]
    assert len(found) == 1, [f.to_dict() for f in find(text)]
    return found[0]


def cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["logs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- the catalogue is data, and the registry agrees with it -----------------------------------------------

def test_catalogue_matches_the_code_registry() -> None:
    assert [s.code for s in CATALOGUE] == [f"LG3{i:02d}" for i in range(len(CATALOGUE))]
    for sig in CATALOGUE:
        info = CODES[sig.code]
        assert (info.severity, info.title, info.fix) == (sig.severity, sig.title, render(sig.fix, {}))
        assert sig.cause and sig.source and sig.patterns
        for pat in sig.patterns:
            pat.compiled()


@pytest.mark.parametrize("line, text", [
    ("[I 2026-01-02 10:11:12.345 ServerApp] Kernel started: x", "Kernel started: x"),
    ("[W 12:00:01.123 NotebookApp] hello", "hello"),
    ("[IPKernelApp] WARNING | Unknown error in handling startup files:", "Unknown error in handling startup files:"),
    ("[I 2026-01-02 10:11:12.345 SingleUserLabApp mixins:547] Starting", "Starting"),
    ("\x1b[33m[W 2026-01-02 10:11:12.345 ServerApp]\x1b[0m kernel x restarted\r\n", "kernel x restarted"),
    ("2026-01-02T10:11:12.345678901Z [E 10:11:12.345 LabApp] boom", "boom"),
])
def test_prefixes_and_colours_are_removed(line: str, text: str) -> None:
    assert clean(line)[0] == text


# --- one test per row of shared/reference/jupyter-error-signatures.md --------------------------------------

def test_row01_restarts_grouped_per_kernel() -> None:
    lines = [f"[I 2026-01-02 10:00:00.000 ServerApp] Kernel started: {KID}"]
    for n in range(1, 6):
        lines += [(f"[W 2026-01-02 10:0{n}:00.001 ServerApp] AsyncIOLoopKernelRestarter: restarting kernel ({n}/5), "
                   "keep random ports"),
                  f"[W 2026-01-02 10:0{n}:00.302 ServerApp] kernel {KID} restarted"]
    lines += ["[W 10:30:00.001 NotebookApp] KernelRestarter: restarting kernel (1/5), new random ports",
              f"[W 10:30:00.500 NotebookApp] kernel {KID2} restarted"]
    found = sorted((f for f in match_lines(lines, "server.log") if f.code == "LG300"),
                   key=lambda f: -int(f.evidence["count"]))
    assert len(found) == 2
    first, second = found
    assert first.evidence["count"] == 5 and first.evidence["kernel_id"] == KID
    assert first.evidence["lines"] == list(range(2, 12)) and first.evidence["n"] == 5
    assert first.path == "server.log" and first.cell is None and first.severity == "error"
    assert "restarted 5 times (lines 2–11)" in first.message and "OOM killer" in first.message
    assert first.evidence["first_line"].startswith("AsyncIOLoopKernelRestarter: restarting kernel (1/5)")
    assert second.evidence["count"] == 1 and second.evidence["kernel_id"] == KID2
    assert second.evidence["ports"] == "new" and "restarted once (lines 12–13)" in second.message


def test_row01_browser_console_and_dialog() -> None:
    f = one("""
default.js:1234 Kernel Restarting
The kernel for analysis/train.ipynb appears to have died. It will restart automatically.
Kernel Restarting
The kernel for analysis/train.ipynb appears to have died. It will restart automatically.
""", "LG300")
    assert f.evidence["path"] == "analysis/train.ipynb" and f.evidence["count"] == 2


def test_row02_restart_failed() -> None:
    f = one(f"""
[W 2026-01-02 10:11:12.345 ServerApp] AsyncIOLoopKernelRestarter: restarting kernel (5/5), new random ports
[W 2026-01-02 10:11:15.345 ServerApp] AsyncIOLoopKernelRestarter: restart failed
[W 2026-01-02 10:11:15.346 ServerApp] Kernel {KID} died, removing from map.
[W 2026-01-02 10:11:15.400 ServerApp] kernel {KID} restarted failed!
""", "LG301")
    assert f.evidence["kernel_id"] == KID and f.evidence["count"] == 1
    assert f.evidence["lines"] == [2, 3, 4]
    assert codes("The kernel has died, and the automatic restart has failed.") == ["LG301"]


def test_row03_no_ipykernel_launcher() -> None:
    f = one("""
[I 2026-01-02 10:11:12.345 ServerApp] Kernel started: 3f2a9c1e
/opt/envs/old/bin/python: No module named ipykernel_launcher
[I 2026-01-02 10:11:15.345 ServerApp] AsyncIOLoopKernelRestarter: restarting kernel (1/5), keep random ports
/opt/envs/old/bin/python: No module named ipykernel_launcher
""", "LG302")
    assert f.evidence["python"] == "/opt/envs/old/bin/python" and f.evidence["count"] == 2
    assert f.fix.startswith("`/opt/envs/old/bin/python -m pip install ipykernel`")
    windows = one(r"C:\Users\ana\envs\old\python.exe: No module named ipykernel_launcher", "LG302")
    assert windows.evidence["python"] == r"C:\Users\ana\envs\old\python.exe"
    bare = one("ModuleNotFoundError: No module named 'ipykernel_launcher'", "LG302")
    assert "python" not in bare.evidence and bare.fix.startswith("`INTERPRETER -m pip")


def test_row04_kernelspec_interpreter_missing() -> None:
    f = one("""
[E 2026-01-02 10:11:12.345 ServerApp] Failed to run command:
    ['/home/ana/miniconda3/envs/gone/bin/python', '-m', 'ipykernel_launcher', '-f', '/run/kernel-1.json']
        PATH='/usr/local/bin:/usr/bin:/bin'
        with kwargs:
    {'stdin': -1, 'stdout': None, 'stderr': None, 'cwd': '/home/ana', 'start_new_session': True}
[E 2026-01-02 10:11:12.350 ServerApp] Uncaught exception POST /api/sessions (127.0.0.1)
    Traceback (most recent call last):
      File "/usr/lib/python3/dist-packages/jupyter_client/launcher.py", line 170, in launch_kernel
        proc = Popen(cmd, **kwargs)
    FileNotFoundError: [Errno 2] No such file or directory: '/home/ana/miniconda3/envs/gone/bin/python'
""", "LG303")
    assert f.evidence["python"] == "/home/ana/miniconda3/envs/gone/bin/python" and f.evidence["lines"] == [10]
    # a FileNotFoundError with no kernel launch above it is not this signature
    assert codes("FileNotFoundError: [Errno 2] No such file or directory: 'data.csv'") == []


def test_row05_no_such_kernel() -> None:
    f = one("""
[W 2026-01-02 10:11:12.345 ServerApp] 500 POST /api/sessions (::1) 3.21ms referer=http://localhost:8888/lab
[E 2026-01-02 10:11:12.340 ServerApp] Error starting kernel: No such kernel named py38-torch
    jupyter_client.kernelspec.NoSuchKernel: No such kernel named py38-torch
""", "LG304")
    assert f.evidence["kernel_name"] == "py38-torch" and f.evidence["count"] == 2
    assert one("[NbConvertApp] ERROR | Kernelspec name conda-env-ml cannot be found!", "LG304").evidence[
        "kernel_name"] == "conda-env-ml"


def test_row06_died_before_kernel_info() -> None:
    f = one("""
[NbConvertApp] Executing notebook with kernel: python3
Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/nbclient/client.py", line 600, in async_start_new_kernel_client
RuntimeError: Kernel died before replying to kernel_info
""", "LG305")
    assert f.evidence["lines"] == [4]


def test_row07_startup_timeout() -> None:
    f = one("[E 2026-01-02 10:11:12.345 ServerApp] RuntimeError: Kernel didn't respond in 60 seconds", "LG306")
    assert f.evidence["seconds"] == 60 and "(60 seconds)" in f.message


def test_row08_kernel_info_timeout() -> None:
    f = one(f"[W 2026-01-02 10:11:12.345 ServerApp] Timeout waiting for kernel_info reply from {KID}", "LG307")
    assert f.evidence["kernel_id"] == KID and f.severity == "warning"


def test_row09_zmq_address_in_use() -> None:
    f = one("""
[IPKernelApp] ERROR | Exception in message handler:
Traceback (most recent call last):
  File "zmq/backend/cython/socket.pyx", line 829, in zmq.backend.cython.socket.Socket.bind
zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:50123')
""", "LG308")
    assert f.evidence["lines"] == [4]


def test_row10_windows_epoll_bad_file_descriptor() -> None:
    f = one(r"[W 10:11:12.345 NotebookApp] Bad file descriptor (C:\projects\libzmq\src\epoll.cpp:100)", "LG309")
    assert f.evidence["where"].endswith("epoll.cpp:100")


def test_row11_pywin32_dll() -> None:
    f = one("""
  File "C:\\Users\\ana\\AppData\\Roaming\\Python\\Python311\\site-packages\\jupyter_core\\paths.py", line 1
    import win32api
ImportError: DLL load failed while importing win32api: The specified module could not be found.
""", "LG310")
    assert f.evidence["module"] == "win32api"
    assert codes("ImportError: DLL load failed while importing _multiarray_umath") == []


def test_row12_iopub_rate() -> None:
    f = one("""
IOPub data rate exceeded.
The Jupyter server will temporarily stop sending output
to the client in order to avoid crashing it.
To change this limit, set the config variable
`--ServerApp.iopub_data_rate_limit`.
[W 2026-01-02 10:11:15.345 ServerApp] IOPub message rate exceeded.
[I 2026-01-02 10:11:18.345 ServerApp] iopub messages resumed
""", "LG311")
    assert f.evidence["count"] == 2 and f.severity == "warning"


def test_row13_dead_kernel() -> None:
    f = one("""
[NbClientApp] ERROR | Kernel died while waiting for execute reply.
Traceback (most recent call last):
nbclient.exceptions.DeadKernelError: Kernel died
""", "LG312")
    assert f.evidence["count"] == 1 and f.evidence["lines"] == [1, 3]


def test_row14_cell_timeout() -> None:
    f = one("""
nbclient.exceptions.CellTimeoutError: A cell timed out while it was being executed, after 600 seconds.
The message was: Cell execution timed out.
""", "LG313")
    assert f.evidence["seconds"] == 600


def test_row15_validation_failed() -> None:
    f = one("""
[W 2026-01-02 10:11:12.345 ServerApp] Notebook JSON is invalid: 'state' is a required property
[E 2026-01-02 10:11:12.345 ServerApp] Notebook validation failed: 'model_id' is a required property:
The save operation succeeded, but the notebook does not appear to be valid. The validation error was:
""", "LG314")
    assert f.evidence["count"] == 3


def test_row16_cell_ids_in_old_minor() -> None:
    text = ("[W 2026-01-02 10:11:12.345 ServerApp] Notebook JSON is invalid: Additional properties are not "
            "allowed ('id' was unexpected)")
    assert codes(text) == ["LG315"]


def test_row17_unreadable_notebook() -> None:
    f = one("[W 2026-01-02 10:11:12.345 ServerApp] 400 GET /api/contents/report.ipynb?type=notebook (::1): "
            "Unreadable Notebook: /home/ana/report.ipynb NotJSONError('Notebook does not appear to be JSON: "
            "\\'<html>\\\\n<head>...')", "LG316")
    assert f.evidence["path"] == "/home/ana/report.ipynb"
    assert f.evidence["error"].startswith("NotJSONError(")
    assert "nbmedic repair /home/ana/report.ipynb" in f.fix


def test_row18_request_too_large() -> None:
    f = one("""
2026/01/02 10:11:12 [error] 31#31: *118 client intended to send too large body: 4123456 bytes, client: 10.0.0.7
File Save Error for Untitled.ipynb: Request failed with status 413
<html><head><title>413 Request Entity Too Large</title></head>
""", "LG317")
    assert f.evidence["count"] == 3 and f.evidence["bytes"] == 4123456


def test_row19_disk_full_and_locked_db() -> None:
    found = find("""
[E 2026-01-02 10:11:12.345 ServerApp] Unexpected error while saving file: work/big.ipynb [Errno 28] No space left on device
[E 2026-01-02 10:12:12.345 ServerApp] Notebook signature database error: database is locked
[E 2026-01-02 10:13:12.345 ServerApp] sqlite3.OperationalError: disk I/O error
""")
    problems = {f.evidence["problem"]: f for f in found if f.code == "LG318"}
    assert set(problems) == {"no space left on device", "database is locked", "disk I/O error"}
    assert problems["no space left on device"].evidence["path"] == "work/big.ipynb"


def test_row20_websocket_drops() -> None:
    found = [f for f in find("""
[W 2026-01-02 10:11:12.345 ServerApp] WebSocket ping timeout after 90000 ms.
[W 2026-01-02 10:21:12.345 ServerApp] WebSocket ping timeout after 90000 ms.
[I 2026-01-02 10:22:12.345 ServerApp] Replacing stale connection: 3f2a9c1e:6b8f2c1a
""") if f.code == "LG319"]
    by = {f.evidence["problem"]: f.evidence["count"] for f in found}
    assert by == {"dropped after a ping timeout": 2, "replaced by another connection": 1}


def test_row21_extension_fails() -> None:
    f = one("""
[IPKernelApp] WARNING | Error in loading extension: autotime
Check your config files in /home/ana/.ipython/profile_default
Traceback (most recent call last):
ModuleNotFoundError: No module named 'autotime'
""", "LG320")
    assert f.evidence["ext"] == "autotime" and f.evidence["profile"] == "/home/ana/.ipython/profile_default"
    assert "install `autotime`" in f.fix and "/home/ana/.ipython/profile_default" in f.fix


def test_row22_startup_file_raises() -> None:
    f = one("""
[IPKernelApp] WARNING | Unknown error in handling startup files:
Traceback (most recent call last):
  File "/home/ana/.ipython/profile_default/startup/00-setup.py", line 3, in <module>
    import pandas as pd
ModuleNotFoundError: No module named 'pandas'
""", "LG321")
    assert f.evidence["file"] == "/home/ana/.ipython/profile_default/startup/00-setup.py"
    assert one("[IPKernelApp] WARNING | Unknown error in handling PYTHONSTARTUP file /home/ana/.pythonrc:",
               "LG321").evidence["file"] == "/home/ana/.pythonrc"


def test_row23_history_locked_is_not_row19() -> None:
    text = ("[IPKernelApp] ERROR | The history saving thread hit an unexpected error "
            "(OperationalError('database is locked')).History will not be written to the database.")
    f = one(text, "LG322")
    assert codes(text) == ["LG322"] and "database is locked" in f.evidence["error"]


def test_row24_jupyter_command_not_found() -> None:
    f = one("Jupyter command `jupyter-lab` not found.", "LG323")
    assert f.evidence["sub"] == "lab"


def test_oom_killer_and_exit_137() -> None:
    found = find("""
[Thu Jan  2 10:11:12 2026] Memory cgroup out of memory: Killed process 48213 (python) total-vm:9123456kB, anon-rss:8123456kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:16400kB oom_score_adj:0
[Thu Jan  2 10:31:12 2026] Out of memory: Killed process 50001 (python3) total-vm:9123456kB, anon-rss:7000000kB
Command terminated with exit code 137
    Last State:     Terminated
      Reason:       OOMKilled
      Exit Code:    137
""")
    oom = {f.evidence["comm"]: f for f in found if f.code == "LG324"}
    assert oom["python"].evidence["pid"] == 48213 and oom["python"].evidence["scope"] == "memory cgroup limit"
    assert oom["python"].evidence["anon_rss"] == "8123456kB"
    assert oom["python3"].evidence["scope"] == "host out of memory"
    kill = [f for f in found if f.code == "LG325"]
    assert len(kill) == 1 and kill[0].evidence["count"] == 3
    assert codes("subprocess exited with returncode -9") == ["LG325"]


def test_healthy_server_log_has_no_findings() -> None:
    healthy = f"""
[I 2026-01-02 10:11:12.345 ServerApp] jupyter_lsp | extension was successfully linked.
[I 2026-01-02 10:11:12.350 ServerApp] jupyterlab | extension was successfully loaded.
[I 2026-01-02 10:11:12.351 ServerApp] Serving notebooks from local directory: /home/ana/work
[I 2026-01-02 10:11:12.351 ServerApp] Jupyter Server 2.14.2 is running at:
[I 2026-01-02 10:11:12.351 ServerApp] http://localhost:8888/lab?token=...
[I 2026-01-02 10:11:12.351 ServerApp] Use Control-C to stop this server and shut down all kernels (twice to skip confirmation).
[I 2026-01-02 10:12:00.001 ServerApp] Kernel started: {KID}
[I 2026-01-02 10:12:01.001 ServerApp] Connecting to kernel {KID}.
[I 2026-01-02 10:12:30.123 ServerApp] Saving file at /analysis.ipynb
[I 2026-01-02 10:14:00.123 ServerApp] Kernel restarted: {KID}
[I 2026-01-02 10:20:00.123 ServerApp] Starting buffering for {KID}:6b8f2c1a
[I 2026-01-02 10:22:00.123 ServerApp] Kernel shutdown: {KID}
[W 2026-01-02 10:22:00.456 ServerApp] 404 GET /api/kernels/xyz (::1): Kernel does not exist: xyz
[I 2026-01-02 10:25:00.000 ServerApp] Shutting down 4 extensions
[IPKernelApp] WARNING | debugpy_stream undefined, debugging will not be enabled
"""
    assert find(healthy) == []


# --- the command ------------------------------------------------------------------------------------------

CRASHY = f"""[W 2026-01-02 10:11:12.345 ServerApp] KernelRestarter: restarting kernel (1/5), keep random ports
[W 2026-01-02 10:11:12.350 ServerApp] kernel {KID} restarted
[W 2026-01-02 11:00:00.000 ServerApp] WebSocket ping timeout after 90000 ms.
"""


def test_cli_json_exit_codes_and_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "jupyter.log.gz"
    log.write_bytes(gzip.compress(CRASHY.encode() + b"\xff\xfe broken bytes\n"))
    code, out, _ = cli(str(log), "--format", "json", capsys=capsys)
    data = json.loads(out)
    assert code == 1
    assert sorted(f["code"] for f in data["findings"]) == ["LG300", "LG319"]
    assert all(f["path"] == str(log) and f["cell"] is None for f in data["findings"])
    code, out, _ = cli(str(log), "--format", "json", "--ignore", "LG300", capsys=capsys)
    assert code == 0 and [f["code"] for f in json.loads(out)["findings"]] == ["LG319"]
    code, out, _ = cli(str(log), "--format", "json", "--select", "LG30", capsys=capsys)
    assert code == 1 and [f["code"] for f in json.loads(out)["findings"]] == ["LG300"]
    code, out, _ = cli(str(log), "--format", "json", "--since", "2026-01-02 10:30", capsys=capsys)
    assert [f["code"] for f in json.loads(out)["findings"]] == ["LG319"]
    code, out, _ = cli(str(log), capsys=capsys)
    assert code == 1 and "LG300" in out and "restarted once" in out


def test_cli_stdin_utf16(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = CRASHY.replace("\n", "\r\n").encode("utf-16")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = cli("-", "--format", "json", capsys=capsys)
    found = json.loads(out)["findings"]
    assert code == 1 and {f["path"] for f in found} == {"<stdin>"} and len(found) == 2


def test_cli_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(str(tmp_path / "missing.log"), capsys=capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "missing.log" in err
    bad = tmp_path / "bad.log.gz"
    bad.write_bytes(gzip.compress(b"x" * 10000)[:40])
    code, _, err = cli(str(bad), capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_large_log_streams_fast(tmp_path: Path) -> None:
    healthy = "[I 2026-01-02 10:11:12.345 ServerApp] 200 GET /api/kernels?1700000000 (::1) 1.23ms\n"
    log = tmp_path / "big.log"
    with log.open("w") as fh:
        for _ in range(20):
            fh.write(healthy * 10_000)
            fh.write(CRASHY)
    start = time.perf_counter()
    found: list[Any] = logs_cmd.scan(str(log), list(CATALOGUE))
    elapsed = time.perf_counter() - start
    restarts = [f for f in found if f.code == "LG300"]
    assert restarts[0].evidence["count"] == 20
    assert elapsed < 5, elapsed


def test_restart_names_the_oom_killer_seen_in_the_same_log() -> None:
    f = one(f"""
[Thu Jan  2 10:11:11 2026] Memory cgroup out of memory: Killed process 48213 (python) total-vm:9123456kB, anon-rss:8123456kB
[W 2026-01-02 10:11:12.345 ServerApp] AsyncIOLoopKernelRestarter: restarting kernel (1/5), keep random ports
[W 2026-01-02 10:11:12.350 ServerApp] kernel {KID} restarted
""", "LG300")
    assert f.evidence["oom_killer_lines"] == [1]
    assert "the OOM killer killed a process in this log (line 1)" in f.message


def test_since_on_logs_without_dates_and_a_bad_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "notebook.log"
    log.write_text(f"""[W 09:00:00.001 NotebookApp] KernelRestarter: restarting kernel (1/5), keep random ports
[W 09:00:00.302 NotebookApp] kernel {KID} restarted
[E 11:00:00.000 NotebookApp] Uncaught exception GET /api/contents/a.ipynb
    Traceback (most recent call last):
    FileNotFoundError: [Errno 2] No such file or directory: 'a.ipynb'
[W 11:00:01.000 NotebookApp] Timeout waiting for kernel_info reply from {KID}
""")
    code, out, _ = cli(str(log), "--since", "10:00", "--format", "json", capsys=capsys)
    assert code == 0 and [f["code"] for f in json.loads(out)["findings"]] == ["LG307"]
    code, _, err = cli(str(log), "--since", "yesterday-ish", capsys=capsys)
    assert code == 2 and "--since" in err and err.count("\n") == 1
