"""Running servers and the runtime folder (EN258-EN260) of ``nbmedic server``.

A Jupyter server writes ``jpserver-<pid>.json`` (jupyter_server; classic Notebook: ``nbserver-<pid>.json``)
and ``jpserver-<pid>-open.html`` into the runtime folder when it starts and removes them when it stops; a
server killed hard leaves them behind.  ``jupyter server list`` and JupyterLab's "open the running server"
then trust them.

* EN258: a server file whose process is gone: no such pid, a zombie, a pid reused by a process started
  after the file was written, or by a process that is neither Python nor Jupyter.  ``--fix`` removes the
  file and its ``-open.html`` without asking: they are Jupyter's own leftovers.
* EN259: a live server whose file names an address beyond loopback (``0.0.0.0``, ``::``, a LAN address;
  a host name is checked against the sockets the process listens on) while it has neither a token nor a
  password.  Servers started by JupyterHub (``jupyterhub-singleuser``) authenticate through the hub and
  are left alone.
* EN260: the runtime folder (connection files with kernel keys live there): under ``MIN_FREE`` bytes or
  ``MIN_FREE_FRACTION`` of its filesystem free, no free inodes, not writable by this user, or readable or
  writable by group or others (Jupyter creates it 0700).  ``--fix`` makes it private after asking.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbmedic.findings import Finding, make
from nbmedic.units import format_bytes

if TYPE_CHECKING:
    from nbmedic.envs.server.context import ServerContext

__all__ = ["MIN_FREE", "MIN_FREE_FRACTION", "ServerFile", "findings", "listening_addresses", "process_gone",
           "server_files", "space_problem"]

MIN_FREE = 100 << 20  # bytes free below which the runtime folder is "almost full"
MIN_FREE_FRACTION = 0.01  # ... or this fraction of its filesystem
_NAME = re.compile(r"^(jpserver|nbserver)-(\d+)(\.json|-open\.html)$")
_WILDCARD = {"", "0.0.0.0", "::", "*"}  # every interface
_SLACK = 2.0  # seconds between a server's start and its runtime file, clock granularity included


@dataclass
class ServerFile:
    """One server's files in the runtime folder: its JSON (``info``, when readable) and ``-open.html``."""

    kind: str  # "jpserver" or "nbserver"
    pid: int
    files: list[str] = field(default_factory=list)  # the JSON first when present
    info: dict[str, Any] = field(default_factory=dict)
    mtime: float = 0.0

    @property
    def main(self) -> str:
        return self.files[0]

    @property
    def url(self) -> str | None:
        url = self.info.get("url")
        return url if isinstance(url, str) and url else None


def server_files(runtime_dir: str) -> list[ServerFile]:
    """The servers' files in ``runtime_dir``, one record per server (kind and pid), by pid."""
    found: dict[tuple[str, int], ServerFile] = {}
    try:
        names = sorted(os.listdir(runtime_dir), key=lambda n: (not n.endswith(".json"), n))
    except OSError:
        return []
    for name in names:
        m = _NAME.match(name)
        if not m:
            continue
        path = os.path.join(runtime_dir, name)
        record = found.setdefault((m[1], int(m[2])), ServerFile(m[1], int(m[2])))
        record.files.append(path)
        try:
            record.mtime = max(record.mtime, os.stat(path).st_mtime)
        except OSError:
            continue
        if m[3] == ".json":
            record.info = _read_info(path)
            pid = record.info.get("pid")
            if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
                record.pid = pid
    return sorted(found.values(), key=lambda r: (r.pid, r.kind))


def _read_info(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            info = json.loads(fh.read(1 << 20))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def process_gone(pid: int, written: float) -> str | None:
    """Why the server process ``pid`` (whose file was written at ``written``, epoch seconds) is gone, or
    None when a plausible server process runs (or the system will not say)."""
    import psutil  # type: ignore[import-untyped,unused-ignore]  # heavy at import

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"process {pid} has exited (a zombie)"
        if written and proc.create_time() > written + _SLACK:
            return f"pid {pid} now belongs to {proc.name()!r}, started after the file was written"
        words = " ".join([proc.name(), *proc.cmdline()[:3]]).lower()
    except psutil.NoSuchProcess:
        return f"process {pid} is gone"
    except (psutil.AccessDenied, psutil.Error):
        return None
    if "python" in words or "jupyter" in words:
        return None
    return f"pid {pid} now belongs to {proc.name()!r}, not a Python or Jupyter process"


def listening_addresses(pid: int, port: int) -> list[str] | None:
    """The addresses process ``pid`` listens on at ``port`` (TCP); None when the system will not say."""
    import psutil  # type: ignore[import-untyped,unused-ignore]  # heavy at import

    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None
    return sorted({c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr
                   and c.laddr.port == port})


def _is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def _exposed_address(server: ServerFile) -> str | None:
    """The address beyond loopback that ``server`` listens on, or None (loopback, a Unix socket, unknown)."""
    info = server.info
    if info.get("sock"):
        return None
    host = str(info.get("hostname") if info.get("hostname") is not None else info.get("ip", "localhost"))
    if host in _WILDCARD:
        return host or "0.0.0.0"  # `--ip=''` listens on every interface
    if _is_loopback(host):
        return None
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
        return host  # a literal, non-loopback address
    except ValueError:
        pass
    port = info.get("port")
    addresses = listening_addresses(server.pid, port) if isinstance(port, int) else None
    beyond = [a for a in addresses or [] if not _is_loopback(a)]
    return beyond[0] if beyond else None


def _hub_spawned(pid: int) -> bool:
    import psutil  # type: ignore[import-untyped,unused-ignore]  # heavy at import

    try:
        return any("jupyterhub" in arg.lower() for arg in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def _describe(address: str) -> str:
    return f"{address} (every interface)" if address in _WILDCARD else address


def _stale(ctx: ServerContext, server: ServerFile, why: str) -> Finding:
    removed = ctx.fix and _remove(ctx, server)
    message = f"stale server file: {why} ({server.url or 'no url'})" + ("; removed" if removed else "")
    return make("EN258", server.main, message,
                evidence={"runtime_file": server.main, "pid": server.pid, "url": server.url})


def _remove(ctx: ServerContext, server: ServerFile) -> bool:
    gone = []
    for path in server.files:
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            ctx.fixed.append(f"could not remove {path}: {exc.strerror or exc}")
            return False
        gone.append(path)
    ctx.fixed.append(f"removed the stale server files of pid {server.pid}: {', '.join(gone)}")
    return True


def _exposed(server: ServerFile) -> Finding | None:
    info = server.info
    if info.get("token") or info.get("password"):
        return None
    address = _exposed_address(server)
    if address is None or _hub_spawned(server.pid):
        return None
    port = info.get("port") if isinstance(info.get("port"), int) else None
    where = f"{_describe(address)} port {port}" if port is not None else _describe(address)
    return make("EN259", server.main,
                f"a server with neither a token nor a password listens on {where}: anyone who reaches it can "
                f"run code as you (pid {server.pid}, {server.url or 'no url'})",
                evidence={"url": server.url, "ip": address, "port": port, "pid": server.pid,
                          "runtime_file": server.main})


def server_findings(ctx: ServerContext, runtime_dir: str) -> list[Finding]:
    """EN258 and EN259 for the servers' files in ``runtime_dir``."""
    found: list[Finding] = []
    for server in server_files(runtime_dir):
        why = process_gone(server.pid, server.mtime)
        if why is not None:
            found.append(_stale(ctx, server, why))
            continue
        exposed = _exposed(server) if server.info else None
        if exposed is not None:
            found.append(exposed)
    return found


# --- the runtime folder (EN260) ------------------------------------------------------------------


def space_problem(free: int, total: int, *, inodes_free: int | None = None) -> str | None:
    """What is wrong with a filesystem that has ``free`` of ``total`` bytes (and ``inodes_free`` inodes),
    or None."""
    if inodes_free == 0:
        return "has no free inodes: no file can be created"
    if total > 0 and (free < MIN_FREE or free / total < MIN_FREE_FRACTION):
        return f"is almost full: {format_bytes(free)} free of {format_bytes(total)} ({free / total:.1%})"
    return None


def _folder_problems(runtime_dir: str, st: os.stat_result) -> list[tuple[str, int | None]]:
    """(problem, free bytes) for an existing runtime folder."""
    problems: list[tuple[str, int | None]] = []
    free: int | None = None
    try:
        vfs = os.statvfs(runtime_dir)
        free = vfs.f_bavail * vfs.f_frsize
        space = space_problem(free, vfs.f_blocks * vfs.f_frsize,
                              inodes_free=vfs.f_favail if vfs.f_files > 0 else None)
        if space:
            problems.append((space, free))
    except OSError:
        pass
    if not os.access(runtime_dir, os.W_OK | os.X_OK):
        problems.append(("is not writable by this user: servers and kernels cannot write their files", free))
    if st.st_mode & 0o066:
        what = "is readable or writable by group or others: it holds kernel connection files with their keys"
        problems.append((what, free))
    return problems


def _existing_parent(path: str) -> str | None:
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up
    return parent or None


def _problems(runtime_dir: str) -> tuple[list[tuple[str, int | None]], str | None]:
    """(problem, free bytes) of ``runtime_dir`` and its mode (octal text, None when it does not exist)."""
    try:
        st = os.stat(runtime_dir)
    except FileNotFoundError:
        parent = _existing_parent(runtime_dir)
        if parent is None or os.access(parent, os.W_OK | os.X_OK):
            return [], None
        return [(f"does not exist and {parent} is not writable by this user", None)], None
    except OSError as exc:
        return [(f"cannot be examined: {exc.strerror or exc}", None)], None
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    if not stat.S_ISDIR(st.st_mode):
        return [("is not a folder", None)], mode
    return _folder_problems(runtime_dir, st), mode


def folder_findings(ctx: ServerContext, runtime_dir: str) -> list[Finding]:
    """EN260 for ``runtime_dir`` (Jupyter creates a missing one: then only its parent must be writable)."""
    problems, mode = _problems(runtime_dir)
    out = []
    for problem, free in problems:
        fixed = problem.startswith("is readable or writable") and _make_private(ctx, runtime_dir)
        out.append(make("EN260", runtime_dir, f"the runtime folder {problem}" + ("; made private" if fixed else ""),
                        evidence={"runtime_dir": runtime_dir, "problem": problem, "free": free, "mode": mode}))
    return out


def _make_private(ctx: ServerContext, runtime_dir: str) -> bool:
    return ctx.change(f"make the runtime folder {runtime_dir} private (chmod 700)",
                      lambda: os.chmod(runtime_dir, 0o700), f"made the runtime folder {runtime_dir} private (chmod 700)")


def findings(ctx: ServerContext) -> list[Finding]:
    runtime_dir = ctx.setup.runtime_dir
    if not runtime_dir:
        return []
    return folder_findings(ctx, runtime_dir) + server_findings(ctx, runtime_dir)
