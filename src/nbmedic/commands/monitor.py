"""``nbmedic monitor install | uninstall | status``: mark kernelspecs as monitored, undo it, show it.

The kernelspecs come from ``nbmedic.kernelspecs``; what is written into each ``kernel.json`` (and how it
is undone byte for byte) lives in ``nbmedic.live.install``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from nbmedic.errors import NbmedicError, UsageError
from nbmedic.kernelspecs import Kernelspec, Kernelspecs, read_kernelspecs
from nbmedic.live.guard import GuardConfig
from nbmedic.live.install import (
    PROVISIONER_NAME,
    Monitoring,
    Result,
    backup_path,
    foreign_provisioner,
    install_spec,
    is_created,
    is_installed,
    provisioner_visible,
    spec_monitoring,
    uninstall_spec,
)
from nbmedic.live.kernels import format_duration, monitored_sessions

JSON_VERSION = 1


def run(args: argparse.Namespace) -> int:
    action = args.monitor_command
    if action == "install":
        return _install(args)
    if action == "uninstall":
        return _uninstall(args)
    if action == "status":
        return _status(args)
    raise UsageError("nbmedic monitor needs an action: install, uninstall or status")


def _kernelspecs() -> Kernelspecs:
    specs = read_kernelspecs()
    if specs.error:
        raise NbmedicError(specs.error)
    return specs


def _named(specs: Kernelspecs, names: Sequence[str]) -> list[Kernelspec]:
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise UsageError(f"no kernelspec named {', '.join(unknown)} (installed: {', '.join(specs.names) or 'none'})")
    out: list[Kernelspec] = []
    for name in names:
        spec = specs.get(name)
        if spec is not None and spec not in out:
            out.append(spec)
    return out


def guard_config(args: argparse.Namespace) -> GuardConfig:
    """The guard options of the command line, checked."""
    return GuardConfig.from_options(args.memory_limit, args.guard, args.interrupt_at, args.kill_at)


def _warn_provisioner() -> None:
    if not provisioner_visible():
        print(f"nbmedic: warning: the {PROVISIONER_NAME} entry point is not visible from {sys.executable}: the "
              "Jupyter server must run in an environment where nbmedic is installed (or use `monitor install "
              "--wrapper`)", file=sys.stderr)


def _install(args: argparse.Namespace) -> int:
    monitoring = Monitoring("wrapper" if args.wrapper else "provisioner", guard_config(args))
    specs = _kernelspecs()
    chosen = _named(specs, args.kernels) if args.kernels else list(specs)
    if not chosen:
        raise NbmedicError("Jupyter sees no kernelspec to monitor (see `nbmedic kernels`)")
    results = [install_spec(spec, monitoring) for spec in chosen]
    if monitoring.mode == "provisioner" and not all(r.failed for r in results):
        _warn_provisioner()
    return _report(results, args.format, "install", nothing="")


def _uninstall(args: argparse.Namespace) -> int:
    specs = _kernelspecs()
    if args.kernels:
        chosen = [s for spec in _named(specs, args.kernels)
                  for s in (spec, *(hidden for hidden in spec.shadows if is_installed(hidden)))]
    else:
        chosen = [s for spec in specs for s in (spec, *spec.shadows) if is_installed(s)]
    results = [uninstall_spec(spec) for spec in chosen]
    return _report(results, args.format, "uninstall", nothing="no kernelspec is monitored; nothing to do")


def _report(results: list[Result], fmt: str, action: str, *, nothing: str) -> int:
    if fmt == "json":
        doc = {"version": JSON_VERSION, "action": action, "kernels": [r.to_dict() for r in results]}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    elif not results and nothing:
        print(nothing)
    for r in results:
        if r.failed:
            print(f"nbmedic: error: {r.kernel}: {r.message}", file=sys.stderr)
        elif fmt != "json":
            print(f"{r.kernel}: {r.message}")
    return 1 if any(r.failed for r in results) else 0


# --- status -------------------------------------------------------------------------------------------

def _spec_entry(spec: Kernelspec) -> dict[str, Any]:
    monitoring = spec_monitoring(spec) if spec.error is None else None
    backup = backup_path(os.path.join(spec.resource_dir, "kernel.json")) if spec.source != "builtin" else None
    return {"name": spec.name, "display_name": spec.display_name, "language": spec.language,
            "resource_dir": spec.resource_dir, "source": spec.source,
            "monitored": monitoring.mode if monitoring else "no",
            "config": monitoring.config.to_dict() if monitoring else None,
            "other_provisioner": foreign_provisioner({"metadata": dict(spec.metadata)}),
            "created_by_nbmedic": is_created({"metadata": dict(spec.metadata)}),
            "backup": backup if backup and os.path.isfile(backup) else None, "error": spec.error}


def _session_entry(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("kernel_id", "notebook", "pid", "supervisor", "kernelspec", "language", "started", "uptime",
            "memory_limit", "guard")
    return {key: record.get(key) for key in keys}


def _spec_line(spec: Kernelspec, entry: dict[str, Any]) -> str:
    where = (f"built in (ipykernel's {spec.resource_dir}; install creates a user kernelspec)"
             if spec.source == "builtin" else spec.resource_dir)
    head = f"{spec.name}: {spec.display_name} ({spec.language or 'no language'}), {where}: "
    if spec.error:
        return head + f"cannot be read ({spec.error})"
    monitoring = spec_monitoring(spec)
    if monitoring is not None:
        created = "; a user kernelspec nbmedic created" if entry["created_by_nbmedic"] else ""
        return head + f"monitored by {monitoring.describe()}{created}"
    if entry["other_provisioner"]:
        return head + f"not monitored (it uses the kernel provisioner {entry['other_provisioner']!r})"
    return head + "not monitored"


def _status(args: argparse.Namespace) -> int:
    specs = _kernelspecs()
    kernels = [(spec, _spec_entry(spec)) for spec in specs]
    running = [_session_entry(r) for r in monitored_sessions()]
    visible = provisioner_visible()
    if args.format == "json":
        doc = {"version": JSON_VERSION, "provisioner_visible": visible,
               "kernels": [entry for _, entry in kernels], "running": running}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        print("kernelspecs:" if kernels else "kernelspecs: none (see `nbmedic kernels`)")
        for spec, entry in kernels:
            print(f"  {_spec_line(spec, entry)}")
        print("running monitored kernels:" if running else "running monitored kernels: none")
        for r in running:
            name = f", kernelspec {r['kernelspec']}" if r["kernelspec"] else ""
            print(f"  {r['kernel_id']}: {r['notebook'] or 'no notebook'}, pid {r['pid']}, up {format_duration(r['uptime'])} "
                  f"({r['supervisor'] or 'unknown supervisor'}{name})")
    if any(entry["monitored"] == "provisioner" for _, entry in kernels) and not visible:
        _warn_provisioner()
    return 0
