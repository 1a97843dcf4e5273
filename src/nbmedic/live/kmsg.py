"""The kernel log's OOM-killer line for a process (``/dev/kmsg``), when this user may read it.

``Out of memory: Killed process 4242 (python) total-vm:…`` (or ``Memory cgroup out of memory: Killed
process 4242 …``) is the only place Linux says it killed a process for memory.  Reading ``/dev/kmsg``
needs CAP_SYSLOG where ``kernel.dmesg_restrict`` is set (most distributions); without it there is no
line and the incident relies on the oom_kill counters.
"""

from __future__ import annotations

import os
import re

__all__ = ["oom_kill_line"]

_MAX_RECORDS = 20_000


def oom_kill_line(pid: int | None, *, path: str = "/dev/kmsg") -> str | None:
    """The last kernel log record that says ``Killed process <pid>``; None when absent or unreadable."""
    if pid is None:
        return None
    pattern = re.compile(rf"Killed process {pid}\b")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    found: str | None = None
    try:
        for _ in range(_MAX_RECORDS):
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break  # the end of the buffer
            except OSError:
                continue  # EPIPE: a record was overwritten while reading; the next one follows
            if not record:
                break
            for line in record.decode("utf-8", "replace").splitlines():
                # "<prio>,<seq>,<usec>,<flags>;<message>"; continuation lines (" KEY=value") start with a space
                if line.startswith(" ") or ";" not in line:
                    continue
                message = line.split(";", 1)[1].strip()
                if pattern.search(message):
                    found = message
    finally:
        os.close(fd)
    return found
