"""Kernelspec probes (EN200–EN204): every kernelspec Jupyter can see, and whether it really works.

``installed_specs()`` lists them as jupyter_client resolves them (the first folder of a name wins) and
remembers the ones they shadow; ``check_spec()`` checks one (interpreter present, ipykernel importable,
a real launch to ``kernel_info``); ``duplicate_findings()`` and ``version_findings()`` compare them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.envs.interpreters import (
    InterpreterFacts,
    interpreter_facts,
    is_rewritten_python,
    path_tool_findings,
    rewrite_finding,
    user_site_findings,
)
from nbmedic.findings import Finding, make

__all__ = ["KernelReport", "SpecInfo", "check_spec", "claimed_version", "duplicate_findings",
           "installed_specs", "notebook_version_findings", "resolve_interpreter"]


@dataclass
class SpecInfo:
    """One kernelspec folder."""

    name: str
    display_name: str
    resource_dir: str
    argv: list[str]
    language: str
    source: str  # user | path (JUPYTER_PATH) | env | system | other
    env: dict[str, str] = field(default_factory=dict)
    shadows: list[SpecInfo] = field(default_factory=list)  # same name, lower priority folders


@dataclass
class KernelReport:
    """What checking one kernelspec found."""

    spec: SpecInfo
    interpreter: str | None = None
    python_version: str | None = None
    status: str = "unchecked"  # ok | missing | no-ipykernel | failed | unchecked
    findings: list[Finding] = field(default_factory=list)
    facts: InterpreterFacts | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        return {"name": s.name, "display_name": s.display_name, "resource_dir": s.resource_dir,
                "argv": s.argv, "language": s.language, "source": s.source, "interpreter": self.interpreter,
                "python_version": self.python_version, "status": self.status}

    @property
    def broken(self) -> bool:
        return self.status in ("missing", "no-ipykernel", "failed")


def _classify(kernel_dir: str) -> str:
    from jupyter_core.paths import ENV_JUPYTER_PATH, SYSTEM_JUPYTER_PATH, jupyter_data_dir

    def same(a: str, b: str) -> bool:
        return os.path.normpath(a) == os.path.normpath(b)

    home = os.path.expanduser("~")
    if same(kernel_dir, os.path.join(jupyter_data_dir(), "kernels")) or (
            home not in ("", os.sep) and kernel_dir.startswith(home.rstrip(os.sep) + os.sep)):
        return "user"
    for entry in os.environ.get("JUPYTER_PATH", "").split(os.pathsep):
        if entry and same(kernel_dir, os.path.join(entry, "kernels")):
            return "path"
    if any(same(kernel_dir, os.path.join(p, "kernels")) for p in ENV_JUPYTER_PATH):
        return "env"
    if any(same(kernel_dir, os.path.join(p, "kernels")) for p in SYSTEM_JUPYTER_PATH):
        return "system"
    return "other"


def _read_spec(name: str, folder: str, source: str) -> SpecInfo | None:
    try:
        data = json.loads(Path(folder, "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    argv = data.get("argv")
    env = data.get("env")
    return SpecInfo(name=name, display_name=str(data.get("display_name") or name), resource_dir=folder,
                    argv=[str(a) for a in argv] if isinstance(argv, list) else [],
                    language=str(data.get("language") or ""), source=source,
                    env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {})


def installed_specs() -> list[SpecInfo]:
    """Every kernelspec Jupyter sees (the winner of each name, with the folders it shadows), by name."""
    from jupyter_client.kernelspec import KernelSpecManager, _is_valid_kernel_name

    ksm = KernelSpecManager()
    found: dict[str, SpecInfo] = {}
    for kernel_dir in ksm.kernel_dirs:
        if not os.path.isdir(kernel_dir):
            continue
        source = _classify(kernel_dir)
        try:
            entries = sorted(os.listdir(kernel_dir))
        except OSError:
            continue
        for entry in entries:
            folder = os.path.join(kernel_dir, entry)
            if not os.path.isfile(os.path.join(folder, "kernel.json")) or not _is_valid_kernel_name(entry):
                continue
            spec = _read_spec(entry.lower(), folder, source)
            if spec is None:
                continue
            if spec.name in found:
                found[spec.name].shadows.append(spec)
            else:
                found[spec.name] = spec
    # the built-in kernel of the ipykernel nbmedic runs with, when no folder provides "python3"
    try:
        for name, item in ksm.get_all_specs().items():
            if name not in found:
                raw = item.get("spec") or {}
                found[name] = SpecInfo(name=name, display_name=str(raw.get("display_name") or name),
                                       resource_dir=str(item.get("resource_dir") or ""),
                                       argv=[str(a) for a in raw.get("argv") or []],
                                       language=str(raw.get("language") or ""), source="builtin")
    except Exception:  # noqa: BLE001, S110 - a broken spec elsewhere must not hide the others
        pass
    return [found[n] for n in sorted(found)]


def resolve_interpreter(argv0: str) -> tuple[str | None, bool]:
    """(the program jupyter_client will run, whether it is the server's rewritten ``python``)."""
    if is_rewritten_python(argv0):
        return sys.executable, True
    if os.sep in argv0 or (os.altsep and os.altsep in argv0):
        path = os.path.expanduser(argv0)
        return (path if os.path.isfile(path) and os.access(path, os.X_OK) else None), False
    return shutil.which(argv0), False


def _uses_ipykernel(argv: Sequence[str]) -> bool:
    return any("ipykernel" in a for a in argv[1:])


def _is_python(program: str, spec: SpecInfo) -> bool:
    base = os.path.basename(program).lower()
    return spec.language.lower() == "python" and (base.startswith(("python", "pypy")))


def check_spec(spec: SpecInfo, *, startup_timeout: float = 30.0, launch: bool = True,
               interpreters: bool = True) -> KernelReport:
    """EN200, EN201, EN202 and EN212 for one kernelspec (plus EN210/EN211 for its interpreter)."""
    report = KernelReport(spec)
    where = spec.resource_dir or None
    if not spec.argv:
        report.status = "missing"
        report.findings.append(make("EN200", where, f"the kernelspec {spec.name!r} has no argv",
                                    evidence={"kernel": spec.name, "resource_dir": spec.resource_dir}))
        return report
    argv0 = spec.argv[0]
    program, rewritten = resolve_interpreter(argv0)
    report.interpreter = program
    if rewritten and spec.source not in ("env", "builtin"):
        # a spec inside the server's own environment (ipykernel's python3) is meant to run that interpreter
        found = rewrite_finding(spec.name, spec.argv, path=where)
        if found is not None:
            report.findings.append(found)
    if program is None:
        report.status = "missing"
        why = "does not exist" if not os.path.lexists(os.path.expanduser(argv0)) and os.sep in argv0 else (
            "is not executable" if os.sep in argv0 else "is not on PATH")
        report.findings.append(make(
            "EN200", where, f"the kernelspec {spec.name!r} runs {argv0}, which {why} "
            "(the kernelspec points to a deleted or moved environment)",
            evidence={"kernel": spec.name, "argv": spec.argv, "resource_dir": spec.resource_dir},
            fix=f"`jupyter kernelspec remove {spec.name}` (or `nbmedic kernels --fix`), or re-register it "
            "from a live environment"))
        return report
    if _is_python(program, spec):
        facts = interpreter_facts(program, env=spec.env)
        if isinstance(facts, InterpreterFacts):
            report.facts = facts
            report.python_version = facts.version
            if _uses_ipykernel(spec.argv) and not facts.ipykernel:
                report.status = "no-ipykernel"
                report.findings.append(make(
                    "EN201", where, f"the kernel {spec.name!r} cannot start: its interpreter {program} "
                    "has no ipykernel (\"No module named ipykernel_launcher\")",
                    evidence={"kernel": spec.name, "interpreter": program, "prefix": facts.prefix,
                              "python_version": facts.version},
                    fix=f"`{program} -m pip install ipykernel`, or re-register the kernel from an environment "
                    "that has it"))
                return report
            if interpreters:
                report.findings.extend(user_site_findings(spec.name, facts, where=where))
                report.findings.extend(path_tool_findings(spec.name, facts.prefix, kernel_python=program,
                                                          where=where))
    if launch:
        _launch(report, startup_timeout)
    return report


def _launch(report: KernelReport, startup_timeout: float) -> None:
    from nbmedic.execute.kernel import Kernel, KernelStartError
    from nbmedic.execute.startup import diagnose_start

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


def duplicate_findings(specs: Iterable[SpecInfo], *, only: set[str] | None = None) -> list[Finding]:
    """EN203: display names used by several specs, and specs that shadow another of the same name."""
    specs = list(specs)
    findings: list[Finding] = []
    by_display: dict[str, list[SpecInfo]] = {}
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
                                    "display_name": h.display_name, "argv": h.argv} for h in hidden]}))
    return findings


def notebook_version_findings(path: str, reports: Iterable[KernelReport]) -> list[Finding]:
    """EN204 for a notebook: its language_info.version (major.minor) against its kernel's Python."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        metadata = nb.get("metadata") or {}
    except (OSError, ValueError, AttributeError):
        return []
    claimed = str((metadata.get("language_info") or {}).get("version") or "")
    kernel_name = str((metadata.get("kernelspec") or {}).get("name") or "")
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
