"""Real git repositories for the ``test_git_*`` tests, isolated from the user's git configuration.

Every test gets its own HOME, XDG config folder and global git config file (``GIT_CONFIG_GLOBAL``), no
system config, and a PATH on which git finds this environment's ``nbmedic`` script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.nbfactory import code, display, notebook, result, stream, write

BIN = os.path.dirname(sys.executable)


@pytest.fixture
def gitenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate git (returns the fake HOME)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("PATH", BIN + os.pathsep + os.environ.get("PATH", ""))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_TRACE", "NBMEDIC_FILTER_LOG"):
        monkeypatch.delenv(var, raising=False)
    return home


def git(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})}, timeout=60)
    if check:
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done


def git_bytes(repo: Path, *args: str) -> bytes:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def nbmedic(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``nbmedic`` script, end to end."""
    return subprocess.run([os.path.join(BIN, "nbmedic"), *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})}, timeout=60)


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    return path


def executed_nb(path: Path, *, count: int = 1, text: str = "1\n", cells: int = 2, image: bytes = b"") -> Path:
    """A notebook as Jupyter saves it after a run: execution counts, streams, results, maybe an image."""
    items: list[Any] = []
    for i in range(cells):
        outputs = [stream(f"{text}{i}\n"), result({"text/plain": f"{count + i}"}, count + i)]
        if image:
            import base64

            outputs.append(display({"image/png": base64.b64encode(image).decode(), "text/plain": "<Figure>"}))
        items.append(code(f"x = {i}\nprint(x)", count=count + i, outputs=outputs, id=f"cell-{i}"))
    return write(path, notebook(*items))
