"""EN230/EN231: real kernels started with a temporary IPYTHONDIR whose profile breaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbmedic.envs.ipython import ipython_config_findings, parse_startup_log


def _profile(root: Path) -> Path:
    profile = root / "profile_default"
    (profile / "startup").mkdir(parents=True)
    return profile


@pytest.fixture
def ipythondir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ipython"
    _profile(root)
    monkeypatch.setenv("IPYTHONDIR", str(root))
    monkeypatch.delenv("PYTHONSTARTUP", raising=False)
    return root


def test_clean_profile_gives_nothing(ipythondir: Path, tmp_path: Path) -> None:
    assert ipython_config_findings("python3", cwd=str(tmp_path)) == []


def test_broken_extension_and_startup_file(ipythondir: Path, tmp_path: Path) -> None:
    profile = ipythondir / "profile_default"
    (profile / "ipython_kernel_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["nbmedic_no_such_ext"]\n', encoding="utf-8")
    broken = profile / "startup" / "00-broken.py"
    broken.write_text('raise ValueError("broken startup")\n', encoding="utf-8")
    findings = ipython_config_findings("python3", cwd=str(tmp_path))
    assert [f.code for f in findings] == ["EN230", "EN231"]
    ext, startup = findings
    assert ext.evidence["extension"] == "nbmedic_no_such_ext"
    assert ext.evidence["profile"] == str(profile)
    assert "No module named 'nbmedic_no_such_ext'" in ext.evidence["error"]
    assert "nbmedic_no_such_ext" in ext.message and str(profile) in ext.message
    assert startup.evidence["file"] == str(broken)
    assert startup.evidence["error"] == "ValueError: broken startup"
    assert str(broken) in startup.message and "broken startup" in startup.message
    assert ext.to_dict()["severity"] == "warning"


def test_pythonstartup_file(ipythondir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "pystartup.py"
    script.write_text('raise KeyError("from PYTHONSTARTUP")\n', encoding="utf-8")
    monkeypatch.setenv("PYTHONSTARTUP", str(script))
    findings = ipython_config_findings("python3", cwd=str(tmp_path))
    assert [f.code for f in findings] == ["EN231"]
    assert findings[0].evidence["file"] == str(script)
    assert findings[0].evidence["kind"] == "pythonstartup"
    assert "KeyError" in findings[0].evidence["error"]


def test_missing_kernel_reports_nothing_here(ipythondir: Path, tmp_path: Path) -> None:
    # a kernel that does not start is EN202's finding (kernelspecs), not this probe's
    assert ipython_config_findings("nbmedic-no-such-kernel", cwd=str(tmp_path)) == []


def test_parse_log_with_traceback_and_timestamps() -> None:
    lines = (
        "[W 2026-01-02 10:11:12.345 IPKernelApp] Error in loading extension: myext",
        "    Check your config files in /home/u/.ipython/profile_default",
        "    Traceback (most recent call last):",
        '      File "/x/extensions.py", line 76, in _load_extension',
        "        mod = import_module(module_str)",
        "ImportError: cannot import name 'thing' from 'myext'",
        "[IPKernelApp] WARNING | Unknown error in handling startup files:",
        "Traceback (most recent call last):",
        '  File "/home/u/.ipython/profile_default/startup/10-x.py", line 1, in <module>',
        "    1 / 0",
        "ZeroDivisionError: division by zero",
        "[IPKernelApp] WARNING | Unknown error in handling PYTHONSTARTUP file /home/u/s.py:",
    )
    problems = parse_startup_log("\n".join(lines))
    assert [(p.kind, p.name) for p in problems] == [
        ("extension", "myext"), ("startup", "/home/u/.ipython/profile_default/startup/10-x.py"),
        ("pythonstartup", "/home/u/s.py")]
    assert problems[0].profile == "/home/u/.ipython/profile_default"
    assert problems[0].error == "ImportError: cannot import name 'thing' from 'myext'"
    assert problems[1].error == "ZeroDivisionError: division by zero"
    assert problems[2].error is None
