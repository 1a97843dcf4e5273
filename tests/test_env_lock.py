"""``nbmedic env capture|check|export|rebuild`` against real virtual environments.

The venvs are real (``python -m venv``) and get real packages from the index (``six``, ``iniconfig``)
through the test interpreter's pip (``pip --python VENV``: no ensurepip, so a venv costs a second).
Kernelspecs live in a temporary ``JUPYTER_PATH``/``JUPYTER_DATA_DIR``: the user's own are never touched.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.envs.lock import normalize, version_level
from nbmedic.notebook.io import dumps

RunCli = Callable[..., tuple[int, str, str]]
BIN = "Scripts" if os.name == "nt" else "bin"


# --- helpers --------------------------------------------------------------------------------------

def pip(python: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
                    *args, "-q"], check=True, capture_output=True, timeout=300)


def make_venv(where: Path, *reqs: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / BIN / ("python.exe" if os.name == "nt" else "python")
    if reqs:
        pip(python, "install", *reqs)
    return python


def write_nb(path: Path, *sources: str, kernel: str = "python3", newline: str = "\n", **meta: Any) -> Path:
    cells: list[dict[str, Any]] = [
        {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
         "source": src} for i, src in enumerate(sources)]
    nb = {"cells": cells,
          "metadata": {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}, **meta},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_bytes(dumps(nb, newline).encode("utf-8"))
    return path


@pytest.fixture
def env_cli(run_cli: RunCli) -> RunCli:
    """``nbmedic env ...`` in-process."""
    return run_cli


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with six 1.16.0 and iniconfig 2.0.0; never modified."""
    return make_venv(tmp_path_factory.mktemp("base") / "venv", "six==1.16.0", "iniconfig==2.0.0")


@pytest.fixture
def jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "jupyter-data"
    (data / "kernels").mkdir(parents=True)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    return data


def register_spec(data: Path, name: str, python: Path) -> None:
    spec = data / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))


def json_findings(out: str) -> list[dict[str, Any]]:
    doc = json.loads(out)
    assert doc["version"] == 1
    findings: list[dict[str, Any]] = doc["findings"]
    return findings


# --- unit -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("locked", "installed", "level"), [
    ("1.16.0", "1.16.0", "same"), ("1.16.0", "1.17.0", "minor"), ("1.16.0", "2.0", "major"),
    ("1.16.0", "1.16.1", "patch"), ("1.16", "1.16.0.post1", "patch"), ("2.0.0rc1", "2.0.0", "patch"),
    ("1!2.0", "2.0", "patch"), ("weird", "1.0", "major"),
])
def test_version_level(locked: str, installed: str, level: str) -> None:
    assert version_level(locked, installed) == level


def test_normalize() -> None:
    assert normalize("Typing_Extensions") == "typing-extensions"
    assert normalize("zope.interface") == "zope-interface"


# --- capture --------------------------------------------------------------------------------------

def test_capture_uses_the_kernels_interpreter(env_cli: RunCli, base_venv: Path, jupyter_dirs: Path,
                                             tmp_path: Path) -> None:
    register_spec(jupyter_dirs, "lockvenv", base_venv)
    nb = write_nb(tmp_path / "a.ipynb", "import six\n", kernel="lockvenv")
    before = nb.read_bytes()
    code, out, err = env_cli("env", "capture", str(nb), "--lock-file", "env.lock.json")
    assert code == 0, err
    assert nb.read_bytes() == before  # --lock-file leaves the notebook alone
    lock = json.loads((tmp_path / "env.lock.json").read_text())
    assert lock["format"] == "nbmedic-lock" and lock["version"] == 1
    assert lock["packages"] == {"six": "1.16.0", "iniconfig": "2.0.0"}  # only the venv's, not nbmedic's
    assert lock["interpreter"] == str(base_venv)
    assert lock["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert lock["platform"] == sys.platform and lock["machine"]
    assert lock["imports_only"] is False
    assert "2 distribution(s)" in out and "wrote env.lock.json" in out


def test_capture_unknown_kernel_is_one_line(env_cli: RunCli, jupyter_dirs: Path, tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "a.ipynb", "x = 1\n", kernel="no-such-kernel")
    code, _, err = env_cli("env", "capture", str(nb))
    assert code == 1
    assert err.count("\n") == 1 and "no-such-kernel" in err and "--python" in err


def test_capture_into_notebook_round_trip(env_cli: RunCli, base_venv: Path, tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "a.ipynb", "import six\n", "print(1)\n", newline="\r\n", authors=[{"name": "x"}])
    before = json.loads(nb.read_text())
    code, out, err = env_cli("env", "capture", str(nb), "--python", str(base_venv))
    assert code == 0, err
    data = nb.read_bytes()
    assert b"\r\n" in data  # the notebook's newlines are kept
    after = json.loads(data)
    lock = after["metadata"].pop("nbmedic")["environment"]
    assert after == before  # nothing else changed
    assert lock["packages"] == {"iniconfig": "2.0.0", "six": "1.16.0"}
    # capturing the same environment again writes nothing
    mtime = nb.stat().st_mtime_ns
    code, out, _ = env_cli("env", "capture", str(nb), "--python", str(base_venv))
    assert code == 0 and "unchanged" in out and nb.stat().st_mtime_ns == mtime
    code, out, err = env_cli("env", "check", str(nb), "--python", str(base_venv), "--format", "json")
    assert code == 0, err
    assert json_findings(out) == []
    assert json.loads(out)["locked"] is True


def test_capture_imports_only(env_cli: RunCli, base_venv: Path, tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "a.ipynb", "import os\nfrom six.moves import range\n",
                  "import not_installed_xyz\n")
    code, out, err = env_cli("env", "capture", str(nb), "--python", str(base_venv), "--imports-only",
                             "--lock-file", "lock.json")
    assert code == 0, err
    lock = json.loads((tmp_path / "lock.json").read_text())
    assert lock["imports_only"] is True
    assert lock["packages"] == {"six": "1.16.0"}  # iniconfig is installed but not imported
    assert lock["imports"] == {"six": ["six"]}
    assert "not_installed_xyz" in out and "os" not in out.split("imports:")[-1]


# --- check ----------------------------------------------------------------------------------------

def test_check_reports_drift_and_missing(env_cli: RunCli, tmp_path: Path) -> None:
    python = make_venv(tmp_path / "drift", "six==1.16.0", "iniconfig==2.0.0")
    nb = write_nb(tmp_path / "a.ipynb", "import six\n")
    assert env_cli("env", "capture", str(nb), "--python", str(python))[0] == 0
    pip(python, "install", "six==1.17.0")
    pip(python, "uninstall", "-y", "iniconfig")
    code, out, err = env_cli("env", "check", str(nb), "--python", str(python), "--format", "json")
    assert code == 0, err  # warnings only
    by_pkg = {f["evidence"]["package"]: f for f in json_findings(out)}
    six = by_pkg["six"]
    assert six["code"] == "EN220" and six["severity"] == "warning"
    assert six["evidence"]["locked"] == "1.16.0" and six["evidence"]["installed"] == "1.17.0"
    assert six["evidence"]["difference"] == "minor"
    assert "1.16.0" in six["message"] and "1.17.0" in six["message"] and "six==1.16.0" in six["fix"]
    gone = by_pkg["iniconfig"]
    assert gone["code"] == "EN220" and gone["evidence"]["difference"] == "missing"
    assert gone["evidence"]["installed"] is None
    # the text report says the same
    code, out, _ = env_cli("env", "check", str(nb), "--python", str(python))
    assert code == 0 and "EN220" in out and "1.17.0" in out and "iniconfig" in out
    # --strict: warnings fail
    assert env_cli("env", "check", str(nb), "--python", str(python), "--strict")[0] == 1


def test_check_severities_python_and_platform(env_cli: RunCli, base_venv: Path, tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "a.ipynb", "import six\n")
    assert env_cli("env", "capture", str(nb), "--python", str(base_venv), "--lock-file", "lock.json")[0] == 0
    lock = json.loads((tmp_path / "lock.json").read_text())
    major, minor = sys.version_info[:2]
    lock["packages"]["six"] = "0.9.0"  # major
    lock["packages"]["iniconfig"] = "2.0.1"  # patch
    lock["python"] = f"{major}.{minor + 1}.0"
    lock["platform"], lock["machine"] = "win32", "AMD64"
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    code, out, err = env_cli("env", "check", str(nb), "--lock-file", "lock.json", "--python", str(base_venv),
                             "--format", "json")
    assert code == 1, err  # a major difference is an error
    found = {(f["code"], f["evidence"].get("package")): f["severity"] for f in json_findings(out)}
    assert found == {("EN220", "six"): "error", ("EN220", "iniconfig"): "info", ("EN221", None): "warning",
                     ("EN222", None): "info"}
    lock["python"] = f"{major - 1}.{minor}.0"
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    code, out, _ = env_cli("env", "check", str(nb), "--lock-file", "lock.json", "--python", str(base_venv),
                           "--format", "json", "--select", "EN221")
    assert [(f["code"], f["severity"]) for f in json_findings(out)] == [("EN221", "error")]


def test_check_unpinned_and_required_lock(env_cli: RunCli, base_venv: Path, tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "a.ipynb", "import six\n")
    # no lock, not required: nothing to check
    code, out, err = env_cli("env", "check", str(nb), "--python", str(base_venv))
    assert code == 0 and "no environment lock" in err
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nrequire-lock = true\n")
    code, out, err = env_cli("env", "check", str(nb), "--python", str(base_venv), "--format", "json")
    assert [f["code"] for f in json_findings(out)] == ["EN223"]
    assert code == 0  # a warning
    (tmp_path / "lock.json").write_text(json.dumps({
        "format": "nbmedic-lock", "version": 1, "python": "",
        "packages": {"six": None, "iniconfig": "2.0.0"}}))
    code, out, err = env_cli("env", "check", str(nb), "--python", str(base_venv), "--lock-file", "lock.json",
                             "--format", "json")
    findings = json_findings(out)
    assert [f["code"] for f in findings] == ["EN223"] and findings[0]["evidence"]["unpinned"] == ["six"]
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nrequire-lock = 'yes'\n")
    code, _, err = env_cli("env", "check", str(nb), "--python", str(base_venv))
    assert code == 2 and "require-lock" in err


# --- export ---------------------------------------------------------------------------------------

def test_export_formats(env_cli: RunCli, base_venv: Path, tmp_path: Path) -> None:
    import yaml

    nb = write_nb(tmp_path / "proj.ipynb", "import six\n")
    assert env_cli("env", "capture", str(nb), "--python", str(base_venv))[0] == 0
    code, out, err = env_cli("env", "export", str(nb))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("# nbmedic env export: Python 3.")
    assert lines[1:] == ["iniconfig==2.0.0", "six==1.16.0"]
    code, out, err = env_cli("env", "export", str(nb), "--format", "environment.yml")
    assert code == 0, err
    doc = yaml.safe_load(out)
    major, minor = sys.version_info[:2]
    assert doc["name"] == "proj"
    assert doc["dependencies"] == [f"python={major}.{minor}", "pip",
                                   {"pip": ["iniconfig==2.0.0", "six==1.16.0"]}]
    # from a lock file, into a file
    assert env_cli("env", "capture", str(nb), "--python", str(base_venv), "--lock-file", "l.json")[0] == 0
    code, out, err = env_cli("env", "export", "l.json", "-o", "requirements.txt")
    assert code == 0 and out == "" and "wrote requirements.txt" in err
    assert (tmp_path / "requirements.txt").read_text().splitlines()[1:] == ["iniconfig==2.0.0", "six==1.16.0"]


def test_export_local_and_url_installs() -> None:
    from nbmedic.envs.lock import export_requirements

    lock = {"packages": {"a": "1.0", "b": "2.0", "c": "3.0"},
            "direct": {"a": "file:///src/a", "b": "https://example.org/b-2.0.tar.gz"}}
    lines = export_requirements(lock).splitlines()[1:]
    assert lines == ["# a==1.0  (installed from file:///src/a, not from an index)",
                     "b @ https://example.org/b-2.0.tar.gz", "c==3.0"]


# --- bad inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "needle"), [
    (["env", "check", "missing.ipynb"], "no such notebook"),
    (["env", "capture", "missing.ipynb"], "no such notebook"),
    (["env", "export", "missing.json"], "no such lock file"),
    (["env", "check", "a.ipynb", "--lock-file", "bad.json"], "not valid JSON"),
    (["env", "check", "a.ipynb", "--lock-file", "other.json"], "not an nbmedic environment lock"),
    (["env", "export", "a.ipynb"], "no environment lock"),
    (["env", "capture", "a.ipynb", "--python", "/no/such/python"], "no such file"),
    (["env", "rebuild", "a.ipynb"], "--venv"),
    (["env", "rebuild", "lock.json", "--venv", "v", "--kernel-name", "bad name"], "--kernel-name"),
    (["env", "check", "broken.ipynb"], "not a readable notebook"),
    (["env"], "ACTION"),
])
def test_bad_inputs_one_line_exit_2(env_cli: RunCli, tmp_path: Path, argv: list[str], needle: str) -> None:
    write_nb(tmp_path / "a.ipynb", "x = 1\n")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    (tmp_path / "lock.json").write_text(json.dumps({"format": "nbmedic-lock", "version": 1, "packages": {}}))
    code, out, err = env_cli(*argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


# --- rebuild --------------------------------------------------------------------------------------

def test_rebuild_end_to_end(env_cli: RunCli, jupyter_dirs: Path, tmp_path: Path) -> None:
    real_user_kernels = Path.home() / ".local/share/jupyter/kernels/nbmedic-e2e-lock"
    assert not real_user_kernels.exists()
    lock = {"format": "nbmedic-lock", "version": 1, "python": "{}.{}.{}".format(*sys.version_info[:3]),
            "implementation": sys.implementation.name, "platform": sys.platform,
            "machine": platform.machine(),
            "packages": {"six": "1.16.0", "pip": "1.0", "localpkg": "0.1"},
            "direct": {"localpkg": "file:///nowhere/localpkg"}}
    (tmp_path / "e2e-lock.json").write_text(json.dumps(lock))
    venv = tmp_path / "rebuilt"
    code, out, err = env_cli("env", "rebuild", "e2e-lock.json", "--venv", str(venv),
                             "--kernel-name", "nbmedic-e2e-lock")
    assert code == 0, (out, err)
    assert "venv: created" in out and "six==1.16.0" in out and "ipykernel" in out
    assert "skip: pip: kept the venv's own pip" in out and "skip: localpkg" in out
    assert "launch: kernel 'nbmedic-e2e-lock' answered kernel_info (python 3." in out
    spec = json.loads((jupyter_dirs / "kernels" / "nbmedic-e2e-lock" / "kernel.json").read_text())
    python = venv / BIN / "python"
    assert os.path.samefile(spec["argv"][0], python)
    assert not real_user_kernels.exists()
    # the rebuilt venv matches the lock
    nb = write_nb(tmp_path / "a.ipynb", "import six\n", kernel="nbmedic-e2e-lock")
    code, out, err = env_cli("env", "check", str(nb), "--lock-file", "e2e-lock.json", "--format", "json")
    assert code == 0, err
    drift = {f["evidence"].get("package"): f["severity"] for f in json_findings(out)}
    assert drift == {"pip": "info", "localpkg": "warning"}  # the venv's own pip; the skipped local package
    # a version the index does not have: one line, exit 1; the venv is reused
    lock["packages"] = {"six": "0.0.999"}
    (tmp_path / "e2e-lock.json").write_text(json.dumps(lock))
    code, out, err = env_cli("env", "rebuild", "e2e-lock.json", "--venv", str(venv),
                             "--kernel-name", "nbmedic-e2e-lock")
    assert code == 1
    assert "venv: reusing" in out
    assert err.count("\n") == 1 and "pip install failed" in err and "six==0.0.999" in err
    # a folder that is not a venv is refused
    (tmp_path / "notvenv").mkdir()
    (tmp_path / "notvenv" / "file").write_text("x")
    code, out, err = env_cli("env", "rebuild", "e2e-lock.json", "--venv", "notvenv")
    assert code == 2 and "not an empty folder" in err


def test_drift_findings_api(base_venv: Path, tmp_path: Path) -> None:
    """What ``nbmedic run``/``doctor`` call before executing a notebook."""
    from nbmedic.envs.lock import capture, drift_findings
    from nbmedic.notebook.io import read_notebook

    nb_path = write_nb(tmp_path / "a.ipynb", "import six\n")
    nb, _ = read_notebook(nb_path)
    assert drift_findings(nb_path, nb, python=str(base_venv)) == []
    required = drift_findings(nb_path, nb, python=str(base_venv), require_lock=True)
    assert [f.code for f in required] == ["EN223"]
    lock, _ = capture(str(base_venv))
    lock["packages"]["six"] = "1.15.0"
    nb["metadata"]["nbmedic"] = {"environment": lock}
    found = drift_findings(nb_path, nb, python=str(base_venv))
    assert [(f.code, f.severity, f.evidence["installed"]) for f in found] == [("EN220", "warning", "1.16.0")]


def test_capture_is_not_fooled_by_modules_next_to_the_notebook(env_cli: RunCli, base_venv: Path,
                                                               tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("raise SystemExit('shadowed')\n")
    nb = write_nb(tmp_path / "a.ipynb", "import six\n")
    code, _, err = env_cli("env", "capture", str(nb), "--python", str(base_venv), "--lock-file", "l.json")
    assert code == 0, err
    assert json.loads((tmp_path / "l.json").read_text())["packages"]["six"] == "1.16.0"


def test_capture_sees_the_kernelspec_env(env_cli: RunCli, base_venv: Path, jupyter_dirs: Path,
                                         tmp_path: Path) -> None:
    """Packages on the kernelspec's PYTHONPATH are the kernel's packages too."""
    extra = tmp_path / "extra"
    pip(base_venv, "install", "--target", str(extra), "--no-deps", "iniconfig==2.1.0")
    register_spec(jupyter_dirs, "withpath", base_venv)
    spec_file = jupyter_dirs / "kernels" / "withpath" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["env"] = {"PYTHONPATH": str(extra)}
    spec_file.write_text(json.dumps(spec))
    nb = write_nb(tmp_path / "a.ipynb", "import iniconfig\n", kernel="withpath")
    code, _, err = env_cli("env", "capture", str(nb), "--lock-file", "l.json")
    assert code == 0, err
    assert json.loads((tmp_path / "l.json").read_text())["packages"]["iniconfig"] == "2.1.0"
