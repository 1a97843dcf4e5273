"""The doctor's environment probes and run's drift warning, end to end through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.nbfactory import code, notebook, write
from tests.runhelpers import read_out, text_of

Run = Callable[..., tuple[int, str, str]]


def _locked_notebook(run_cli: Run, tmp_path: Path) -> Path:
    path = write(tmp_path / "locked.ipynb", notebook(code("print('ran')")))
    code_, _, err = run_cli("env", "capture", str(path))
    assert code_ == 0, err
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["metadata"]["nbmedic"]["environment"]["packages"]["nbmedic-surely-missing-pkg"] = "1.0.0"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def test_doctor_reports_drift_and_no_env_skips_it(run_cli: Run, tmp_path: Path) -> None:
    path = _locked_notebook(run_cli, tmp_path)
    code_, out, err = run_cli("doctor", "--format", "json", "--no-run", str(path))
    findings = json.loads(out)["findings"]
    drift = [f for f in findings if f["code"] == "EN220"]
    assert len(drift) == 1, findings
    assert drift[0]["evidence"]["package"] == "nbmedic-surely-missing-pkg"
    assert drift[0]["path"].endswith("locked.ipynb")
    code_, out, err = run_cli("doctor", "--format", "json", "--no-run", "--no-env", str(path))
    assert not [f for f in json.loads(out)["findings"] if f["code"].startswith("EN")]


def test_run_warns_on_drift_before_executing(run_cli: Run, tmp_path: Path) -> None:
    path = _locked_notebook(run_cli, tmp_path)
    code_, out, err = run_cli("run", "--format", "json", str(path))
    doc = json.loads(out)
    assert [f["code"] for f in doc["findings"]] == ["EN220"]
    assert doc["findings"][0]["severity"] == "warning"
    assert code_ == 0  # a warning: the run went ahead
    assert text_of(read_out(tmp_path / "locked.out.ipynb")["cells"][0]) == "ran\n"


def test_doctor_requires_a_lock_when_the_project_says_so(run_cli: Run, tmp_path: Path) -> None:
    path = write(tmp_path / "plain.ipynb", notebook(code("x = 1")))
    (tmp_path / "pyproject.toml").write_text("[tool.nbmedic]\nrequire-lock = true\n")
    code_, out, _ = run_cli("doctor", "--format", "json", "--no-run", str(path))
    assert "EN223" in [f["code"] for f in json.loads(out)["findings"]]
