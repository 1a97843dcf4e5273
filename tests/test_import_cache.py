"""NB041's import probe and its disk cache (``nbmedic.envs.importable``), on real interpreters.

The cache must never outlive the environment it describes: installing or removing a package (with pip,
into a real venv) makes the next command ask the interpreter again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.envs.importable import ImportIndex, ImportProber, cache_dir
from tests import nbfactory as nbf
from tests.specs import LAUNCHER, SETTLE_S, make_bare_venv, write_spec

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]
TINY = "nbmedic_tiny_probe_pkg"


def _wheel(folder: Path, name: str = TINY, version: str = "1.0") -> Path:
    """A real wheel of one module, built by hand (no build backend, no index)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}.py": "VALUE = 1\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: nbmedic-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def _pip(python: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "-q",
                    *args], check=True, capture_output=True, timeout=300)
    time.sleep(SETTLE_S)


def test_install_and_uninstall_invalidate_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    check_json: CheckJson) -> None:
    python = make_bare_venv(tmp_path / "venv")
    write_spec(tmp_path / "jp", "tiny", [str(python), *LAUNCHER])
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    monkeypatch.setenv("NBMEDIC_CACHE_DIR", str(tmp_path / "cache"))
    nb = nbf.write(tmp_path / "nbs" / "a.ipynb", nbf.notebook(nbf.code(f"import {TINY}"), kernel="tiny"))

    def nb041() -> list[list[str]]:
        return [f["evidence"]["modules"] for f in check_json("--select", "NB041", str(nb))[1]]

    def from_disk() -> tuple[bool, int]:
        """What a later command knows without asking the interpreter: (importable, probes run)."""
        prober = ImportProber()
        answer = prober.importable(str(python), [TINY], cwd=str(nb.parent))
        assert answer is not None
        return answer[TINY], prober.probes_run

    assert nb041() == [[TINY]]
    assert list((tmp_path / "cache" / "imports").glob("*.json"))
    assert from_disk() == (False, 0)  # nothing changed: the answer comes from the cache
    _pip(python, "install", "--no-index", "--no-deps", str(_wheel(tmp_path)))
    assert nb041() == []  # the install changed site-packages: asked again
    assert from_disk() == (True, 0)
    _pip(python, "uninstall", "-y", TINY)
    assert nb041() == [[TINY]]
    assert from_disk() == (False, 0)


def test_the_listing_agrees_with_find_spec(tmp_path: Path) -> None:
    """Every name the probe lists is one ``find_spec`` finds, and a name it lacks is not found (an exact
    listing answers for later notebooks without a subprocess)."""
    prober = ImportProber(use_disk=False)
    assert prober.importable(sys.executable, ["os"], cwd=str(tmp_path)) == {"os": True}
    [index] = [i for i in prober._memory.values() if i is not None]
    names = sorted(index.listing) + ["nbmedic_surely_missing_mod", "numpyy", "pandass"]
    script = ("import importlib.util, json, sys\n"
              "names = json.load(sys.stdin)\n"
              "def found(n):\n"
              "    try:\n"
              "        return n in sys.modules or importlib.util.find_spec(n) is not None\n"
              "    except Exception:\n"
              "        return False\n"
              "print(json.dumps({n: found(n) for n in names}))")
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(names), capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    truth = json.loads(proc.stdout)
    assert index.exact
    assert {n: index.lookup(n) for n in names} == truth


def test_the_working_folder_does_not_count(tmp_path: Path) -> None:
    """A module next to the notebook is NB041's own business (``local_modules``): the cached answers hold
    for every folder."""
    (tmp_path / "beside_the_notebook.py").write_text("")
    prober = ImportProber(use_disk=False)
    assert prober.importable(sys.executable, ["beside_the_notebook"], cwd=str(tmp_path)) == {
        "beside_the_notebook": False}


def test_an_empty_cache_dir_setting_turns_the_disk_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBMEDIC_CACHE_DIR", "")
    assert cache_dir() is None
    monkeypatch.setenv("NBMEDIC_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NBMEDIC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_dir() == tmp_path / "xdg" / "nbmedic"


def test_a_failing_interpreter_is_asked_once(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    prober = ImportProber(use_disk=False)
    assert prober.importable(str(fake), ["x"]) is None
    assert prober.importable(str(fake), ["y"]) is None
    assert prober.probes_run == 1


@pytest.mark.parametrize(("age_ns", "coarse", "racy"), [
    (50_000_000, False, True), (500_000_000, False, False), (500_000_000, True, True), (3_000_000_000, True, False),
])
def test_fresh_changes_are_not_trusted_on_disk(age_ns: int, coarse: bool, racy: bool) -> None:
    """A folder changed just before the probe could change again within the same clock tick without its
    mtime moving: such an index stays in memory.  Whole-second mtimes get a wider window."""
    started = 1_800_000_000_123_456_789
    mtime = started - age_ns
    if coarse:
        mtime -= mtime % 1_000_000_000
    index = ImportIndex(python="p", stamps={"/site": mtime, "/gone": None}, started_ns=started)
    assert index.racy() is racy


def test_a_changed_stamp_invalidates(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    index = ImportIndex(python="p", stamps={str(folder): folder.stat().st_mtime_ns, str(tmp_path / "new"): None})
    assert index.fresh()
    (tmp_path / "new").mkdir()  # a folder on sys.path that did not exist (a new user site) now does
    assert not index.fresh()
