"""nbmedic.notebook.io: reader diagnosis on realistic broken files, canonical and atomic writing."""

from __future__ import annotations

import copy
import gzip
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbmedic.notebook import (
    NotebookReadError,
    atomic_write_bytes,
    canonical,
    conflict_markers,
    detect_newline,
    dumps,
    encode_text,
    load_bytes,
    read_notebook,
    write_notebook,
)
from nbmedic.notebook.io import current_umask
from tests import nbfactory as f

CORPUS = Path(__file__).parent / "corpus"


def jupyter_bytes(nb: Any) -> bytes:
    """The bytes Jupyter writes for ``nb`` (nbformat.write), i.e. a real notebook file."""
    buf = io.StringIO()
    nbformat.write(nb, buf)
    return buf.getvalue().encode("utf-8")


def sample() -> Any:
    return f.notebook(
        f.md("# Title\n\nSome *text* with ünïcödé"),
        f.code("import math\nprint(math.pi)", count=1, outputs=[f.stream("3.14159\n")]),
        f.code("x = {'a': 1}\nx", count=2, outputs=[f.result({"text/plain": "{'a': 1}"}, 2)]),
    )


def nbformat_text(text: str) -> str:
    logging.getLogger("traitlets").setLevel(logging.CRITICAL)
    return str(nbformat.writes(nbformat.reads(text, as_version=nbformat.NO_CONVERT))) + "\n"


def read_error(data: bytes) -> NotebookReadError:
    with pytest.raises(NotebookReadError) as info:
        load_bytes(data)
    return info.value


# --- reading valid files --------------------------------------------------------------------------

def test_load_bytes_returns_the_json_dict() -> None:
    data = jupyter_bytes(sample())
    assert load_bytes(data) == json.loads(data)


@pytest.mark.parametrize("literal, value", [
    (b"18446744073709551616", 2**64),  # beyond 64 bits: orjson would make it a float
    (b"-9223372036854775809", -(2**63) - 1),
    (b"123456789012345678901234567890", 123456789012345678901234567890),
    (b"9223372036854775807", 2**63 - 1),
])
def test_huge_integers_stay_integers(literal: bytes, value: int) -> None:
    data = b'{"cells": [], "metadata": {"big": ' + literal + b'}, "nbformat": 4, "nbformat_minor": 5}'
    got = load_bytes(data)["metadata"]["big"]
    assert type(got) is int and got == value
    assert f'"big": {value}' in dumps(load_bytes(data))


def test_long_digit_runs_inside_strings_do_not_change_the_result() -> None:
    data = b'{"cells": [], "metadata": {"s": "x: 12345678901234567890123"}, "nbformat": 4, "nbformat_minor": 5}'
    assert load_bytes(data) == json.loads(data)


def test_nan_infinity_and_lone_surrogates_read_like_python_json() -> None:
    data = b'{"metadata": {"v": [NaN, Infinity, -Infinity, 1e400], "s": "\\ud800"}, "nbformat": 4}'
    nb = load_bytes(data)
    assert str(nb["metadata"]["v"]) == "[nan, inf, -inf, inf]"
    assert nb["metadata"]["s"] == "\ud800"


def test_read_notebook_returns_dict_and_bytes(tmp_path: Path) -> None:
    path = f.write(tmp_path / "a.ipynb", sample())
    nb, data = read_notebook(path)
    assert data == path.read_bytes()
    assert nb["cells"][1]["outputs"][0]["text"] == ["3.14159\n"]
    with pytest.raises(FileNotFoundError):
        read_notebook(tmp_path / "missing.ipynb")


# --- reader diagnosis -----------------------------------------------------------------------------

@pytest.mark.parametrize("data, size", [(b"", 0), (b"\n\n  \n", 5), (b"\r\n", 2)])
def test_empty_and_whitespace(data: bytes, size: int) -> None:
    err = read_error(data)
    assert err.kind == "empty"
    assert err.evidence["size"] == size
    assert ("0 bytes" in err.message) == (size == 0)


def test_utf8_bom() -> None:
    err = read_error(b"\xef\xbb\xbf" + jupyter_bytes(sample()))  # as Windows Notepad saves it
    assert (err.kind, err.line, err.column) == ("bom", 1, 1)
    assert "byte-order mark" in err.message


def test_html_page_saved_as_notebook() -> None:
    page = (b"\n\n\n<!DOCTYPE html>\n<html lang=\"en\" data-color-mode=\"auto\">\n  <head>\n"
            b"    <meta charset=\"utf-8\">\n    <title>analysis.ipynb at main \xc2\xb7 someone/project \xc2\xb7 GitHub"
            b"</title>\n  </head>\n  <body>\n    <div id=\"repo\">{\"cells\": []}</div>\n  </body>\n</html>\n")
    err = read_error(page)
    assert err.kind == "html"
    assert err.evidence["title"] == "analysis.ipynb at main \u00b7 someone/project \u00b7 GitHub"
    assert "HTML page" in err.message


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00")
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def _zip_of_notebook() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("analysis.ipynb", jupyter_bytes(sample()))
    return buf.getvalue()


@pytest.mark.parametrize("data, what", [
    (_png(), "PNG image"),
    (_zip_of_notebook(), "ZIP archive"),
    (gzip.compress(jupyter_bytes(sample())), "gzip"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
    (b"\x00\x01\x02\x03" * 20, "NUL bytes"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 12345\n", "git lfs pull"),
])
def test_binary_files(data: bytes, what: str) -> None:
    err = read_error(data)
    assert err.kind == "binary"
    assert what in err.message
    assert err.evidence["first_bytes"] == data[:16].hex(" ")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files(codec: str) -> None:
    data = jupyter_bytes(sample()).decode("utf-8").encode(codec)
    err = read_error(data)
    assert err.kind == "encoding"
    assert err.evidence["encoding"].startswith(codec[:6].upper())


def test_invalid_utf8_says_where() -> None:
    text = jupyter_bytes(sample()).decode("utf-8")
    data = text.encode("utf-8").replace("ünïcödé".encode(), "café".encode("latin-1"))  # saved as Latin-1
    err = read_error(data)
    assert err.kind == "encoding"
    line_no = next(i for i, line in enumerate(data.split(b"\n"), 1) if b"caf\xe9" in line)
    line = data.split(b"\n")[line_no - 1]
    assert err.line == line_no
    assert err.column == len(line[: line.index(b"\xe9")].decode("utf-8")) + 1
    assert err.evidence["bytes"].startswith("e9")
    assert "caf" in err.evidence["near"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
                    "-c", "commit.gpgsign=false", *args], cwd=cwd, check=False, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_conflict_markers_from_a_real_merge(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    path = repo / "nb.ipynb"
    nb = f.notebook(f.code("a = 1", count=1), f.md("middle"), f.code("b = 2", count=2))
    f.write(path, nb)
    _git(repo, "init", "-q")
    _git(repo, "add", "nb.ipynb")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "checkout", "-qb", "other")
    mine = copy.deepcopy(nb)
    mine.cells[0].source, mine.cells[2].source = "a = 10", "b = 20"
    f.write(path, mine)
    _git(repo, "commit", "-qam", "other")
    _git(repo, "checkout", "-q", "main")
    theirs = copy.deepcopy(nb)
    theirs.cells[0].source, theirs.cells[2].source = "a = 100", "b = 200"
    f.write(path, theirs)
    _git(repo, "commit", "-qam", "main")
    _git(repo, "merge", "other")
    data = path.read_bytes()
    starts = [i for i, line in enumerate(data.split(b"\n"), 1) if line.startswith(b"<<<<<<<")]
    assert len(starts) == 2, data.decode()  # two separate conflicts (git really made them)
    err = read_error(data)
    assert err.kind == "conflict"
    assert err.evidence["conflicts"] == 2
    assert err.line == starts[0]
    markers = conflict_markers(data)
    assert [n for n, m in markers if m == "<<<<<<<"] == starts
    assert err.evidence["marker_lines"] == [n for n, _ in markers]
    assert len(markers) == 6


def test_conflict_markers_ignores_lookalikes() -> None:
    data = b'{\n "a": "<<<<<<< not at line start",\n=======x\n<<<<<<< HEAD\r\n=======\n>>>>>>> b\n'
    assert conflict_markers(data) == [(4, "<<<<<<<"), (5, "======="), (6, ">>>>>>>")]


@pytest.mark.parametrize("cut_after", [
    b'"source": [\n    "import ma',       # inside a string
    b'"execution_count": 1',             # after a value
    b'"execution_count": ',              # after a key
    b'"nbformat_minor": 5\n}',           # only the final newline missing is fine: not a cut
    b'"outputs": [\n    {\n',            # after an opening brace
    b'"execution_count": 1,\n',          # after a comma
    b'{\n "cells": [\n  {\n   "cell_type": "mar',
    b'"name": "python3"\n  }',
])
def test_truncated_files_say_where_they_end(cut_after: bytes) -> None:
    full = jupyter_bytes(sample())
    cut = full[: full.index(cut_after) + len(cut_after)]
    if cut.rstrip() == full.rstrip():
        assert load_bytes(cut) == load_bytes(full)
        return
    err = read_error(cut)
    assert err.kind == "truncated", err
    lines = cut.rstrip().split(b"\n")
    assert err.line == len(lines)
    assert err.column == len(lines[-1].decode("utf-8")) + 1
    assert err.evidence["size"] == len(cut)
    assert f"line {err.line}" in err.message


@pytest.mark.parametrize("truncate_in", ["tru", "nul", "-", "-1.5e", "12.", '"ab\\u00', '"ab\\'])
def test_truncated_inside_a_token(truncate_in: str) -> None:
    doc = b'{"cells": [], "metadata": {"v": [1, ' + truncate_in.encode()
    assert read_error(doc).kind == "truncated"


@pytest.mark.parametrize("mistake", ["tru]}}", "nul, 1]}}", '"ab\\u00zz"]}}', "1.5.2]}}", "True]}}"])
def test_the_same_tokens_mid_file_are_syntax_errors(mistake: str) -> None:
    doc = b'{"cells": [], "metadata": {"v": [1, ' + mistake.encode()
    assert read_error(doc).kind == "syntax"


def test_trailing_comma_from_a_hand_edit() -> None:
    text = jupyter_bytes(sample()).decode("utf-8")
    broken = text.replace('"name": "python3"\n', '"name": "python3",\n', 1)
    err = read_error(broken.encode())
    assert err.kind == "syntax"
    lines = broken.split("\n")
    bad_line = next(i for i, line in enumerate(lines, 1) if line.endswith('"python3",')) + 1  # the '}' after it
    assert err.line == bad_line
    assert err.column == lines[bad_line - 1].index("}") + 1
    assert "}" in err.evidence["near"]
    assert f"line {bad_line}" in err.message


def test_missing_comma_between_cells() -> None:
    text = jupyter_bytes(sample()).decode("utf-8")
    first = text.index("\n  },\n  {")
    broken = text[:first] + "\n  }\n  {" + text[first + len("\n  },\n  {"):]
    err = read_error(broken.encode())
    assert err.kind == "syntax"
    assert err.line == broken[: first].count("\n") + 3
    assert err.column == 3
    assert "delimiter" in err.message


def test_garbage_after_the_notebook() -> None:
    data = jupyter_bytes(sample()) + b"}\n"
    err = read_error(data)
    assert err.kind == "syntax"
    assert err.line == data.count(b"\n")


@pytest.mark.parametrize("data, what", [(b"[]", "an array"), (b'"notebook"\n', "a string"), (b"null", "null"),
                                        (b"42", "a number"), (b"[NaN]", "an array")])
def test_json_that_is_not_an_object(data: bytes, what: str) -> None:
    err = read_error(data)
    assert err.kind == "not-object"
    assert what in err.message


def test_read_error_is_a_readable_exception() -> None:
    err = read_error(b"")
    assert isinstance(err, Exception)
    assert str(err) == err.message
    with pytest.raises(AttributeError):
        err.kind = "syntax"  # type: ignore[misc]


# --- canonical writing ----------------------------------------------------------------------------

def test_dumps_of_a_jupyter_file_is_the_file() -> None:
    data = jupyter_bytes(sample())
    assert dumps(load_bytes(data)).encode() == data


def test_dumps_resplits_lines_and_drops_transient_keys() -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "x", "metadata": {"trusted": True},
                     "outputs": [{"name": "stdout", "output_type": "stream", "text": ["a\nb", "c\n"]}],
                     "source": "x = 1\ny = 2"}],
          "metadata": {"signature": "sha256:1", "orig_nbformat": 3, "kernelspec": {}},
          "nbformat": 4, "nbformat_minor": 5}
    before = copy.deepcopy(nb)
    out = json.loads(dumps(nb))
    assert nb == before  # input untouched
    assert canonical(nb)["cells"][0]["source"] == ["x = 1\n", "y = 2"]
    assert out["metadata"] == {"kernelspec": {}}
    assert out["cells"][0]["metadata"] == {}
    assert out["cells"][0]["outputs"][0]["text"] == ["a\n", "bc\n"]


@pytest.mark.parametrize("value", [
    [], {}, [[]], {"a": {}}, 1e-05, 1e16, -0.0, 0.1, 5e-324, 2**64, float("nan"), float("-inf"),
    "\x00\x1f\x7f\u2028\u2029", "\ud800", {"a\": 1.5": "b\": 2.5"}, {"1": 1, "01": 2, "-1": 3, "1e5": 1.0},
    {"\uffff": 1, "\U0001f600": 2, "B": 3, "a": 4}, [True, False, None],
])
def test_dumps_edge_values_match_nbformat(value: Any) -> None:
    nb = {"cells": [{"cell_type": "markdown", "id": "m", "metadata": {"v": value}, "source": "x"}],
          "metadata": {"v": value}, "nbformat": 4, "nbformat_minor": 5}
    text = json.dumps(nb)  # ASCII escapes: a lone surrogate can only be stored that way
    assert dumps(load_bytes(text.encode())) == nbformat_text(text)
    assert dumps(nb) == nbformat_text(text)


def test_deep_nesting_falls_back_to_the_standard_encoder() -> None:
    deep: Any = "leaf"
    for _ in range(400):  # deeper than orjson's limit of 255
        deep = [deep]
    nb = {"cells": [], "metadata": {"deep": deep}, "nbformat": 4, "nbformat_minor": 5}
    text = json.dumps(nb)
    assert dumps(load_bytes(text.encode())) == nbformat_text(text)


def test_nbformat_3_is_written_as_nbformat_writes_it() -> None:
    path = CORPUS / "nbformat" / "test3.ipynb"
    text = path.read_text(encoding="utf-8")
    assert dumps(load_bytes(text.encode())) == nbformat_text(text)


def test_dumps_tolerates_what_nbformat_cannot_write() -> None:
    nb = {"cells": [1, "x", None, {"cell_type": "code", "source": ["a", 1]}, {"source": 3}], "nbformat": 4}
    out = json.loads(dumps(nb))
    assert out["cells"][:3] == [1, "x", None]
    assert out["cells"][3]["source"] == ["a", 1]


def test_crlf_is_kept() -> None:
    data = jupyter_bytes(sample()).replace(b"\n", b"\r\n")
    newline = detect_newline(data)
    assert newline == "\r\n"
    assert dumps(load_bytes(data), newline).encode() == data


@pytest.mark.parametrize("data, newline", [(b"{\r\n}", "\r\n"), (b"{\n}", "\n"), (b"{}", "\n"), (b"", "\n"),
                                           (b"\n\r\n", "\n")])
def test_detect_newline(data: bytes, newline: str) -> None:
    assert detect_newline(data) == newline


# --- writing files --------------------------------------------------------------------------------

def test_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    path = f.write(tmp_path / "a.ipynb", sample())
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    inode = path.stat().st_ino
    nb, _ = read_notebook(path)
    assert write_notebook(path, nb) is False
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert path.stat().st_ino == inode


def test_changed_file_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    path = f.write(tmp_path / "a.ipynb", sample())
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    nb, _data = read_notebook(path)
    nb["cells"][0]["source"] = ["changed"]
    assert write_notebook(path, nb) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_mtime_ns != 1_000_000_000
    assert load_bytes(path.read_bytes())["cells"][0]["source"] == ["changed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb"]  # no temporary file left


def test_crlf_file_round_trips_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "win.ipynb"
    path.write_bytes(jupyter_bytes(sample()).replace(b"\n", b"\r\n"))
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    nb, data = read_notebook(path)
    assert write_notebook(path, nb, detect_newline(data)) is False
    assert path.stat().st_mtime_ns == 2_000_000_000


def test_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.ipynb"
    nb = sample()
    old = os.umask(0o027)
    try:
        assert write_notebook(path, nb) is True
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes() == jupyter_bytes(nb)


def test_symlink_is_followed_not_replaced(tmp_path: Path) -> None:
    real = f.write(tmp_path / "real.ipynb", sample())
    link = tmp_path / "link.ipynb"
    link.symlink_to(real.name)
    assert atomic_write_bytes(link, b"{}\n") is True
    assert link.is_symlink()
    assert real.read_bytes() == b"{}\n"


def test_lone_surrogate_is_written_as_an_escape(tmp_path: Path) -> None:
    nb = sample()
    nb.cells[0].source = "bad \ud83d half"
    path = tmp_path / "s.ipynb"
    write_notebook(path, nb)
    data = path.read_bytes()
    assert b"\\ud83d" in data
    data.decode("utf-8")  # valid UTF-8
    assert load_bytes(data)["cells"][0]["source"] == ["bad \ud83d half"]
    assert encode_text("x") == b"x"


def test_failed_write_leaves_the_original_intact(tmp_path: Path) -> None:
    path = f.write(tmp_path / "a.ipynb", sample())
    original = path.read_bytes()
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb"]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_disk_full_during_write_leaves_the_original_intact(tmp_path: Path) -> None:
    """A real write failure (file size limit, like a full disk): the original stays, no temp file."""
    path = f.write(tmp_path / "a.ipynb", sample())
    original = path.read_bytes()
    script = (
        "import resource, signal, sys\n"
        "from nbmedic.notebook.io import atomic_write_bytes\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    atomic_write_bytes(sys.argv[1], b'{' + b' ' * 100000 + b'}')\n"
        "except OSError as exc:\n"
        "    print('errno', exc.errno)\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("errno 27")  # EFBIG
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb"]


def test_a_write_follows_the_umask_without_ever_changing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.umask`` can only be read by setting it, for an instant, for every thread: a file another thread
    of a batch created in that instant got the wrong mode.  The umask is read from ``/proc`` instead."""
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027

        def no_umask(_mask: int) -> int:
            raise AssertionError("os.umask was called")

        monkeypatch.setattr(os, "umask", no_umask)
        target = tmp_path / "a.ipynb"
        assert atomic_write_bytes(target, b"{}")
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)
