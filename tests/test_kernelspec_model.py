"""The kernelspec model (``nbmedic.kernelspecs``) against jupyter_client itself, on real kernel folders."""

from __future__ import annotations

import os
import stat
import sys
import warnings
from pathlib import Path

import pytest

from nbmedic.kernelspecs import (
    installed_kernels,
    interpreter_of,
    is_rewritten_python,
    kernel_dirs,
    python_flags,
    read_kernelspecs,
)
from tests.specs import LAUNCHER, make_bare_venv, write_spec

PY = sys.executable


@pytest.fixture
def jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """(first JUPYTER_PATH entry, second entry, JUPYTER_DATA_DIR), all empty."""
    first, second, data = tmp_path / "jp1", tmp_path / "jp2", tmp_path / "data"
    for folder in (first, second, data):
        folder.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(first), str(second)]))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    return first, second, data


def _manager() -> object:
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager()


def test_the_model_finds_what_jupyter_client_finds(jupyter: tuple[Path, Path, Path]) -> None:
    first, second, data = jupyter
    write_spec(first, "dup", [PY, *LAUNCHER], display_name="Dup first")
    write_spec(second, "dup", ["/nowhere/python", *LAUNCHER], display_name="Dup second")
    write_spec(data, "dup", [PY, *LAUNCHER], display_name="Dup user")
    write_spec(second, "MixedCase", [PY, *LAUNCHER], env={"A": "1"}, metadata={"debugger": True})
    write_spec(data, "mine", ["python", *LAUNCHER], interrupt_mode="message")
    (second / "kernels" / "no-json").mkdir()  # not a kernelspec: no kernel.json
    (first / "kernels" / "broken").mkdir()
    (first / "kernels" / "broken" / "kernel.json").write_text("{not json", encoding="utf-8")
    ksm = _manager()
    specs = read_kernelspecs()
    assert installed_kernels() == ksm.find_kernel_specs()  # type: ignore[attr-defined]
    assert [folder for folder, _ in kernel_dirs()] == ksm.kernel_dirs  # type: ignore[attr-defined]
    for spec in specs:
        if spec.error is not None:
            continue
        theirs = ksm.get_kernel_spec(spec.name)  # type: ignore[attr-defined]
        assert (list(spec.argv), dict(spec.env), spec.display_name, spec.language, spec.interrupt_mode,
                dict(spec.metadata)) == (theirs.argv, theirs.env, theirs.display_name, theirs.language,
                                         theirs.interrupt_mode, theirs.metadata), spec.name
    dup = specs.get("DUP")
    assert dup is not None and dup.source == "path" and dup.display_name == "Dup first"
    assert [(s.resource_dir, s.source) for s in dup.shadows] == [
        (str(second / "kernels" / "dup"), "path"), (str(data / "kernels" / "dup"), "user")]
    assert specs.get("mixedcase") is not None and "MIXEDCASE" in specs
    broken = specs.get("broken")
    assert broken is not None and broken.error and not broken.argv  # listed, as jupyter_client lists it
    assert specs.get("mine") is not None and specs.get("mine").source == "user"  # type: ignore[union-attr]


def test_invalid_folder_names_are_listed_as_jupyter_client_lists_them(jupyter: tuple[Path, Path, Path]) -> None:
    first, _, _ = jupyter
    write_spec(first, "has space", [PY, *LAUNCHER])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jupyter_client warns about the name, and lists it anyway
        theirs = _manager().find_kernel_specs()  # type: ignore[attr-defined]
    assert "has space" in theirs
    assert installed_kernels() == theirs


def test_the_native_kernel_is_ipykernels_own() -> None:
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict

    from nbmedic.kernelspecs import _native

    native = _native()
    assert native is not None and native.source == "builtin"
    theirs = get_kernel_dict()
    assert (list(native.argv), native.display_name, native.language, native.resource_dir) == (
        theirs["argv"], theirs["display_name"], theirs["language"], RESOURCES)


def _launch_argv0(name: str) -> str:
    """argv[0] as jupyter_client hands it to the launcher (format_kernel_cmd, then the launcher's ~)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=name)
    return os.path.expanduser(km.format_kernel_cmd()[0])


def test_argv0_is_rewritten_and_substituted_as_jupyter_client_does(jupyter: tuple[Path, Path, Path]) -> None:
    first, _, _ = jupyter
    cases = {"plain": "python", "versioned": "python{}.{}".format(*sys.version_info[:2]),
             "prefixed": "{prefix}/bin/python", "inside": "{resource_dir}/run.sh", "tilde": "~/env/bin/python",
             "absolute": PY, "other": "python2.7"}
    for name, argv0 in cases.items():
        write_spec(first, name, [argv0, *LAUNCHER])
    specs = read_kernelspecs()
    for name in cases:
        spec = specs.get(name)
        assert spec is not None
        assert spec.interpreter.argv0 == _launch_argv0(name), name
    assert specs.get("plain").interpreter.rewritten  # type: ignore[union-attr]
    assert specs.get("plain").interpreter.python == PY  # type: ignore[union-attr]
    assert is_rewritten_python("python3") and not is_rewritten_python("python2.7")


def test_which_python_a_kernel_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_python = make_bare_venv(tmp_path / "venv")
    bin_dir = venv_python.parent
    (bin_dir / "python3.99").symlink_to("python")
    not_executable = tmp_path / "python3"
    not_executable.write_text("")
    not_executable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the Python is named
    assert interpreter_of(["~/venv/bin/python", *LAUNCHER]).python == str(venv_python)
    assert interpreter_of(["python3.99", *LAUNCHER], environ=env).python == str(bin_dir / "python3.99")
    assert interpreter_of(["{prefix}/bin/python", *LAUNCHER]).python == f"{sys.prefix}/bin/python"
    # it cannot be
    wrapper = interpreter_of(["env", "python", *LAUNCHER])
    assert wrapper.program is not None and wrapper.python is None and wrapper.problem and "wrapper" in wrapper.problem
    assert interpreter_of(["python3.99", *LAUNCHER], environ={"PATH": str(tmp_path)}).problem == "is not on PATH"
    assert interpreter_of([str(tmp_path / "gone" / "python")]).problem == "does not exist"
    assert interpreter_of([str(not_executable)]).problem == "is not executable"
    assert interpreter_of([PY, "-e"], language="R").problem == "is not a Python kernel"
    assert interpreter_of([]).problem == "has no argv"


def test_the_spec_env_reaches_the_interpreter_rule(jupyter: tuple[Path, Path, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare name is looked up on the kernel's own PATH: os.environ plus the spec's env, ${VAR} filled."""
    first, _, _ = jupyter
    venv_python = make_bare_venv(tmp_path / "venv")
    (venv_python.parent / "python3.99").symlink_to("python")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("PYTHONEXECUTABLE", "/somewhere/python")
    write_spec(first, "envpath", ["python3.99", *LAUNCHER], env={"PATH": f"{venv_python.parent}:${{PATH}}"})
    spec = read_kernelspecs().get("envpath")
    assert spec is not None
    assert spec.environ()["PATH"] == f"{venv_python.parent}:/usr/bin:/bin"
    assert "PYTHONEXECUTABLE" not in spec.environ()  # jupyter_client drops it for Python kernels
    assert spec.interpreter.python == str(venv_python.parent / "python3.99")


@pytest.mark.parametrize(("argv", "flags"), [
    ([PY, "-m", "ipykernel_launcher", "-I"], ()),
    ([PY, "-I", "-m", "ipykernel_launcher"], ("-I",)),
    ([PY, "-s", "-X", "frozen_modules=off", "-Wignore", "-E", "-m", "x"], ("-s", "-X", "frozen_modules=off", "-E")),
    ([PY, "-W", "error", "-Xdev", "-i", "-IS", "script.py", "-s"], ("-X", "dev", "-IS")),
    ([PY, "-c", "pass"], ()),
])
def test_python_flags(argv: list[str], flags: tuple[str, ...]) -> None:
    assert python_flags(argv) == flags


def test_provisioner_metadata(jupyter: tuple[Path, Path, Path]) -> None:
    first, _, _ = jupyter
    write_spec(first, "remote", [PY, *LAUNCHER],
               metadata={"kernel_provisioner": {"provisioner_name": "nbmedic-no-such-provisioner"}})
    write_spec(first, "local", [PY, *LAUNCHER])
    specs = read_kernelspecs()
    assert specs.get("remote").provisioner == "nbmedic-no-such-provisioner"  # type: ignore[union-attr]
    assert specs.get("local").provisioner is None  # type: ignore[union-attr]
