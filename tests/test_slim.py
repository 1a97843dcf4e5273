"""``nbmedic slim``: real notebooks (the clinic's bloated one, a generated 60 MB one, small ones made here with
real Pillow images), read back with nbformat; the dry-run plan is compared with what is then written."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from PIL import Image, ImageDraw

from nbmedic.notebook.io import (
    BOM,
    LARGE_FILE,
    MAX_ESCAPED,
    NotebookReadError,
    detect_newline,
    dumps,
    encode_text,
    load_bytes,
    load_large,
    write_notebook,
)
from nbmedic.slim import Ledger, cut_text, images, slim_notebook
from nbmedic.units import MiB

ROOT = Path(__file__).resolve().parent.parent
CLINIC = ROOT / "examples" / "clinic"
Cli = Callable[..., tuple[int, str, str]]


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("slim_bench", ROOT / "benchmarks" / "slim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def big_nb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated ~60 MB notebook (built once for the module)."""
    return Path(_bench().build_notebook(tmp_path_factory.mktemp("big") / "big.ipynb", scale=1.0))


@pytest.fixture(scope="module")
def small_nb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of notebook at a tenth of the size: one photo, shown twice."""
    return Path(_bench().build_notebook(tmp_path_factory.mktemp("small") / "small.ipynb", scale=0.1))


# --- helpers -------------------------------------------------------------------------------------------------

def _png(width: int, height: int, *, photo: bool = False, seed: int = 0) -> str:
    if photo:
        img = Image.effect_noise((width, height), 40).convert("RGB")
    else:
        img = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        for i in range(0, width, 7):
            draw.line([(i, 0), (width - i, height)], fill=((i * 13 + seed) % 256, (i * 7) % 256, 90), width=3)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode()


def _display(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> Any:
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata or {})


def _stream(lines: int, name: str = "stdout") -> Any:
    return nbformat.v4.new_output("stream", name=name, text="".join(f"step {i}: loss={1 / (i + 1):.6f}\n"
                                                                  for i in range(lines)))


def _write(path: Path, *cells: Any, widgets: dict[str, Any] | None = None) -> Path:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if widgets is not None:
        nb.metadata["widgets"] = widgets
    write_notebook(path, nb)
    return path


def _code(source: str, *outputs: Any, tags: list[str] | None = None) -> Any:
    cell = nbformat.v4.new_code_cell(source, outputs=list(outputs), execution_count=1)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def _json(run_cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli("slim", "--format", "json", *args)
    assert code in (0, 1), err
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["findings"] == []
    return code, doc["slim"][0]


def _sources(nb: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["cell_type"], c.get("id", ""), "".join(c["source"])) for c in nb["cells"]]


def _assert_sound(original: Path, result: Path) -> dict[str, Any]:
    """Every cell and source kept; valid for nbformat; returns the result."""
    before, after = load_bytes(original.read_bytes()), load_bytes(result.read_bytes())
    assert _sources(after) == _sources(before)
    nbformat.validate(nbformat.reads(result.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT))
    nbformat.read(str(result), as_version=4)
    return after


def _assert_plan_done(original: Path, result: Path, report: dict[str, Any]) -> None:
    """The outputs the plan names are the ones that changed (or went, for remove-output); the rest are as
    they were."""
    before, after = load_bytes(original.read_bytes()), load_bytes(result.read_bytes())
    touched = {(c["cell"], c["output"]) for c in report["changes"]}
    removed = {(c["cell"], c["output"]) for c in report["changes"] if "remove-output" in c["detail"]}
    for index, (old, new) in enumerate(zip(before["cells"], after["cells"], strict=True)):
        kept = [(k, o) for k, o in enumerate(old.get("outputs", [])) if (index, k) not in removed]
        assert len(new.get("outputs", [])) == len(kept), index
        for (k, was), now in zip(kept, new.get("outputs", []), strict=True):
            same = json.dumps(was, sort_keys=True) == json.dumps(now, sort_keys=True)
            assert same != ((index, k) in touched), (index, k)


# --- the generated 60 MB notebook -----------------------------------------------------------------------------

def test_big_notebook_meets_the_default_target_and_the_plan_is_what_is_done(
        run_cli: Cli, big_nb: Path, tmp_path: Path) -> None:
    nb = tmp_path / "big.ipynb"
    shutil.copyfile(big_nb, nb)
    size = nb.stat().st_size
    assert size > 50 * MiB
    code, plan = _json(run_cli, str(nb), "--dry-run")
    assert code == 0 and not (tmp_path / "big.slim.ipynb").exists()
    assert plan["target"] == 10 * MiB and plan["limit"] == "max_size ([tool.nbmedic])"
    code, done = _json(run_cli, str(nb))
    out = tmp_path / "big.slim.ipynb"
    assert code == 0 and done["written"] and done["output"] == str(out)
    assert done["changes"] == plan["changes"] and done["steps"] == plan["steps"]
    assert out.stat().st_size == done["size_after"] == plan["size_after"] <= 10 * MiB
    assert done["size_before"] == size and nb.stat().st_size == size  # the input is untouched
    assert [s["step"] for s in done["steps"]][:4] == ["never-shown", "duplicate-images", "long-text", "images"]
    assert sum(s["saved"] for s in done["steps"]) == done["size_before"] - done["size_after"]  # written canonically
    _assert_sound(nb, out)
    _assert_plan_done(nb, out, done)
    stamp = out.stat().st_mtime_ns, out.read_bytes()
    code, again = _json(run_cli, str(out), "-o", str(out))
    assert code == 0 and again["status"] == "unchanged" and not again["written"]
    assert (out.stat().st_mtime_ns, out.read_bytes()) == stamp


def test_small_notebook_to_a_tight_target_with_every_step(run_cli: Cli, small_nb: Path, tmp_path: Path) -> None:
    nb = tmp_path / "small.ipynb"
    shutil.copyfile(small_nb, nb)
    code, plan = _json(run_cli, str(nb), "--target", "1M", "--dry-run")
    code, done = _json(run_cli, str(nb), "--target", "1M")
    assert code == 0 and done["changes"] == plan["changes"]
    assert {s["step"] for s in done["steps"]} >= {"never-shown", "duplicate-images", "long-text", "images"}
    out = tmp_path / "small.slim.ipynb"
    assert out.stat().st_size == done["size_after"] <= MiB
    after = _assert_sound(nb, out)
    _assert_plan_done(nb, out, done)
    text = json.dumps(after)
    assert "lines cut by nbmedic slim" in text and "the same image as cell" in text


# --- the clinic -------------------------------------------------------------------------------------------------

def test_clinic_bloated_notebook(run_cli: Cli, tmp_path: Path) -> None:
    original = CLINIC / "bloated_outputs.ipynb"
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    nb = tmp_path / "bloated_outputs.ipynb"
    shutil.copyfile(original, nb)
    code, out, _ = run_cli("slim", str(nb))  # 1.1 MiB: under the default 10 MiB
    assert code == 0 and "already under the target" in out and not (tmp_path / "bloated_outputs.slim.ipynb").exists()
    code, plan = _json(run_cli, str(nb), "--target", "500K", "--dry-run")
    code, out, err = run_cli("slim", str(nb), "--target", "500K")
    assert code == 0, err
    result = tmp_path / "bloated_outputs.slim.ipynb"
    assert f"-> {result}" in out and "clear-outputs" in out and "cells 0" in out
    assert result.stat().st_size == plan["size_after"] <= 500 * 1024
    after = _assert_sound(nb, result)
    assert "".join(after["cells"][0]["outputs"][0]["data"]["text/plain"]).startswith("[output cleared by nbmedic slim")
    assert hashlib.sha256(original.read_bytes()).hexdigest() == digest


# --- the steps, on small real notebooks -------------------------------------------------------------------------

def test_never_shown_widgets_svg_pairs_plain_text_and_remove_output(tmp_path: Path) -> None:
    state: dict[str, dict[str, Any]] = {m: {"model_name": "X", "model_module": "m", "model_module_version": "1", "state": {"pad": "x" * 5000}}
             for m in ("shown", "layout", "style", "orphan1", "orphan2")}
    state["shown"]["state"]["layout"] = "IPY_MODEL_layout"
    state["layout"]["state"]["children"] = ["IPY_MODEL_style"]
    widgets = {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2, "version_minor": 0}}
    view = {"model_id": "shown", "version_major": 2, "version_minor": 0}
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>'
    plain = "".join(f"row {i}\n" for i in range(5000))
    nb = _write(tmp_path / "nb.ipynb",
                _code("w", _display({"application/vnd.jupyter.widget-view+json": view, "text/plain": "W"})),
                _code("fig", _display({"image/svg+xml": svg, "image/png": _png(300, 200), "text/plain": "F"},
                                      {"image/png": {"width": 300}})),
                _code("df", _display({"text/html": "<table></table>", "text/plain": plain})),
                _code("debug()", _stream(3000), tags=["remove-output"]), widgets=widgets)
    parsed = load_bytes(nb.read_bytes())
    result = slim_notebook(parsed, 1000, steps=["never-shown"])
    never = [c for c in result.changes if c.step == "never-shown"]
    assert [(c.cell, c.output, c.mime_type) for c in never] == [
        (None, None, "application/vnd.jupyter.widget-state+json"), (2, 0, "text/plain"), (1, 0, "image/png"),
        (3, 0, "stream/stdout")]
    kept = parsed["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert sorted(kept) == ["layout", "shown", "style"]
    fig = parsed["cells"][1]["outputs"][0]
    assert "image/png" not in fig["data"] and "image/svg+xml" in fig["data"] and fig["metadata"] == {}
    short = parsed["cells"][2]["outputs"][0]["data"]["text/plain"]
    assert short.startswith("row 0\n") and short.endswith("lines cut by nbmedic slim (Jupyter shows the text/html) ...")
    assert len(short) < 500
    assert parsed["cells"][3]["outputs"] == [] and parsed["cells"][3]["source"] == ["debug()"]
    assert result.after == len(encode_text(dumps(parsed)))


def test_repeated_images_keep_the_first_and_name_it(tmp_path: Path) -> None:
    png = _png(400, 300)
    nb = _write(tmp_path / "nb.ipynb", _code("a", _display({"image/png": png, "text/plain": "<Figure>"})),
                _code("b", _stream(2)), _code("c", _stream(1), _display({"image/png": png, "text/plain": "<Figure>"})))
    parsed = load_bytes(nb.read_bytes())
    result = slim_notebook(parsed, 1000, steps=["duplicate-images"])
    assert (result.changes[0].step, result.changes[0].cell, result.changes[0].output) == ("duplicate-images", 2, 1)
    assert parsed["cells"][0]["outputs"][0]["data"]["image/png"] == png
    repeat = parsed["cells"][2]["outputs"][1]
    assert repeat["data"] == {"text/plain": "[image/png: the same image as cell 0, output 0; this repeat was "
                                            "removed by nbmedic slim]"}


def test_long_streams_are_cut_to_head_and_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(12_000))
    cut = cut_text(text)
    assert cut is not None
    lines = cut[0].splitlines()
    assert lines[:2] == ["line 0", "line 1"] and lines[-1] == "line 11999"
    assert lines[50] == "... 11,900 lines cut by nbmedic slim ..." and len(lines) == 101
    assert cut_text(cut[0]) is None  # a second run leaves it
    assert cut_text("short\n") is None


def test_large_images_are_downscaled_and_keep_their_display_size(tmp_path: Path) -> None:
    nb = _write(tmp_path / "nb.ipynb", _code("show()", _display({"image/png": _png(2000, 1500, photo=True),
                                                                 "text/plain": "<Figure>"})))
    parsed = load_bytes(nb.read_bytes())
    result = slim_notebook(parsed, 1000, steps=["images"])
    change = next(c for c in result.changes if c.step == "images")
    assert change.detail.startswith("2000x1500 -> ") and change.detail.endswith(" PNG")
    out = parsed["cells"][0]["outputs"][0]
    img = Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"])))
    assert img.format == "PNG" and img.width * img.height <= 1_500_000
    assert abs(img.width / img.height - 2000 / 1500) < 0.01
    assert out["metadata"]["image/png"] == {"width": 2000, "height": 1500}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "RGB+transparency"])
def test_lossless_reencoding_keeps_every_pixel(mode: str) -> None:
    """PNGs under the pixel budget but large in bytes are re-encoded (by slim's own Average-filter writer for
    L, RGB and RGBA; by Pillow otherwise): the pixels, the mode and a transparent colour are kept."""
    ramp = Image.linear_gradient("L").resize((900, 600))
    smooth = Image.merge("RGB", [ramp, ramp.rotate(90, expand=False), ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    img = Image.blend(smooth, Image.effect_noise((900, 600), 40).convert("RGB"), 0.2).convert(mode.split("+")[0])
    if mode in ("RGBA", "LA"):
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0, **({"transparency": (0, 0, 0)} if "transparency" in mode else {}))
    enc = images.reencode("image/png", base64.b64encode(buf.getvalue()).decode(), lossy=False)
    assert enc is not None and enc.mime == "image/png" and enc.pixels == img.size
    back = Image.open(io.BytesIO(base64.b64decode(enc.data)))
    assert back.format == "PNG" and back.mode == img.mode and back.tobytes() == img.tobytes()
    assert back.info.get("transparency") == ((0, 0, 0) if "transparency" in mode else None)
    assert len(base64.b64decode(enc.data)) <= 0.9 * len(buf.getvalue())


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_downscaled(tmp_path: Path) -> None:
    photo = Image.effect_noise((3000, 2000), 30).convert("RGB")
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=95)
    data = {"image/jpeg": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"}
    nb = _write(tmp_path / "nb.ipynb", _code("show()", _display(data)))
    parsed = load_bytes(nb.read_bytes())
    result = slim_notebook(parsed, 1000, steps=["images"])
    assert [c.detail for c in result.changes] == [f"3000x2000 -> 1500x1000 JPEG quality {images.JPEG_QUALITY}"]
    out = parsed["cells"][0]["outputs"][0]
    img = Image.open(io.BytesIO(base64.b64decode(out["data"]["image/jpeg"])))
    assert img.format == "JPEG" and img.size == (1500, 1000)
    assert out["metadata"]["image/jpeg"] == {"width": 3000, "height": 2000}


def test_lossy_allows_jpeg(tmp_path: Path) -> None:
    nb = _write(tmp_path / "nb.ipynb", _code("show()", _display({"image/png": _png(900, 700, photo=True),
                                                                 "text/plain": "<Figure>"})))
    parsed = load_bytes(nb.read_bytes())
    assert not any(c.step == "images" for c in slim_notebook(load_bytes(nb.read_bytes()), 1000).changes[:-1])
    result = slim_notebook(parsed, 1000, lossy=True, steps=["images"])
    assert any(c.step == "images" and "JPEG" in c.detail for c in result.changes)
    data = parsed["cells"][0]["outputs"][0]["data"]
    assert "image/png" not in data and Image.open(io.BytesIO(base64.b64decode(data["image/jpeg"]))).format == "JPEG"


def test_without_pillow_images_are_skipped_with_a_note(run_cli: Cli, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _write(tmp_path / "nb.ipynb", _code("show()", _display({"image/png": _png(2000, 1500, photo=True)})))
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    _, report = _json(run_cli, str(nb), "--target", "100", "--dry-run")
    assert any("pip install 'nbmedic[slim]'" in n for n in report["notes"])
    assert [c["step"] for c in report["changes"]] == ["clear-outputs"]


def test_unmeetable_target_writes_the_smallest_result_and_exits_1(run_cli: Cli, tmp_path: Path) -> None:
    nb = _write(tmp_path / "nb.ipynb", _code("x = 1\n" * 50, _stream(300)), _code("y", _stream(5)))
    code, out, _ = run_cli("slim", str(nb), "--target", "200")
    assert code == 1 and "STILL OVER" in out
    after = _assert_sound(nb, tmp_path / "nb.slim.ipynb")
    assert all("".join(o["data"]["text/plain"]).startswith("[output cleared by nbmedic slim") for c in after["cells"]
               for o in c["outputs"])
    stamp = (tmp_path / "nb.slim.ipynb").stat().st_mtime_ns
    code, _, _ = run_cli("slim", str(tmp_path / "nb.slim.ipynb"), "-o", str(tmp_path / "nb.slim.ipynb"),
                         "--target", "200")
    assert code == 1 and (tmp_path / "nb.slim.ipynb").stat().st_mtime_ns == stamp  # nothing left to do


def test_a_result_no_smaller_than_a_compact_file_is_not_written(run_cli: Cli, tmp_path: Path) -> None:
    """A file written without Jupyter's indentation can be smaller than any slimmed result in Jupyter's
    layout: nothing is written, and the report says why."""
    cells = [_code("a = 1\n" * 30, _stream(10)) for _ in range(40)]
    nb = tmp_path / "compact.ipynb"
    data = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
                      separators=(",", ":")).encode()
    nb.write_bytes(data)
    code, report = _json(run_cli, str(nb), "--target", "1")
    assert code == 1 and report["status"] == "unchanged" and not report["written"]
    assert "in Jupyter's layout" in report["message"] and f"{len(data):,}" in report["message"]
    assert nb.read_bytes() == data and not (tmp_path / "compact.slim.ipynb").exists()


def test_running_size_is_exact_with_crlf_and_after_changes(small_nb: Path) -> None:
    parsed = load_bytes(small_nb.read_bytes())
    for newline in ("\n", "\r\n"):
        ledger = Ledger(parsed, newline)
        assert ledger.total == len(encode_text(dumps(parsed, newline)))
    result = slim_notebook(parsed, 2 * MiB, newline="\r\n")
    assert result.changes and result.after == len(encode_text(dumps(parsed, "\r\n")))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_running_size_is_exact_for_awkward_text(newline: str) -> None:
    """Texts are measured whole, not line by line: every way str.splitlines cuts, escapes, non-ASCII."""
    texts = ["", "no newline", "a\nb\n", "a\r\nb\rc\n\r", "\r", "tab\tquote\"back\\slash\x01\n", "v\x0bf\x0cg\x1ch\x1di\x1ej",
             "caf\u00e9\n\u2028x\u2029y\x85z\n", "\U0001f680 launch\n" * 3, "".join(f"line {i}\n" for i in range(500))]
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in texts]
    outputs += [{"output_type": "stream", "name": "stderr", "text": t.splitlines(True)} for t in texts]
    outputs += [_display({"text/plain": t, "text/html": t.splitlines(True), "image/svg+xml": t,
                          "application/javascript": t.splitlines(True), "application/json": {"t": t}}) for t in texts]
    outputs += [{"output_type": "stream", "name": "stdout", "text": ["a\n", 1]},  # not all strings: left as they are
                {"output_type": "display_data", "metadata": {}, "data": {"text/plain": ["a", None],
                                                                         "image/png": ["iVBOR", "w0KG\n"]}},
                {"output_type": "error",
                "ename": "E", "evalue": "x\ny", "traceback": ["a\nb", "c"]}]
    cells = [{"cell_type": "code", "execution_count": 1, "id": "c0", "metadata": {}, "outputs": outputs, "source": "x"},
             {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["\u00e9\r\n", "y"]}]
    parsed = json.loads(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    ledger = Ledger(parsed, newline)
    assert ledger.total == len(encode_text(dumps(parsed, newline)))
    for index in range(0, len(outputs), 3):
        ledger.replace(0, index, {"output_type": "stream", "name": "stdout", "text": texts[index % len(texts)][::-1]})
        ledger.remove(0, index + 1)
    ledger.finish()
    assert ledger.total == len(encode_text(dumps(parsed, newline)))


# --- writing, errors, configuration, output -----------------------------------------------------------------

def test_in_place_keeps_a_backup_and_a_second_run_changes_nothing(run_cli: Cli, tmp_path: Path) -> None:
    nb = _write(tmp_path / "nb.ipynb", _code("print()", _stream(5000)))
    original = nb.read_bytes()
    code, out, _ = run_cli("slim", str(nb), "--in-place", "--target", "20K")
    assert code == 0 and f"{nb} -> {nb}" in out
    assert (tmp_path / "nb.ipynb.bak").read_bytes() == original and nb.stat().st_size <= 20 * 1024
    _assert_sound(tmp_path / "nb.ipynb.bak", nb)
    stamps = [(p.stat().st_mtime_ns, p.read_bytes()) for p in (nb, tmp_path / "nb.ipynb.bak")]
    code, out, _ = run_cli("slim", str(nb), "--in-place", "--target", "20K")
    assert code == 0 and "nothing written" in out
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in (nb, tmp_path / "nb.ipynb.bak")] == stamps


def test_output_option_takes_one_notebook(run_cli: Cli, tmp_path: Path) -> None:
    a = _write(tmp_path / "a.ipynb", _code("1"))
    b = _write(tmp_path / "b.ipynb", _code("2"))
    code, out, err = run_cli("slim", str(a), str(b), "-o", str(tmp_path / "x.ipynb"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "-o/--output" in err


@pytest.mark.parametrize("name", ["truncated.ipynb", "html_page.ipynb"])
def test_not_a_notebook_is_one_line_and_left_as_it_was(run_cli: Cli, tmp_path: Path, name: str) -> None:
    nb = tmp_path / name
    shutil.copyfile(CLINIC / name, nb)
    before = nb.read_bytes(), nb.stat().st_mtime_ns
    code, out, err = run_cli("slim", str(nb), "--in-place", "--target", "10")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and str(nb) in err
    assert (nb.read_bytes(), nb.stat().st_mtime_ns) == before
    assert sorted(os.listdir(tmp_path)) == [name]


def test_target_comes_from_the_deployment_in_pyproject(run_cli: Cli, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.nbmedic]\ndeployment = "nginx"\n', encoding="utf-8")
    nb = _write(project / "nb.ipynb", _code("print()", _stream(80_000)))
    code, report = _json(run_cli, str(nb), "--dry-run")
    assert code == 0 and report["target"] == MiB and report["limit"] == "nginx client_max_body_size"
    other = tmp_path / "other.toml"
    other.write_text('[tool.nbmedic]\nsave_limit = "100K"\n', encoding="utf-8")
    code, report = _json(run_cli, str(nb), "--dry-run", "--config", str(other))
    assert report["target"] == 100 * 1024 and report["limit"] == "save_limit ([tool.nbmedic])"


def test_json_and_text_report_shape(run_cli: Cli, tmp_path: Path) -> None:
    nb = _write(tmp_path / "nb.ipynb", _code("print()", _stream(5000)), _code("again", _stream(4000)))
    code, out, _ = run_cli("slim", "--format", "json", str(nb), "--target", "40K", "--dry-run")
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] is True
    report = doc["slim"][0]
    assert set(report) == {"path", "status", "message", "output", "written", "size_before", "size_after", "target",
                           "limit", "met", "steps", "changes", "notes"}
    assert report["status"] == "slimmed" and report["met"] and not report["written"]
    assert report["steps"] == [{"step": "long-text", "saved": sum(c["saved"] for c in report["changes"]),
                                "outputs": len(report["changes"])}]
    assert set(report["changes"][0]) == {"cell", "output", "mime_type", "size", "step", "saved", "detail"}
    assert report["changes"][0]["mime_type"] == "stream/stdout"
    code, out, _ = run_cli("slim", str(nb), "--target", "40K", "--dry-run")
    assert "(dry run, would write" in out and "  plan:" in out and "cell 0 output 0" in out
    assert out.rstrip().endswith("1 would be slimmed, 0 unchanged, 0 over the target, 0 failed")
    assert not (tmp_path / "nb.slim.ipynb").exists()


# --- load_large: the reader of large notebooks ------------------------------------------------------------------

def _large_bytes(extra: str = "", *, newline: str = "\n", meta: dict[str, Any] | None = None) -> bytes:
    """A notebook just over ``LARGE_FILE`` bytes (a long log), with ``extra`` at the end of the log."""
    log = "".join(f"step {i}: loss={1 / (i + 1):.6f}\n" for i in range(LARGE_FILE // 24)) + extra
    nb = nbformat.v4.new_notebook(cells=[_code("train()", nbformat.v4.new_output("stream", name="stdout", text=log))])
    nb.metadata.update(meta or {})
    data = encode_text(dumps(nb, newline))
    assert len(data) >= LARGE_FILE
    return data


@pytest.mark.parametrize("extra, meta, newline", [
    ("", {"big": 2 ** 70, "small": -(2 ** 63), "ratio": 1e-05}, "\n"),  # integers beyond 64 bits stay exact
    ("caf\u00e9 \u00b0C\n", None, "\n"),  # Latin-1 only: one byte per character
    ("r\u00e9sum\u00e9 \u2014 \U0001f680 launch \u2028 \u2588\u2588\u258c\n", None, "\r\n"),  # escaped
    ("\u2588" * (MAX_ESCAPED + 1) + "\n", None, "\n"),  # too many to escape: orjson reads it
    ("C:\\\u2014\n", None, "\n"),  # an escaped backslash before a wide character: orjson reads it
], ids=["big-integers", "latin-1", "wide-crlf", "many-wide", "backslash-wide"])
def test_load_large_reads_what_load_bytes_reads(tmp_path: Path, extra: str, meta: dict[str, Any] | None,
                                                newline: str) -> None:
    data = _large_bytes(extra, newline=newline, meta=meta)
    path = tmp_path / "large.ipynb"
    path.write_bytes(data)
    nb, size, found = load_large(path)
    assert (nb, size, found) == (load_bytes(data), len(data), detect_newline(data))
    assert found == newline and "".join(nb["cells"][0]["outputs"][0]["text"]).endswith(extra)
    if meta:
        assert type(nb["metadata"]["big"]) is int and nb["metadata"]["big"] == 2 ** 70


def _broken(kind: str) -> bytes:
    data = _large_bytes("marker\n")
    if kind == "bom":
        return BOM + data
    if kind == "encoding":  # a Latin-1 byte in the middle of the log
        return data.replace(b"marker", b"caf\xe9", 1)
    if kind == "truncated":
        return data[: len(data) * 2 // 3]
    if kind == "not-object":
        return b"[" + data + b"]"
    return data.replace(b"marker", "\\\u2014".encode(), 1)  # syntax: a backslash escaping a non-ASCII character


@pytest.mark.parametrize("kind", ["bom", "encoding", "truncated", "not-object", "syntax"])
def test_load_large_errors_are_the_one_line_errors_of_load_bytes(run_cli: Cli, tmp_path: Path, kind: str) -> None:
    data = _broken(kind)
    path = tmp_path / "broken.ipynb"
    path.write_bytes(data)
    with pytest.raises(NotebookReadError) as large:
        load_large(path)
    with pytest.raises(NotebookReadError) as small:
        load_bytes(data)
    assert large.value.kind == small.value.kind == kind
    assert (str(large.value), large.value.line, large.value.column) == (
        str(small.value), small.value.line, small.value.column)
    code, out, err = run_cli("slim", str(path), "--target", "1K")
    assert code == 2 and out == "" and err.strip() == f"nbmedic: error: {path}: not a notebook: {small.value} " \
        "(try `nbmedic repair`)"
    assert path.read_bytes() == data
