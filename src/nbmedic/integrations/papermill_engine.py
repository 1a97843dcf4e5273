"""A papermill engine (entry point ``papermill.engine``, name ``nbmedic``).

``papermill --engine nbmedic in.ipynb out.ipynb -p alpha 0.1`` keeps papermill's interface: papermill
injects the parameters, writes the output notebook, shows its progress bar and logs, fills each cell's
``metadata.papermill`` (start and end times, duration, status) and raises its errors.  The cells run in
nbmedic's monitored runner (``nbmedic.execute.run_notebook``) instead of nbclient, so the error says why:

- a cell that raises: papermill's ``PapermillExecutionError`` with the kernel's traceback, as nbclient gives;
- a cell past ``--execution-timeout`` (RN110) or the run past ``metadata.nbmedic.timeout`` (RN111), a cell
  that asks for input (RN150): ``PapermillExecutionError`` whose traceback is nbmedic's report of the
  finding (where the cell was stuck: its stack);
- a kernel death: nbclient's ``DeadKernelError`` (papermill's CLI exits with 138, as with its default
  engine) whose message is nbmedic's report: the cause (RN101 memory, RN102 a signal, RN103 an exit of its
  own, RN100 unknown) and its evidence;
- a kernel that cannot start: ``PapermillException`` with the RN14x finding.

papermill's options map onto the runner's: ``--kernel`` the kernel, ``--execution-timeout`` the cell
timeout, ``--start-timeout`` the start-up timeout, ``--cwd`` (papermill changes into it) the kernel's
working folder.  The notebook's ``metadata.nbmedic`` and, for a local input, ``[tool.nbmedic.run]`` add
nbmedic's own limits (``memory_limit``, ``timeout``, ``max_output``, ``stall_after``...).

The runner works on its own copy of the notebook: papermill's cell metadata and progress follow the cells as
they run, their outputs arrive when the notebook has finished (also ``--log-output``, ``--stdout-file`` and
``--stderr-file``).

papermill imports every engine while it imports itself, so this module imports papermill only when
papermill asks for ``NbmedicEngine`` (a module ``__getattr__``): importing papermill first, or this module
first, both work.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbmedic import execute
from nbmedic.config import load_config
from nbmedic.errors import UsageError
from nbmedic.execute.options import RunOptions, project_options
from nbmedic.execute.result import RunResult
from nbmedic.findings import Finding
from nbmedic.render.text import render_text

__all__ = ["NbmedicEngine"]  # noqa: F822 - built when first asked for (module __getattr__)

# The synthetic error outputs the runner adds to the cell where a run stopped without the kernel's own
# exception (their ename, as nbclient names the same failures).
_STOPPED = {"DeadKernelError", "CellTimeoutError", "RunTimeoutError", "StdinNotAllowedError"}
_STOP_CODES = ("RN100", "RN101", "RN102", "RN103", "RN110", "RN111", "RN120", "RN150")
_DEATHS = ("RN100", "RN101", "RN102", "RN103")
_PAPERMILL_LOGGER = "papermill"


def finding_text(findings: Sequence[Finding], path: str) -> str:
    """nbmedic's text report of ``findings`` about the notebook at ``path`` (no colour, no count line)."""
    stream = io.StringIO()
    render_text(findings, files=[path], stream=stream, summary="run", verbose=True)  # the stack, in full
    return "\n".join(stream.getvalue().rstrip("\n").splitlines()[:-1])


class _Cells:
    """papermill's per-cell bookkeeping (``nb_man.cell_start``/``cell_complete``) as the runner reports
    code cells starting: a code cell is complete when the next one starts (or the run ends); markdown and
    raw cells in between start and complete at once, as papermill's nbclient engine does."""

    def __init__(self, nb_man: Any) -> None:
        self.nb_man = nb_man
        self.cells: list[Any] = list(nb_man.nb.cells)
        self.code = [i for i, cell in enumerate(self.cells) if cell.get("cell_type") == "code"]
        self.next = 0  # the first cell not started yet
        self.running: int | None = None

    def progress(self, done: int, total: int) -> None:
        if self.running is not None:
            self.nb_man.cell_complete(self.cells[self.running], cell_index=self.running)
            self.running = None
        upto = self.code[done] if done < len(self.code) else len(self.cells)
        for index in range(self.next, upto):  # cells the runner does not send
            self.nb_man.cell_start(self.cells[index], index)
            self.nb_man.cell_complete(self.cells[index], cell_index=index)
        if upto < len(self.cells):
            self.nb_man.cell_start(self.cells[upto], upto)
            self.running = upto
        self.next = upto + 1

    def pending_from(self, start: int) -> None:
        """Cells after the one that stopped the run were never run: back to papermill's pending state."""
        for cell in self.cells[start:]:
            cell.metadata.papermill = {"exception": None, "start_time": None, "end_time": None,
                                       "duration": None, "status": self.nb_man.PENDING}


def _options(input_path: str | None) -> RunOptions:
    """``[tool.nbmedic.run]`` of the input notebook's project (a local input only)."""
    if not input_path or not os.path.isfile(input_path):
        return RunOptions()
    return project_options(load_config(Path(os.path.abspath(input_path))))


def _overrides(kernel_name: str | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """papermill's options as the runner's (papermill has already changed into ``--cwd``)."""
    timeout = kwargs.get("execution_timeout") or kwargs.get("timeout")
    start = kwargs.get("start_timeout")
    return {"kernel_name": kernel_name or None,
            "cell_timeout": float(timeout) if timeout and timeout > 0 else None,
            "startup_timeout": float(start) if start and start > 0 else None,
            "cwd": os.getcwd()}


def _stop(result: RunResult) -> Finding | None:
    """The finding that stopped the run (None when it ran to the end)."""
    if result.status == "ok":
        return None
    return next((f for f in result.findings if f.code in _STOP_CODES and f.severity == "error"), None)


def _stop_cell(result: RunResult, finding: Finding) -> int | None:
    """The notebook index of the cell where the run stopped: the finding's, or for a kernel found dead
    between two cells, the cell that was to run next."""
    if finding.cell is not None:
        return finding.cell
    ran = [c.index for c in result.cells if c.status not in ("not-run", "skipped")]
    later = [c.index for c in result.cells if not ran or c.index > ran[-1]]
    return later[0] if later else (ran[-1] if ran else None)


def _nbformat() -> Any:
    """nbformat (papermill's own dependency), typed loosely: it is untyped."""
    import nbformat

    return nbformat


def _copy_outputs(nb_man: Any, result: RunResult) -> None:
    """The executed cells' outputs, execution counts and ``metadata.nbmedic`` into papermill's notebook."""
    from_dict = _nbformat().from_dict
    executed = result.nb or {}
    cells = executed.get("cells") or []
    for target, cell in zip(nb_man.nb.cells, cells):
        if target.get("cell_type") != "code" or not isinstance(cell, dict):
            continue
        target.outputs = [from_dict(o) for o in cell.get("outputs") or []]
        target.execution_count = cell.get("execution_count")
        own = (cell.get("metadata") or {}).get("nbmedic")
        if isinstance(own, dict):
            target.metadata["nbmedic"] = from_dict(own)
    info = (executed.get("metadata") or {}).get("language_info")
    if isinstance(info, dict):
        nb_man.nb.metadata["language_info"] = from_dict(info)


def _mark_stop(nb_man: Any, cells: _Cells, index: int, finding: Finding, text: str) -> None:
    """The stopping cell: nbmedic's error output (its report as the traceback) first among its errors, so
    papermill's error is nbmedic's; the cell marked failed; later cells back to pending."""
    v4 = _nbformat().v4
    cell = nb_man.nb.cells[index]
    if finding.code != "RN120":  # a raised exception keeps the kernel's own traceback, as with nbclient
        kept = [o for o in cell.outputs if not (o.get("output_type") == "error" and o.get("ename") in _STOPPED)]
        shown = [o for o in cell.outputs if o.get("output_type") == "error" and o.get("ename") in _STOPPED]
        ename = str(shown[0].get("ename")) if shown else "DeadKernelError"
        error = v4.new_output("error", ename=ename, evalue=finding.message, traceback=text.splitlines())
        first = next((i for i, o in enumerate(kept) if o.get("output_type") == "error"), len(kept))
        cell.outputs = [*kept[:first], error, *kept[first:]]
    nb_man.cell_exception(cell, cell_index=index)
    cells.pending_from(index + 1)


def _replay_streams(nb_man: Any, kwargs: Mapping[str, Any]) -> None:
    """``--log-output``, ``--stdout-file``, ``--stderr-file``: the outputs, once the notebook has run."""
    log_output = bool(kwargs.get("log_output"))
    files = {"stdout": kwargs.get("stdout_file"), "stderr": kwargs.get("stderr_file")}
    if not log_output and not any(files.values()):
        return
    log = logging.getLogger(_PAPERMILL_LOGGER)
    for cell in nb_man.nb.cells:
        outputs = cell.get("outputs") if cell.get("cell_type") == "code" else None
        for out in outputs or []:
            if out.get("output_type") == "stream":
                text = "".join(out.get("text") or "")
                if log_output:
                    (log.info if out.get("name") == "stdout" else log.warning)(text)
                target = files.get(str(out.get("name")))
                if target is not None:
                    target.write(text)
                    target.flush()
            elif log_output and "text/plain" in (out.get("data") or {}):
                log.info("".join(out["data"]["text/plain"]))


def execute_managed(nb_man: Any, kernel_name: str | None, **kwargs: Any) -> None:
    """Run papermill's notebook in nbmedic's runner, then hand papermill the outputs and, when the run
    stopped, the error (``NbmedicEngine.execute_managed_notebook``)."""
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillException  # type: ignore[import-untyped]

    path = str(kwargs.get("input_path") or "notebook.ipynb")
    try:
        options = _options(kwargs.get("input_path"))
    except UsageError as exc:
        raise PapermillException(str(exc)) from None
    cells = _Cells(nb_man)
    logging.getLogger(_PAPERMILL_LOGGER).info("Executing notebook with kernel: %s (nbmedic)", kernel_name)
    result = execute.run_notebook(path, options, nb=nb_man.nb, output=None, progress=cells.progress,
                                  **_overrides(kernel_name, kwargs))
    if cells.running is not None:  # the runner reports every code cell, the last one included
        cells.progress(len(cells.code), len(cells.code))
    _copy_outputs(nb_man, result)
    _replay_streams(nb_man, kwargs)
    stop = _stop(result)
    others = [f for f in result.findings if f is not stop]
    if others:
        logging.getLogger(_PAPERMILL_LOGGER).warning("nbmedic:\n%s", finding_text(others, path))
    if result.status == "not-started":
        raise PapermillException(finding_text(result.findings, path) or f"{path}: the notebook was not run")
    if stop is None:
        return
    text = finding_text([stop], path)
    index = _stop_cell(result, stop)
    if index is not None:
        _mark_stop(nb_man, cells, index, stop, text)
    if stop.code in _DEATHS:
        raise DeadKernelError(text)
    if index is None:
        raise PapermillException(text)


def _engine_class(base: type) -> type:
    """``NbmedicEngine``: papermill's ``Engine`` whose cells run in nbmedic's runner."""

    def execute_managed_notebook(cls: type, /, nb_man: Any, kernel_name: str | None, **kwargs: Any) -> None:
        execute_managed(nb_man, kernel_name, **kwargs)

    return type("NbmedicEngine", (base,), {
        "__module__": __name__,
        "__doc__": "papermill's engine interface, nbmedic's monitored runner (``papermill --engine nbmedic``).",
        "execute_managed_notebook": classmethod(execute_managed_notebook),
    })


def __getattr__(name: str) -> Any:
    if name != "NbmedicEngine":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Importing papermill registers its engines, this one included: that re-enters here and builds the
    # class while papermill.engines is half imported (Engine is defined by then); keep that one.
    from papermill.engines import Engine  # type: ignore[import-untyped]

    engine = globals().get("NbmedicEngine")
    if engine is None:
        engine = globals()["NbmedicEngine"] = _engine_class(Engine)
    return engine
