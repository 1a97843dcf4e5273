"""Every thread's Python stack of a running (busy, stuck or crashed) kernel, without stopping it.

Two sources, in order of preference:

* **faulthandler**: the kernel is launched with ``faulthandler.register(SIGUSR1, all_threads=True)``
  writing to a file of ours (see ``kernel.py``); sending ``SIGUSR1`` appends one
  ``Thread 0x… (most recent call first):`` block per thread within milliseconds.  The same file gets
  the ``Fatal Python error: Segmentation fault`` dump when the kernel crashes in native code.
* **py-spy** (``py-spy dump --pid``) when faulthandler gave nothing (needs ptrace rights).

The main thread's frames name the cell: IPython compiles each cell to ``/tmp/ipykernel_<pid>/<hash>.py``,
so ``File "/tmp/ipykernel_123/456.py", line 3 in wait_for_data`` means line 3 of the running cell, in
function ``wait_for_data``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Frame", "StackDump", "ThreadStack", "capture_stacks", "parse_faulthandler", "parse_py_spy",
           "read_new_text"]

_HEADER = re.compile(r"^(Current thread|Thread) (0x[0-9a-fA-F]+) \(most recent call first\):\s*$")
_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+|\?\?\?) in (?P<func>.*?)\s*$')
_CELL_FILE = re.compile(r"ipykernel_\d+[/\\]\d+\.py$")
# py-spy: 'Thread 1234 (active+gil): "MainThread"' then '    func (file:line)' lines
_SPY_HEADER = re.compile(r'^Thread (?P<id>\S+) \((?P<state>[^)]*)\)(?::\s*"(?P<name>[^"]*)")?\s*$')
_SPY_FRAME = re.compile(r"^\s+(?P<func>.+?) \((?P<file>.+):(?P<line>\d+)\)\s*$")


@dataclass(frozen=True)
class Frame:
    file: str
    line: int | None
    function: str

    @property
    def in_cell(self) -> bool:
        """Is this frame the code of a notebook cell (IPython's ``ipykernel_<pid>/<hash>.py``)?"""
        return bool(_CELL_FILE.search(self.file))

    def __str__(self) -> str:
        return f'File "{self.file}", line {self.line if self.line is not None else "???"} in {self.function}'


@dataclass(frozen=True)
class ThreadStack:
    ident: str
    current: bool  # faulthandler's "Current thread" (the one that handled the signal)
    frames: tuple[Frame, ...]  # most recent call first
    name: str | None = None

    @property
    def is_main(self) -> bool:
        """The interpreter's main thread: its oldest frame is not ``threading``'s ``_bootstrap``."""
        if self.name is not None:
            return self.name == "MainThread"
        return bool(self.frames) and not (
            self.frames[-1].function in ("_bootstrap", "_bootstrap_inner")
            and self.frames[-1].file.replace("\\", "/").endswith("threading.py"))


@dataclass(frozen=True)
class StackDump:
    method: Literal["faulthandler", "py-spy"]
    threads: tuple[ThreadStack, ...]
    text: str  # the raw dump
    elapsed: float = 0.0  # seconds it took to get it
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def main(self) -> ThreadStack | None:
        for t in self.threads:
            if t.is_main:
                return t
        for t in self.threads:
            if t.current:
                return t
        return self.threads[0] if self.threads else None

    def cell_frames(self) -> list[Frame]:
        """The main thread's frames inside cell code, most recent first."""
        main = self.main
        return [f for f in main.frames if f.in_cell] if main else []

    def where(self) -> str | None:
        """``line 3 in wait_for_data`` (the innermost cell frame), plus the library call it is in."""
        main = self.main
        if main is None or not main.frames:
            return None
        cell = self.cell_frames()
        if not cell:
            top = main.frames[0]
            return f"{top.function} ({top.file}, line {top.line})"
        inner = cell[0]
        text = f"line {inner.line} in {inner.function}" if inner.function != "<module>" else f"line {inner.line}"
        above = main.frames[: main.frames.index(inner)]
        if above:
            lib = above[-1]  # the call the cell made, oldest first of the frames above the cell
            text += f", inside {lib.function} ({os.path.basename(lib.file)}, line {lib.line})"
        return text

    def main_text(self, limit: int = 40) -> str:
        """The main thread's stack as text (innermost first), cut to ``limit`` frames."""
        main = self.main
        if main is None:
            return self.text[-4000:]
        lines = [f"Thread {main.ident}{' (' + main.name + ')' if main.name else ''} (most recent call first):"]
        lines += [f"  {f}" for f in main.frames[:limit]]
        if len(main.frames) > limit:
            lines.append(f"  ... {len(main.frames) - limit} more frames")
        return "\n".join(lines)

    def to_evidence(self) -> dict[str, object]:
        cell = self.cell_frames()
        return {
            "where": self.where(),
            "stack": self.main_text(),
            "cell_line": cell[0].line if cell else None,
            "cell_function": cell[0].function if cell else None,
            "stack_method": self.method,
            "threads": len(self.threads),
        }


def parse_faulthandler(text: str) -> tuple[ThreadStack, ...]:
    """The thread blocks of a faulthandler dump (``Thread 0x…`` / ``Current thread 0x…``)."""
    threads: list[ThreadStack] = []
    ident: str | None = None
    current = False
    frames: list[Frame] = []

    def flush() -> None:
        if ident is not None:
            threads.append(ThreadStack(ident, current, tuple(frames)))

    for line in text.splitlines():
        head = _HEADER.match(line)
        if head:
            flush()
            ident, current, frames = head.group(2), head.group(1) == "Current thread", []
            continue
        m = _FRAME.match(line)
        if m and ident is not None:
            ln = m.group("line")
            frames.append(Frame(m.group("file"), int(ln) if ln.isdigit() else None, m.group("func")))
        elif ident is not None and not line.strip():
            flush()
            ident, frames = None, []
    flush()
    return tuple(threads)


def parse_py_spy(text: str) -> tuple[ThreadStack, ...]:
    threads: list[ThreadStack] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        head_at = next((i for i, ln in enumerate(lines) if _SPY_HEADER.match(ln)), None)
        if head_at is None:
            continue
        head = _SPY_HEADER.match(lines[head_at])
        assert head is not None
        frames = []
        for ln in lines[head_at + 1:]:
            m = _SPY_FRAME.match(ln)
            if m:
                frames.append(Frame(m.group("file"), int(m.group("line")), m.group("func")))
        threads.append(ThreadStack(head.group("id"), False, tuple(frames), name=head.group("name")))
    return tuple(threads)


def read_new_text(path: str, offset: int) -> str:
    """The text appended to ``path`` after byte ``offset`` ('' when unreadable)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _faulthandler_dump(pid: int, path: str, wait: float) -> str:
    """Send SIGUSR1 and return the complete new dump (waits until the text stops growing)."""
    offset = _file_size(path)
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        return ""
    deadline = time.monotonic() + wait
    text = ""
    settled_at: float | None = None
    while time.monotonic() < deadline:
        time.sleep(0.01)
        new = read_new_text(path, offset)
        if new != text:
            text, settled_at = new, time.monotonic()
            continue
        # complete: a block was written and nothing was added for 50 ms (the main thread comes last)
        if text and settled_at is not None and time.monotonic() - settled_at >= 0.05 and "(most recent call first)" in text:
            break
    return text


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return candidate if os.access(candidate, os.X_OK) else None


def _py_spy_dump(pid: int, timeout: float) -> tuple[str, str | None]:
    exe = _py_spy()
    if exe is None:
        return "", "py-spy is not installed"
    try:
        proc = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"py-spy failed: {exc}"
    if proc.returncode != 0:
        return "", f"py-spy exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return proc.stdout, None


def capture_stacks(pid: int | None, faulthandler_file: str | None, *, wait: float = 1.0,
                   py_spy_timeout: float = 5.0) -> StackDump | None:
    """Every thread's stack of the live process ``pid``; None when neither method gave one."""
    if pid is None:
        return None
    start = time.monotonic()
    errors: list[str] = []
    if faulthandler_file is not None:
        text = _faulthandler_dump(pid, faulthandler_file, wait)
        threads = parse_faulthandler(text)
        if threads:
            return StackDump("faulthandler", threads, text, time.monotonic() - start)
        errors.append(f"faulthandler wrote no stack within {wait:.1f} s")
    text, error = _py_spy_dump(pid, py_spy_timeout)
    if error:
        errors.append(error)
    threads = parse_py_spy(text)
    if threads:
        return StackDump("py-spy", threads, text, time.monotonic() - start, tuple(errors))
    return None


def crash_dump(text: str) -> tuple[str, StackDump] | None:
    """The last ``Fatal Python error: …`` dump in faulthandler output: (the error line, its stacks)."""
    at = text.rfind("Fatal Python error:")
    if at < 0:
        return None
    block = text[at:]
    first = block.splitlines()[0].strip()
    threads = parse_faulthandler(block)
    return first, StackDump("faulthandler", threads, block)
