"""JupyterLab extensions of the installation (EN252-EN255): real extension folders, page_config files and
application folders beside the JupyterLab installed in this environment, examined by the real probe (the
installation's Python asked in a subprocess) and through ``nbmedic server``."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from nbmedic.envs.server import ServerContext, find_setup, labext
from nbmedic.findings import Finding

LAB_VERSION = metadata.version("jupyterlab")
LAB_MAJOR = int(LAB_VERSION.split(".")[0])
LAB_PACKAGE = Path(str(metadata.distribution("jupyterlab").locate_file("jupyterlab")))


def _labext(data: Path, name: str, *, version: str = "1.0.0", deps: dict[str, str] | None = None,
            peer: dict[str, str] | None = None, pip: str | None = None) -> Path:
    """A prebuilt extension as `pip install` leaves one: labextensions/NAME/package.json (+ install.json)."""
    folder = data / "labextensions" / name
    folder.mkdir(parents=True)
    pkg: dict[str, Any] = {"name": name, "version": version, "dependencies": deps or {},
                           "jupyterlab": {"_build": {"load": "static/remoteEntry.abc.js", "extension": "./extension"}}}
    if peer:
        pkg["peerDependencies"] = peer
    (folder / "package.json").write_text(json.dumps(pkg), encoding="utf-8")
    if pip:
        (folder / "install.json").write_text(json.dumps({"packageManager": "python", "packageName": pip}),
                                             encoding="utf-8")
    return folder


def _probe() -> list[Finding]:
    return labext.findings(ServerContext(find_setup()))


def _codes(found: list[Finding]) -> list[str]:
    return [f.code for f in found]


def test_healthy_fresh_environment_has_no_findings(jupyter_home: dict[str, Path]) -> None:
    _labext(jupyter_home["data"], "fine-ext", deps={"@jupyterlab/application": f"^{LAB_MAJOR}.0.0"})
    assert _probe() == []


def test_extension_for_another_major_is_an_error(jupyter_home: dict[str, Path]) -> None:
    old = _labext(jupyter_home["data"], "@acme/old-ext", deps={"@jupyterlab/application": "^3.0.0"},
                  pip="acme-old-ext")
    _labext(jupyter_home["data"], "current-ext", deps={"@jupyterlab/application": f"^{LAB_MAJOR}.0.0",
                                                       "@jupyterlab/not-shipped": "^1.0.0"})
    _labext(jupyter_home["data"], "peer-ext", peer={"@jupyterlab/notebook": ">=3.0.0 <4.0.0"})
    found = _probe()
    assert sorted(_codes(found)) == ["EN252", "EN252"]
    by_name = {f.evidence["extension"]: f for f in found}
    first = by_name["@acme/old-ext"]
    assert first.severity == "error"
    assert first.evidence == {"extension": "@acme/old-ext", "requires": "@jupyterlab/application ^3.0.0",
                              "jupyterlab": LAB_VERSION, "package_json": str(old / "package.json")}
    assert f"JupyterLab {LAB_VERSION}" in first.message
    assert "pip install -U acme-old-ext" in first.fix
    assert by_name["peer-ext"].evidence["requires"] == "@jupyterlab/notebook >=3.0.0 <4.0.0"


def test_same_extension_in_two_folders_names_the_one_that_loads(jupyter_home: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first-data"
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(first), str(jupyter_home["data"])]))
    used = _labext(first, "twice-ext", version="2.0.0", deps={"@jupyterlab/application": f"^{LAB_MAJOR}.0.0"})
    # the shadowed copy is for an old JupyterLab, but it never loads: no EN252
    shadowed = _labext(jupyter_home["data"], "twice-ext", deps={"@jupyterlab/application": "^3.0.0"})
    found = _probe()
    assert _codes(found) == ["EN253"]
    assert found[0].severity == "warning"
    assert found[0].evidence == {"extension": "twice-ext", "locations": [str(used), str(shadowed)],
                                 "used": str(used)}
    assert f"loads 2.0.0 from {used}, not 1.0.0 in {shadowed.parent}" in found[0].message


def test_disabled_installed_extensions_only(jupyter_home: dict[str, Path]) -> None:
    for name in ("off-ext", "old-style-ext", "back-on-ext"):
        _labext(jupyter_home["data"], name)
    labconfig = jupyter_home["config"] / "labconfig"
    (labconfig / "page_config.d").mkdir(parents=True)
    # a package's drop-in (lower priority) in the older list form; the user's file re-enables one of them
    (labconfig / "page_config.d" / "pkg.json").write_text(
        json.dumps({"disabledExtensions": ["old-style-ext", "back-on-ext"]}), encoding="utf-8")
    page_config = labconfig / "page_config.json"
    page_config.write_text(json.dumps({"disabledExtensions": {"off-ext": True, "never-installed-ext": True,
                                                              "back-on-ext": False}}), encoding="utf-8")
    found = _probe()
    assert _codes(found) == ["EN254", "EN254"]
    assert [f.evidence for f in found] == [
        {"extension": "off-ext", "page_config": str(page_config)},
        {"extension": "old-style-ext", "page_config": str(labconfig / "page_config.d" / "pkg.json")}]
    assert all(f.severity == "info" for f in found)
    assert found[0].fix.startswith("`jupyter labextension enable off-ext`")


def _tgz(path: Path, package: dict[str, Any]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("package/package.json", json.dumps(package)), ("package/index.js", "module.exports=[];")):
            blob = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_source_extension_not_in_the_build_needs_a_rebuild(jupyter_home: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "lab-app"
    (app / "static").mkdir(parents=True)
    (app / "extensions").mkdir()
    (app / "static" / "package.json").write_bytes((LAB_PACKAGE / "static" / "package.json").read_bytes())
    monkeypatch.setenv("JUPYTERLAB_DIR", str(app))
    assert _probe() == []  # the built application, nothing added: no build check, nothing to say
    _tgz(app / "extensions" / "src-ext-0.1.0.tgz",
         {"name": "src-ext", "version": "0.1.0", "main": "index.js", "jupyterlab": {"extension": True},
          "dependencies": {"@jupyterlab/application": f"^{LAB_MAJOR}.0.0"}})
    found = _probe()
    assert _codes(found) == ["EN255"]
    assert found[0].evidence == {"messages": ["src-ext needs to be included in build"]}
    assert found[0].severity == "warning"


def test_server_command_reports_them_as_json(jupyter_home: dict[str, Path], run_cli: Callable[..., tuple[int, str, str]]) -> None:
    _labext(jupyter_home["data"], "old-ext", deps={"@jupyterlab/application": "^3.1.0"})
    code, out, _err = run_cli("server", "--format", "json")
    doc = json.loads(out)
    mine = [f for f in doc["findings"] if f["code"] in ("EN252", "EN253", "EN254", "EN255")]
    assert [(f["code"], f["severity"], f["evidence"]["requires"]) for f in mine] == [
        ("EN252", "error", "@jupyterlab/application ^3.1.0")]
    assert code == 1
    assert "lab-extensions" in doc["server"]["probes"]
