"""NB020-NB022: notebook, output and stream sizes (limits lowered through [tool.nbmedic])."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import nbfactory as nbf
from tests.conftest import codes

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]


def _limits(tmp_path: Path, body: str) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\n" + body)


def _png(n: int) -> str:
    return base64.b64encode(bytes(range(256)) * (n // 256 + 1))[:n].decode()


def _big_notebook(tmp_path: Path) -> Path:
    return nbf.write(tmp_path / "big.ipynb", nbf.notebook(
        nbf.code("plot()", count=1, outputs=[nbf.display({"image/png": _png(5000), "text/plain": "<Figure>"})]),
        nbf.md("pasted", attachments={"shot.png": {"image/png": _png(3000)}}),
        nbf.code("table()", count=2, outputs=[nbf.stream("small\n"),
                                              nbf.result({"text/html": "<b>x</b>" * 200}, 2)]),
    ))


def test_defaults_are_silent_on_ordinary_outputs(tmp_path: Path, check_json: CheckJson) -> None:
    assert check_json(str(_big_notebook(tmp_path)))[1] == []


def test_nb020_lists_largest_parts(tmp_path: Path, check_json: CheckJson) -> None:
    _limits(tmp_path, 'max_size = "4K"\nmax_output_size = "1M"\n')
    _, findings = check_json(str(_big_notebook(tmp_path)))
    [f] = findings
    assert f["code"] == "NB020" and f["severity"] == "warning" and f["cell"] is None
    ev = f["evidence"]
    assert ev["limit"] == 4096 and ev["size"] > 4096
    largest = ev["largest_outputs"]
    assert [(o["cell"], o["output"], o["mime_type"]) for o in largest] == [
        (0, 0, "image/png"), (1, None, "image/png"), (2, 1, "text/html")]
    assert largest[0]["bytes"] == 5000 + len("<Figure>")
    assert largest[1]["attachment"] == "shot.png"
    assert "output 0 of cell 0 (image/png" in f["message"] and "4.0 KiB limit" in f["message"]


def test_nb021_single_output(tmp_path: Path, check_json: CheckJson) -> None:
    _limits(tmp_path, 'max_output_size = "1K"\n')
    _, findings = check_json(str(_big_notebook(tmp_path)))
    assert codes(findings) == ["NB021", "NB021"]
    first, second = findings
    assert (first["cell"], first["evidence"]["mime_type"], first["evidence"]["output"]) == (0, "image/png", 0)
    assert (second["cell"], second["evidence"]["mime_type"], second["evidence"]["output"]) == (2, "text/html", 1)
    assert first["evidence"]["limit"] == 1024
    assert "output 0 of cell 0 is 4.9 KiB of image/png" in first["message"]


def test_nb021_json_output_and_unicode(tmp_path: Path, check_json: CheckJson) -> None:
    _limits(tmp_path, 'max_output_size = "1K"\n')
    path = nbf.write(tmp_path / "j.ipynb", nbf.notebook(
        nbf.code("data", count=1, outputs=[nbf.display({"application/json": {"values": list(range(400))}})]),
        nbf.code("print('é')", count=2, outputs=[nbf.stream("é" * 600)]),  # 1200 bytes of UTF-8
    ))
    _, findings = check_json(str(path))
    assert [(f["code"], f["cell"], f["evidence"]["mime_type"]) for f in findings] == [
        ("NB021", 0, "application/json"), ("NB021", 1, "stream/stdout")]


def test_nb022_long_stream(tmp_path: Path, check_json: CheckJson) -> None:
    _limits(tmp_path, "max_stream_lines = 5\n")
    path = nbf.write(tmp_path / "s.ipynb", nbf.notebook(
        nbf.code("loop()", count=1, outputs=[nbf.stream("line\n" * 4), nbf.stream("line\n" * 3)]),
        nbf.code("warn()", count=2, outputs=[nbf.stream("w\n" * 4, name="stderr")]),
        nbf.code("ok()", count=3, outputs=[nbf.stream("a\n" * 3), nbf.result({"text/plain": "1"}, 3),
                                           nbf.stream("b\n" * 3)]),
    ))
    _, findings = check_json(str(path))
    [f] = findings  # consecutive stdout chunks add up; separated ones do not
    assert f["code"] == "NB022" and f["severity"] == "info" and f["cell"] == 0
    assert f["evidence"] == {"output": 0, "name": "stdout", "lines": 7, "limit": 5}


def test_nb022_default_limit_not_reached(tmp_path: Path, check_json: CheckJson) -> None:
    path = nbf.write(tmp_path / "s.ipynb", nbf.notebook(
        nbf.code("loop()", count=1, outputs=[nbf.stream("line\n" * 9_999)])))
    assert check_json(str(path))[1] == []
    path = nbf.write(tmp_path / "t.ipynb", nbf.notebook(
        nbf.code("loop()", count=1, outputs=[nbf.stream("line\n" * 10_001)])))
    assert codes(check_json(str(path))[1]) == ["NB022"]
