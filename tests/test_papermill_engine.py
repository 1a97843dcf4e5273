"""``papermill --engine nbmedic``: papermill's own CLI in a subprocess, real kernels.

papermill injects the parameters, writes the output notebook and raises its errors; nbmedic's runner runs the
cells, so a kernel death names its cause and a timed-out cell shows where it was stuck.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.nbfactory import code, md, notebook, write

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ipc transport: Linux only")


def _papermill(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m papermill ARGS`` (this interpreter's papermill, the same entry points)."""
    return subprocess.run([sys.executable, "-m", "papermill", *map(str, args)], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=120)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _stream(cell: dict[str, Any]) -> str:
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


def _parameterised(path: Path) -> Path:
    params = code("alpha = 1\nlabel = 'default'")
    params.metadata["tags"] = ["parameters"]
    return write(path, notebook(md("# report"), params, code("import os\nprint('alpha is', alpha, label)"),
                                code("print('cwd is', os.getcwd())"), md("the end")))


def _shape(nb: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a papermill user reads in an output notebook: per cell its type, tags, papermill status and
    metadata keys, and the text it printed."""
    return [(c["cell_type"], c["metadata"].get("tags", []), c["metadata"]["papermill"]["status"],
             sorted(c["metadata"]["papermill"]), _stream(c) if c["cell_type"] == "code" else None)
            for c in nb["cells"]]


def test_parameters_output_and_metadata_as_papermills_own_engine(tmp_path: Path,
                                                                 jupyter_home: dict[str, Path]) -> None:
    source = _parameterised(tmp_path / "report.ipynb")
    work = tmp_path / "work"
    work.mkdir()
    ours = _papermill("--engine", "nbmedic", source, tmp_path / "ours.ipynb", "-p", "alpha", "0.1",
                      "-p", "label", "swept", "--cwd", work, "--log-output", "--no-progress-bar", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr
    theirs = _papermill(source, tmp_path / "theirs.ipynb", "-p", "alpha", "0.1", "-p", "label", "swept",
                        "--cwd", work, "--no-progress-bar", cwd=tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    out, reference = _read(tmp_path / "ours.ipynb"), _read(tmp_path / "theirs.ipynb")
    assert _shape(out) == _shape(reference)
    cells = _code_cells(out)
    assert cells[1]["metadata"]["tags"] == ["injected-parameters"]
    assert "alpha = 0.1" in "".join(cells[1]["source"])
    assert _stream(cells[2]) == "alpha is 0.1 swept\n"
    assert _stream(cells[3]) == f"cwd is {work}\n"  # --cwd is the kernel's working folder
    assert all(c["metadata"]["papermill"]["status"] == "completed" for c in out["cells"])
    assert all(c["metadata"]["papermill"]["duration"] is not None for c in out["cells"])
    assert [c["execution_count"] for c in cells] == [1, 2, 3, 4]
    assert all(c["metadata"]["nbmedic"]["status"] == "ok" for c in cells)  # nbmedic's figures come along
    assert out["metadata"]["papermill"]["parameters"] == {"alpha": 0.1, "label": "swept"}
    assert out["metadata"]["language_info"]["name"] == "python"
    assert "alpha is 0.1 swept" in ours.stderr  # --log-output


def test_a_failing_cell_is_papermills_execution_error(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    source = write(tmp_path / "fails.ipynb", notebook(
        code("def explode():\n    raise ValueError('broken on purpose')"), code("print('before')\nexplode()"),
        code("print('never')")))
    done = _papermill("--engine", "nbmedic", source, tmp_path / "out.ipynb", "--no-progress-bar", cwd=tmp_path)
    assert done.returncode == 1
    assert "papermill.exceptions.PapermillExecutionError" in done.stderr
    assert 'Exception encountered at "In [2]"' in done.stderr
    assert "ValueError: broken on purpose" in done.stderr and "explode()" in done.stderr
    out = _read(tmp_path / "out.ipynb")
    assert any("papermill-error-cell-tag" in c["metadata"].get("tags", []) for c in out["cells"])
    cells = _code_cells(out)
    assert [c["metadata"]["papermill"]["status"] for c in cells] == ["completed", "failed", "pending"]
    assert _stream(cells[1]) == "before\n" and cells[2]["outputs"] == []
    assert out["metadata"]["papermill"]["exception"] is True


def test_a_kernel_death_names_its_cause(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    source = write(tmp_path / "dies.ipynb", notebook(code("print('alive')"), code("import os\nos._exit(3)"),
                                                     code("print('never')")))
    done = _papermill("--engine", "nbmedic", source, tmp_path / "out.ipynb", "--no-progress-bar", cwd=tmp_path)
    assert done.returncode == 138  # papermill's exit code for a dead kernel, as with its default engine
    assert "nbclient.exceptions.DeadKernelError" in done.stderr
    assert "✗ RN103 cell 1: the kernel process exited by itself with code 3" in done.stderr
    assert "exit_code: 3" in done.stderr
    cells = _code_cells(_read(tmp_path / "out.ipynb"))
    assert [c["metadata"]["papermill"]["status"] for c in cells] == ["completed", "failed", "pending"]
    assert _stream(cells[0]) == "alive\n"
    error = cells[1]["outputs"][-1]
    assert error["ename"] == "DeadKernelError" and "exited by itself with code 3" in error["evalue"]
    assert any("RN103" in line for line in error["traceback"])


def test_a_timed_out_cell_shows_its_stack(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    source = write(tmp_path / "hangs.ipynb", notebook(
        code("import time\ndef waits_forever():\n    time.sleep(60)"), code("waits_forever()"),
        code("print('never')")))
    done = _papermill("--engine", "nbmedic", source, tmp_path / "out.ipynb", "--execution-timeout", "1",
                      "--no-progress-bar", cwd=tmp_path)
    assert done.returncode == 1
    assert "papermill.exceptions.PapermillExecutionError" in done.stderr
    assert "✗ RN110 cell 1: cell 1 ran past its 1 s timeout, stuck at line 3 in waits_forever" in done.stderr
    assert "stack:" in done.stderr and "in waits_forever" in done.stderr.split("stack:")[1]
    cells = _code_cells(_read(tmp_path / "out.ipynb"))
    assert [c["metadata"]["papermill"]["status"] for c in cells] == ["completed", "failed", "pending"]
    errors = [o for o in cells[1]["outputs"] if o["output_type"] == "error"]
    # nbmedic's error comes first (papermill raises the first), then the kernel's KeyboardInterrupt
    assert [e["ename"] for e in errors] == ["CellTimeoutError", "KeyboardInterrupt"]
    assert any("waits_forever" in line for line in errors[0]["traceback"])


def test_a_missing_kernel_is_a_papermill_exception(tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    source = write(tmp_path / "nb.ipynb", notebook(code("print(1)")))
    done = _papermill("--engine", "nbmedic", source, tmp_path / "out.ipynb", "--kernel", "no-such-kernel",
                      "--no-progress-bar", cwd=tmp_path)
    assert done.returncode == 1
    assert "papermill.exceptions.PapermillException" in done.stderr
    assert "RN140" in done.stderr and "no kernel named 'no-such-kernel'" in done.stderr


def test_the_engine_imports_before_or_after_papermill() -> None:
    """papermill imports every engine while importing itself; importing this one first must work too."""
    probe = ("from nbmedic.integrations.papermill_engine import NbmedicEngine\n"
             "from papermill.engines import Engine, papermill_engines\n"
             "assert papermill_engines.get_engine('nbmedic') is NbmedicEngine\n"
             "assert issubclass(NbmedicEngine, Engine)\n")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
