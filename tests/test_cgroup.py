"""cgroup v1 / v2 / none on fake trees made of real files, and on this machine's own files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbmedic.execute.cgroup import (
    CgroupLocation,
    host_oom_kills,
    locate_cgroup,
    memory_pressure,
    oom_kills_since,
    read_cgroup,
    read_cgroup_at,
)
from nbmedic.execute.result import CgroupInfo

V1_UNLIMITED = "9223372036854771712"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_proc(tmp_path: Path, pid: int | str, cgroup_lines: str, vmstat: str | None = None) -> Path:
    proc = tmp_path / "proc"
    write(proc / str(pid) / "cgroup", cgroup_lines)
    if vmstat is not None:
        write(proc / "vmstat", vmstat)
    return proc


def v1_tree(root: Path, rel: str, *, limit: str, usage: str, oom_kill: int) -> Path:
    d = root / "memory" / rel if rel else root / "memory"
    write(d / "memory.limit_in_bytes", limit + "\n")
    write(d / "memory.usage_in_bytes", usage + "\n")
    write(d / "memory.oom_control", f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kill}\n")
    return d


def v2_tree(root: Path, rel: str, *, limit: str, usage: str, oom_kill: int) -> Path:
    write(root / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    d = root / rel if rel else root
    write(d / "memory.max", limit + "\n")
    write(d / "memory.current", usage + "\n")
    write(d / "memory.events", f"low 0\nhigh 0\nmax 12\noom 3\noom_kill {oom_kill}\noom_group_kill 0\n")
    return d


V1_LINES = (
    "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n2:cpuacct,cpu:/\n0::/\n"
)


# ------------------------------------------------------------------------------------------------ v1


def test_v1_nested(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    v1_tree(root, "", limit=V1_UNLIMITED, usage="999999", oom_kill=7)
    v1_tree(root, "process_api/abc", limit="536870912", usage="123456", oom_kill=2)
    write(root / "unified" / "cgroup.procs", "")  # hybrid layout: a v2 mount beside, without memory
    proc = fake_proc(tmp_path, 4242, V1_LINES)
    info = read_cgroup(4242, root=str(root), proc=str(proc))
    assert info == CgroupInfo(version=1, limit=512 << 20, usage=123456, oom_kills=2)


def test_v1_unlimited_is_none_and_parent_limit_binds(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    v1_tree(root, "", limit=V1_UNLIMITED, usage="1", oom_kill=0)
    v1_tree(root, "process_api", limit="1073741824", usage="5", oom_kill=0)
    v1_tree(root, "process_api/abc", limit=V1_UNLIMITED, usage="3", oom_kill=1)
    proc = fake_proc(tmp_path, 1, V1_LINES)
    assert read_cgroup(1, root=str(root), proc=str(proc)).limit == 1 << 30
    # without the parent's limit: unlimited everywhere -> None
    (root / "memory" / "process_api" / "memory.limit_in_bytes").write_text(V1_UNLIMITED)
    info = read_cgroup(1, root=str(root), proc=str(proc))
    assert info.limit is None and info.usage == 3 and info.oom_kills == 1


def test_v1_missing_path_falls_back_to_root(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    v1_tree(root, "", limit=V1_UNLIMITED, usage="777", oom_kill=4)
    proc = fake_proc(tmp_path, 5, V1_LINES)  # /process_api/abc is not mounted here (container view)
    assert read_cgroup(5, root=str(root), proc=str(proc)) == CgroupInfo(1, None, 777, 4)
    # the process is gone (no /proc/<pid>/cgroup): the root of the hierarchy
    assert read_cgroup(6, root=str(root), proc=str(proc)) == CgroupInfo(1, None, 777, 4)


def test_v1_old_kernel_without_oom_kill_counter(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    d = v1_tree(root, "", limit="1000", usage="10", oom_kill=0)
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    info = read_cgroup(1, root=str(root), proc=str(fake_proc(tmp_path, 1, "4:memory:/\n")))
    assert info == CgroupInfo(1, 1000, 10, None)


# ------------------------------------------------------------------------------------------------ v2


def test_v2_nested(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    v2_tree(root, "user.slice/session-1.scope", limit="268435456", usage="4096", oom_kill=1)
    proc = fake_proc(tmp_path, 77, "0::/user.slice/session-1.scope\n")
    info = read_cgroup(77, root=str(root), proc=str(proc))
    assert info == CgroupInfo(version=2, limit=256 << 20, usage=4096, oom_kills=1)
    loc = locate_cgroup(77, root=str(root), proc=str(proc))
    assert loc == CgroupLocation(2, str(root / "user.slice/session-1.scope"), str(root))


def test_v2_max_is_unlimited_and_parent_limit_binds(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    v2_tree(root, "a", limit="1000000", usage="1", oom_kill=0)
    v2_tree(root, "a/b", limit="max", usage="2", oom_kill=5)
    proc = fake_proc(tmp_path, 1, "0::/a/b\n")
    assert read_cgroup(1, root=str(root), proc=str(proc)) == CgroupInfo(2, 1000000, 2, 5)
    (root / "a" / "memory.max").write_text("max\n")
    assert read_cgroup(1, root=str(root), proc=str(proc)).limit is None


def test_v2_container_root(tmp_path: Path) -> None:
    # a container with its own cgroup namespace sees "0::/" and its cgroup mounted as the root
    root = tmp_path / "cg"
    v2_tree(root, "", limit="2147483648", usage="100", oom_kill=0)
    proc = fake_proc(tmp_path, 1, "0::/\n")
    assert read_cgroup(1, root=str(root), proc=str(proc)) == CgroupInfo(2, 2 << 30, 100, 0)


def test_v2_host_root_has_no_memory_files(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cgroup.controllers", "cpu io memory pids\n")
    proc = fake_proc(tmp_path, 1, "0::/gone.scope\n")
    assert read_cgroup(1, root=str(root), proc=str(proc)) == CgroupInfo(version=2)


def test_v2_without_memory_controller(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "cgroup.controllers", "cpu pids\n")
    proc = fake_proc(tmp_path, 1, "0::/\n")
    assert read_cgroup(1, root=str(root), proc=str(proc)) == CgroupInfo(version=None)


# ---------------------------------------------------------------------------------------------- none


def test_nothing_at_all(tmp_path: Path) -> None:
    assert read_cgroup(1, root=str(tmp_path / "nope"), proc=str(tmp_path / "noproc")) == CgroupInfo(None)
    assert locate_cgroup(None, root=str(tmp_path), proc=str(tmp_path)) is None
    assert read_cgroup_at(None) == CgroupInfo(version=None)
    assert host_oom_kills(proc=str(tmp_path)) is None
    assert memory_pressure(proc=str(tmp_path)) is None


def test_garbage_files_do_not_raise(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    v1_tree(root, "", limit="lots", usage="", oom_kill=0)
    (root / "memory" / "memory.oom_control").write_text("oom_kill many\n")
    proc = fake_proc(tmp_path, 1, "garbage\n4:memory\n", vmstat="oom_kill x\n")
    assert read_cgroup(1, root=str(root), proc=str(proc)) == CgroupInfo(1, None, None, None)
    assert host_oom_kills(proc=str(proc)) is None


# ------------------------------------------------------------------------------------------- helpers


def test_host_oom_kills_and_pressure_fake(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 1, "", vmstat="pgfault 10\noom_kill 3\npgmajfault 1\n")
    assert host_oom_kills(proc=str(proc)) == 3
    write(proc / "pressure" / "memory",
          "some avg10=1.50 avg60=0.20 avg300=0.00 total=1234\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=99\n")
    pressure = memory_pressure(proc=str(proc))
    assert pressure is not None
    assert pressure["some_avg10"] == 1.5 and pressure["full_total"] == 99.0 and len(pressure) == 8


def test_oom_kills_since() -> None:
    assert oom_kills_since(CgroupInfo(1, None, 1, 2), CgroupInfo(1, None, 1, 3)) == 1
    assert oom_kills_since(CgroupInfo(1, None, 1, 3), CgroupInfo(1, None, 1, 3)) == 0
    assert oom_kills_since(CgroupInfo(1, None, 1, None), CgroupInfo(1, None, 1, 3)) is None
    assert oom_kills_since(CgroupInfo(1, None, 1, 1), CgroupInfo(2, None, 1, 3)) is None


# --------------------------------------------------------------------------------------- this machine


def _own_memory_cgroup_dir() -> tuple[int, Path] | None:
    """The memory cgroup of this process, found independently of the code under test."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").is_file():
        rel = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        d = root / rel.lstrip("/")
        return (2, d) if (d / "memory.current").is_file() else None
    for line in lines:
        _hid, ctl, rel = line.split(":", 2)
        if "memory" in ctl.split(","):
            d = root / "memory" / rel.lstrip("/")
            return (1, d if d.is_dir() else root / "memory")
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroups are Linux only")
def test_this_machine() -> None:
    info = read_cgroup()
    own = _own_memory_cgroup_dir()
    if own is None:
        pytest.skip("no memory cgroup visible here")
    version, d = own
    assert info.version == version
    usage_file = "memory.current" if version == 2 else "memory.usage_in_bytes"
    usage = int((d / usage_file).read_text())
    assert info.usage is not None and 0 < info.usage
    assert abs(info.usage - usage) < 256 << 20  # read a moment apart
    if version == 1:
        oom = (d / "memory.oom_control").read_text()
        if "oom_kill " in oom:
            assert info.oom_kills == int(oom.split("oom_kill ")[1].split()[0])
        raw = int((d / "memory.limit_in_bytes").read_text())
        if raw >= 1 << 62 and info.limit is None:
            pass  # unlimited, as on this CI machine
        else:
            assert info.limit is not None and info.limit <= raw
    # a child process lives in the same cgroup
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"]) as child:
        try:
            assert read_cgroup(child.pid).version == version
            assert locate_cgroup(child.pid) == locate_cgroup(os.getpid()) == locate_cgroup()
        finally:
            child.kill()


@pytest.mark.skipif(not os.path.exists("/proc/vmstat"), reason="no /proc/vmstat")
def test_this_machine_host_counters() -> None:
    kills = host_oom_kills()
    if "oom_kill " in Path("/proc/vmstat").read_text():
        assert isinstance(kills, int) and kills >= 0
    pressure = memory_pressure()
    if os.path.exists("/proc/pressure/memory"):
        assert pressure is not None and "some_avg10" in pressure
