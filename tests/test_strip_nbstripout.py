"""``nbmedic strip`` is byte-identical to ``nbstripout --keep-id`` (nbstripout is a test dependency).

The reference is nbstripout's own code: in-process, what its CLI does for ``-t FILE`` (``nbformat.read``
of the text, ``strip_output`` with the CLI's default extra keys, ``nbformat.write``), and, to make sure
that in-process reference is the CLI, the real ``nbstripout`` script on the whole corpus in one call.

Compared: every notebook of tests/corpus that nbstripout accepts, for each option combination below;
generated notebooks (hypothesis) with random options; CRLF copies (nbmedic keeps CRLF where nbstripout
writes the platform's newline, otherwise identical).  Notebooks nbstripout rejects or would give random
ids (nbformat invents ids for 4.5 cells without one) are not comparable; nbmedic still strips them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nbmedic.notebook.io import NotebookReadError
from nbmedic.vcs.strip import DEFAULT_EXTRA_KEYS, StripOptions, strip_bytes

nbformat = pytest.importorskip("nbformat")
nbstripout_utils = pytest.importorskip("nbstripout._utils")

CORPUS = Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(CORPUS.rglob("*.ipynb"))
NBSTRIPOUT = Path(sys.executable).parent / "nbstripout"

# nbstripout 0.9.1 main(): the extra keys it always removes (checked against the CLI below)
NBSTRIPOUT_DEFAULT_KEYS = [
    "metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
    "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden", "cell.metadata.scrolled",
]

# (nbmedic options, the same for nbstripout: keyword arguments of `reference` and CLI flags)
COMBOS: list[tuple[StripOptions, dict[str, Any]]] = [
    (StripOptions(), {}),
    (StripOptions(keep_count=True), {"keep_count": True}),
    (StripOptions(keep_output=True), {"keep_output": True}),
    (StripOptions(keep_output=True, keep_count=True), {"keep_output": True, "keep_count": True}),
    (StripOptions(drop_empty_cells=True), {"drop_empty_cells": True}),
    (StripOptions(max_output_size=0), {"max_size": 0}),
    (StripOptions(max_output_size=100), {"max_size": 100}),
    (StripOptions(max_output_size=5000, keep_count=True), {"max_size": 5000, "keep_count": True}),
    (StripOptions(extra_keys=("metadata.kernelspec", "cell.metadata.tags", "metadata.language_info.version")),
     {"extra_keys": ["metadata.kernelspec", "cell.metadata.tags", "metadata.language_info.version"]}),
    (StripOptions(keep_metadata_keys=("cell.metadata.collapsed", "metadata.widgets", "cell.metadata.scrolled")),
     {"keep_metadata_keys": ["cell.metadata.collapsed", "metadata.widgets", "cell.metadata.scrolled"]}),
    (StripOptions(keep_id=False), {"keep_id": False}),
    (StripOptions(keep_id=False, drop_empty_cells=True, keep_count=True, max_output_size=200,
                  extra_keys=("cell.metadata.tags",), keep_metadata_keys=("cell.metadata.ExecuteTime",)),
     {"keep_id": False, "drop_empty_cells": True, "keep_count": True, "max_size": 200,
      "extra_keys": ["cell.metadata.tags"], "keep_metadata_keys": ["cell.metadata.ExecuteTime"]}),
]


def reference(text: str, *, keep_count: bool = False, keep_output: bool = False, keep_id: bool = True,
              drop_empty_cells: bool = False, extra_keys: list[str] | tuple[str, ...] = (),
              keep_metadata_keys: list[str] | tuple[str, ...] = (), max_size: int = 0) -> str | None:
    """What ``nbstripout -t`` prints for a file holding ``text``; None where it fails or invents ids."""
    logger = logging.getLogger("traitlets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # nbformat logs schema errors
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # MissingIDFieldWarning / DuplicateCellId: random new ids
            nb = nbformat.read(io.StringIO(text, newline=None), as_version=nbformat.NO_CONVERT)
            keys = [k for k in [*NBSTRIPOUT_DEFAULT_KEYS, *extra_keys] if k not in keep_metadata_keys]
            nb = nbstripout_utils.strip_output(
                nb, keep_output=True if keep_output else None, keep_count=keep_count, keep_id=keep_id,
                extra_keys=keys, drop_empty_cells=drop_empty_cells, max_size=max_size)
            out = io.StringIO()
            nbformat.write(nb, out)
    except Exception:  # noqa: BLE001 - whatever nbstripout fails on is not comparable
        return None
    finally:
        logger.setLevel(level)
    return out.getvalue()


def ours(data: bytes, opts: StripOptions) -> str | None:
    try:
        return strip_bytes(data, opts).decode("utf-8")
    except NotebookReadError:
        return None


def _texts() -> list[tuple[Path, bytes, str]]:
    out = []
    for path in CORPUS_FILES:
        data = path.read_bytes()
        try:
            out.append((path, data, data.decode("utf-8")))
        except UnicodeDecodeError:
            pass
    return out


def test_default_keys_are_nbstripouts() -> None:
    assert DEFAULT_EXTRA_KEYS == tuple(NBSTRIPOUT_DEFAULT_KEYS)


@pytest.mark.parametrize("index", range(len(COMBOS)), ids=[repr(kw) for _, kw in COMBOS])
def test_corpus_identical_to_nbstripout(index: int) -> None:
    opts, kw = COMBOS[index]
    compared, failures = 0, []
    for path, data, text in _texts():
        expected = reference(text, **kw)
        if expected is None:
            continue
        compared += 1
        got = ours(data, opts)
        if got is None or got.replace("\r\n", "\n") != expected:
            failures.append(path.relative_to(CORPUS).as_posix())
        crlf = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if ours(crlf, opts) != expected.replace("\n", "\r\n"):
            failures.append(path.relative_to(CORPUS).as_posix() + " (CRLF)")
    assert compared >= 60, compared  # 62 of the 71 files are notebooks nbstripout strips deterministically
    assert not failures, failures


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")  # no filter.nbstripout.extrakeys
    return env


@pytest.mark.skipif(not NBSTRIPOUT.exists(), reason="the nbstripout script is not installed")
@pytest.mark.parametrize("flags, index", [([], 0), (["--keep-count", "--drop-empty-cells", "--max-size", "100",
                                                     "--extra-keys", "metadata.kernelspec cell.metadata.tags"], None)])
def test_corpus_identical_to_nbstripout_cli(flags: list[str], index: int | None, tmp_path: Path) -> None:
    """The real script, all comparable notebooks in one call (its output is their concatenation)."""
    opts = COMBOS[0][0] if index is not None else StripOptions(
        keep_count=True, drop_empty_cells=True, max_output_size=100,
        extra_keys=("metadata.kernelspec", "cell.metadata.tags"))
    kw: dict[str, Any] = {} if index is not None else {"keep_count": True, "drop_empty_cells": True, "max_size": 100,
                                       "extra_keys": ["metadata.kernelspec", "cell.metadata.tags"]}
    names, expected = [], []
    for n, (path, data, text) in enumerate(_texts()):
        if reference(text, **kw) is None:
            continue
        copy = tmp_path / f"{n:03d}.ipynb"
        shutil.copyfile(path, copy)
        names.append(copy.name)
        expected.append(ours(data, opts) or "")
    assert len(names) >= 60
    done = subprocess.run([str(NBSTRIPOUT), "--keep-id", "-t", *flags, *names], cwd=tmp_path,
                          capture_output=True, env=_cli_env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode("utf-8") == "".join(e.replace("\r\n", "\n") for e in expected)


# --- generated notebooks --------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)
_source = st.lists(st.sampled_from(["", " ", "\n", "  \n", "x = 1\n", "print('é')\n", "\t", "# ∑ ünï\r\n", "y"]),
                   max_size=5)
_source_field = _source | _source.map("".join)
_jsonish = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | _text,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                        max_leaves=6)


@st.composite
def _output(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["stream", "display_data", "execute_result", "error"]))
    if kind == "stream":
        return {"output_type": kind, "name": draw(st.sampled_from(["stdout", "stderr"])), "text": draw(_source_field)}
    if kind == "error":
        return {"output_type": kind, "ename": draw(_text), "evalue": draw(_text),
                "traceback": draw(st.lists(_text, max_size=3))}
    data: dict[str, Any] = {"text/plain": draw(_source_field)}
    if draw(st.booleans()):
        data["image/png"] = draw(st.sampled_from(["iVBORw0KGgo=", "iVBORw0KGgo" * 40 + "=\n"]))
    if draw(st.booleans()):
        data["application/json"] = draw(st.dictionaries(_text, _jsonish, max_size=2))
    if draw(st.booleans()):
        data["text/html"] = draw(_source)
    out = {"output_type": kind, "data": data, "metadata": draw(st.dictionaries(_text, _jsonish, max_size=2))}
    if kind == "execute_result":
        out["execution_count"] = draw(st.one_of(st.none(), st.integers(1, 500)))
    return out


_CELL_META = {
    "collapsed": st.booleans(),
    "scrolled": st.booleans() | st.just("auto"),
    "ExecuteTime": st.just({"end_time": "2024-01-01T00:00:01.000Z", "start_time": "2024-01-01T00:00:00.000Z"}),
    "execution": st.just({"iopub.execute_input": "2024-01-01T00:00:00.1Z", "shell.execute_reply": "2024-01-01"}),
    "heading_collapsed": st.booleans(),
    "hidden": st.booleans(),
    "tags": st.lists(st.sampled_from(["keep_output", "parameters", "x"]), unique=True, max_size=2),
    "keep_output": st.booleans(),
    "init_cell": st.booleans(),
    "jupyter": st.just({"source_hidden": True}),
    "nbmedic": st.fixed_dictionaries({"status": st.just("ok"), "wall": st.floats(0, 10), "peak_rss": st.integers(0)}),
    "custom": _jsonish,
}


@st.composite
def _notebook(draw: st.DrawFn) -> dict[str, Any]:
    with_ids = draw(st.booleans())
    cells = []
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["code", "code", "markdown", "raw"]))
        meta = {k: draw(_CELL_META[k]) for k in draw(st.lists(st.sampled_from(sorted(_CELL_META)), unique=True,
                                                              max_size=4))}
        cell: dict[str, Any] = {"cell_type": kind, "metadata": meta, "source": draw(_source_field)}
        if with_ids:
            cell["id"] = f"c{index}-{draw(st.sampled_from(['a', 'b']))}"
        if kind == "code":
            cell["execution_count"] = draw(st.none() | st.integers(1, 999))
            cell["outputs"] = draw(st.lists(_output(), max_size=3))
        cells.append(cell)
    metadata: dict[str, Any] = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for key, strategy in (("widgets", st.just({"application/vnd.jupyter.widget-state+json": {"state": {}}})),
                          ("signature", st.just("sha256:abc")), ("keep_output", st.booleans()),
                          ("celltoolbar", st.just("Tags")), ("language_info", st.just({"name": "python"}))):
        if draw(st.booleans()):
            metadata[key] = draw(strategy)
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5 if with_ids else 4}


_options = st.builds(
    StripOptions,
    keep_count=st.booleans(), keep_output=st.booleans(), keep_id=st.booleans(), drop_empty_cells=st.booleans(),
    extra_keys=st.lists(st.sampled_from(["metadata.celltoolbar", "cell.metadata.tags", "metadata.language_info",
                                         "cell.metadata.jupyter.source_hidden", "cell.outputs"]),
                        unique=True, max_size=2).map(tuple),
    keep_metadata_keys=st.lists(st.sampled_from(NBSTRIPOUT_DEFAULT_KEYS), unique=True, max_size=2).map(tuple),
    max_output_size=st.one_of(st.none(), st.sampled_from([0, 10, 60, 400])),
)


def _reference_kw(opts: StripOptions, nb: dict[str, Any]) -> dict[str, Any]:
    extra = list(opts.extra_keys)
    if any("nbmedic" in c.get("metadata", {}) for c in nb["cells"]):
        extra.append("cell.metadata.nbmedic")  # nbmedic's run figures (the generator stores figures only)
    return {"keep_count": opts.keep_count, "keep_output": opts.keep_output, "keep_id": opts.keep_id,
            "drop_empty_cells": opts.drop_empty_cells, "extra_keys": extra,
            "keep_metadata_keys": list(opts.keep_metadata_keys), "max_size": opts.max_output_size or 0}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nb=_notebook(), opts=_options, indent=st.sampled_from([None, 1, 2]), ascii_escapes=st.booleans(),
       crlf=st.booleans())
def test_generated_notebooks_identical_to_nbstripout(nb: dict[str, Any], opts: StripOptions, indent: int | None,
                                                     ascii_escapes: bool, crlf: bool) -> None:
    text = json.dumps(nb, indent=indent, ensure_ascii=ascii_escapes)
    if crlf:
        text = text.replace("\n", "\r\n")
    expected = reference(text, **_reference_kw(opts, nb))
    # nbstripout refuses a cell whose keep_output metadata is false while it has the keep_output tag
    contradiction = any(c["metadata"].get("keep_output") is False and "keep_output" in c["metadata"].get("tags", [])
                        and "init_cell" not in c["metadata"] for c in nb["cells"])
    assume(expected is not None or contradiction)
    got = strip_bytes(text.encode("utf-8"), opts).decode("utf-8")
    if expected is None:
        return
    assert got == (expected.replace("\n", "\r\n") if crlf and indent is not None else expected)
