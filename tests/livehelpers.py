"""Helpers for tests of live (monitored) kernels: kernelspecs, a real `jupyter server`, its websocket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_kernelspec(data_dir: Path, name: str, *, provisioner: dict[str, Any] | None = None,
                     argv: list[str] | None = None, language: str = "python") -> Path:
    """A kernelspec in ``data_dir/kernels/name`` running this interpreter's ipykernel."""
    folder = data_dir / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "argv": argv or [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Test {name}", "language": language, "metadata": {},
    }
    if provisioner is not None:
        spec["metadata"]["kernel_provisioner"] = {"provisioner_name": "nbmedic-provisioner",
                                                  "config": provisioner}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return folder


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def incidents(data_dir: Path) -> list[dict[str, Any]]:
    folder = data_dir / "nbmedic" / "incidents"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue  # being written
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterServer:
    """A real `jupyter server` on 127.0.0.1 with a token, in its own root folder."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={self.port}",
             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--ServerApp.disable_check_xsrf=True",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=root, env=dict(os.environ))
        try:
            wait_for(self._up, 60, "the jupyter server to answer", interval=0.2)
        except BaseException:
            self.stop()
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("jupyter server exited:\n" + self.log_path.read_text(errors="replace")[-3000:])
        try:
            self.request("GET", "/api/status")
        except OSError:
            return False
        return True

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


class KernelSocket:
    """The kernel's websocket (jupyter_server's JSON protocol): execute and collect a cell's messages."""

    def __init__(self, server: JupyterServer, kernel_id: str) -> None:
        import websocket  # websocket-client, a dependency of jupyter_server

        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {server.token}"], timeout=30)

    def send_execute(self, code: str, cell_id: str | None = None) -> str:
        msg_id = uuid.uuid4().hex
        msg = {
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "test", "date": "2026-11-30T00:00:00Z", "version": "5.3"},
            "parent_header": {}, "metadata": {"cellId": cell_id} if cell_id else {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
            "buffers": [],
        }
        self.ws.send(json.dumps(msg))
        return msg_id

    def execute(self, code: str, cell_id: str | None = None, timeout: float = 60) -> list[dict[str, Any]]:
        """The iopub messages of this request, up to its execute_reply (appended last)."""
        msg_id = self.send_execute(code, cell_id)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        idle = False
        reply: dict[str, Any] | None = None
        while not (idle and reply):
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply to {code!r}; got {out}")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_reply":
                reply = msg  # the shell channel's reply may come before the last iopub messages
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            else:
                out.append(msg)
        return [*out, reply]

    def close(self) -> None:
        self.ws.close()


def streams(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["content"]["name"], m["content"]["text"]) for m in messages if m["header"]["msg_type"] == "stream"]
