from __future__ import annotations

import subprocess
import sys

import nbmedic


def test_version_in_process(run_cli):  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("--version")
    assert code == 0
    assert out.strip() == f"nbmedic {nbmedic.__version__}"


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "nbmedic", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("nbmedic ")
