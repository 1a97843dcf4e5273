"""The death classifier on made-up facts: every branch, without killing real kernels."""

from __future__ import annotations

from nbmedic.execute.forensics import DeathFacts, diagnose_death, format_bytes
from nbmedic.execute.result import CgroupInfo, Sample
from nbmedic.execute.stacks import parse_faulthandler, parse_py_spy

GiB = 2**30


def _samples(*rss: int) -> list[Sample]:
    return [Sample(t=i * 0.1, rss=r, cpu=100.0, threads=8, children=0) for i, r in enumerate(rss)]


def test_sigkill_near_the_cgroup_limit_is_memory() -> None:
    f = diagnose_death(DeathFacts(path="a.ipynb", returncode=-9, cell=4, recent=_samples(GiB, int(1.9 * GiB)),
                                  cgroup_after=CgroupInfo(version=2, limit=2 * GiB, oom_kills=None),
                                  cell_growth=[(4, GiB), (1, 10)]))
    assert f.code == "RN101" and f.cell == 4
    assert "cgroup v2 memory limit" in f.message and "cell 4 (+1.0 GiB)" in f.message
    assert next(iter(f.evidence)) == "peak_rss"


def test_oom_counter_is_memory_even_far_from_limits() -> None:
    f = diagnose_death(DeathFacts(path=None, returncode=-9, cell=0, recent=_samples(100),
                                  cgroup_before=CgroupInfo(version=1, oom_kills=2),
                                  cgroup_after=CgroupInfo(version=1, oom_kills=3)))
    assert f.code == "RN101" and "OOM killer" in f.message and f.evidence["cgroup_oom_kills"] == 1


def test_sigkill_far_from_limits_is_unknown() -> None:
    f = diagnose_death(DeathFacts(path=None, returncode=-9, cell=2, recent=_samples(100, 100),
                                  host_total=16 * GiB, host_oom_before=5, host_oom_after=5))
    assert f.code == "RN100" and "SIGKILL" in f.message


def test_sigterm_is_unknown_and_sigabrt_is_a_crash() -> None:
    assert diagnose_death(DeathFacts(path=None, returncode=-15)).code == "RN100"
    f = diagnose_death(DeathFacts(path=None, returncode=-6, cell=1))
    assert f.code == "RN102" and "SIGABRT" in f.message


def test_exit_code_is_rn103_between_cells() -> None:
    f = diagnose_death(DeathFacts(path=None, returncode=0))
    assert f.code == "RN103" and "between cells" in f.message
    f = diagnose_death(DeathFacts(path=None, returncode=1, before_first_cell=True))
    assert f.code == "RN103" and "before it ran any cell" in f.message and "between" not in f.message


def test_crash_dump_names_the_library_call() -> None:
    dump = ("Fatal Python error: Segmentation fault\n\n"
            "Thread 0x00007f01 (most recent call first):\n"
            '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n'
            '  File "/usr/lib/python3.11/threading.py", line 1002 in _bootstrap\n\n'
            "Current thread 0x00007f02 (most recent call first):\n"
            '  File "/env/lib/python3.11/site-packages/lib/__init__.py", line 9 in native_call\n'
            '  File "/tmp/ipykernel_12/345.py", line 3 in compute\n'
            '  File "/tmp/ipykernel_12/345.py", line 5 in <module>\n'
            '  File "<frozen runpy>", line 88 in _run_code\n\n'
            "Extension modules: numpy (total: 1)\n")
    f = diagnose_death(DeathFacts(path=None, returncode=-11, cell=3, faulthandler_text=dump))
    assert f.code == "RN102"
    assert "in native_call (lib/__init__.py, line 9) called from line 3 in compute" in f.message
    assert f.evidence["cell_function"] == "compute" and f.evidence["cell_line"] == 3


def test_parsers() -> None:
    threads = parse_faulthandler('Thread 0x1 (most recent call first):\n  File "x.py", line ??? in f\n')
    assert threads[0].frames[0].line is None
    spy = parse_py_spy('Process 1: python\n\nThread 7 (idle): "MainThread"\n    wait (/tmp/ipykernel_1/2.py:4)\n'
                       '    <module> (/tmp/ipykernel_1/2.py:6)\n')
    assert spy[0].is_main and spy[0].frames[0].in_cell and spy[0].frames[0].line == 4
    assert format_bytes(3 * 2**20 + 2**19) == "3.5 MiB" and format_bytes(12) == "12 B"
