"""The README documents every command, option and finding code (a test, so it stays true)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from nbmedic.cli import build_parser
from nbmedic.findings import CODES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    assert "nbmedic doctor examples/clinic" in blocks[0]
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.replace("python -m", "python3 -m") or test_command.replace(
        "python3 -m", "python -m") in ci


def test_every_code_is_in_the_code_table_with_its_severity() -> None:
    for code, info in CODES.items():
        row = re.search(rf"^\| `?{code}`? \|(.*)$", README, re.MULTILINE)
        assert row, f"{code} missing from the README's code table"
        assert info.severity in row.group(1), code


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_option_is_documented() -> None:
    for name, sub in _subparsers(build_parser()).items():
        assert f"nbmedic {name}" in README, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help"):
                    continue
                assert f"`{flag}" in README or f" {flag}" in README, f"{name} {flag}"


def test_mypy_strict_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def evidence_line(code: str) -> str:
    """The README's line for a code's evidence layout: keys in order, each with its unit (text unmarked)."""
    from nbmedic.evidence import LAYOUTS, UnitSpec

    def describe(key: str, unit: UnitSpec) -> str:
        if isinstance(unit, str):
            return f"`{key}`" if unit == "text" else f"`{key}` {unit}"
        return f"`{key}` ({', '.join(describe(k, u) for k, u in unit.items())})"

    return f"- `{code}`: " + ", ".join(describe(k, u) for k, u in LAYOUTS[code].items())


def test_every_evidence_layout_is_in_the_readme() -> None:
    from nbmedic.evidence import LAYOUTS

    assert set(LAYOUTS) == set(CODES)
    missing = [code for code in CODES if evidence_line(code) not in README]
    assert not missing, "README's evidence section is out of date for " + ", ".join(missing) + \
        " (each line is tests.test_docs.evidence_line(code))"


def test_every_promise_names_tests_that_exist() -> None:
    """"What nbmedic promises": each guarantee names the tests that prove it, and each named test exists."""
    section = README.split("## What nbmedic promises", 1)[1].split("\n## ", 1)[0]
    promises = re.split(r"\n- ", section)[1:]
    assert len(promises) >= 15
    for promise in promises:
        named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", promise)
        assert named, f"a promise without its test: {promise[:80]!r}"
        for path, name in named:
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name} does not exist"
