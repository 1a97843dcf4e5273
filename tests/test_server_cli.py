"""``nbmedic server`` as a whole: a healthy fresh installation gives no finding, the JSON names every probe
with its time, and the installation's extension run started before the command is imported is the one the
probes use."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nbmedic.cli import build_parser
from nbmedic.commands.server_prelude import prestart
from nbmedic.envs.server import PROBES, extensions, where

Run = Callable[..., tuple[int, str, str]]


def test_a_healthy_fresh_installation_gives_no_finding(jupyter_home: dict[str, Path], run_cli: Run) -> None:
    code, out, err = run_cli("server", "--format", "json")
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["findings"] == []
    assert set(doc["server"]["probes"]) == {name for name, _, _ in PROBES}
    assert all(isinstance(s, float) and s >= 0 for s in doc["server"]["probes"].values())
    assert doc["server"]["setup"]["runtime_dir"] == str(jupyter_home["runtime"])
    assert where._EARLY == {}  # the questions asked before the command was imported have been used


def test_the_early_run_is_the_one_the_probes_use(jupyter_home: dict[str, Path]) -> None:
    args = build_parser().parse_args(["server"])
    assert prestart(args) is True
    setup = args.server_setup
    early = dict(where._EARLY)
    assert len(early) == 2  # the extension run and the JupyterLab question
    facts = extensions.installation_facts(setup)
    assert facts is not None
    assert len(where._EARLY) == 1 and all(p.returncode == 0 for k, p in early.items() if k not in where._EARLY)
    where._abandon()


def test_no_early_run_when_its_codes_are_not_selected(jupyter_home: dict[str, Path], run_cli: Run) -> None:
    args = build_parser().parse_args(["server", "--select", "EN258,EN26"])
    assert prestart(args) is False and where._EARLY == {}
    code, out, _ = run_cli("server", "--select", "EN258,EN26", "--format", "json")
    assert code == 0 and set(json.loads(out)["server"]["probes"]) == {"which", "runtime"}


def test_the_doctor_asks_the_installation_ahead_and_uses_the_answers(jupyter_home: dict[str, Path], run_cli: Run,
                                                                      tmp_path: Path) -> None:
    nb = tmp_path / "empty.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    assert prestart(build_parser().parse_args(["doctor", str(nb), "--no-run"])) is True
    assert len(where._EARLY) == 2  # the extension run and the JupyterLab question, asked ahead
    code, out, err = run_cli("doctor", str(nb), "--no-run", "--format", "json")
    assert code == 0, out + err
    assert where._EARLY == {}  # answered for the doctor's server probes, not abandoned
    assert prestart(build_parser().parse_args(["doctor", str(nb), "--no-env"])) is False and where._EARLY == {}
