"""``nbmedic monitor install / uninstall / status`` on real kernelspec folders in a private Jupyter home.

Every test runs with the ``isolated`` fixture: besides ``jupyter_home`` (JUPYTER_PATH, data, runtime,
config), it points jupyter_core's environment and system folders (``sys.prefix/share/jupyter``, which
in this venv holds a ``python3`` kernelspec, and ``/usr/share/jupyter``) and the IPython folder at empty
temporary folders: jupyter_core has no variable that removes them, and no test may edit the venv's
kernelspec.  Kernel launches through a monitored kernelspec are tested by the provisioner's and the
wrapper's own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jupyter_core.paths
import psutil
import pytest

from nbmedic.cli import build_parser
from nbmedic.kernelspecs import read_kernelspecs
from nbmedic.live.install import (
    BACKUP_SUFFIX,
    PROVISIONER_NAME,
    GuardConfig,
    detect_style,
    nbmedic_command,
    provisioner_visible,
    render_json,
)
from nbmedic.live.paths import SESSION, kernel_dir, write_json

RunCli = Callable[..., tuple[int, str, str]]
IPYKERNEL_ARGV = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]


@pytest.fixture
def isolated(jupyter_home: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    empty = tmp_path / "empty-share"
    empty.mkdir()
    monkeypatch.setattr(jupyter_core.paths, "ENV_JUPYTER_PATH", [str(empty / "env")])
    monkeypatch.setattr(jupyter_core.paths, "SYSTEM_JUPYTER_PATH", [str(empty / "system")])
    monkeypatch.setenv("IPYTHONDIR", str(empty / "ipython"))
    monkeypatch.delenv("JUPYTER_PREFER_ENV_PATH", raising=False)
    kernels = jupyter_home["data"] / "kernels"
    kernels.mkdir()
    return {**jupyter_home, "kernels": kernels}


def make_spec(isolated: dict[str, Path], name: str, data: bytes | dict[str, Any]) -> Path:
    folder = isolated["kernels"] / name
    folder.mkdir()
    raw = data if isinstance(data, bytes) else (json.dumps(data, indent=1) + "\n").encode()
    (folder / "kernel.json").write_bytes(raw)
    return folder / "kernel.json"


def spec_doc(display_name: str = "Python (test)", **extra: Any) -> dict[str, Any]:
    return {"argv": IPYKERNEL_ARGV, "display_name": display_name, "language": "python", **extra}


def provisioner_block(path: Path) -> dict[str, Any] | None:
    block = json.loads(path.read_bytes()).get("metadata", {}).get("kernel_provisioner")
    return block if isinstance(block, dict) else None


def install_json(run_cli: RunCli, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    code, out, err = run_cli("monitor", "install", "--format", "json", *args)
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["action"] == "install"
    return code, doc["kernels"], err


# --- byte-for-byte ----------------------------------------------------------------------------------

FORMATS = {
    "jupyter": (json.dumps(spec_doc(metadata={"debugger": True}), indent=1) + "\n").encode(),
    "four-spaces-no-final-newline": json.dumps(spec_doc(), indent=4).encode(),
    "crlf-unicode": ('{\r\n\t"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],\r\n'
                     '\t"display_name": "Pythön 3 — données ✓",\r\n\t"language": "python",\r\n'
                     '\t"env": {"A": "1"}\r\n}\r\n').encode(),
    "one-line-escaped": json.dumps(spec_doc("Pyth\u00f6n"), ensure_ascii=True).encode(),
    "odd-spacing-bom": b'\xef\xbb\xbf{ "argv" : [ "python","-m","ipykernel_launcher","-f","{connection_file}" ] ,\n'
                       b'      "display_name":"odd"  , "language":"python",  "metadata" : { } }\n\n',
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_install_then_uninstall_restores_the_bytes(isolated: dict[str, Path], run_cli: RunCli, fmt: str) -> None:
    original = FORMATS[fmt]
    path = make_spec(isolated, "fmt", original)
    code, out, err = run_cli("monitor", "install", "fmt", "--memory-limit", "2G")
    assert code == 0, err
    assert out.startswith("fmt: monitored by the nbmedic provisioner (memory limit 2.0 GiB, guard on")
    assert provisioner_block(path) == {"provisioner_name": PROVISIONER_NAME, "config": {
        "memory_limit": 2 << 30, "guard": True, "interrupt_at": 0.9, "kill_at": 0.97}}
    backup = path.with_name("kernel.json" + BACKUP_SUFFIX)
    assert backup.read_bytes() == original
    written = path.read_bytes()
    assert (b"\r\n" in written) == (b"\r\n" in original)
    assert written.startswith(b"\xef\xbb\xbf") == original.startswith(b"\xef\xbb\xbf")
    assert written.isascii() == original.isascii()
    assert read_kernelspecs().get("fmt").display_name == json.loads(original).get("display_name")  # type: ignore[union-attr]

    code, out, err = run_cli("monitor", "uninstall", "fmt")
    assert code == 0, err
    assert "restored" in out and "byte for byte" in out and "changed" not in out
    assert path.read_bytes() == original
    assert not backup.exists()
    assert sorted(os.listdir(path.parent)) == ["kernel.json"]  # no temporary file left behind


def test_the_written_file_keeps_the_originals_style() -> None:
    jupyter = render_json({"a": [1], "b": "é"}, detect_style(FORMATS["jupyter"]))
    assert jupyter == b'{\n "a": [\n  1\n ],\n "b": "\\u00e9"\n}\n'
    crlf = render_json({"a": "é"}, detect_style(FORMATS["crlf-unicode"]))
    assert crlf == '{\r\n\t"a": "é"\r\n}\r\n'.encode()
    assert render_json({"a": 1}, detect_style(FORMATS["one-line-escaped"])) == b'{"a": 1}'


def test_install_twice_is_harmless_and_options_update_from_the_backup(isolated: dict[str, Path],
                                                                        run_cli: RunCli) -> None:
    path = make_spec(isolated, "twice", spec_doc(metadata={"debugger": True}))
    original = path.read_bytes()
    backup = path.with_name("kernel.json" + BACKUP_SUFFIX)
    code, results, _ = install_json(run_cli, "twice")
    assert code == 0 and results[0]["action"] == "installed" and results[0]["mode"] == "provisioner"
    assert results[0]["backup"] == str(backup) and results[0]["edited"] is False
    first = path.read_bytes()

    code, out, err = run_cli("monitor", "install", "twice")
    assert code == 0, err
    assert out == ("twice: already monitored by the nbmedic provisioner (memory limit from the cgroup, if any, "
                   "guard on: interrupt at 90 %, kill at 97 %); nothing changed\n")
    assert path.read_bytes() == first and backup.read_bytes() == original

    code, results, _ = install_json(run_cli, "twice", "--no-guard", "--interrupt-at", "0.8", "--kill-at", "0.95")
    assert code == 0 and results[0]["action"] == "updated"
    assert results[0]["config"] == {"memory_limit": None, "guard": False, "interrupt_at": 0.8, "kill_at": 0.95}
    assert provisioner_block(path)["config"]["guard"] is False  # type: ignore[index]
    assert json.loads(path.read_bytes())["metadata"]["debugger"] is True
    assert backup.read_bytes() == original  # the backup is never overwritten while monitored

    code, out, _ = run_cli("monitor", "uninstall")
    assert code == 0 and out.startswith("twice: restored")
    assert path.read_bytes() == original


# --- wrapper mode ----------------------------------------------------------------------------------

def test_wrapper_mode_argv_switches_modes_cleanly(isolated: dict[str, Path], run_cli: RunCli) -> None:
    path = make_spec(isolated, "Wrapped", spec_doc(env={"X": "1"}))
    original = path.read_bytes()
    assert run_cli("monitor", "install", "wrapped")[0] == 0
    provisioner_bytes = path.read_bytes()

    code, out, err = run_cli("monitor", "install", "wrapped", "--wrapper", "--memory-limit", "512M",
                             "--interrupt-at", "0.85")
    assert code == 0, err
    assert out.startswith("wrapped: updated: now monitored by the nbmedic kernel wrapper (memory limit 512.0 MiB")
    doc = json.loads(path.read_bytes())
    assert "kernel_provisioner" not in doc.get("metadata", {})  # the wrapper monitors; no provisioner on top
    command = nbmedic_command()
    assert doc["argv"] == [*command, "kernel-wrapper", "--memory-limit", str(512 << 20), "--interrupt-at", "0.85",
                           "--kill-at", "0.97", "--kernel-name", "wrapped", "--", *IPYKERNEL_ARGV]
    assert os.path.isabs(doc["argv"][0])
    args = build_parser().parse_args(doc["argv"][len(command):])  # the wrapper's own parser reads it back
    assert (args.command, args.memory_limit, args.guard, args.interrupt_at, args.kill_at, args.kernel_name) == (
        "kernel-wrapper", str(512 << 20), True, 0.85, 0.97, "wrapped")
    assert args.argv[-len(IPYKERNEL_ARGV):] == IPYKERNEL_ARGV
    assert doc["env"] == {"X": "1"}

    assert run_cli("monitor", "install", "wrapped", "--wrapper", "--no-guard")[0] == 0
    assert json.loads(path.read_bytes())["argv"] == [
        *command, "kernel-wrapper", "--no-guard", "--interrupt-at", "0.9", "--kill-at", "0.97",
        "--kernel-name", "wrapped", "--", *IPYKERNEL_ARGV]
    assert run_cli("monitor", "install", "wrapped")[0] == 0  # back to the provisioner: no wrapper left
    assert path.read_bytes() == provisioner_bytes
    assert path.with_name("kernel.json" + BACKUP_SUFFIX).read_bytes() == original
    assert run_cli("monitor", "uninstall", "wrapped")[0] == 0
    assert path.read_bytes() == original


def test_the_wrapper_runs_the_nbmedic_beside_the_interpreter_else_on_path_else_python_m(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin, other_bin = tmp_path / "venv" / "bin", tmp_path / "other" / "bin"
    for folder in (venv_bin, other_bin):
        folder.mkdir(parents=True)
        (folder / "nbmedic").write_text("#!/bin/sh\n", encoding="utf-8")
        (folder / "nbmedic").chmod(0o755)
    python = venv_bin / "python"
    python.write_text("", encoding="utf-8")
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setenv("PATH", str(other_bin))
    assert nbmedic_command() == [str(venv_bin / "nbmedic")]  # a venv's own script first
    (venv_bin / "nbmedic").unlink()
    assert nbmedic_command() == [str(other_bin / "nbmedic")]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert nbmedic_command() == [str(python), "-m", "nbmedic"]


def test_non_python_kernel_is_monitored_too(isolated: dict[str, Path], run_cli: RunCli) -> None:
    argv = ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    path = make_spec(isolated, "ir", {"argv": argv, "display_name": "R", "language": "R"})
    original = path.read_bytes()
    code, out, err = run_cli("monitor", "install", "ir", "--wrapper")
    assert code == 0, err
    assert json.loads(path.read_bytes())["argv"][-len(argv) - 1:] == ["--", *argv]
    code, out, _ = run_cli("monitor", "status")
    assert "  ir: R (R), " in out and "ir" in out and "monitored by the nbmedic kernel wrapper" in out
    assert run_cli("monitor", "install", "ir")[0] == 0
    assert provisioner_block(path) is not None
    assert run_cli("monitor", "uninstall", "ir")[0] == 0
    assert path.read_bytes() == original


# --- the built-in python3 ---------------------------------------------------------------------------

def test_builtin_python3_gets_a_user_kernelspec_that_uninstall_removes(isolated: dict[str, Path],
                                                                       run_cli: RunCli) -> None:
    builtin = read_kernelspecs().get("python3")
    assert builtin is not None and builtin.source == "builtin", "the test needs python3 to have no kernel.json"
    target = isolated["kernels"] / "python3"
    code, results, err = install_json(run_cli, "python3")
    assert code == 0, err
    assert results[0]["action"] == "created" and results[0]["kernel_json"] == str(target / "kernel.json")
    doc = json.loads((target / "kernel.json").read_bytes())
    assert doc["argv"] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert doc["display_name"] == builtin.display_name and doc["language"] == "python"
    assert doc["metadata"]["nbmedic"] == {"created_by_monitor_install": True}
    assert doc["metadata"]["kernel_provisioner"]["provisioner_name"] == PROVISIONER_NAME
    logos = sorted(n for n in os.listdir(builtin.resource_dir) if n.startswith("logo"))
    assert logos and all((target / logo).read_bytes() == Path(builtin.resource_dir, logo).read_bytes()
                         for logo in logos)
    now = read_kernelspecs().get("python3")
    assert now is not None and now.resource_dir == str(target) and now.provisioner == PROVISIONER_NAME

    code, out, _ = run_cli("monitor", "status")
    assert "python3: " in out and "a user kernelspec nbmedic created" in out
    assert run_cli("monitor", "install", "python3", "--wrapper")[0] == 0  # re-install: the same folder
    assert "kernel-wrapper" in json.loads((target / "kernel.json").read_bytes())["argv"]

    code, out, err = run_cli("monitor", "uninstall")
    assert code == 0, err
    assert out == f"python3: removed the user kernelspec {target} that monitor install created\n"
    assert not target.exists()
    again = read_kernelspecs().get("python3")
    assert again is not None and again.source == "builtin"


# --- refusals and errors ----------------------------------------------------------------------------

def test_someone_elses_provisioner_is_refused(isolated: dict[str, Path], run_cli: RunCli) -> None:
    theirs = make_spec(isolated, "theirs", spec_doc(metadata={"kernel_provisioner": {
        "provisioner_name": "docker-provisioner", "config": {"image": "x"}}}))
    local = make_spec(isolated, "local", spec_doc(metadata={"kernel_provisioner": {
        "provisioner_name": "local-provisioner", "config": {}}}))
    before, local_before = theirs.read_bytes(), local.read_bytes()
    code, out, err = run_cli("monitor", "install", "theirs", "local")
    assert code == 1
    assert err.count("\n") == 1 and "nbmedic: error: theirs: " in err and "'docker-provisioner'" in err
    assert theirs.read_bytes() == before and not theirs.with_name("kernel.json" + BACKUP_SUFFIX).exists()
    assert out.startswith("local: monitored by the nbmedic provisioner")  # jupyter_client's default is replaced
    assert provisioner_block(local)["provisioner_name"] == PROVISIONER_NAME  # type: ignore[index]
    code, out, _ = run_cli("monitor", "status")
    assert "theirs: " in out and "not monitored (it uses the kernel provisioner 'docker-provisioner')" in out
    assert run_cli("monitor", "uninstall", "local")[0] == 0 and local.read_bytes() == local_before


def test_a_failed_write_is_one_line_and_leaves_the_file_alone(isolated: dict[str, Path], run_cli: RunCli) -> None:
    """Root-proof: the backup's place is taken by a folder, so the write fails for root too."""
    path = make_spec(isolated, "blocked", spec_doc())
    other = make_spec(isolated, "fine", spec_doc())
    path.with_name("kernel.json" + BACKUP_SUFFIX).mkdir()
    before = path.read_bytes()
    code, out, err = run_cli("monitor", "install", "blocked", "fine")
    assert code == 1
    assert err.startswith("nbmedic: error: blocked: cannot write the backup ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["kernel.json", "kernel.json" + BACKUP_SUFFIX]
    assert out.startswith("fine: monitored") and provisioner_block(other) is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_kernelspec_folder_that_is_not_writable_is_one_line(isolated: dict[str, Path], run_cli: RunCli) -> None:
    path = make_spec(isolated, "readonly", spec_doc())
    before = path.read_bytes()
    path.parent.chmod(0o555)
    try:
        code, out, err = run_cli("monitor", "install", "readonly")
        assert code == 1 and out == ""
        assert err.startswith("nbmedic: error: readonly: cannot write ") and "Permission denied" in err
        assert err.count("\n") == 1
        assert path.read_bytes() == before and os.listdir(path.parent) == ["kernel.json"]
    finally:
        path.parent.chmod(0o755)


def test_usage_errors(isolated: dict[str, Path], run_cli: RunCli) -> None:
    make_spec(isolated, "k", spec_doc())
    code, _, err = run_cli("monitor", "install", "nope")
    assert code == 2 and "no kernelspec named nope" in err
    code, _, err = run_cli("monitor", "install", "k", "--interrupt-at", "0.99", "--kill-at", "0.9")
    assert code == 2 and "0 < interrupt-at < kill-at <= 1" in err
    code, _, err = run_cli("monitor", "install", "k", "--memory-limit", "lots")
    assert code == 2 and "--memory-limit" in err
    assert not (isolated["kernels"] / "k" / ("kernel.json" + BACKUP_SUFFIX)).exists()


# --- uninstall ----------------------------------------------------------------------------------------

def test_uninstall_after_someone_edited_the_file_restores_the_backup_and_says_so(
        isolated: dict[str, Path], run_cli: RunCli) -> None:
    path = make_spec(isolated, "edited", spec_doc())
    original = path.read_bytes()
    assert run_cli("monitor", "install", "edited")[0] == 0
    doc = json.loads(path.read_bytes())
    doc["display_name"] = "renamed by hand"
    path.write_text(json.dumps(doc), encoding="utf-8")

    code, results, _ = install_json(run_cli, "edited", "--no-guard")  # re-install keeps their change
    assert code == 0 and results[0]["action"] == "updated" and "changes are kept" in results[0]["message"]
    assert results[0]["edited"] is True
    assert json.loads(path.read_bytes())["display_name"] == "renamed by hand"

    code, out, err = run_cli("monitor", "uninstall", "--format", "json")
    assert code == 0, err
    result = json.loads(out)["kernels"][0]
    assert result["action"] == "restored" and result["edited"] is True and result["mode"] == "provisioner"
    assert path.read_bytes() == original


def test_uninstall_skips_what_is_not_monitored(isolated: dict[str, Path], run_cli: RunCli) -> None:
    path = make_spec(isolated, "plain", spec_doc())
    before = path.read_bytes()
    code, out, _ = run_cli("monitor", "uninstall")
    assert code == 0 and out == "no kernelspec is monitored; nothing to do\n"
    code, out, _ = run_cli("monitor", "uninstall", "plain")
    assert code == 0 and out == "plain: not monitored; nothing to do\n"
    assert path.read_bytes() == before


def test_uninstall_without_a_backup_removes_only_nbmedics_part(isolated: dict[str, Path], run_cli: RunCli) -> None:
    path = make_spec(isolated, "nobackup", spec_doc(metadata={"debugger": True}))
    assert run_cli("monitor", "install", "nobackup", "--wrapper")[0] == 0
    path.with_name("kernel.json" + BACKUP_SUFFIX).unlink()
    code, out, _ = run_cli("monitor", "uninstall")
    assert code == 0 and "no backup was found" in out
    assert json.loads(path.read_bytes()) == spec_doc(metadata={"debugger": True})


# --- status -------------------------------------------------------------------------------------------

def _session(kernel_id: str, pid: int, started: float, notebook: str | None) -> None:
    write_json(os.path.join(kernel_dir(kernel_id), SESSION), {
        "schema": 1, "kernel_id": kernel_id, "pid": pid, "pgid": pid, "supervisor": "provisioner",
        "supervisor_pid": os.getpid(), "kernelspec": "mon", "language": "python", "python": True,
        "notebook": notebook, "cwd": None, "started": started, "argv": ["python"], "faulthandler": None,
        "memory_limit": None, "limit_source": None, "guard": True, "interrupt_at": 0.9, "kill_at": 0.97})


def test_status_lists_kernelspecs_and_the_running_monitored_kernels(isolated: dict[str, Path],
                                                                      run_cli: RunCli) -> None:
    make_spec(isolated, "mon", spec_doc("Monitored"))
    make_spec(isolated, "plain", {"argv": ["julia", "{connection_file}"], "display_name": "Julia",
                                  "language": "julia"})
    assert run_cli("monitor", "install", "mon", "--memory-limit", "1G")[0] == 0
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        created = psutil.Process(sleeper.pid).create_time()
        _session("alive-kernel", sleeper.pid, created + 0.05, "/work/analysis.ipynb")
        _session("reused-pid", sleeper.pid, created - 100, "/work/old.ipynb")  # the pid now belongs to another
        done = subprocess.Popen([sys.executable, "-c", "pass"])
        done.wait()
        _session("dead-kernel", done.pid, time.time() - 5, "/work/dead.ipynb")

        code, out, err = run_cli("monitor", "status")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == "kernelspecs:"
        mon = next(line for line in lines if line.startswith("  mon: "))
        assert mon == (f"  mon: Monitored (python), {isolated['kernels'] / 'mon'}: monitored by the nbmedic "
                       "provisioner (memory limit 1.0 GiB, guard on: interrupt at 90 %, kill at 97 %)")
        assert f"  plain: Julia (julia), {isolated['kernels'] / 'plain'}: not monitored" in lines
        assert any(line.startswith("  python3: ") and "built in" in line and "not monitored" in line
                   for line in lines)
        running = lines[lines.index("running monitored kernels:") + 1:]
        assert len(running) == 1
        assert running[0].startswith(f"  alive-kernel: /work/analysis.ipynb, pid {sleeper.pid}, up ")
        assert running[0].endswith("(provisioner, kernelspec mon)")
        assert ("entry point is not visible" in err) == (not provisioner_visible())

        code, out, _ = run_cli("monitor", "status", "--format", "json")
        doc = json.loads(out)
        assert set(doc) == {"version", "provisioner_visible", "kernels", "running"} and doc["version"] == 1
        kernels = {k["name"]: k for k in doc["kernels"]}
        assert sorted(kernels) == ["mon", "plain", "python3"]
        assert kernels["mon"]["monitored"] == "provisioner"
        assert kernels["mon"]["config"] == GuardConfig(memory_limit=1 << 30).to_dict()
        assert kernels["mon"]["backup"] == str(isolated["kernels"] / "mon" / ("kernel.json" + BACKUP_SUFFIX))
        assert kernels["plain"]["monitored"] == "no" and kernels["plain"]["language"] == "julia"
        assert kernels["python3"]["source"] == "builtin" and kernels["python3"]["monitored"] == "no"
        assert [r["kernel_id"] for r in doc["running"]] == ["alive-kernel"]
        alive = doc["running"][0]
        assert alive["pid"] == sleeper.pid and alive["notebook"] == "/work/analysis.ipynb"
        assert 0 <= alive["uptime"] < 120
    finally:
        sleeper.kill()
        sleeper.wait()
    code, out, _ = run_cli("monitor", "status", "--format", "json")
    assert json.loads(out)["running"] == []


def test_the_provisioner_entry_point_is_looked_up_where_python_looks(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "fake_nbmedic-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-nbmedic\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[jupyter_client.kernel_provisioners]\nnbmedic-provisioner = nbmedic.live.provisioner:NbmedicProvisioner\n",
        encoding="utf-8")
    assert provisioner_visible([str(site)]) is True
    assert provisioner_visible([str(tmp_path / "nothing")]) is False


def test_status_warns_when_the_server_could_not_find_the_provisioner(isolated: dict[str, Path], run_cli: RunCli,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make_spec(isolated, "mon", spec_doc())
    assert run_cli("monitor", "install", "mon")[0] == 0
    monkeypatch.setattr(sys, "path", [str(tmp_path / "no-packages-here")])  # a Python that lacks nbmedic
    code, _, err = run_cli("monitor", "status")
    assert code == 0
    assert err == (f"nbmedic: warning: the {PROVISIONER_NAME} entry point is not visible from {sys.executable}: "
                   "the Jupyter server must run in an environment where nbmedic is installed (or use "
                   "`monitor install --wrapper`)\n")


def test_a_backup_left_behind_is_never_put_over_a_file_nbmedic_did_not_write(isolated: dict[str, Path],
                                                                             run_cli: RunCli) -> None:
    path = make_spec(isolated, "stale", spec_doc("current"))
    original = path.read_bytes()
    backup = path.with_name("kernel.json" + BACKUP_SUFFIX)
    backup.write_bytes(json.dumps(spec_doc("long ago")).encode())
    code, out, _ = run_cli("monitor", "uninstall", "stale")
    assert code == 0 and out.startswith("stale: not monitored; nothing to do (a backup from an earlier install")
    assert path.read_bytes() == original
    code, out, _ = run_cli("monitor", "install", "stale")
    assert code == 0 and "a backup left from an earlier install was replaced by the current file" in out
    assert backup.read_bytes() == original
    assert run_cli("monitor", "uninstall")[0] == 0
    assert path.read_bytes() == original and not backup.exists()
