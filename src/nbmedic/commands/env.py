"""``nbmedic env capture|check|rebuild|export``: lock the environment a notebook's kernel runs in.

The work happens in ``nbmedic.envs.lock`` and ``nbmedic.envs.rebuild``; the kernel's interpreter comes
from ``nbmedic.kernelspecs`` (the rule NB041 and ``nbmedic kernels`` use too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nbmedic.commands.common import emit, resolver_from_args
from nbmedic.envs.lock import (
    KernelPython,
    capture,
    compare,
    current_python,
    describe,
    export_environment_yml,
    export_requirements,
    kernel_interpreter,
    load_lock,
    lock_in_notebook,
    notebook_imports,
    read_lock_file,
    read_nb,
    resolve_python,
    store_in_notebook,
    validate,
    write_lock_file,
)
from nbmedic.envs.rebuild import check_kernel_name, default_kernel_name, rebuild
from nbmedic.errors import NbmedicError
from nbmedic.findings import Finding, exit_code, make
from nbmedic.notebook.io import atomic_write_bytes


def run(args: argparse.Namespace) -> int:
    action = args.env_command
    if action == "capture":
        return _capture(args)
    if action == "check":
        return _check(args)
    if action == "export":
        return _export(args)
    return _rebuild(args)


def _interpreter(args: argparse.Namespace, path: Path, nb: dict[str, Any]) -> KernelPython:
    """``--python`` or the kernel's interpreter (with its options and environment)."""
    return KernelPython(resolve_python(args.python)) if args.python else kernel_interpreter(path, nb)


def _capture(args: argparse.Namespace) -> int:
    path = Path(args.notebook)
    nb, data = read_nb(path)
    kernel = _interpreter(args, path, nb)
    imports = notebook_imports(path, nb, data) if args.imports_only else None
    lock, unresolved = capture(kernel.python, imports, env=kernel.environ, flags=kernel.flags,
                               cwd=str(path.parent.absolute()))
    if args.lock_file:
        target = Path(args.lock_file)
        changed = write_lock_file(target, lock)
        where = str(target)
    else:
        changed = store_in_notebook(path, nb, data, lock)
        where = f"{path} metadata.nbmedic.environment"
    print(f"captured {describe(lock)} from {lock['interpreter']}")
    print(f"{'wrote' if changed else 'unchanged:'} {where}")
    if unresolved:
        print(f"note: no installed distribution provides these imports: {', '.join(unresolved)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    path = Path(args.notebook)
    nb, _ = read_nb(path)
    config = resolver_from_args(args).for_path(path)
    if args.lock_file:
        lock_source = str(args.lock_file)
        lock: dict[str, Any] | None = read_lock_file(Path(args.lock_file))
    else:
        lock_source = f"{path} metadata.nbmedic.environment"
        raw = lock_in_notebook(nb)
        lock = None if raw is None else validate(raw, lock_source)
    findings: list[Finding] = []
    extra: dict[str, Any] = {"lock": lock_source}
    if lock is None:
        if not config.require_lock:
            print(f"nbmedic: {path}: no environment lock to check (`nbmedic env capture {path}` records one)",
                  file=sys.stderr)
            if args.format == "json":
                emit([], [str(path)], "json", extra={**extra, "locked": False})
            return 0
        findings.append(make("EN223", str(path), "the notebook has no environment lock although "
                             "[tool.nbmedic] require-lock = true", evidence={"config": config.source}))
    else:
        kernel = _interpreter(args, path, nb)
        current, _ = capture(kernel.python, env=kernel.environ, flags=kernel.flags, cwd=str(path.parent.absolute()))
        findings = compare(lock, current, str(path), lock_source=lock_source)
        extra.update(locked=True, interpreter=current["interpreter"])
        if args.format == "text":
            print(f"lock:   {describe(lock)} ({lock_source})")
            print(f"kernel: {describe(current)} ({current['interpreter']})")
    findings = [f for f in findings if config.wants(f.code)]
    emit(findings, [str(path)], args.format, extra=extra, verb="checked")
    return exit_code(findings, strict=bool(config.strict))


def _export(args: argparse.Namespace) -> int:
    source = Path(args.source)
    lock = load_lock(source)
    if args.format == "requirements":
        text = export_requirements(lock)
    else:
        text = export_environment_yml(lock, args.name or source.stem)
    if args.output:

        try:
            atomic_write_bytes(args.output, text.encode("utf-8"))
        except OSError as exc:
            raise NbmedicError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
        print(f"wrote {args.output} ({len(lock.get('packages') or {})} package(s))", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    source = Path(args.source)
    lock = load_lock(source)
    name = check_kernel_name(args.kernel_name) if args.kernel_name else default_kernel_name(source.stem)
    python = resolve_python(args.python) if args.python else current_python()
    cwd = str(source.parent.absolute()) if source.parent.is_dir() else str(Path.cwd())
    print(f"lock: {describe(lock)} ({source})")

    def say(line: str) -> None:
        print(line, flush=True)

    result = rebuild(lock, Path(args.venv), name, python=python, cwd=cwd, say=say,
                     startup_timeout=args.startup_timeout)
    print(f"done: kernel {result.kernel_name!r} runs {result.python}; "
          f"select it in Jupyter or `nbmedic run --kernel {result.kernel_name} NB`")
    return 0
