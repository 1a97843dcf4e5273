"""Fuzzing the version-control entry points: diff (and --textconv), merge (and --driver), git's filter process.

The commands run in-process (``tests.fuzzing.run_main``); the filter process is ``run_filter_process`` on
memory streams, fed whole sessions of git's long-running filter protocol: well framed, and with the
framing broken (bad lengths, a missing flush, packets cut short, oversized packets, junk).
"""

from __future__ import annotations

import copy
import io
import sys
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nbmedic.notebook.io import NotebookReadError
from nbmedic.vcs.filter import MAX_PAYLOAD, run_filter_process
from nbmedic.vcs.strip import StripOptions, strip_bytes
from tests.fuzzing import (
    FUZZ_MARKS,
    Gen,
    assert_no_crash,
    assert_one_line,
    broken_notebooks,
    fuzz_settings,
    is_notebook,
    notebook_files,
    reads_as_v4,
    run_main,
    scratch,
    seeds,
    snapshot,
)
from tests.test_git_filter import content_pkts, pkt, read_all, text_pkts

pytestmark = FUZZ_MARKS


def _edit(g: Gen, nb: dict[str, Any]) -> dict[str, Any]:
    """One side's version of ``nb``: sources changed, cells added, deleted or moved, outputs re-run."""
    nb = copy.deepcopy(nb)
    cells = nb["cells"]
    for _ in range(g.r.randint(0, 4)):
        op = g.r.choice(["source", "line", "insert", "delete", "move", "outputs", "metadata", "count"])
        if op == "insert" or not cells:
            cells.insert(g.r.randint(0, len(cells)), g.cell(len(cells) + 100, nb["nbformat_minor"] >= 5))
            continue
        i = g.r.randrange(len(cells))
        cell = cells[i]
        if op == "source":
            cell["source"] = g.lines_or_text()
        elif op == "line":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = text + "\n" + g.text(False)
        elif op == "delete":
            del cells[i]
        elif op == "move":
            cells.insert(g.r.randint(0, len(cells) - 1), cells.pop(i))
        elif op == "outputs" and cell["cell_type"] == "code":
            cell["outputs"] = [g.output() for _ in range(g.r.randint(0, 2))]
        elif op == "count" and cell["cell_type"] == "code":
            cell["execution_count"] = g.r.choice([None, 1, 7])
        else:
            cell["metadata"][g.text(False)] = g.json_value()
    if g.chance(0.2):
        nb["metadata"][g.r.choice(["kernelspec", "x", "language_info"])] = g.json_value()
    return nb


@st.composite
def three_versions(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """BASE, LOCAL, REMOTE: two edits of one notebook; now and then an empty base (add/add) or a broken file."""
    g = Gen(draw(seeds))
    base = g.v4()
    files = [g.serialize(base), g.serialize(_edit(g, base)), g.serialize(_edit(g, base))]
    roll = draw(st.integers(0, 9))
    if roll == 0:
        files[0] = g.r.choice([b"", b"\n"])
    elif roll in (1, 2):
        files[draw(st.integers(0, 2))] = draw(broken_notebooks())
    elif roll == 3:
        files[draw(st.integers(0, 2))] = draw(notebook_files())
    return files[0], files[1], files[2]


def _accepted(data: bytes, *, base: bool = False) -> bool:
    """What merge and diff must refuse: bytes that are not a notebook (an empty base is git's add/add)."""
    return (base and not data.strip()) or is_notebook(data)


ID_X = b'{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "b", "id": "x"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
ID_LIST = b'{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "a", "id": [null]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


# --- diff -------------------------------------------------------------------------------------------------

@fuzz_settings(ci=800, nightly=50_000)
@given(pair=st.one_of(three_versions().map(lambda t: (t[1], t[2])), st.tuples(notebook_files(), notebook_files())),
       ignore=st.sampled_from([[], ["--ignore-outputs"], ["--ignore-metadata"]]),
       color=st.sampled_from(["never", "always"]))
@example(pair=(ID_X, ID_LIST), ignore=[], color="never")
def test_diff(pair: tuple[bytes, bytes], ignore: list[str], color: str) -> None:
    a, b = pair
    with scratch() as folder:
        (folder / "a.ipynb").write_bytes(a)
        (folder / "b.ipynb").write_bytes(b)
        result = run_main(["diff", "--color", color, *ignore, str(folder / "a.ipynb"), str(folder / "b.ipynb")])
        assert_no_crash(result, {0, 1, 2})
        assert snapshot(folder) == {"a.ipynb": a, "b.ipynb": b}
    if not (is_notebook(a) and is_notebook(b)):
        assert result.code == 2
    if result.code == 2:  # the line names the file (not a notebook, or nbformat 3)
        line = assert_one_line(result, "nbmedic: error: ")
        assert "a.ipynb" in line or "b.ipynb" in line, line
        assert result.out == b""
    else:
        assert result.err == ""
        assert (result.code == 1) == bool(result.out)
        result.out.decode("utf-8")


FLOAT_TRACEBACK = (b'{"cells": [{"cell_type": "code", "execution_count": null, "metadata": {}, "source": "", "outputs": '
                   b'[{"output_type": "error", "ename": "", "evalue": "", "traceback": 3.0}]}], "metadata": {}, '
                   b'"nbformat": 4, "nbformat_minor": 1}')


@fuzz_settings(ci=800, nightly=50_000)
@given(data=notebook_files())
@example(data=FLOAT_TRACEBACK)
def test_diff_textconv(data: bytes) -> None:
    with scratch() as folder:
        (folder / "nb.ipynb").write_bytes(data)
        result = run_main(["diff", "--textconv", str(folder / "nb.ipynb")])
        assert_no_crash(result, {0})
        assert snapshot(folder) == {"nb.ipynb": data}
    if result.err:
        assert_one_line(result, "nb.ipynb", "not a notebook")
        assert result.out == data  # shown as it is: git diff never fails because of it
    else:
        assert is_notebook(data)
        result.out.decode("utf-8")
    if not is_notebook(data):
        assert result.err


# --- merge -----------------------------------------------------------------------------------------------

@fuzz_settings(ci=800, nightly=50_000)
@given(versions=three_versions(), strategy=st.sampled_from(["inline", "inline", "local", "remote", "union"]))
def test_merge(versions: tuple[bytes, bytes, bytes], strategy: str) -> None:
    base, local, remote = versions
    with scratch() as folder:
        names = ["base.ipynb", "local.ipynb", "remote.ipynb"]
        for name, data in zip(names, versions):
            (folder / name).write_bytes(data)
        out = folder / "out.ipynb"
        result = run_main(["merge", "--strategy", strategy, *(str(folder / n) for n in names), "-o", str(out)])
        assert_no_crash(result, {0, 1, 2})
        after = snapshot(folder)
    merged = after.pop("out.ipynb", None)
    assert after == dict(zip(names, versions))  # the inputs are never touched
    if not (_accepted(base, base=True) and _accepted(local) and _accepted(remote)):
        assert result.code == 2
    if result.code == 2:
        assert_one_line(result, "is not a notebook")
        assert merged is None
    else:
        assert merged is not None
        reads_as_v4(merged)


@fuzz_settings(ci=800, nightly=50_000)
@given(versions=three_versions())
@example(versions=(b"", b"[]", b"{}"))
def test_merge_driver(versions: tuple[bytes, bytes, bytes]) -> None:
    """As git calls it: ``nbmedic merge --driver %O %A %B %L %P``; the result replaces %A."""
    base, local, remote = versions
    with scratch() as folder:
        paths = [folder / n for n in (".merge_file_O", ".merge_file_A", ".merge_file_B")]
        for path, data in zip(paths, versions):
            path.write_bytes(data)
        result = run_main(["merge", "--driver", *map(str, paths), "7", "notebooks/analysis.ipynb"])
        assert_no_crash(result, {0, 1})
        after = snapshot(folder)
    assert after.keys() == {".merge_file_O", ".merge_file_A", ".merge_file_B"}
    assert after[".merge_file_O"] == base and after[".merge_file_B"] == remote
    refused = "left the local version as it was" in result.err
    if not (_accepted(base, base=True) and _accepted(local) and _accepted(remote)):
        assert refused  # also for JSON objects that are not notebooks (checked by merge itself)
    if refused:
        assert result.code == 1
        assert_one_line(result, "notebooks/analysis.ipynb", "is not a notebook")
        assert after[".merge_file_A"] == local
    else:
        reads_as_v4(after[".merge_file_A"])


# --- git's filter process -----------------------------------------------------------------------------------

HANDSHAKE = text_pkts("git-filter-client", "version=2") + text_pkts("capability=clean", "capability=smudge",
                                                                    "capability=delay")

BREAKS = ["none", "none", "none", "length", "hex", "flush", "cut", "huge", "tiny", "junk", "handshake", "drop"]


def _boundaries(stream: bytes) -> list[int]:
    """Where each packet of a well-framed stream starts."""
    starts, i = [], 0
    while i + 4 <= len(stream):
        starts.append(i)
        size = int(stream[i: i + 4], 16)
        i += size or 4
    return starts


@st.composite
def sessions(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]], str]:
    """(what git sends, the files it asks for, how the framing was broken)."""
    files = [(draw(st.sampled_from(["clean", "clean", "smudge", "unknown"])), draw(notebook_files()))
             for _ in range(draw(st.integers(0, 3)))]
    g = Gen(draw(seeds))
    if g.chance(0.05) and files:  # a file over one packet: framed in several
        files[0] = ("clean", files[0][1] + b" " * (MAX_PAYLOAD + g.r.randint(-3, 3)))
    stream = HANDSHAKE + b"".join(text_pkts(f"command={cmd}", f"pathname=nb{i}.ipynb") + content_pkts(data)
                                  for i, (cmd, data) in enumerate(files))
    how = draw(st.sampled_from(BREAKS))
    pos = g.r.randint(0, len(stream))
    if how == "length":  # a header that says more or less than follows
        at = g.r.choice(_boundaries(stream) or [0])
        stream = stream[:at] + b"%04x" % g.r.randint(0, 0xFFFF) + stream[at + 4:]
    elif how == "hex":
        stream = stream[:pos] + g.r.choice([b"zzzz", b"00g0", b"-001", b" 12 ", b"0x10"]) + stream[pos:]
    elif how == "flush":  # a flush packet missing
        flushes = [i for i in _boundaries(stream) if stream[i: i + 4] == b"0000"]
        if flushes:
            at = g.r.choice(flushes)
            stream = stream[:at] + stream[at + 4:]
    elif how == "cut":
        stream = stream[:pos]
    elif how == "huge":  # a packet longer than git may send, announced or sent
        stream = stream[:pos] + g.r.choice([b"fff0", b"ffff", b"fff5"]) + b"x" * g.r.choice([0, 10, 70000])
    elif how == "tiny":  # lengths 1-3: not valid packets (git's delim and response-end are protocol v2 only)
        stream = stream[:pos] + g.r.choice([b"0001", b"0002", b"0003", b"0004"]) + stream[pos:]
    elif how == "junk":
        stream = stream[:pos] + bytes(g.r.randrange(256) for _ in range(g.r.randint(1, 40))) + stream[pos:]
    elif how == "handshake":
        stream = g.r.choice([text_pkts("git-filter-client", "version=3"), text_pkts("git-filter-server"), b"",
                             text_pkts()]) + stream[len(HANDSHAKE):]
    elif how == "drop":  # the pipe closes at a packet boundary
        stream = stream[: g.r.choice([0, len(HANDSHAKE), len(stream)])]
    return stream, files, how


@fuzz_settings(ci=1500)
@given(session=sessions())
def test_filter_process(session: tuple[bytes, list[tuple[str, bytes]], str]) -> None:
    stream, files, how = session
    out, err = io.BytesIO(), io.StringIO()
    with scratch() as root:
        saved, sys.stderr = sys.stderr, err
        try:
            code = run_filter_process(root, stdin=io.BytesIO(stream), stdout=out)
        finally:
            sys.stderr = saved
    lines = err.getvalue().splitlines()
    assert code in (0, 2), err.getvalue()
    assert not any("internal error" in line or "Traceback" in line for line in lines), lines
    packets = read_all(out.getvalue())  # whatever happened, what it wrote is well framed
    if code == 2:
        assert lines and lines[-1].startswith("nbmedic: error: git filter protocol: "), lines
        assert len([ln for ln in lines if "git filter protocol" in ln]) == 1
    if how != "none":
        return
    assert code == 0, lines
    assert packets[:3] == [b"git-filter-server\n", b"version=2\n", None]
    assert packets[3:6] == [b"capability=clean\n", b"capability=smudge\n", None]
    rest, warnings = packets[6:], 0
    for command, data in files:
        if command == "unknown":
            assert rest[:2] == [b"status=error\n", None]
            rest = rest[2:]
            continue
        assert rest[:2] == [b"status=success\n", None]
        end = rest.index(None, 2)
        got = b"".join(p for p in rest[2:end] if p is not None)
        assert rest[end + 1] is None
        rest = rest[end + 2:]
        if command == "smudge":
            assert got == data
            continue
        try:
            assert got == strip_bytes(data, StripOptions())
        except NotebookReadError:
            assert got == data  # not a notebook: stored unchanged, with a warning
            warnings += 1
    assert rest == []
    assert len([ln for ln in lines if "stored unchanged" in ln]) == warnings


CLEAN_REQUEST = text_pkts("command=clean", "pathname=a.ipynb")


@pytest.mark.parametrize("stream, why", [
    (HANDSHAKE + b"ffff" + b"x" * 70000, "bad pkt-line length 65535"),  # over git's LARGE_PACKET_MAX
    (HANDSHAKE + b"0003", "bad pkt-line length 3"),
    (HANDSHAKE + b"zzzz", "bad pkt-line header"),
    (HANDSHAKE + b"00", "stream ended inside a pkt-line header"),
    (HANDSHAKE + CLEAN_REQUEST + b"0010abc", "stream ended inside a pkt-line (3 of 12 bytes)"),
    (HANDSHAKE + CLEAN_REQUEST + pkt(b"{}"), "stream ended inside a file's content"),  # no closing flush
    (text_pkts("git-filter-client", "version=3"), "nbmedic speaks version 2"),
    (text_pkts("git-filter-server", "version=2"), "expected 'git-filter-client'"),
    (text_pkts("git-filter-client", "version=2"), "git closed the pipe during capability negotiation"),
])
def test_broken_framing_is_one_line_and_exit_2(stream: bytes, why: str) -> None:
    """The framing errors the fuzzer makes, each pinned: one line naming it, exit 2, well-framed output."""
    out, err = io.BytesIO(), io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        with scratch() as root:
            code = run_filter_process(root, stdin=io.BytesIO(stream), stdout=out)
    finally:
        sys.stderr = saved
    assert code == 2
    [line] = err.getvalue().splitlines()
    assert line.startswith("nbmedic: error: git filter protocol: ") and why in line, line
    read_all(out.getvalue())
