"""``nbmedic stack NOTEBOOK|KERNEL_ID``: every thread's Python stack of a running kernel, without stopping it.

A monitored Python kernel has faulthandler registered on SIGUSR1, writing to the file its session record
names: the signal makes it append one block per thread (``execute.stacks.capture_stacks``), and the kernel
goes on running.  SIGUSR1 is sent only when the process has a handler for it (its default action kills
the process); otherwise, and for kernels that are not monitored, py-spy is the only way, when installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from nbmedic.errors import NbmedicError
from nbmedic.execute.stacks import Frame, StackDump, ThreadStack, capture_stacks
from nbmedic.live.kernels import (
    LiveKernel,
    catches_signal,
    cell_label,
    format_duration,
    running_kernels,
    same_path,
)
from nbmedic.render.paths import display_path

__all__ = ["find_kernel", "header", "run"]

CELL_MARK = "cell> "  # before a frame of the running cell's code


def _describe(kernel: LiveKernel) -> str:
    notebook = f" ({display_path(kernel.notebook)})" if kernel.notebook else ""
    return f"{kernel.kernel_id[:8]}{notebook}{'' if kernel.monitored else ' [not monitored]'}"


def _listing(kernels: Sequence[LiveKernel]) -> str:
    shown = ", ".join(_describe(k) for k in kernels[:8])
    return shown + (f", ... ({len(kernels)} in all)" if len(kernels) > 8 else "")


def _looks_like_path(target: str) -> bool:
    return target.endswith(".ipynb") or os.sep in target or os.path.exists(target)


def find_kernel(kernels: Sequence[LiveKernel], target: str) -> LiveKernel:
    """The one kernel ``target`` names: a notebook path, or the start of a kernel id."""
    target = target.strip()
    if not target:
        raise NbmedicError("a notebook or a kernel id is needed (see `nbmedic ps`)")
    by_notebook = [k for k in kernels if same_path(k.notebook, target)] if _looks_like_path(target) else []
    matches = by_notebook or [k for k in kernels if k.kernel_id.startswith(target)]
    if not matches:
        running = f"running: {_listing(kernels)}" if kernels else "no kernel is running"
        raise NbmedicError(f"no running kernel for {target!r} ({running})")
    if len(matches) > 1:
        raise NbmedicError(f"{len(matches)} kernels match {target!r}: {_listing(matches)}; "
                           "give more of the kernel id")
    return matches[0]


def _py_spy_installed() -> bool:
    return bool(shutil.which("py-spy")) or os.access(os.path.join(os.path.dirname(sys.executable), "py-spy"), os.X_OK)


def _faulthandler_file(kernel: LiveKernel) -> str | None:
    """The file to read a SIGUSR1 dump from, only when the kernel really handles SIGUSR1."""
    if not kernel.monitored or not kernel.faulthandler:
        return None
    return kernel.faulthandler if catches_signal(kernel.pid) else None


def _capture(kernel: LiveKernel) -> StackDump:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    if not psutil.pid_exists(kernel.pid):
        raise NbmedicError(f"kernel {_describe(kernel)}: its process {kernel.pid} is gone")
    fault_file = _faulthandler_file(kernel)
    if fault_file is None and not _py_spy_installed():
        if kernel.monitored:
            raise NbmedicError(f"kernel {_describe(kernel)} has no faulthandler on SIGUSR1 (not a Python kernel, "
                               "or still starting) and py-spy is not installed (`pip install py-spy`)")
        raise NbmedicError(f"kernel {_describe(kernel)} is not monitored: `nbmedic stack` needs a monitored kernel "
                           "(`nbmedic monitor install`, then restart the kernel) or py-spy (`pip install py-spy`)")
    dump = capture_stacks(kernel.pid, fault_file)
    if dump is not None:
        return dump
    if not psutil.pid_exists(kernel.pid):
        raise NbmedicError(f"kernel {_describe(kernel)}: its process {kernel.pid} is gone")
    how = "faulthandler wrote no stack within 1 s" if fault_file else "py-spy gave no stack (ptrace permission?)"
    raise NbmedicError(f"kernel {_describe(kernel)} (pid {kernel.pid}): {how}")


def header(kernel: LiveKernel) -> str:
    """``kernel 3f2a1b4c · analysis.ipynb · pid 1234 · cell [7] spin() running for 12.3 s``."""
    parts = [f"kernel {kernel.kernel_id[:8]}"]
    if kernel.notebook:
        parts.append(display_path(kernel.notebook))
    parts.append(f"pid {kernel.pid}")
    if kernel.cell is not None:
        label = cell_label(kernel.cell.execution_count, kernel.cell.source_head, 60)
        parts.append(f"cell {label} running for {format_duration(kernel.cell.seconds)}")
    else:
        parts.append(kernel.state if kernel.monitored else "state unknown (not monitored)")
    return " · ".join(parts)


def _thread_title(thread: ThreadStack) -> str:
    what = ["main thread" if thread.is_main else (thread.name or "thread")]
    if thread.current:
        what.append("handled the signal")
    return f"Thread {thread.ident} ({', '.join(what)}), most recent call first:"


def _frame_text(frame: Frame) -> str:
    return ("  " + CELL_MARK if frame.in_cell else "  " + " " * len(CELL_MARK)) + str(frame)


def _text(kernel: LiveKernel, dump: StackDump) -> str:
    lines = [header(kernel)]
    where = dump.where()
    if where and dump.cell_frames():
        lines.append(f"the cell is at {where}")
    lines.append(f"(by {dump.method} in {dump.elapsed:.2f} s; `{CELL_MARK.strip()}` marks the running cell's code)")
    threads = sorted(dump.threads, key=lambda t: not t.is_main)
    for thread in threads:
        lines += ["", _thread_title(thread)]
        lines += [_frame_text(f) for f in thread.frames] or ["  (no Python frames)"]
    return "\n".join(lines)


def _frame_dict(frame: Frame) -> dict[str, Any]:
    return {"file": frame.file, "line": frame.line, "function": frame.function, "in_cell": frame.in_cell}


def _document(kernel: LiveKernel, dump: StackDump) -> dict[str, Any]:
    threads = [{"ident": t.ident, "name": t.name, "main": t.is_main, "current": t.current,
                "frames": [_frame_dict(f) for f in t.frames]} for t in dump.threads]
    return {"version": 1, "kernel": kernel.to_dict(), "method": dump.method, "elapsed": dump.elapsed,
            "where": dump.where(), "errors": list(dump.errors), "threads": threads}


def run(args: argparse.Namespace) -> int:
    kernel = find_kernel(running_kernels(cpu_interval=0.0), args.target)
    dump = _capture(kernel)
    if args.format == "json":
        sys.stdout.write(json.dumps(_document(kernel, dump), indent=2) + "\n")
    else:
        sys.stdout.write(_text(kernel, dump) + "\n")
    return 0
