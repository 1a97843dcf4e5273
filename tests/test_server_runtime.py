"""`nbmedic server`'s running servers and runtime folder (EN258-EN260): real `jupyter server` processes,
real dead pids, real folders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest

from nbmedic.envs.server import ServerContext, find_setup
from nbmedic.envs.server import runtime as runtime_probe
from nbmedic.envs.server.runtime import MIN_FREE, process_gone, server_files, space_problem
from nbmedic.units import format_bytes
from tests.livehelpers import wait_for

Cli = Callable[..., tuple[int, str, str]]
MINE = "EN258,EN259,EN260"


@pytest.fixture
def runtime(jupyter_home: dict[str, Path]) -> Path:
    folder = jupyter_home["runtime"]
    folder.chmod(0o700)  # as Jupyter creates it
    return folder


def _server(run_cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli("server", "--format", "json", "--select", MINE, *args)
    assert code in (0, 1), err
    return code, json.loads(out)


def _probe() -> list[dict[str, Any]]:
    """The runtime probe alone (the command runs every probe: the other ones take seconds)."""
    return [f.to_dict() for f in runtime_probe.findings(ServerContext(find_setup()))]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def _write_server_file(runtime: Path, pid: int, **info: Any) -> tuple[Path, Path]:
    record = {"base_url": "/", "hostname": "127.0.0.1", "password": False, "pid": pid, "port": 8888,
              "root_dir": "/", "secure": False, "sock": "", "token": "abc", "url": "http://127.0.0.1:8888/",
              "version": "2.0.0", **info}
    path = runtime / f"jpserver-{pid}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    html = runtime / f"jpserver-{pid}-open.html"
    html.write_text("<html></html>", encoding="utf-8")
    return path, html


@contextmanager
def _jupyter_server(runtime: Path, root: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real `jupyter server` (no extensions: JUPYTER_NO_CONFIG) on a free port; its runtime file."""
    env = {**os.environ, "JUPYTER_NO_CONFIG": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.port=0", f"--ServerApp.root_dir={root}",
         *(["--allow-root"] if os.geteuid() == 0 else []), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root)
    try:
        path = runtime / f"jpserver-{proc.pid}.json"

        def written() -> bool:
            assert proc.poll() is None, "jupyter server exited"
            return path.is_file() and path.stat().st_size > 0

        wait_for(written, 60, "the server's runtime file", interval=0.1)
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(15)


def test_a_stale_server_file_is_reported_and_fix_removes_it(runtime: Path, run_cli: Cli) -> None:
    pid = _dead_pid()
    path, html = _write_server_file(runtime, pid)
    code, doc = _server(run_cli)
    assert code == 0  # a warning
    [found] = doc["findings"]
    assert found["code"] == "EN258" and found["severity"] == "warning"
    assert found["evidence"] == {"runtime_file": str(path), "pid": pid, "url": "http://127.0.0.1:8888/"}
    assert f"process {pid} is gone" in found["message"]
    assert path.exists() and html.exists(), "without --fix nothing changes"

    code, out, err = run_cli("server", "--fix", "--select", MINE)
    assert code == 0, err
    assert "EN258" in out and "removed" in out
    assert f"fixed: removed the stale server files of pid {pid}" in err
    assert not path.exists() and not html.exists()
    assert _probe() == []


def test_a_reused_pid_is_stale_but_a_living_python_is_not(runtime: Path, run_cli: Cli) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        other, _ = _write_server_file(runtime, sleeper.pid)  # a process that is not Python nor Jupyter
        later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            wait_for(lambda: time.time() - _create_time(later.pid) > 0.05, 10, "the process to age")
            reused, _ = _write_server_file(runtime, later.pid)
            hour_ago = time.time() - 3600  # the file was written long before this process started
            os.utime(reused, (hour_ago, hour_ago))
            os.utime(runtime / f"jpserver-{later.pid}-open.html", (hour_ago, hour_ago))
            alive, _ = _write_server_file(runtime, os.getpid())  # this Python, started before its file
            found = {f["evidence"]["pid"]: f for f in _probe()}
        finally:
            later.kill()
            later.wait(10)
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert set(found) == {sleeper.pid, later.pid}, found
    assert "not a Python or Jupyter process" in found[sleeper.pid]["message"]
    assert found[sleeper.pid]["evidence"]["runtime_file"] == str(other)
    assert "started after the file was written" in found[later.pid]["message"]
    assert process_gone(os.getpid(), alive.stat().st_mtime) is None
    assert [s.pid for s in server_files(str(runtime))] == sorted([sleeper.pid, later.pid, os.getpid()])


def _create_time(pid: int) -> float:
    return float(psutil.Process(pid).create_time())


def test_real_servers_local_with_token_and_exposed_without(runtime: Path, tmp_path: Path, run_cli: Cli) -> None:
    with _jupyter_server(runtime, tmp_path, "--ServerApp.ip=127.0.0.1") as (local, local_file), \
            _jupyter_server(runtime, tmp_path, "--ip=0.0.0.0", "--IdentityProvider.token=") as (open_, open_file):
        info = json.loads(open_file.read_text(encoding="utf-8"))
        assert info["hostname"] == "0.0.0.0" and info["token"] == "" and info["password"] is False
        code, doc = _server(run_cli)
        local_info = json.loads(local_file.read_text(encoding="utf-8"))
    assert code == 1
    [found] = doc["findings"]
    assert found["code"] == "EN259" and found["severity"] == "error"
    assert found["path"] == str(open_file)
    assert found["evidence"] == {"url": info["url"], "ip": "0.0.0.0", "port": info["port"], "pid": open_.pid,
                                 "runtime_file": str(open_file)}
    assert "neither a token nor a password listens on 0.0.0.0 (every interface)" in found["message"]
    assert local_info["token"] and local_info["hostname"] == "127.0.0.1" and local.pid == local_info["pid"]


def test_a_server_killed_hard_leaves_stale_files(runtime: Path, tmp_path: Path, run_cli: Cli) -> None:
    with _jupyter_server(runtime, tmp_path, "--ServerApp.ip=127.0.0.1") as (proc, path):
        proc.send_signal(signal.SIGKILL)
        proc.wait(15)
        found = _probe()
    assert [(f["code"], f["evidence"]["pid"]) for f in found] == [("EN258", proc.pid)]
    assert found[0]["evidence"]["url"].endswith(f":{json.loads(path.read_text())['port']}/")
    code, doc = _server(run_cli, "--fix")
    assert code == 0 and doc["server"]["fixed"] and not list(runtime.glob("jpserver-*"))


def test_an_open_runtime_folder_is_reported_and_made_private_when_allowed(runtime: Path, run_cli: Cli) -> None:
    runtime.chmod(0o777)
    code, doc = _server(run_cli)
    [found] = doc["findings"]
    assert found["code"] == "EN260" and found["path"] == str(runtime)
    assert found["evidence"]["mode"] == "0777" and found["evidence"]["runtime_dir"] == str(runtime)
    assert found["evidence"]["problem"].startswith("is readable or writable by group or others")
    assert isinstance(found["evidence"]["free"], int) and found["evidence"]["free"] > 0

    code, out, err = run_cli("server", "--fix", "--select", MINE)  # stdin is not a terminal: asks nobody
    assert "skipped (not a terminal; --yes to allow)" in err
    assert runtime.stat().st_mode & 0o777 == 0o777
    code, out, err = run_cli("server", "--fix", "--yes", "--select", MINE, "--format", "json")
    assert code == 0 and json.loads(out)["findings"][0]["message"].endswith("; made private")
    assert f"fixed: made the runtime folder {runtime} private (chmod 700)" in err
    assert runtime.stat().st_mode & 0o777 == 0o700
    assert _probe() == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_runtime_folder_this_user_cannot_write(runtime: Path, run_cli: Cli) -> None:
    runtime.chmod(0o500)
    try:
        [found] = _probe()
    finally:
        runtime.chmod(0o700)
    assert found["code"] == "EN260" and found["evidence"]["problem"].startswith("is not writable by this user")


def test_free_space_thresholds() -> None:
    gib = 1 << 30
    assert space_problem(50 * gib, 100 * gib) is None
    assert space_problem(MIN_FREE - 1, 100 * gib) == "is almost full: " + _fmt(MIN_FREE - 1, 100 * gib)
    assert space_problem(2 * gib, 400 * gib) is not None, "under 1 % of the filesystem"
    assert space_problem(5 * gib, 400 * gib) is None
    assert space_problem(50 * gib, 100 * gib, inodes_free=0) == "has no free inodes: no file can be created"


def _fmt(free: int, total: int) -> str:
    return f"{format_bytes(free)} free of {format_bytes(total)} ({free / total:.1%})"


def test_a_healthy_runtime_folder_and_a_missing_one_give_nothing(runtime: Path, run_cli: Cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert _server(run_cli)[1]["findings"] == []
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime / "not-yet"))  # Jupyter creates it when needed
    assert find_setup().runtime_dir == str(runtime / "not-yet")
    assert _probe() == []


@pytest.mark.parametrize(("bind", "reported"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_a_host_name_is_checked_against_the_sockets_the_server_listens_on(
        runtime: Path, run_cli: Cli, bind: str, reported: bool) -> None:
    with socket.socket() as sock:  # this (Python) process stands for the server: its listening socket is real
        sock.bind((bind, 0))
        sock.listen()
        port = sock.getsockname()[1]
        path, _ = _write_server_file(runtime, os.getpid(), hostname="build-box", port=port, token="",
                                     url=f"http://build-box:{port}/")
        found_all = _probe()
    if reported:
        [found] = found_all
        assert found["code"] == "EN259" and found["severity"] == "error"
        assert found["evidence"]["ip"] == "0.0.0.0" and found["evidence"]["port"] == port
        assert found["evidence"]["runtime_file"] == str(path)
    else:
        assert found_all == []


def test_yes_without_fix_is_a_usage_error(run_cli: Cli) -> None:
    code, _, err = run_cli("server", "--yes")
    assert code == 2 and "--yes only makes sense with --fix" in err
