"""nbmedic's agent inside a monitored IPython kernel.

Loaded by path from the kernel's exec lines (``live/launch.py``), in whatever environment the kernel runs:
it uses the standard library only and never imports nbmedic, so it duplicates the few names of
``live/paths.py`` it needs (a test keeps them equal).  At load it prints nothing and adds no name to the
user namespace; every hook swallows its own errors, so a cell never sees one.

* ``pre_run_cell``: shows, once, the notice of the previous kernel's death (stderr, above the cell's own
  output), then writes ``cell.json`` (running, execution count, cell id, first lines, start time); an
  interrupt that lands there is raised by the cell itself (the agent is also an AST transformer);
* ``post_run_cell``: ``cell.json`` says the cell finished; a cell the memory guard interrupted says why;
* ``atexit``: ``exit.json`` (a clean exit: shutdown request, ``exit()``; a kill or a crash leaves none);
* ``%nbmedic why``: the latest incident of this kernel, else of this notebook.
"""

from __future__ import annotations

import ast
import atexit
import datetime
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from types import FrameType
from typing import Any

# --- duplicated from live/paths.py (tests/test_live_agent.py keeps them equal) ----------------------
CELL = "cell.json"
EXITED = "exit.json"
GUARD = "guard.json"
ENV_KERNEL_ID = "NBMEDIC_KERNEL_ID"
ENV_LIVE_DIR = "NBMEDIC_LIVE_DIR"
ENV_NOTICES_DIR = "NBMEDIC_NOTICES_DIR"
ENV_INCIDENTS_DIR = "NBMEDIC_INCIDENTS_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def notebook_key(notebook: str) -> str:
    """A file-name-safe key of a notebook path (as ``live.paths.notebook_key``)."""
    return hashlib.sha1(os.path.normpath(notebook).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def notice_files(notices_dir: str, kernel_id: str, notebook: str | None) -> list[str]:
    """Where a notice for this kernel / notebook is left (as ``live.paths.notice_paths``)."""
    out = [os.path.join(notices_dir, f"kernel-{_UNSAFE.sub('_', kernel_id)}.json")]
    if notebook:
        out.append(os.path.join(notices_dir, f"notebook-{notebook_key(notebook)}.json"))
    return out


def format_bytes(n: float) -> str:
    """``1.5 GiB`` (as ``nbmedic.units.format_bytes``)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
# ------------------------------------------------------------------------------------------------------

NOTICE_MAX_AGE = 24 * 3600.0  # an older notice is stale: removed without being shown
SOURCE_LINES = 3
SOURCE_CHARS = 200
USAGE = "usage: %nbmedic why   (the latest incident of this kernel, else of this notebook)"
_ATTR = "_nbmedic_agent"  # on the shell: loading twice registers the hooks once


TEMP_SUFFIX = ".nbmedic-tmp"  # as notebook.io: ``.NAME.PID.XXXXXXXX.nbmedic-tmp``
_swept: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def sweep_stale_temps(path: str) -> None:
    """Remove the temporary files a killed writer of ``path`` left beside it (named as
    ``notebook.io.sweep_stale_temps`` names them: the writer's pid, no longer running)."""
    folder, name = os.path.split(path)
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")
    try:
        entries = [e.name for e in os.scandir(folder or ".") if e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is not None and not _alive(int(match.group(1))):
            _remove(os.path.join(folder, entry))


def _write_json(path: str, record: dict[str, Any]) -> None:
    """Atomic replace.  No fsync: the reader outlives the kernel, not the machine, and a cell must not
    wait for the disk.  The temporary file carries this process's pid; the first write to a path in this
    process removes what a killed kernel left beside it (a restarted kernel keeps its folder)."""
    folder, name = os.path.split(path)
    if path not in _swept:
        _swept.add(path)
        sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, ensure_ascii=False, separators=(",", ":"), default=str)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            value = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _stderr(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()  # before the cell's stdout: the notice sits above the cell's own output


def source_head(source: str) -> str:
    """The first non-empty lines of a cell, at most SOURCE_CHARS characters."""
    lines = [line.rstrip() for line in source.splitlines() if line.strip()]
    return "\n".join(lines[:SOURCE_LINES])[:SOURCE_CHARS]


def _local_time(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


class Agent:
    """The hooks of one shell.  Folders come from the environment the supervisor set."""

    def __init__(self, ip: Any) -> None:
        self.ip = ip
        self.kernel_id = os.environ.get(ENV_KERNEL_ID) or ""
        self.live_dir = os.environ.get(ENV_LIVE_DIR) or ""
        self.notices_dir = os.environ.get(ENV_NOTICES_DIR) or ""
        self.incidents_dir = os.environ.get(ENV_INCIDENTS_DIR) or ""
        self.cell: dict[str, Any] | None = None  # the record of the running (or last) cell
        self._count_seen: int | None = None  # ip.execution_count at pre_run_cell
        self._count_offset = 0  # learnt: ip.execution_count at pre_run_cell minus the cell's number
        self.interrupted = False  # an interrupt landed in pre_run_cell: the cell raises it (``visit``)

    # --- hooks (each swallows its errors: the user's cell must never see one) ------------------------

    def pre_run_cell(self, info: Any = None) -> None:
        try:
            try:
                self.show_notice()
            except Exception:  # noqa: BLE001, S110 - never into the user's cell
                pass
            try:
                self.cell_started(info)
            except Exception:  # noqa: BLE001, S110 - never into the user's cell
                pass
        except KeyboardInterrupt:
            # IPython swallows an interrupt raised in a hook and runs the cell anyway: the user's interrupt,
            # sent the moment the cell showed as running, would be lost.  The cell raises it instead.
            self.interrupted = True

    def visit(self, node: Any) -> Any:
        """An AST transformer of the shell (``ast_transformers``): a cell whose ``pre_run_cell`` was
        interrupted starts with ``raise KeyboardInterrupt``; every other cell is left as it is."""
        if self.interrupted and isinstance(node, ast.Module):
            self.interrupted = False
            node.body.insert(0, ast.Raise(exc=ast.Name(id="KeyboardInterrupt", ctx=ast.Load()), cause=None))
            ast.fix_missing_locations(node)
        return node

    def post_run_cell(self, result: Any = None) -> None:
        try:
            self.cell_finished(result)
        except Exception:  # noqa: BLE001, S110 - never into the user's cell
            pass
        try:
            self.explain_guard(result)
        except Exception:  # noqa: BLE001, S110 - never into the user's cell
            pass

    def at_exit(self) -> None:
        try:
            if self.live_dir:
                _write_json(os.path.join(self.live_dir, EXITED), {"clean": True, "time": time.time()})
        except Exception:  # noqa: BLE001, S110 - the interpreter is going away
            pass

    # --- the running cell ------------------------------------------------------------------------------

    def notebook(self) -> str | None:
        return os.environ.get("JPY_SESSION_NAME") or None

    def cell_started(self, info: Any) -> None:
        started = time.time()
        raw = getattr(info, "raw_cell", None)
        try:
            count = self.execution_count(info)
        except Exception:  # noqa: BLE001 - an IPython of another shape: the cell is still recorded
            count = None
        try:
            cell_id = self.cell_id(info)
        except Exception:  # noqa: BLE001 - an ipykernel of another shape: the cell is still recorded
            cell_id = None
        self.cell = {
            "running": True, "execution_count": count, "cell_id": cell_id,
            "source_head": source_head(raw if isinstance(raw, str) else ""), "started": started,
            "finished": None, "notebook": self.notebook(), "pid": os.getpid(),
        }
        if self.live_dir:
            _write_json(os.path.join(self.live_dir, CELL), self.cell)

    def cell_finished(self, result: Any) -> None:
        cell = self.cell
        if cell is None or not cell["running"]:
            return  # a post_run_cell without its pre (the exec line that loaded the agent)
        count = getattr(result, "execution_count", None)
        if isinstance(count, int):
            if self._count_seen is not None:
                self._count_offset = self._count_seen - count
            cell["execution_count"] = count
        cell["running"] = False
        cell["finished"] = time.time()
        if self.live_dir:
            _write_json(os.path.join(self.live_dir, CELL), cell)

    def execution_count(self, info: Any) -> int | None:
        """The number the cell shows (``[7]``).  IPython sets it on the ExecutionResult before
        ``pre_run_cell``, but its counter moves after the cell in older versions and before it in newer
        ones: read it from ``run_cell_async``'s frame; else the counter, corrected by the last cell."""
        self._count_seen = None
        frame: FrameType | None = sys._getframe(1)
        for _ in range(8):
            if frame is None:
                break
            if frame.f_code.co_name == "run_cell_async":
                result = frame.f_locals.get("result")
                count = getattr(result, "execution_count", None)
                if getattr(result, "info", None) is info and isinstance(count, int):
                    return count
                break
            frame = frame.f_back
        seen = getattr(self.ip, "execution_count", None)
        if not isinstance(seen, int):
            return None
        self._count_seen = seen
        return seen - self._count_offset

    def cell_id(self, info: Any) -> str | None:
        """``cellId`` of the execute request (JupyterLab, Notebook 7 and VS Code send it)."""
        value = getattr(info, "cell_id", None)
        if isinstance(value, str) and value:
            return value
        parent: Any = None
        kernel = getattr(self.ip, "kernel", None)
        if kernel is not None and hasattr(kernel, "get_parent"):
            try:
                parent = kernel.get_parent("shell")
            except TypeError:
                parent = kernel.get_parent()
        if not parent:
            parent = {"metadata": getattr(self.ip, "parent_header", {}).get("metadata")}
        metadata = parent.get("metadata") if isinstance(parent, dict) else None
        value = metadata.get("cellId") if isinstance(metadata, dict) else None
        return value if isinstance(value, str) and value else None

    # --- what the supervisor left for the user -------------------------------------------------------

    def show_notice(self) -> None:
        """The cause of the previous kernel's death, once; a notice older than a day goes unseen."""
        if not self.notices_dir:
            return
        paths = [p for p in notice_files(self.notices_dir, self.kernel_id, self.notebook()) if os.path.exists(p)]
        if not paths:
            return
        records = [r for r in (_read_json(p) for p in paths) if r is not None]
        for path in paths:
            _remove(path)
        now = time.time()
        fresh = [r for r in records if isinstance(r.get("time"), (int, float)) and now - r["time"] < NOTICE_MAX_AGE
                 and isinstance(r.get("text"), str) and r["text"]]
        if fresh:
            _stderr(max(fresh, key=lambda r: float(r["time"]))["text"])

    def explain_guard(self, result: Any) -> None:
        """A cell the memory guard interrupted says so, with the figures."""
        if not self.live_dir or self.cell is None:
            return
        path = os.path.join(self.live_dir, GUARD)
        guard = _read_json(path)
        if guard is None:
            return
        when = guard.get("time")
        if not isinstance(when, (int, float)) or when < self.cell["started"]:
            _remove(path)  # about an earlier cell: it no longer explains anything
            return
        if not isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt):
            return  # the interrupt has not reached this cell (yet): keep the record for it
        _remove(path)
        _stderr(guard_message(guard))

    # --- %nbmedic --------------------------------------------------------------------------------------

    def magic(self, line: str = "") -> None:
        try:
            words = line.split()
            if words == ["why"]:
                print(self.why())
            else:
                print(USAGE)
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            print(f"nbmedic: {type(exc).__name__}: {exc}")

    def why(self) -> str:
        records = []
        try:
            names = os.listdir(self.incidents_dir) if self.incidents_dir else []
        except OSError:
            names = []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                record = _read_json(os.path.join(self.incidents_dir, name))
                if record is not None and isinstance(record.get("time"), (int, float)):
                    records.append(record)
        mine = [r for r in records if self.kernel_id and r.get("kernel_id") == self.kernel_id]
        notebook = self.notebook()
        if not mine and notebook:
            key = os.path.normpath(notebook)
            mine = [r for r in records if isinstance(r.get("notebook"), str) and os.path.normpath(r["notebook"]) == key]
        if not mine:
            return "nbmedic: no incident recorded for this kernel or notebook"
        return incident_text(max(mine, key=lambda r: (float(r["time"]), str(r.get("id")))))


def guard_message(guard: dict[str, Any]) -> str:
    rss, limit = guard.get("rss"), guard.get("limit")
    share = guard.get("share")
    if not isinstance(share, (int, float)) and isinstance(rss, (int, float)) and isinstance(limit, (int, float)) \
            and limit > 0:
        share = rss / limit
    used = format_bytes(rss) if isinstance(rss, (int, float)) else "?"
    of = f"{share * 100:.0f} % of " if isinstance(share, (int, float)) else ""
    cap = format_bytes(limit) if isinstance(limit, (int, float)) else "?"
    source = f" ({guard['limit_source']})" if guard.get("limit_source") else ""
    return (f"nbmedic: this cell was interrupted because the kernel's memory reached {used}, {of}the {cap} "
            f"memory limit{source}. The kernel and its variables are still there; free memory (del big objects) "
            "or raise the limit.")


def _cell_text(cell: Any) -> str:
    if not isinstance(cell, dict):
        return "no cell was running"
    count = cell.get("execution_count")
    head = str(cell.get("source_head") or "").split("\n")[0]
    text = f"cell [{count if count is not None else ' '}]"
    if head:
        text += f" {json.dumps(head, ensure_ascii=False)}"
    if cell.get("cell_id"):
        text += f" (cell id {cell['cell_id']})"
    if isinstance(cell.get("seconds"), (int, float)):
        text += f", running for {cell['seconds']:.1f} s"
    return text


def incident_text(record: dict[str, Any]) -> str:
    """What ``%nbmedic why`` prints of one IncidentRecord."""
    finding = record.get("finding") if isinstance(record.get("finding"), dict) else {}
    assert isinstance(finding, dict)
    code = f"{finding['code']} " if finding.get("code") else ""
    lines = [
        f"nbmedic: the kernel died at {_local_time(float(record['time']))}",
        f"  cause: {code}{finding.get('message') or 'unknown'}",
        f"  cell:  {_cell_text(record.get('cell'))}",
    ]
    if finding.get("fix"):
        lines.append(f"  fix:   {finding['fix']}")
    lines.append(f"Details: nbmedic incidents show {record.get('id')}")
    return "\n".join(lines)


def load_ipython_extension(ip: Any) -> None:
    """Register the hooks, the exit record and ``%nbmedic`` on ``ip`` (once: loading again does nothing)."""
    if ip is None or getattr(ip, _ATTR, None) is not None:
        return
    agent = Agent(ip)
    setattr(ip, _ATTR, agent)
    ip.events.register("pre_run_cell", agent.pre_run_cell)
    ip.events.register("post_run_cell", agent.post_run_cell)
    ip.ast_transformers.append(agent)
    ip.register_magic_function(agent.magic, "line", "nbmedic")
    atexit.register(agent.at_exit)
