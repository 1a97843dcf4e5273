"""The pytest plugin (entry point ``pytest11``): ``pytest --nbmedic`` collects notebooks as tests.

Each ``*.ipynb`` file pytest reaches (not under ``.ipynb_checkpoints``) is one test item; it runs in a fresh
kernel under nbmedic's runner (limits, monitor, forensics), writes nothing, and fails on an error finding
(``--nbmedic-strict``: on a warning too) with nbmedic's text report of the notebook as the failure: code,
cell, message, evidence (the traceback, the stack of a stuck cell, the cause of a kernel death), fix.
Warnings of a passing notebook are listed in an "nbmedic warnings" section at the end of the session.

Options, highest first: ``--nbmedic-timeout``/``--nbmedic-kernel``/``--nbmedic-memory-limit``; the
notebook's ``metadata.nbmedic``; nbmake's ``metadata.execution`` (``timeout``, ``allow_errors``);
``[tool.nbmedic.run]`` of the notebook's project; the ``nbmedic_timeout`` ini value.  Cell tags as nbclient:
``skip-execution`` (not run), ``raises-exception`` (may raise).  ``metadata.nbmedic.skip`` (true, or a
reason) skips the whole notebook.

Inert unless ``--nbmedic`` is given: pytest loads this module in every run, so it imports only nbmedic's
light modules (the kernel machinery loads when the first notebook runs) and collects nothing without the
flag.  Items carry only their path, so pytest-xdist workers collect and run them as any test.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nbmedic import execute
from nbmedic.config import ConfigResolver
from nbmedic.errors import UsageError
from nbmedic.execute.options import RunOptions, options_from_mapping, project_options
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding, exit_code, make, sort_findings
from nbmedic.notebook.record import NotebookFile, read_notebook_file
from nbmedic.render.text import render_text
from nbmedic.units import format_bytes, parse_size

_SECTION = "nbmedic"  # the report section of a passing notebook's warnings ("Captured nbmedic call")
_CHECKPOINTS = ".ipynb_checkpoints"


@dataclass
class _Settings:
    """What ``--nbmedic`` and its options ask for, checked once per session (``config.stash``)."""

    overrides: dict[str, Any] = field(default_factory=dict)  # the command line: above everything
    defaults: dict[str, Any] = field(default_factory=dict)  # the ini values: below [tool.nbmedic.run]
    strict: bool = False
    resolver: ConfigResolver = field(default_factory=ConfigResolver)


_KEY = pytest.StashKey[_Settings]()


class NotebookFailed(Exception):
    """A notebook's failing findings: the message names the first (pytest's one-line summary), ``report``
    is nbmedic's text report of the notebook (the failure pytest shows)."""

    def __init__(self, findings: list[Finding], report: str) -> None:
        first = next(iter(sort_findings(findings)), None)
        where = "" if first is None or first.cell is None else f" cell {first.cell}"
        super().__init__(f"{first.code}{where}: {first.message}" if first is not None else report)
        self.report = report


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbmedic", "notebooks as tests (nbmedic)")
    group.addoption("--nbmedic", action="store_true", default=False,
                    help="collect *.ipynb files and run each in a fresh, monitored kernel (nbmedic)")
    group.addoption("--nbmedic-timeout", type=float, default=None, metavar="S",
                    help="seconds each cell may run (RN110 shows where it was stuck); default: none")
    group.addoption("--nbmedic-kernel", default=None, metavar="NAME",
                    help="run every notebook in this kernelspec instead of its own")
    group.addoption("--nbmedic-memory-limit", default=None, metavar="SIZE",
                    help="kill a kernel whose process tree passes SIZE of RSS (e.g. 2G); RN101")
    group.addoption("--nbmedic-strict", action="store_true", default=False,
                    help="a notebook with warnings fails too")
    parser.addini("nbmedic_timeout", "--nbmedic: default seconds each cell may run", default="")


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{what}: expected a positive number of seconds, got {value!r}") from None
    if number <= 0:
        raise pytest.UsageError(f"{what}: expected a positive number of seconds, got {value!r}")
    return number


def _settings(config: pytest.Config) -> _Settings:
    """The options, checked: a bad value stops pytest with a usage error (exit 4)."""
    overrides: dict[str, Any] = {}
    timeout = config.getoption("nbmedic_timeout")
    if timeout is not None:
        overrides["cell_timeout"] = _positive(timeout, "--nbmedic-timeout")
    if config.getoption("nbmedic_kernel"):
        overrides["kernel_name"] = config.getoption("nbmedic_kernel")
    memory = config.getoption("nbmedic_memory_limit")
    if memory:
        try:
            overrides["memory_limit"] = parse_size(memory, what="--nbmedic-memory-limit")
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    defaults: dict[str, Any] = {}
    ini = str(config.getini("nbmedic_timeout") or "").strip()
    if ini:
        defaults["cell_timeout"] = _positive(ini, "nbmedic_timeout (ini)")
    return _Settings(overrides, defaults, bool(config.getoption("nbmedic_strict")))


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("nbmedic", default=False):
        config.stash[_KEY] = _settings(config)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _KEY not in parent.config.stash or file_path.suffix != ".ipynb" or _CHECKPOINTS in file_path.parts:
        return None
    collector: pytest.Collector = NotebookCollector.from_parent(parent, path=file_path)
    return collector


class NotebookCollector(pytest.File):
    """A notebook file: one item, the whole notebook in one fresh kernel."""

    def collect(self) -> Iterator[pytest.Item]:
        yield NotebookItem.from_parent(self, name=self.path.name)


def _nbmake_options(nb: Mapping[str, Any], base: RunOptions, where: str) -> RunOptions:
    """nbmake's (and nbclient's) notebook-level ``metadata.execution``: ``timeout`` (seconds per cell; -1 or
    null: none) and ``allow_errors``."""
    meta = nb.get("metadata")
    execution = meta.get("execution") if isinstance(meta, Mapping) else None
    if not isinstance(execution, Mapping):
        return base
    values: dict[str, Any] = {}
    if "allow_errors" in execution:
        values["allow_errors"] = execution["allow_errors"]
    timeout = execution.get("timeout", 0)
    if timeout is None or (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout < 0):
        base = dataclasses.replace(base, cell_timeout=None)
    elif "timeout" in execution:
        values["cell_timeout"] = timeout
    return base.merged(**options_from_mapping(values, where=where))


def _skip_reason(nb: Mapping[str, Any]) -> str | None:
    """``metadata.nbmedic.skip``: true, or the reason as text."""
    meta = nb.get("metadata")
    own = meta.get("nbmedic") if isinstance(meta, Mapping) else None
    skip = own.get("skip") if isinstance(own, Mapping) else None
    if skip is True:
        return "metadata.nbmedic.skip"
    return skip if isinstance(skip, str) and skip.strip() else None


def _note(result: RunResult) -> str:
    """How the run went, for the report's header (as ``nbmedic run`` shows it)."""
    ran = sum(1 for c in result.cells if c.status not in ("not-run", "skipped"))
    parts = [result.status, f"{ran}/{len(result.cells)} cells in {result.duration:.1f} s"]
    if result.peak_rss:
        parts.append(f"peak RSS {format_bytes(result.peak_rss)}")
    return ", ".join(parts)


def report_text(findings: list[Finding], path: str, note: str | None = None) -> str:
    """nbmedic's text report of one notebook (no colour)."""
    stream = io.StringIO()
    render_text(findings, files=[path], stream=stream, notes={path: note} if note else None, summary="run",
                verbose=True)  # a failing test shows every fact: the stack, the traceback
    return stream.getvalue().rstrip("\n")


class NotebookItem(pytest.Item):
    """One notebook run top to bottom in a fresh kernel by nbmedic's runner."""

    def _run(self, settings: _Settings, file: NotebookFile) -> tuple[list[Finding], str | None]:
        """The findings of the run (those the notebook's ``[tool.nbmedic]`` keeps) and its header note."""
        assert file.nb is not None
        try:
            options = _nbmake_options(file.nb, project_options(file.config, **settings.defaults),
                                      f"{file.name} metadata.execution")
        except UsageError as exc:
            return [make("RN171", file.name, f"the notebook's run settings are invalid, so it was not run: {exc}",
                         evidence={"error": str(exc)})], None
        result = execute.run_notebook(file.name, options, nb=file.nb, output=None, **settings.overrides)
        return [f for f in result.findings if file.config.wants(f.code)], _note(result)

    def runtest(self) -> None:
        settings = self.config.stash[_KEY]
        file = read_notebook_file(self.path, settings.resolver.for_path(self.path))
        if file.nb is None:
            found = file.error_findings()
            raise NotebookFailed(found, report_text(found, file.name))
        reason = _skip_reason(file.nb)
        if reason is not None:
            _skip(reason)
        findings, note = self._run(settings, file)
        text = report_text(findings, file.name, note)
        strict = settings.strict or file.config.strict
        if exit_code(findings, strict=strict):
            raise NotebookFailed([f for f in findings if f.severity == "error" or (strict and f.severity == "warning")],
                                 text)
        if any(f.severity == "warning" for f in findings):
            self.add_report_section("call", _SECTION, text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, NotebookFailed):
            return excinfo.value.report
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"notebook {self.name}"


def _skip(reason: str) -> None:
    """Skip the running notebook, reported at the notebook (not at this line)."""
    try:
        exc = pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # a pytest without the keyword: reported here
        exc = pytest.skip.Exception(reason)
    raise exc


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The warnings of notebooks that passed (a failing notebook shows them in its failure)."""
    if _KEY not in config.stash:
        return
    texts = [content for report in terminalreporter.getreports("passed")
             for title, content in getattr(report, "sections", ()) if title == f"Captured {_SECTION} call"]
    if texts:
        terminalreporter.write_sep("=", "nbmedic warnings")
        for text in texts:
            terminalreporter.write_line(text)
