"""``[tool.nbmedic]`` configuration, found by walking up from the checked paths to a pyproject.toml."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.findings import code_matches
from nbmedic.savelimits import deployment_name
from nbmedic.units import MiB, parse_size

__all__ = ["Config", "ConfigResolver", "MiB", "code_selection", "config_from_mapping", "find_pyproject", "load_config", "parse_size",
           "split_codes"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    strict: bool = False
    clean: bool = False
    require_lock: bool = False  # EN223 when a notebook has no environment lock
    max_size: int = 10 * MiB
    max_output_size: int = 1 * MiB
    max_stream_lines: int = 10_000
    max_cell_lines: int = 60  # NB070: a code cell longer than this
    max_cell_names: int = 8  # NB071: a cell defining more top-level variables than this that later cells read
    save_limit: int | None = None  # the request size the team's Jupyter deployment accepts (savelimits)
    deployment: str | None = None  # a known deployment whose proxy limits saves (savelimits.DEPLOYMENTS)
    exclude: tuple[str, ...] = ()
    source: str | None = None  # the pyproject.toml it came from
    extra: Mapping[str, Any] = field(default_factory=dict)

    def wants(self, code: str) -> bool:
        if self.select and not code_matches(code, self.select):
            return False
        return not code_matches(code, self.ignore)

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def split_codes(value: object, *, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items: Sequence[object] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise UsageError(f"{what}: expected a list of codes such as [\"NB011\", \"NB04\"]")
    codes = []
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{what}: expected codes as strings, got {item!r}")
        code = item.strip().upper()
        if code:
            if not code.isalnum():
                raise UsageError(f"{what}: {item!r} is not a finding code or prefix")
            codes.append(code)
    return tuple(codes)


def code_selection(select: str | None, ignore: str | None) -> Config:
    """A configuration of ``--select``/``--ignore`` alone (commands that examine no notebook)."""
    return Config(select=split_codes(select, what="--select") if select else (),
                  ignore=split_codes(ignore, what="--ignore") if ignore else ())


def _has_section(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return "nbmedic" in tomllib.load(fh).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return True  # let load_config report it


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml above ``start`` that has a ``[tool.nbmedic]`` table."""
    here = start.resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _has_section(candidate):
            return candidate
    return None


_KNOWN = {"select", "ignore", "strict", "clean", "require_lock", "max_size", "max_output_size", "max_stream_lines",
          "max_cell_lines", "max_cell_names", "save_limit", "deployment", "exclude"}


def load_config(start: Path | None = None, *, pyproject: Path | None = None) -> Config:
    """Read ``[tool.nbmedic]`` from the nearest pyproject.toml above ``start`` (default: cwd)."""
    path = pyproject or find_pyproject(start or Path.cwd())
    if path is None:
        return Config()
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    section = doc.get("tool", {}).get("nbmedic", {})
    if not isinstance(section, dict):
        raise UsageError(f"{path}: [tool.nbmedic] must be a table")
    return config_from_mapping(section, source=str(path))


def config_from_mapping(section: Mapping[str, Any], *, source: str | None = None) -> Config:
    where = f"{source} [tool.nbmedic]" if source else "[tool.nbmedic]"
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for raw_key, value in section.items():
        key = raw_key.replace("-", "_")
        if key not in _KNOWN:
            extra[raw_key] = value  # tables of later subcommands, e.g. [tool.nbmedic.strip]
            continue
        if key in ("select", "ignore"):
            values[key] = split_codes(value, what=f"{where} {raw_key}")
        elif key in ("strict", "clean", "require_lock"):
            if not isinstance(value, bool):
                raise UsageError(f"{where} {raw_key}: expected true or false, got {value!r}")
            values[key] = value
        elif key == "deployment":
            values[key] = deployment_name(value, what=f"{where} {raw_key}")
        elif key in ("max_stream_lines", "max_cell_lines", "max_cell_names"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{where} {raw_key}: expected a positive integer, got {value!r}")
            values[key] = value
        elif key == "exclude":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where} {raw_key}: expected a list of glob patterns")
            values[key] = tuple(value)
        else:
            values[key] = parse_size(value, what=f"{where} {raw_key}")
    return Config(source=source, extra=extra, **values)


class ConfigResolver:
    """The configuration for each notebook: the nearest ``[tool.nbmedic]`` above it, then the CLI's overrides.

    With an explicit ``pyproject`` every notebook gets that one file's configuration.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None, pyproject: Path | None = None) -> None:
        self._overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self._fixed = load_config(pyproject=pyproject).with_overrides(**self._overrides) if pyproject else None
        self._by_file: dict[Path | None, Config] = {}
        self._by_dir: dict[Path, Config] = {}
        self._nearest_of: dict[Path, Path | None] = {}

    def for_path(self, path: Path) -> Config:
        if self._fixed is not None:
            return self._fixed
        folder = path if path.is_dir() else path.parent
        config = self._by_dir.get(folder)
        if config is None:
            config = self._by_dir[folder] = self._for_folder(Path(os.path.abspath(folder)))
        return config

    def _nearest(self, folder: Path) -> Path | None:
        """``find_pyproject`` of a resolved folder, remembering the answer of every folder on the way up
        (a tree of notebooks shares its parents: each pyproject.toml is read once)."""
        if folder in self._nearest_of:
            return self._nearest_of[folder]
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _has_section(candidate):
            found: Path | None = candidate
        else:
            found = None if folder.parent == folder else self._nearest(folder.parent)
        self._nearest_of[folder] = found
        return found

    def _for_folder(self, folder: Path) -> Config:
        source = self._nearest(folder)
        config = self._by_file.get(source)
        if config is None:
            config = load_config(pyproject=source).with_overrides(**self._overrides) if source else \
                Config().with_overrides(**self._overrides)
            self._by_file[source] = config
        return config
