"""``nbmedic kernel-wrapper -- ARGV``: a supervisor process for clients that start kernels from argv.

VS Code (and anything else that ignores kernel provisioners) spawns a kernelspec's argv itself, so
``monitor install --wrapper`` makes that argv ``nbmedic kernel-wrapper [options] -- <original argv>``.
The wrapper:

* starts the kernel in a process group of its own, with the agent and faulthandler as the provisioner
  does, and asks Linux to SIGKILL it if the wrapper itself is killed (``PR_SET_PDEATHSIG``): a client
  that kills the wrapper's group kills the kernel, never orphans it;
* forwards every signal it can catch to the kernel's process group (an interrupt sent to the wrapper
  is one interrupt of the kernel, as ``killpg`` by jupyter_client would be);
* samples and guards the kernel like the provisioner, records an incident when it dies on its own;
* exits with the kernel's own exit status: the same code, or the same signal raised on itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from nbmedic.errors import UsageError
from nbmedic.live.guard import GuardConfig
from nbmedic.live.paths import connection_file_of, kernel_id_of
from nbmedic.live.session import Supervision, resolve_notebook

__all__ = ["kernel_id_from_argv", "run_wrapper"]

_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS,
                  signal.SIGFPE, signal.SIGILL, signal.SIGABRT, signal.SIGTTIN, signal.SIGTTOU,
                  signal.SIGPIPE}
_PR_SET_PDEATHSIG = 1
_PYTHON_NAMES = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}


def kernel_id_from_argv(argv: Sequence[str]) -> str:
    """The kernel id a Jupyter client gave the connection file (``kernel-<id>.json``), else a new one.

    The file is named by a flag (``-f FILE``) or, as kernels such as IRkernel take it (``--args
    {connection_file}``), as a plain argument named ``kernel-<id>.json``."""
    path = connection_file_of(argv) or next(
        (arg for arg in argv[1:] if re.fullmatch(r"kernel-[^/]+\.json", os.path.basename(arg))), None)
    return kernel_id_of(path) if path else f"wrapper-{secrets.token_hex(8)}"


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    name = ctypes.util.find_library("c")
    if name and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _forward_signals(child: subprocess.Popen[bytes], sup: Supervision) -> None:
    def forward(signum: int, _frame: FrameType | None) -> None:
        sup.client_signal(signum)  # a stop is an exit asked for; an interrupt is noted
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signum)

    for sig in signal.valid_signals():
        if sig in _NOT_FORWARDED:
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, forward)


def _exit_like(returncode: int) -> int:
    """Leave with the kernel's status: its exit code, or die of the same signal."""
    if returncode >= 0:
        return returncode
    sig = -returncode
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError, ValueError):
        signal.signal(sig, signal.SIG_DFL)  # SIGKILL and SIGSTOP have no handler to reset
    with contextlib.suppress(OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)
    return 128 + sig  # a signal that does not end the process (or could not be raised)


def run_wrapper(argv: Sequence[str], *, kernel_name: str | None, guard: GuardConfig) -> int:
    """Start ``argv`` supervised; return the exit status to leave with (after the kernel has ended)."""
    argv = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not argv:
        raise UsageError("kernel-wrapper needs the kernel's command line after `--`")
    if argv[0] in _PYTHON_NAMES:  # as jupyter_client does: `python` is the Python running the client
        argv[0] = sys.executable
    language = "python" if any("ipykernel" in a for a in argv) else ""
    cwd = os.getcwd()
    sup = Supervision(kernel_id_from_argv(argv), supervisor="wrapper", kernelspec=kernel_name,
                      language=language, notebook=resolve_notebook(os.environ.get("JPY_SESSION_NAME"), cwd),
                      cwd=cwd, guard=guard, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    cmd, extra_env = sup.prepare(argv)
    env = dict(os.environ)
    env.update(extra_env)
    try:
        child = subprocess.Popen(cmd, env=env, preexec_fn=_child_setup)  # noqa: PLW1509 - setpgid + pdeathsig
    except OSError as exc:
        raise UsageError(f"kernel-wrapper could not start {cmd[0]!r}: {exc.strerror or exc}") from None
    _forward_signals(child, sup)

    def interrupt() -> None:
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGINT)

    sup.attach(child.pid, child.pid, poll=child.poll, interrupt=interrupt)
    returncode = child.wait()
    sup.died(returncode)
    sup.close(final=True)
    return _exit_like(returncode)
