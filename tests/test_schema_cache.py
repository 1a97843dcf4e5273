"""The schema validators' generated code is kept in the cache folder: the verdicts stay the same, a warm
cache does not even import fastjsonschema, and a damaged cache file is made again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

PROBE = """
import json, sys
from pathlib import Path
from nbmedic.checks import check_file
from nbmedic.config import Config
codes = sorted(f.code for path in sys.argv[1:] for f in check_file(Path(path), Config(select=("NB003",))))
print(json.dumps({"codes": codes, "imported": "fastjsonschema" in sys.modules}))
"""


def _check(cache: Path, *paths: Path) -> dict[str, object]:
    env = {**os.environ, "NBMEDIC_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, paths)], capture_output=True, text=True,
                          env=env, check=True)
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@pytest.fixture
def notebooks(tmp_path: Path) -> list[Path]:
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bad.cells[0]["execution_count"] = "one"
    paths = [tmp_path / "good.ipynb", tmp_path / "bad.ipynb"]
    for path, nb in zip(paths, (good, bad)):
        nbformat.write(nb, path)
    return paths


def test_warm_cache_gives_the_same_verdict_without_fastjsonschema(tmp_path: Path, notebooks: list[Path]) -> None:
    cache = tmp_path / "cache"
    cold = _check(cache, *notebooks)
    assert cold == {"codes": ["NB003"], "imported": True}
    assert list((cache / "schemas").glob("*.marshal"))
    warm = _check(cache, notebooks[0])
    assert warm == {"codes": [], "imported": False}
    assert _check(cache, notebooks[1])["codes"] == ["NB003"]


def test_damaged_cache_files_are_made_again(tmp_path: Path, notebooks: list[Path]) -> None:
    cache = tmp_path / "cache"
    _check(cache, *notebooks)
    for stored in (cache / "schemas").glob("*.marshal"):
        stored.write_bytes(b"\x00garbage")
    assert _check(cache, *notebooks) == {"codes": ["NB003"], "imported": True}
    assert all(p.read_bytes() != b"\x00garbage" for p in (cache / "schemas").glob("*.marshal"))


def test_cache_off_still_checks(tmp_path: Path, notebooks: list[Path]) -> None:
    env_cache = ""  # NBMEDIC_CACHE_DIR set but empty: no disk cache
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, notebooks)], capture_output=True, text=True,
                          env={**os.environ, "NBMEDIC_CACHE_DIR": env_cache}, check=True)
    assert json.loads(proc.stdout)["codes"] == ["NB003"]
    assert not (tmp_path / "cache").exists()
