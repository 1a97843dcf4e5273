"""Where live kernels keep their facts, and the format of each file: the contract between the supervisor
(provisioner or wrapper, in the server's or the wrapper's process), the agent (inside the kernel, stdlib
only: it duplicates the names below) and the commands that read them (``ps``, ``stack``, ``incidents``).

Folders (``JUPYTER_RUNTIME_DIR`` / ``JUPYTER_DATA_DIR`` move them, as they move Jupyter's own files)::

    <runtime>/nbmedic/kernels/<kernel_id>/      one folder per monitored kernel, removed at final shutdown
        session.json        supervisor, at each launch       SessionRecord below
        cell.json           agent, at each cell start/end    CellRecord below
        exit.json           agent, from atexit (a clean exit: shutdown_request, exit())
        guard.json          supervisor, when the guard interrupts a cell; the agent reads and removes it
        faulthandler.log    the kernel's faulthandler (crash dumps, SIGUSR1 dumps of every thread)
    <runtime>/nbmedic/notices/                  the cause of a death, shown once by the next kernel
        kernel-<kernel_id>.json                 NoticeRecord (the restarted kernel keeps its id)
        notebook-<sha1 of the notebook path>.json   the same notice, for a kernel started afresh
    <data>/nbmedic/incidents/<incident_id>.json one record per kernel death (IncidentRecord)

Environment of a monitored kernel: ``NBMEDIC_KERNEL_ID``, ``NBMEDIC_LIVE_DIR`` (its kernel folder),
``NBMEDIC_NOTICES_DIR``, ``NBMEDIC_INCIDENTS_DIR``; ``JPY_SESSION_NAME`` (set by jupyter_server) names
the notebook.

Every record is one JSON object written atomically (a temporary file in the same folder, then
``os.replace``); times are POSIX epoch seconds (float).

SessionRecord (session.json)::

    {"schema": 1, "kernel_id": str, "pid": int, "pgid": int | null, "supervisor": "provisioner" | "wrapper",
     "supervisor_pid": int, "kernelspec": str | null, "language": str, "python": bool,
     "notebook": str | null, "cwd": str | null, "started": float, "argv": [str],
     "faulthandler": str | null, "memory_limit": int | null, "limit_source": str | null,
     "guard": bool, "interrupt_at": float, "kill_at": float}

CellRecord (cell.json)::

    {"running": bool, "execution_count": int | null, "cell_id": str | null, "source_head": str,
     "started": float, "finished": float | null, "notebook": str | null, "pid": int}

GuardRecord (guard.json)::

    {"time": float, "action": "interrupt", "rss": int, "limit": int, "limit_source": str,
     "share": float, "execution_count": int | null, "cell_id": str | null}

NoticeRecord (notices/*.json)::

    {"incident": str, "time": float, "kernel_id": str, "notebook": str | null, "text": str}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Sequence
from typing import Any

from nbmedic.notebook.io import atomic_write_bytes
from nbmedic.notebook.io import read_json_object as read_json

__all__ = [
    "CELL", "ENV_INCIDENTS_DIR", "ENV_KERNEL_ID", "ENV_LIVE_DIR", "ENV_NOTICES_DIR", "EXITED", "FAULTHANDLER",
    "GUARD", "SESSION", "connection_file_of", "incident_path", "incidents_dir", "kernel_dir", "kernel_id_of", "kernels_dir", "live_root",
    "notebook_key", "notice_paths", "notices_dir", "private_folder", "read_json", "remove", "write_json",
]

SESSION = "session.json"
CELL = "cell.json"
EXITED = "exit.json"
GUARD = "guard.json"
FAULTHANDLER = "faulthandler.log"

ENV_KERNEL_ID = "NBMEDIC_KERNEL_ID"
ENV_LIVE_DIR = "NBMEDIC_LIVE_DIR"
ENV_NOTICES_DIR = "NBMEDIC_NOTICES_DIR"
ENV_INCIDENTS_DIR = "NBMEDIC_INCIDENTS_DIR"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _runtime_dir() -> str:
    from jupyter_core.paths import jupyter_runtime_dir

    return str(jupyter_runtime_dir())


def _data_dir() -> str:
    from jupyter_core.paths import jupyter_data_dir

    return str(jupyter_data_dir())


def live_root() -> str:
    """``<runtime>/nbmedic``."""
    return os.path.join(_runtime_dir(), "nbmedic")


def kernels_dir() -> str:
    return os.path.join(live_root(), "kernels")


def _safe_name(text: str) -> str:
    """``text`` as one file name inside its folder: unsafe characters as ``_``; ``.``, ``..`` and the empty
    name, which would name the folder itself or its parent, prefixed with ``_``."""
    name = _UNSAFE.sub("_", text)
    return "_" + name if name in ("", ".", "..") else name


def kernel_dir(kernel_id: str) -> str:
    """The folder of one monitored kernel (the id made safe for a file name)."""
    return os.path.join(kernels_dir(), _safe_name(kernel_id))


def notices_dir() -> str:
    return os.path.join(live_root(), "notices")


def incidents_dir() -> str:
    """``<data>/nbmedic/incidents``: incidents outlive the server (the runtime folder may be cleared)."""
    return os.path.join(_data_dir(), "nbmedic", "incidents")


def incident_path(incident_id: str) -> str:
    return os.path.join(incidents_dir(), f"{_UNSAFE.sub('_', incident_id)}.json")


def notebook_key(notebook: str) -> str:
    """A file-name-safe key of a notebook path (the agent computes the same)."""
    return hashlib.sha1(os.path.normpath(notebook).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def notice_paths(kernel_id: str, notebook: str | None) -> list[str]:
    """Where the notice of a death of this kernel / notebook is left for the next kernel."""
    out = [os.path.join(notices_dir(), f"kernel-{_UNSAFE.sub('_', kernel_id)}.json")]
    if notebook:
        out.append(os.path.join(notices_dir(), f"notebook-{notebook_key(notebook)}.json"))
    return out


_CONNECTION_FLAGS = ("-f", "--f", "--ConnectionFileMixin.connection_file", "--IPKernelApp.connection_file")


def connection_file_of(argv: Sequence[str]) -> str | None:
    """The connection file named on a kernel's command line (``-f FILE``, ``--f=FILE``, the traitlets forms)."""
    for i, arg in enumerate(argv):
        if arg in _CONNECTION_FLAGS:
            return argv[i + 1] if i + 1 < len(argv) else None
        for flag in _CONNECTION_FLAGS:
            if arg.startswith(flag + "="):
                return arg[len(flag) + 1:]
    return None


def kernel_id_of(connection_file: str) -> str:
    """``kernel-<id>.json`` -> ``<id>``; a bare ``kernel.json`` is named after its folder."""
    stem = os.path.basename(connection_file)
    stem = stem.removesuffix(".json")
    if stem.startswith("kernel-") and len(stem) > len("kernel-"):
        return stem[len("kernel-"):]
    if stem == "kernel":
        return os.path.basename(os.path.dirname(os.path.abspath(connection_file))) or stem
    return stem



def private_folder(folder: str) -> None:
    """Make ``folder`` and its missing parents; nbmedic's folders (``folder`` up to the nearest one named
    ``nbmedic``) are made or set 0700 whatever the umask: what they hold (code, paths, stacks) is the
    user's alone.  Folders above, Jupyter's own, are left as they are."""
    chain: list[str] = []
    current = os.path.abspath(folder)
    while True:
        chain.append(current)
        parent = os.path.dirname(current)
        if os.path.basename(current) == "nbmedic" or parent == current:
            break
        current = parent
    if os.path.basename(chain[-1]) != "nbmedic":
        chain = chain[:1]
    os.makedirs(os.path.dirname(chain[-1]) or ".", exist_ok=True)
    for path in reversed(chain):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o777 != 0o700:
                os.chmod(path, 0o700)


def write_json(path: str, record: Any) -> None:
    """Write ``record`` atomically (``notebook.io.atomic_write_bytes``), readable by the user only (0600, in
    0700 folders: ``private_folder``); folders made as needed."""
    private_folder(os.path.dirname(path) or ".")
    data = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    if not atomic_write_bytes(path, data, mode=0o600):
        with contextlib.suppress(OSError):  # unchanged, but perhaps made before records were private
            if os.stat(path).st_mode & 0o777 != 0o600:
                os.chmod(path, 0o600)


def remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
