"""nbmedic's memory profiler inside a kernel that ``nbmedic run --profile-memory`` runs.

Its source text is sent to the kernel in one silent execute request (``execute/memprofile.py``), after the
kernel is ready and before the first cell.  It runs in whatever environment the kernel has: standard library
only, never an import of nbmedic, no name added to the user namespace, nothing printed, and every hook
swallows its own errors, so a cell never sees one.

* ``install``: ``tracemalloc.start(NFRAMES)``, the ``pre_run_cell`` / ``post_run_cell`` hooks and a watcher
  thread;
* ``pre_run_cell``: the cell's start level (traced bytes), ``tracemalloc.reset_peak()``, the previous cell's
  peak file removed, the snapshots' rate limit (``SNAPSHOT_SHARE``) lifted;
* the watcher (every ``POLL`` s while a cell runs): when the traced memory has grown past the latest
  snapshot's level by ``GROWTH_SHARE`` and ``GROWTH_MIN``, a snapshot; its top sites go to ``PEAK_FILE``
  at once (a kernel killed for memory cannot report afterwards);
* ``post_run_cell``: a snapshot; ``CELL_FILE`` holds the cell's record.

A site is where memory allocated during the cell (this snapshot minus the previous cell's end, per
traceback) was allocated: ``exec`` and ``line`` of the innermost frame in a notebook cell (``exec`` is the
execution count IPython compiled that cell under: ``compile._filename_map``), ``from`` the execution count
of the outermost cell frame (the cell that ran the code; None when the traceback was cut at ``NFRAMES``),
``package`` the library the cell called into (the outermost third-party package between the allocation and
the cell frame; ``python`` for the standard library; the file name for other modules), ``bytes`` and
``count`` (blocks).  The files are JSON, replaced atomically:

* ``CELL_FILE``: ``{"count": N, "traced_end": B, "traced_peak": B, "peak_at": B, "end": [site], "peak":
  [site]}`` (``peak``: the snapshot nearest the peak, taken at ``peak_at`` traced bytes);
* ``PEAK_FILE``: ``{"count": N or null, "traced": B, "sites": [site]}``.
"""

from __future__ import annotations

import json
import os
import re
import sysconfig
import tempfile
import threading
import time
import tracemalloc
from typing import Any

__all__ = ["CELL_FILE", "PEAK_FILE", "Profiler", "install"]

CELL_FILE = "memprofile-cell.json"
PEAK_FILE = "memprofile-peak.json"
AGENT_FILE = "<nbmedic-memprofile>"  # the file name this source is compiled under: its own traces are left out
FRAMES_ENV = "NBMEDIC_PROFILE_FRAMES"
# frames kept per allocation.  Each one more costs: allocation-heavy code (pandas building frames of strings)
# ran 13x slower with 1 or 2 frames, 21x with 3, 29x with 4, 220x with 25 (measured).  Two name the cell
# line of an allocation made by a C library (numpy) or in a function an earlier cell defined; a call
# through a pure-Python library is named by its package.  NBMEDIC_PROFILE_FRAMES=N keeps more, to reach
# the calling cell through deeper calls (a comprehension inside a function called from a cell takes 4).
try:
    NFRAMES = max(1, min(100, int(os.environ.get(FRAMES_ENV, "") or 2)))
except ValueError:
    NFRAMES = 2
TOP = 5  # sites kept per list
POLL = 0.01  # seconds between the watcher's looks at the traced memory
GROWTH_SHARE = 0.1  # a peak snapshot when the traced memory grew 10 % ...
GROWTH_MIN = 1 << 20  # ... and 1 MiB past the latest snapshot,
SNAPSHOT_SHARE = 0.2  # ... and the snapshots took at most this share of the time (many live blocks: slower)
_ATTR = "_nbmedic_memprofile"  # on the shell: installing twice registers the hooks once

Traceback = tuple[tuple[str, int], ...]  # tracemalloc's raw frames, most recent first
Key = tuple[Any, ...]  # (exec, line, package, from)
KERNEL: Key = ("kernel",)  # allocations no cell made: left out of the sites
# files below every cell frame in the kernel's stack: frames cut short that still reach one hold no cell
_BELOW_CELLS = tuple(os.sep + name for name in (
    "ipykernel_launcher.py", "kernelapp.py", "kernelbase.py", "template_main.py")) + ("<frozen runpy>",)


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


def _sweep_stale_temps(path: str) -> None:
    """Remove the temporary files a killed writer of ``path`` left (its pid, in the name, no longer runs)."""
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
    """Atomic replace; no fsync (the reader outlives the kernel, not the machine).  The temporary file
    (0600, as mkstemp makes it) carries this process's pid; the first write to a path in this process
    removes what a killed kernel left beside it."""
    folder, name = os.path.split(path)
    if path not in _swept:
        _swept.add(path)
        _sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _library_roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(folders of the standard library, folders of installed packages)."""
    paths = sysconfig.get_paths()
    std = {paths.get("stdlib"), paths.get("platstdlib")}
    site = {paths.get("purelib"), paths.get("platlib")}
    std_roots = tuple(os.path.join(p, "") for p in std if p)
    return std_roots, tuple(os.path.join(p, "") for p in site if p)


class Profiler:
    """The hooks and the watcher of one shell."""

    def __init__(self, ip: Any, folder: str) -> None:
        self.ip = ip
        self.cell_path = os.path.join(folder, CELL_FILE)
        self.peak_path = os.path.join(folder, PEAK_FILE)
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.baseline: dict[Traceback, tuple[int, int]] = {}  # the previous cell's end: bytes, blocks
        self.keys: dict[Traceback, Key | None] = {}
        self.packages: dict[str, str] = {}
        self.std, self.site = _library_roots()
        self.files_before = 0  # cells compiled before the running one
        self.level = 0  # traced bytes at the latest snapshot (or at the cell's start)
        self.peak = 0  # the running cell's traced peak, the profiler's own snapshots left out
        self.peak_sites: list[dict[str, Any]] | None = None
        self.peak_at = 0
        self.next_snapshot = 0.0  # time.monotonic() before which the watcher takes no snapshot

    # --- hooks (each swallows its errors: the user's cell must never see one) ------------------------

    def pre_run_cell(self, info: Any = None) -> None:
        try:
            with self.lock:
                _remove(self.peak_path)
                self.files_before = len(self.filename_map())
                tracemalloc.reset_peak()
                self.level = self.peak = tracemalloc.get_traced_memory()[0]
                self.peak_sites, self.peak_at = None, 0
                # the rate limit spaces snapshots within a cell; one the previous cell took must not
                # leave a short cell that follows without any snapshot of its peak
                self.next_snapshot = 0.0
                self.running.set()
        except Exception:  # noqa: BLE001, S110 - never into the user's cell
            pass

    def post_run_cell(self, result: Any = None) -> None:
        try:
            self.running.clear()
            with self.lock:
                self.cell_finished(getattr(result, "execution_count", None))
        except Exception:  # noqa: BLE001, S110 - never into the user's cell
            pass

    def watch(self) -> None:
        """The watcher thread: a snapshot each time the traced memory climbs past the latest one's level."""
        while True:
            self.running.wait()
            time.sleep(POLL)
            try:
                current = tracemalloc.get_traced_memory()[0]
                if current - self.level >= max(GROWTH_MIN, GROWTH_SHARE * self.level) and \
                        time.monotonic() >= self.next_snapshot:
                    with self.lock:
                        if self.running.is_set():
                            began = time.monotonic()
                            self.peak_snapshot()
                            took = time.monotonic() - began
                            self.next_snapshot = began + took / SNAPSHOT_SHARE
            except Exception:  # noqa: BLE001, S110 - the watcher must outlive any odd moment
                pass

    # --- snapshots ---------------------------------------------------------------------------------------

    def filename_map(self) -> dict[str, int]:
        value = getattr(getattr(self.ip, "compile", None), "_filename_map", None)
        return value if isinstance(value, dict) else {}

    def current_count(self) -> int | None:
        """The execution count of the running cell: the newest cell file compiled since ``pre_run_cell``."""
        files = self.filename_map()
        if len(files) <= self.files_before:
            return None
        value = files[next(reversed(files))]
        return value if isinstance(value, int) else None

    def snapshot(self) -> tuple[int, dict[Traceback, tuple[int, int]]]:
        """(traced bytes before the snapshot, the snapshot's bytes and blocks per traceback); the cell's peak
        is kept, then reset, so the snapshot's own memory does not count as the cell's."""
        current, peak = tracemalloc.get_traced_memory()
        self.peak = max(self.peak, peak)
        snap = tracemalloc.take_snapshot()
        raw = getattr(snap.traces, "_traces", None)
        if raw is None:  # another Python's Snapshot: its public traces, in the same shape
            raw = [(0, t.size, tuple((f.filename, f.lineno) for f in reversed(t.traceback)), 0)
                   for t in snap.traces]
        sizes: dict[Traceback, list[int]] = {}
        for trace in raw:  # no new int per trace: under tracemalloc every allocation costs
            try:
                sizes[trace[2]].append(trace[1])
            except KeyError:
                sizes[trace[2]] = [trace[1]]
        del raw, snap
        groups = {tb: (sum(v), len(v)) for tb, v in sizes.items()}
        del sizes
        tracemalloc.reset_peak()
        return current, groups

    def sites(self, groups: dict[Traceback, tuple[int, int]]) -> tuple[list[dict[str, Any]], int]:
        """The top sites of what was allocated since the previous cell's end, and the profiler's own bytes."""
        totals: dict[Key, list[int]] = {}
        own = 0
        for tb, (size, blocks) in groups.items():
            old = self.baseline.get(tb, (0, 0))
            key = self.key(tb)
            if key is None:
                own += size
                continue
            if key is KERNEL:
                continue
            if size != old[0] or blocks != old[1]:
                acc = totals.setdefault(key, [0, 0])
                acc[0] += size - old[0]
                acc[1] += blocks - old[1]
        for tb, (size, blocks) in self.baseline.items():
            if tb not in groups:
                key = self.key(tb)
                if key is not None and key is not KERNEL:
                    acc = totals.setdefault(key, [0, 0])
                    acc[0] -= size
                    acc[1] -= blocks
        top = sorted(((v[0], v[1], k) for k, v in totals.items() if v[0] > 0), key=lambda item: -item[0])[:TOP]
        return [{"exec": k[0], "line": k[1], "package": k[2], "from": k[3], "bytes": b, "count": n}
                for b, n, k in top], own

    def peak_snapshot(self) -> None:
        current, groups = self.snapshot()
        sites, own = self.sites(groups)
        self.level = current
        self.peak_sites, self.peak_at = sites, max(0, current - own)
        _write_json(self.peak_path, {"count": self.current_count(), "traced": self.peak_at, "sites": sites})

    def cell_finished(self, count: Any) -> None:
        current, groups = self.snapshot()
        sites, own = self.sites(groups)
        end = max(0, current - own)
        peak, peak_at = (self.peak_sites, self.peak_at) if (
            self.peak_sites is not None and self.peak_at > end) else (sites, end)
        self.baseline = groups
        self.keys = {tb: key for tb, key in self.keys.items() if tb in groups}
        _write_json(self.cell_path, {
            "count": count if isinstance(count, int) else None, "traced_end": end,
            "traced_peak": max(end, self.peak - own), "peak_at": peak_at, "end": sites, "peak": peak})

    # --- where an allocation comes from ------------------------------------------------------------------

    def key(self, tb: Traceback) -> Key | None:
        """(exec, line, package, from) of a traceback; None for the profiler's own allocations, ``KERNEL``
        for those of code no cell called."""
        if tb in self.keys:
            return self.keys[tb]
        files = self.filename_map()
        inner: tuple[int, int] | None = None
        outer: int | None = None
        package: str | None = None
        for filename, line in tb:
            if filename == AGENT_FILE:
                self.keys[tb] = None
                return None
            count = files.get(filename)
            if isinstance(count, int):
                inner = inner or (count, line)
                outer = count
            elif inner is None:
                name = self.package(filename)
                if package is None or name != "python":  # the outermost third-party package wins
                    package = name
        truncated = len(tb) >= NFRAMES
        if inner is None and (not truncated or any(f.endswith(_BELOW_CELLS) for f, _ in tb)):
            key: Key | None = KERNEL  # the kernel's own work (its threads, the messaging): no cell ran it
        elif inner is None:
            key = (None, None, package, None)  # a library call deeper than NFRAMES: the package alone
        else:  # the calling cell is known unless the frames were cut at a cell frame
            cut = truncated and isinstance(files.get(tb[-1][0]), int)
            key = (inner[0], inner[1], package, None if cut else outer)
        self.keys[tb] = key
        return key

    def package(self, filename: str) -> str:
        """``numpy`` for .../site-packages/numpy/..., ``python`` for the standard library, else the file."""
        known = self.packages.get(filename)
        if known is not None:
            return known
        name = os.path.basename(filename) or filename
        for root in self.site:
            if filename.startswith(root):
                first = filename[len(root):].split(os.sep, 1)[0]
                name = first.split(".", 1)[0] if first.endswith((".py", ".so", ".pyd")) else first
                break
        else:
            if filename.startswith(("<", *self.std)):
                name = "python"
            elif os.sep + "site-packages" + os.sep in filename or os.sep + "dist-packages" + os.sep in filename:
                rest = filename.split("-packages" + os.sep, 1)[1]
                name = rest.split(os.sep, 1)[0].split(".", 1)[0]
        self.packages[filename] = name
        return name


def install(ip: Any, folder: str) -> bool:
    """Start tracing, register the hooks and the watcher (once per shell)."""
    if ip is None or getattr(ip, _ATTR, None) is not None:
        return False
    profiler = Profiler(ip, folder)
    setattr(ip, _ATTR, profiler)
    ip.events.register("pre_run_cell", profiler.pre_run_cell)
    ip.events.register("post_run_cell", profiler.post_run_cell)
    threading.Thread(target=profiler.watch, name="nbmedic-memprofile", daemon=True).start()
    if not tracemalloc.is_tracing():
        tracemalloc.start(NFRAMES)
    return True


