"""Mark kernelspecs as monitored (``nbmedic monitor install / uninstall / status``).

Two ways to monitor a kernelspec, both written into its ``kernel.json``:

* **provisioner** (Jupyter servers, nbclient, papermill — every client that starts kernels through
  jupyter_client): ``metadata.kernel_provisioner = {"provisioner_name": "nbmedic-provisioner", "config":
  {"memory_limit": bytes | null, "guard": bool, "interrupt_at": float, "kill_at": float}}``;
* **wrapper** (clients that spawn argv themselves, e.g. VS Code): ``argv`` becomes ``[<nbmedic>,
  "kernel-wrapper", <guard flags>, "--kernel-name", NAME, "--", <original argv>...]`` and no provisioner is
  added (the wrapper monitors; a provisioner on top would do it twice).

Before the first change the file's bytes are saved next to it as ``kernel.json.nbmedic-backup`` (never
overwritten while the kernelspec stays monitored); every later install is computed from that backup, so
switching mode or options leaves no trace of the previous one, and ``uninstall`` puts the backup back byte
for byte.  "Edited since install" means the file is no longer exactly what install would write from the
backup with the options the file carries.

The built-in ``python3`` (no ``kernel.json`` anywhere: jupyter_client synthesises it from ipykernel) gets
a user kernelspec of the same name; its unmonitored ``kernel.json`` carries ``metadata.nbmedic =
{"created_by_monitor_install": true}`` and is its backup, so ``uninstall`` knows to remove the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nbmedic.errors import NbmedicError
from nbmedic.kernelspecs import Kernelspec
from nbmedic.live.guard import GuardConfig
from nbmedic.notebook.io import TEMP_SUFFIX, atomic_write_bytes

__all__ = [
    "BACKUP_SUFFIX",
    "CREATED_KEY",
    "ENTRY_POINT_GROUP",
    "PROVISIONER_NAME",
    "GuardConfig",
    "JsonStyle",
    "Monitoring",
    "Result",
    "apply_monitoring",
    "backup_path",
    "detect_style",
    "foreign_provisioner",
    "install_spec",
    "is_created",
    "is_installed",
    "monitoring_of",
    "nbmedic_command",
    "provisioner_visible",
    "render_json",
    "spec_monitoring",
    "strip_monitoring",
    "uninstall_spec",
    "unwrap_argv",
    "wrapper_argv",
]

PROVISIONER_NAME = "nbmedic-provisioner"
ENTRY_POINT_GROUP = "jupyter_client.kernel_provisioners"
LOCAL_PROVISIONER = "local-provisioner"  # jupyter_client's default: replacing it changes nothing else
BACKUP_SUFFIX = ".nbmedic-backup"
CREATED_KEY = "created_by_monitor_install"
WRAPPER_COMMAND = "kernel-wrapper"

Mode = Literal["provisioner", "wrapper"]
_NBMEDIC_PROGRAM = re.compile(r"(?:jupyter-)?nbmedic(?:\.exe)?", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


# --- the options ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Monitoring:
    """How a kernelspec is monitored: the mode, the settings, and (wrapper) the command and kernel name."""

    mode: Mode
    config: GuardConfig = field(default_factory=GuardConfig)
    command: tuple[str, ...] = ()  # wrapper: the program that runs ``kernel-wrapper``
    kernel_name: str | None = None  # wrapper: the --kernel-name it passes

    def describe(self) -> str:
        how = "the nbmedic provisioner" if self.mode == "provisioner" else "the nbmedic kernel wrapper"
        return f"{how} ({self.config.describe()})"


def nbmedic_command() -> list[str]:
    """How a kernel launcher runs nbmedic: the ``nbmedic`` script beside this interpreter (a venv's
    ``bin/nbmedic``), else the one on PATH, else ``python -m nbmedic`` with this interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "nbmedic.exe" if os.name == "nt" else "nbmedic")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [os.path.abspath(script)]
    found = shutil.which("nbmedic")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "nbmedic"]


# --- kernel.json as a document -------------------------------------------------------------------------

def wrapper_argv(argv: Sequence[str], kernel_name: str, config: GuardConfig,
                 command: Sequence[str]) -> list[str]:
    return [*command, WRAPPER_COMMAND, *config.flags(), "--kernel-name", kernel_name, "--", *argv]


def _is_nbmedic_command(prefix: Sequence[str]) -> bool:
    if len(prefix) == 1:
        return bool(_NBMEDIC_PROGRAM.fullmatch(os.path.basename(prefix[0])))
    return len(prefix) == 3 and list(prefix[1:]) == ["-m", "nbmedic"]


def _parse_flags(flags: Sequence[str]) -> tuple[GuardConfig, str | None]:
    values: dict[str, Any] = {}
    name: str | None = None
    rest = list(flags)
    while rest:
        flag = rest.pop(0)
        if flag in ("--guard", "--no-guard"):
            values["guard"] = flag == "--guard"
            continue
        value = rest.pop(0) if rest else ""
        with contextlib.suppress(ValueError):
            if flag == "--memory-limit":
                values["memory_limit"] = int(value)
            elif flag in ("--interrupt-at", "--kill-at"):
                values[flag[2:].replace("-", "_")] = float(value)
            elif flag == "--kernel-name":
                name = value
    return GuardConfig.from_dict(values), name


def unwrap_argv(argv: Sequence[str]) -> tuple[Monitoring, list[str]] | None:
    """(the wrapper's monitoring, the original argv) when ``argv`` is what install --wrapper writes."""
    argv = list(argv)
    index = next((i for i, arg in enumerate(argv[:4]) if arg == WRAPPER_COMMAND), None)
    if index is None or not _is_nbmedic_command(argv[:index]) or "--" not in argv[index + 1:]:
        return None
    sep = argv.index("--", index + 1)
    config, name = _parse_flags(argv[index + 1:sep])
    return Monitoring("wrapper", config, tuple(argv[:index]), name), argv[sep + 1:]


def _provisioner_block(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    meta = doc.get("metadata")
    block = meta.get("kernel_provisioner") if isinstance(meta, Mapping) else None
    return block if isinstance(block, Mapping) else None


def foreign_provisioner(doc: Mapping[str, Any]) -> str | None:
    """The name of a kernel provisioner that is neither nbmedic's nor jupyter_client's default."""
    block = _provisioner_block(doc)
    name = block.get("provisioner_name") if block is not None else None
    if not isinstance(name, str) or not name or name in (PROVISIONER_NAME, LOCAL_PROVISIONER):
        return None
    return name


def monitoring_of(doc: Mapping[str, Any]) -> Monitoring | None:
    """How this kernel.json document is monitored by nbmedic; None when it is not."""
    block = _provisioner_block(doc)
    if block is not None and block.get("provisioner_name") == PROVISIONER_NAME:
        return Monitoring("provisioner", GuardConfig.from_dict(block.get("config")))
    argv = doc.get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        unwrapped = unwrap_argv(argv)
        if unwrapped is not None:
            return unwrapped[0]
    return None


def is_created(doc: Mapping[str, Any]) -> bool:
    """The kernelspec was created by ``monitor install`` (the built-in python3 made a user kernelspec)."""
    meta = doc.get("metadata")
    ours = meta.get("nbmedic") if isinstance(meta, Mapping) else None
    return isinstance(ours, Mapping) and ours.get(CREATED_KEY) is True


def apply_monitoring(doc: Mapping[str, Any], kernel_name: str, monitoring: Monitoring) -> dict[str, Any]:
    """The unmonitored document ``doc`` with ``monitoring`` added (keys keep their order; new ones last)."""
    out = dict(doc)
    if monitoring.mode == "wrapper":
        out["argv"] = wrapper_argv(list(out.get("argv") or []), monitoring.kernel_name or kernel_name,
                                   monitoring.config, monitoring.command or nbmedic_command())
        return out
    meta = out.get("metadata")
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    meta["kernel_provisioner"] = {"provisioner_name": PROVISIONER_NAME, "config": monitoring.config.to_dict()}
    out["metadata"] = meta
    return out


def strip_monitoring(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` without nbmedic's provisioner and wrapper (an empty metadata left by it removed)."""
    out = dict(doc)
    block = _provisioner_block(out)
    if block is not None and block.get("provisioner_name") == PROVISIONER_NAME:
        meta = {k: v for k, v in out["metadata"].items() if k != "kernel_provisioner"}
        if meta:
            out["metadata"] = meta
        else:
            del out["metadata"]
    argv = out.get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        unwrapped = unwrap_argv(argv)
        if unwrapped is not None:
            out["argv"] = unwrapped[1]
    return out


@dataclass(frozen=True)
class JsonStyle:
    """How a kernel.json file is written, so nbmedic's version looks like its original."""

    indent: str | None = " "  # None: all on one line; jupyter writes indent=1
    newline: str = "\n"
    final_newline: bool = True
    ensure_ascii: bool = True
    bom: bool = False


def detect_style(data: bytes) -> JsonStyle:
    bom = data.startswith(_BOM)
    payload = data[len(_BOM):] if bom else data
    text = payload.decode("utf-8", "replace")
    body = text.strip()
    indent: str | None = None
    if "\n" in body:
        match = re.search(r"[{\[][ \t]*\r?\n([ \t]*)\S", body)
        indent = match.group(1) if match else " "
    return JsonStyle(indent=indent, newline="\r\n" if "\r\n" in text else "\n",
                     final_newline=text.rstrip(" \t").endswith("\n"),
                     ensure_ascii=payload.isascii(),
                     bom=bom)


def render_json(doc: Mapping[str, Any], style: JsonStyle) -> bytes:
    text = json.dumps(doc, indent=style.indent, ensure_ascii=style.ensure_ascii)
    if style.newline != "\n":
        text = text.replace("\n", style.newline)  # json.dumps escapes newlines inside strings
    if style.final_newline:
        text += style.newline
    return (_BOM if style.bom else b"") + text.encode("utf-8")


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _expected(base: bytes, kernel_name: str, monitoring: Monitoring) -> bytes | None:
    """What install writes from the unmonitored ``base`` with ``monitoring``."""
    doc = _parse(base)
    return None if doc is None else render_json(apply_monitoring(doc, kernel_name, monitoring), detect_style(base))


# --- results ---------------------------------------------------------------------------------------

Action = Literal["installed", "created", "updated", "unchanged", "restored", "removed", "skipped", "error"]


@dataclass(frozen=True)
class Result:
    """What install or uninstall did to one kernelspec; ``message`` is the report's line after the name."""

    kernel: str
    action: Action
    kernel_json: str
    message: str
    mode: Mode | None = None
    config: GuardConfig | None = None
    backup: str | None = None
    edited: bool = False  # the file was changed by someone else since nbmedic wrote it

    @property
    def failed(self) -> bool:
        return self.action == "error"

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "action": self.action, "kernel_json": self.kernel_json,
                "mode": self.mode, "config": None if self.config is None else self.config.to_dict(),
                "backup": self.backup, "edited": self.edited, "message": self.message}


class _Refused(NbmedicError):
    """One kernelspec cannot be changed (the others still are)."""


def backup_path(kernel_json: str) -> str:
    return kernel_json + BACKUP_SUFFIX


def _read(path: str, what: str = "") -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _Refused(f"cannot read {what or path}: {exc.strerror or exc}") from None


def _write(path: str, data: bytes, what: str) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise _Refused(f"cannot write {what} {path}: {exc.strerror or exc}; nothing changed") from None


def _backup_bytes(kernel_json: str) -> bytes | None:
    """The backup's bytes when it is a readable JSON object (otherwise it is no backup)."""
    path = backup_path(kernel_json)
    if not os.path.isfile(path):
        return None
    data = _read(path, f"the backup {path}")
    return data if _parse(data) is not None else None


# --- install ------------------------------------------------------------------------------------------

def install_spec(spec: Kernelspec, wanted: Monitoring) -> Result:
    """Monitor one kernelspec; never raises for a problem of this kernelspec (an ``error`` result)."""
    if spec.source == "builtin":
        target = os.path.join(_user_kernels_dir(), spec.name)
        try:
            return _create_native(spec, target, wanted)
        except _Refused as exc:
            return Result(spec.name, "error", os.path.join(target, "kernel.json"), str(exc))
    path = os.path.join(spec.resource_dir, "kernel.json")
    try:
        return _install_file(spec.name, path, wanted)
    except _Refused as exc:
        return Result(spec.name, "error", path, str(exc))


def _install_file(name: str, path: str, wanted: Monitoring) -> Result:
    current = _read(path)
    doc = _parse(current)
    if doc is None:
        raise _Refused(f"{path} is not a JSON object; not changed")
    other = foreign_provisioner(doc)
    if other is not None:
        raise _Refused(f"{path} uses the kernel provisioner {other!r}, not nbmedic's; not changed "
                       "(nbmedic does not replace another provisioner)")
    if not isinstance(doc.get("argv"), list) or not doc["argv"]:
        raise _Refused(f"{path} has no argv; not changed")
    backup = backup_path(path)
    present = monitoring_of(doc)
    notes: list[str] = []
    edited = False
    if present is None:  # the file is the original: it becomes the backup (a stale one is replaced)
        base_doc, style = doc, detect_style(current)
        if os.path.isfile(backup):
            notes.append("a backup left from an earlier install was replaced by the current file")
    else:
        saved = _backup_bytes(path)
        if saved is not None and _expected(saved, name, present) == current:  # computed from the original
            base_doc, style = _parse(saved) or {}, detect_style(saved)
        else:  # edited since install, or no backup: keep the file as it is, minus nbmedic's part
            base_doc, style, edited = strip_monitoring(doc), detect_style(current), saved is not None
            notes.append("kernel.json was changed since nbmedic installed; those changes are kept" if edited
                         else "no backup was found; uninstall will only remove nbmedic's part")
    target = Monitoring(wanted.mode, wanted.config, wanted.command or tuple(nbmedic_command()), None)
    new = render_json(apply_monitoring(base_doc, name, target), style)
    if present is not None and new == current:
        return _result(name, "unchanged", path, target, f"already monitored by {target.describe()}; nothing changed",
                       notes, edited=edited)
    if present is None:
        _write(backup, current, "the backup")
    try:
        _write(path, new, "")
    except _Refused:
        if present is None:
            with contextlib.suppress(OSError):
                os.unlink(backup)
        raise
    if present is None:
        return _result(name, "installed", path, target, f"monitored by {target.describe()}", notes)
    return _result(name, "updated", path, target, f"updated: now monitored by {target.describe()}", notes,
                   edited=edited)


def _result(name: str, action: Action, path: str, monitoring: Monitoring, message: str,
            notes: Sequence[str] = (), *, edited: bool = False) -> Result:
    backup = backup_path(path)
    text = "; ".join([message, *notes])
    return Result(name, action, path, text, monitoring.mode, monitoring.config,
                  backup if os.path.isfile(backup) else None, edited)


def _user_kernels_dir() -> str:
    from jupyter_core.paths import jupyter_data_dir

    return os.path.join(jupyter_data_dir(), "kernels")


def _native_doc(spec: Kernelspec) -> dict[str, Any]:
    """The built-in kernel's kernel.json, as ipykernel writes it (jupyter_client synthesises the same)."""
    try:
        from ipykernel.kernelspec import get_kernel_dict

        doc: dict[str, Any] = dict(get_kernel_dict())
    except Exception:  # noqa: BLE001 - an old or broken ipykernel: the model knows the essentials
        doc = {"argv": list(spec.argv), "display_name": spec.display_name, "language": spec.language,
               "metadata": dict(spec.metadata)}
    meta = doc.get("metadata")
    doc["metadata"] = {**(meta if isinstance(meta, dict) else {}), "nbmedic": {CREATED_KEY: True}}
    return doc


def _create_native(spec: Kernelspec, target: str, wanted: Monitoring) -> Result:
    """A user kernelspec for the built-in python3 (ipykernel's resources, kernel.json marked as ours)."""
    path = os.path.join(target, "kernel.json")
    if os.path.lexists(target):
        raise _Refused(f"{target} exists but has no kernel.json; not changed")
    base_doc = _native_doc(spec)
    base = render_json(base_doc, JsonStyle())
    monitoring = Monitoring(wanted.mode, wanted.config, wanted.command or tuple(nbmedic_command()), None)
    new = render_json(apply_monitoring(base_doc, spec.name, monitoring), JsonStyle())
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        _sweep_stale_folders(parent, spec.name)
        tmp = tempfile.mkdtemp(prefix=f".{spec.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=parent)
    except OSError as exc:
        raise _Refused(f"cannot create a kernelspec in {parent}: {exc.strerror or exc}; nothing changed") from None
    try:
        for entry in _resource_files(spec.resource_dir):
            shutil.copy2(os.path.join(spec.resource_dir, entry), tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        atomic_write_bytes(os.path.join(tmp, "kernel.json" + BACKUP_SUFFIX), base)
        atomic_write_bytes(os.path.join(tmp, "kernel.json"), new)
        os.rename(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _Refused(f"cannot create the kernelspec {target}: {exc.strerror or exc}; nothing changed") from None
    return _result(spec.name, "created", path, monitoring,
                   f"created the user kernelspec {target} (the built-in {spec.name} has no kernel.json) "
                   f"and monitored it by {monitoring.describe()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _sweep_stale_folders(parent: str, name: str) -> None:
    """Remove the temporary kernelspec folders of ``name`` a killed install left in ``parent``
    (``.NAME.PID.XXXXXXXX.nbmedic-tmp``, the pid no longer running), as ``sweep_stale_temps`` does files."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[a-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")
    try:
        entries = [e.name for e in os.scandir(parent) if e.name.endswith(TEMP_SUFFIX) and e.is_dir()]
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is not None and not _alive(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _resource_files(folder: str) -> list[str]:
    """The files (logos) of ipykernel's resources folder, its own kernel.json left out."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [n for n in names if n != "kernel.json" and os.path.isfile(os.path.join(folder, n))]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- uninstall ----------------------------------------------------------------------------------------

def uninstall_spec(spec: Kernelspec) -> Result:
    """Put one kernelspec back as it was before install; never raises for a problem of this kernelspec."""
    path = os.path.join(spec.resource_dir, "kernel.json")
    if spec.source == "builtin":
        return Result(spec.name, "skipped", path, "not monitored (the built-in kernel); nothing to do")
    try:
        return _uninstall_file(spec.name, path)
    except _Refused as exc:
        return Result(spec.name, "error", path, str(exc))


def _uninstall_file(name: str, path: str) -> Result:
    current = _read(path)
    doc = _parse(current)
    present = monitoring_of(doc) if doc is not None else None
    if present is None or doc is None:
        stale = backup_path(path)
        note = (f" (a backup from an earlier install is left at {stale}; the file is not what nbmedic wrote, "
                "so it is not replaced)" if os.path.isfile(stale) else "")
        return Result(name, "skipped", path, f"not monitored; nothing to do{note}")
    saved = _backup_bytes(path)
    if saved is None:
        _write(path, render_json(strip_monitoring(doc), detect_style(current)), "")
        return Result(name, "restored", path, f"no backup was found: removed nbmedic's part from {path} "
                      "(the rest kept as it was)", present.mode, present.config, None, True)
    edited = _expected(saved, name, present) != current
    saved_doc = _parse(saved) or {}
    mode, config = present.mode, present.config
    if is_created(saved_doc):
        folder = os.path.dirname(path)
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise _Refused(f"cannot remove {folder}: {exc.strerror or exc}") from None
        note = "; it had been changed since nbmedic installed" if edited else ""
        return Result(name, "removed", path, f"removed the user kernelspec {folder} that monitor install "
                      f"created{note}", mode, config, None, edited)
    _write(path, saved, "")
    backup = backup_path(path)
    try:
        os.unlink(backup)
    except OSError as exc:
        return Result(name, "restored", path, f"restored {path} from its backup, but cannot remove the backup "
                      f"{backup}: {exc.strerror or exc}", mode, config, backup, edited)
    note = ("; it had been changed since nbmedic installed: those changes are gone (the file is as it was "
            "before install)" if edited else "")
    return Result(name, "restored", path, f"restored {path} from its backup, byte for byte{note}",
                  mode, config, None, edited)


def is_installed(spec: Kernelspec) -> bool:
    """Monitored by nbmedic: what ``uninstall`` with no names undoes."""
    return spec.source != "builtin" and spec.error is None and spec_monitoring(spec) is not None


# --- status -------------------------------------------------------------------------------------------

def spec_monitoring(spec: Kernelspec) -> Monitoring | None:
    """How the kernelspec (as the model read it) is monitored."""
    return monitoring_of({"argv": list(spec.argv), "metadata": dict(spec.metadata)})


def provisioner_visible(path: Sequence[str] | None = None) -> bool:
    """Whether the ``nbmedic-provisioner`` entry point is installed where this Python (or ``path``) looks:
    jupyter_client finds provisioners this way, in the server's environment."""
    from importlib.metadata import distributions

    dists = distributions() if path is None else distributions(path=list(path))
    return any(ep.group == ENTRY_POINT_GROUP and ep.name == PROVISIONER_NAME
               for dist in dists for ep in dist.entry_points)

