"""The text report of the whole clinic, kept as a snapshot: units, one header per notebook, evidence order.

What varies between runs and machines (durations, memory figures, pids, thread ids, library frames of a
stack, the interpreter's location) is replaced by placeholders; everything else must match the file
``tests/snapshots/clinic_doctor.txt``.  After an intended change of the report, rewrite it with
``NBMEDIC_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_report_snapshot.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "clinic_doctor.txt"

_VOLATILE = [
    (re.compile(r"-?\d[\d,]*(?:\.\d+)? (?:B|KiB|MiB|GiB)\b"), "<size>"),
    (re.compile(r"\b\d[\d,]*(?:\.\d+)? s\b"), "<seconds>"),
    (re.compile(r"Thread 0x[0-9a-f]+"), "Thread <id>"),
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "<cell file>"),
    (re.compile(r'^(\s+)File "(?!<cell file>)[^"]+", line \d+ in \S+$', re.MULTILINE), r"\1<library frame>"),
    (re.compile(r"\(\+<size>\)"), "(+<size>)"),
]


def normalise(text: str) -> str:
    for prefix in sorted({sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix)}, key=len, reverse=True):
        text = text.replace(prefix, "<prefix>")
    # the interpreter's name depends on how the suite was started (`python` or `python3 -m pytest`)
    text = re.sub(r"<prefix>/bin/python[0-9.]*\b", "<python>", text)
    text = text.replace(str(ROOT), "<repo>")
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def _report(tmp: Path, *paths: str) -> str:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "JUPYTER_DATA_DIR": str(tmp)}  # the user's own kernels would change NB031's list
    env.pop("NBMEDIC_STRICT_EVIDENCE", None)  # the report as users see it
    proc = subprocess.run([sys.executable, "-m", "nbmedic", "doctor", "--no-env", *paths],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout


def test_clinic_text_report_matches_the_snapshot(tmp_path: Path) -> None:
    report = normalise(_report(tmp_path, "examples/clinic"))
    if os.environ.get("NBMEDIC_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(report, encoding="utf-8")
    expected = SNAPSHOT.read_text(encoding="utf-8")
    assert report == expected, "the clinic's text report changed; see the module docstring to update it"
    headers = [line for line in report.splitlines() if line[:2] in ("✓ ", "✗ ", "! ", "· ")]
    names = [line[2:].split("  ")[0] for line in headers]
    assert len(names) == len(set(names)) == 24  # one header per notebook
    assert "limit: 10,000 lines" in report  # NB022's limit is lines, not bytes

