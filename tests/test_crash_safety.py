"""Crash safety: nbmedic killed (SIGKILL) at any moment while it writes never leaves a half-written file.

Each command runs as a real ``python -m nbmedic`` subprocess.  One uninterrupted run gives the new content
and the command's duration; then, for each of ``NBMEDIC_CRASH_KILLS`` trials, the old state is put back,
the command started and killed at a time drawn uniformly over that duration, plus one trial killed the
moment its temporary file appears (mid-write: tried again, up to ``MID_WRITE_TRIES`` times, when the kill
came too late to leave the file).  After each kill the target (and the ``.bak``
beside it) is byte-for-byte the complete old or the complete new content; the command run again to the
end leaves the new content and no temporary file in the folder (the next write removes what a killed
writer left: ``notebook.io.sweep_stale_temps``).  ``NBMEDIC_CRASH_SEED`` repeats a run's kill times.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbmedic.execute import memprofile_agent
from nbmedic.live import agent
from tests.runhelpers import kernelspec, make_nb, text_of

KILLS = int(os.environ.get("NBMEDIC_CRASH_KILLS", "5"))
SEED = int(os.environ.get("NBMEDIC_CRASH_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)
TEMP_MARKS = (".nbmedic-tmp", ".tmp")
MID_WRITE_TRIES = 5  # attempts at one kill while the temporary file exists (see Trials.run)


def nbmedic(*args: str) -> list[str]:
    return [sys.executable, "-m", "nbmedic", *args]


def big_notebook(mb: int, *, seed: int = 1) -> dict[str, Any]:
    """A notebook of about ``mb`` MB: image outputs (incompressible) and long streams, with ids."""
    rnd = random.Random(seed)
    blob = base64.b64encode(rnd.randbytes(600_000)).decode()
    cells = []
    for i in range(max(1, mb * 10 // 8)):
        cells.append({"cell_type": "code", "execution_count": i + 1, "id": f"cell-{i}", "metadata": {},
                      "source": f"x = {i}\n", "outputs": [
                          {"output_type": "display_data", "metadata": {},
                           "data": {"image/png": blob, "text/plain": ["<Figure>"]}},
                          {"output_type": "stream", "name": "stdout", "text": [f"line {j}\n" for j in range(200)]}]})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def dump(nb: dict[str, Any]) -> bytes:
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


def temps(folder: Path) -> list[str]:
    """Temporary files and folders nbmedic may leave (its own suffix, and the agents' old ``.tmp``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMP_MARKS))


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def reap(marker: str) -> None:
    """Kill what a killed nbmedic left running (kernels, templates): processes naming ``marker``."""
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if marker in " ".join(proc.cmdline()) or any(marker in v for v in proc.environ().values()):
                proc.kill()
        except (psutil.Error, OSError):
            continue


@dataclass
class Case:
    argv: list[str]
    target: Path
    prepare: Callable[[], None]  # puts the old state back
    backup: Path | None = None
    codes: tuple[int, ...] = (0,)
    is_new: Callable[[bytes], bool] | None = None  # when the new content is not byte-stable (run)
    extra: list[Path] = field(default_factory=list)  # other files that must stay whole (old or new)
    folder: Path | None = None  # where temporary files would be (and the command runs): the target's

    def __post_init__(self) -> None:
        self.folder = self.folder or self.target.parent


class Trials:
    def __init__(self, case: Case, env: dict[str, str], marker: str) -> None:
        self.case, self.env, self.marker = case, env, marker
        case.prepare()
        self.old = read(case.target)
        self.old_extra = [read(p) for p in case.extra]
        start = time.monotonic()
        self.finish()
        self.duration = time.monotonic() - start
        self.new = read(case.target)
        self.new_extra = [read(p) for p in case.extra]
        assert self.new is not None and self.new != self.old, "the command changed nothing: no test"
        self.rng = random.Random(f"{SEED}-{' '.join(case.argv[3:])}")
        self.left: list[str] = []

    def finish(self) -> None:
        proc = subprocess.run(self.case.argv, check=False, env=self.env, capture_output=True, timeout=240,
                              cwd=self.case.folder)
        assert proc.returncode in self.case.codes, proc.stderr.decode(errors="replace")[-2000:]

    def whole(self, data: bytes | None) -> bool:
        if data == self.old or data == self.new:
            return True
        return data is not None and self.case.is_new is not None and self.case.is_new(data)

    def kill_at(self, delay: float | None) -> None:
        """Start, kill after ``delay`` s (None: the moment a temporary file appears), check, finish, check."""
        case = self.case
        folder = case.folder or case.target.parent
        case.prepare()
        proc = subprocess.Popen(case.argv, env=self.env, cwd=folder, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            if delay is None:
                deadline = time.monotonic() + 60
                while not temps(folder) and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.0005)
            else:
                time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
            reap(self.marker)
        when = "at the temporary file" if delay is None else f"after {delay:.3f} s"
        why = f"killed {when} (NBMEDIC_CRASH_SEED={SEED})"
        self.left += temps(folder)
        got = read(case.target)
        assert self.whole(got), f"{case.target.name} is neither the old nor the new content, {why}"
        for path, old, new in zip(case.extra, self.old_extra, self.new_extra):
            assert read(path) in (old, new), f"{path.name} is partial, {why}"
        if case.backup is not None:
            bak = read(case.backup)
            assert bak in (None, self.old), f"{case.backup.name} is partial, {why}"
            if got != self.old:
                assert bak == self.old, f"the target was replaced before its backup was whole, {why}"
        self.finish()
        assert self.whole(read(case.target)) and read(case.target) != self.old, why
        assert temps(folder) == [], f"temporary files left after the next run, {why}"

    def run(self, kills: int = KILLS) -> None:
        # The kill at the temporary file lands mid-write only if this process sees the file and signals within
        # the write (some tens of ms for 30 MB); on a loaded machine (the suite on two workers) it can be
        # scheduled too late, so a kill that left no temporary file is tried again, up to MID_WRITE_TRIES times.
        for _ in range(MID_WRITE_TRIES):
            landed = len(self.left)
            self.kill_at(None)
            if len(self.left) > landed:
                break
        for _ in range(kills):
            self.kill_at(self.rng.uniform(0, self.duration))


@pytest.fixture
def env(jupyter_home: dict[str, Path]) -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _copy_in(path: Path, data: bytes, *extra_gone: Path) -> Callable[[], None]:
    def prepare() -> None:
        path.write_bytes(data)
        for p in extra_gone:
            p.unlink(missing_ok=True)
    return prepare


# --- notebook writers -------------------------------------------------------------------------------

def test_strip_in_place(tmp_path: Path, env: dict[str, str]) -> None:
    nb = tmp_path / "work" / "big.ipynb"
    nb.parent.mkdir()
    case = Case(nbmedic("strip", nb.name), nb, _copy_in(nb, dump(big_notebook(30))))
    trials = Trials(case, env, str(tmp_path))
    trials.run()
    assert trials.left, "no kill landed during a write: the test proves nothing"


def test_repair_in_place_keeps_a_whole_backup(tmp_path: Path, env: dict[str, str]) -> None:
    nb = tmp_path / "work" / "broken.ipynb"
    nb.parent.mkdir()
    doc = big_notebook(3)  # repair validates the whole notebook: slower per MB than the others
    for cell in doc["cells"][:3]:
        del cell["metadata"]  # repair adds it back
    case = Case(nbmedic("repair", "--in-place", nb.name), nb, _copy_in(nb, dump(doc), nb.with_name(nb.name + ".bak")),
                backup=nb.with_name(nb.name + ".bak"))
    Trials(case, env, str(tmp_path)).run()


def test_slim_in_place_keeps_a_whole_backup(tmp_path: Path, env: dict[str, str]) -> None:
    nb = tmp_path / "work" / "fat.ipynb"
    nb.parent.mkdir()
    bak = nb.with_name(nb.name + ".bak")
    case = Case(nbmedic("slim", "--in-place", nb.name), nb, _copy_in(nb, dump(big_notebook(30)), bak), backup=bak)
    Trials(case, env, str(tmp_path)).run()


def test_merge_driver_writes_the_local_file_whole(tmp_path: Path, env: dict[str, str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    base = big_notebook(20)
    local, remote = copy.deepcopy(base), copy.deepcopy(base)
    local["cells"][0]["source"] = "local = 1\n"
    remote["cells"][-1]["source"] = "remote = 1\n"
    (work / "base.ipynb").write_bytes(dump(base))
    (work / "remote.ipynb").write_bytes(dump(remote))
    target = work / "local.ipynb"
    case = Case(nbmedic("merge", "--driver", "base.ipynb", "local.ipynb", "remote.ipynb", "7", "nb.ipynb"),
                target, _copy_in(target, dump(local)))
    trials = Trials(case, env, str(tmp_path))
    merged = json.loads(trials.new or b"")
    assert merged["cells"][0]["source"] == ["local = 1\n"] and merged["cells"][-1]["source"] == ["remote = 1\n"]
    trials.run()


def test_env_capture_into_the_notebook(tmp_path: Path, env: dict[str, str]) -> None:
    nb = tmp_path / "work" / "captured.ipynb"
    nb.parent.mkdir()
    case = Case(nbmedic("env", "capture", nb.name, "--python", sys.executable), nb,
                _copy_in(nb, dump(big_notebook(20))))
    Trials(case, env, str(tmp_path)).run()


def test_run_in_place_with_a_real_kernel(tmp_path: Path, env: dict[str, str], jupyter_home: dict[str, Path]) -> None:
    kernelspec(jupyter_home["data"], "crashpy", [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    nb = tmp_path / "work" / "executed.ipynb"
    nb.parent.mkdir()
    doc = big_notebook(8)
    doc["metadata"]["kernelspec"]["name"] = "crashpy"
    doc["cells"].insert(0, {"cell_type": "code", "execution_count": None, "id": "big-out", "metadata": {},
                            "outputs": [], "source": "print('y' * 4_000_000)\nprint('done')\n"})
    for cell in doc["cells"][1:]:
        cell["source"] = "pass\n"

    def is_new(data: bytes) -> bool:  # the run's timings differ from one run to the next
        try:
            saved = json.loads(data)
        except ValueError:
            return False
        return text_of(saved["cells"][0]).endswith("done\n") and len(saved["cells"]) == len(doc["cells"])

    case = Case(nbmedic("run", "--in-place", nb.name), nb, _copy_in(nb, dump(doc)), is_new=is_new)
    Trials(case, env, str(tmp_path)).run(kills=max(2, KILLS // 2))


def test_a_killed_runs_kernel_and_template_folders_go_at_the_next_run(tmp_path: Path, env: dict[str, str],
                                                                      jupyter_home: dict[str, Path]) -> None:
    """The folders of a SIGKILLed run (connection file, ipc sockets, logs; the fork template's) carry its
    pid; the next run removes them (``execute.scratch``)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**env, "TMPDIR": str(tmp)}
    slow = make_nb(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(60)", name="slow.ipynb")
    quick = make_nb(tmp_path, "print('quick')", name="quick.ipynb")
    ours = ("nbmedic-kernel-", "nbmedic-template-")

    def folders() -> list[str]:
        return sorted(p.name for p in tmp.iterdir() if p.name.startswith(ours))

    proc = subprocess.Popen(nbmedic("run", slow.name), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not any((tmp / name / "kernel.json").exists() for name in folders()):
            assert proc.poll() is None and time.monotonic() < deadline, "the kernel never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        reap(str(tmp_path))
    left = folders()
    assert any(name.startswith(f"nbmedic-kernel-{proc.pid}-") for name in left), left
    done = subprocess.run(nbmedic("run", quick.name), env=env, cwd=tmp_path, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert folders() == []


# --- kernelspecs ------------------------------------------------------------------------------------

def test_monitor_install_edits_kernel_json_whole(tmp_path: Path, env: dict[str, str],
                                                 jupyter_home: dict[str, Path]) -> None:
    folder = kernelspec(jupyter_home["data"], "crashspec",
                        [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    spec = folder / "kernel.json"
    original = spec.read_bytes()
    bak = spec.with_name("kernel.json.nbmedic-backup")
    case = Case(nbmedic("monitor", "install", "crashspec"), spec, _copy_in(spec, original, bak))
    trials = Trials(case, env, str(tmp_path))
    assert bak.exists(), sorted(p.name for p in folder.iterdir())
    trials.case.backup = bak
    trials.run()


ISOLATED = """
import sys, jupyter_core.paths as p
p.ENV_JUPYTER_PATH = [sys.argv[1] + "/env"]; p.SYSTEM_JUPYTER_PATH = [sys.argv[1] + "/system"]
from nbmedic.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_monitor_install_of_the_builtin_kernel_creates_its_folder_whole(tmp_path: Path, env: dict[str, str],
                                                                        jupyter_home: dict[str, Path]) -> None:
    """The built-in python3 (no kernel.json anywhere) gets a user kernelspec folder, made in a temporary
    folder and renamed: a kill leaves no folder or the whole one, and the next install removes the rest."""
    empty = tmp_path / "empty-share"
    empty.mkdir()
    kernels = jupyter_home["data"] / "kernels"
    kernels.mkdir()
    env = {**env, "IPYTHONDIR": str(empty / "ipython")}
    target = kernels / "python3" / "kernel.json"

    def prepare() -> None:
        import shutil

        shutil.rmtree(kernels / "python3", ignore_errors=True)

    case = Case([sys.executable, "-c", ISOLATED, str(empty), "monitor", "install", "python3"], target, prepare,
                folder=kernels)
    trials = Trials(case, env, str(tmp_path))
    assert {"kernel.json", "kernel.json.nbmedic-backup"} <= {p.name for p in target.parent.iterdir()}
    original = trials.new

    def check_folder() -> None:  # after each kill: the folder is absent or complete
        got = read(target)
        assert got in (None, original)
        assert (target.parent.exists()) == (got is not None)

    for delay in [None, *(trials.rng.uniform(0, trials.duration) for _ in range(KILLS))]:
        prepare()
        proc = subprocess.Popen(case.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if delay is None:
            deadline = time.monotonic() + 60
            while not temps(kernels) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
        else:
            time.sleep(delay)
        proc.kill()
        proc.wait()
        check_folder()
        trials.finish()
        assert read(target) == original and temps(kernels) == [], (delay, SEED, temps(kernels))


# --- the sweep, and the writers inside kernels -------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_next_write_removes_only_a_dead_writers_temporary_files(tmp_path: Path, env: dict[str, str]) -> None:
    nb = tmp_path / "nb.ipynb"
    nb.write_bytes(dump(big_notebook(1)))
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".nb.ipynb.{dead}.abcd_123.nbmedic-tmp"
    live = tmp_path / f".nb.ipynb.{alive}.abcd_123.nbmedic-tmp"
    other = tmp_path / f".other.ipynb.{dead}.abcd_123.nbmedic-tmp"
    for p in (stale, live, other):
        p.write_bytes(b"{partial")
    assert subprocess.run(nbmedic("strip", nb.name), check=False, env=env, cwd=tmp_path, timeout=60).returncode == 0
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("write", [agent._write_json, memprofile_agent._write_json],
                         ids=["live-agent", "memprofile-agent"])
def test_the_in_kernel_writers_name_their_temps_by_pid_and_sweep_a_dead_kernels(
        tmp_path: Path, write: Callable[[str, dict[str, Any]], None]) -> None:
    target = tmp_path / "cell.json"
    stale = tmp_path / f".cell.json.{_dead_pid()}.abcd_123.nbmedic-tmp"
    live = tmp_path / f".cell.json.{os.getpid()}.abcd_123.nbmedic-tmp"
    stale.write_text("{")
    live.write_text("{")
    write(str(target), {"running": True})
    assert json.loads(target.read_text()) == {"running": True}
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name])
