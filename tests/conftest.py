from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nbmedic.cli import main

# Every finding of the suite must use its code's evidence layout (nbmedic/evidence.py), and the suite
# keeps nbmedic's caches (NB041's import answers, compiled schemas) out of the user's cache folder.
os.environ["NBMEDIC_STRICT_EVIDENCE"] = "1"
os.environ["NBMEDIC_CACHE_DIR"] = tempfile.mkdtemp(prefix="nbmedic-test-cache-")
atexit.register(shutil.rmtree, os.environ["NBMEDIC_CACHE_DIR"], ignore_errors=True)

# The tests send SIGINT to processes they start (Ctrl-C of a batch, a kernel's interrupt).  A suite started
# in the background by a non-interactive shell inherits SIGINT ignored, and every process it starts would
# too (Python installs its KeyboardInterrupt handler only where SIGINT is at its default): restore it here,
# so the processes the tests start get the default, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``nbmedic ARGS`` in-process; return (exit code, stdout, stderr)."""

    def _run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short temporary folder for Unix socket paths (ipc kernels): ``tmp_path`` can pass the ~107-byte
    limit of a socket's path.  Removed afterwards."""
    folder = tempfile.mkdtemp(prefix="nbm-")
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def check_json(run_cli: Callable[..., tuple[int, str, str]]) -> Callable[..., tuple[int, list[dict[str, Any]]]]:
    """Run ``nbmedic check --format json PATHS...``; return (exit code, findings)."""

    def _check(*args: str) -> tuple[int, list[dict[str, Any]]]:
        code, out, err = run_cli("check", "--format", "json", *args)
        assert code in (0, 1), err
        doc = json.loads(out)
        assert doc["version"] == 1
        return code, doc["findings"]

    return _check


def codes(findings: list[dict[str, Any]]) -> list[str]:
    return sorted(f["code"] for f in findings)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run in a temp folder so no pyproject.toml of the repository leaks into them."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def jupyter_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private Jupyter installation: data (kernelspecs, nbmedic incidents), runtime, config folders.

    Set in the environment, so kernels, servers and wrappers started by the test inherit them; the
    user's own ~/.local/share/jupyter is never touched.
    """
    home = tmp_path / "jupyter-home"
    dirs = {"data": home / "data", "runtime": home / "runtime", "config": home / "config"}
    for path in dirs.values():
        path.mkdir(parents=True, mode=0o700)  # private, as Jupyter creates them
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(dirs["runtime"]))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(dirs["config"]))
    monkeypatch.setenv("JUPYTER_PATH", str(dirs["data"]))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return dirs
