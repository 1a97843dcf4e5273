"""``nbmedic run`` from the command line: outputs, parameters, options precedence, compare, -j, JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.nbfactory import code, notebook, stream, write
from tests.runhelpers import make_nb, read_out, text_of

Run = Callable[..., tuple[int, str, str]]


def _json(run_cli: Run, *args: str) -> tuple[int, dict[str, Any]]:
    code_, out, err = run_cli("run", "--format", "json", *args)
    assert code_ in (0, 1), err
    return code_, json.loads(out)


def test_default_output_is_a_new_file_and_the_input_is_untouched(run_cli: Run, tmp_path: Path) -> None:
    path = make_nb(tmp_path, "x = 6 * 7", "print(x)")
    before = path.read_bytes()
    code_, doc = _json(run_cli, str(path))
    assert code_ == 0
    assert path.read_bytes() == before
    out = tmp_path / "nb.out.ipynb"
    saved = read_out(out)
    assert text_of(saved["cells"][1]) == "42\n"
    assert saved["cells"][1]["execution_count"] == 2
    [run] = doc["runs"]
    assert run["status"] == "ok" and run["output"] == str(out) and run["kernel"] == "python3"
    assert [c["status"] for c in run["cells"]] == ["ok", "ok"]
    assert run["timeline"] and run["peak_rss"] > 10 * 2**20
    meta = saved["cells"][1]["metadata"]["nbmedic"]
    assert meta["status"] == "ok" and meta["wall"] > 0 and meta["peak_rss"] > 0


def test_output_options(run_cli: Run, tmp_path: Path) -> None:
    a = make_nb(tmp_path, "print('a')", name="a.ipynb")
    b = make_nb(tmp_path, "print('b')", name="b.ipynb")
    assert run_cli("run", str(a), "-o", str(tmp_path / "custom.ipynb"))[0] == 0
    assert text_of(read_out(tmp_path / "custom.ipynb")["cells"][0]) == "a\n"
    assert run_cli("run", str(a), str(b), "--output-dir", str(tmp_path / "done"))[0] == 0
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["a.ipynb", "b.ipynb"]
    assert run_cli("run", "--in-place", str(b))[0] == 0
    assert text_of(read_out(b)["cells"][0]) == "b\n"


def test_a_failed_run_still_writes_the_partial_notebook(run_cli: Run, tmp_path: Path) -> None:
    path = make_nb(tmp_path, "print('kept')", "raise ValueError('boom')", "print('never')")
    code_, doc = _json(run_cli, str(path))
    assert code_ == 1
    assert [f["code"] for f in doc["findings"]] == ["RN120"]
    saved = read_out(tmp_path / "nb.out.ipynb")
    assert text_of(saved["cells"][0]) == "kept\n"
    assert saved["cells"][1]["outputs"][-1]["ename"] == "ValueError"
    assert saved["cells"][2]["outputs"] == [] and saved["cells"][2]["metadata"]["nbmedic"]["status"] == "not-run"
    # --allow-errors goes on, and the error is still reported
    code_, doc = _json(run_cli, "--allow-errors", str(path))
    assert text_of(read_out(tmp_path / "nb.out.ipynb")["cells"][2]) == "never\n"
    assert [f["code"] for f in doc["findings"]] == ["RN120"]


def test_parameters_from_cli_and_yaml_like_papermill(run_cli: Run, tmp_path: Path) -> None:
    nb = notebook(code("alpha = 1\nname = 'x'\nsizes = []"), code("print(alpha, name, sizes, type(alpha).__name__)"))
    nb.cells[0].metadata["tags"] = ["parameters"]
    path = write(tmp_path / "p.ipynb", nb)
    params = tmp_path / "params.yaml"
    params.write_text("alpha: 0.5\nsizes: [1, 2]\nname: from-yaml\n")
    assert run_cli("run", str(path), "-f", str(params), "-p", "name", "cli")[0] == 0
    saved = read_out(tmp_path / "p.out.ipynb")
    assert "injected-parameters" in saved["cells"][1]["metadata"]["tags"]
    assert text_of(saved["cells"][2]) == "0.5 cli [1, 2] float\n"


def test_limits_cli_beats_notebook_metadata_beats_pyproject(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic.run]\ncell-timeout = 1\n")
    path = make_nb(tmp_path, "import time; time.sleep(2.5); print('slept')")
    code_, doc = _json(run_cli, str(path))
    assert [f["code"] for f in doc["findings"]] == ["RN110"]  # pyproject's 1 s
    write(path, notebook(code("import time; time.sleep(2.5); print('slept')"), nbmedic={"cell_timeout": 10}))
    code_, doc = _json(run_cli, str(path))
    assert code_ == 0 and doc["findings"] == []  # the notebook's 10 s wins over pyproject
    code_, doc = _json(run_cli, "--cell-timeout", "1", str(path))
    assert [f["code"] for f in doc["findings"]] == ["RN110"]  # the command line wins over the notebook


def test_compare_reports_changed_outputs(run_cli: Run, tmp_path: Path) -> None:
    nb = notebook(code("print(2 + 2)", count=1, outputs=[stream("5\n")]),
                  code("print(object())", count=2, outputs=[stream("<object object at 0x7f00deadbeef>\n")]))
    path = write(tmp_path / "c.ipynb", nb)
    _, doc = _json(run_cli, "--compare", "--in-place", str(path))
    [f] = doc["findings"]
    assert f["code"] == "RN160" and f["cell"] == 0  # the address in cell 1 is normalised away
    assert "-5" in f["evidence"]["diff"] and "+4" in f["evidence"]["diff"]
    _, doc = _json(run_cli, "--compare", str(path))  # now the stored outputs are the new ones
    assert doc["findings"] == []


def test_parallel_runs_and_debug_log(run_cli: Run, tmp_path: Path) -> None:
    paths = [make_nb(tmp_path, f"print({i} * 2)", name=f"n{i}.ipynb") for i in range(4)]
    debug = tmp_path / "debug.jsonl"
    code_, doc = _json(run_cli, "-j", "2", "--debug", str(debug), *map(str, paths))
    assert code_ == 0
    assert [r["status"] for r in doc["runs"]] == ["ok"] * 4
    for i in range(4):
        assert text_of(read_out(tmp_path / f"n{i}.out.ipynb")["cells"][0]) == f"{i * 2}\n"
        lines = (tmp_path / f"debug.n{i}.jsonl").read_text().splitlines()
        kinds = {json.loads(line).get("msg_type") for line in lines}
        assert {"execute_request", "execute_reply", "stream"} <= kinds


def test_text_report_says_how_each_run_went(run_cli: Run, tmp_path: Path) -> None:
    ok = make_nb(tmp_path, "x = 1", name="ok.ipynb")
    bad = make_nb(tmp_path, "import os; os._exit(4)", name="bad.ipynb")
    code_, out, _ = run_cli("run", str(ok), str(bad))
    assert code_ == 1
    assert "ok.ipynb  ok, 1/1 cells in" in out and "→" in out
    assert "RN103" in out and "exited by itself with code 4" in out
    assert "2 notebooks run:" in out.splitlines()[-1]


@pytest.mark.parametrize("args, words", [
    (["missing.ipynb"], "no such notebook"),
    (["{a}", "{b}", "-o", "x.ipynb"], "one notebook"),
    (["{a}", "--memory-limit", "lots"], "--memory-limit"),
    (["{a}", "--cell-timeout", "0"], "positive"),
    (["{a}", "-j", "0"], "--jobs"),
    (["{a}", "-f", "nope.yaml"], "nope.yaml"),
    (["{a}", "-p", "not-a-name", "1"], "identifier"),
])
def test_bad_input_is_one_line_exit_2(run_cli: Run, tmp_path: Path, args: list[str], words: str) -> None:
    a = make_nb(tmp_path, "x = 1", name="a.ipynb")
    b = make_nb(tmp_path, "x = 2", name="b.ipynb")
    argv = [x.format(a=a, b=b) for x in args]
    code_, _, err = run_cli("run", *argv)
    assert code_ == 2, err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.out.ipynb").exists()


def test_run_notebook_is_exported_lazily() -> None:
    import subprocess
    import sys

    probe = ("import sys, nbmedic; assert 'jupyter_client' not in sys.modules; "
             "from nbmedic import run_notebook; print(run_notebook.__module__)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy(),
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "nbmedic.execute.runner"


def test_unwritable_output_and_bad_notebook_settings_are_findings(run_cli: Run, tmp_path: Path) -> None:
    blocked = make_nb(tmp_path, "x = 1", name="blocked.ipynb")
    (tmp_path / "blocked.out.ipynb").mkdir()  # a folder where the output should go
    bad = write(tmp_path / "bad.ipynb", notebook(code("x = 1"), nbmedic={"cell_timeout": "soon"}))
    good = make_nb(tmp_path, "print('fine')", name="good.ipynb")
    code_, doc = _json(run_cli, str(blocked), str(bad), str(good))
    assert code_ == 1
    by_file = {Path(f["path"]).name: f for f in doc["findings"]}
    assert by_file["blocked.ipynb"]["code"] == "RN170"
    assert by_file["bad.ipynb"]["code"] == "RN171" and "cell_timeout" in by_file["bad.ipynb"]["message"]
    assert "good.ipynb" not in by_file
    assert text_of(read_out(tmp_path / "good.out.ipynb")["cells"][0]) == "fine\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind
    code_, _, err = run_cli("run", str(good), "-o", str(tmp_path / "missing" / "x.ipynb"))
    assert code_ == 2 and "does not exist" in err
