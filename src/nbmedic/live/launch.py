"""The launch recipe of a monitored kernel: its command line, its environment and its live folder.

An IPython kernel gets one ``--IPKernelApp.exec_lines`` argument: faulthandler writing to the live
folder's ``faulthandler.log`` (crash dumps, and every thread's stack on ``SIGUSR1``: the recipe of
``nbmedic run``), then a loader of the agent (``live/agent.py``) by its file path.  The loader runs in a
private globals dict and imports nothing of nbmedic: the kernel's Python may be another environment, and
the user namespace stays as it was.  Exec lines the command line already had run first.  Other kernels
are launched unchanged (the supervisor still watches their process).
"""

from __future__ import annotations

import ast
import json
import os
import shutil

import psutil  # type: ignore[import-untyped,unused-ignore]

from nbmedic.execute.kernel import faulthandler_lines, is_ipykernel
from nbmedic.live.paths import (
    CELL,
    ENV_INCIDENTS_DIR,
    ENV_KERNEL_ID,
    ENV_LIVE_DIR,
    ENV_NOTICES_DIR,
    EXITED,
    FAULTHANDLER,
    GUARD,
    SESSION,
    incidents_dir,
    kernels_dir,
    notices_dir,
    private_folder,
    read_json,
    remove,
)

__all__ = ["AGENT_MODULE", "agent_path", "loader_line", "monitored_argv", "monitored_env", "prepare_live_dir",
           "remove_stale_dirs"]

AGENT_MODULE = "nbmedic_agent"  # the agent's name in the kernel's sys.modules
_EXEC_LINES = ("--IPKernelApp.exec_lines", "--InteractiveShellApp.exec_lines")

_LOADER = f"""\
import importlib.util, sys
from IPython import get_ipython
m = sys.modules.get({AGENT_MODULE!r})
if m is None or getattr(m, '__file__', None) != P:
    s = importlib.util.spec_from_file_location({AGENT_MODULE!r}, P)
    m = importlib.util.module_from_spec(s)
    sys.modules[{AGENT_MODULE!r}] = m
    try:
        s.loader.exec_module(m)
    except BaseException:
        del sys.modules[{AGENT_MODULE!r}]
        raise
m.load_ipython_extension(get_ipython())
"""


def agent_path() -> str:
    """The agent's source file, loaded by path inside the kernel."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.py")


def loader_line(path: str | None = None) -> str:
    """One exec line that loads the agent from ``path`` and leaves no name in the user namespace."""
    return f"exec({_LOADER!r}, {{'P': {path or agent_path()!r}}})"


def _parse_exec_lines(values: list[str]) -> list[str]:
    """The lines traitlets makes of the given values: one line each, or a single list literal."""
    if len(values) == 1 and values[0].startswith("[") and values[0].endswith("]"):
        try:
            parsed = json.loads(values[0])
        except ValueError:
            try:
                parsed = ast.literal_eval(values[0])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                parsed = None
        if isinstance(parsed, (list, tuple)) and all(isinstance(x, str) for x in parsed):
            return list(parsed)
    return list(values)


def _split_exec_lines(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its exec_lines arguments (``--X.exec_lines=V`` or ``--X.exec_lines V``), and them."""
    rest: list[str] = []
    values: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _EXEC_LINES:
            if eq:
                values.append(value)
            elif i + 1 < len(argv):
                values.append(argv[i + 1])
                i += 1
            i += 1
            continue
        rest.append(arg)
        i += 1
    return rest, values


def monitored_argv(argv: list[str], language: str, live_dir: str) -> tuple[list[str], bool]:
    """The command line of the monitored kernel, and whether it is an IPython kernel (agent loaded)."""
    if not is_ipykernel(argv, language):
        return list(argv), False
    rest, values = _split_exec_lines(argv)
    lines = _parse_exec_lines(values) if values else []
    ours = [*faulthandler_lines(os.path.join(live_dir, FAULTHANDLER)), loader_line()]
    lines += [line for line in ours if line not in lines]  # a command line monitored twice: once
    return [*rest, "--IPKernelApp.exec_lines=" + json.dumps(lines)], True


def monitored_env(kernel_id: str, live_dir: str) -> dict[str, str]:
    """The variables added to a monitored kernel's environment."""
    return {
        ENV_KERNEL_ID: kernel_id,
        ENV_LIVE_DIR: live_dir,
        ENV_NOTICES_DIR: notices_dir(),
        ENV_INCIDENTS_DIR: incidents_dir(),
        "PYTHONFAULTHANDLER": "1",  # crashes during start-up, before the exec lines run
    }


def prepare_live_dir(live_dir: str) -> None:
    """The kernel's folder before a launch: an empty faulthandler.log, no record of a previous launch
    (a restart reuses the folder) but its session.json."""
    private_folder(live_dir)
    for name in (CELL, EXITED, GUARD):
        remove(os.path.join(live_dir, name))
    log = os.path.join(live_dir, FAULTHANDLER)
    os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(log, 0o600)  # an older launch's log, made before it was private


_CREATE_SLACK = 1.0  # seconds between a process's creation time and the session's ``started``


def _alive(pid: object, started: float) -> bool:
    """Is ``pid`` still the process of a session started at ``started`` (not ended, not a reused pid)?"""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started + _CREATE_SLACK)
    except psutil.Error:
        return False


def remove_stale_dirs(keep: str) -> list[str]:
    """Remove the kernel folders whose kernel and supervisor have both gone; the folders removed.

    A supervisor killed outright (a client kills ``kernel-wrapper`` with SIGKILL on a forced shutdown; a
    server killed) cannot remove its kernel's folder, so each launch removes what such deaths left.  A
    folder without a readable ``session.json`` may be a kernel being launched: it is kept."""
    removed: list[str] = []
    root = kernels_dir()
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        folder = os.path.join(root, name)
        if os.path.normpath(folder) == os.path.normpath(keep):
            continue
        session = read_json(os.path.join(folder, SESSION))
        started = session.get("started") if session else None
        if session is None or not isinstance(started, (int, float)):
            continue
        if _alive(session.get("pid"), float(started)) or _alive(session.get("supervisor_pid"), float(started)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
