"""``nbmedic run --profile-memory``: tracemalloc in real kernels names the lines that hold memory, and RN101
names the line that allocated most when the kernel is killed for memory."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.execute import run_notebook
from nbmedic.execute.forensics import DeathFacts, TopAllocation, diagnose_death
from nbmedic.execute.memprofile import function_at
from nbmedic.execute.result import Sample
from tests.runhelpers import make_nb, read_out, text_of

Run = Callable[..., tuple[int, str, str]]
MiB = 2**20

DEFINE = """\
def make_blocks(n):
    blocks = []
    blocks += [b"x" * (1 << 20) for _ in range(n)]
    return blocks
"""
KEEP = "kept = make_blocks(30)"
PEAK = """\
import time
tmp = []
for _ in range(40):
    tmp.append(b"y" * (1 << 20))
    time.sleep(0.004)
del tmp
"""
PROBE = ("import sys, tracemalloc\n"
         "print('nbmedic_memprofile' in sys.modules, tracemalloc.is_tracing(), "
         "sorted(k for k in globals() if not k.startswith('_') and k not in ('In', 'Out', 'exit', 'quit', 'get_ipython', 'open')))")


# the previous cell's snapshot as slow as on a loaded machine: its rate limit reaches far past its own end
SLOW_SNAPSHOT = "import time\nget_ipython()._nbmedic_memprofile.next_snapshot = time.monotonic() + 3600"


def test_a_short_cell_after_a_slow_snapshot_still_gets_its_peak(jupyter_home: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    """The rate limit spaces snapshots within a cell; each cell starts free of the previous one's."""
    path = make_nb(tmp_path, DEFINE, SLOW_SNAPSHOT, PEAK)
    result = run_notebook(path, output=tmp_path / "out.ipynb", profile_memory=True)
    assert result.status == "ok", [f.message for f in result.findings]
    peak = result.cells[2].memory_profile
    assert peak is not None and peak["traced_peak"] - peak["traced_end"] > 30 * MiB
    assert peak["peak"][0]["where"] == "cell 2, line 4" and peak["peak"][0]["bytes"] >= 10 * MiB


@pytest.mark.parametrize(("fork", "frames"), [(True, None), (False, "4")], ids=["fork", "no-fork-4-frames"])
def test_sites_at_the_end_and_at_the_peak(jupyter_home: dict[str, Path], tmp_path: Path, fork: bool,
                                          frames: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line of a function an earlier cell defined; with 4 frames (NBMEDIC_PROFILE_FRAMES) also the cell
    that called it (the comprehension, the function and the calling cell are 3 frames deep)."""
    if frames:
        monkeypatch.setenv("NBMEDIC_PROFILE_FRAMES", frames)
    path = make_nb(tmp_path, DEFINE, KEEP, PEAK, PROBE)
    result = run_notebook(path, output=tmp_path / "out.ipynb", profile_memory=True, fork=fork)
    assert result.status == "ok", [f.message for f in result.findings]
    kept, peak = result.cells[1].memory_profile, result.cells[2].memory_profile
    assert kept is not None and peak is not None
    top = kept["end"][0]
    if frames:
        assert top["where"] == "cell 0, line 3 (in make_blocks, called from cell 1)"
        assert (top["cell"], top["line"], top["function"], top["called_from"], top["package"]) == (
            0, 3, "make_blocks", 1, None)
    else:  # two frames: the comprehension and the function, both at that line; the caller is beyond them
        assert top["where"] == "cell 0, line 3"
        assert (top["cell"], top["line"], top["called_from"], top["package"]) == (0, 3, None, None)
    assert 30 * MiB <= top["bytes"] < 32 * MiB and top["count"] >= 30
    assert kept["peak"][0]["where"] == top["where"]
    # cell 2 allocated 40 MiB and freed it: the peak names its line, the end holds nothing of it
    assert peak["traced_peak"] - peak["traced_end"] > 30 * MiB
    assert peak["traced_end"] > 30 * MiB  # cell 1's blocks are still held
    assert peak["peak"][0]["where"] == "cell 2, line 4" and peak["peak"][0]["bytes"] >= 10 * MiB
    assert peak["peak_at"] <= peak["traced_peak"]
    assert not [s for s in peak["end"] if s["bytes"] > MiB]
    # nothing of the profiler shows in the notebook: no output, no name, the execution counts of a plain run
    out = read_out(tmp_path / "out.ipynb")
    assert [c["execution_count"] for c in out["cells"]] == [1, 2, 3, 4]
    assert [c["outputs"] for c in out["cells"][:3]] == [[], [], []]
    assert text_of(out["cells"][3]) == "True True ['kept', 'make_blocks', 'sys', 'time', 'tracemalloc']\n"


def test_off_by_default(jupyter_home: dict[str, Path], tmp_path: Path) -> None:
    path = make_nb(tmp_path, DEFINE, KEEP, PROBE)
    result = run_notebook(path, output=tmp_path / "out.ipynb")
    assert result.status == "ok"
    assert [c.memory_profile for c in result.cells] == [None, None, None]
    out = read_out(tmp_path / "out.ipynb")
    assert text_of(out["cells"][2]) == "False False ['kept', 'make_blocks', 'sys', 'tracemalloc']\n"
    assert "memory_profile" not in out["cells"][1]["metadata"]["nbmedic"]


def test_notebook_metadata_turns_it_on_and_strip_removes_it(jupyter_home: dict[str, Path], tmp_path: Path,
                                                            run_cli: Run) -> None:
    path = make_nb(tmp_path, DEFINE, KEEP, nbmedic={"profile_memory": True})
    code, out, err = run_cli("run", "--format", "json", str(path))
    assert code == 0, err
    [run] = json.loads(out)["runs"]
    assert run["cells"][1]["memory_profile"]["end"][0]["where"].startswith("cell 0, line 3")
    saved = tmp_path / "nb.out.ipynb"
    meta: dict[str, Any] = read_out(saved)["cells"][1]["metadata"]["nbmedic"]
    assert meta["memory_profile"]["end"][0]["line"] == 3 and meta["peak_rss"] > 0
    code, _, err = run_cli("strip", str(saved))
    assert code in (0, 1), err
    assert "memory_profile" not in json.dumps(read_out(saved))


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "no-fork"])
def test_rn101_names_the_line_that_allocated_most(jupyter_home: dict[str, Path], tmp_path: Path, run_cli: Run,
                                                  fork: bool) -> None:
    # a loop that allocates 40 MB chunks until the watchdog kills it; the pause gives the profiler's watcher,
    # which takes a snapshot each time the traced memory grew 10 %, time to take one between two chunks
    grow = "import time\nchunks = []\nwhile True:\n    chunks.append(b'z' * (40 * 2**20))\n    time.sleep(0.05)\n"
    path = make_nb(tmp_path, "x = 1", grow)
    argv = ["run", "--format", "json", "--profile-memory", "--memory-limit", "150M", str(path)]
    code, out, err = run_cli(*argv, *([] if fork else ["--no-fork"]))
    assert code == 1, err
    [run] = json.loads(out)["runs"]
    [finding] = [f for f in json.loads(out)["findings"] if f["code"] == "RN101"]
    evidence = finding["evidence"]
    assert evidence["top_allocation"] == "cell 1, line 4"
    assert evidence["top_allocation_line"] == "chunks.append(b'z' * (40 * 2**20))"
    assert evidence["top_allocation_bytes"] >= 40 * MiB
    assert re.search(r"; the line that allocated most: cell 1, line 4 \((40|80|120)\.0 MiB\): chunks\.append",
                     finding["message"])
    died = run["cells"][1]
    assert died["status"] == "died" and died["memory_profile"]["peak"][0]["line"] == 4
    code, text, _ = run_cli("run", "-v", "--profile-memory", "--memory-limit", "150M", str(path))
    assert code == 1 and "top_allocation: cell 1, line 4\n" in text and "top_allocation_bytes: " in text


def test_rn101_message_and_evidence_from_made_up_facts() -> None:
    top = TopAllocation(where="cell 2, line 3 (in load, called from cell 4)", bytes=3 * 2**30, line="  x = load()  ")
    f = diagnose_death(DeathFacts(path=None, returncode=-9, cell=4, memory_limit=2**30, top_allocation=top,
                                  killed_for_memory=Sample(t=1.0, rss=2**31, cpu=0.0, threads=1, children=0)))
    assert f.code == "RN101"
    assert f.message.endswith("; the line that allocated most: cell 2, line 3 (in load, called from cell 4) "
                              "(3.0 GiB): x = load()")
    assert (f.evidence["top_allocation"], f.evidence["top_allocation_bytes"], f.evidence["top_allocation_line"]) \
        == (top.where, top.bytes, top.line)
    assert list(f.evidence)[:5] == ["peak_rss", "limit", "top_allocation", "top_allocation_bytes",
                                    "top_allocation_line"]
    plain = diagnose_death(DeathFacts(path=None, returncode=-9, cell=4, memory_limit=2**30,
                                      killed_for_memory=Sample(t=1.0, rss=2**31, cpu=0.0, threads=1, children=0)))
    assert "top_allocation" not in plain.evidence and "allocated most" not in plain.message


def test_function_at() -> None:
    source = "import x\n\n@deco\ndef outer(a):\n    def inner():\n        return [a]\n    return inner\n%time y = outer(1)\n"
    assert [function_at(source, n) for n in (1, 4, 5, 6, 7, 8)] == [None, None, "outer", "inner", "outer", None]
    assert function_at("def broken(:\n", 1) is None
