"""``dumps(load_bytes(data))`` is byte-identical to what Jupyter writes on save.

Reference: ``nbformat.writes(nbformat.reads(text, as_version=NO_CONVERT)) + "\\n"`` (nbformat.write
adds the newline).  Checked on every notebook of the vendored corpus (tests/corpus, see SOURCES.md),
on generated notebooks (hypothesis) and, when ``NBMEDIC_CORPUS=/path`` is set, on a big corpus
(``benchmarks/fetch_corpus.py /path`` makes one).
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbmedic.notebook.io import NotebookReadError, detect_newline, dumps, encode_text, load_bytes

CORPUS = Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(CORPUS.rglob("*.ipynb"))


def nbformat_roundtrip(text: str) -> str | None:
    """What Jupyter writes for ``text``; None where nbformat cannot or would change cell ids at random."""
    logger = logging.getLogger("traitlets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # nbformat logs schema errors; they are not our concern here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # MissingIDFieldWarning / DuplicateCellId: random new ids
            nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
            out: str = nbformat.writes(nb)
    except Exception:
        return None
    finally:
        logger.setLevel(level)
    return out + "\n"


def test_corpus_is_there() -> None:
    """The vendored corpus must exist and be varied, or the tests below would prove nothing."""
    assert len(CORPUS_FILES) >= 40
    versions = set()
    for path in CORPUS_FILES:
        try:
            versions.add(load_bytes(path.read_bytes()).get("nbformat"))
        except NotebookReadError:
            pass
    assert {3, 4} <= versions
    comparable = [p for p in CORPUS_FILES if nbformat_roundtrip(p.read_text(encoding="utf-8")) is not None]
    assert len(comparable) >= 50


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.relative_to(CORPUS).as_posix() for p in CORPUS_FILES])
def test_vendored_corpus_identical_to_nbformat(path: Path) -> None:
    data = path.read_bytes()
    nb = load_bytes(data)
    ours = dumps(nb)
    # writing is a fixed point whatever the notebook: re-reading our output gives the same output
    assert dumps(load_bytes(encode_text(ours))) == ours
    expected = nbformat_roundtrip(data.decode("utf-8"))
    if expected is None:  # nbformat itself fails on it, or would invent cell ids: ours must still be JSON
        assert json.loads(ours) is not None
        return
    assert ours == expected
    # CRLF files keep CRLF, byte for byte
    crlf = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert detect_newline(crlf) == "\r\n"
    assert dumps(load_bytes(crlf), newline=detect_newline(crlf)) == expected.replace("\n", "\r\n")


def _iter_big_corpus() -> Iterator[Path]:
    root = os.environ.get("NBMEDIC_CORPUS")
    if root:
        yield from sorted(Path(root).rglob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NBMEDIC_CORPUS"), reason="set NBMEDIC_CORPUS=/path to a notebook corpus")
def test_big_corpus_identical_to_nbformat() -> None:
    compared, failures = 0, []
    for path in _iter_big_corpus():
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        expected = nbformat_roundtrip(text)
        if expected is None:
            continue
        compared += 1
        try:
            ours = dumps(load_bytes(data))
        except Exception as exc:  # report every file, not just the first
            failures.append(f"{path}: {exc!r}")
            continue
        if ours != expected:
            failures.append(str(path))
    assert compared > 0, "no notebook in NBMEDIC_CORPUS that nbformat can read"
    assert not failures, f"{len(failures)} of {compared} differ:\n" + "\n".join(failures[:50])


# --- generated notebooks --------------------------------------------------------------------------

_text = st.text(st.characters(codec=None), max_size=40)  # any code point: controls, U+2028, surrogates
_multiline = st.lists(st.sampled_from(["", "x", "\n", "\r\n", "\r", "  y = 1", "é\u2028", "\t", '"a": 1.5']),
                      max_size=8).map("".join) | _text
_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e-05, 1e16, 1e22, -0.0, 5e-324, 0.1]) | st.floats()
_ints = st.integers() | st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
_scalars = _floats | _ints | _text | st.none() | st.booleans()
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                     max_leaves=12)
_lines_or_str = _multiline | st.lists(_multiline, max_size=4)


@st.composite
def _mime_bundle(draw: st.DrawFn) -> dict[str, Any]:
    bundle: dict[str, Any] = {}
    for mime in draw(st.lists(st.sampled_from(["text/plain", "text/html", "image/png", "image/svg+xml",
                                                "application/javascript", "application/json",
                                                "application/vnd.custom+json", "text/markdown"]),
                              unique=True, max_size=4)):
        if mime.endswith("json"):
            bundle[mime] = draw(_json)
        else:
            bundle[mime] = draw(_lines_or_str)
    return bundle


@st.composite
def _output(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["stream", "display_data", "execute_result", "error"]))
    if kind == "stream":
        return {"output_type": kind, "name": draw(st.sampled_from(["stdout", "stderr"])), "text": draw(_lines_or_str)}
    if kind == "error":
        return {"output_type": kind, "ename": draw(_text), "evalue": draw(_text),
                "traceback": draw(st.lists(_text, max_size=3))}
    out = {"output_type": kind, "data": draw(_mime_bundle()), "metadata": draw(st.dictionaries(_text, _json, max_size=2))}
    if kind == "execute_result":
        out["execution_count"] = draw(st.none() | st.integers(1, 500))
    return out


@st.composite
def _notebook(draw: st.DrawFn) -> dict[str, Any]:
    cells = []
    n_cells = draw(st.integers(0, 4))
    for index in range(n_cells):
        kind = draw(st.sampled_from(["code", "markdown", "raw"]))
        meta = draw(st.dictionaries(_text, _json, max_size=3))
        if draw(st.booleans()):
            meta["trusted"] = draw(st.booleans())
        cell: dict[str, Any] = {"cell_type": kind, "id": f"cell-{index}", "metadata": meta,
                                "source": draw(_lines_or_str)}
        if kind == "code":
            cell["execution_count"] = draw(st.none() | st.integers(0, 10**6))
            cell["outputs"] = draw(st.lists(_output(), max_size=3))
        elif draw(st.booleans()):
            cell["attachments"] = {"a.png": draw(_mime_bundle())}
        cells.append(cell)
    metadata = draw(st.dictionaries(_text, _json, max_size=4))
    if draw(st.booleans()):
        metadata["signature"] = "sha256:0"
        metadata["orig_nbformat"] = 3
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nb=_notebook(), ascii_escapes=st.booleans(), indent=st.sampled_from([None, 1, 2, 4]))
def test_generated_notebooks_identical_to_nbformat(nb: dict[str, Any], ascii_escapes: bool, indent: int | None) -> None:
    text = json.dumps(nb, ensure_ascii=ascii_escapes, indent=indent)
    if _has_surrogate(text):  # a file can only hold a lone surrogate as an escape
        text = json.dumps(nb, ensure_ascii=True, indent=indent)
    expected = nbformat_roundtrip(text)
    assert expected is not None
    ours = dumps(load_bytes(text.encode("utf-8")))
    assert ours == expected
    assert dumps(nb) == expected  # from the dict itself too (floats, NaN, huge ints as Python objects)
    again = load_bytes(encode_text(ours))  # what write_notebook puts on disk reads back to the same notebook
    assert dumps(again) == ours


def test_nonfinite_and_huge_numbers_survive() -> None:
    """The property test's claims, pinned on one example (so a strategy change cannot hide them)."""
    nb = {"cells": [], "metadata": {"n": [math.nan, math.inf, -math.inf, 2**64, -(2**63) - 1, 1e-05]},
          "nbformat": 4, "nbformat_minor": 5}
    text = dumps(nb)
    assert '"n": [\n   NaN,\n   Infinity,\n   -Infinity,\n   18446744073709551616,\n   -9223372036854775809,\n   1e-05\n  ]' in text
    assert text == nbformat_roundtrip(json.dumps(nb))
