"""nbclient's and papermill's cell tags, against nbclient on the same notebook files.

``skip-execution``: the cell is not sent to the kernel and keeps its stored outputs and execution count.
``raises-exception``: the cell may raise and the run goes on; an untagged error still stops the run at the
same cell as nbclient stops.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nbmedic.execute import RunResult, run_notebook
from nbmedic.notebook.cells import RAISES_TAG, SKIP_TAG
from tests.nbfactory import code, display, md, notebook, stream, write
from tests.runhelpers import read_out

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ipc transport: Linux only")

STORED_COUNT = 41  # an execution count no fresh kernel reaches in these notebooks


def _skipped(source: str, *outputs: Any, tags: tuple[str, ...] = (SKIP_TAG,)) -> Any:
    cell = code(source, count=STORED_COUNT, outputs=list(outputs))
    cell.metadata["tags"] = list(tags)
    return cell


def _tagged(source: str, tag: str) -> Any:
    cell = code(source)
    cell.metadata["tags"] = [tag]
    return cell


def _summary(nb: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Per code cell: its execution count, its stream text per stream name, its errors, its other outputs."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        streams: dict[str, str] = {}
        errors, others = [], []
        for o in cell["outputs"]:
            if o["output_type"] == "stream":
                text = o["text"]
                streams[o["name"]] = streams.get(o["name"], "") + ("".join(text) if isinstance(text, list) else text)
            elif o["output_type"] == "error":
                errors.append((o["ename"], o["evalue"]))
            else:
                others.append((o["output_type"], sorted(o.get("data", {}))))
        out.append((cell["execution_count"], streams, errors, others))
    return out


def _through_nbclient(path: Path) -> tuple[list[tuple[Any, ...]], bool]:
    """The summary of the notebook nbclient executed, and whether nbclient stopped on an error."""
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError:
        return _summary(nb), True
    return _summary(nb), False


def _through_nbmedic(path: Path) -> tuple[RunResult, dict[str, Any]]:
    out = path.with_name(path.stem + ".out.ipynb")
    result = run_notebook(path, output=out)
    return result, read_out(out)


def _statuses(saved: dict[str, Any]) -> list[str]:
    return [c["metadata"]["nbmedic"]["status"] for c in saved["cells"] if c["cell_type"] == "code"]


def test_skip_execution_cells_are_not_run_and_keep_their_outputs(tmp_path: Path) -> None:
    path = write(tmp_path / "skips.ipynb", notebook(
        code("x = 1\nprint('first')"),
        _skipped("x = 2\nprint('the skipped cell ran')", stream("stored output\n")),
        md("a markdown cell between"),
        code("print('x is', x)"),
        _skipped("import os\nos._exit(3)"),  # would kill the kernel if it ran
        _skipped("raise RuntimeError('must not run')",  # would stop the run if it ran
                 display({"text/plain": "<Figure>", "image/png": "iVBORw0KGgo="})),
        code("print('last')"),
    ))
    theirs, stopped = _through_nbclient(path)
    result, saved = _through_nbmedic(path)
    assert not stopped
    assert _summary(saved) == theirs
    # what both did, spelled out
    assert theirs[1] == (STORED_COUNT, {"stdout": "stored output\n"}, [], [])
    assert theirs[2][1] == {"stdout": "x is 1\n"}
    assert theirs[3] == (STORED_COUNT, {}, [], [])
    assert theirs[4] == (STORED_COUNT, {}, [], [("display_data", ["image/png", "text/plain"])])
    assert theirs[5][1] == {"stdout": "last\n"}
    # and nbmedic's record of it
    assert result.status == "ok" and result.findings == []
    assert [c.status for c in result.cells] == ["ok", "skipped", "ok", "skipped", "skipped", "ok"]
    assert _statuses(saved) == ["ok", "skipped", "ok", "skipped", "skipped", "ok"]
    assert saved["cells"][1]["metadata"]["nbmedic"] == {"status": "skipped"}
    stored = read_out(path)["cells"]
    for i in (1, 4, 5):
        assert saved["cells"][i]["outputs"] == stored[i]["outputs"]
        assert saved["cells"][i]["execution_count"] == STORED_COUNT


def test_raises_exception_goes_on_and_an_untagged_error_stops_where_nbclient_stops(tmp_path: Path) -> None:
    path = write(tmp_path / "raises.ipynb", notebook(
        code("print('first')"),
        _tagged("raise KeyError('expected')", RAISES_TAG),
        code("print('still here')"),
        _tagged("print('fine after all')", RAISES_TAG),  # tagged, does not raise: just a cell
        code("raise ValueError('boom')"),
        code("print('never')"),
    ))
    theirs, stopped = _through_nbclient(path)
    result, saved = _through_nbmedic(path)
    assert stopped  # nbclient raised CellExecutionError for cell 4
    assert _summary(saved) == theirs
    assert theirs[1][2] == [("KeyError", "'expected'")] and theirs[2][1] == {"stdout": "still here\n"}
    assert theirs[4][2] == [("ValueError", "boom")]
    assert theirs[5] == (None, {}, [], [])  # not run by either
    assert result.status == "failed"
    assert [(f.code, f.cell) for f in result.findings] == [("RN120", 4)]
    assert [c.status for c in result.cells] == ["ok", "error", "ok", "ok", "error", "not-run"]


def test_skip_wins_over_raises_and_over_a_stopped_run(tmp_path: Path) -> None:
    """A cell tagged both is skipped; a skipped cell after the run stopped keeps its outputs too."""
    stored = stream("kept\n")
    path = write(tmp_path / "both.ipynb", notebook(
        _skipped("raise KeyError('tagged both')", stored, tags=(SKIP_TAG, RAISES_TAG)),
        code("print('runs')"),
        code("1 / 0"),
        _skipped("print('after the error')", stored),
        code("print('not run')"),
    ))
    theirs, stopped = _through_nbclient(path)
    result, saved = _through_nbmedic(path)
    assert stopped
    assert _summary(saved) == theirs
    assert theirs[0] == theirs[3] == (STORED_COUNT, {"stdout": "kept\n"}, [], [])
    assert [c.status for c in result.cells] == ["skipped", "ok", "error", "skipped", "not-run"]
    assert [(f.code, f.cell) for f in result.findings] == [("RN120", 2)]
