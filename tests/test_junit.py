"""``nbmedic run --report results.xml``: JUnit XML read back by a real consumer (junitparser) and validated
against a JUnit schema (tests/data/junit.xsd) that also accepts what pytest itself writes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema
from junitparser import Failure, JUnitXml, Properties, Property, Skipped, TestCase, TestSuite

from tests.nbfactory import code, notebook, write
from tests.runhelpers import make_nb

Run = Callable[..., tuple[int, str, str]]

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "junit.xsd")


def _suite(path: Path) -> TestSuite:
    SCHEMA.validate(str(path))
    xml = JUnitXml.fromfile(str(path))
    [suite] = list(xml)
    assert suite.name == "nbmedic run"
    return suite


def _cases(suite: TestSuite) -> dict[str, TestCase]:
    cases = {case.name: case for case in suite}
    assert len(cases) == suite.tests == len(list(suite))
    return cases


def _properties(case: TestCase) -> dict[str, str]:
    props = case.child(Properties)
    return {} if props is None else {p.name: p.value for p in props.iterchildren(Property)}


def _failures(case: TestCase) -> list[Failure]:
    return [r for r in case.result if isinstance(r, Failure)]


def _skip_nb(tmp_path: Path, name: str) -> Path:
    return write(tmp_path / name, notebook(code("print('skipped')", metadata={"tags": ["skip-execution"]}),
                                           code("x = 1"), code("   ")))


def _batch(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "nbs" / "sub"
    return {
        "healthy": make_nb(folder, "print('hi')", name="healthy.ipynb"),
        "failing": write(folder / "failing.ipynb", notebook(
            code("print('before')"), code("raise ValueError('boom\\x07\\x1b[31m red')"), code("print('never')"),
            code("print('skipped')", metadata={"tags": ["skip-execution"]}))),
        "dying": make_nb(folder, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", name="dying.ipynb"),
        "hanging": make_nb(folder, "import time\ntime.sleep(60)", name="hanging.ipynb"),
        "skipping": _skip_nb(folder, "skipping.ipynb"),
    }


def test_one_testcase_per_notebook_with_failures_skips_and_output(run_cli: Run, tmp_path: Path,
                                                                   jupyter_home: dict[str, Path]) -> None:
    nbs = _batch(tmp_path)
    broken = tmp_path / "nbs" / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    report = tmp_path / "out" / "results.xml"
    report.parent.mkdir()
    report.write_text("old", encoding="utf-8")  # replaced
    code_, _, err = run_cli("run", *map(str, nbs.values()), str(broken), "-j", "2", "--cell-timeout", "3",
                            "--stall-after", "0.5", "-p", "who", "world", "--report", str(report))
    assert code_ == 1, err
    assert [p.name for p in report.parent.iterdir()] == ["results.xml"]  # written atomically, no leftovers
    suite = _suite(report)
    cases = _cases(suite)
    assert sorted(cases) == sorted(f"{n}.ipynb" for n in [*nbs, "broken"])
    assert suite.failures == 4 and suite.errors == 0 and suite.skipped == 0

    healthy = cases["healthy.ipynb"]
    assert healthy.is_passed and healthy.classname == "nbs.sub.healthy" and healthy.time > 0
    assert _properties(healthy) == {"who": "world"}
    assert cases["skipping.ipynb"].is_passed

    [failure] = _failures(cases["failing.ipynb"])
    assert failure.type == "RN120" and failure.message.startswith("RN120: cell 2 raised ValueError: boom")
    assert "ename: ValueError" in failure.text and "fix: " in failure.text and "\x1b" not in failure.text

    [died] = _failures(cases["dying.ipynb"])
    assert died.type in ("RN100", "RN101", "RN102", "RN103") and "SIGKILL" in died.text
    [timeout] = _failures(cases["hanging.ipynb"])
    assert timeout.type == "RN110" and "stack:" in timeout.text and "in <module>" in timeout.text  # where it hung
    assert "RN112 warning" in (cases["hanging.ipynb"].system_out or "")  # it stalled first: a warning

    [unreadable] = _failures(cases["broken.ipynb"])  # it could not start because of an error: a failure
    assert unreadable.type == "NB001" and cases["broken.ipynb"].classname == "nbs.broken"


def test_junit_cells_one_testcase_per_cell(run_cli: Run, tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    nbs = _batch(tmp_path)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    report = tmp_path / "cells.xml"
    code_, _, err = run_cli("run", str(nbs["failing"]), str(nbs["skipping"]), str(broken), "-j", "2",
                            "--ignore", "NB001", "--report", str(report), "--junit-cells")
    assert code_ == 1, err
    suite = _suite(report)
    by_class: dict[str, dict[str, TestCase]] = {}
    for case in suite:
        by_class.setdefault(case.classname, {})[case.name.split(" [id ")[0]] = case
    assert sorted(by_class) == ["broken", "nbs.sub.failing", "nbs.sub.skipping"]

    failing = by_class["nbs.sub.failing"]
    assert sorted(failing) == ["cell 0", "cell 1", "cell 2", "cell 3"]
    assert failing["cell 0"].is_passed and failing["cell 0"].time > 0
    assert [f.type for f in _failures(failing["cell 1"])] == ["RN120"]
    not_run, tagged = failing["cell 2"].result[0], failing["cell 3"].result[0]
    assert isinstance(not_run, Skipped) and not_run.message.startswith("not run")
    assert isinstance(tagged, Skipped) and tagged.message == "tagged skip-execution"

    skipping = by_class["nbs.sub.skipping"]
    assert [c.result[0].message if c.result else "passed" for _, c in sorted(skipping.items())] == [
        "tagged skip-execution", "passed", "empty cell, nothing to run"]

    # nothing to say why broken.ipynb did not start (NB001 ignored): skipped, not failed
    [whole] = by_class["broken"].values()
    assert whole.name == "broken.ipynb" and whole.is_skipped
    assert suite.tests == 8 and suite.failures == 1 and suite.skipped == 5


def test_a_grid_names_each_combination_and_gives_its_parameters(run_cli: Run, tmp_path: Path,
                                                                jupyter_home: dict[str, Path]) -> None:
    nb = make_nb(tmp_path, "alpha = 0", "assert alpha < 2", tags={0: ["parameters"]})
    grid = tmp_path / "grid.yaml"
    grid.write_text("alpha: [1, 5]\nlabel: ['x<y & \"z\"']\n", encoding="utf-8")
    report = tmp_path / "grid.xml"
    code_, _, err = run_cli("run", str(nb), "--grid", str(grid), "-j", "2", "--report", str(report))
    assert code_ == 1, err
    cases = _cases(_suite(report))
    ok, bad = cases['nb.ipynb [alpha=1,label=x<y & "z"]'], cases['nb.ipynb [alpha=5,label=x<y & "z"]']
    assert ok.is_passed and ok.classname == "nb"
    assert _properties(bad) == {"alpha": "5", "label": 'x<y & "z"'}
    assert [f.type for f in _failures(bad)] == ["RN120"]


@pytest.mark.parametrize(("args", "words"), [
    (["--report", "out.docx"], "names no report format here (supported: .html, .sarif, .json, .xml)"),
    (["--report", "results"], "no extension names no report format here (supported: .html, .sarif, .json, .xml)"),
    (["--report", "missing/r.xml"], "the folder missing does not exist"),
    (["--junit-cells"], "--junit-cells shapes a JUnit report"),
])
def test_bad_report_options_are_one_line_exit_2(run_cli: Run, tmp_path: Path, args: list[str], words: str) -> None:
    nb = make_nb(tmp_path, "print(1)")
    code_, _, err = run_cli("run", str(nb), *args)
    assert code_ == 2, err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nb.out.ipynb").exists()  # refused before anything ran


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_the_schema_accepts_what_pytest_writes(tmp_path: Path, family: str) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_ok(record_property):\n    print('out')\n    record_property('k', 'v')\n"
        "def test_fail():\n    assert 1 == 2\n"
        "@pytest.mark.skip(reason='no')\ndef test_skip():\n    pass\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('x')\n"
        "def test_error(broken):\n    pass\n", encoding="utf-8")
    report = tmp_path / "pytest.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                    "-o", f"junit_family={family}", f"--junitxml={report}", "test_sample.py"],
                   cwd=tmp_path, capture_output=True, check=False, timeout=120)
    SCHEMA.validate(str(report))
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert suite.tests == 4 and suite.failures == 1 and suite.errors == 1 and suite.skipped == 1


def test_the_schema_rejects_what_consumers_reject(tmp_path: Path) -> None:
    def valid(body: str) -> bool:
        return bool(SCHEMA.is_valid(f'<testsuite name="s" tests="1">{body}</testsuite>'))

    assert valid('<testcase name="a" classname="c" time="0.5"><failure message="m" type="t">x</failure></testcase>')
    assert not valid('<testcase classname="c"/>')  # a testcase needs a name
    assert not valid('<testcase name="a" time="soon"/>')
    assert not valid('<testcase name="a"><unknown/></testcase>')
    assert not SCHEMA.is_valid('<testsuite tests="0"/>')  # a suite needs a name
