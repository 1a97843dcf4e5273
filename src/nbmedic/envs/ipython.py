"""IPython configuration probes (EN230, EN231): extensions and startup files that fail in the kernel.

The kernel is launched for real (``nbmedic.execute.kernel.Kernel``, which captures its stdout and stderr
to a log file) and its own start-up output is read:

* ``Error in loading extension: <ext>`` / ``Check your config files in <profile>`` followed by a
  traceback → EN230, naming the extension, the profile folder and the exception line;
* ``Unknown error in handling startup files:`` or ``Unknown error in handling PYTHONSTARTUP file <f>:``
  → EN231.  IPython sends that traceback to the (not yet connected) front end, not to the log, so when
  the log holds no traceback the kernel is asked: ``IPython`` keeps the exception in ``sys.last_value``;
  its traceback names the failing startup file.

Nothing here raises for a kernel that does not start: that is EN202's business (``kernelspecs``); what
the log shows up to the failure is still reported.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from nbmedic.execute.kernel import Kernel, KernelStartError
from nbmedic.findings import Finding, make

__all__ = ["StartupProblem", "ipython_config_findings", "parse_startup_log"]

_EXT_RE = re.compile(r"Error in loading extension:\s*(?P<ext>\S+)")
_CHECK_RE = re.compile(r"Check your config files in\s*(?P<profile>.+?)\s*$")
_STARTUP_RE = re.compile(r"Unknown error in handling startup files:?")
_PYSTARTUP_RE = re.compile(r"Unknown error in handling PYTHONSTARTUP file\s*(?P<file>.+?):?\s*$")
# the start of a new log record: "[IPKernelApp] WARNING | …", "[W 2026-01-02 10:11:12.345 IPKernelApp] …"
_RECORD_RE = re.compile(r"^\[(?:[A-Za-z]\w*\]|[DIWEC] \d)")
_NOT_EXCEPTION = ("Traceback (most recent call last)", "During handling of the above exception",
                  "The above exception was the direct cause", "Check your config files in")
_MARKER = "__nbmedic_startup_error__"

# run inside the kernel after start-up: the exception IPython showed last, and the startup file in it
_ASK_LAST_ERROR = f"""
def __nbmedic_last_error():
    import json, sys, traceback
    value = getattr(sys, "last_value", None)
    if value is None:
        return
    files = [f.filename for f in traceback.extract_tb(getattr(sys, "last_traceback", None))]
    try:
        folder = get_ipython().profile_dir.startup_dir
    except Exception:
        folder = ""
    startup = [f for f in files if folder and f.startswith(folder)]
    line = traceback.format_exception_only(type(value), value)[-1].strip()
    print({_MARKER!r} + json.dumps({{"error": line, "file": (startup or files or [None])[-1]}}))
__nbmedic_last_error()
del __nbmedic_last_error
"""


@dataclass
class StartupProblem:
    """One failure found in a kernel's start-up output."""

    kind: str  # "extension" | "startup" | "pythonstartup"
    name: str | None = None  # the extension, or the startup file
    profile: str | None = None  # "Check your config files in …"
    error: str | None = None  # the exception line ("ModuleNotFoundError: No module named 'x'")
    traceback: list[str] = field(default_factory=list)


def _exception_line(lines: list[str]) -> str | None:
    """The last unindented line of a traceback block that is not a traceback header."""
    found: str | None = None
    for line in lines:
        text = line.rstrip()
        if not text or text[0].isspace() or text.startswith(_NOT_EXCEPTION):
            continue
        found = text
    return found


def _startup_file(lines: list[str]) -> str | None:
    files: list[str] = re.findall(r'^\s*File "([^"]+)"', "\n".join(lines), flags=re.MULTILINE)
    startup = [f for f in files if "/startup/" in f.replace("\\", "/")]
    return startup[-1] if startup else None


def parse_startup_log(text: str) -> list[StartupProblem]:
    """The extension and startup-file failures in a kernel's start-up output, in order."""
    lines = text.splitlines()
    out: list[StartupProblem] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        problem: StartupProblem | None = None
        m = _EXT_RE.search(line)
        if m:
            problem = StartupProblem("extension", name=m.group("ext"))
        elif (p := _PYSTARTUP_RE.search(line)) is not None:
            problem = StartupProblem("pythonstartup", name=p.group("file"))
        elif _STARTUP_RE.search(line):
            problem = StartupProblem("startup")
        if problem is None:
            i += 1
            continue
        j = i + 1
        block: list[str] = []
        while j < len(lines) and not _RECORD_RE.match(lines[j]) and not _EXT_RE.search(lines[j]) \
                and not _STARTUP_RE.search(lines[j]) and not _PYSTARTUP_RE.search(lines[j]):
            block.append(lines[j])
            j += 1
        for b in block:
            c = _CHECK_RE.search(b)
            if c:
                problem.profile = c.group("profile")
                break
        problem.traceback = [b for b in block if b.strip()]
        problem.error = _exception_line(block)
        if problem.kind == "startup" and problem.name is None:
            problem.name = _startup_file(block)
        out.append(problem)
        i = j
    return out


def _ask_last_error(kernel: Any, timeout: float) -> dict[str, Any] | None:
    """Run ``_ASK_LAST_ERROR`` in the kernel; its answer, or None."""
    try:
        msg_id = kernel.execute(_ASK_LAST_ERROR)
    except Exception:  # noqa: BLE001 - the kernel went away: the log's facts are reported as they are
        return None
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = False
        for channel, msg in kernel.receive(0.05):
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            msg_type = msg.get("msg_type") or (msg.get("header") or {}).get("msg_type")
            if channel == "iopub" and msg_type == "stream":
                text += str((msg.get("content") or {}).get("text", ""))
            elif channel == "shell" and msg_type == "execute_reply":
                done = True
        if done:
            break
    for line in text.splitlines():
        if line.startswith(_MARKER):
            try:
                answer = json.loads(line[len(_MARKER):])
            except ValueError:
                return None
            return answer if isinstance(answer, dict) else None
    return None


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _finding(kernel_name: str, problem: StartupProblem) -> Finding:
    evidence: dict[str, Any] = {"kernel": kernel_name}
    if problem.kind == "extension":
        evidence.update(extension=problem.name, profile=problem.profile, error=problem.error,
                        traceback_tail=problem.traceback[-6:])
        where = f" (check your config files in {problem.profile})" if problem.profile else ""
        return make("EN230", None,
                    f"the IPython extension {problem.name!r} configured for the kernel {kernel_name!r} fails to "
                    f"load{where}" + (f": {problem.error}" if problem.error else ""),
                    evidence=evidence,
                    fix=(f"install {problem.name!r} in the kernel's environment, or remove it from "
                         "`c.InteractiveShellApp.extensions` in "
                         + (f"{problem.profile}/ipython_kernel_config.py (or ipython_config.py)"
                            if problem.profile else "the IPython profile's config files")))
    label = "PYTHONSTARTUP file" if problem.kind == "pythonstartup" else "startup file"
    evidence.update(file=problem.name, kind=problem.kind, error=problem.error,
                    traceback_tail=problem.traceback[-6:])
    named = f" {problem.name}" if problem.name else ""
    return make("EN231", None,
                f"the IPython {label}{named} raises when the kernel {kernel_name!r} starts"
                + (f": {problem.error}" if problem.error else ""),
                evidence=evidence,
                fix=(f"fix or move {problem.name} " if problem.name else "fix or move the failing startup file ")
                + "(run `ipython` in the kernel's environment to see the full error); a startup file that "
                "raises stops the files after it from running")


def ipython_config_findings(kernel_name: str, *, cwd: str, startup_timeout: float = 30) -> list[Finding]:
    """EN230/EN231: launch ``kernel_name`` and read its start-up output for failing extensions and
    startup files.  The kernel inherits this process's environment (``IPYTHONDIR``, ``PYTHONSTARTUP``)."""
    kernel = Kernel(kernel_name, cwd=cwd)
    try:
        started = True
        try:
            kernel.start(startup_timeout)
        except KernelStartError:
            started = False
        problems = parse_startup_log(_read(kernel.stderr_path))
        startup = [p for p in problems if p.kind != "extension" and (p.name is None or p.error is None)]
        if startup and started:
            answer = _ask_last_error(kernel, min(10.0, max(1.0, startup_timeout)))
            if answer:
                for p in startup:
                    p.name = p.name or (str(answer["file"]) if answer.get("file") else None)
                    p.error = p.error or (str(answer["error"]) if answer.get("error") else None)
    finally:
        kernel.close()
    return [_finding(kernel_name, p) for p in problems]
