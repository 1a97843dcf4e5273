"""What ``nbmedic run`` shows on stderr while a batch runs: a live table on a terminal, one line per finished
notebook without one, and the progress events of the batch (from its threads too) behind them."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from nbmedic.ansi import strip_ansi
from nbmedic.commands.run import LiveTable
from nbmedic.execute.batch import execute
from nbmedic.execute.jobs import RunJob
from nbmedic.execute.options import RunOptions
from nbmedic.execute.result import RunResult
from tests.runhelpers import make_nb

MiB = 2**20


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "TERM")}
    env.update(TERM="xterm-256color", **extra)
    return env


def _nbmedic(*args: str) -> list[str]:
    return [sys.executable, "-m", "nbmedic", *args]


def _on_a_terminal(argv: list[str], env: dict[str, str], timeout: float = 120.0) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal (120 columns); (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env) as proc:
        os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        os.close(master)
        out = proc.stdout.read().decode() if proc.stdout else ""
        code = proc.wait(timeout=30)
    return code, out, b"".join(chunks).decode("utf-8", "replace")


def _slow_nbs(tmp_path: Path, *names: str, sleep: float = 1.5) -> list[Path]:
    return [make_nb(tmp_path, "import time\nblock = bytearray(40 * 2**20)", f"time.sleep({sleep})", "print('done')",
                    name=name) for name in names]


# --- the events of a batch --------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_reports_starts_cells_and_memory_of_each_notebook(tmp_path: Path, jupyter_home: dict[str, Path],
                                                                 workers: int) -> None:
    paths = _slow_nbs(tmp_path, "a.ipynb", "b.ipynb", sleep=1.2)
    jobs = [RunJob(str(p), RunOptions()) for p in paths]
    events: list[tuple[Any, ...]] = []
    lock = threading.Lock()

    def note(*event: Any) -> None:
        with lock:
            events.append(event)

    results = execute(jobs, workers, lambda i, r: note("done", i, r.status), lambda i, d, t: note("cell", i, d, t),
                      on_start=lambda i: note("start", i), on_memory=lambda i, rss: note("memory", i, rss))
    assert [r.status for r in results] == ["ok", "ok"]
    for i in (0, 1):
        mine = [e for e in events if e[1] == i]
        assert mine[0] == ("start", i) and mine[-1] == ("done", i, "ok")
        assert [e[2:] for e in mine if e[0] == "cell"] == [(0, 3), (1, 3), (2, 3), (3, 3)]
        memory = [e[2] for e in mine if e[0] == "memory"]
        assert memory and max(memory) > 40 * MiB  # the kernel's tree, with its 40 MiB block
        assert max(memory) <= results[i].peak_rss + 8 * MiB  # that tree only: no fork template, no worker


def test_without_listeners_a_parallel_batch_runs_as_before(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    paths = [make_nb(tmp_path, "print(1)", name=f"{n}.ipynb") for n in "ab"]
    done: list[int] = []
    results = execute([RunJob(str(p), RunOptions()) for p in paths], 2, lambda i, r: done.append(i))
    assert [r.status for r in results] == ["ok", "ok"] and sorted(done) == [0, 1]


# --- the live table ---------------------------------------------------------------------------------

def _shown(table: LiveTable) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    console.print(table.renderable())
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_the_live_table_shows_counts_running_notebooks_their_cell_and_memory() -> None:
    screen = Console(file=io.StringIO(), force_terminal=True, width=100)
    table = LiveTable(["nb/a[x=1].ipynb", "nb/b.ipynb", "nb/c.ipynb"], console=screen)
    try:
        assert "0/3 done, 0 failed, 0 running, 3 waiting" in _shown(table)
        table.start(0)
        table.start(1)
        table.cell(0, 2, 5)
        table.memory(0, 120 * MiB)
        shown = _shown(table)
        assert "0/3 done, 0 failed, 2 running, 1 waiting" in shown
        row_a = next(line for line in shown.splitlines() if "a[" in line)
        assert row_a.split()[:4] == [os.path.join("nb", "a[x=1].ipynb"), "3/5", "120.0", "MiB"]
        row_b = next(line for line in shown.splitlines() if "b.ipynb" in line)
        assert row_b.split()[1] == "starting"
        table.done(1, RunResult(path="nb/b.ipynb", status="died", duration=7.25))
        table.memory(1, 50 * MiB)  # late news of a finished notebook changes nothing
        table.done(0, RunResult(path="nb/a[x=1].ipynb", status="ok", duration=2.0))
        shown = _shown(table)
        assert "2/3 done, 1 failed, 0 running, 1 waiting" in shown
        assert "slowest so far: nb/b.ipynb 7.2 s" in shown.replace(os.sep, "/")
        assert not any(line.startswith("running") for line in shown.splitlines())  # no table: none running
    finally:
        table.close()
    assert isinstance(screen.file, io.StringIO) and "2/3 done" in screen.file.getvalue()


def test_a_terminal_gets_the_live_table(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    paths = _slow_nbs(tmp_path, "first.ipynb", "second.ipynb")
    code, out, screen = _on_a_terminal(_nbmedic("run", *map(str, paths), "-j", "2"), _env())
    assert code == 0, screen
    text = strip_ansi(screen)
    assert "running" in text and "memory" in text
    for name in ("first.ipynb", "second.ipynb"):
        rows = [line for line in text.splitlines() if line.strip().startswith(name)]
        assert any(re.search(r"\d/3\s+\d+\.\d MiB\s+\d+\.\d s", row) for row in rows), rows
    assert "nbmedic run: 0/2 done, 0 failed, 2 running, 0 waiting" in text
    assert "nbmedic run: 2/2 done, 0 failed, 0 running, 0 waiting" in text
    assert "slowest so far: " in text
    assert "2 notebooks run: 0 errors" in out and "\x1b[" not in out  # the report itself is on stdout


# --- plain progress ---------------------------------------------------------------------------------

_LINE = re.compile(r"^\[([12])/2\] (good|bad)\.ipynb: (ok|failed \(RN120\)), (\d)/(\d) cells in \d+\.\d s, "
                   r"peak RSS \d+\.\d MiB$")


def _plain_batch(tmp_path: Path) -> list[str]:
    good = make_nb(tmp_path, "print('fine')", name="good.ipynb")
    bad = make_nb(tmp_path, "raise ValueError('no')", "print('never')", name="bad.ipynb")
    return _nbmedic("run", str(good), str(bad))


def _check_lines(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    matches = [_LINE.match(line) for line in lines]
    assert len(lines) == 2 and all(matches), lines
    got = {m.group(2): m.groups() for m in matches if m}
    assert [m.group(1) for m in matches if m] == ["1", "2"]
    assert got["good"][2:] == ("ok", "1", "1") and got["bad"][2:] == ("failed (RN120)", "1", "2")


def test_without_a_terminal_each_finished_notebook_is_one_line(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    proc = subprocess.run(_plain_batch(tmp_path), capture_output=True, text=True, env=_env(), timeout=120,
                          check=False)
    assert proc.returncode == 1, proc.stderr
    _check_lines(proc.stderr)
    assert "bad.ipynb" in proc.stdout and "[1/2]" not in proc.stdout
    one = subprocess.run(_nbmedic("run", str(tmp_path / "good.ipynb")), capture_output=True, text=True,
                         env=_env(), timeout=120, check=False)
    assert one.returncode == 0 and one.stderr == ""  # one notebook: nothing on stderr, as before


def test_in_ci_a_terminal_gets_plain_lines(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    code, _, screen = _on_a_terminal(_plain_batch(tmp_path), _env(CI="true"))
    assert code == 1
    _check_lines(screen.replace("\r\n", "\n"))
