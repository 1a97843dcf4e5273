"""SARIF 2.1.0: the clinic's findings as a log that validates against the official OASIS schema, located at
the notebook and the lines of the cell in the file, stable across runs (``--format sarif``,
``--report FILE.sarif``, ``nbmedic report DOC.json -o FILE.sarif``)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import jsonschema
import nbformat
import pytest
from jsonschema.validators import validator_for

from nbmedic.cli import main
from nbmedic.findings import CODES, make
from nbmedic.render.document import build_document
from nbmedic.render.sarif import FINGERPRINT, render_sarif
from tests.runhelpers import kernelspec, make_nb

Cli = Callable[..., tuple[int, str, str]]
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
CLINIC = Path(__file__).resolve().parents[1] / "examples" / "clinic"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def schema_errors(log: Any) -> list[str]:
    checker = jsonschema.FormatChecker()
    assert "uri-reference" in checker.checkers and "uri" in checker.checkers  # URIs are really checked
    validator = validator_for(SCHEMA)(SCHEMA, format_checker=checker)
    return sorted(f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log))


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One check of a copy of the clinic, run from the folder holding it: its SARIF text and JSON document."""
    root = tmp_path_factory.mktemp("sarif-clinic")
    shutil.copytree(CLINIC, root / "clinic")
    before = os.getcwd()
    os.chdir(root)
    try:
        out = {}
        for fmt in ("sarif", "json"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                code = main(["check", "clinic", "--format", fmt])
            assert code == 1
            out[fmt] = buf.getvalue()
    finally:
        os.chdir(before)
    yield {"root": root, "text": out["sarif"], "log": json.loads(out["sarif"]), "doc": json.loads(out["json"])}


@pytest.fixture
def in_clinic(clinic: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(clinic["root"])
    return clinic


def results(log: dict[str, Any]) -> list[dict[str, Any]]:
    return list(log["runs"][0]["results"])


def physical(result: dict[str, Any]) -> dict[str, Any]:
    return dict(result["locations"][0]["physicalLocation"])


def file_lines(root: Path, result: dict[str, Any], key: str = "region") -> list[str]:
    """The lines of the file a result's region (or contextRegion) covers."""
    where = physical(result)
    region = where[key]
    lines = (root / unquote(where["artifactLocation"]["uri"])).read_text(encoding="utf-8").splitlines()
    return lines[region["startLine"] - 1:region.get("endLine", region["startLine"])]


def test_the_vendored_schema_is_the_official_one_and_rejects_bad_logs() -> None:
    assert SCHEMA["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert SCHEMA["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    good = json.loads(render_sarif(build_document([make("NB030", "nb.ipynb", "no kernelspec")], ["nb.ipynb"])))
    assert schema_errors(good) == []
    bad = copy.deepcopy(good)
    bad["runs"][0]["results"][0]["level"] = "info"
    bad["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "a b%"
    assert len(schema_errors(bad)) == 2


def test_the_clinic_log_validates(clinic: dict[str, Any]) -> None:
    log = clinic["log"]
    assert schema_errors(log) == []
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and log["version"] == "2.1.0"
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "nbmedic" and driver["version"] and driver["informationUri"].startswith("https://")
    assert run["invocations"] == [{"executionSuccessful": True}] and run["columnKind"] == "utf16CodeUnits"
    assert clinic["text"].startswith('{\n  "$schema"')  # 2-space indent


def test_every_finding_is_a_result_with_its_rule_level_and_file(clinic: dict[str, Any]) -> None:
    findings = clinic["doc"]["findings"]
    rules = clinic["log"]["runs"][0]["tool"]["driver"]["rules"]
    assert len(findings) >= 15
    assert len(results(clinic["log"])) == len(findings)
    for finding, result in zip(findings, results(clinic["log"]), strict=True):
        assert result["ruleId"] == finding["code"] == rules[result["ruleIndex"]]["id"]
        assert result["level"] == LEVELS[finding["severity"]]
        assert result["message"]["text"].startswith(finding["message"])
        assert physical(result)["artifactLocation"]["uri"] == finding["path"]  # plain names: the path itself
        assert result["properties"]["cell"] == finding["cell"] if finding["cell"] is not None else True
        assert len(result["partialFingerprints"][FINGERPRINT]) == 32
        if finding["cell"] is not None:
            assert result["locations"][0]["logicalLocations"][0]["name"] == f"cell {finding['cell']}"
            assert result["properties"]["cell_id"] == finding["cell_id"]
    assert {r["level"] for r in results(clinic["log"])} == {"error", "warning", "note"}


def test_rules_are_the_codes_present_with_help_fix_and_level(clinic: dict[str, Any]) -> None:
    rules = clinic["log"]["runs"][0]["tool"]["driver"]["rules"]
    present = sorted({f["code"] for f in clinic["doc"]["findings"]})
    assert [r["id"] for r in rules] == present
    for rule in rules:
        info = CODES[rule["id"]]
        assert rule["name"].isidentifier() and rule["name"][0].isupper()
        assert rule["shortDescription"]["text"] and info.title[1:] in rule["fullDescription"]["text"]
        assert info.fix in rule["help"]["text"] and info.fix in rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] == LEVELS[info.severity]
        assert "notebook" in rule["properties"]["tags"]


def test_a_cell_region_covers_that_cell_in_the_file(clinic: dict[str, Any]) -> None:
    root = clinic["root"]
    checked = 0
    for finding, result in zip(clinic["doc"]["findings"], results(clinic["log"]), strict=True):
        if finding["cell"] is None or "region" not in physical(result):
            continue
        key = "contextRegion" if "contextRegion" in physical(result) else "region"
        text = "\n".join(file_lines(root, result, key))
        nb = nbformat.read(root / finding["path"], as_version=4)
        cell = nb.cells[finding["cell"]]
        assert f'"id": "{cell.id}"' in text
        first = cell.source.splitlines()[0]
        assert json.dumps(first)[1:-1] in text
        checked += 1
    assert checked >= 8


def test_a_known_source_line_narrows_the_region(clinic: dict[str, Any]) -> None:
    [result] = [r for r in results(clinic["log"]) if r["ruleId"] == "NB040"]
    where = physical(result)
    assert where["contextRegion"]["startLine"] < where["region"]["startLine"]
    lines = "\n".join(file_lines(clinic["root"], result))
    for path in result["properties"]["evidence"]["paths"]:
        assert json.dumps(path)[1:-1] in lines


def test_file_positions_and_metadata_members(clinic: dict[str, Any]) -> None:
    by_file = {Path(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name: r
               for r in results(clinic["log"])}
    conflict = by_file["conflicted.ipynb"]
    assert file_lines(clinic["root"], conflict)[0].startswith("<<<<<<<")
    truncated = by_file["truncated.ipynb"]
    assert physical(truncated)["region"]["startLine"] == truncated["properties"]["evidence"]["line"]
    assert '"kernelspec"' in file_lines(clinic["root"], by_file["unknown_kernel.ipynb"])[0]
    assert '"nbformat_minor"' in file_lines(clinic["root"], by_file["ids_on_old_minor.ipynb"])[0]


def test_paths_with_spaces_and_unicode_and_outside_the_folder(
        run_cli: Cli, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    inside = make_nb(tmp_path / "my data", "x = 1", "open('/home/alice/q3 #1/sales.csv')", name="notes é #2.ipynb")
    outside = make_nb(tmp_path_factory.mktemp("elsewhere ü"), "open('/home/bob/x.csv')", name="b.ipynb")
    code, out, err = run_cli("check", "my data/notes é #2.ipynb", str(outside.resolve()), "--format", "sarif")
    assert code == 0, err
    log = json.loads(out)
    assert schema_errors(log) == []
    second, first = results(log)  # in report order: by path, "/tmp/..." first
    assert physical(first)["artifactLocation"] == {"uri": "my%20data/notes%20%C3%A9%20%232.ipynb",
                                                   "uriBaseId": "%SRCROOT%"}
    assert "/home/alice/q3 #1/sales.csv" in file_lines(tmp_path, first)[0]
    uri = physical(second)["artifactLocation"]["uri"]
    assert uri.startswith("file:///") and "%C3%BC" in uri
    assert Path(url2pathname(urlparse(uri).path)) == outside.resolve()
    assert physical(second)["region"]["startLine"] >= 3
    run = log["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    # an absolute path under the current folder is still relative
    code, out, _ = run_cli("check", str(inside.resolve()), "--format", "sarif")
    assert physical(results(json.loads(out))[0])["artifactLocation"]["uri"].startswith("my%20data/")


def test_a_kernelspec_folder_and_a_finding_about_no_file(
        run_cli: Cli, tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    folder = kernelspec(jupyter_home["data"], "gone", ["/nonexistent/bin/python", "-m", "ipykernel_launcher",
                                                       "-f", "{connection_file}"])
    code, out, err = run_cli("kernels", "gone", "--no-launch", "--format", "json")
    assert code == 1, err
    (tmp_path / "kernels.json").write_text(out, encoding="utf-8")
    code, _, err = run_cli("report", "kernels.json", "-o", "kernels.sarif")
    assert code == 0, err
    log = json.loads((tmp_path / "kernels.sarif").read_text(encoding="utf-8"))
    assert schema_errors(log) == []
    [result] = results(log)
    assert result["ruleId"] == "EN200" and result["level"] == "error"
    assert physical(result)["artifactLocation"]["uri"] == folder.relative_to(tmp_path).as_posix() + "/"
    assert "region" not in physical(result)
    # the machine itself: no file, so no location (code scanning lists it without one)
    machine = make("EN240", None, "only 1 GiB of memory is available", evidence={"needed": 2 << 30, "limit": 1 << 30})
    log = json.loads(render_sarif(build_document([machine], [])))
    assert schema_errors(log) == []
    [result] = results(log)
    assert "locations" not in result and result["ruleId"] == "EN240" and result["partialFingerprints"]


def test_report_files_and_saved_documents_give_the_same_log(run_cli: Cli, in_clinic: dict[str, Any]) -> None:
    code, out, _ = run_cli("check", "clinic", "--format", "json", "--report", "out.sarif")
    assert code == 1
    assert Path("out.sarif").read_text(encoding="utf-8") == in_clinic["text"]
    Path("saved.json").write_text(out, encoding="utf-8")
    code, _, err = run_cli("report", "saved.json", "-o", "again.sarif")
    assert code == 0, err
    assert Path("again.sarif").read_text(encoding="utf-8") == in_clinic["text"]


def test_rendering_is_deterministic(in_clinic: dict[str, Any]) -> None:
    doc = in_clinic["doc"]
    assert render_sarif(doc) == render_sarif(copy.deepcopy(doc)) == in_clinic["text"]


def test_fingerprints_ignore_numbers_but_not_the_finding(in_clinic: dict[str, Any]) -> None:
    doc = copy.deepcopy(in_clinic["doc"])
    [i] = [n for n, f in enumerate(doc["findings"]) if f["code"] == "NB022"]
    before = results(json.loads(render_sarif(doc)))[i]["partialFingerprints"]
    finding = doc["findings"][i]
    assert "12,000" in finding["message"]
    finding["message"] = finding["message"].replace("12,000", "13,500").replace("10,000", "20,000")
    finding["evidence"]["lines"] = 13500
    assert results(json.loads(render_sarif(doc)))[i]["partialFingerprints"] == before
    for key, value in (("cell_id", "other-cell"), ("path", "clinic/elsewhere.ipynb"), ("code", "NB021")):
        changed = copy.deepcopy(doc)
        changed["findings"][i][key] = value
        assert results(json.loads(render_sarif(changed)))[i]["partialFingerprints"] != before
    fingerprints = [r["partialFingerprints"][FINGERPRINT] for r in results(in_clinic["log"])]
    assert len(set(fingerprints)) == len(fingerprints)


def test_a_file_gone_since_the_check_and_an_unknown_code(in_clinic: dict[str, Any], tmp_path: Path) -> None:
    doc = copy.deepcopy(in_clinic["doc"])
    [finding] = [f for f in doc["findings"] if f["code"] == "NB050"]
    finding["path"] = str(tmp_path / "gone.ipynb")  # no such file: located, but no lines
    doc["findings"].append({**finding, "code": "NB999", "severity": "warning", "fix": "upgrade nbmedic"})
    log = json.loads(render_sarif(doc))
    assert schema_errors(log) == []
    gone, unknown = (r for r in results(log) if r["properties"].get("cell") is not None and "gone" in
                     physical(r)["artifactLocation"]["uri"])
    assert "region" not in physical(gone) and gone["locations"][0]["logicalLocations"][0]["name"] == "cell 0"
    rule = log["runs"][0]["tool"]["driver"]["rules"][unknown["ruleIndex"]]
    assert rule["id"] == "NB999" and "defaultConfiguration" not in rule
    assert unknown["message"]["text"].endswith("Fix: upgrade nbmedic")


def test_a_run_s_stuck_line_is_the_region_inside_its_cell(
        run_cli: Cli, tmp_path: Path, jupyter_home: dict[str, Path]) -> None:
    nb = make_nb(tmp_path, "x = 1", "import time\nprint('waiting')\ntime.sleep(60)\nprint('never')", name="slow run.ipynb")
    code, out, err = run_cli("run", nb.name, "--cell-timeout", "2", "--format", "sarif", "--report", "run.sarif")
    assert code == 1, err
    assert (tmp_path / "run.sarif").read_text(encoding="utf-8") == out
    log = json.loads(out)
    assert schema_errors(log) == []
    [result] = [r for r in results(log) if r["ruleId"] == "RN110"]
    assert result["properties"]["evidence"]["cell_line"] == 3 and result["properties"]["cell"] == 1
    assert physical(result)["artifactLocation"]["uri"] == "slow%20run.ipynb"
    assert file_lines(tmp_path, result) == ['    "time.sleep(60)\\n",']
    cell = "\n".join(file_lines(tmp_path, result, "contextRegion"))
    assert f'"id": "{nbformat.read(nb, as_version=4).cells[1].id}"' in cell and "never" in cell


def test_one_file_named_two_ways_has_one_fingerprint(run_cli: Cli, tmp_path: Path) -> None:
    nb = make_nb(tmp_path / "sub", "open('/home/alice/a.csv')", name="nb.ipynb")
    logs = [json.loads(run_cli("check", name, "--format", "sarif")[1]) for name in ("sub/nb.ipynb", str(nb), "./sub")]
    prints = {results(log)[0]["partialFingerprints"][FINGERPRINT] for log in logs}
    assert len(prints) == 1
