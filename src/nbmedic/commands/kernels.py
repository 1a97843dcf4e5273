"""``nbmedic kernels``: list every kernelspec, launch each one, explain what is broken; ``--fix`` cleans up.

The kernelspecs come from ``nbmedic.kernelspecs``; the probes live in ``nbmedic.envs.kernelspecs`` and
``nbmedic.envs.interpreters``.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import TYPE_CHECKING

from nbmedic.commands.common import emit
from nbmedic.envs.kernelspecs import check_spec, duplicate_findings, notebook_version_findings
from nbmedic.errors import UsageError
from nbmedic.findings import exit_code
from nbmedic.kernelspecs import read_kernelspecs
from nbmedic.notebook.cells import kernel_name_of
from nbmedic.notebook.io import NotebookReadError, read_notebook
from nbmedic.render.text import render_text, summary_line

if TYPE_CHECKING:
    from nbmedic.envs.kernelspecs import KernelReport
    from nbmedic.findings import Finding
    from nbmedic.kernelspecs import Kernelspecs


def _register(name: str) -> str:
    """Register the running interpreter as kernel ``name`` in the user folder; the kernelspec folder."""
    import subprocess


    display = f"Python {sys.version_info[0]}.{sys.version_info[1]} ({name})"
    proc = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", name,
                           "--display-name", display], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise UsageError(f"--register {name}: `{sys.executable} -m ipykernel install` failed"
                         + (f": {last[-1]}" if last else "") + " (is ipykernel installed here?)")
    out = (proc.stdout + proc.stderr).strip().splitlines()
    return out[-1] if out else name


def _ask(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _remove(report: KernelReport) -> str | None:
    """Remove the kernelspec folder; an error message, or None when done."""
    import os
    import shutil

    folder = report.spec.resource_dir
    if report.spec.source == "builtin" or not folder or not os.path.isfile(os.path.join(folder, "kernel.json")):
        return f"{report.spec.name}: not a kernelspec folder nbmedic can remove"
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        return f"{report.spec.name}: cannot remove {folder}: {exc}"
    return None


def _table(reports: list[KernelReport]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="kernelspecs", title_justify="left", show_lines=False)
    for col in ("name", "display name", "source", "interpreter", "python", "status"):
        table.add_column(col, overflow="fold")
    style = {"ok": "green", "unchecked": "dim"}
    for r in reports:
        table.add_row(r.spec.name, r.spec.display_name, r.spec.source, r.interpreter or " ".join(r.spec.argv[:1]),
                      r.python_version or "", f"[{style.get(r.status, 'red')}]{r.status}[/]")
    out = sys.stdout
    Console(file=out, highlight=False, soft_wrap=True, emoji=False,
            force_terminal=None if out.isatty() else False).print(table)


def _check_args(args: argparse.Namespace) -> None:
    if args.jobs < 1:
        raise UsageError("-j/--jobs must be at least 1")
    if args.startup_timeout <= 0:
        raise UsageError("--startup-timeout must be positive")
    if args.yes and not args.fix:
        raise UsageError("--yes only makes sense with --fix")


def _wanted(args: argparse.Namespace, specs: Kernelspecs) -> set[str] | None:
    """The kernels to check: the NAMEs, the kernels the --notebook files use, --register's; None: all."""
    if not args.names:
        return None
    unknown = sorted(n for n in args.names if n not in specs)
    if unknown:
        raise UsageError(f"no kernelspec named {', '.join(unknown)} (installed: "
                         f"{', '.join(specs.names) or 'none'})")
    wanted = {n.lower() for n in args.names}
    for nb in args.notebook:
        try:
            wanted.add(kernel_name_of(read_notebook(nb)[0]).lower())
        except (OSError, NotebookReadError):
            pass
    if args.register:
        wanted.add(args.register.lower())
    return wanted


def _fix(args: argparse.Namespace, reports: list[KernelReport], notes: list[str]) -> list[str]:
    """--fix: remove the broken kernelspecs (asking unless --yes); the names removed."""
    removed: list[str] = []
    broken = [r for r in reports if r.broken]
    if broken and not args.yes and not sys.stdin.isatty():
        notes.append("--fix: stdin is not a terminal and --yes was not given: nothing removed")
        return removed
    for r in broken:
        if not args.yes and not _ask(f"remove the broken kernelspec {r.spec.name!r} ({r.spec.resource_dir})? [y/N] "):
            continue
        error = _remove(r)
        if error:
            notes.append(error)
        else:
            removed.append(r.spec.name)
            r.status = "removed"
            notes.append(f"removed {r.spec.name} ({r.spec.resource_dir})")
    return removed


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor


    _check_args(args)
    notes: list[str] = []
    if args.register:
        notes.append(f"registered: {_register(args.register)}")
    specs = read_kernelspecs()  # once, after --register
    wanted = _wanted(args, specs)
    chosen = [s for s in specs if wanted is None or s.name in wanted]
    with ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="nbmedic-kernels") as pool:
        reports = list(pool.map(
            lambda s: check_spec(s, startup_timeout=args.startup_timeout, launch=not args.no_launch), chosen))
    findings: list[Finding] = [f for r in reports for f in r.findings]
    findings.extend(duplicate_findings(specs, only=wanted))
    for nb in args.notebook:
        findings.extend(notebook_version_findings(nb, reports))
    removed = _fix(args, reports, notes) if args.fix else []
    gone = {r.spec.resource_dir for r in reports if r.status == "removed"}
    remaining = [f for f in findings if not (f.path in gone and f.code in ("EN200", "EN201", "EN202"))]
    if args.format == "json":
        emit(findings, [r.spec.resource_dir for r in reports], "json",
             extra={"kernels": [r.to_dict() for r in reports], "removed": removed, "notes": notes})
    else:
        _table(reports)
        for note in notes:
            print(note)
        _text_findings(findings, [r.spec.resource_dir for r in reports])
    return exit_code(remaining)


def _text_findings(findings: list[Finding], checked: list[str]) -> None:
    """The findings as ``render_text`` prints them, with a summary line about kernelspecs, not notebooks."""
    buf = io.StringIO()
    render_text(findings, files=[], stream=buf)
    lines = buf.getvalue().rstrip("\n").splitlines()[:-1]  # its last line counts notebooks
    lines.append(summary_line(findings, checked, verb=None, noun="kernelspec", notes=None, width=200)[0])
    sys.stdout.write("\n".join(lines) + "\n")
