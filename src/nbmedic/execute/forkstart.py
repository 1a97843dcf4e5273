"""Fresh kernels without the start-up bill: IPython kernels forked from a warm template process.

A template (``template_main.py``) is a Python process of the kernel's own interpreter, started with the
kernel's environment, that has already imported what an IPython kernel imports while it starts (and the
modules named in ``NBMEDIC_FORK_PRELOAD``, e.g. ``numpy,pandas``).  For each kernel it forks a child that
becomes a fresh kernel: its own session and process group, the run's stdout/stderr files, no other
inherited file descriptor, the request's working directory, umask and environment, reseeded random
generators, ``sys.argv`` as the kernelspec gives it; then it runs ``ipykernel_launcher`` as ``python -m``
would, with the connection file jupyter_client wrote.  Nothing is reused between kernels: each is a new
process that never ran a cell before.

The kernel is the template's child, not nbmedic's: the template reaps it and sends its exit status back
(Popen's convention, -9 for SIGKILL), which ``ForkedProcess`` (a Popen look-alike) hands to jupyter_client
and to ``Kernel``.  Signals go to the kernel's process group exactly as on the normal path.

``ForkProvisioner`` is jupyter_client's ``LocalProvisioner`` with only ``launch_kernel`` replaced, so the
connection file, the environment (kernelspec ``env`` included), interrupts, shutdown and clean-up are
jupyter_client's own.  When a kernel cannot be forked (``fork_refusal``: another interpreter, not
ipykernel, odd flags, relative ``PYTHONPATH`` entries, no ``fork`` on this platform; or the template failed)
it launches the normal way, and says why through its ``note`` callback.

Templates are kept per process (a Dask worker has its own), one per (interpreter, flags, environment:
what an import may read; ``_VOLATILE`` lists the few variables that only describe the caller), started on
first use and shut down at exit, or when nbmedic's end of the socket closes.  Modules imported by the
template were imported under the same environment the kernel gets.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing.util
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from nbmedic.execute import scratch, template_main
from nbmedic.notebook.io import current_umask

__all__ = ["PRELOAD_ENV", "ForkUnavailable", "ForkedProcess", "fork_kernel", "fork_provisioner",
           "fork_refusal", "prestart", "shutdown_templates", "spec_refusal", "template_pids"]

PRELOAD_ENV = template_main.PRELOAD_ENV
KERNEL_MODULES = ("ipykernel_launcher", "ipykernel")
_READY_TIMEOUT = 60.0  # seconds for a template to import ipykernel and the preloads
_REPLY_TIMEOUT = 15.0  # seconds for a fork to be answered
_MAX_TEMPLATES = 2  # idle templates kept; more only while their kernels run
# variables that describe the caller (its shell, the test being run), read by no import: a change of them
# alone starts no new template (each kernel still gets them exactly)
_VOLATILE = frozenset({"JPY_PARENT_PID", "PYTEST_CURRENT_TEST", "PWD", "OLDPWD", "_", "SHLVL"})
_FLAGS_WITH_VALUE = ("-X", "-W", "--check-hash-based-pycs")
_BOOTSTRAP = (
    "import sys\n"
    "if not getattr(sys.flags, 'safe_path', False) and sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "import importlib.util as u\n"
    "s = u.spec_from_file_location('_nbmedic_template', {path!r})\n"
    "m = u.module_from_spec(s)\n"
    "s.loader.exec_module(m)\n"
    "del u, s\n"
    "raise SystemExit(m.main({fd}))\n"
)


class ForkUnavailable(Exception):
    """This kernel cannot be forked; the message says why (the normal start follows)."""


# --- may this kernel be forked? ----------------------------------------------------------------


def spec_refusal(spec: Any, language: str) -> str | None:
    """Why a kernelspec is not for forking (None: it may be): not Python, or its own provisioner."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return f"kernels are forked on Linux only (this is {sys.platform})"
    if language.lower() != "python":
        return f"the kernel's language is {language or 'not given'}, not Python"
    metadata = getattr(spec, "metadata", None) or {}
    chosen = metadata.get("kernel_provisioner") if isinstance(metadata, Mapping) else None
    if isinstance(chosen, Mapping) and chosen.get("provisioner_name") not in (None, "local-provisioner"):
        return f"the kernelspec uses its own provisioner ({chosen.get('provisioner_name')})"
    return None


def _same_interpreter(program: str, env: Mapping[str, str]) -> bool:
    """Is ``program`` this very interpreter: the same file in the same folder (a venv's python links to
    its base interpreter, so the folder tells two environments apart)?"""
    found = program if os.sep in program else shutil.which(program, path=env.get("PATH", os.defpath))
    if not found:
        return False
    mine = os.path.abspath(sys.executable)
    found = os.path.abspath(found)
    if os.path.dirname(found) != os.path.dirname(mine):
        return False
    try:
        return os.path.samefile(found, mine)
    except OSError:
        return False


def _split_command(argv: Sequence[str]) -> tuple[list[str], str, list[str]] | str:
    """``python FLAGS -m MODULE ARGS`` → (FLAGS, MODULE, ARGS), or why the command is not of that form."""
    flags: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            if i + 1 >= len(argv) or argv[i + 1] not in KERNEL_MODULES:
                return "the kernel is not started with -m ipykernel_launcher"
            return flags, argv[i + 1], list(argv[i + 2:])
        if not arg.startswith("-") or arg in ("-", "-c") or arg.startswith("--") and arg not in _FLAGS_WITH_VALUE:
            return f"the kernel's command has {arg!r} before -m"
        flags.append(arg)
        if arg in _FLAGS_WITH_VALUE:
            if i + 1 >= len(argv):
                return f"{arg} without a value"
            flags.append(argv[i + 1])
            i += 1
        i += 1
    return "the kernel is not started with -m ipykernel_launcher"


def fork_refusal(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """Why the command ``argv`` with ``env`` cannot be forked from this interpreter's template (None: it can)."""
    if not argv:
        return "no kernel command"
    if not _same_interpreter(argv[0], env):
        return f"the kernel runs another Python ({argv[0]}), not this one ({sys.executable})"
    split = _split_command(argv)
    if isinstance(split, str):
        return split
    relative = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and not os.path.isabs(p)]
    if relative:
        return f"PYTHONPATH has relative entries ({', '.join(relative)}), which depend on the working directory"
    return None


# --- the template -----------------------------------------------------------------------------


def _fileno(stream: Any) -> int | None:
    if isinstance(stream, int):
        return stream if stream >= 0 else None
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return None
    try:
        return int(fileno())
    except (OSError, ValueError):
        return None


class ForkedProcess:
    """A forked kernel as ``subprocess.Popen`` shows a process: ``pid``, ``poll``, ``wait``, signals."""

    stdin: IO[bytes] | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None

    def __init__(self, template: _Template, pid: int, args: Sequence[str]) -> None:
        self._template = template
        self.template_pid = template.pid
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    @property
    def preload_failures(self) -> dict[str, str]:
        """Modules the template could not import (the kernel imports them itself, if it can)."""
        return dict((self._template.ready or {}).get("failed") or {})

    def poll(self) -> int | None:
        if self.returncode is None:
            self._template.pump(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            self._template.pump(left)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class _Template:
    """One template process and the socket to it (thread-safe)."""

    def __init__(self, program: str, flags: Sequence[str], env: Mapping[str, str], cmdline_bytes: int) -> None:
        self.tmpdir = scratch.make("template")
        self.log_path = os.path.join(self.tmpdir, "template.log")
        self.lock = threading.Lock()
        self.kernels: dict[int, ForkedProcess] = {}  # running kernels by pid
        self.replies: dict[int, dict[str, Any]] = {}  # answers to fork requests by request id
        self.pending: dict[int, list[str]] = {}  # the command of each request not answered yet
        self.ready: dict[str, Any] | None = None
        self.broken: str | None = None
        self.pid: int | None = None
        self._next_id = 0
        self.last_used = time.monotonic()
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            code = _BOOTSTRAP.format(path=template_main.__file__, fd=theirs.fileno())
            with open(self.log_path, "ab") as log:
                self.popen = subprocess.Popen(
                    _padded([program, *flags, "-c", code], cmdline_bytes), env=dict(env), cwd="/", stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=log, pass_fds=[theirs.fileno()], start_new_session=True)
        except OSError:
            self.sock.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.pid = self.popen.pid

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ready is None:
            if self.broken:
                raise ForkUnavailable(self.broken)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ForkUnavailable(f"the template was not ready within {timeout:g} s")
            self.pump(min(left, 0.1))
        failed = self.ready.get("failed") or {}
        if "ipykernel.kernelapp" in failed:  # the normal start says so in the user's terms
            raise ForkUnavailable(f"the template cannot import ipykernel: {failed['ipykernel.kernelapp']}")
        threads = int(self.ready.get("threads", 1))
        if threads != 1:
            raise ForkUnavailable(f"the template has {threads} threads after its imports, so it cannot fork safely")

    def log_tail(self, limit: int = 1500) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - limit))
                return fh.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def pump(self, timeout: float) -> None:
        """Take what the template sent (waiting up to ``timeout`` seconds for something)."""
        if self.broken:
            time.sleep(min(timeout, 0.05))  # nothing more will come: no busy wait for a caller that loops
            return
        if timeout > 0:
            with contextlib.suppress(OSError, ValueError):
                select.select([self.sock], [], [], timeout)
        with self.lock:
            while not self.broken:
                try:
                    data = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    data = b""
                    self._lost(f"the template's socket failed: {exc}")
                if not data:
                    self._lost("the template exited")
                    return
                self._dispatch(json.loads(data))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "exit" in message:
            kernel = self.kernels.pop(int(message["exit"]), None)
            if kernel is not None:
                kernel.returncode = int(message["code"])
        elif message.get("ready"):
            self.ready = message
        elif "id" in message:
            ident = int(message["id"])
            argv = self.pending.pop(ident, [])
            if "pid" in message:  # registered now, so an exit that follows at once is not missed
                pid = int(message["pid"])
                message["process"] = self.kernels[pid] = ForkedProcess(self, pid, argv)
            self.replies[ident] = message

    def _lost(self, why: str) -> None:
        """The template is gone: its kernels die with it (SIGKILL to their groups, in case they linger)."""
        tail = self.log_tail()
        self.broken = why + (f": {tail}" if tail else "")
        for pid, kernel in list(self.kernels.items()):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            kernel.returncode = -int(signal.SIGKILL)
        self.kernels.clear()

    def fork(self, argv: Sequence[str], module: str, args: Sequence[str], env: Mapping[str, str], cwd: str,
             streams: tuple[int, int]) -> ForkedProcess:
        """A new kernel: ``python -m module args`` in ``cwd`` with ``env``, stdout/stderr to ``streams``."""
        with self.lock:
            self._next_id += 1
            ident = self._next_id
            self.pending[ident] = list(argv)
        umask = current_umask()
        request = {"op": "fork", "id": ident, "argv": list(argv), "module": module, "args": list(args),
                   "env": {**env, "JPY_PARENT_PID": str(self.pid)}, "cwd": cwd, "umask": umask}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], list(streams))
        except OSError as exc:
            raise ForkUnavailable(f"the request could not be sent to the template: {exc}") from None
        deadline = time.monotonic() + _REPLY_TIMEOUT
        while True:
            with self.lock:
                reply = self.replies.pop(ident, None)
            if reply is not None and isinstance(reply.get("process"), ForkedProcess):
                self.last_used = time.monotonic()
                return reply["process"]  # type: ignore[no-any-return]
            if reply is not None:
                raise ForkUnavailable(f"the template could not start the kernel: {reply.get('error')}")
            if self.broken:
                raise ForkUnavailable(self.broken)
            if time.monotonic() > deadline:
                raise ForkUnavailable(f"the template did not answer within {_REPLY_TIMEOUT:g} s")
            self.pump(0.05)

    def close(self) -> None:
        """End of file for the template: it kills what is left of its kernels and exits."""
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.popen.wait(5.0)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5.0)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


_TEMPLATES: dict[tuple[Any, ...], _Template] = {}
_FAILED: dict[tuple[Any, ...], str] = {}
_REGISTRY = threading.Lock()
_AT_EXIT = False


def _cmdline_bytes(argv: Sequence[str]) -> int:
    return sum(len(os.fsencode(arg)) + 1 for arg in argv)


def _padded(argv: list[str], size: int) -> list[str]:
    """``argv`` and a padding argument that make its ``/proc/<pid>/cmdline`` ``size`` bytes long (when it
    is shorter), so that a forked kernel can write its own command line there."""
    missing = size - _cmdline_bytes(argv) - 1
    return [*argv, "#" * missing] if missing >= 0 else argv


def _template_key(program: str, flags: Sequence[str], env: Mapping[str, str],
                  argv: Sequence[str]) -> tuple[Any, ...]:
    return (program, tuple(flags), _cmdline_bytes(argv),
            tuple(sorted((k, v) for k, v in env.items() if k not in _VOLATILE)))


def _started(key: tuple[Any, ...], program: str, flags: Sequence[str], env: Mapping[str, str]) -> _Template:
    """The running (maybe not yet ready) template for ``key``, started now if there is none (the caller
    holds ``_REGISTRY``); ForkUnavailable when it cannot start."""
    global _AT_EXIT
    if key in _FAILED:
        raise ForkUnavailable(_FAILED[key])
    template = _TEMPLATES.get(key)
    if template is not None and template.broken is None and template.popen.poll() is None:
        return template
    if template is not None:
        _TEMPLATES.pop(key)
        template.close()
    _retire_idle()
    if not _AT_EXIT:
        atexit.register(shutdown_templates)
        # a process pool's worker ends without atexit, but runs multiprocessing's finalizers
        multiprocessing.util.Finalize(None, shutdown_templates, exitpriority=10)
        _AT_EXIT = True
    try:
        template = _Template(program, flags, env, key[2])
    except OSError as exc:
        _FAILED[key] = f"the template could not be started: {exc}"
        raise ForkUnavailable(_FAILED[key]) from None
    _TEMPLATES[key] = template
    return template


def _template_for(program: str, flags: Sequence[str], env: Mapping[str, str], argv: Sequence[str]) -> _Template:
    """The ready template for this interpreter, flags and environment (started on first use), its command
    line as long as ``argv``'s (the same for every kernel of one kernelspec and temporary folder)."""
    key = _template_key(program, flags, env, argv)
    with _REGISTRY:
        template = _started(key, program, flags, env)
        if template.ready is not None:
            return template
        try:
            template.wait_ready(_READY_TIMEOUT)
        except ForkUnavailable as exc:
            _FAILED[key] = f"{exc}; {template.log_tail()}".rstrip("; ")
            _TEMPLATES.pop(key, None)
            template.close()
            raise ForkUnavailable(_FAILED[key]) from None
        return template


def prestart(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Start the template a kernel launched as ``argv`` with ``env`` will fork from, without waiting for it,
    so that it imports ipykernel while the caller still imports and reads (a command's first kernel then
    waits less).  Nothing else changes: the kernel is still forked only when it asks, from the template
    whose key its own launch gives; a template started for nothing is an idle one, retired as any other.
    Whether a template was started (or was already running)."""
    argv = [os.path.expanduser(arg) for arg in argv]
    if fork_refusal(argv, env):
        return False
    split = _split_command(argv)
    assert not isinstance(split, str)
    with _REGISTRY:
        try:
            _started(_template_key(argv[0], split[0], env, argv), argv[0], split[0], env)
        except ForkUnavailable:
            return False
    return True


def _retire_idle() -> None:
    """Close the least recently used templates without running kernels, keeping fewer than the maximum."""
    idle = sorted((t.last_used, key) for key, t in _TEMPLATES.items() if not t.kernels)
    while len(_TEMPLATES) >= _MAX_TEMPLATES and idle:
        _last, key = idle.pop(0)
        _TEMPLATES.pop(key).close()


def shutdown_templates() -> None:
    """Close every template of this process (at exit; their kernels, if any are left, are killed)."""
    with _REGISTRY:
        templates = list(_TEMPLATES.values())
        _TEMPLATES.clear()
        _FAILED.clear()
    for template in templates:
        template.close()


def template_pids() -> list[int]:
    """The process ids of this process's running templates."""
    with _REGISTRY:
        return [t.popen.pid for t in _TEMPLATES.values() if t.popen.poll() is None]


def fork_kernel(cmd: Sequence[str], *, env: Mapping[str, str], cwd: str | None, stdout: Any,
                stderr: Any) -> ForkedProcess:
    """Fork the kernel ``cmd`` (as jupyter_client would launch it) from a template; ForkUnavailable if not."""
    argv = [os.path.expanduser(arg) for arg in cmd]
    refusal = fork_refusal(argv, env)
    if refusal:
        raise ForkUnavailable(refusal)
    split = _split_command(argv)
    assert not isinstance(split, str)
    flags, module, args = split
    streams = (_fileno(stdout), _fileno(stderr))
    if streams[0] is None or streams[1] is None:
        raise ForkUnavailable("the kernel's stdout and stderr are not files")
    template = _template_for(argv[0], flags, env, argv)
    return template.fork(argv, module, args, env, os.path.abspath(cwd or os.getcwd()),
                         (streams[0], streams[1]))


# --- jupyter_client's side ----------------------------------------------------------------------


def fork_provisioner(km: Any, note: Callable[[str], None]) -> Any:
    """A LocalProvisioner for ``km`` that forks its kernel (or, saying why through ``note``, launches it)."""
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):
        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            try:
                process = fork_kernel(cmd, env=kwargs.get("env") or os.environ, cwd=kwargs.get("cwd"),
                                      stdout=kwargs.get("stdout"), stderr=kwargs.get("stderr"))
            except ForkUnavailable as exc:
                note(str(exc))
                return await super().launch_kernel(cmd, **kwargs)
            self.process = process  # type: ignore[assignment] # a Popen look-alike
            self.pid = process.pid
            try:
                self.pgid = os.getpgid(process.pid)
            except OSError:
                self.pgid = None
            self.cwd = kwargs.get("cwd") or os.getcwd()
            return self.connection_info

    return ForkProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
