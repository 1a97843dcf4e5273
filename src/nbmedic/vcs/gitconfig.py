"""Install, inspect and remove nbmedic's git drivers: the filter process, the textconv diff, the merge driver.

What ``install`` writes (and ``uninstall`` removes, and nothing else):

* git config, in the repository (``git config --local``) or the user's config (``--global``)::

      filter.nbmedic.process  = nbmedic git filter-process
      filter.nbmedic.required = true
      diff.nbmedic.textconv   = nbmedic diff --textconv            (unless --no-diff)
      merge.nbmedic.name      = nbmedic cell-aware notebook merge  (unless --no-merge)
      merge.nbmedic.driver    = nbmedic merge --driver %O %A %B %L %P

* one attributes line, ``*.ipynb filter=nbmedic diff=nbmedic merge=nbmedic`` (the enabled drivers only),
  appended to the repository's ``.gitattributes`` (or, with ``--global``, to git's global attributes
  file: ``core.attributesFile``, else ``$XDG_CONFIG_HOME/git/attributes``).

The commands name ``nbmedic`` bare, found on ``PATH`` when git runs them, never an interpreter's absolute
path: a clone on another machine works wherever nbmedic is installed there.  Installing is declarative:
running it again with other switches rewrites nbmedic's own line and keys to match, and leaves every
other line and key alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nbmedic.errors import NbmedicError, UsageError
from nbmedic.notebook.io import atomic_write_bytes

__all__ = [
    "ATTRIBUTE_PATTERN",
    "Drivers",
    "InstallReport",
    "Repo",
    "Status",
    "attribute_line",
    "config_entries",
    "find_repo",
    "global_attributes_file",
    "install",
    "status",
    "uninstall",
    "update_attributes",
]

Scope = Literal["local", "global"]

FILTER_PROCESS = "nbmedic git filter-process"
TEXTCONV = "nbmedic diff --textconv"
MERGE_NAME = "nbmedic cell-aware notebook merge"
MERGE_DRIVER = "nbmedic merge --driver %O %A %B %L %P"
ATTRIBUTE_PATTERN = "*.ipynb"

_OURS: dict[str, tuple[tuple[str, str], ...]] = {
    "filter": (("filter.nbmedic.process", FILTER_PROCESS), ("filter.nbmedic.required", "true")),
    "diff": (("diff.nbmedic.textconv", TEXTCONV),),
    "merge": (("merge.nbmedic.name", MERGE_NAME), ("merge.nbmedic.driver", MERGE_DRIVER)),
}
_SECTIONS = {"filter": "filter.nbmedic", "diff": "diff.nbmedic", "merge": "merge.nbmedic"}
_ATTRIBUTES = {"filter": "filter=nbmedic", "diff": "diff=nbmedic", "merge": "merge=nbmedic"}
KINDS = ("filter", "diff", "merge")


@dataclass(frozen=True)
class Drivers:
    """Which drivers to install."""

    filter: bool = True
    diff: bool = True
    merge: bool = True

    def enabled(self) -> tuple[str, ...]:
        return tuple(kind for kind in KINDS if getattr(self, kind))


def config_entries(drivers: Drivers) -> list[tuple[str, str]]:
    return [entry for kind in drivers.enabled() for entry in _OURS[kind]]


def attribute_line(drivers: Drivers) -> str:
    return " ".join([ATTRIBUTE_PATTERN, *(_ATTRIBUTES[kind] for kind in drivers.enabled())])


# --- git -------------------------------------------------------------------------------------------------

def _git(args: Sequence[str], cwd: Path | None = None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8",
                              errors="surrogateescape", check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed or not on PATH") from None
    if check and done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise NbmedicError(f"`git {' '.join(args)}` failed: {detail}")
    return done


@dataclass(frozen=True)
class Repo:
    toplevel: Path  # the working tree's root
    git_dir: Path

    @property
    def attributes(self) -> Path:
        return self.toplevel / ".gitattributes"


def find_repo(cwd: Path | None = None) -> Repo | None:
    """The git working tree that contains ``cwd``; ``None`` outside one (or in a bare repository)."""
    done = _git(["rev-parse", "--is-inside-work-tree", "--show-toplevel", "--absolute-git-dir"],
                cwd, check=False)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 3 or lines[0] != "true":
        return None
    return Repo(Path(lines[1]), Path(lines[2]))


def require_repo(cwd: Path | None = None) -> Repo:
    repo = find_repo(cwd)
    if repo is None:
        raise UsageError("not inside a git working tree (run it in a clone, or use --global)")
    return repo


def _scope_args(scope: Scope) -> list[str]:
    return ["config", f"--{scope}"]


def _get_all(scope: Scope, key: str, cwd: Path | None) -> list[str]:
    done = _git([*_scope_args(scope), "--get-all", key], cwd, check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def _section_empty(scope: Scope, section: str, cwd: Path | None) -> bool:
    pattern = "^" + section.replace(".", r"\.") + r"\."
    return _git([*_scope_args(scope), "--get-regexp", pattern], cwd, check=False).returncode == 1


def _config_file(scope: Scope, repo: Repo | None) -> Path:
    if scope == "local":
        assert repo is not None
        return repo.git_dir / "config"
    env = os.environ.get("GIT_CONFIG_GLOBAL")
    return Path(env) if env else Path.home() / ".gitconfig"


def global_attributes_file(cwd: Path | None = None) -> Path:
    """Where git reads user-wide attributes: ``core.attributesFile``, else the XDG default."""
    configured = _get_all("global", "core.attributesFile", cwd)
    if configured:
        return Path(os.path.expanduser(configured[-1]))
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "git" / "attributes"


# --- attributes files ------------------------------------------------------------------------------------

def _is_ours(line: str) -> bool:
    tokens = line.split()
    return len(tokens) >= 2 and tokens[0] == ATTRIBUTE_PATTERN and all(
        t in _ATTRIBUTES.values() for t in tokens[1:])


def update_attributes(path: Path, line: str | None) -> bool:
    """Make ``path`` hold nbmedic's line ``line`` once (``None``: not at all); other lines stay as they are.

    Returns whether the file changed.  A file that held nothing but nbmedic's line is removed with it.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = None
    text = raw.decode("utf-8", "surrogateescape") if raw is not None else ""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    ours = [i for i, item in enumerate(lines) if _is_ours(item)]
    if line is not None and len(ours) == 1 and lines[ours[0]].split() == line.split():
        return False
    if line is None and not ours:
        return False
    kept: list[str] = []
    placed = False
    for i, item in enumerate(lines):
        if i not in ours:
            kept.append(item)
        elif line is not None and not placed:
            kept.append(line + (item[len(item.rstrip("\r\n")):] or newline))
            placed = True
    if line is not None and not placed:
        if kept and not kept[-1].endswith("\n"):
            kept[-1] += newline
        kept.append(line + newline)
    new = "".join(kept)
    if line is None and not new.strip() and raw is not None:
        path.unlink()
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, new.encode("utf-8", "surrogateescape"))
    return True


def _attribute_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of every line for ``*.ipynb`` that names an nbmedic driver."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for n, item in enumerate(text.splitlines(), 1):
        tokens = item.split()
        if tokens and tokens[0] == ATTRIBUTE_PATTERN and any(t in _ATTRIBUTES.values() for t in tokens[1:]):
            found.append((n, item.strip()))
    return found


# --- install / uninstall ---------------------------------------------------------------------------------

@dataclass
class InstallReport:
    config_file: Path
    attributes_file: Path
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _apply_config(scope: Scope, drivers: Drivers, cwd: Path | None, report: InstallReport, *,
                  remove_all: bool = False) -> None:
    wanted = dict(config_entries(drivers)) if not remove_all else {}
    for kind in KINDS:
        for key, value in _OURS[kind]:
            current = _get_all(scope, key, cwd)
            if key in wanted:
                if current != [wanted[key]]:
                    _git([*_scope_args(scope), "--replace-all", key, wanted[key]], cwd)
                    report.changes.append(f"set {key} = {wanted[key]}")
            elif current:
                if current == [value]:
                    _git([*_scope_args(scope), "--unset-all", key], cwd)
                    report.changes.append(f"removed {key}")
                else:
                    report.warnings.append(f"left {key} = {current[-1]!r}: nbmedic did not write that value")
        section = _SECTIONS[kind]
        if kind not in (drivers.enabled() if not remove_all else ()) and _section_empty(scope, section, cwd):
            _git([*_scope_args(scope), "--remove-section", section], cwd, check=False)


def install(drivers: Drivers, *, scope: Scope = "local", cwd: Path | None = None) -> InstallReport:
    repo = require_repo(cwd) if scope == "local" else find_repo(cwd)
    if not drivers.enabled():
        raise UsageError("nothing to install")
    attributes = repo.attributes if scope == "local" and repo else global_attributes_file(cwd)
    report = InstallReport(_config_file(scope, repo), attributes)
    _apply_config(scope, drivers, cwd, report)
    if update_attributes(attributes, attribute_line(drivers)):
        report.changes.append(f"wrote `{attribute_line(drivers)}` to {attributes}")
    if shutil.which("nbmedic") is None:
        report.warnings.append("`nbmedic` is not on PATH, so git cannot run the filter and `git add` of "
                               "notebooks will fail: install nbmedic where git finds it (e.g. pipx install nbmedic)")
    if repo is not None:
        effective = _check_attr(repo.toplevel)
        for kind in drivers.enabled():
            value = effective.get(kind)
            if value != "nbmedic":
                report.warnings.append(f"*.ipynb files still get {kind}={value}: a later attributes line or "
                                       f"file overrides nbmedic's (see `git check-attr -a x.ipynb`)")
    return report


def uninstall(*, scope: Scope = "local", cwd: Path | None = None) -> InstallReport:
    repo = require_repo(cwd) if scope == "local" else find_repo(cwd)
    attributes = repo.attributes if scope == "local" and repo else global_attributes_file(cwd)
    report = InstallReport(_config_file(scope, repo), attributes)
    _apply_config(scope, Drivers(), cwd, report, remove_all=True)
    if update_attributes(attributes, None):
        report.changes.append(f"removed nbmedic's line from {attributes}")
    return report


# --- status ----------------------------------------------------------------------------------------------

def _check_attr(toplevel: Path) -> dict[str, str]:
    done = _git(["check-attr", "filter", "diff", "merge", "--", "nbmedic-probe.ipynb"], toplevel, check=False)
    values: dict[str, str] = {}
    for item in done.stdout.splitlines():
        parts = item.rsplit(": ", 2)
        if len(parts) == 3:
            values[parts[1]] = parts[2]
    return values


@dataclass
class Status:
    repo: Repo | None
    config: dict[str, dict[str, str]]  # scope -> key -> value (nbmedic's sections only)
    attribute_files: list[tuple[Path, list[tuple[int, str]]]]
    effective: dict[str, str]
    nbmedic_path: str | None

    def installed(self, kind: str) -> list[str]:
        """The scopes where ``kind``'s driver is configured exactly as nbmedic installs it."""
        return [scope for scope, values in self.config.items()
                if all(values.get(k) == v for k, v in _OURS[kind])]

    @property
    def active(self) -> bool:
        """The filter is configured, applies to notebooks, and git can run it."""
        return bool(self.installed("filter")) and self.effective.get("filter") == "nbmedic" \
            and self.nbmedic_path is not None


def status(cwd: Path | None = None) -> Status:
    repo = require_repo(cwd)
    done = _git(["config", "--show-scope", "--get-regexp", r"^(filter|diff|merge)\.nbmedic\."],
                repo.toplevel, check=False)
    config: dict[str, dict[str, str]] = {}
    for item in done.stdout.splitlines():
        scope, _, rest = item.partition("\t")
        key, _, value = rest.partition(" ")
        config.setdefault(scope, {})[key] = value
    files = [repo.attributes, repo.git_dir / "info" / "attributes", global_attributes_file(repo.toplevel)]
    attribute_files = [(path, _attribute_lines(path)) for path in files]
    return Status(repo, config, attribute_files, _check_attr(repo.toplevel), shutil.which("nbmedic"))


def expected(kind: str) -> tuple[tuple[str, str], ...]:
    return _OURS[kind]
