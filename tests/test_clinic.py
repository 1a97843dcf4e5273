"""End to end: the doctor diagnoses every notebook of the shipped clinic with exactly the expected codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLINIC = Path(__file__).resolve().parent.parent / "examples" / "clinic"

EXPECTED: dict[str, set[str]] = {
    "healthy.ipynb": set(),
    "conflicted.ipynb": {"NB002"},
    "truncated.ipynb": {"NB001"},
    "html_page.ipynb": {"NB001"},
    "schema_violation.ipynb": {"NB003"},
    "old_format_v3.ipynb": {"NB003"},
    "ids_on_old_minor.ipynb": {"NB004"},
    "out_of_order.ipynb": {"NB011", "NB012", "NB013"},
    "bloated_outputs.ipynb": {"NB021"},
    "endless_log.ipynb": {"NB022"},
    "missing_kernelspec.ipynb": {"NB030"},
    "unknown_kernel.ipynb": {"NB031"},
    "absolute_paths.ipynb": {"NB040"},
    "missing_import.ipynb": {"NB041", "RN120"},  # + EN242 (cudf wants a GPU) where none is visible
    "widget_without_state.ipynb": {"NB050"},
    "saved_errors.ipynb": {"NB051", "RN120"},
    "clean-repo/committed_outputs.ipynb": {"NB010"},
    # runtime patients: their limits are in metadata.nbmedic
    "memory_hog.ipynb": {"RN101"},
    "stuck_cell.ipynb": {"RN110"},
    "native_crash.ipynb": {"RN102"},
    "self_exit.ipynb": {"RN103"},
    "raising_cell.ipynb": {"RN120"},
    "asks_input.ipynb": {"RN150"},
    "output_flood.ipynb": {"RN130"},
}
# how long each runtime patient may take: its limit plus a few seconds for kernel start and shutdown
TIME_BOUNDS = {"memory_hog.ipynb": 20, "stuck_cell.ipynb": 3 + 5 + 6, "native_crash.ipynb": 10,
               "self_exit.ipynb": 10, "raising_cell.ipynb": 10, "asks_input.ipynb": 10, "output_flood.ipynb": 30}


def _doctor_json(*cmd: str) -> tuple[int, dict[str, set[str]], dict[str, object]]:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([*cmd, "doctor", "--format", "json", str(CLINIC)], capture_output=True, text=True,
                          env=env, cwd=CLINIC.parent.parent)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    by_file: dict[str, set[str]] = {}
    for finding in doc["findings"]:
        where = (CLINIC.parent.parent / finding["path"]).resolve()
        if not where.is_relative_to(CLINIC):
            assert finding["code"].startswith("EN"), finding  # the machine's kernels, not a notebook
            continue
        rel = where.relative_to(CLINIC).as_posix()
        by_file.setdefault(rel, set()).add(finding["code"])
    return proc.returncode, by_file, doc


def _gpu_visible() -> bool:
    from nbmedic.execute.gpu import GpuProbe

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    probe = GpuProbe()
    try:
        return bool(probe.available and probe.devices())
    finally:
        probe.close()


def test_every_clinic_notebook_is_listed() -> None:
    on_disk = {p.relative_to(CLINIC).as_posix() for p in CLINIC.rglob("*.ipynb")
               if ".ipynb_checkpoints" not in p.parts and ".repaired." not in p.name}
    assert on_disk == set(EXPECTED)
    readme = (CLINIC / "README.md").read_text(encoding="utf-8")
    for name, expected in EXPECTED.items():
        assert f"`{name}`" in readme
        for code in expected:
            assert code in readme


def test_doctor_diagnoses_the_clinic_through_the_installed_script() -> None:
    script = shutil.which("nbmedic", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the nbmedic script is not installed next to this interpreter")
    code, by_file, doc = _doctor_json(script)
    assert code == 1  # the clinic holds error findings
    for name, expected in EXPECTED.items():
        if name == "missing_import.ipynb" and not _gpu_visible():
            expected = expected | {"EN242"}
        assert by_file.get(name, set()) == expected, name
    assert doc["summary"]["files"] == len(EXPECTED)  # type: ignore[index]
    runs = {(CLINIC.parent.parent / r["path"]).resolve().relative_to(CLINIC).as_posix(): r
            for r in doc["runs"]}  # type: ignore[attr-defined]
    static_only = {"conflicted.ipynb", "truncated.ipynb", "html_page.ipynb", "schema_violation.ipynb",
                   "old_format_v3.ipynb", "unknown_kernel.ipynb"}
    assert set(runs) == set(EXPECTED) - static_only  # broken files and missing kernels are not run
    for name, bound in TIME_BOUNDS.items():
        assert runs[name]["duration"] < bound, (name, runs[name]["duration"])
    assert runs["healthy.ipynb"]["status"] == "ok"
    assert runs["memory_hog.ipynb"]["status"] == "died"
    assert runs["stuck_cell.ipynb"]["status"] == "timeout"


def test_doctor_writes_nothing() -> None:
    before = {p: p.stat().st_mtime_ns for p in CLINIC.rglob("*")}
    proc = subprocess.run([sys.executable, "-m", "nbmedic", "doctor", "--format", "json",
                           str(CLINIC / "raising_cell.ipynb"), str(CLINIC / "healthy.ipynb")],
                          capture_output=True, text=True, cwd=CLINIC.parent.parent)
    assert proc.returncode == 1, proc.stderr
    assert {p: p.stat().st_mtime_ns for p in CLINIC.rglob("*")} == before


def test_doctor_text_report_names_cell_evidence_and_fix() -> None:
    proc = subprocess.run([sys.executable, "-m", "nbmedic", "doctor", "--no-run", str(CLINIC)], capture_output=True,
                          text=True, cwd=CLINIC.parent.parent)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    assert "examples/clinic/out_of_order.ipynb" in text
    assert "NB011" in text and "cell " in text and "fix:" in text
    assert any(line.startswith("✓ ") and " notebooks without problems: examples/clinic/" in line
               for line in text.splitlines())  # the notebooks without findings, on one line
    assert f"{len(EXPECTED)} notebooks examined" in text
