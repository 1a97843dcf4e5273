"""Real kernelspecs and real interpreters for tests: kernel folders in a temporary JUPYTER_PATH, and a
virtual environment without pip whose Python can import nothing but the standard library (so a test's
"missing" module stays missing whatever the machine has installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LAUNCHER = ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
BIN = "Scripts" if os.name == "nt" else "bin"
SETTLE_S = 0.15  # nbmedic.envs.importable.RACY_NS: an environment changed this recently is not cached on disk


def write_spec(root: Path, name: str, argv: list[str], *, display_name: str | None = None,
               language: str = "python", **extra: Any) -> Path:
    """``root/kernels/name/kernel.json``; ``root`` is a JUPYTER_PATH or JUPYTER_DATA_DIR entry."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": argv, "display_name": display_name or name, "language": language, **extra}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def venv_python(venv: Path) -> Path:
    return venv / BIN / ("python.exe" if os.name == "nt" else "python")


def make_bare_venv(venv: Path) -> Path:
    """A real venv without pip (hence without ipykernel or any third-party package); its Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True,
                   timeout=300)
    time.sleep(SETTLE_S)
    return venv_python(venv)
