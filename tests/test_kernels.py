"""``nbmedic kernels``: real kernelspecs in a temporary JUPYTER_PATH, a real venv without ipykernel, real launches."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.cli import main
from nbmedic.envs.kernelspecs import claimed_version
from nbmedic.kernelspecs import read_kernelspecs
from tests.nbfactory import code, notebook, write

PY = sys.executable
LAUNCHER = ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
# a version the running Python is not, for EN204
CLAIM = (3, 8) if sys.version_info[:2] == (3, 9) else (3, 9)
CLAIM_NAME, CLAIM_DISPLAY = f"python{CLAIM[0]}{CLAIM[1]}", f"Python {CLAIM[0]}.{CLAIM[1]}"


def spec(root: Path, name: str, argv: list[str], display_name: str | None = None) -> Path:
    folder = root / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": display_name or name, "language": "python"}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real virtual environment without pip, hence without ipykernel."""
    folder = tmp_path_factory.mktemp("venv") / "noipk"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    return folder


@pytest.fixture
def jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(JUPYTER_PATH root, JUPYTER_DATA_DIR): fresh folders jupyter_client searches first."""
    path_root, data = tmp_path / "jpath", tmp_path / "jdata"
    path_root.mkdir()
    data.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(path_root))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    return path_root, data


@pytest.fixture
def kernels_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def _run(*args: str) -> tuple[int, str, str]:
        code_ = main(["kernels", *args])
        out, err = capsys.readouterr()
        return code_, out, err

    return _run


def _json(kernels_cli: Callable[..., tuple[int, str, str]], *args: str) -> tuple[int, dict[str, Any]]:
    code_, out, err = kernels_cli("--format", "json", *args)
    assert code_ in (0, 1), err
    return code_, json.loads(out)


def _by_code(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        found.setdefault(f["code"], []).append(f)
    return found


def _kernel_of(f: dict[str, Any]) -> str:
    return str(f["evidence"].get("kernel", ""))


def test_every_broken_kind_is_found(jupyter: tuple[Path, Path], bare_venv: Path,
                                    kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    root, _ = jupyter
    spec(root, "gone", ["/nonexistent/env/bin/python", *LAUNCHER])
    spec(root, "noipk", [str(bare_venv / "bin" / "python"), *LAUNCHER])
    spec(root, "sleeper", [PY, "-c", "import time; time.sleep(60)", "-f", "{connection_file}"])
    spec(root, CLAIM_NAME, [PY, *LAUNCHER], CLAIM_DISPLAY)
    spec(root, "twin", ["/nonexistent/other/python", *LAUNCHER], CLAIM_DISPLAY)
    spec(root, "plain", ["python", *LAUNCHER], "Plain")
    names = ["gone", "noipk", "sleeper", CLAIM_NAME, "twin", "plain"]
    rc, doc = _json(kernels_cli, "--startup-timeout", "10", "-j", "6", *names)
    assert rc == 1
    found = _by_code(doc)
    assert sorted(_kernel_of(f) for f in found["EN200"]) == ["gone", "twin"]
    assert [_kernel_of(f) for f in found["EN201"]] == ["noipk"]
    assert [_kernel_of(f) for f in found["EN202"]] == ["sleeper"]
    assert "stderr_tail" in found["EN202"][0]["evidence"]
    assert [_kernel_of(f) for f in found["EN204"]] == [CLAIM_NAME]
    assert found["EN204"][0]["evidence"]["claimed"] == f"{CLAIM[0]}.{CLAIM[1]}"
    dup = [f for f in found["EN203"] if f["evidence"].get("display_name") == CLAIM_DISPLAY]
    assert sorted(k["name"] for k in dup[0]["evidence"]["kernels"]) == sorted([CLAIM_NAME, "twin"])
    assert [_kernel_of(f) for f in found["EN212"]] == ["plain"]
    status = {k["name"]: k for k in doc["kernels"]}
    assert {n: status[n]["status"] for n in names} == {
        "gone": "missing", "noipk": "no-ipykernel", "sleeper": "failed", CLAIM_NAME: "ok", "twin": "missing",
        "plain": "ok"}
    assert status["plain"]["interpreter"] == PY
    assert status[CLAIM_NAME]["python_version"].startswith("{}.{}.".format(*sys.version_info[:2]))
    assert status["gone"]["resource_dir"] == str(root / "kernels" / "gone")
    assert status["gone"]["source"] == "path"
    assert set(status["gone"]) >= {"name", "display_name", "resource_dir", "argv", "language", "interpreter",
                                   "python_version", "status"}


def test_fix_yes_removes_broken_and_keeps_healthy(jupyter: tuple[Path, Path], bare_venv: Path,
                                                  kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    root, _ = jupyter
    broken = [spec(root, "gone", ["/nonexistent/env/bin/python", *LAUNCHER]),
              spec(root, "noipk", [str(bare_venv / "bin" / "python"), *LAUNCHER]),
              spec(root, "sleeper", [PY, "-c", "import time; time.sleep(60)", "-f", "{connection_file}"])]
    healthy = spec(root, "healthy", [PY, *LAUNCHER], "Healthy")
    rc, doc = _json(kernels_cli, "--fix", "--yes", "--startup-timeout", "10",
                    "gone", "noipk", "sleeper", "healthy")
    assert rc == 0
    assert sorted(doc["removed"]) == ["gone", "noipk", "sleeper"]
    assert not any(p.exists() for p in broken)
    assert (healthy / "kernel.json").is_file()
    assert {s.name for s in read_kernelspecs()} >= {"healthy"}
    assert not {"gone", "noipk", "sleeper"} & {s.name for s in read_kernelspecs()}


def test_fix_without_yes_on_non_interactive_stdin_removes_nothing(
        jupyter: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    root, _ = jupyter
    gone = spec(root, "gone", ["/nonexistent/env/bin/python", *LAUNCHER])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc, out, _ = kernels_cli("--fix", "gone")
    assert rc == 1
    assert gone.is_dir()
    assert "nothing removed" in out
    assert "gone" in out and "missing" in out  # the table
    assert out.rstrip().splitlines()[-1] == "1 kernelspec checked: 1 error, 0 warnings, 0 info"


def test_user_spec_shadowing_another_is_reported(jupyter: tuple[Path, Path],
                                                 kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    root, data = jupyter
    spec(root, "dup", [PY, *LAUNCHER], "Dup A")
    spec(data, "dup", [PY, *LAUNCHER], "Dup B")
    rc, doc = _json(kernels_cli, "--no-launch", "dup")
    assert rc == 0
    shadow = [f for f in _by_code(doc)["EN203"] if f["evidence"].get("kernel") == "dup"]
    assert shadow and shadow[0]["evidence"]["active"] == str(root / "kernels" / "dup")
    assert shadow[0]["evidence"]["shadowed"][0]["source"] == "user"
    assert shadow[0]["evidence"]["shadowed"][0]["resource_dir"] == str(data / "kernels" / "dup")


def test_notebook_version_mismatch(jupyter: tuple[Path, Path], tmp_path: Path,
                                   kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    root, _ = jupyter
    spec(root, "healthy", [PY, *LAUNCHER], "Healthy")
    nb = write(tmp_path / "old.ipynb", notebook(code("1"), kernelspec={"name": "healthy", "display_name": "Healthy",
                                                                        "language": "python"},
                                                language_info={"name": "python", "version": "{}.{}.0".format(*CLAIM)}))
    rc, doc = _json(kernels_cli, "--notebook", str(nb), "healthy")
    assert rc == 0
    en204 = [f for f in doc["findings"] if f["code"] == "EN204"]
    assert [f["path"] for f in en204] == [str(nb)]
    assert en204[0]["evidence"]["notebook_version"] == "{}.{}.0".format(*CLAIM)


def test_register_installs_a_healthy_user_spec(jupyter: tuple[Path, Path],
                                               kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    _, data = jupyter
    rc, doc = _json(kernels_cli, "--register", "nbm-test", "nbm-test")
    assert rc == 0
    folder = data / "kernels" / "nbm-test"
    assert (folder / "kernel.json").is_file()
    status = {k["name"]: k for k in doc["kernels"]}
    assert status["nbm-test"]["status"] == "ok"
    assert status["nbm-test"]["source"] == "user"
    assert not [f for f in doc["findings"] if f["code"] in ("EN200", "EN201", "EN202", "EN204")]


def test_unknown_name_is_a_usage_error(jupyter: tuple[Path, Path],
                                       kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    code_, _, err = kernels_cli("nope")
    assert code_ == 2 and "no kernelspec named nope" in err and err.count("\n") == 1


@pytest.mark.parametrize(("labels", "expected"), [
    (("python39",), "3.9"), (("x", "Python 3.9"), "3.9"), (("py311",), "3.11"), (("python3",), "3"),
    (("Python 3 (ipykernel)",), "3"), (("ir",), None), (("mypy",), None), (("py3.10-env",), "3.10"),
])
def test_claimed_version(labels: tuple[str, ...], expected: str | None) -> None:
    assert claimed_version(*labels) == expected


def test_unreadable_kernelspec_is_reported(jupyter: tuple[Path, Path],
                                          kernels_cli: Callable[..., tuple[int, str, str]]) -> None:
    """jupyter_client lists a folder whose kernel.json is broken (and cannot start it): EN200 says why."""
    root, _ = jupyter
    folder = root / "kernels" / "garbled"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text("{not json", encoding="utf-8")
    rc, doc = _json(kernels_cli, "--no-launch", "garbled")
    assert rc == 1
    [f] = _by_code(doc)["EN200"]
    assert f["evidence"] == {"kernel": "garbled", "resource_dir": str(folder)}
    assert "cannot read kernel.json" in f["message"]
    assert doc["kernels"][0]["status"] == "missing"
