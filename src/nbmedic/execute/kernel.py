"""One fresh kernel for one run: launch, talk to it over ZMQ, watch its process, shut it down cleanly.

* ``jupyter_client``'s ``AsyncKernelManager`` driven by a private event loop (closed afterwards, so
  runs in threads leak no loops) and a ``BlockingKernelClient`` on a private ZMQ context (destroyed
  afterwards: no leaked sockets);
* ``ipc`` transport on Linux: no TCP port race when many kernels start at once (jupyter_client#487);
  the connection file and the ipc socket files live in a private temporary folder removed afterwards;
* the kernel's stdout and stderr go to a file (its tail is evidence when it dies);
* Python kernels get faulthandler writing to a file of ours: all threads' stacks on ``SIGUSR1``
  (a stuck cell) and on a fatal signal (a native crash).  ipykernel forwards file descriptor 2 to the
  notebook through a pipe, so a dump written to stderr would both pollute the cell's output and be
  lost when the process dies; a separate file avoids both.  The user namespace stays clean;
* the kernel's return code (-9 SIGKILL, -11 SIGSEGV, 3 for ``os._exit(3)``) is kept before
  jupyter_client's clean-up forgets it;
* with ``fork=True`` an IPython kernel of this interpreter is forked from a warm template process
  (``forkstart.py``) instead of being launched: jupyter_client still writes the connection file and
  drives interrupts and shutdown, only the launch differs (``start_path`` says which was used, and
  ``fork_note`` why a fork was not possible).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import stat
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Mapping
from typing import IO, Any, TypeVar

from nbmedic.execute import scratch
from nbmedic.execute.forkstart import ForkedProcess, fork_provisioner, spec_refusal
from nbmedic.execute.startup import KernelStartError, StartFacts, StartFailure
from nbmedic.kernelspecs import installed_kernels, is_rewritten_python, read_kernelspecs

__all__ = ["DebugLog", "Kernel", "KernelStartError", "is_ipykernel", "launch_prediction"]


T = TypeVar("T")
_UNIX_PATH_MAX = 107  # bytes of a Unix socket's path (sun_path holds 108 with the final NUL)

_CHANNELS = ("shell", "iopub", "stdin")


class DebugLog:
    """``--debug FILE``: every message sent and received, one JSON object per line."""

    def __init__(self, path: str) -> None:
        # private from its first byte: it holds every message, the code of every cell
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)  # an older file of that name keeps its mode otherwise
        self._fh: IO[str] = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def log(self, channel: str, direction: str, msg: Mapping[str, Any]) -> None:
        header = msg.get("header") or {}
        record = {
            "t": round(time.monotonic() - self._t0, 6),
            "channel": channel,
            "direction": direction,
            "msg_type": header.get("msg_type", msg.get("msg_type")),
            "msg_id": header.get("msg_id"),
            "parent_msg_id": (msg.get("parent_header") or {}).get("msg_id"),
            "date": str(header.get("date")) if header.get("date") is not None else None,
            "content": msg.get("content"),
        }
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")
                self._fh.flush()

    def event(self, what: str, **facts: Any) -> None:
        """Something nbmedic did to the kernel (a signal, a kill): logged as channel ``nbmedic``."""
        self.log("nbmedic", "note", {"header": {"msg_type": what}, "content": facts})

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def faulthandler_lines(path: str) -> list[str]:
    """IPython ``exec_lines`` that send crash dumps and SIGUSR1 dumps of every thread to ``path``."""
    quoted = repr(path)
    return [
        f"__import__('faulthandler').enable(file=open({quoted}, 'a'), all_threads=True)",
        (f"__import__('faulthandler').register(__import__('signal').SIGUSR1, file=open({quoted}, 'a'), "
         "all_threads=True)"),
    ]


def _ipykernel_settings(tmpdir: str) -> tuple[dict[str, str], list[str]]:
    """What an IPython kernel gets on top of its kernelspec: the environment variables and the extra
    arguments that send its crash dumps and SIGUSR1 stacks to ``tmpdir``'s faulthandler.log."""
    env = {"PYTHONFAULTHANDLER": "1"}  # crashes during start-up, before exec_lines run
    lines = faulthandler_lines(os.path.join(tmpdir, "faulthandler.log"))
    return env, ["--IPKernelApp.exec_lines=" + json.dumps(lines)]


def launch_prediction(kernel_name: str) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment ``Kernel.start`` will give ``kernel_name``'s kernel, when its
    kernelspec is a plain IPython one (no env, no provisioner, no unknown placeholder), with a stand-in
    temporary folder as long as the real one (fork templates are keyed by that length); None otherwise.
    Read from the kernelspec files, without jupyter_client, so a caller can start the kernel's fork
    template (``forkstart.prestart``) while it still imports."""
    try:
        spec = read_kernelspecs().specs.get(kernel_name.lower())
    except Exception:  # noqa: BLE001 - a guess: a broken installation shows when the kernel starts
        return None
    if spec is None or spec.error or spec.env or not is_ipykernel(list(spec.argv), spec.language) \
            or spec_refusal(spec, spec.language):
        return None
    tmpdir = scratch.stand_in("kernel")
    names = {"connection_file": os.path.join(tmpdir, "kernel.json"), "resource_dir": spec.resource_dir,
             "prefix": sys.prefix}
    try:
        argv = [arg.format(**names) for arg in spec.argv]
    except (KeyError, IndexError, ValueError):
        return None
    if argv and is_rewritten_python(argv[0]):
        argv[0] = sys.executable
    extra_env, extra = _ipykernel_settings(tmpdir)
    return [*argv, *extra], {**os.environ, **extra_env}


def _installed_kernels() -> dict[str, str]:
    """The kernels Jupyter can see (the one kernelspec model), for the message of a missing one."""
    try:
        return installed_kernels()
    except Exception:  # noqa: BLE001 - a broken kernelspec folder must not hide the real problem
        return {}


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def is_ipykernel(argv: list[str], language: str) -> bool:
    joined = " ".join(argv)
    return language.lower() == "python" and ("ipykernel" in joined)


class Kernel:
    """A kernel process and a client connected to it.  Use ``start()`` then ``close()`` (always)."""

    def __init__(self, kernel_name: str, *, cwd: str, path: str | None = None,
                 debug: DebugLog | None = None, extra_env: Mapping[str, str] | None = None,
                 fork: bool = False) -> None:
        self.kernel_name = kernel_name
        self.fork = fork  # fork an IPython kernel of this interpreter from a warm template when possible
        self.start_path = "normal"  # "fork" once a forked kernel started
        self.fork_note: str | None = None  # why the kernel was not forked (when fork was asked for)
        self.cwd = cwd
        self.path = path  # the notebook, for findings
        self.debug = debug
        self.extra_env = dict(extra_env or {})
        self.tmpdir = scratch.make("kernel")
        self.stderr_path = os.path.join(self.tmpdir, "kernel.log")
        self.faulthandler_path: str | None = None
        self.argv: list[str] = []
        self.language = ""
        self.pid: int | None = None
        self.pgid: int | None = None
        self._returncode: int | None = None
        self._loop = asyncio.new_event_loop()
        self._km: Any = None
        self._kc: Any = None
        self._ctx: Any = None
        self._poller: Any = None
        self._sockets: dict[Any, str] = {}
        self._process: Any = None
        self._closed = False
        self.killed_by_us = False
        self.info: dict[str, Any] | None = None  # the kernel_info reply's content
        self._startup_timeout: float | None = None
        self._launched_at: float | None = None  # time.monotonic() when the launch began

    # --- start-up ---------------------------------------------------------------------------

    def _run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        if timeout is not None:
            return self._loop.run_until_complete(asyncio.wait_for(coro, timeout))
        return self._loop.run_until_complete(asyncio.ensure_future(coro, loop=self._loop))

    def _failed(self, failure: StartFailure, **facts: Any) -> KernelStartError:
        """The exception for a failed start, with every fact known now."""
        elapsed = time.monotonic() - self._launched_at if self._launched_at is not None else None
        return KernelStartError(StartFacts(
            kernel=self.kernel_name, failure=failure, path=self.path, argv=tuple(self.argv),
            startup_timeout=self._startup_timeout, elapsed=elapsed, pid=self.pid, stderr_tail=self.stderr_tail(),
            **facts))

    def start(self, startup_timeout: float) -> None:
        """Launch the kernel and wait for its ``kernel_info`` reply; KernelStartError (the facts) on failure."""
        from jupyter_client.manager import AsyncKernelManager

        self._startup_timeout = startup_timeout
        km = self._km = AsyncKernelManager(kernel_name=self.kernel_name)
        if sys.platform.startswith("linux") and len(os.fsencode(self.tmpdir)) + len("/kernel-9") <= _UNIX_PATH_MAX:
            km.transport = "ipc"  # Unix sockets in the private folder: no port another user can reach
            km.ip = os.path.join(self.tmpdir, "kernel")
        else:  # a temporary folder too deep for a socket's name: TCP on the loopback interface
            km.ip = "127.0.0.1"
        km.connection_file = os.path.join(self.tmpdir, "kernel.json")
        km.shutdown_wait_time = 2.0
        spec = self._spec(km)
        env, extra = self._launch_settings(km, spec)
        if self.fork:
            self._use_fork(km, spec)
        self._launch(km, env, extra, startup_timeout, getattr(spec, "resource_dir", None))
        self._connect(km)
        assert self._launched_at is not None
        self._wait_ready(self._launched_at, startup_timeout)

    def _spec(self, km: Any) -> Any:
        from jupyter_client.kernelspec import NoSuchKernel

        try:
            spec = km.kernel_spec
        except NoSuchKernel:
            raise self._failed("no-such-kernel", installed=_installed_kernels()) from None
        self.language = str(getattr(spec, "language", "") or "")
        self.argv = list(km.format_kernel_cmd())
        return spec

    def _use_fork(self, km: Any, spec: Any) -> None:
        """The forking provisioner for this kernel, unless its kernelspec rules it out."""
        refusal = spec_refusal(spec, self.language)
        if refusal:
            self._not_forked(refusal)
            return
        km.kernel_id = km.kernel_id or str(uuid.uuid4())
        km.provisioner = fork_provisioner(km, self._not_forked)

    def _not_forked(self, why: str) -> None:
        self.fork_note = why
        if self.debug:
            self.debug.event("fork-fallback", reason=why)

    def _launch_settings(self, km: Any, spec: Any) -> tuple[dict[str, str], list[str]]:
        """The kernel's environment and extra arguments (faulthandler to our file for ipykernel)."""
        env = dict(os.environ)
        env.update(self.extra_env)
        extra: list[str] = []
        if is_ipykernel(self.argv, self.language):
            self.faulthandler_path = os.path.join(self.tmpdir, "faulthandler.log")
            open(self.faulthandler_path, "ab").close()
            extra_env, extra = _ipykernel_settings(self.tmpdir)
            env.update(extra_env)
            self.argv = list(km.format_kernel_cmd(extra_arguments=extra))
        return env, extra

    def _launch(self, km: Any, env: dict[str, str], extra: list[str], startup_timeout: float,
                resource_dir: str | None) -> None:
        """Start the process, its output going to our log file; remember its pid and process group."""
        self._launched_at = time.monotonic()
        try:
            with open(self.stderr_path, "ab") as log:
                self._run(km.start_kernel(extra_arguments=extra, env=env, cwd=self.cwd,
                                          stdout=log, stderr=log, stdin=None), startup_timeout)
        except FileNotFoundError as exc:
            missing = exc.filename or (self.argv[0] if self.argv else "?")
            raise self._failed("program-missing", missing=str(missing), error=_error_text(exc),
                               kernelspec=resource_dir) from None
        except asyncio.TimeoutError:
            raise self._failed("launch-timeout") from None
        except Exception as exc:  # noqa: BLE001 - PermissionError; RuntimeError & co. for broken specs
            raise self._failed("launch-error", error=_error_text(exc), kernelspec=resource_dir) from None
        finally:
            # a launch cut short by the start-up timeout (a loaded machine) may have started the process
            # already: adopt it, so that close() kills it and its group instead of leaving it running
            self._adopt(km)
        if self.debug:
            facts: dict[str, Any] = {}
            if isinstance(self._process, ForkedProcess):
                facts = {"template": self._process.template_pid, "preload_failed": self._process.preload_failures}
            self.debug.event("kernel-started", argv=self.argv, pid=self.pid, start=self.start_path, **facts)

    def _adopt(self, km: Any) -> None:
        """The kernel's process as the provisioner started it (none yet: nothing to adopt)."""
        self._process = getattr(km.provisioner, "process", None)
        self.start_path = "fork" if isinstance(self._process, ForkedProcess) else "normal"
        self.pid = getattr(self._process, "pid", None)
        if self.pid is not None:
            try:
                self.pgid = os.getpgid(self.pid)
            except OSError:
                self.pgid = None

    def _connect(self, km: Any) -> None:
        """A client on a private ZMQ context, its shell, iopub and stdin sockets in one poller."""
        import zmq
        from jupyter_client.blocking.client import BlockingKernelClient

        self._ctx = zmq.Context()
        # the client connects before the kernel has bound its ipc sockets; zmq's default 100 ms
        # reconnect interval would add up to 100 ms to every start
        self._ctx.setsockopt(zmq.RECONNECT_IVL, 10)
        kc = BlockingKernelClient(context=self._ctx, session=km.session)
        kc.load_connection_info(km.get_connection_info(session=False))
        kc.start_channels(shell=True, iopub=True, stdin=True, hb=False, control=False)
        self._kc = kc
        self._poller = zmq.Poller()
        for name in _CHANNELS:
            sock = getattr(kc, f"{name}_channel").socket
            self._sockets[sock] = name
            self._poller.register(sock, zmq.POLLIN)

    def _wait_ready(self, started: float, startup_timeout: float) -> None:
        """kernel_info until a reply on shell *and* a message on iopub (the subscription is live).

        The request goes again every second until both came, not only until the reply: a SUB socket that
        connected after the kernel published the first request's status (under load) would otherwise wait
        for an iopub message nothing sends any more, until the start-up timeout.  Later replies are
        ignored by msg_id like any other stray message."""
        deadline = started + startup_timeout
        replied = iopub_seen = False
        sent_at = 0.0
        while not (replied and iopub_seen):
            code = self.returncode()
            if code is not None:
                raise self._failed("exited", exit_code=code)
            now = time.monotonic()
            if now >= deadline:
                heard = ("shell",) * replied + ("iopub",) * iopub_seen
                raise self._failed("no-reply", heard=heard)
            if now - sent_at > 1.0:
                self.send("shell", "kernel_info_request", {})
                sent_at = now
            for channel, msg in self.receive(0.05):
                if channel == "shell" and msg["msg_type"] == "kernel_info_reply":
                    replied = True
                    self.info = msg.get("content")
                elif channel == "iopub":
                    iopub_seen = True

    # --- messages -----------------------------------------------------------------------------

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        kc = self._kc
        msg = kc.session.msg(msg_type, content)
        getattr(kc, f"{channel}_channel").send(msg)
        if self.debug:
            self.debug.log(channel, "send", msg)
        return str(msg["header"]["msg_id"])

    def execute(self, code: str) -> str:
        return self.send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": True, "stop_on_error": False})

    def receive(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Messages ready within ``timeout`` seconds on shell, iopub and stdin (may be empty)."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self._poller is None:
            time.sleep(timeout)
            return out
        ready = dict(self._poller.poll(int(max(0.0, timeout) * 1000)))
        for sock, name in self._sockets.items():
            if sock not in ready:
                continue
            channel = getattr(self._kc, f"{name}_channel")
            for _ in range(1000):  # drain what is there, bounded so one channel cannot starve the loop
                if not sock.poll(0):
                    break
                try:
                    msg = channel.get_msg(timeout=0)
                except Exception:  # noqa: BLE001, S112 - a malformed message: skip it
                    continue
                if self.debug:
                    self.debug.log(name, "recv", msg)
                out.append((name, msg))
        return out

    # --- the process ----------------------------------------------------------------------------

    def returncode(self) -> int | None:
        """The kernel process's return code once it has exited (kept after clean-up), else None."""
        if self._returncode is None and self._process is not None:
            try:
                self._returncode = self._process.poll()
            except Exception:  # noqa: BLE001 - a process object in an odd state: not known to have exited
                return None
        return self._returncode

    def is_alive(self) -> bool:
        return self._process is not None and self.returncode() is None

    def interrupt(self) -> None:
        """SIGINT to the kernel's process group (the kernel's interrupt, as Jupyter sends it)."""
        if self.debug:
            self.debug.event("interrupt", pid=self.pid)
        if not self.is_alive():
            return
        try:
            self._run(self._km.interrupt_kernel(), 5.0)
        except Exception:  # noqa: BLE001 - the manager could not: send the signal ourselves
            self._signal_group(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL to the kernel's process group, then reap it."""
        if self.debug:
            self.debug.event("kill", pid=self.pid)
        self.killed_by_us = True
        self._signal_group(signal.SIGKILL)
        self._reap(2.0)

    def _signal_group(self, sig: int) -> None:
        try:
            if self.pgid is not None and self.pgid != os.getpgid(0):
                os.killpg(self.pgid, sig)
            elif self.pid is not None:
                os.kill(self.pid, sig)
        except OSError:
            pass

    def _reap(self, timeout: float) -> None:
        if self._process is None:
            return
        with contextlib.suppress(Exception):  # still running after the timeout, or already reaped
            self._returncode = self._process.wait(timeout)

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.stderr_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - limit))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def faulthandler_text(self) -> str:
        if self.faulthandler_path is None:
            return ""
        try:
            with open(self.faulthandler_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # --- shutdown -------------------------------------------------------------------------------

    def close(self, *, graceful: bool = True) -> None:
        """Shut the kernel down (politely if alive, then by force), close every socket, remove temp files."""
        if self._closed:
            return
        self._closed = True
        km = self._km
        with contextlib.suppress(Exception):  # closing must go on whatever the client's state
            if self._kc is not None:
                self._kc.stop_channels()
        if km is not None and self._process is not None:
            self._stop(km, graceful=graceful and self.is_alive())
        # children the kernel left behind in its process group
        if self.pgid is not None and self.pgid != os.getpgid(0):
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, signal.SIGKILL)
        if km is not None:
            self._release(km)
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
        try:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _stop(self, km: Any, *, graceful: bool) -> None:
        """A shutdown request to a live kernel, else (or when that fails) a kill; then reap it."""
        try:
            if graceful:
                # shutdown_kernel() polls for the exit every 0.1 s: a kernel gone in 110 ms costs 200
                self._run(self._polite_shutdown(km), 10.0)
            else:
                self._run(km.shutdown_kernel(now=True), 10.0)
        except Exception:  # noqa: BLE001 - any failure of the polite way ends in SIGKILL
            self._signal_group(signal.SIGKILL)
        self._reap(5.0)

    def _release(self, km: Any) -> None:
        """The manager's connection file, ipc sockets and ZMQ context (best effort)."""
        with contextlib.suppress(Exception):
            done = km.cleanup_resources()  # a coroutine on the async manager
            if inspect.isawaitable(done):
                self._run(done, 10.0)
        with contextlib.suppress(Exception):
            if km.trait_has_value("context") and not km.context.closed:
                km.context.destroy(linger=0)

    @staticmethod
    async def _polite_shutdown(km: Any) -> None:
        await km.request_shutdown()
        await km.finish_shutdown(waittime=5.0, pollinterval=0.01)

    def __enter__(self) -> Kernel:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

