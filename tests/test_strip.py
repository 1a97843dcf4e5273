"""``nbmedic strip`` and its pure core ``nbmedic.vcs.strip``.

Byte-identity with nbstripout is in tests/test_strip_nbstripout.py; here: the semantics one by one,
purity, configuration, and the command (in place, mtimes, --check, stdin/stdout, bad inputs).
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.errors import UsageError
from nbmedic.notebook.io import NotebookReadError, dumps, load_bytes
from nbmedic.vcs.strip import (
    StripOptions,
    options_from_config,
    parse_keys,
    strip_bytes,
    strip_data,
    strip_notebook,
)

NBMEDIC = Path(sys.executable).parent / "nbmedic"
RunCli = Callable[..., tuple[int, str, str]]


def code_cell(source: str = "x = 1\n", count: int | None = 3, outputs: list[Any] | None = None,
              cell_id: str = "a1", **meta: Any) -> dict[str, Any]:
    return {"cell_type": "code", "id": cell_id, "execution_count": count, "metadata": dict(meta),
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}] if outputs is None
            else outputs, "source": source}


def result(count: int = 3, text: str = "42") -> dict[str, Any]:
    return {"output_type": "execute_result", "execution_count": count, "data": {"text/plain": text}, "metadata": {}}


def notebook(*cells: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3", "display_name": "P",
                                                              "language": "python"}, **meta},
            "nbformat": 4, "nbformat_minor": 5}


def write(path: Path, nb: dict[str, Any], *, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(nb, newline).encode("utf-8"))
    return path


def old_mtime(path: Path) -> int:
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return path.stat().st_mtime_ns


# --- the pure core ----------------------------------------------------------------------------------

def test_defaults_strip_outputs_counts_and_volatile_metadata_keep_ids() -> None:
    nb = notebook(code_cell(outputs=[result()], collapsed=True, scrolled="auto", ExecuteTime={"a": 1},
                            execution={"b": 2}, tags=["x"]),
                  {"cell_type": "markdown", "id": "m1", "metadata": {"heading_collapsed": True, "hidden": True},
                   "source": "# T"},
                  widgets={"state": {}}, signature="sha256:x", celltoolbar="Tags")
    out = strip_notebook(nb)
    code, md = out["cells"]
    assert code == {"cell_type": "code", "id": "a1", "execution_count": None, "metadata": {"tags": ["x"]},
                    "outputs": [], "source": "x = 1\n"}
    assert md["metadata"] == {} and md["id"] == "m1"
    assert "widgets" not in out["metadata"] and "signature" not in out["metadata"]
    assert out["metadata"]["celltoolbar"] == "Tags"


def test_pure_input_untouched() -> None:
    nb = notebook(code_cell(outputs=[result()], collapsed=True, nbmedic={"wall": 1.0, "timeout": 5}),
                  code_cell("", cell_id="b"), widgets={"s": 1})
    before = copy.deepcopy(nb)
    opts = StripOptions(drop_empty_cells=True, keep_output=True, keep_id=False,
                        extra_keys=("metadata.kernelspec.name", "cell.metadata.tags"))
    strip_notebook(nb, opts)
    strip_notebook(nb)
    assert nb == before


def test_idempotent_and_strip_data_flag() -> None:
    data = dumps(notebook(code_cell(outputs=[result()]))).encode()
    once, changed = strip_data(data)
    assert changed and once != data
    twice, changed_again = strip_data(once)
    assert twice == once and not changed_again


def test_layout_only_difference_is_not_a_change() -> None:
    stripped = strip_notebook(notebook(code_cell()))
    data = json.dumps(stripped, indent=2).encode()  # another editor's layout, nothing to strip
    out, changed = strip_data(data)
    assert not changed
    assert out == dumps(stripped).encode()  # the output itself is always canonical (what git stores)


@pytest.mark.parametrize("meta, kept", [
    ({"tags": ["keep_output"]}, True),
    ({"keep_output": True}, True),
    ({"keep_output": False}, False),
    ({"init_cell": True}, True),
    ({"init_cell": False, "keep_output": True}, False),  # init_cell decides first (nbstripout)
    ({"keep_output": False, "tags": ["keep_output"]}, True),  # nbstripout raises; keeping is the safe side
    ({}, False),
])
def test_keep_output_per_cell(meta: dict[str, Any], kept: bool) -> None:
    out = strip_notebook(notebook(code_cell(outputs=[result(7)], **meta)))
    cell = out["cells"][0]
    assert cell["outputs"] == ([{**result(7), "execution_count": None}] if kept else [])
    assert cell["execution_count"] is None
    kept_count = strip_notebook(notebook(code_cell(outputs=[result(7)], **meta)), StripOptions(keep_count=True))
    assert kept_count["cells"][0]["execution_count"] == 3
    if kept:
        assert kept_count["cells"][0]["outputs"][0]["execution_count"] == 7


def test_notebook_level_keep_output_and_option() -> None:
    assert strip_notebook(notebook(code_cell(), keep_output=True))["cells"][0]["outputs"] != []
    assert strip_notebook(notebook(code_cell()), StripOptions(keep_output=True))["cells"][0]["outputs"] != []
    # the cell's own metadata still wins over the notebook's
    nb = notebook(code_cell(keep_output=False), keep_output=True)
    assert strip_notebook(nb)["cells"][0]["outputs"] == []


def test_max_output_size_keeps_small_outputs() -> None:
    small = {"output_type": "stream", "name": "stdout", "text": "ok\n"}
    big = {"output_type": "stream", "name": "stdout", "text": "x" * 500}
    out = strip_notebook(notebook(code_cell(outputs=[small, big])), StripOptions(max_output_size=100))
    assert out["cells"][0]["outputs"] == [small]


def test_drop_empty_cells_and_ids() -> None:
    nb = notebook(code_cell("  \n", cell_id="e"), code_cell("y", cell_id="k"),
                  {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["", "\t"]})
    out = strip_notebook(nb, StripOptions(drop_empty_cells=True))
    assert [c["id"] for c in out["cells"]] == ["k"]
    numbered = strip_notebook(nb, StripOptions(keep_id=False))
    assert [c["id"] for c in numbered["cells"]] == ["0", "1", "2"]


def test_extra_and_keep_metadata_keys() -> None:
    nb = notebook(code_cell(collapsed=True, tags=["t"], jupyter={"source_hidden": True, "outputs_hidden": True}),
                  widgets={"w": 1})
    opts = StripOptions(extra_keys=("cell.metadata.jupyter.source_hidden", "metadata.kernelspec.display_name"),
                        keep_metadata_keys=("cell.metadata.collapsed", "metadata.widgets"))
    out = strip_notebook(nb, opts)
    assert out["cells"][0]["metadata"] == {"collapsed": True, "tags": ["t"], "jupyter": {"outputs_hidden": True}}
    assert out["metadata"]["widgets"] == {"w": 1}
    assert out["metadata"]["kernelspec"] == {"name": "python3", "language": "python"}


def test_nbmedic_run_figures_are_stripped_other_keys_stay() -> None:
    figures = {"status": "ok", "wall": 1.5, "cpu": 1.2, "peak_rss": 10, "rss_delta": 1, "output_bytes": 3}
    nb = notebook(code_cell(nbmedic=dict(figures)), code_cell(cell_id="b", nbmedic={**figures, "timeout": 9}))
    out = strip_notebook(nb)
    assert out["cells"][0]["metadata"] == {}
    assert out["cells"][1]["metadata"] == {"nbmedic": {"timeout": 9}}
    kept = strip_notebook(nb, StripOptions(keep_metadata_keys=("cell.metadata.nbmedic",)))
    assert kept["cells"][0]["metadata"] == {"nbmedic": figures}
    # the notebook's own metadata.nbmedic holds run options, not figures: untouched
    assert strip_notebook(notebook(nbmedic={"timeout": 3}))["metadata"]["nbmedic"] == {"timeout": 3}


def test_nbformat3_notebook() -> None:
    nb = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "", "signature": "sha256:1"},
          "worksheets": [{"metadata": {}, "cells": [
              {"cell_type": "code", "collapsed": False, "input": "1", "language": "python", "metadata": {},
               "outputs": [{"output_type": "pyout", "prompt_number": 1, "text": "1", "metadata": {}}],
               "prompt_number": 1}]}]}
    out = load_bytes(strip_bytes(json.dumps(nb).encode()))
    cell = out["worksheets"][0]["cells"][0]
    assert cell["outputs"] == [] and cell["prompt_number"] is None
    assert "signature" not in out["metadata"]


def test_crlf_kept() -> None:
    data = dumps(notebook(code_cell()), "\r\n").encode()
    out = strip_bytes(data)
    assert out.count(b"\r\n") == out.count(b"\n") > 5


@pytest.mark.parametrize("data", [b"", b"hello", b"[1, 2]", b'{"name": "package"}', b'{"nbformat": 4}',
                                  b'{"nbformat": "4", "cells": []}', b'{"nbformat": 1, "cells": []}',
                                  b"\xef\xbb\xbf{}", b"<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> b\n"])
def test_non_notebooks_raise(data: bytes) -> None:
    with pytest.raises(NotebookReadError):
        strip_bytes(data)


def test_options_from_config() -> None:
    opts = options_from_config({"keep-count": True, "drop_empty_cells": True, "extra-keys": "metadata.a, cell.b",
                                "keep-metadata-keys": ["cell.metadata.collapsed"], "max-output-size": "1K",
                                "keep-id": False, "keep_output": False}, where="t")
    assert opts == StripOptions(keep_count=True, drop_empty_cells=True, extra_keys=("metadata.a", "cell.b"),
                                keep_metadata_keys=("cell.metadata.collapsed",), max_output_size=1024,
                                keep_id=False)
    assert options_from_config({}, where="t") == StripOptions()


@pytest.mark.parametrize("table", [{"keep-count": "yes"}, {"extra-keys": "widgets"}, {"extra-keys": 3},
                                   {"extra-keys": "foo.bar"}, {"max-output-size": "big"}, {"strip-all": True},
                                   {"keep-metadata-keys": ["cell."]}])
def test_options_from_config_rejects(table: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as info:
        options_from_config(table, where="pyproject.toml [tool.nbmedic.strip]")
    assert "\n" not in str(info.value) and "[tool.nbmedic.strip]" in str(info.value)


def test_parse_keys_dedupes() -> None:
    assert parse_keys("metadata.a metadata.a,cell.x", what="k") == ("metadata.a", "cell.x")


# --- the command ------------------------------------------------------------------------------------

def test_in_place_rewrites_only_changed_files(tmp_path: Path, run_cli: RunCli) -> None:
    dirty = write(tmp_path / "dirty.ipynb", notebook(code_cell(outputs=[result()])))
    clean = write(tmp_path / "clean.ipynb", strip_notebook(notebook(code_cell())))
    odd_layout = tmp_path / "layout.ipynb"  # nothing to strip, another editor's layout: left alone
    odd_layout.write_text(json.dumps(strip_notebook(notebook(code_cell())), indent=2))
    odd_bytes = odd_layout.read_bytes()
    mtimes = {p: old_mtime(p) for p in (dirty, clean, odd_layout)}
    code, out, err = run_cli("strip", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[0] == f"stripped {dirty}"
    assert "1 of 3 notebook(s) stripped, 2 unchanged" in out
    assert dirty.read_bytes() == strip_bytes(dumps(notebook(code_cell(outputs=[result()]))).encode())
    assert dirty.stat().st_mtime_ns != mtimes[dirty]
    assert clean.stat().st_mtime_ns == mtimes[clean]
    assert odd_layout.stat().st_mtime_ns == mtimes[odd_layout] and odd_layout.read_bytes() == odd_bytes
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".nbmedic-tmp")]


def test_folders_searched_like_check(tmp_path: Path, run_cli: RunCli) -> None:
    nested = write(tmp_path / "a" / "b" / "n.ipynb", notebook(code_cell()))
    checkpoint = write(tmp_path / "a" / ".ipynb_checkpoints" / "n-checkpoint.ipynb", notebook(code_cell()))
    before = checkpoint.read_bytes()
    code, out, _ = run_cli("strip", str(tmp_path))
    assert code == 0 and f"stripped {nested}" in out
    assert checkpoint.read_bytes() == before


def test_check_lists_and_writes_nothing(tmp_path: Path, run_cli: RunCli) -> None:
    dirty = write(tmp_path / "dirty.ipynb", notebook(code_cell()))
    clean = write(tmp_path / "clean.ipynb", strip_notebook(notebook(code_cell())))
    data, mtime = dirty.read_bytes(), old_mtime(dirty)
    code, out, _ = run_cli("strip", "--check", str(dirty), str(clean))
    assert code == 1
    assert out.splitlines() == [f"would strip {dirty}", "1 of 2 notebook(s) would be stripped, 1 unchanged"]
    assert dirty.read_bytes() == data and dirty.stat().st_mtime_ns == mtime
    assert run_cli("strip", "--check", str(clean))[0] == 0
    assert run_cli("strip", str(dirty))[0] == 0
    assert run_cli("strip", "--check", str(dirty))[0] == 0


def test_check_json(tmp_path: Path, run_cli: RunCli) -> None:
    dirty = write(tmp_path / "dirty.ipynb", notebook(code_cell()))
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    code, out, err = run_cli("strip", "--check", "--format", "json", str(tmp_path))
    assert code == 1
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["check"] is True
    assert doc["would_strip"] == [str(dirty)] and doc["unchanged"] == []
    assert [(f["code"], f["path"]) for f in doc["findings"]] == [("NB001", str(broken))]
    assert doc["summary"]["files"] == 2
    assert err.count("\n") == 1 and "broken.ipynb" in err


def test_invalid_notebook_path_one_line_others_processed(tmp_path: Path, run_cli: RunCli) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_bytes(b"<!DOCTYPE html><html><title>Login</title></html>")
    other = tmp_path / "package.ipynb"
    other.write_bytes(b'{"name": "x"}')
    good = write(tmp_path / "good.ipynb", notebook(code_cell()))
    code, out, err = run_cli("strip", str(bad), str(other), str(good))
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("nbmedic: ") for line in lines)
    assert "bad.ipynb: not stripped: the file is an HTML page" in lines[0]
    assert "Traceback" not in err
    assert bad.read_bytes().startswith(b"<!DOCTYPE") and other.read_bytes() == b'{"name": "x"}'
    assert f"stripped {good}" in out and load_bytes(good.read_bytes())["cells"][0]["outputs"] == []


@pytest.mark.parametrize("args, needle", [
    (["strip", "missing.ipynb"], "missing.ipynb: no such file"),
    (["strip", "--extra-keys", "widgets", "x.ipynb"], "--extra-keys: 'widgets' is not a key path"),
    (["strip", "--max-output-size", "lots", "x.ipynb"], "--max-output-size: expected a size"),
    (["strip", "-", "x.ipynb"], "cannot be combined"),
    (["strip", "--format", "json", "-"], "--format json cannot be used with `-`"),
    (["strip", "--config", "nope.toml", "x.ipynb"], "--config nope.toml: no such file"),
    (["strip", "--keep-count=1", "x.ipynb"], "error:"),
])
def test_usage_errors_one_line(args: list[str], needle: str, tmp_path: Path, run_cli: RunCli) -> None:
    write(tmp_path / "x.ipynb", notebook(code_cell()))
    code, _, err = run_cli(*args)
    assert code == 2
    assert needle in err and err.count("\n") == 1, err


def test_config_table_nearest_per_file_cli_wins(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "pyproject.toml").write_text('[tool.nbmedic.strip]\nkeep-count = true\n'
                                                      'extra-keys = "metadata.celltoolbar"\n')
    kept = write(tmp_path / "keep" / "k.ipynb", notebook(code_cell(), celltoolbar="Tags"))
    plain = write(tmp_path / "plain" / "p.ipynb", notebook(code_cell(), celltoolbar="Tags"))
    assert run_cli("strip", str(tmp_path))[0] == 0
    k, p = load_bytes(kept.read_bytes()), load_bytes(plain.read_bytes())
    assert k["cells"][0]["execution_count"] == 3 and "celltoolbar" not in k["metadata"]
    assert p["cells"][0]["execution_count"] is None and p["metadata"]["celltoolbar"] == "Tags"
    assert k["cells"][0]["outputs"] == []
    code, _, _ = run_cli("strip", "--no-keep-count", str(kept))
    assert code == 0 and load_bytes(kept.read_bytes())["cells"][0]["execution_count"] is None


def test_config_explicit_file_and_bad_value(tmp_path: Path, run_cli: RunCli) -> None:
    nb = write(tmp_path / "n.ipynb", notebook(code_cell()))
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[tool.nbmedic.strip]\nkeep-output = true\n")
    assert run_cli("strip", "--config", str(cfg), str(nb))[0] == 0
    assert load_bytes(nb.read_bytes())["cells"][0]["outputs"] != []
    cfg.write_text("[tool.nbmedic.strip]\nkeep-output = 'sometimes'\n")
    code, _, err = run_cli("strip", "--config", str(cfg), str(nb))
    assert code == 2 and "keep-output: expected true or false" in err and err.count("\n") == 1


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_to_stdout(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from nbmedic.cli import main

    data = dumps(notebook(code_cell()), "\r\n").encode()
    _stdin(monkeypatch, data)
    assert main(["strip", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert out == strip_bytes(data) and b"\r\n" in out and err == b""
    _stdin(monkeypatch, data)
    assert main(["strip", "--check", "-"]) == 1
    out, err = capsysbinary.readouterr()
    assert out == b"" and b"would be stripped" in err
    _stdin(monkeypatch, strip_bytes(data))
    assert main(["strip", "--check", "-"]) == 0


@pytest.mark.parametrize("data", [b"", b"not json at all\n", b"\x89PNG\r\n\x1a\n\x00\x00", b'{"a": 1}',
                                  b"<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> other\n"])
def test_stdin_non_notebook_passes_through(data: bytes, monkeypatch: pytest.MonkeyPatch,
                                           capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from nbmedic.cli import main

    _stdin(monkeypatch, data)
    assert main(["strip", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert out == data
    assert err.count(b"\n") == 1 and err.startswith(b"nbmedic: warning: stdin is not a notebook")


def test_stdin_uses_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from nbmedic.cli import main

    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic.strip]\nkeep-count = true\n")
    _stdin(monkeypatch, dumps(notebook(code_cell())).encode())
    assert main(["strip", "-"]) == 0
    assert load_bytes(capsysbinary.readouterr().out)["cells"][0]["execution_count"] == 3


@pytest.mark.skipif(not NBMEDIC.exists(), reason="the nbmedic script is not installed")
def test_script_end_to_end_without_heavy_imports(tmp_path: Path) -> None:
    """The installed script as git runs it; the strip path imports neither nbformat, jsonschema nor rich."""
    data = dumps(notebook(code_cell(outputs=[result()]))).encode()
    done = subprocess.run([str(NBMEDIC), "strip", "-"], input=data, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout == strip_bytes(data) and done.stderr == b""
    done = subprocess.run([str(NBMEDIC), "strip", "-"], input=b"\x00binary", capture_output=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout == b"\x00binary" and done.stderr.count(b"\n") == 1
    path = write(tmp_path / "n.ipynb", notebook(code_cell()))
    probe = ("import sys\nfrom nbmedic.cli import main\ncode = main(['strip', sys.argv[1]])\n"
             "heavy = sorted(m for m in ('nbformat', 'jsonschema', 'rich', 'fastjsonschema', 'jupyter_client')"
             " if m in sys.modules)\nprint(code, heavy)\n")
    ran = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert ran.stdout.splitlines()[-1] == "0 []", ran.stdout + ran.stderr
