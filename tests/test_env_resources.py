"""EN240–EN242: memory headroom, disk space and GPU visibility."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from nbmedic.envs.resources import (
    disk_findings,
    disk_paths_for,
    gpu_findings,
    host_memory,
    memory_headroom_findings,
    needed_from_notebooks,
)
from nbmedic.execute.result import CgroupInfo

from . import nbfactory as nbf

GIB = 1 << 30


def _nb(*sources: str, peaks: tuple[int | None, ...] = ()) -> dict[str, Any]:
    nb: dict[str, Any] = nbf.notebook(*(nbf.code(s) for s in sources))
    for cell, peak in zip(nb["cells"], peaks):
        if peak is not None:
            cell["metadata"]["nbmedic"] = {"status": "ok", "peak_rss": peak}
    return nb


# --- EN240 -------------------------------------------------------------------------------------------


def test_needed_from_notebooks() -> None:
    a = _nb("x = 1", "y = 2", peaks=(100, 300))
    b = _nb("z = 3", peaks=(200,))
    assert needed_from_notebooks([a, b]) == 300
    assert needed_from_notebooks([_nb("x = 1")]) is None
    assert needed_from_notebooks([{"cells": [{"metadata": {"nbmedic": {"peak_rss": True}}}, "junk"]}]) is None


def test_memory_enough_or_unknown_need() -> None:
    assert memory_headroom_findings(needed=None) == []
    assert memory_headroom_findings(needed=1) == []  # the real host has more than one byte available


def test_memory_real_host_too_small() -> None:
    host = host_memory()
    assert host is not None
    findings = memory_headroom_findings(needed=host[0] * 4, cgroup=CgroupInfo(version=None))
    assert [f.code for f in findings] == ["EN240"]
    ev = findings[0].evidence
    assert ev["limit_source"] == "host RAM" and ev["limit"] == host[0] and ev["needed"] == host[0] * 4


def test_memory_override_and_cgroup() -> None:
    host = (64 * GIB, 32 * GIB)
    cg = CgroupInfo(version=2, limit=8 * GIB, usage=6 * GIB, oom_kills=0)
    [f] = memory_headroom_findings(needed=3 * GIB, cgroup=cg, host=host)
    assert f.evidence["limit_source"] == "cgroup v2 memory limit"
    assert f.evidence["available"] == 2 * GIB and f.evidence["limit"] == 8 * GIB
    assert "2.0 GiB" in f.message and "3.0 GiB" in f.message
    [f] = memory_headroom_findings(needed=3 * GIB, limit_override=1 * GIB, cgroup=cg, host=host)
    assert f.evidence["limit_source"] == "--memory-limit" and f.evidence["available"] == 1 * GIB
    assert set(f.evidence["limits"]) == {"cgroup v2 memory limit", "--memory-limit", "host RAM"}
    assert memory_headroom_findings(needed=1 * GIB, cgroup=cg, host=host) == []
    assert memory_headroom_findings(needed=1 * GIB, cgroup=CgroupInfo(), host=None) == []


# --- EN241 -------------------------------------------------------------------------------------------


def test_disk_paths_for(tmp_path: Path) -> None:
    nb = tmp_path / "a" / "n.ipynb"
    paths = disk_paths_for([str(nb), str(tmp_path / "a" / "m.ipynb")])
    assert paths[:2] == [str(tmp_path / "a"), str(tmp_path / "a" / ".ipynb_checkpoints")]
    assert len(paths) == 3  # + the runtime directory


def test_disk_low_and_enough(tmp_path: Path) -> None:
    (tmp_path / "nbs").mkdir()
    paths = [str(tmp_path / "nbs"), str(tmp_path / "nbs" / ".ipynb_checkpoints"), str(tmp_path)]
    usage = shutil.disk_usage(tmp_path)
    [f] = disk_findings(paths, min_free=usage.free + 100 * GIB, min_fraction=0)
    assert f.code == "EN241"
    assert f.evidence["paths"] == paths  # one filesystem, one finding
    assert f.evidence["total"] == usage.total
    assert abs(f.evidence["free"] - usage.free) < 1 << 28
    assert disk_findings(paths, min_free=1, min_fraction=0) == []
    [f] = disk_findings(paths, min_free=0, min_fraction=1.01)
    assert f.code == "EN241"
    assert disk_findings([], min_free=1 << 60) == []


# --- EN242 -------------------------------------------------------------------------------------------


class FakeProbe:
    def __init__(self, devices: list[dict[str, Any]] | None) -> None:
        self.available = devices is not None
        self._devices = devices
        self.error = None if devices is not None else "NVMLError_LibraryNotFound: NVML Shared Library Not Found"

    def devices(self) -> list[dict[str, Any]] | None:
        return self._devices


_TORCH = ("import torch", 'model = torch.nn.Linear(2, 2).to("cuda")')


def test_gpu_none_visible_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbmedic.execute.gpu import GpuProbe

    with GpuProbe() as probe:
        if probe.devices():
            pytest.skip("this machine has a GPU")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    findings = gpu_findings([("t.ipynb", _nb(*_TORCH)), ("plain.ipynb", _nb("import numpy"))])
    assert [(f.code, f.path, f.cell) for f in findings] == [("EN242", "t.ipynb", 1)]
    ev = findings[0].evidence
    assert ev["imports"] == ["torch"] and ev["devices"] == []
    assert ev["cuda_lines"][0]["text"] == 'model = torch.nn.Linear(2, 2).to("cuda")'
    assert findings[0].severity == "warning"


def test_gpu_libraries_and_patterns() -> None:
    none = FakeProbe(None)
    cases = {
        "tf": _nb("import tensorflow as tf", "print(tf.config.list_physical_devices('GPU'))"),
        "jax": _nb("import jax", 'jax.devices("gpu")'),
        "cupy": _nb("import cupy as cp", "a = cp.zeros(3)"),
        "numba": _nb("from numba import cuda", "@cuda.jit\ndef f(x):\n    pass"),
        "cpu-torch": _nb("import torch", "x = torch.zeros(3)"),
        "comment": _nb("import torch", "# x.to('cuda') later"),
        "no-import": _nb('device = "cuda"'),
    }
    found = {f.path for f in gpu_findings(list(cases.items()), probe=none)}
    assert found == {"tf", "jax", "cupy", "numba"}


def test_gpu_cpu_fallback_is_info() -> None:
    nb = _nb("import torch", 'device = "cuda" if torch.cuda.is_available() else "cpu"')
    [f] = gpu_findings([("fb.ipynb", nb)], probe=FakeProbe([]))
    assert f.severity == "info" and f.evidence["cpu_fallback"] is True


def test_gpu_hidden_by_cuda_visible_devices() -> None:
    dev = {"index": 0, "name": "H100", "total": 80 * GIB, "free": 79 * GIB, "used": 1 * GIB}
    probe = FakeProbe([dev])
    nbs = [("t.ipynb", _nb(*_TORCH))]
    assert gpu_findings(nbs, probe=probe, environ={}) == []
    [f] = gpu_findings(nbs, probe=probe, environ={"CUDA_VISIBLE_DEVICES": "-1"})
    assert "CUDA_VISIBLE_DEVICES" in f.message and f.evidence["CUDA_VISIBLE_DEVICES"] == "-1"
    [f] = gpu_findings(nbs, probe=probe, environ={"CUDA_VISIBLE_DEVICES": ""})
    assert f.code == "EN242"


def test_gpu_low_free_memory() -> None:
    devs = [{"index": 0, "name": "A100", "total": 40 * GIB, "free": 2 * GIB, "used": 38 * GIB},
            {"index": 1, "name": "A100", "total": 40 * GIB, "free": 30 * GIB, "used": 10 * GIB}]
    [f] = gpu_findings([("t.ipynb", _nb(*_TORCH))], probe=FakeProbe(devs), environ={})
    assert f.code == "EN242" and f.severity == "warning"
    assert "little GPU memory" in f.message and "GPU 0 (A100)" in f.message and "GPU 1" not in f.message
    assert len(f.evidence["devices"]) == 2
