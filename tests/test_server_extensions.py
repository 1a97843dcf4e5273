"""`nbmedic server`'s server extensions (EN250) and classic Notebook settings (EN251): real extension packages
on PYTHONPATH, real config files in a private JUPYTER_CONFIG_DIR, the dev installation's own Python."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.envs.server import ServerContext, find_setup
from nbmedic.envs.server import extensions as ext_probe
from nbmedic.findings import Finding

Cli = Callable[..., tuple[int, str, str]]


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """broken_ext (raises on import), noload_ext (a point without a load function), good_ext (healthy)."""
    root = tmp_path / "pkgs"
    _package(root, "broken_ext", {"__init__.py": "raise RuntimeError('broken on purpose')\n"})
    _package(root, "noload_ext", {
        "__init__.py": "def _jupyter_server_extension_points():\n    return [{'module': 'noload_ext.sub'}]\n",
        "sub.py": "VALUE = 1\n"})
    _package(root, "good_ext", {"__init__.py": """\
        def _jupyter_server_extension_points():
            return [{'module': 'good_ext'}]

        def _load_jupyter_server_extension(serverapp):
            raise AssertionError('nbmedic must never call a load function')
        """})
    monkeypatch.setenv("PYTHONPATH", str(root))
    return root


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _enable(config: Path, name: str, enabled: bool, *, file: str | None = None) -> Path:
    target = config / (file or f"jupyter_server_config.d/{name}.json")
    return _write(target, json.dumps({"ServerApp": {"jpserver_extensions": {name: enabled}}}))


def _probe() -> tuple[list[Finding], dict[str, Any]]:
    ctx = ServerContext(find_setup())
    found = ext_probe.findings(ctx)
    facts = ext_probe.installation_facts(ctx.setup)
    assert facts is not None, "the installation's Python gave no facts"
    return found, facts


def test_failing_extensions_are_errors_naming_the_file_that_enables_them(
        jupyter_home: dict[str, Path], packages: Path, run_cli: Cli) -> None:
    config = jupyter_home["config"]
    broken_file = _enable(config, "broken_ext", True)
    noload_file = _enable(config, "noload_ext", True, file="jupyter_server_config.json")
    _enable(config, "good_ext", True)
    _enable(config, "not_installed_but_disabled", False)

    found, facts = _probe()
    en250 = sorted((f for f in found if f.code == "EN250"), key=lambda f: f.evidence["extension"])
    assert [f.evidence["extension"] for f in en250] == ["broken_ext", "noload_ext"]
    broken, noload = en250
    assert broken.severity == "error"
    assert broken.path == str(broken_file)
    assert broken.evidence["stage"] == "import" and broken.evidence["module"] == "broken_ext"
    assert broken.evidence["error"] == "RuntimeError: broken on purpose"
    assert broken.evidence["config_file"] == str(broken_file)
    assert broken.evidence["interpreter"] == find_setup().python
    assert broken.message == "server extension broken_ext fails to import: RuntimeError: broken on purpose"
    assert noload.evidence["stage"] == "load-function" and noload.evidence["module"] == "noload_ext.sub"
    assert noload.evidence["config_file"] == str(noload_file)
    names = {e["name"]: e for e in facts["extensions"]}
    assert names["good_ext"]["failures"] == []  # imported, listed, its load function found and never called
    assert "not_installed_but_disabled" not in names

    code, out, err = run_cli("server", "--format", "json", "--select", "EN250")
    assert code == 1, err
    doc = json.loads(out)
    assert sorted((f["evidence"]["extension"], f["evidence"]["stage"]) for f in doc["findings"]) == [
        ("broken_ext", "import"), ("noload_ext", "load-function")]
    assert "server-extensions" in doc["server"]["probes"]


def test_later_files_disable_what_earlier_ones_enable(jupyter_home: dict[str, Path], packages: Path) -> None:
    """jupyter_server's order: a folder's .json wins over its .d/*.json; the traitlets value
    (jupyter_server_config.py) wins over every JSON enable."""
    config = jupyter_home["config"]
    _enable(config, "broken_ext", True)
    _enable(config, "broken_ext", False, file="jupyter_server_config.json")
    _enable(config, "noload_ext", True)
    _write(config / "jupyter_server_config.py",
           "c.ServerApp.jpserver_extensions.update({'noload_ext': False, 'good_ext': True})\n")

    found, facts = _probe()
    assert [f for f in found if f.code == "EN250"] == []
    assert facts["jpserver_extensions"]["broken_ext"] is False
    assert facts["jpserver_extensions"]["noload_ext"] is False
    good = next(e for e in facts["extensions"] if e["name"] == "good_ext")
    assert good["config_file"] == str(config / "jupyter_server_config.py")


def test_classic_notebook_settings_jupyter_server_ignores(jupyter_home: dict[str, Path], packages: Path) -> None:
    config = jupyter_home["config"]
    server_py = _write(config / "jupyter_server_config.py", """\
        c.NotebookApp.port = 9999
        c.NotebookApp.token = "secret"
        c.NotebookApp.password = "sha1:abc"
        c.NotebookApp.nbserver_extensions = {"good_ext": True}
        c.ServerApp.port = 8888
        """)
    notebook_py = _write(config / "jupyter_notebook_config.py", "c.NotebookApp.ip = '0.0.0.0'\n")
    notebook_json = _write(config / "jupyter_notebook_config.json",
                           json.dumps({"NotebookApp": {"nbserver_extensions": {"broken_ext": True}}}))

    found, facts = _probe()
    en251 = {(f.path, f.evidence["setting"]): f.evidence["replacement"] for f in found if f.code == "EN251"}
    assert en251[(str(server_py), "NotebookApp.port")] == "ServerApp.port"
    assert en251[(str(server_py), "NotebookApp.token")] == "IdentityProvider.token"
    assert en251[(str(server_py), "NotebookApp.password")] == "PasswordIdentityProvider.hashed_password"
    assert en251[(str(server_py), "NotebookApp.nbserver_extensions.good_ext")] == \
        "ServerApp.jpserver_extensions.good_ext"
    assert all(setting != "ServerApp.port" for _, setting in en251)
    # jupyter_notebook_config.py counts only when nothing installed here reads it
    reads_notebook_config = facts["readers"]["notebook_reader"]
    assert ((str(notebook_py), "NotebookApp.ip") in en251) is (not reads_notebook_config)
    # JupyterLab's own jupyter_notebook_config.d/jupyterlab.json enables jupyterlab for the classic
    # Notebook too: jupyter_server enables it itself, so nothing is lost and nothing is said
    assert not any(setting.endswith(".jupyterlab") for _, setting in en251)
    assert all(f.severity == "warning" for f in found if f.code == "EN251")
    # notebook_shim (enabled by this installation) adds the JSON file's nbserver_extensions to the server:
    # then broken_ext really is loaded, and fails
    legacy = [f for f in found if f.evidence.get("config_file") == str(notebook_json)]
    assert [f.code for f in legacy] == (["EN250"] if facts["readers"]["notebook_shim"] else ["EN251"])
