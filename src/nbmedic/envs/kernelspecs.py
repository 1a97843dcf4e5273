"""Kernelspec probes (EN200–EN204): every kernelspec Jupyter can see, and whether it really works.

The kernelspecs and the Python each one runs come from ``nbmedic.kernelspecs`` (the one model NB041 and
``nbmedic env`` read too); ``check_spec()`` checks one (interpreter present, ipykernel importable, a real
launch to ``kernel_info``); ``duplicate_findings()`` and ``version_findings()`` compare them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbmedic.envs.interpreters import (
    InterpreterFacts,
    interpreter_facts,
    path_tool_findings,
    rewrite_finding,
    user_site_findings,
)
from nbmedic.execute.kernel import Kernel, KernelStartError
from nbmedic.execute.startup import diagnose_start
from nbmedic.findings import Finding, make
from nbmedic.kernelspecs import Kernelspec
from nbmedic.notebook.cells import kernel_name_of
from nbmedic.notebook.io import NotebookReadError, read_notebook

__all__ = ["KernelReport", "check_spec", "claimed_version", "duplicate_findings", "notebook_version_findings"]


@dataclass
class KernelReport:
    """What checking one kernelspec found."""

    spec: Kernelspec
    interpreter: str | None = None  # the program the kernel runs (argv[0] as jupyter_client resolves it)
    python_version: str | None = None
    status: str = "unchecked"  # ok | missing | no-ipykernel | failed | unchecked
    findings: list[Finding] = field(default_factory=list)
    facts: InterpreterFacts | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "interpreter": self.interpreter, "python_version": self.python_version,
                "status": self.status}

    @property
    def broken(self) -> bool:
        return self.status in ("missing", "no-ipykernel", "failed")


def _uses_ipykernel(argv: Sequence[str]) -> bool:
    return any("ipykernel" in a for a in argv[1:])


def _missing(spec: Kernelspec) -> Finding:
    """EN200: the kernelspec's argv[0] cannot run (or the spec has no argv at all)."""
    where = spec.resource_dir or None
    interp = spec.interpreter
    if not spec.argv:
        why = f"cannot be used: {spec.error}" if spec.error else "has no argv"
        return make("EN200", where, f"the kernelspec {spec.name!r} {why}",
                    evidence={"kernel": spec.name, "resource_dir": spec.resource_dir})
    return make(
        "EN200", where, f"the kernelspec {spec.name!r} runs {interp.argv0}, which {interp.problem} "
        "(the kernelspec points to a deleted or moved environment)",
        evidence={"kernel": spec.name, "argv": list(spec.argv), "resource_dir": spec.resource_dir},
        fix=f"`jupyter kernelspec remove {spec.name}` (or `nbmedic kernels --fix`), or re-register it "
        "from a live environment")


def _no_ipykernel(spec: Kernelspec, python: str, facts: InterpreterFacts) -> Finding:
    return make(
        "EN201", spec.resource_dir or None, f"the kernel {spec.name!r} cannot start: its interpreter {python} "
        "has no ipykernel (\"No module named ipykernel_launcher\")",
        evidence={"kernel": spec.name, "interpreter": python, "prefix": facts.prefix,
                  "python_version": facts.version},
        fix=f"`{python} -m pip install ipykernel`, or re-register the kernel from an environment that has it")


def check_spec(spec: Kernelspec, *, startup_timeout: float = 30.0, launch: bool = True,
               interpreters: bool = True) -> KernelReport:
    """EN200, EN201, EN202 and EN212 for one kernelspec (plus EN210/EN211 for its interpreter)."""
    report = KernelReport(spec)
    where = spec.resource_dir or None
    interp = spec.interpreter
    report.interpreter = interp.program
    if interp.program is None:
        report.status = "missing"
        report.findings.append(_missing(spec))
        return report
    if interp.rewritten and spec.source not in ("env", "builtin"):
        # a spec inside the server's own environment (ipykernel's python3) is meant to run that interpreter
        found = rewrite_finding(spec.name, spec.argv, path=where)
        if found is not None:
            report.findings.append(found)
    if interp.python is not None:
        facts = interpreter_facts(interp.python, env=spec.environ(), flags=interp.flags)
        if isinstance(facts, InterpreterFacts):
            report.facts = facts
            report.python_version = facts.version
            if _uses_ipykernel(spec.argv) and not facts.ipykernel:
                report.status = "no-ipykernel"
                report.findings.append(_no_ipykernel(spec, interp.python, facts))
                return report
            if interpreters:
                report.findings.extend(user_site_findings(spec.name, facts, where=where))
                report.findings.extend(path_tool_findings(spec.name, facts.prefix, kernel_python=interp.python,
                                                          where=where))
    if launch:
        _launch(report, startup_timeout)
    return report


def _launch(report: KernelReport, startup_timeout: float) -> None:
    spec = report.spec
    cwd = tempfile.mkdtemp(prefix="nbmedic-kernels-")
    kernel = Kernel(spec.name, cwd=cwd)
    try:
        kernel.start(startup_timeout)
    except KernelStartError as exc:
        report.status = "failed"
        started = diagnose_start(exc.facts)
        evidence = {k: v for k, v in started.evidence.items() if v is not None}
        evidence.setdefault("stderr_tail", kernel.stderr_tail())
        evidence["startup_timeout"] = startup_timeout
        evidence["resource_dir"] = spec.resource_dir
        report.findings.append(make("EN202", spec.resource_dir or None,
                                    f"the kernel {spec.name!r} did not reach kernel_info: {started.message}",
                                    evidence=evidence))
        return
    finally:
        kernel.close()
        shutil.rmtree(cwd, ignore_errors=True)
    report.status = "ok"
    info = kernel.info or {}
    language_info = info.get("language_info") or {}
    version = language_info.get("version")
    if version and str(language_info.get("name", "")).lower() == "python":
        report.python_version = str(version)
    claimed = claimed_version(spec.name, spec.display_name)
    if claimed and report.python_version and not _version_matches(claimed, report.python_version):
        report.findings.append(make(
            "EN204", spec.resource_dir or None,
            f"the kernel {spec.name!r} ({spec.display_name}) claims Python {claimed} but runs "
            f"Python {report.python_version}",
            evidence={"kernel": spec.name, "display_name": spec.display_name, "claimed": claimed,
                      "actual": report.python_version, "interpreter": report.interpreter},
            fix=f"re-register the kernel from a Python {claimed} environment, or rename it "
            "(`nbmedic kernels --register NAME`)"))


_CLAIM = re.compile(r"(?<![a-z])(?:python|py)[\s_-]*(\d)(?:[._]?(\d{1,2}))?(?!\d)", re.IGNORECASE)


def claimed_version(*labels: str) -> str | None:
    """The Python version a kernel name or display name claims: 'python39' → '3.9', 'Python 3' → '3'."""
    best: str | None = None
    for label in labels:
        for m in _CLAIM.finditer(label):
            major, minor = m.group(1), m.group(2)
            if major not in ("2", "3"):
                continue
            value = f"{major}.{int(minor)}" if minor else major
            if best is None or len(value) > len(best):
                best = value
    return best


def _version_matches(claimed: str, actual: str) -> bool:
    parts = actual.split(".")
    want = claimed.split(".")
    return parts[:len(want)] == want


def duplicate_findings(specs: Iterable[Kernelspec], *, only: set[str] | None = None) -> list[Finding]:
    """EN203: display names used by several specs, and specs that shadow another of the same name."""
    specs = list(specs)
    findings: list[Finding] = []
    by_display: dict[str, list[Kernelspec]] = {}
    for spec in specs:
        by_display.setdefault(spec.display_name.strip().lower(), []).append(spec)
    for group in by_display.values():
        if len(group) < 2 or (only is not None and not any(s.name in only for s in group)):
            continue
        names = [s.name for s in group]
        findings.append(make(
            "EN203", group[0].resource_dir or None,
            f"{len(group)} kernelspecs share the display name {group[0].display_name!r}: "
            f"{', '.join(names)} (the kernel picker cannot tell them apart)",
            evidence={"display_name": group[0].display_name,
                      "kernels": [{"name": s.name, "resource_dir": s.resource_dir, "source": s.source}
                                  for s in group]}))
    for spec in specs:
        if not spec.shadows or (only is not None and spec.name not in only):
            continue
        hidden = spec.shadows
        findings.append(make(
            "EN203", spec.resource_dir or None,
            f"the {spec.source} kernelspec {spec.name!r} shadows "
            + ", ".join(f"the {h.source} one at {h.resource_dir}" for h in hidden)
            + " (Jupyter only sees the first)",
            evidence={"kernel": spec.name, "active": spec.resource_dir, "source": spec.source,
                      "shadowed": [{"resource_dir": h.resource_dir, "source": h.source,
                                    "display_name": h.display_name, "argv": list(h.argv)} for h in hidden]}))
    return findings


def notebook_version_findings(path: str, reports: Iterable[KernelReport]) -> list[Finding]:
    """EN204 for a notebook: its language_info.version (major.minor) against its kernel's Python."""
    try:
        nb, _ = read_notebook(path)
    except (OSError, NotebookReadError):
        return []
    info = nb.get("metadata", {}).get("language_info") if isinstance(nb.get("metadata"), dict) else None
    claimed = str(info.get("version") or "") if isinstance(info, dict) else ""
    kernel_name = kernel_name_of(nb, default="").lower()
    if not claimed or not kernel_name:
        return []
    want = ".".join(claimed.split(".")[:2])
    for report in reports:
        if report.spec.name != kernel_name or not report.python_version:
            continue
        if not _version_matches(want, report.python_version):
            return [make("EN204", path,
                         f"the notebook was last run with Python {claimed} but its kernel {kernel_name!r} "
                         f"runs Python {report.python_version}",
                         evidence={"kernel": kernel_name, "notebook_version": claimed,
                                   "kernel_version": report.python_version, "interpreter": report.interpreter})]
    return []
