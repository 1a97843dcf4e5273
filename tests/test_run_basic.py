"""Healthy runs: outputs as Jupyter saves them, figures per cell, options, parallel runs, pickling."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

import nbmedic
from nbmedic.execute import RunOptions, RunResult, run_notebook
from nbmedic.execute.forkstart import template_pids
from nbmedic.execute.outputs import OutputCollector
from tests.runhelpers import PY, make_nb, read_out, text_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ipc transport: Linux only")

DISPLAY_CELLS = (
    ("from IPython.display import display, update_display, clear_output, HTML\n"
     "h = display('first', display_id=True)\nprint('a')\nprint('b')"),
    "h.update('second')\nprint('updated')",
    "for i in range(3):\n    clear_output(wait=True)\n    print('step', i)",
    "display('x', display_id='dd')\ndisplay('y', display_id='dd')\nupdate_display('z', display_id='dd')",
    "print('gone')\nclear_output()\nprint('after clear')",
    "import sys\nprint('out')\nsys.stdout.flush()\nprint('more')\nsys.stderr.write('err\\n')",
    "display(HTML('<b>x</b>'))\n42",
    "update_display('final', display_id=h.display_id)",
)


def _merged(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive stream outputs of one name merged (what Jupyter shows and saves)."""
    out: list[dict[str, Any]] = []
    for o in json.loads(json.dumps(outputs)):
        if o.get("output_type") == "stream" and isinstance(o.get("text"), list):
            o["text"] = "".join(o["text"])
        for key in ("data",):
            if key in o:
                o[key] = {k: "".join(v) if isinstance(v, list) else v for k, v in o[key].items()}
        last = out[-1] if out else None
        if last and o.get("output_type") == "stream" and last.get("output_type") == "stream" \
                and last["name"] == o["name"]:
            last["text"] += o["text"]
        else:
            out.append(o)
    return out


def test_a_healthy_run(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "x = 20\nprint('hello')", "", "x + 22", "import time\ny = [0] * 10**6\ntime.sleep(0.15)")
    out = tmp_path / "out.ipynb"
    result = run_notebook(nb, output=out)
    assert result.status == "ok" and result.findings == []
    assert result.kernel == "python3" and result.output == str(out) and result.exit_code is None
    assert [c.status for c in result.cells] == ["ok", "skipped", "ok", "ok"]
    assert result.duration > 0 and result.peak_rss > 10 * 2**20 and result.timeline
    assert result.cells[3].rss_delta > 4 * 2**20  # a list of a million pointers
    saved = read_out(out)
    c0, c1, c2, c3 = saved["cells"]
    assert text_of(c0) == "hello\n" and c0["execution_count"] == 1
    assert c1["execution_count"] is None and c1["metadata"]["nbmedic"] == {"status": "skipped"}
    assert "".join(c2["outputs"][0]["data"]["text/plain"]) == "42" and c2["execution_count"] == 2
    assert c2["outputs"][0]["execution_count"] == 2
    figures = c3["metadata"]["nbmedic"]
    assert figures["status"] == "ok" and figures["peak_rss"] > 0 and figures["wall"] >= 0
    assert saved["metadata"]["language_info"]["name"] == "python"


def test_outputs_match_nbclient(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb_path = make_nb(tmp_path, *DISPLAY_CELLS)
    result = run_notebook(nb_path)
    assert result.status == "ok", [f.message for f in result.findings]
    assert result.nb is not None
    mine = [_merged(c["outputs"]) for c in result.nb["cells"]]

    reference = nbformat.read(str(nb_path), as_version=4)
    NotebookClient(reference, kernel_name="python3", timeout=30, resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    theirs = [_merged(c["outputs"]) for c in reference.cells]
    assert mine == theirs
    # and the facts themselves
    assert mine[0][0]["data"]["text/plain"] == "'final'"  # updated from cells 1 and 7
    assert mine[2] == [{"output_type": "stream", "name": "stdout", "text": "step 2\n"}]
    assert [o["data"]["text/plain"] for o in mine[3]] == ["'z'", "'z'"]
    assert mine[4] == [{"output_type": "stream", "name": "stdout", "text": "after clear\n"}]


def test_carriage_returns_and_backspaces_are_applied() -> None:
    col = OutputCollector({})
    for chunk in ["progress 1", "\rprogress 2", "\rprogress 3\n", "done\n", "ab", "\bc\n"]:
        col.stream("stdout", chunk)
    col.stream("stderr", "warn\n")
    assert col.outputs == [{"output_type": "stream", "name": "stdout", "text": "progress 3\ndone\nac\n"},
                           {"output_type": "stream", "name": "stderr", "text": "warn\n"}]
    assert col.kept == len("progress 3\ndone\nac\nwarn\n")


def test_options_precedence(tmp_path: Path) -> None:
    """CLI overrides > the notebook's metadata.nbmedic > options (pyproject) > defaults."""
    nb = make_nb(tmp_path, "import time\ntime.sleep(1.5)", nbmedic={"cell-timeout": 0.5})
    result = run_notebook(nb, RunOptions(cell_timeout=30))
    assert [f.code for f in result.findings] == ["RN110"]
    assert result.findings[0].evidence["cell_timeout"] == 0.5
    result = run_notebook(nb, RunOptions(cell_timeout=0.2), cell_timeout=20.0, timeout=None)
    assert result.status == "ok" and result.findings == []


def test_parameters_are_injected(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "alpha = 1", "print(alpha * 2)", tags={0: ["parameters"]})
    result = run_notebook(nb, RunOptions(parameters={"alpha": 21}))
    assert result.status == "ok" and result.nb is not None
    assert text_of(result.nb["cells"][2]) == "42\n"
    assert result.nb["cells"][1]["metadata"]["tags"] == ["injected-parameters"]


def test_debug_file_has_every_message(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "print('hi')")
    debug = tmp_path / "debug.jsonl"
    result = run_notebook(nb, debug_file=str(debug))
    assert result.status == "ok"
    records = [json.loads(line) for line in debug.read_text().splitlines()]
    kinds = {(r["channel"], r["direction"], r["msg_type"]) for r in records}
    assert ("shell", "send", "execute_request") in kinds
    assert ("shell", "recv", "execute_reply") in kinds
    assert ("iopub", "recv", "stream") in kinds
    assert all("content" in r and "date" in r for r in records)


def test_unreadable_notebook_is_not_started(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [', encoding="utf-8")
    result = run_notebook(bad)
    assert result.status == "not-started" and [f.code for f in result.findings] == ["NB001"]
    missing = run_notebook(tmp_path / "missing.ipynb")
    assert [f.code for f in missing.findings] == ["NB000"]


def test_run_result_pickles(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "print('x')", "raise ValueError('boom')")
    result = run_notebook(nb)
    assert result.findings and result.timeline
    back = pickle.loads(pickle.dumps(result))
    assert isinstance(back, RunResult)
    assert back.to_dict() == result.to_dict()
    assert back.findings == result.findings and back.nb == result.nb


def test_eight_parallel_runs_all_succeed(tmp_path: Path) -> None:
    paths = [make_nb(tmp_path, f"n = {i}\nprint('nb', n)", "import time\ntime.sleep(0.2)\nn * 2", name=f"nb{i}.ipynb")
             for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda p: run_notebook(p, startup_timeout=60.0), paths))
    assert [r.status for r in results] == ["ok"] * 8, [f.message for r in results for f in r.findings]
    for i, r in enumerate(results):
        assert r.nb is not None and text_of(r.nb["cells"][0]) == f"nb {i}\n"
        assert r.nb["cells"][1]["outputs"][0]["data"]["text/plain"] == str(i * 2)


def test_no_kernel_processes_are_left(tmp_path: Path) -> None:
    nb = make_nb(tmp_path, "import subprocess\np = subprocess.Popen(['sleep', '60'])", "import os\nos._exit(1)")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = run_notebook(nb)
    assert result.status == "died"
    # the warm template that forks kernels stays for the next run, by design; nothing else may stay
    after = {p.pid for p in psutil.Process().children(recursive=True)} - before - set(template_pids())
    alive = [p for p in map(psutil.Process, after) if p.status() != psutil.STATUS_ZOMBIE] if after else []
    assert alive == []
    assert not [p for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]


def test_import_nbmedic_stays_light() -> None:
    code = ("import sys, nbmedic; heavy = [m for m in ('jupyter_client', 'zmq', 'psutil') if m in sys.modules]; "
            "print(heavy); print(callable(nbmedic.run_notebook))")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
    assert "run_notebook" in nbmedic.__all__
