"""Rebuild the clinic: one small sick notebook per symptom (run from anywhere: `python build_clinic.py`).

The notebooks are committed; this script documents how each was made and rebuilds them
deterministically.  The conflicted notebook comes from a real `git merge`.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent
rng = random.Random(20261125)


def kernel_meta(name: str = "python3", display: str = "Python 3 (ipykernel)") -> dict[str, Any]:
    return {
        "kernelspec": {"name": name, "display_name": display, "language": "python"},
        "language_info": {"name": "python", "version": "3.11.7"},
    }


def nb(cells: list[Any], *, meta: dict[str, Any] | None = None, minor: int = 5) -> Any:
    book = v4.new_notebook(cells=cells, metadata=kernel_meta() if meta is None else meta)
    book.nbformat_minor = minor
    for i, cell in enumerate(book.cells):
        if minor >= 5:
            cell["id"] = f"cell-{i}"
        else:
            cell.pop("id", None)
    return book


def save(name: str, book: Any) -> None:
    with (HERE / name).open("w", encoding="utf-8", newline="\n") as fh:
        nbformat.write(book, fh)


def code(src: str, count: int | None = None, outputs: list[Any] | None = None) -> Any:
    return v4.new_code_cell(src, execution_count=count, outputs=outputs or [])


def out(text: str) -> Any:
    return v4.new_output("stream", name="stdout", text=text)


def healthy() -> None:
    save("healthy.ipynb", nb([
        v4.new_markdown_cell("# A healthy notebook\nRun top to bottom, portable, small outputs."),
        code("import math\nradius = 2.0", 1),
        code("area = math.pi * radius ** 2\nprint(f'{area:.2f}')", 2, [out("12.57\n")]),
    ]))


def out_of_order() -> None:
    save("out_of_order.ipynb", nb([
        v4.new_markdown_cell("Cells were run bottom-up and one was skipped: the saved outputs lie."),
        code("data = [3, 1, 2]", 7),
        code("data.sort()", None),
        code("total = sum(data)", 4),
        code("print(total)", 5, [out("6\n")]),
    ]))


def missing_kernelspec() -> None:
    save("missing_kernelspec.ipynb", nb([code("print('which kernel am I?')", 1, [out("which kernel am I?\n")])],
                                        meta={}))


def unknown_kernel() -> None:
    save("unknown_kernel.ipynb", nb([code("x = 1", 1)],
                                    meta=kernel_meta("conda-env-deeplearning-py", "Python [conda env:deeplearning]")))


def absolute_paths() -> None:
    save("absolute_paths.ipynb", nb([
        code("import csv\n"
             "sales = '/home/alice/projects/q3/sales.csv'\n"
             "backup = r'C:\\Users\\alice\\Desktop\\sales_backup.csv'", 1),
        v4.new_markdown_cell("Data lives in `/home/alice/projects` on Alice's laptop (markdown is fine)."),
    ]))


def missing_import() -> None:
    save("missing_import.ipynb", nb([
        code("import json\nimport cudf  # RAPIDS GPU dataframes\n", 1),
        code("df = cudf.read_csv('data.csv')", 2),
    ]))


def widget_without_state() -> None:
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "5c1f0c6e2c2b4e1f9a0b7d3e8f6a1b2c",
                                                         "version_major": 2, "version_minor": 0},
            "text/plain": "IntSlider(value=5, max=10)"}
    save("widget_without_state.ipynb", nb([
        code("slider = 'IntSlider(value=5, max=10)'  # an ipywidgets.IntSlider in the real notebook\nslider", 1,
             [v4.new_output("execute_result", data=view, execution_count=1)]),
    ]))


def saved_errors() -> None:
    err = v4.new_output("error", ename="KeyError", evalue="'price'", traceback=[
        "\u001b[0;31mKeyError\u001b[0m: 'price'"])
    save("saved_errors.ipynb", nb([
        code("row = {'cost': 3}", 1),
        code("row['price'] * 2", 2, [err]),
    ]))


def bloated_outputs() -> None:
    blob = base64.b64encode(rng.randbytes(900_000)).decode()  # ~1.2 MB of "image"
    image = v4.new_output("display_data", data={"image/png": blob, "text/plain": "<Figure size 640x480>"})
    save("bloated_outputs.ipynb", nb([code("print('plotting')  # the saved figure is 1.2 MB", 1, [image])]))


def endless_log() -> None:
    text = "".join(f"epoch {i // 100} step {i}: loss={1 / (i + 1):.5f}\n" for i in range(12_000))
    save("endless_log.ipynb", nb([code("for step in range(12_000):\n    print(...)", 1, [out(text)])]))


def ids_on_old_minor() -> None:
    book = nb([code("print('hi')", 1, [out("hi\n")]), code("x = 2", 2)], minor=4)
    for i, cell in enumerate(book.cells):
        cell["id"] = f"c{i}"  # an editor added ids but left nbformat_minor at 4
    save("ids_on_old_minor.ipynb", book)


def schema_violation() -> None:
    doc = json.loads(nbformat.writes(nb([code("print('x')", 1, [out("x\n")])])))
    doc["cells"][0]["outputs"][0]["output_type"] = "stdout"  # not an nbformat output type
    (HERE / "schema_violation.ipynb").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def old_format_v3() -> None:
    v3 = {"metadata": {"name": "legacy"}, "nbformat": 3, "nbformat_minor": 0, "worksheets": [{"cells": [
        {"cell_type": "code", "collapsed": False, "input": ["print('IPython 2 era')"], "language": "python",
         "metadata": {}, "outputs": [], "prompt_number": 1}], "metadata": {}}]}
    (HERE / "old_format_v3.ipynb").write_text(json.dumps(v3, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def truncated() -> None:
    book = nb([code(f"step_{i} = {i} * 2\nprint(step_{i})", i + 1, [out(f"{i * 2}\n")]) for i in range(6)])
    text = nbformat.writes(book) + "\n"
    cut = text.index('"step_4 = 4')  # the disk filled up while saving cell 4
    (HERE / "truncated.ipynb").write_text(text[:cut], encoding="utf-8")


def html_page() -> None:
    (HERE / "html_page.ipynb").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>analysis.ipynb at main · team/project</title></head>\n"
        "<body><div class=\"notebook\">…</div></body>\n</html>\n", encoding="utf-8")


# --- runtime patients: their sickness shows only when they run; limits live in metadata.nbmedic ---------


def runtime(name: str, limits: dict[str, Any], *sources: str) -> None:
    meta = kernel_meta()
    meta["nbmedic"] = limits
    save(name, nb([code(src) for src in sources], meta=meta))


def runtime_patients() -> None:
    runtime("memory_hog.ipynb", {"memory_limit": "300M", "cell_timeout": 60},
            "import numbers\nrows = []",
            "# loads the whole data set into memory, 20 MB at a time\n"
            "for chunk in range(100):\n    rows.append(bytearray(b'x') * (20 * 2**20))")
    runtime("stuck_cell.ipynb", {"cell_timeout": 3},
            "import threading\nresults_ready = threading.Lock()\nresults_ready.acquire()",
            "def wait_for_results():\n    results_ready.acquire()  # nobody ever releases it: a deadlock\n\n"
            "wait_for_results()")
    runtime("native_crash.ipynb", {"cell_timeout": 30},
            "import ctypes",
            "def parse_buffer(address):\n    return ctypes.string_at(address)  # a bad pointer: SIGSEGV\n\n"
            "parse_buffer(0)")
    runtime("self_exit.ipynb", {"cell_timeout": 30},
            "import os",
            "def finish_job(status):\n    os._exit(status)  # a library's 'exit on failure' kills the kernel\n\n"
            "finish_job(3)")
    runtime("raising_cell.ipynb", {"cell_timeout": 30},
            "settings = {'learning_rate': 0.1}",
            "batch = settings['batch_size']  # the key was renamed upstream")
    runtime("asks_input.ipynb", {"cell_timeout": 30},
            "user = input('Database user: ')")
    runtime("output_flood.ipynb", {"max_output": "100K", "cell_timeout": 60},
            "for step in range(200_000):\n    print(f'step {step}: ok')")


def git(*args: str, cwd: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "clinic", "GIT_AUTHOR_EMAIL": "clinic@example.org",
           "GIT_COMMITTER_NAME": "clinic", "GIT_COMMITTER_EMAIL": "clinic@example.org",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=False, capture_output=True)


def conflicted() -> None:
    base = nb([v4.new_markdown_cell("# Model"), code("lr = 0.01", 1), code("epochs = 10", 2)])
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        git("init", "-q", "-b", "main", cwd=repo)
        target = repo / "model.ipynb"
        with target.open("w", encoding="utf-8") as fh:
            nbformat.write(base, fh)
        git("add", ".", cwd=repo)
        git("commit", "-qm", "base", cwd=repo)
        git("checkout", "-qb", "theirs", cwd=repo)
        base.cells[1].source = "lr = 0.001  # Bob: more stable"
        with target.open("w", encoding="utf-8") as fh:
            nbformat.write(base, fh)
        git("commit", "-qam", "bob", cwd=repo)
        git("checkout", "-q", "main", cwd=repo)
        base.cells[1].source = "lr = 0.1  # Alice: faster"
        with target.open("w", encoding="utf-8") as fh:
            nbformat.write(base, fh)
        git("commit", "-qam", "alice", cwd=repo)
        git("merge", "theirs", cwd=repo)  # conflicts: leaves the markers in the file
        shutil.copyfile(target, HERE / "conflicted.ipynb")


def committed_outputs() -> None:
    folder = HERE / "clean-repo"
    folder.mkdir(exist_ok=True)
    (folder / "pyproject.toml").write_text(
        "# This project keeps notebooks without outputs in version control.\n"
        "[tool.nbmedic]\nclean = true\n", encoding="utf-8")
    book = nb([code("print('result')", 1, [out("result\n")])])
    with (folder / "committed_outputs.ipynb").open("w", encoding="utf-8", newline="\n") as fh:
        nbformat.write(book, fh)


if __name__ == "__main__":
    for build in (healthy, out_of_order, missing_kernelspec, unknown_kernel, absolute_paths, missing_import,
                  widget_without_state, saved_errors, bloated_outputs, endless_log, ids_on_old_minor,
                  schema_violation, old_format_v3, truncated, html_page, conflicted, committed_outputs,
                  runtime_patients):
        build()
    print(f"clinic rebuilt in {HERE}")
