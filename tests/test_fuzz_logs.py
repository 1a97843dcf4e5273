"""Fuzzing the readers of logs and saved reports: ``nbmedic logs FILE|-`` and ``nbmedic report DOC.json``.

Logs: lines of every catalogued signature and noise behind any Jupyter prefix, in UTF-8, UTF-16, Latin-1,
with BOMs and invalid bytes, plain or gzip'ed (whole or cut short).  Reports: saved ``--format json``
documents, valid, edited by hand (keys removed, retyped, added anywhere) or not documents at all.
"""

from __future__ import annotations

import gzip
import json
import zlib

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzzing import (
    FUZZ_MARKS,
    Outcome,
    assert_no_crash,
    assert_one_line,
    fuzz_settings,
    log_files,
    report_documents,
    run_main,
    scratch,
    snapshot,
)

pytestmark = FUZZ_MARKS


def _unreadable(data: bytes) -> bool:
    """A gzip stream that cannot be read to its end (cut short, or junk after it)."""
    if data[:2] != b"\x1f\x8b":
        return False
    try:
        gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return True
    return False


def _check_logs_result(result: Outcome, data: bytes, shown: str) -> None:
    assert_no_crash(result, {0, 1, 2})
    if _unreadable(data):
        assert result.code == 2
    if result.code == 2:
        assert_one_line(result, "nbmedic: error: cannot read")
        assert result.out == b""
        return
    assert result.err == ""
    doc = json.loads(result.out)
    assert doc["version"] == 1 and doc["files"] == [shown]
    assert all(f["path"] == shown and f["code"].startswith("LG") for f in doc["findings"])
    assert result.code == (1 if any(f["severity"] == "error" for f in doc["findings"]) else 0)


@fuzz_settings(ci=2000, nightly=50_000)
@given(data=log_files(), select=st.sampled_from([[], ["--select", "LG30"], ["--ignore", "LG300,LG301"]]))
def test_logs_file(data: bytes, select: list[str]) -> None:
    with scratch() as folder:
        path = folder / "server.log"
        path.write_bytes(data)
        result = run_main(["logs", "--format", "json", *select, str(path)])
        assert snapshot(folder) == {"server.log": data}
    _check_logs_result(result, data, str(path))


@fuzz_settings(ci=2000, nightly=50_000)
@given(data=log_files())
def test_logs_stdin(data: bytes) -> None:
    result = run_main(["logs", "--format", "json", "-"], stdin=data)
    _check_logs_result(result, data, "<stdin>")


NUL_PATH = (b'{"version": 1, "findings": [{"code": "NB001", "message": "m", "severity": "error", "path": "a\\u0000b", '
            b'"cell": 0, "evidence": {}, "fix": null}], "summary": {"files": 1, "error": 1, "warning": 0, "info": 0}, '
            b'"files": ["a\\u0000b"]}')  # SARIF reads the notebook a finding names for its lines


@fuzz_settings(ci=1500)
@given(data=report_documents(), output=st.sampled_from([None, None, "out.html", "out.sarif", "out.json"]),
       verbose=st.booleans())
@example(data=NUL_PATH, output="out.sarif", verbose=False)
def test_report(data: bytes, output: str | None, verbose: bool) -> None:
    with scratch() as folder:
        doc = folder / "doc.json"
        doc.write_bytes(data)
        argv = ["report", str(doc), *(["-o", str(folder / output)] if output else []), *(["-v"] if verbose else [])]
        result = run_main(argv)
        assert_no_crash(result, {0, 2})
        after = snapshot(folder)
    assert after.pop("doc.json") == data
    if result.code == 2:
        assert_one_line(result, "nbmedic: error: ", str(doc))
        assert after == {}
        return
    assert result.err == ""
    if output is None:
        result.out.decode("utf-8")
        assert after == {}
        return
    written = after.pop(output)
    assert after == {}
    if output.endswith(".html"):
        page = written.decode("utf-8")
        assert "<script>alert(1)</script>" not in page  # notebook and finding text is shown escaped
        assert page.count("<script") == 1
    else:
        json.loads(written)
