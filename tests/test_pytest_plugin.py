"""``pytest --nbmedic``: notebooks as test items, run by real pytest sessions (pytester) in real kernels.

One session runs a batch of notebooks (passing, raising, dying, stuck past nbmake's timeout, tagged, allowed
to fail, skipped) in this process; the same batch runs again under pytest-xdist with two workers in a
subprocess and must give the same outcome per notebook.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbmedic.notebook.cells import RAISES_TAG, SKIP_TAG
from tests.nbfactory import code, md, notebook, write

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ipc transport: Linux only")
pytest_plugins = ["pytester"]

# Each notebook of the batch and the outcome pytest must give it.
OUTCOMES = {
    "passing.ipynb": "passed",
    "raising.ipynb": "failed",
    "dying.ipynb": "failed",
    "stuck.ipynb": "failed",
    "tagged.ipynb": "passed",
    "allowed.ipynb": "passed",
    "skipped.ipynb": "skipped",
}


def _tagged(source: str, tag: str) -> Any:
    cell = code(source)
    cell.metadata["tags"] = [tag]
    return cell


def _batch(root: Path) -> None:
    write(root / "passing.ipynb", notebook(md("# fine"), code("x = 6 * 7"), code("print(x)")))
    write(root / "raising.ipynb", notebook(
        code("print('before')"), code("def explode():\n    raise ValueError('broken on purpose')"),
        code("explode()"), code("print('never')")))
    write(root / "dying.ipynb", notebook(code("print('alive')"), code("import os\nos._exit(3)")))
    # nbmake's notebook-level timeout (metadata.execution.timeout): the stuck function's name is in the stack
    write(root / "stuck.ipynb", notebook(
        code("import time\ndef waits_forever():\n    time.sleep(60)"), code("waits_forever()"),
        execution={"timeout": 1}))
    # a cell that would kill the kernel is tagged skip-execution; one that raises is tagged raises-exception
    write(root / "tagged.ipynb", notebook(
        _tagged("raise KeyError('expected')", RAISES_TAG), _tagged("import os\nos._exit(9)", SKIP_TAG),
        code("print('after the tags')")))
    # nbmake's allow_errors: the error becomes a warning, the notebook passes and the warning is shown
    write(root / "allowed.ipynb", notebook(code("1 / 0"), code("print('went on')"),
                                           execution={"allow_errors": True}))
    write(root / "skipped.ipynb", notebook(code("raise SystemExit('must not run')"),
                                           nbmedic={"skip": "needs a GPU"}))
    (root / ".ipynb_checkpoints").mkdir()
    write(root / ".ipynb_checkpoints" / "raising-checkpoint.ipynb", notebook(code("1 / 0")))


def _outcomes(lines: list[str]) -> dict[str, str]:
    """notebook name -> outcome, from ``-v``'s lines (``a.ipynb::a.ipynb PASSED``, with xdist
    ``[gw0] [ 14%] PASSED a.ipynb::a.ipynb``)."""
    found = {}
    for line in lines:
        name = re.search(r"([\w-]+\.ipynb)::", line)
        word = re.search(r"\b(PASSED|FAILED|SKIPPED)\b", line)
        if name and word:
            found[name.group(1)] = word.group(1).lower()
    return found


def _failure(text: str, name: str) -> str:
    """The failure section pytest printed for the notebook ``name``."""
    start = text.index(f" notebook {name} ")
    end = min([i for i in (text.find(" notebook ", start + 1), text.find("short test summary", start)) if i > 0])
    return text[start:end]


def _check_batch(text: str, lines: list[str]) -> None:
    assert _outcomes(lines) == OUTCOMES, text
    raising = _failure(text, "raising.ipynb")
    assert "✗ RN120 cell 2: cell 2 raised ValueError: broken on purpose" in raising
    assert "in explode" in raising and "✗ raising.ipynb  failed, 3/4 cells" in raising
    dying = _failure(text, "dying.ipynb")
    assert "✗ RN103 cell 1: the kernel process exited by itself with code 3" in dying
    assert "exit_code: 3" in dying and "fix: remove the exit call" in dying
    stuck = _failure(text, "stuck.ipynb")
    assert "✗ RN110 cell 1: cell 1 ran past its 1 s timeout, stuck at line 3 in waits_forever" in stuck
    assert "stack:" in stuck and "in waits_forever" in stuck.split("stack:")[1]
    # the warning of the notebook that passed, at the end of the session
    warnings = text[text.index("nbmedic warnings"):]
    assert "allowed.ipynb" in warnings and "! RN120 cell 0" in warnings and "(allowed: the run went on)" in warnings
    assert "SKIPPED [1] skipped.ipynb:1: needs a GPU" in text
    assert "checkpoint" not in text


def test_batch_in_process(pytester: pytest.Pytester, jupyter_home: dict[str, Path]) -> None:
    _batch(pytester.path)
    result = pytester.runpytest("--nbmedic", "-v", "-rA", "-p", "no:cacheprovider")
    text = result.stdout.str()
    result.assert_outcomes(passed=3, failed=3, skipped=1)
    _check_batch(text, result.stdout.lines)
    # pytest's one-line summary starts with the report's header: how the run ended
    assert "FAILED dying.ipynb::dying.ipynb - ✗ dying.ipynb  died" in text


def test_batch_with_xdist(pytester: pytest.Pytester, jupyter_home: dict[str, Path]) -> None:
    _batch(pytester.path)
    result = pytester.runpytest_subprocess("--nbmedic", "-n", "2", "-v", "-rA", "-p", "no:cacheprovider")
    text = result.stdout.str()
    assert "2 workers" in text, text
    result.assert_outcomes(passed=3, failed=3, skipped=1)
    _check_batch(text, result.stdout.lines)


def test_without_the_flag_no_notebook_is_collected(pytester: pytest.Pytester) -> None:
    _batch(pytester.path)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.stdout.lines[0] == "test_plain.py::test_plain", result.stdout.str()
    assert ".ipynb" not in result.stdout.str()
    assert pytester.runpytest("-p", "no:cacheprovider").ret == 0


def test_strict_fails_on_warnings(pytester: pytest.Pytester, jupyter_home: dict[str, Path]) -> None:
    write(pytester.path / "allowed.ipynb", notebook(code("1 / 0"), execution={"allow_errors": True}))
    result = pytester.runpytest("--nbmedic", "--nbmedic-strict", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "! RN120 cell 0: cell 0 raised ZeroDivisionError" in result.stdout.str()


def test_options_and_their_precedence(pytester: pytest.Pytester, jupyter_home: dict[str, Path]) -> None:
    """The ini's nbmedic_timeout < [tool.nbmedic.run] < --nbmedic-timeout; a missing kernel is RN140."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nnbmedic_timeout = "1"\n')
    (pytester.path / "project").mkdir()
    (pytester.path / "project" / "pyproject.toml").write_text("[tool.nbmedic.run]\ncell_timeout = 30\n")
    slow = notebook(code("import time\ntime.sleep(2)\nprint('slept')"))
    write(pytester.path / "slow.ipynb", slow)
    write(pytester.path / "project" / "slow.ipynb", slow)
    session = pytester.runpytest("--nbmedic", "-v", "-p", "no:cacheprovider")
    session.assert_outcomes(failed=1, passed=1)  # the ini's 1 s, and the project's 30 s over it
    assert "✗ RN110 cell 0: cell 0 ran past its 1 s timeout" in session.stdout.str()
    assert "project/slow.ipynb::slow.ipynb PASSED" in session.stdout.str()
    over = pytester.runpytest("--nbmedic", "--nbmedic-timeout", "30", "slow.ipynb", "-p", "no:cacheprovider")
    over.assert_outcomes(passed=1)
    missing = pytester.runpytest("--nbmedic", "--nbmedic-kernel", "no-such-kernel", "slow.ipynb",
                                 "-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    assert "no kernel named 'no-such-kernel'" in missing.stdout.str()


def test_memory_limit_option(pytester: pytest.Pytester, jupyter_home: dict[str, Path]) -> None:
    grow = "import time\nchunks = []\nwhile True:\n    chunks.append(b'\\x01' * (32 * 2**20))\n    time.sleep(0.02)"
    write(pytester.path / "grows.ipynb", notebook(code("print('small')"), code(grow)))
    result = pytester.runpytest("--nbmedic", "--nbmedic-memory-limit", "200M", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "✗ RN101 cell 1: " in result.stdout.str() and "limits: --memory-limit=200.0 MiB" in result.stdout.str()


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    write(pytester.path / "nb.ipynb", notebook(code("print(1)")))
    bad_size = pytester.runpytest("--nbmedic", "--nbmedic-memory-limit", "lots", "-p", "no:cacheprovider")
    assert bad_size.ret == pytest.ExitCode.USAGE_ERROR
    assert "--nbmedic-memory-limit" in bad_size.stderr.str()
    bad_timeout = pytester.runpytest("--nbmedic", "--nbmedic-timeout", "0", "-p", "no:cacheprovider")
    assert bad_timeout.ret == pytest.ExitCode.USAGE_ERROR
    assert "--nbmedic-timeout" in bad_timeout.stderr.str()


def test_loading_the_plugin_imports_no_kernel_machinery() -> None:
    """pytest imports the plugin in every session: it must stay light."""
    heavy = ["jupyter_client", "zmq", "psutil", "nbformat", "rich", "tornado", "nbmedic.execute.runner"]
    probe = (f"import sys, pytest, nbmedic.integrations.pytest_plugin\n"
             f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
