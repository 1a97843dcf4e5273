"""Why did the kernel not start?  Facts in, one Finding out (RN140, RN141).

``Kernel.start`` gathers what it knows when a start fails (``StartFacts``) and raises ``KernelStartError``
carrying them; ``diagnose_start`` turns the facts into the finding.  Pure, like ``forensics.diagnose_death``,
so every branch is tested with made-up facts.  What failed (``StartFacts.failure``):

* ``no-such-kernel``: no kernelspec has that name (RN140, listing the installed ones);
* ``program-missing``: the kernelspec's program does not exist, a deleted or moved environment (RN140);
* ``launch-error``: the launcher raised (no permission to run the program, a broken kernelspec) (RN140);
* ``exited``: the process exited during start-up (RN140; an interpreter without ipykernel gets the fix);
* ``launch-timeout``: launching the process took longer than the start-up timeout (RN141);
* ``no-reply``: the process runs but did not answer ``kernel_info`` within the start-up timeout (RN141;
  ``heard`` says whether it spoke on iopub, alive but stuck in its start, or on no channel at all).

Each code has one evidence layout (``RN140_KEYS``, ``RN141_KEYS``); a key that does not apply is None.
What failed and when (``failure``, ``elapsed``) are facts for callers, not evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nbmedic.execute.signals import signal_name
from nbmedic.findings import Finding, make

__all__ = ["RN140_KEYS", "RN141_KEYS", "KernelStartError", "StartFacts", "StartFailure", "diagnose_start"]

StartFailure = Literal["no-such-kernel", "program-missing", "launch-error", "exited", "launch-timeout", "no-reply"]

# the evidence layouts (nbmedic/evidence.py declares them with their units); every key is always there,
# None when it does not apply to the failure
RN140_KEYS = ("kernel", "error", "missing", "kernelspec", "argv", "exit_code", "signal", "stderr_tail", "installed",
              "pid")
RN141_KEYS = ("kernel", "startup_timeout", "argv", "stderr_tail", "pid", "heard")
_NO_IPYKERNEL = ("No module named ipykernel_launcher", "No module named ipykernel")


@dataclass(frozen=True)
class StartFacts:
    """What is known when a kernel start fails."""

    kernel: str  # the kernel name asked for
    failure: StartFailure
    path: str | None = None  # the notebook, for the finding
    argv: tuple[str, ...] = ()  # the command line, once the kernelspec was found
    startup_timeout: float | None = None  # seconds
    elapsed: float | None = None  # seconds from the launch to the failure (None: never launched)
    exit_code: int | None = None  # the process's return code (negative = signal) when it exited
    pid: int | None = None
    stderr_tail: str = ""  # the end of the kernel's stdout and stderr
    missing: str | None = None  # the program that does not exist
    error: str | None = None  # the launcher's exception, "Type: message"
    installed: Mapping[str, str] | None = None  # name -> folder of every kernelspec (no-such-kernel)
    kernelspec: str | None = None  # the kernelspec's folder
    heard: tuple[str, ...] | None = None  # no-reply: the channels the kernel sent anything on ("shell", "iopub")


class KernelStartError(Exception):
    """The kernel could not be started; ``facts`` say what failed and ``diagnose_start`` explains it."""

    def __init__(self, facts: StartFacts) -> None:
        super().__init__(f"the kernel {facts.kernel!r} did not start ({facts.failure})")
        self.facts = facts


def _evidence(facts: StartFacts, keys: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kernel": facts.kernel, "argv": list(facts.argv), "exit_code": facts.exit_code,
        "signal": signal_name(facts.exit_code), "stderr_tail": facts.stderr_tail[-3000:], "missing": facts.missing,
        "error": facts.error, "installed": dict(facts.installed) if facts.installed is not None else None,
        "kernelspec": facts.kernelspec, "pid": facts.pid, "startup_timeout": facts.startup_timeout,
        "heard": list(facts.heard) if facts.heard is not None else None,
    }
    return {key: values[key] for key in keys}


def _exited(facts: StartFacts) -> tuple[str, str | None]:
    name, code = facts.kernel, facts.exit_code
    if any(text in facts.stderr_tail for text in _NO_IPYKERNEL):
        exe = facts.argv[0] if facts.argv else "python"
        message = (f"the kernel {name!r} exited at start-up: its interpreter {exe} has no ipykernel "
                   "(\"No module named ipykernel_launcher\")")
        fix = f"`{exe} -m pip install ipykernel`, or re-register the kernel from an environment that has it"
        return message, fix
    lines = [ln.strip() for ln in facts.stderr_tail.splitlines() if ln.strip()]
    if code is None:
        how = "with an unknown status"
    else:
        how = f"with code {code}" if code >= 0 else f"on {signal_name(code)}"
    return f"the kernel {name!r} exited {how} during start-up" + (f": {lines[-1]}" if lines else ""), None


def _message(facts: StartFacts) -> tuple[str, str | None]:
    """(message, fix) of an RN140."""
    name = facts.kernel
    if facts.failure == "no-such-kernel":
        installed = sorted(facts.installed or {})
        listed = f" (installed: {', '.join(installed)})" if installed else " (none is installed)"
        return f"no kernel named {name!r} is installed here{listed}", None
    if facts.failure == "program-missing":
        program = facts.missing or (facts.argv[0] if facts.argv else "?")
        message = (f"the kernel {name!r} cannot start: its program {program} does not exist "
                   "(the kernelspec points to a deleted or moved environment)")
        return message, None
    if facts.failure == "exited":
        return _exited(facts)
    reason = (facts.error or "the launcher failed").split(": ", 1)[-1]
    return f"the kernel {name!r} cannot start: {reason}", None


def _silence(heard: tuple[str, ...] | None) -> str:
    """What the kernel did not do, by the channels it was heard on while nbmedic asked for kernel_info."""
    if heard and "shell" in heard:  # a reply, but its iopub channel never spoke (a broken kernel)
        return "answered kernel_info but sent nothing on iopub"
    if heard:  # alive (its iopub spoke) but stuck before it serves requests
        return "sent messages on iopub but did not answer kernel_info"
    return "did not answer"


def diagnose_start(facts: StartFacts) -> Finding:
    """RN141 when the kernel did not start or answer in time, else RN140 with why it could not start."""
    timeout = f"{facts.startup_timeout:g} s" if facts.startup_timeout is not None else "the start-up timeout"
    if facts.failure == "launch-timeout":
        return make("RN141", facts.path, f"the kernel {facts.kernel!r} did not start within {timeout}",
                    evidence=_evidence(facts, RN141_KEYS))
    if facts.failure == "no-reply":
        message = f"the kernel {facts.kernel!r} {_silence(facts.heard)} within {timeout} of starting"
        return make("RN141", facts.path, message, evidence=_evidence(facts, RN141_KEYS))
    message, fix = _message(facts)
    return make("RN140", facts.path, message, evidence=_evidence(facts, RN140_KEYS), fix=fix)
