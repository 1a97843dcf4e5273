"""The start-up diagnosis on made-up facts: every failure, one evidence layout per code.

The real failures (a missing interpreter, one without ipykernel, an unknown name, a mute kernel) run in
``test_run_faults.py``; here the facts are written by hand, as ``Kernel.start`` would gather them.
"""

from __future__ import annotations

import pytest

from nbmedic.evidence import layout
from nbmedic.execute.kernel import KernelStartError
from nbmedic.execute.startup import RN140_KEYS, RN141_KEYS, StartFacts, StartFailure, diagnose_start

ARGV = ("/envs/gone/bin/python", "-m", "ipykernel_launcher", "-f", "/tmp/k/kernel.json")


def _facts(failure: StartFailure, **kw: object) -> StartFacts:
    return StartFacts(kernel="py", failure=failure, path="nb.ipynb", argv=ARGV, startup_timeout=60.0,
                      **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("failure", "code"), [
    ("no-such-kernel", "RN140"),
    ("program-missing", "RN140"),
    ("launch-error", "RN140"),
    ("exited", "RN140"),
    ("launch-timeout", "RN141"),
    ("no-reply", "RN141"),
])
def test_every_failure_has_its_code_and_the_code_s_one_layout(failure: StartFailure, code: str) -> None:
    f = diagnose_start(_facts(failure, elapsed=1.2))
    assert f.code == code and f.path == "nb.ipynb" and f.cell is None
    assert tuple(f.evidence) == (RN140_KEYS if code == "RN140" else RN141_KEYS)
    assert set(f.evidence) <= set(layout(code))  # every key declared, with its unit
    assert f.evidence["kernel"] == "py" and f.evidence["argv"] == list(ARGV)


def test_no_such_kernel_lists_the_installed_ones() -> None:
    f = diagnose_start(StartFacts(kernel="julia", failure="no-such-kernel",
                                  installed={"python3": "/k/python3", "ir": "/k/ir"}))
    assert f.message == "no kernel named 'julia' is installed here (installed: ir, python3)"
    assert f.evidence["installed"] == {"python3": "/k/python3", "ir": "/k/ir"} and f.evidence["argv"] == []
    none = diagnose_start(StartFacts(kernel="julia", failure="no-such-kernel", installed={}))
    assert none.message.endswith("(none is installed)")


def test_a_missing_program_names_it() -> None:
    f = diagnose_start(_facts("program-missing", missing=ARGV[0], kernelspec="/k/py",
                              error="FileNotFoundError: [Errno 2] No such file or directory"))
    assert f.code == "RN140" and ARGV[0] in f.message and "deleted or moved environment" in f.message
    assert f.evidence["missing"] == ARGV[0] and f.evidence["kernelspec"] == "/k/py"


def test_a_launcher_error_gives_its_text_without_the_type() -> None:
    f = diagnose_start(_facts("launch-error", error="PermissionError: [Errno 13] Permission denied: '/x'"))
    assert f.message == "the kernel 'py' cannot start: [Errno 13] Permission denied: '/x'"
    assert f.evidence["error"] == "PermissionError: [Errno 13] Permission denied: '/x'"


def test_an_interpreter_without_ipykernel_gets_the_fix() -> None:
    tail = "Traceback...\n/envs/gone/bin/python: No module named ipykernel_launcher\n"
    f = diagnose_start(_facts("exited", exit_code=1, stderr_tail=tail, pid=7))
    assert "has no ipykernel" in f.message and f.fix is not None and "pip install ipykernel" in f.fix
    assert f.evidence["exit_code"] == 1 and f.evidence["signal"] is None and f.evidence["pid"] == 7
    assert f.evidence["installed"] is None and f.evidence["missing"] is None  # keys that do not apply


def test_an_exit_gives_the_code_or_signal_and_the_last_line() -> None:
    f = diagnose_start(_facts("exited", exit_code=2, stderr_tail="starting\nImportError: no zmq\n\n"))
    assert f.message == "the kernel 'py' exited with code 2 during start-up: ImportError: no zmq"
    g = diagnose_start(_facts("exited", exit_code=-11))
    assert g.message == "the kernel 'py' exited on SIGSEGV during start-up" and g.evidence["signal"] == "SIGSEGV"


def test_timeouts_are_rn141() -> None:
    assert diagnose_start(_facts("launch-timeout")).message == "the kernel 'py' did not start within 60 s"
    f = diagnose_start(_facts("no-reply", stderr_tail="x" * 5000, pid=9))
    assert f.message == "the kernel 'py' did not answer within 60 s of starting"
    assert len(f.evidence["stderr_tail"]) == 3000 and f.evidence["pid"] == 9 and f.evidence["startup_timeout"] == 60
    assert f.evidence["heard"] is None  # not known: the kernel's channels were never listened to


@pytest.mark.parametrize(("heard", "silence"), [
    ((), "did not answer"),
    (("iopub",), "sent messages on iopub but did not answer kernel_info"),
    (("shell",), "answered kernel_info but sent nothing on iopub"),
])
def test_no_reply_says_which_channels_the_kernel_spoke_on(heard: tuple[str, ...], silence: str) -> None:
    f = diagnose_start(_facts("no-reply", heard=heard))
    assert f.message == f"the kernel 'py' {silence} within 60 s of starting"
    assert f.evidence["heard"] == list(heard)


def test_the_exception_carries_facts_not_text() -> None:
    facts = _facts("no-reply")
    exc = KernelStartError(facts)
    assert exc.facts is facts and not hasattr(exc, "finding")
    assert diagnose_start(exc.facts).code == "RN141"
