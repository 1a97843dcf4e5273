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


# --- NB020: the save limits of the team's deployment (savelimits) -------------------------------------

def _two_mib_notebook(tmp_path: Path) -> Path:
    return nbf.write(tmp_path / "plots.ipynb", nbf.notebook(
        nbf.code("plot()", count=1, outputs=[nbf.display({"image/png": _png(2 * 1024 * 1024),
                                                          "text/plain": "<Figure>"})]),
        nbf.code("summary()", count=2, outputs=[nbf.stream("done\n")]),
    ))


def test_nb020_names_the_ingress_limit_of_the_deployment(tmp_path: Path, check_json: CheckJson) -> None:
    _limits(tmp_path, 'deployment = "ingress-nginx"\n')
    path = _two_mib_notebook(tmp_path)
    _, findings = check_json(str(path))
    assert sorted(codes(findings)) == ["NB020", "NB021"]  # the plot alone is over max_output_size (1 MiB)
    [f] = [f for f in findings if f["code"] == "NB020"]
    assert f["severity"] == "warning" and f["cell"] is None
    ev = f["evidence"]
    assert ev["size"] == path.stat().st_size > 2 * 1024 * 1024
    assert ev["limit"] == 1024 * 1024 and ev["limit_name"] == "ingress-nginx proxy-body-size"
    # every limit the file is over, smallest first: only the proxy's (max_size is 10 MiB)
    assert [(s["name"], s["bytes"]) for s in ev["save_limits"]] == [("ingress-nginx proxy-body-size", 1024 * 1024)]
    assert "413" in ev["save_limits"][0]["effect"]
    assert ev["largest_outputs"][0]["cell"] == 0 and ev["largest_outputs"][0]["mime_type"] == "image/png"
    message = f["message"]
    assert message.startswith("the notebook is 2.0 MiB, over the 1.0 MiB ingress-nginx proxy-body-size (")
    assert "413 Request Entity Too Large" in message and "output 0 of cell 0 (image/png" in message
    assert "nbmedic slim FILE" in f["fix"]


def test_nb020_without_a_deployment_the_default_limit_applies(tmp_path: Path, check_json: CheckJson) -> None:
    path = _two_mib_notebook(tmp_path)  # 2 MiB: under max_size (10 MiB), the browser's and the server's
    assert codes(check_json(str(path))[1]) == ["NB021"]
    _limits(tmp_path, 'deployment = "jupyter-server"\n')  # Jupyter alone: 512 MiB
    assert codes(check_json(str(path))[1]) == ["NB021"]


def test_nb020_custom_save_limit_and_text_report(tmp_path: Path, check_json: CheckJson,
                                                 run_cli: Callable[..., tuple[int, str, str]]) -> None:
    _limits(tmp_path, 'save_limit = "1536K"\nmax_size = "1M"\nmax_output_size = "4M"\n')
    path = _two_mib_notebook(tmp_path)
    _, findings = check_json(str(path))
    [f] = findings
    ev = f["evidence"]
    # max_size (1 MiB) is the smaller: named first, the save limit listed after it
    assert (ev["limit"], ev["limit_name"]) == (1024 * 1024, "max_size ([tool.nbmedic])")
    assert [s["bytes"] for s in ev["save_limits"]] == [1024 * 1024, 1536 * 1024]
    assert "over the 1.0 MiB limit (`max_size`); also over the 1.5 MiB save_limit" in f["message"]
    _limits(tmp_path, 'save_limit = "1536K"\nmax_output_size = "4M"\n')
    [f] = check_json(str(path))[1]
    assert (f["evidence"]["limit"], f["evidence"]["limit_name"]) == (1536 * 1024, "save_limit ([tool.nbmedic])")
    assert "the deployment rejects the save request" in f["message"]
    code, out, _ = run_cli("check", str(path))
    assert code == 0 and "NB020" in out and "1.5 MiB" in out  # a warning: exit 0 unless --strict
    _limits(tmp_path, 'save_limit = "3M"\nmax_output_size = "4M"\n')
    assert check_json(str(path))[1] == []


def test_nb020_bad_deployment_is_a_one_line_usage_error(tmp_path: Path,
                                                         run_cli: Callable[..., tuple[int, str, str]]) -> None:
    _limits(tmp_path, 'deployment = "apache"\n')
    code, out, err = run_cli("check", str(_two_mib_notebook(tmp_path)))
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "deployment" in line and "'apache'" in line and "ingress-nginx" in line and "Traceback" not in err
