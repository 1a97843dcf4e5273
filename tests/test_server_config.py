"""`nbmedic server`'s configuration files (EN256: cannot be loaded; EN257: a class or trait that does not
exist): real files in a private JUPYTER_CONFIG_DIR, loaded by the dev installation's own Python."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

from nbmedic.envs.server import ServerContext, find_setup
from nbmedic.envs.server import config as config_probe
from nbmedic.envs.server import extensions as ext_probe
from nbmedic.findings import Finding

Cli = Callable[..., tuple[int, str, str]]
MINE = "EN250,EN251,EN256,EN257"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _probe() -> list[Finding]:
    ctx = ServerContext(find_setup())
    return config_probe.findings(ctx)


def test_files_that_cannot_be_loaded(jupyter_home: dict[str, Path], run_cli: Cli) -> None:
    config = jupyter_home["config"]
    raising = _write(config / "jupyter_server_config.py", """\
        c.ServerApp.port = 8888

        def helper():
            return {}["missing"]

        c.ServerApp.ip = helper()
        """)
    syntax = _write(config / "jupyter_config.py", "c.ServerApp.open_browser = False\nc.ServerApp.ip = (\n")
    bad_json = _write(config / "jupyter_server_config.d/half.json", '{\n  "ServerApp": {\n    "port": 1,\n')
    nested_json = _write(config / "jupyter_config.json", '{"ServerApp": {"port": 1}}\n}\n')
    _write(config / "jupyter_nosuchapp_config.py", "raise RuntimeError('no application reads this file')\n")

    found = {f.path: f for f in _probe() if f.code == "EN256"}
    assert set(found) == {str(raising), str(syntax), str(bad_json), str(nested_json)}
    assert found[str(raising)].evidence == {"config_file": str(raising), "error": "KeyError: 'missing'",
                                            "line": 4}  # the innermost line of that file
    assert found[str(syntax)].evidence["error"].startswith("SyntaxError:")
    assert found[str(syntax)].evidence["line"] == 2
    assert found[str(bad_json)].evidence["error"].startswith("JSONDecodeError:")
    assert found[str(bad_json)].evidence["line"] == 4
    assert found[str(nested_json)].evidence["line"] == 2
    assert all(f.severity == "error" for f in found.values())

    code, out, err = run_cli("server", "--format", "json", "--select", "EN256")
    assert code == 1, err
    assert sorted(f["path"] for f in json.loads(out)["findings"]) == sorted(found)


def test_settings_that_name_no_class_or_trait(jupyter_home: dict[str, Path]) -> None:
    config = jupyter_home["config"]
    server = _write(config / "jupyter_server_config.py", """\
        c.ServerApp.prot = 1
        c.ServerApps.port = 2
        c.ServerApp.port = 8888
        c.IdentityProvider.token = ""
        c.FileContentsManager.preferred_dir = "/tmp"
        c.SomeExtensionNotInstalledApp.setting = 3
        c.NotebookApp.port = 9999
        """)
    lab = _write(config / "jupyter_lab_config.py",
                 "c.LabApp.user_settings_dirr = '/tmp'\nc.LabApp.collaborative = True\n")

    found = {(f.path, f.evidence["setting"]): f for f in _probe() if f.code == "EN257"}
    assert found[(str(server), "ServerApp.prot")].evidence["suggestion"] == "ServerApp.port"
    assert found[(str(server), "ServerApps.port")].evidence["suggestion"] == "ServerApp.port"
    assert "class" in found[(str(server), "ServerApps.port")].message
    assert found[(str(lab), "LabApp.user_settings_dirr")].evidence["suggestion"] == "LabApp.user_settings_dir"
    # the right names, a class merely not installed here, and NotebookApp (EN251's) are not typos
    assert {setting for path, setting in found if path == str(server)} == {"ServerApp.prot", "ServerApps.port"}
    assert {setting for path, setting in found if path == str(lab)} == {"LabApp.user_settings_dirr"}
    assert all(f.severity == "warning" for f in found.values())


def test_a_healthy_fresh_environment_has_nothing_to_say(jupyter_home: dict[str, Path], run_cli: Cli) -> None:
    code, out, err = run_cli("server", "--format", "json", "--select", MINE)
    doc = json.loads(out)
    assert doc["findings"] == [], doc["findings"]
    assert code == 0, err
    assert {"server-extensions", "config"} <= set(doc["server"]["probes"])
    facts = ext_probe.installation_facts(find_setup())
    assert facts is not None and facts["extensions"], "the dev installation enables server extensions"
    assert all(not e["failures"] for e in facts["extensions"])
