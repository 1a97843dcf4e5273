"""Fuzzing of every entry point that reads notebooks or logs: Hypothesis profiles, generators, a runner.

Profiles (registered here; the fuzz tests take theirs from ``fuzz_settings``):

* ``ci`` (the default: CI and the README's test command): a few thousand cases per entry point,
  ``derandomize=True`` (the same cases every run, so CI never fails by chance), no deadline;
* ``nightly`` (``HYPOTHESIS_PROFILE=nightly python -m pytest -m fuzz -n 2``): 100,000 cases per entry
  point, random, no deadline; a failure prints the falsifying example and its reproduction blob.

Generators: ``valid_notebooks()`` (bytes of notebooks Jupyter opens: every cell and output type,
attachments, ids, huge and empty strings, unicode edge cases, source as a list or a string, CRLF,
nbformat 3 and 4.0-4.5, metadata of every JSON type), ``broken_notebooks()`` (bytes: truncated at
structural positions, conflict markers, wrong types, deep nesting, duplicate keys, NaN/Infinity, huge
integers, invalid UTF-8, BOMs, empty, not JSON, a non-object at the top), ``notebook_files()`` (either),
``log_files()`` and ``report_documents()``.

``run_main(argv, stdin)`` runs ``nbmedic.cli.main`` in-process with stdin, stdout and stderr on memory
streams (capsys does not work inside ``@given``), and returns its exit code and what it printed.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from nbmedic.cli import main
from nbmedic.logs.catalogue import CATALOGUE
from nbmedic.notebook.io import NotebookReadError, load_bytes
from tests.test_oldformat_props import _slots, damaged, v1_notebooks, v3_notebooks

# --- profiles ------------------------------------------------------------------------------------------

NIGHTLY_EXAMPLES = 100_000
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
NIGHTLY = PROFILE == "nightly"

_QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                 HealthCheck.large_base_example]
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=False,
                          suppress_health_check=_QUIET_CHECKS)
settings.register_profile("nightly", derandomize=False, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_QUIET_CHECKS)


def fuzz_settings(ci: int = 2000, nightly: int = NIGHTLY_EXAMPLES) -> settings:
    """The settings of one fuzz test: ``ci`` cases by default, ``nightly`` in the nightly profile (an entry
    point fuzzed by two tests, e.g. ``strip FILE`` and ``strip -``, splits its 100,000 between them)."""
    name = "nightly" if NIGHTLY else "ci"
    return settings(settings.get_profile(name), max_examples=nightly if NIGHTLY else ci)


NIGHTLY_TIMEOUT = 3 * 3600  # seconds per fuzz test (100,000 cases); the suite's 300 s holds for the CI profile
FUZZ_MARKS = [
    pytest.mark.fuzz,
    # a failing case of a large notebook: Hypothesis warns that its repr is large, and the suite's
    # filterwarnings=error would turn that warning into the error reported instead of the failure
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
    *([pytest.mark.timeout(NIGHTLY_TIMEOUT)] if NIGHTLY else []),
]
"""``pytestmark`` of every fuzz test module."""


# --- running nbmedic in-process ------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int
    out: bytes
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_main(argv: Sequence[str], stdin: bytes = b"") -> Outcome:
    """``nbmedic ARGV`` in this process, stdin fed from ``stdin``; (exit code, stdout bytes, stderr text)."""
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    out = sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
    err = sys.stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    try:
        code = main(list(argv))
        out.flush()
        err.flush()
        return Outcome(code, out.buffer.getvalue(), err.buffer.getvalue().decode("utf-8"))  # type: ignore[attr-defined]
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def assert_no_crash(result: Outcome, allowed: set[int]) -> None:
    """No traceback, no internal error, an exit code in the documented set."""
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert result.code in allowed, (result.code, result.err)


def assert_one_line(result: Outcome, *needles: str) -> str:
    """Exactly one line on stderr, naming each of ``needles``; the line."""
    lines = result.err_lines
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# memory-backed when there is one: an atomic write's fsync costs nothing there, and the fuzzers write a lot
SCRATCH_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder for one example (Hypothesis runs many examples in one test, so not tmp_path)."""
    folder = Path(tempfile.mkdtemp(prefix="nbmedic-fuzz-", dir=SCRATCH_ROOT))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes): what a command left behind."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def is_notebook(data: bytes) -> bool:
    try:
        load_bytes(data)
    except NotebookReadError:
        return False
    return True


def reads_as_v4(data: bytes) -> dict[str, Any]:
    """The notebook a command wrote: a JSON object with a list of cells, nbformat 4."""
    nb = load_bytes(data)
    assert isinstance(nb.get("cells"), list) and nb.get("nbformat") == 4, data[:200]
    assert all(isinstance(c, dict) for c in nb["cells"])
    return nb


# --- how cases are made -----------------------------------------------------------------------------------
#
# A Hypothesis draw costs tens of microseconds and a notebook needs hundreds of choices, so the bulk of
# each case is built by plain Python from one drawn seed (``Gen``): a case costs about a millisecond to
# make, and the fuzz budget goes to the commands.  Hypothesis still picks the seeds (derandomized in CI),
# the kinds of damage and the options, prints the failing input, and runs the ``@example`` regressions;
# the strategies of the property tests (nbformat 1-3 notebooks, damage anywhere) are mixed in as drawn.

HUGE = "0123456789 abcdefghij ünïcødé\n" * 4000  # 120,000 characters
SPECIAL = [
    "", " ", "\n", "\r\n", "\r", "\t", "x", "\x00", "a\x00b", "\u2028", "\u2029", "line\u2028sep",
    "e\u0301\u0302", "\u0301", "\u202eRTL override\u202c", "\u05e9\u05dc\u05d5\u05dd \u0627\u0644\u0633\u0644\u0627\u0645",
    "\U0001f600\U0001f9d1\u200d\U0001f680", "\U0010ffff", "\U00010000", "\ufeff", "\ufffe", "\uffff", "\x1b[31mred\x1b[0m",
    '"quoted" \\ backslash', "{'a': [1, 2]}", ']}"', "<<<<<<< HEAD", "=======", ">>>>>>> theirs", "\x7f\x85",
    "<script>alert(1)</script>", "line\nline\r\nline\rline", "import os\nimport numpy as np\n", "%matplotlib inline",
    "!pip install x", "def f(:\n", "\u00e9" * 300, "x" * 5000, HUGE,
]
_SHORT_SPECIAL = SPECIAL[:-3]
# code point ranges, none of them surrogates: ASCII, controls, Latin-1, the BMP, the astral planes
_RANGES = [(0x20, 0x7E)] * 6 + [(0x00, 0x1F), (0x80, 0xFF), (0x100, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
NUMBERS: list[Any] = [0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 0.1, -0.0, 1e-05, 1e16, 1e308,
                      5e-324, 3.141592653589793, math.nan, math.inf, -math.inf]
MIMES = ["text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg", "image/svg+xml",
         "application/javascript", "application/json", "application/vnd.custom+json",
         "application/vnd.jupyter.widget-view+json"]
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
IMAGES = [PNG_1PX, PNG_1PX + "\n", "", "not base64 !", "AAAA" * 3000]
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
KERNELS = ["python3", "python3", "ir", "no-such-kernel", ""]


class Gen:
    """Random notebook parts from one seed (``random.Random``: the same seed, the same notebook)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def text(self, long: bool = True) -> str:
        r = self.r
        roll = r.random()
        if roll < 0.35:
            return r.choice(SPECIAL if long and roll < 0.05 else _SHORT_SPECIAL)
        if roll < 0.55:
            return "".join(r.choice(_SHORT_SPECIAL) for _ in range(r.randint(1, 4)))
        chars = []
        for _ in range(r.randint(0, 24)):
            lo, hi = r.choice(_RANGES)
            chars.append(chr(r.randint(lo, hi)))
        return "".join(chars)

    def lines_or_text(self) -> Any:
        return [self.text() for _ in range(self.r.randint(0, 4))] if self.chance(0.4) else self.text()

    def scalar(self) -> Any:
        roll = self.r.random()
        if roll < 0.1:
            return None
        if roll < 0.2:
            return self.chance(0.5)
        if roll < 0.35:
            return self.r.randint(-(2**40), 2**40)
        if roll < 0.55:
            return self.r.choice(NUMBERS)
        return self.text(long=False)

    def json_value(self, depth: int = 0) -> Any:
        roll = self.r.random()
        if depth > 3 or roll < 0.6:
            return self.scalar()
        if roll < 0.8:
            return [self.json_value(depth + 1) for _ in range(self.r.randint(0, 3))]
        return self.mapping(depth + 1)

    def mapping(self, depth: int = 0, size: int = 3) -> dict[str, Any]:
        return {self.text(long=False): self.json_value(depth) for _ in range(self.r.randint(0, size))}

    def mime_bundle(self) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        for mime in self.r.sample(MIMES, self.r.randint(0, 3)):
            if mime.endswith("json"):
                bundle[mime] = self.mapping(1)
            elif mime.startswith("image/") and mime != "image/svg+xml":
                bundle[mime] = self.r.choice(IMAGES)
            else:
                bundle[mime] = self.lines_or_text()
        return bundle

    def output(self) -> dict[str, Any]:
        kind = self.r.choice(["stream", "stream", "display_data", "execute_result", "error"])
        if kind == "stream":
            return {"name": self.r.choice(["stdout", "stderr"]), "output_type": kind, "text": self.lines_or_text()}
        if kind == "error":
            return {"ename": self.text(False), "evalue": self.text(), "output_type": kind,
                    "traceback": [self.text() for _ in range(self.r.randint(0, 3))]}
        out: dict[str, Any] = {"data": self.mime_bundle(), "metadata": self.mapping(1, 2), "output_type": kind}
        if kind == "execute_result":
            out["execution_count"] = self.r.choice([None, 0, 1, self.r.randint(0, 10**6)])
        return out

    def cell(self, index: int, with_id: bool) -> dict[str, Any]:
        kind = self.r.choice(["code", "code", "markdown", "raw"])
        cell: dict[str, Any] = {"cell_type": kind, "metadata": self.mapping(1, 2), "source": self.lines_or_text()}
        if with_id:
            cell["id"] = "".join(self.r.choice(ID_CHARS) for _ in range(self.r.randint(0, 40))) + str(index)
        if self.chance(0.2):
            cell["metadata"]["tags"] = self.r.sample(["keep_output", "parameters", "remove-output", "x"], 2)
        if kind == "code":
            cell["execution_count"] = self.r.choice([None, index + 1, self.r.randint(0, 10**6)])
            cell["outputs"] = [self.output() for _ in range(self.r.randint(0, 3))]
        elif self.chance(0.3):
            cell["attachments"] = {self.r.choice(["a.png", "image é.png", "x"]): self.mime_bundle()}
        if kind == "raw" and self.chance(0.5):
            cell["metadata"]["format"] = self.r.choice(["text/html", "text/x-python", ""])
        return cell

    def v4(self) -> dict[str, Any]:
        """nbformat 4.0-4.5: cell ids only from 4.5, where they are required."""
        minor = self.r.randint(0, 5)
        nb_cells = [self.cell(i, minor >= 5) for i in range(self.r.randint(0, 5))]
        meta = self.mapping(1)
        if self.chance(0.6):
            meta["kernelspec"] = {"name": self.r.choice(KERNELS), "display_name": self.text(False), "language": "python"}
            meta["language_info"] = {"name": "python", "version": "3.11.7"}
        if self.chance(0.1):
            meta["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": self.mapping(1), "version_major": 2}}
        return {"cells": nb_cells, "metadata": meta, "nbformat": 4, "nbformat_minor": minor}

    def serialize(self, doc: Any) -> bytes:
        """``doc`` as a file: nbformat's layout or another, ASCII escapes or not, LF or CRLF."""
        ascii_only = self.chance(0.3)
        layout = self.r.choice(["nbformat", "nbformat", "compact", "indent2"])
        if layout == "nbformat":
            body = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=ascii_only) + "\n"
        elif layout == "compact":
            body = json.dumps(doc, separators=(",", ":"), ensure_ascii=ascii_only)
        else:
            body = json.dumps(doc, indent=2, ensure_ascii=ascii_only)
        if self.chance(0.25):
            body = body.replace("\n", "\r\n")  # JSON strings hold escaped newlines only: the layout changes
        return body.encode("utf-8", "surrogatepass")


seeds = st.integers(0, 2**64 - 1)


def v4_notebooks() -> st.SearchStrategy[dict[str, Any]]:
    """nbformat 4.0-4.5 notebooks as dicts."""
    return seeds.map(lambda seed: Gen(seed).v4())


@st.composite
def valid_documents(draw: st.DrawFn) -> Any:
    """A notebook Jupyter opens, as a dict: nbformat 4.0-4.5 mostly, nbformat 3 (and 2) now and then."""
    roll = draw(st.integers(0, 15))
    if roll == 0:
        return draw(v3_notebooks(3))
    if roll == 1:
        return draw(v3_notebooks(2))
    return Gen(draw(seeds)).v4()


@st.composite
def valid_notebooks(draw: st.DrawFn) -> bytes:
    """Bytes of a notebook Jupyter opens (nbformat 4.0-4.5, 3 or 2), in any layout, LF or CRLF."""
    doc = draw(valid_documents())
    return Gen(draw(seeds)).serialize(doc)


# --- broken notebooks -----------------------------------------------------------------------------------

_STRUCTURAL = re.compile(rb'[{}\[\],:"]')
KNOWN_KEYS = ["cells", "metadata", "nbformat", "nbformat_minor", "cell_type", "source", "outputs",
              "execution_count", "output_type", "data", "text", "name", "id", "attachments", "kernelspec",
              "language_info", "traceback", "ename", "evalue", "tags", "worksheets"]
WRONG = [None, 0, -1, 1, 2.5, 3.0, True, False, "", "x", "{}", [], ["a"], ["a\n", "b"], [1], [None], {}, {"a": 1},
         {"text": "x"}, 10**30, math.nan]
_NUMBER = re.compile(rb"(?<=[:\[,\s])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?=\s*[,\]}\r\n])")
ODD_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1" + b"0" * 5000, b"-" + b"9" * 4301, b"1" + b"0" * 30,
               b"1e999", b"-0", b"1E400", b"0.1e-400", b"-NaN", b"+1", b"01", b".5", b"1."]
BAD_UTF8 = [b"\xff", b"\xfe", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc0\xaf",
            b"caf\xe9", b"\x93quoted\x94"]
NOT_JSON = [b"", b" ", b"\n\n", b"\r\n\t ", b"\x00" * 10, b"<!DOCTYPE html><html><title>Login</title></html>",
            b"<html>\n<body>404</body>", b"\x89PNG\r\n\x1a\n\x00\x00", b"PK\x03\x04rest", b"\x1f\x8b\x08\x00",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", b"import os\nprint(1)\n",
            b"# Title\n\nSome markdown", b"nul\x00l", b"{", b"}", b'{"cells": [', b"{'cells': []}", b"\xef\xbb\xbf",
            b"\xff\xfe", b"\xfe\xff\x00{", b"\x00\x00\xfe\xff", b"SQLite format 3\x00", b"{}{}", b'{"a":1} trailing']
TOP_LEVEL = [b"[]", b"null", b"true", b"0", b"-1.5e3", b'"a notebook"', b'[{"cells": []}]', b" 4 ", b"NaN",
             b"Infinity", b'"\\ud800"', b"[" * 10 + b"]" * 10, b'"' + b"x" * 100_000 + b'"']


def _truncated(g: Gen, data: bytes) -> bytes:
    """Cut at a structural position (a brace, bracket, comma, colon or quote), or just after it."""
    positions = [m.start() for m in _STRUCTURAL.finditer(data)] or [0]
    return data[: g.r.choice(positions) + g.r.choice([0, 0, 1, 2])]


def _conflicted(g: Gen, data: bytes) -> bytes:
    """A plain-text merge's markers around some lines: merge style, diff3, a lone marker, unterminated."""
    lines = data.splitlines(keepends=True) or [b"{}\n"]
    a = g.r.randrange(len(lines))
    b = min(len(lines), a + g.r.randint(0, 6))
    ours = lines[a:b]
    theirs = [re.sub(rb"\d", b"7", line) for line in ours] if g.chance(0.5) else ours[::-1]
    nl = b"\r\n" if b"\r\n" in data else b"\n"
    style = g.r.choice(["merge", "diff3", "lone", "unterminated"])
    if style == "lone":
        middle = [g.r.choice([b"=======", b"<<<<<<< HEAD", b">>>>>>> b", b"||||||| base"]) + nl]
    else:
        middle = [b"<<<<<<< HEAD" + nl, *ours]
        if style == "diff3":
            middle += [b"||||||| merged common ancestors" + nl, *ours]
        middle += [b"=======" + nl, *theirs]
        if style != "unterminated":
            middle.append(b">>>>>>> feature" + nl)
    return b"".join(lines[:a] + middle + lines[b:])


def _wrong_types(g: Gen, doc: Any) -> bytes:
    """Known keys given values of the wrong type (or deleted)."""
    doc = copy.deepcopy(doc)
    for _ in range(g.r.randint(1, 3)):
        slots = [(c, k) for c, k in _slots(doc, []) if isinstance(c, dict) and k in KNOWN_KEYS]
        if not slots:
            break
        container, key = g.r.choice(slots)
        if g.chance(0.2):
            del container[key]
        else:
            container[key] = copy.deepcopy(g.r.choice(WRONG))
    return g.serialize(doc)


def _deep(g: Gen, _: bytes) -> bytes:
    """Thousands of levels of nesting, balanced or not, where a notebook holds JSON values."""
    depth = g.r.choice([200, 255, 256, 500, 999, 1000, 1025, 3000, 20000, 100000])
    opener, closer = g.r.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"b":', b"}]")])
    nest = opener * depth + b"1" + closer * (depth if depth > 3000 or g.chance(0.6) else depth // 2)
    where = g.r.choice(["metadata", "source", "output", "top", "cells"])
    if where == "top":
        return nest
    if where == "cells":
        return b'{"cells": ' + nest + b', "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    if where == "source":
        return (b'{"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "execution_count": null, "outputs": [], '
                b'"source": ' + nest + b'}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    if where == "output":
        return (b'{"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1, "source": "x", '
                b'"outputs": [{"output_type": "display_data", "metadata": {}, "data": {"application/json": '
                + nest + b'}}]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    return b'{"cells": [], "metadata": {"deep": ' + nest + b'}, "nbformat": 4, "nbformat_minor": 5}'


def _duplicate_keys(g: Gen, data: bytes) -> bytes:
    key = g.r.choice([b'"cells"', b'"metadata"', b'"nbformat"', b'"source"', b'"outputs"', b'"id"', b'"cell_type"'])
    value = g.r.choice([b"[]", b"{}", b"4", b'"x"', b"null", b'[{"cell_type": "code"}]'])
    pos = data.find(key + b":")
    if pos < 0:
        return (b'{"cells": [], "cells": ' + value + b', "metadata": {}, "metadata": {}, "nbformat": 4, '
                b'"nbformat": 4, "nbformat_minor": 5}')
    return data[:pos] + key + b": " + value + b", " + data[pos:]


def _odd_numbers(g: Gen, data: bytes) -> bytes:
    """NaN, Infinity, integers of thousands of digits and number-like junk where numbers go."""
    token = g.r.choice(ODD_NUMBERS)
    numbers = list(_NUMBER.finditer(data))
    if numbers and g.chance(0.6):
        m = g.r.choice(numbers)
        return data[:m.start()] + token + data[m.end():]
    pos = data.find(b'"metadata": {')
    if pos < 0:
        return b'{"cells": [], "metadata": {"n": ' + token + b'}, "nbformat": 4, "nbformat_minor": 5}'
    pos += len(b'"metadata": {')
    return data[:pos] + b'"odd": ' + token + (b"," if data[pos:].lstrip()[:1] != b"}" else b"") + data[pos:]


def _bad_utf8(g: Gen, data: bytes) -> bytes:
    quotes = [m.start() + 1 for m in re.finditer(rb'"', data)] or [0]
    pos = g.r.choice(quotes) if g.chance(0.7) else g.r.randint(0, len(data))
    return data[:pos] + g.r.choice(BAD_UTF8) + data[pos:]


def _bom(g: Gen, data: bytes) -> bytes:
    kind = g.r.choice(["utf-8-bom", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "bom-twice"])
    if kind == "utf-8-bom":
        return b"\xef\xbb\xbf" + data
    if kind == "bom-twice":
        return b"\xef\xbb\xbf\xef\xbb\xbf" + data
    return data.decode("utf-8").encode(kind)


def _not_json(g: Gen, _: bytes) -> bytes:
    if g.chance(0.5):
        return g.r.choice(NOT_JSON)
    if g.chance(0.5):
        return g.text().encode("utf-8")
    return bytes(g.r.randrange(256) for _ in range(g.r.randint(0, 200)))


def _top_level(g: Gen, _: bytes) -> bytes:
    if g.chance(0.5):
        return g.r.choice(TOP_LEVEL)
    value = g.json_value()
    return g.serialize([value] if isinstance(value, dict) else value)


BREAKERS = {"truncated": _truncated, "conflict": _conflicted, "deep": _deep, "duplicate-keys": _duplicate_keys,
            "numbers": _odd_numbers, "utf-8": _bad_utf8, "bom": _bom, "not-json": _not_json, "top-level": _top_level}


@st.composite
def broken_notebooks(draw: st.DrawFn) -> bytes:
    """Bytes that are not a notebook, or a damaged one (some still read: wrong types, duplicate keys)."""
    how = draw(st.sampled_from([*BREAKERS, "wrong-types", "damaged"]))
    if how == "damaged":  # the old-format property tests' damage: keys removed, retyped or added anywhere
        doc = draw(damaged(st.one_of(v3_notebooks(3), v3_notebooks(2), v1_notebooks(), v4_notebooks())))
        return Gen(draw(seeds)).serialize(doc)
    g = Gen(draw(seeds))
    doc = draw(valid_documents())
    if how == "wrong-types":
        return _wrong_types(g, doc)
    return BREAKERS[how](g, g.serialize(doc))


@st.composite
def notebook_files(draw: st.DrawFn) -> bytes:
    """Valid and broken notebook files, half and half."""
    return draw(valid_notebooks()) if draw(st.booleans()) else draw(broken_notebooks())


# --- logs ----------------------------------------------------------------------------------------------

LOG_EXAMPLES = sorted({line for sig in CATALOGUE for line in sig.examples}) or ["x"]
PREFIXES = ["", "", "[I 2026-01-02 10:11:12.345 ServerApp] ", "[W 12:00:01.123 NotebookApp] ", "[IPKernelApp] WARNING | ",
            "[E 2026-01-02 10:11:12.345 SingleUserLabApp mixins:547] ",
            "2026-01-02T10:11:12.345678901Z [E 10:11:12.345 LabApp] ",
            "\x1b[33m[W 2026-01-02 10:11:12.345 ServerApp]\x1b[0m ", "[C 2026-13-45 99:99:99.999 ServerApp] ",
            "Jan  2 10:11:12 host kernel: [12345.678] "]
LOG_NOISE = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "", "\r", "\x00", "\ufeff",
             "Memory cgroup out of memory: Killed process 123 (python) total-vm:1kB, anon-rss:999kB",
             "Kernel started: 0c7f6a8e-1a2b-4c3d-9e8f-001122334455", "kernel 0c7f6a8e restarted"]


@st.composite
def log_files(draw: st.DrawFn) -> bytes:
    """A log as bytes: lines of known signatures (the catalogue's examples) and noise behind any prefix, in
    UTF-8 (or UTF-16, Latin-1, with BOMs), maybe gzip'ed, maybe cut short or holding invalid bytes."""
    g = Gen(draw(seeds))
    lines = []
    for _ in range(g.r.randint(0, 14)):
        roll = g.r.random()
        body = g.r.choice(LOG_EXAMPLES) if roll < 0.5 else g.r.choice(LOG_NOISE) if roll < 0.7 else g.text()
        if g.chance(0.1):
            body = body[: g.r.randint(0, len(body))]
        lines.append(g.r.choice(PREFIXES) + body + g.r.choice(["\n", "\n", "\r\n", "\r", ""]))
    encoding = g.r.choice(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"])
    data = "".join(lines).encode(encoding, errors="replace")
    if g.chance(0.15):
        data += g.r.choice(BAD_UTF8)
    if g.chance(0.25):
        data = gzip.compress(data, mtime=0)
        if g.chance(0.5):
            data = data[: g.r.randint(0, len(data))]  # a truncated gzip
    return data


# --- report documents ---------------------------------------------------------------------------------

CODES_SEEN = ["NB001", "NB011", "NB020", "NB041", "EN220", "LG300", "XX999", ""]


def _finding(g: Gen) -> dict[str, Any]:
    finding: dict[str, Any] = {"code": g.r.choice(CODES_SEEN), "message": g.text()}
    for key, value in (("severity", g.r.choice(["error", "warning", "info", "fatal", None, 3])),
                       ("path", g.r.choice([None, g.text(False), 7, "nb.ipynb"])),
                       ("cell", g.r.choice([None, -5, 0, 3, 10**20, "2", True])),
                       ("cell_id", g.r.choice([None, g.text(False), 1])),
                       ("evidence", g.r.choice([g.mapping(1), g.json_value()])),
                       ("fix", g.r.choice([g.text(), None, 1]))):
        if g.chance(0.8):
            finding[key] = value
    return finding


@st.composite
def report_documents(draw: st.DrawFn) -> bytes:
    """A saved ``--format json`` document: a valid one, one edited by hand, or a broken file."""
    kind = draw(st.sampled_from(["valid", "valid", "edited", "broken"]))
    if kind == "broken":
        return draw(broken_notebooks())
    g = Gen(draw(seeds))
    doc: dict[str, Any] = {"version": 1, "findings": [_finding(g) for _ in range(g.r.randint(0, 4))],
                           "summary": {"files": 1, "error": 0, "warning": 0, "info": 0},
                           "files": [g.text(False) for _ in range(g.r.randint(0, 3))]}
    if g.chance(0.5):
        doc["runs"] = [{k: g.json_value() for k in g.r.sample(["path", "status", "cells", "timeline", "wall",
                                                               "peak_rss", "error", "notebook"], 3)}
                       for _ in range(g.r.randint(0, 2))]
    if kind == "edited":
        doc = draw(damaged(st.just(doc)))
    return g.serialize(doc)
