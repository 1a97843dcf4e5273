"""Fuzzing the commands that read notebook files: check, strip (file and stdin), repair, slim, env.

Each case runs the real command in-process (``tests.fuzzing.run_main``) on a generated file, valid or
broken, and asserts: no traceback or internal error, an exit code in the documented set, one line on
stderr naming the file for input that is not a notebook, the input byte-identical unless the command was
asked to change it (then a valid notebook), and no temporary file left behind.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nbmedic.envs.lock import (
    LOCK_FORMAT,
    METADATA_KEY,
    kernel_interpreter,
    lock_in_notebook,
    notebook_imports,
    read_nb,
    store_in_notebook,
)
from nbmedic.errors import NbmedicError
from nbmedic.kernelspecs import read_kernelspecs
from nbmedic.notebook.io import load_bytes
from nbmedic.repair import validation_error
from nbmedic.vcs.strip import StripOptions, strip_data
from tests.fuzzing import (
    FUZZ_MARKS,
    Gen,
    assert_no_crash,
    assert_one_line,
    fuzz_settings,
    is_notebook,
    notebook_files,
    reads_as_v4,
    run_main,
    scratch,
    seeds,
    snapshot,
)

pytestmark = FUZZ_MARKS

DEEP = b'{"cells": [], "metadata": {"deep": ' + b"[" * 900 + b"]" * 900 + b'}, "nbformat": 4, "nbformat_minor": 5}'

LONE_SURROGATE = (b'{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "a\\ude77b"}], "metadata": {}, '
                  b'"nbformat": 4, "nbformat_minor": 5}')  # no cell id: repair adds one
HUGE_COUNT = (b'{"cells": [{"cell_type": "code", "execution_count": 99999999999999999999999, "metadata": {}, '
              b'"outputs": [], "source": ""}], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}')  # past 64 bits


# --- check --------------------------------------------------------------------------------------------

@fuzz_settings(ci=1500)
@given(data=notebook_files(), fmt=st.sampled_from(["json", "json", "text", "sarif"]))
@example(data=DEEP, fmt="json")
@example(data=HUGE_COUNT, fmt="json")
@example(data=HUGE_COUNT, fmt="sarif")
@example(data=LONE_SURROGATE, fmt="json")
def test_check(data: bytes, fmt: str) -> None:
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        result = run_main(["check", "--format", fmt, str(path)])
        assert_no_crash(result, {0, 1})
        assert snapshot(folder) == {"nb.ipynb": data}
    assert result.err == ""
    if fmt == "json":
        doc = json.loads(result.out)
        codes = {f["code"] for f in doc["findings"]}
        if not is_notebook(data):
            assert result.code == 1 and codes & {"NB000", "NB001", "NB002"}, codes
    elif fmt == "sarif":
        assert json.loads(result.out)["version"] == "2.1.0"


# --- strip ---------------------------------------------------------------------------------------------

@fuzz_settings(ci=1000, nightly=50_000)
@given(data=notebook_files(), check=st.booleans())
@example(data=DEEP, check=False)
def test_strip_file(data: bytes, check: bool) -> None:
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        result = run_main(["strip", *(["--check"] if check else []), str(path)])
        assert_no_crash(result, {0, 1})
        after = snapshot(folder)
        if result.code == 1 and not check or result.err:
            assert_one_line(result, str(path), "not stripped")
        again = run_main(["strip", "--check", str(path)]) if not check and not result.err else None
    assert set(after) == {"nb.ipynb"}  # no temporary file, no backup
    if not is_notebook(data):
        assert result.code == 1 and result.err
    if check or result.err:
        assert after["nb.ipynb"] == data
    elif after["nb.ipynb"] != data:
        load_bytes(after["nb.ipynb"])
    if again is not None:  # stripping is idempotent: what strip wrote needs no stripping
        assert again.code == 0, (again.out, again.err)


@fuzz_settings(ci=1000, nightly=50_000)
@given(data=notebook_files(), keep_count=st.booleans())
@example(data=DEEP, keep_count=False)
def test_strip_stdin(data: bytes, keep_count: bool) -> None:
    result = run_main(["strip", *(["--keep-count"] if keep_count else []), "-"], stdin=data)
    assert_no_crash(result, {0})
    if result.err:
        assert_one_line(result, "stdin", "not a notebook")
        assert result.out == data  # passed through, byte for byte
    else:
        load_bytes(result.out)
        _, changed = strip_data(result.out, StripOptions(keep_count=keep_count))
        assert not changed
    if not is_notebook(data):
        assert result.err and result.out == data


# --- repair --------------------------------------------------------------------------------------------

def _repair_status(result: Any) -> dict[str, Any]:
    doc = json.loads(result.out)
    [entry] = doc["repairs"]
    assert "\n" not in entry["message"] and entry["message"], entry
    return dict(entry)


HUGE_INT = (b'{"cells": [{"cell_type": "code", "execution_count": -' + b"9" * 4301 + b', "metadata": {}, "outputs": [], '
            b'"source": ""}], "metadata": {}, "nbformat": 4, "nbformat_minor": 3}')


@pytest.mark.parametrize("in_place", [False, True])
def test_repair_keeps_a_lone_surrogate_escape(in_place: bool) -> None:
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(LONE_SURROGATE)
        result = run_main(["repair", *(["--in-place"] if in_place else []), str(path)])
        assert_no_crash(result, {0, 1})
        out = folder / ("nb.ipynb" if in_place else "nb.repaired.ipynb")
        assert b"\\ude77" in out.read_bytes()


# a schema error at a key holding a line break: the failure message must stay one line (found by the nightly run)
KEY_WITH_NEWLINE = (b'{"cells": [{"cell_type": "markdown", "metadata": {}, "source": "x", "attachments": '
                    b'{"def f(:\\n": [{"a": 1}, 1]}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}')


@fuzz_settings(ci=1000, nightly=50_000)
@given(data=notebook_files())
@example(data=DEEP)
@example(data=HUGE_INT)
@example(data=LONE_SURROGATE)
@example(data=KEY_WITH_NEWLINE)
def test_repair_default_output(data: bytes) -> None:
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        result = run_main(["repair", "--format", "json", str(path)])
        assert_no_crash(result, {0, 1})
        after = snapshot(folder)
    entry = _repair_status(result)
    assert after.pop("nb.ipynb") == data  # the input is never touched without --in-place
    if entry["status"] == "repaired":
        assert set(after) == {"nb.repaired.ipynb"}
        nb = reads_as_v4(after["nb.repaired.ipynb"])
        assert validation_error(nb) is None
    else:
        assert after == {}
        assert result.code == (1 if entry["status"] == "failed" else 0)
    if not is_notebook(data):
        assert entry["status"] != "unchanged"


@fuzz_settings(ci=1000, nightly=50_000)
@given(data=notebook_files())
@example(data=HUGE_INT)
@example(data=LONE_SURROGATE)
@example(data=KEY_WITH_NEWLINE)
def test_repair_in_place(data: bytes) -> None:
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        result = run_main(["repair", "--in-place", "--format", "json", str(path)])
        assert_no_crash(result, {0, 1})
        after = snapshot(folder)
    entry = _repair_status(result)
    if entry["status"] == "repaired":
        assert after.pop("nb.ipynb.bak") == data
        assert validation_error(reads_as_v4(after.pop("nb.ipynb"))) is None
        assert after == {}
    else:
        assert after == {"nb.ipynb": data}


# --- slim ----------------------------------------------------------------------------------------------

@fuzz_settings(ci=1500)
@given(data=notebook_files(), mode=st.sampled_from(["default", "--in-place", "--dry-run"]),
       target=st.sampled_from(["1", "1K", "20K", "10M"]))
@example(data=DEEP, mode="--in-place", target="1")
def test_slim(data: bytes, mode: str, target: str) -> None:
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        result = run_main(["slim", "--format", "json", "--target", target, str(path),
                           *([mode] if mode != "default" else [])])
        assert_no_crash(result, {0, 1, 2})
        after = snapshot(folder)
    if result.code == 2:
        assert_one_line(result, str(path))
        assert after == {"nb.ipynb": data}
        return
    assert is_notebook(data)
    [entry] = json.loads(result.out)["slim"]
    written = {"default": "nb.slim.ipynb", "--in-place": "nb.ipynb", "--dry-run": None}[mode]
    if mode == "--in-place" and entry["written"]:
        assert after.pop("nb.ipynb.bak") == data
    else:
        assert after.pop("nb.ipynb") == data
    if entry["written"]:
        assert written is not None
        nb_bytes = after.pop(written)
        nb = reads_as_v4(nb_bytes)
        assert entry["size_after"] == len(nb_bytes)  # the size it reports is the file's
        source = load_bytes(data)
        assert [c.get("source") for c in nb["cells"]] == [_lines(c.get("source")) for c in source["cells"]]
    assert after == {}


def _lines(source: Any) -> Any:
    """A source as Jupyter stores it (a list of lines); slim never changes a source."""
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        source = "".join(source)
    return source.splitlines(True) if isinstance(source, str) else source


# --- env capture: the reading half (the capture itself runs the kernel's Python: one process per call) --

KERNELSPECS = read_kernelspecs()
LOCK = {"format": LOCK_FORMAT, "version": 1, "python": "3.11.7", "implementation": "cpython", "platform": "linux",
        "machine": "x86_64", "interpreter": sys.executable, "imports_only": False,
        "packages": {"numpy": "2.1.3"}, "direct": {}}


@fuzz_settings(ci=1000, nightly=90_000)
@given(data=notebook_files())
@example(data=DEEP)
def test_env_capture_reads_any_notebook(data: bytes) -> None:
    """What ``env capture`` does with the notebook: read it, find its kernel and imports, store the lock
    in its metadata; one-line errors only, and storing the same lock twice leaves the file as it was."""
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        try:
            nb, raw = read_nb(path)
        except NbmedicError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            assert not is_notebook(data)
            assert snapshot(folder) == {"nb.ipynb": data}
            return
        try:
            kernel_interpreter(path, nb, KERNELSPECS)
        except NbmedicError as exc:
            assert "\n" not in str(exc)
        notebook_imports(path, nb, raw)
        store_in_notebook(path, nb, raw, LOCK)
        first = path.read_bytes()
        stored, raw2 = read_nb(path)
        assert lock_in_notebook(stored) == LOCK
        if stored.get("nbformat") == 4:  # nbformat 3 is not stable under Jupyter's own rewrite (\x1e, \x85)
            assert store_in_notebook(path, stored, raw2, LOCK) is False
            assert snapshot(folder) == {"nb.ipynb": first}


@fuzz_settings(ci=200, nightly=10_000)
@given(data=notebook_files())
def test_env_capture_command_on_files_that_are_not_notebooks(data: bytes) -> None:
    """The command itself, on input it must refuse before it runs any interpreter: one line, exit 2."""
    if is_notebook(data):
        data = b"[" + data  # not JSON any more: the command refuses it before starting the interpreter
    with scratch() as folder:
        path = folder / "nb.ipynb"
        path.write_bytes(data)
        result = run_main(["env", "capture", str(path), "--python", sys.executable])
        assert_no_crash(result, {2})
        assert_one_line(result, str(path), "not a readable notebook")
        assert snapshot(folder) == {"nb.ipynb": data}


def _lock(g: Gen) -> Any:
    """A lock as a hand edit may leave it: right, or any field missing or of another type."""
    lock: dict[str, Any] = {"format": g.r.choice([LOCK_FORMAT, LOCK_FORMAT, "other"]), "version": g.r.choice([1, 1, 2, "1"])}
    fields = {"python": "3.11.7", "implementation": "cpython", "platform": "linux", "machine": "x86_64",
              "interpreter": "/usr/bin/python3", "imports_only": False,
              "packages": {g.text(False): g.text(False), "numpy": "2.1.3", "weird": "1.0; os_name=='nt'\n-e ."},
              "direct": {"pkg": "file:///tmp/x"}, "imports": {"np": ["numpy"]}}
    for key, value in fields.items():
        if g.chance(0.85):
            lock[key] = value if g.chance(0.85) else g.r.choice([g.json_value(), g.text(), None, [], {}])
    return lock if g.chance(0.9) else g.json_value()


@st.composite
def notebooks_with_locks(draw: st.DrawFn) -> bytes:
    g = Gen(draw(seeds))
    nb = g.v4()
    nb["metadata"]["nbmedic"] = {METADATA_KEY: _lock(g)} if g.chance(0.9) else g.json_value()
    return g.serialize(nb)


@fuzz_settings(ci=800, nightly=20_000)
@given(data=st.one_of(notebooks_with_locks(), notebook_files()),
       fmt=st.sampled_from(["requirements", "environment.yml"]), as_lock_file=st.booleans())
@example(data=b"[" * 5000 + b"]" * 5000, fmt="requirements", as_lock_file=True)  # was a RecursionError
@example(data=b'{"cells": [], "metadata": {"nbmedic": {"environment": {"format": "nbmedic-lock", "version": 1, '
              b'"packages": {"a": "1"}, "direct": 911024050687}}}, "nbformat": 4, "nbformat_minor": 5}',
         fmt="requirements", as_lock_file=False)  # was an AttributeError
def test_env_export(data: bytes, fmt: str, as_lock_file: bool) -> None:
    """``env export`` reads the lock from a notebook or from a lock file (the notebook's lock, alone)."""
    with scratch() as folder:
        path = folder / "nb.ipynb"
        if as_lock_file:
            path = folder / "env.lock.json"
            lock = lock_in_notebook(load_bytes(data)) if is_notebook(data) else None
            if lock is not None:  # else the file itself is the broken lock
                data = json.dumps(lock).encode()
        path.write_bytes(data)
        result = run_main(["env", "export", str(path), "--format", fmt])
        assert_no_crash(result, {0, 2})
        assert snapshot(folder) == {path.name: data}
    if result.code == 2:
        assert_one_line(result, str(path))
    else:
        assert result.err == "" and result.out


def test_profiles_are_what_the_readme_says() -> None:
    """2,000-ish cases per entry point in CI, derandomized; the nightly profile gives 100,000."""
    from hypothesis import settings

    from tests import fuzzing

    ci, nightly = settings.get_profile("ci"), settings.get_profile("nightly")
    assert ci.derandomize and ci.deadline is None
    assert not nightly.derandomize and nightly.deadline is None
    assert fuzzing.NIGHTLY_EXAMPLES >= 100_000
    assert fuzzing.fuzz_settings(ci=2000).max_examples == (100_000 if fuzzing.NIGHTLY else 2000)


def test_generators_make_what_they_claim() -> None:
    """The valid notebooks cover every cell and output type, nbformat 4.0-4.5 (ids only from 4.5), list and
    string sources, attachments, CRLF; every kind of damage makes a file the reader refuses (or, for the
    damage that can still parse, a changed file)."""
    from tests.fuzzing import BREAKERS, _wrong_types

    seen: set[str] = set()
    for seed in range(400):
        g = Gen(seed)
        nb = g.v4()
        seen.add(f"minor{nb['nbformat_minor']}")
        for cell in nb["cells"]:
            seen.add(cell["cell_type"])
            assert ("id" in cell) == (nb["nbformat_minor"] >= 5)
            seen.add("list-source" if isinstance(cell["source"], list) else "str-source")
            seen.update(["attachments"] if "attachments" in cell else [])
            seen.update(o["output_type"] for o in cell.get("outputs", []))
            seen.update(o["name"] for o in cell.get("outputs", []) if o["output_type"] == "stream")
        data = g.serialize(nb)
        seen.update(["crlf"] if b"\r\n" in data else [])
        assert is_notebook(data)
    assert seen >= {"code", "markdown", "raw", "stream", "display_data", "execute_result", "error", "stdout",
                    "stderr", "attachments", "list-source", "str-source", "crlf", *(f"minor{i}" for i in range(6))}
    base = Gen(0).serialize(Gen(1).v4())
    refused = {name: sum(not is_notebook(fn(Gen(seed), base)) for seed in range(60)) for name, fn in BREAKERS.items()}
    for name in ("truncated", "conflict", "utf-8", "bom", "not-json", "top-level"):
        assert refused[name] >= 55, refused  # nearly always refused (a cut at the very end may still parse)
    # deeper than a reader goes (1,025 levels and more), else readable; huge and odd numbers refused or not
    assert refused["deep"] >= 20 and refused["numbers"] >= 15, refused
    assert all(_wrong_types(Gen(seed), json.loads(base)) != base for seed in range(20))
