"""The long-running filter process: spoken to directly over pipes, and driven by git itself."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from nbmedic.vcs.filter import MAX_PAYLOAD, FilterServer, PktReader, PktWriter, smudge
from nbmedic.vcs.strip import StripOptions, strip_bytes
from tests.gitrepo import BIN, executed_nb, git, git_bytes, gitenv, init_repo, nbmedic

__all__ = ["gitenv"]  # the fixture, imported for pytest

# --- a minimal git-side client of the protocol -----------------------------------------------------------


def pkt(payload: bytes) -> bytes:
    return b"%04x" % (len(payload) + 4) + payload


def text_pkts(*lines: str) -> bytes:
    return b"".join(pkt(line.encode("utf-8", "surrogateescape") + b"\n") for line in lines) + b"0000"


def content_pkts(data: bytes) -> bytes:
    return b"".join(pkt(data[i: i + MAX_PAYLOAD]) for i in range(0, len(data), MAX_PAYLOAD)) + b"0000"


def request(command: str, path: str, data: bytes) -> bytes:
    return text_pkts(f"command={command}", f"pathname={path}") + content_pkts(data)


HANDSHAKE = text_pkts("git-filter-client", "version=2")


def read_all(raw: bytes) -> list[bytes | None]:
    """Every packet of a response stream (None = flush), checking each header."""
    reader = PktReader(io.BytesIO(raw))
    items: list[bytes | None] = []
    while True:
        try:
            items.append(reader.packet())
        except EOFError:
            return items


def run_filter(stdin: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([os.path.join(BIN, "nbmedic"), "git", "filter-process"], input=stdin, cwd=cwd,
                          capture_output=True, timeout=60, check=False)


def responses(items: list[bytes | None]) -> list[tuple[list[bytes], bytes]]:
    """Split the packets after the handshake into (status list, content) per file."""
    out = []
    i = 0
    while i < len(items):
        status = []
        while items[i] is not None:
            status.append(items[i])  # type: ignore[arg-type]
            i += 1
        i += 1
        if status == [b"status=success\n"]:
            chunks = []
            while items[i] is not None:
                chunks.append(items[i])  # type: ignore[arg-type]
                i += 1
            i += 1
            assert items[i] is None  # the empty list that keeps the status
            i += 1
            out.append((status, b"".join(chunks)))  # type: ignore[arg-type]
        else:
            out.append((status, b""))
    return out


def nb_bytes(tmp_path: Path, **kw: object) -> bytes:
    return executed_nb(tmp_path / "src.ipynb", **kw).read_bytes()  # type: ignore[arg-type]


# --- the protocol, spoken directly -------------------------------------------------------------------------


def test_handshake_capabilities_and_files(tmp_path: Path) -> None:
    nb = nb_bytes(tmp_path)
    big = os.urandom(200_000).hex().encode()  # 400 kB, not a notebook: 7 pkt-lines each way
    stdin = (HANDSHAKE + text_pkts("capability=clean", "capability=smudge", "capability=delay")
             + request("clean", "a.ipynb", nb) + request("smudge", "a.ipynb", nb)
             + request("clean", "big.ipynb", big) + request("clean", "empty.ipynb", b""))
    done = run_filter(stdin, tmp_path)
    assert done.returncode == 0, done.stderr
    items = read_all(done.stdout)
    assert items[:6] == [b"git-filter-server\n", b"version=2\n", None,
                         b"capability=clean\n", b"capability=smudge\n", None]  # never "delay"
    answers = responses(items[6:])
    assert [status for status, _ in answers] == [[b"status=success\n"]] * 4
    assert answers[0][1] == strip_bytes(nb) != nb
    assert answers[1][1] == nb  # smudge: identity
    assert answers[2][1] == big
    assert answers[3][1] == b""
    assert all(item is None or len(item) <= MAX_PAYLOAD for item in items)
    warnings = done.stderr.decode().splitlines()
    assert len(warnings) == 2 and "big.ipynb: not a valid notebook" in warnings[0]
    assert "empty.ipynb" in warnings[1] and "stored unchanged" in warnings[1]


def test_only_offered_capabilities_are_taken(tmp_path: Path) -> None:
    done = run_filter(HANDSHAKE + text_pkts("capability=clean"), tmp_path)
    assert done.returncode == 0
    assert read_all(done.stdout)[3:] == [b"capability=clean\n", None]


def test_not_git_on_the_other_end(tmp_path: Path) -> None:
    done = run_filter(text_pkts("hello", "version=2"), tmp_path)
    assert done.returncode == 2
    assert b"git-filter-client" in done.stderr and done.stdout == b""
    done = run_filter(text_pkts("git-filter-client", "version=3"), tmp_path)
    assert done.returncode == 2 and b"version 2" in done.stderr
    done = run_filter(HANDSHAKE + text_pkts("capability=clean") + b"00zz", tmp_path)
    assert done.returncode == 2 and b"bad pkt-line header" in done.stderr


def test_internal_failure_is_status_error_and_the_next_file_is_served() -> None:
    def broken(data: bytes, path: str) -> bytes:
        raise RuntimeError("boom")

    stdin = io.BytesIO(HANDSHAKE + text_pkts("capability=clean", "capability=smudge")
                       + request("clean", "x.ipynb", b"{}") + request("smudge", "x.ipynb", b"data"))
    stdout, stderr = io.BytesIO(), io.StringIO()
    server = FilterServer(stdin, stdout, {"clean": broken, "smudge": smudge}, stderr=stderr)
    server.serve()
    answers = responses(read_all(stdout.getvalue())[6:])
    assert answers == [([b"status=error\n"], b""), ([b"status=success\n"], b"data")]
    assert "internal error: x.ipynb: RuntimeError: boom" in stderr.getvalue()


def test_writer_frames_exact_multiples() -> None:
    out = io.BytesIO()
    w = PktWriter(out)
    w.content(b"x" * (2 * MAX_PAYLOAD))
    w.send()
    items = read_all(out.getvalue())
    assert [len(i) if i is not None else None for i in items] == [MAX_PAYLOAD, MAX_PAYLOAD, None]


# --- driven by git -------------------------------------------------------------------------------------------


@pytest.fixture
def repo(gitenv: Path, tmp_path: Path) -> Path:
    path = init_repo(tmp_path / "repo")
    done = nbmedic(path, "git", "install")
    assert done.returncode == 0, done.stderr
    return path


def stored(repo: Path, name: str) -> bytes:
    return git_bytes(repo, "show", f":{name}")


def test_add_stores_stripped_notebooks_and_keeps_the_working_copy(repo: Path) -> None:
    path = executed_nb(repo / "nb.ipynb")
    before = path.read_bytes()
    git(repo, "add", "nb.ipynb")
    blob = stored(repo, "nb.ipynb")
    assert blob == strip_bytes(before)
    cells = json.loads(blob)["cells"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells)
    assert [c["id"] for c in cells] == ["cell-0", "cell-1"]
    assert path.read_bytes() == before  # the working copy keeps its outputs
    assert json.loads(before)["cells"][0]["outputs"]


def test_status_is_clean_after_a_rerun_that_only_changed_outputs(repo: Path) -> None:
    path = executed_nb(repo / "nb.ipynb", count=1, text="first")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nb")
    # a re-run with new execution counts (same file size): git cleans it and finds nothing changed
    executed_nb(path, count=7, text="first")
    os.utime(path, (1, 1))  # a different mtime even on a coarse clock: git must look at the content
    assert git(repo, "status", "--porcelain").stdout == ""
    # new outputs of another size: git's stat check flags the file until the index is refreshed (git
    # trusts a size change without reading the file), but there is nothing to diff and nothing to commit
    executed_nb(path, count=12, text="a second run printed more")
    assert git(repo, "diff", "--stat").stdout == ""
    git(repo, "add", "-A")
    assert git(repo, "status", "--porcelain").stdout == ""
    # a source edit is a change
    path.write_text(path.read_text(encoding="utf-8").replace("print(x)", "print(x + 1)"), encoding="utf-8")
    assert git(repo, "status", "--porcelain").stdout.strip() == "M nb.ipynb"


def test_one_process_serves_a_whole_add(repo: Path, tmp_path: Path) -> None:
    names = [f"nb{i:02d}.ipynb" for i in range(40)]
    for i, name in enumerate(names):
        executed_nb(repo / "sub" / name, count=i + 1)
    log = tmp_path / "filter.log"
    git(repo, "add", "-A", env={"NBMEDIC_FILTER_LOG": str(log)})
    rows = [line.split("\t") for line in log.read_text(encoding="utf-8").splitlines()]
    assert sorted(r[2] for r in rows if r[1] == "clean") == [f"sub/{n}" for n in names]
    assert len({r[0] for r in rows}) == 1  # one pid for all 40 files
    for name in names[:3]:
        assert stored(repo, f"sub/{name}") == strip_bytes((repo / "sub" / name).read_bytes())


def test_non_notebooks_pass_through_unchanged_with_a_warning(repo: Path) -> None:
    files = {
        "text.ipynb": b"just some text, not JSON\n",
        "png.ipynb": b"\x89PNG\r\n\x1a\n" + os.urandom(3000),
        "truncated.ipynb": executed_nb(repo / "t.ipynb").read_bytes()[:150],
        "list.ipynb": b"[1, 2, 3]\n",
        "conflict.ipynb": b'{\n<<<<<<< HEAD\n "a": 1\n=======\n "a": 2\n>>>>>>> other\n}\n',
        "empty.ipynb": b"",
    }
    (repo / "t.ipynb").unlink()
    for name, data in files.items():
        (repo / name).write_bytes(data)
    done = git(repo, "add", "-A")
    for name, data in files.items():
        assert stored(repo, name) == data, name
        assert (repo / name).read_bytes() == data
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert sorted(w.split(": ")[2] for w in warnings) == sorted(files)
    assert all(w.endswith("stored unchanged") for w in warnings)


def test_a_large_notebook_spans_many_pkt_lines(repo: Path) -> None:
    path = executed_nb(repo / "big.ipynb", cells=6, image=os.urandom(400_000))  # ~3.2 MB of base64
    data = path.read_bytes()
    assert len(data) > 3_000_000
    (repo / "big-data.ipynb").write_bytes(b"\x00" + os.urandom(1_500_000))  # large, binary, unchanged
    git(repo, "add", "-A")
    assert stored(repo, "big.ipynb") == strip_bytes(data)
    assert len(stored(repo, "big.ipynb")) < 5000
    assert stored(repo, "big-data.ipynb") == (repo / "big-data.ipynb").read_bytes()


def test_pyproject_options_are_read_once_per_process(repo: Path) -> None:
    (repo / "pyproject.toml").write_text("[tool.nbmedic.strip]\nkeep_count = true\n", encoding="utf-8")
    data = executed_nb(repo / "nb.ipynb", count=5).read_bytes()
    git(repo, "add", "-A")
    blob = stored(repo, "nb.ipynb")
    assert blob == strip_bytes(data, StripOptions(keep_count=True))
    assert json.loads(blob)["cells"][0]["execution_count"] == 5


def test_a_broken_config_stores_notebooks_unchanged_with_a_warning(repo: Path) -> None:
    (repo / "pyproject.toml").write_text("[tool.nbmedic.strip]\nkeep_count = 'maybe'\n", encoding="utf-8")
    data = executed_nb(repo / "nb.ipynb").read_bytes()
    done = git(repo, "add", "-A")
    assert stored(repo, "nb.ipynb") == data
    assert "pyproject.toml" in done.stderr and "unstripped" in done.stderr


def test_checkout_with_required_filter_passes_content_through(repo: Path) -> None:
    path = executed_nb(repo / "nb.ipynb")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "nb")
    path.unlink()
    git(repo, "checkout", "--", "nb.ipynb")  # smudge through the filter process (required = true)
    assert path.read_bytes() == stored(repo, "nb.ipynb")
    assert git(repo, "status", "--porcelain").stdout == ""


def test_works_with_nbmedic_installed_elsewhere(repo: Path, tmp_path: Path) -> None:
    """A clone on another machine: the config names `nbmedic`, found on that machine's PATH."""
    elsewhere = tmp_path / "other-machine" / "bin"
    elsewhere.mkdir(parents=True)
    wrapper = elsewhere / "nbmedic"
    import sys

    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m nbmedic \"$@\"\n", encoding="utf-8")
    wrapper.chmod(0o755)
    path_without_venv = os.pathsep.join(
        [str(elsewhere)] + [p for p in os.environ["PATH"].split(os.pathsep) if p and p != BIN])
    data = executed_nb(repo / "nb.ipynb").read_bytes()
    git(repo, "add", "-A", env={"PATH": path_without_venv})
    assert stored(repo, "nb.ipynb") == strip_bytes(data)
