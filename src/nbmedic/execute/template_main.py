"""The warm template process of forked kernels (standard library only: it runs under the kernel's Python).

``nbmedic.execute.forkstart`` starts it as ``python [the kernelspec's flags] -c BOOTSTRAP`` with the
kernel's environment; BOOTSTRAP loads this file by path (nbmedic itself is not imported) and calls
``main(FD)``, FD being one end of an ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair.  The template imports what
an IPython kernel imports while it starts (and the modules named in ``NBMEDIC_FORK_PRELOAD``), says it is
ready, then serves requests, one JSON object per packet:

* ``{"op": "fork", "id", "module", "args", "argv", "env", "cwd", "umask"}`` with the kernel's stdout and
  stderr file descriptors attached (``SCM_RIGHTS``): it forks a child that becomes a fresh kernel and
  answers ``{"id", "pid"}`` once the child has set itself up, or ``{"id", "error", "errno", "filename"}``;
* exits of its children, reaped as they happen: ``{"exit": pid, "code": returncode}`` with Popen's
  convention (``-9`` for SIGKILL);
* end of file on the socket (nbmedic closed it or died): its remaining kernels' process groups are
  killed and it exits.

The template never starts a thread and refuses to fork when it has more than one (``/proc/self/task``);
native thread pools of preloaded libraries that stop themselves at a fork (OpenBLAS) are let stop first.

A child, before it answers: its own session (``setsid``), stdin from ``/dev/null``, stdout/stderr to the
run's files, every other inherited file descriptor closed, the umask, working directory and environment of
the request, ``time.tzset()``, the random generators reseeded from ``os.urandom`` (``random`` and numpy's
global one when numpy was preloaded), ``sys.argv``/``sys.orig_argv``/``sys.path[0]`` as ``python -m MODULE
ARGS`` would set them, ``/proc/<pid>/cmdline`` the kernel's command, signal dispositions back to a fresh
interpreter's.  Then it runs ``MODULE`` as
``python -m`` does (``runpy.run_module(..., alter_sys=True)``) and exits as that interpreter would, except
for the interpreter's teardown (``_exit_quickly``).
"""

from __future__ import annotations

import _io
import atexit
import contextlib
import ctypes
import errno
import faulthandler
import gc
import importlib
import json
import os
import random
import runpy
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any, NoReturn

__all__ = ["KERNEL_IMPORTS", "PRELOAD_ENV", "main"]

PRELOAD_ENV = "NBMEDIC_FORK_PRELOAD"
# what ``python -m ipykernel_launcher`` imports before it answers kernel_info (measured: the modules of a
# fresh kernel that ``import ipykernel.kernelapp`` alone does not bring)
KERNEL_IMPORTS = (
    "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "ipykernel.comm",
    "IPython.core.debugger", "IPython.core.history", "IPython.core.completer", "sqlite3", "psutil", "pdb",
    "IPython.core.completerlib", "IPython.core.logger", "IPython.core.oinspect", "IPython.extensions.storemagic",
    "IPython.utils.wildcard", "tornado.platform.asyncio",
)
_MAX_PACKET = 1 << 22
_SAFE_PATH = bool(getattr(sys.flags, "safe_path", False))  # -P / PYTHONSAFEPATH: no sys.path[0] added


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    try:
        sock.send(json.dumps(message).encode())
    except OSError:
        pass  # nbmedic is gone: the next receive sees the end of file


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _preload() -> tuple[list[str], dict[str, str]]:
    """Import the kernel's start-up modules and the user's preloads; what was imported and what failed."""
    names = list(KERNEL_IMPORTS)
    names += [n.strip() for n in os.environ.get(PRELOAD_ENV, "").split(",") if n.strip()]
    done: list[str] = []
    failed: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a preload that fails only costs its speed-up
            failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            done.append(name)
    return done, failed


class _Template:
    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.sel.register(self.wake_r, selectors.EVENT_READ)

    def serve(self) -> dict[str, Any] | None:
        """Answer requests until the end of file (None); in a forked child, its request."""
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        while True:
            for key, _ in self.sel.select(timeout=1.0):
                if key.fileobj is self.wake_r:
                    self._drain_wakeups()
                    continue
                try:
                    data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_PACKET, 4)
                except OSError:
                    data, fds = b"", []
                if not data:
                    self._finish()
                    return None
                request = self._handle(json.loads(data), fds)
                if request is not None:
                    return request  # this is the child
            self._reap()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            _send(self.sock, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def _finish(self) -> None:
        """nbmedic is gone: its kernels go too (as a normal kernel's parent poller would see to)."""
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        while self.children and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.children.discard(pid)

    def _handle(self, request: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        try:
            if request.get("op") != "fork":
                _send(self.sock, {"id": request.get("id"), "error": f"unknown request {request.get('op')!r}"})
                return None
            threads = _threads()
            if threads != 1:
                _send(self.sock, {"id": request.get("id"), "error": f"the template has {threads} threads"})
                return None
            return self._fork(request, fds)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _fork(self, request: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        status_r, status_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            self._leave()
            try:
                _become(request, fds, status_w)
                fds.clear()  # now the kernel's stdout and stderr: not for _handle to close
            except BaseException as exc:  # noqa: BLE001 - reported to the template, then this child ends
                err = exc if isinstance(exc, OSError) else None
                report = {"error": f"{type(exc).__name__}: {exc}", "errno": err.errno if err else None,
                          "filename": str(err.filename) if err and err.filename is not None else None}
                os.write(status_w, json.dumps(report).encode())
                os._exit(127)
            os.close(status_w)
            return request
        os.close(status_w)
        self.children.add(pid)
        failure = _read_all(status_r)
        if failure:
            self._reap_one(pid)
            answer = json.loads(failure)
            answer["id"] = request.get("id")
            _send(self.sock, answer)
        else:
            _send(self.sock, {"id": request.get("id"), "pid": pid})
        return None

    def _reap_one(self, pid: int) -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.children.discard(pid)

    def _leave(self) -> None:
        """In a new child: let go of everything that is the template's."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.sel.close()
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _redirect(fds: list[int], keep: int) -> None:
    """stdin from /dev/null, stdout/stderr to the run's files; every other descriptor but ``keep`` closed."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    wanted = {0, 1, 2, keep}
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd not in wanted:
            try:
                os.close(fd)
            except OSError:
                pass


def _settle_threads() -> None:
    """Native thread pools started by a preload (OpenBLAS's, by numpy) stop themselves before a fork
    (``pthread_atfork``) and start again only when used: one throw-away fork lets them stop here.  Python
    threads do not stop, so the template then refuses to fork (``_handle``)."""
    if _threads() > 1 and threading.active_count() == 1:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def _reseed() -> None:
    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _set_cmdline(argv: list[str]) -> None:
    """``/proc/<pid>/cmdline`` (ps, top, py-spy, ``nbmedic ps``) shows the kernel's command, not the
    template's: the argument strings are rewritten in place, as setproctitle does.  nbmedic starts the
    template with a command line exactly as long as the kernel's (a padding argument), so it fits."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end, fields 48 and 49 of proc(5)
    except (OSError, ValueError, IndexError):
        return
    data = b"\0".join(os.fsencode(arg) for arg in argv) + b"\0"
    size = end - start
    if size <= 0:
        return
    data = data[: size - 1] + b"\0" if len(data) > size else data + b"\0" * (size - len(data))
    ctypes.memmove(start, data, size)


def _become(request: dict[str, Any], fds: list[int], status_w: int) -> None:
    """Turn this forked child into the requested process, short of running its module."""
    os.setsid()
    if len(fds) != 2:
        raise OSError(errno.EBADF, "the kernel's stdout and stderr did not arrive")
    _redirect(fds, status_w)
    os.umask(int(request["umask"]))
    env = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    time.tzset()
    tempfile.tempdir = None
    _reseed()
    sys.orig_argv = list(request["argv"])
    sys.argv = ["-m", *request["args"]]  # runpy puts the module's file in argv[0], as ``python -m`` does
    if not _SAFE_PATH:
        sys.path.insert(0, os.getcwd())
    _set_cmdline(request["argv"])
    if env.get("PYTHONFAULTHANDLER"):
        faulthandler.enable(all_threads=True)
    else:
        faulthandler.disable()
    sys.modules.pop("_nbmedic_template", None)


def main(fd: int) -> int:
    """The template's life; in a forked child, the kernel's (which ends in ``_exit_quickly``).  The
    template's exit status."""
    began = time.monotonic()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for nbmedic, not the template
    os.environ["JPY_PARENT_PID"] = str(os.getpid())  # the kernels' parent (ipykernel reads it at import)
    loaded, failed = _preload()
    _settle_threads()
    if os.environ.get("NBMEDIC_FORK_GC_FREEZE", "1") == "1":
        gc.collect()
        gc.freeze()
    template = _Template(fd)
    _send(template.sock, {"ready": True, "pid": os.getpid(), "threads": _threads(), "preloaded": loaded,
                          "failed": failed, "seconds": round(time.monotonic() - began, 3)})
    request = template.serve()
    if request is None:
        return 0
    _run_module(str(request["module"]))


def _run_module(module: str) -> NoReturn:
    """Run the kernel's module as ``python -m`` does, then end this process as the interpreter ends one,
    short of its teardown (``_exit_quickly``)."""
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        _exit_quickly(_exit_status(exc.code))
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        _exit_quickly(130, signal.SIGINT)
    except BaseException:  # noqa: BLE001 - reported as the interpreter reports an uncaught exception
        sys.excepthook(*sys.exc_info())
        _exit_quickly(1)
    _exit_quickly(0)


def _exit_status(code: object) -> int:
    """The exit status ``raise SystemExit(code)`` gives (a message is printed, as the interpreter does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _exit_quickly(status: int, signum: int | None = None) -> NoReturn:
    """What the interpreter does at exit, up to its teardown: wait for non-daemon threads, run the atexit
    functions (IPython's clears the user's namespace and closes its history), collect garbage, flush every
    open file; then ``os._exit``.  The teardown (clearing every module, deallocating the objects this
    fork shares with the template) would copy most of the template's memory pages, for nothing: measured,
    it was about 40 % of a forked kernel's own CPU time."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        with contextlib.suppress(Exception):
            shutdown()
    atexit._run_exitfuncs()
    gc.collect()
    for obj in gc.get_objects():  # the objects made since the fork (the template's are frozen)
        if isinstance(obj, _io._IOBase):  # every file object's C base: not io.IOBase, an ABC (6x slower)
            with contextlib.suppress(Exception):
                if not obj.closed:
                    obj.flush()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    if signum is not None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(status)
