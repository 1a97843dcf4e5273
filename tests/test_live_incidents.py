"""`nbmedic incidents list/show` and doctor's findings from incidents, on records written through the store
(`save_incident`) as the supervisor writes them: the diagnosis made by the one death-diagnosis function."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from nbmedic.commands.incidents import since_epoch, sparkline
from nbmedic.errors import UsageError
from nbmedic.execute.forensics import DeathFacts, diagnose_death
from nbmedic.execute.result import CgroupInfo
from nbmedic.live.incidents import incident_findings, list_incidents, local_time, save_incident
from tests.nbfactory import code, notebook, write

Cli = Callable[..., tuple[int, str, str]]
GiB = 1 << 30
NOW = time.time()
OOM_LINE = "Memory cgroup out of memory: Killed process 4242 (python) total-vm:4194304kB, anon-rss:2090000kB"
FAULTHANDLER = """Thread 0x00007f0000000002 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 327 in wait

Fatal Python error: Segmentation fault

Current thread 0x00007f0000000001 (most recent call first):
  File "/opt/venv/lib/python3.11/site-packages/fastlib/_core.py", line 12 in crash_me
  File "/tmp/ipykernel_4243/4567.py", line 3 in <module>
  File "/opt/venv/lib/python3.11/site-packages/IPython/core/interactiveshell.py", line 3577 in run_code

Extension modules: fastlib._core (total: 1)
"""


def _live_extra(kernel_id: str, nb: Path, count: int, source: str) -> dict[str, Any]:
    return {"live_session": True, "kernel_id": kernel_id, "notebook": str(nb), "execution_count": count,
            "cell_source": source}


def _record(incident_id: str, when: float, nb: Path, facts: DeathFacts, *, kernel_id: str, cell: dict[str, Any],
            **fields: Any) -> dict[str, Any]:
    """An IncidentRecord as the supervisor builds it (live/incidents.py)."""
    facts.extra.update(incident=incident_id, incident_time=local_time(when))
    finding = diagnose_death(facts).to_dict()
    record = {"schema": 1, "id": incident_id, "time": when, "kernel_id": kernel_id, "kernelspec": "python3",
              "notebook": str(nb), "supervisor": "provisioner", "pid": facts.pid, "exit_code": facts.returncode,
              "signal": finding["evidence"].get("signal"), "finding": finding, "cell": cell,
              "memory": {"peak_rss": facts.peak_rss, "last_rss": None, "limits": {}, "timeline": []},
              "faulthandler": facts.faulthandler_text, "oom_kill_line": None, "guard": []}
    record.update(fields)
    return record


def oom_record(nb: Path, when: float, incident_id: str = "aaaa11112222") -> dict[str, Any]:
    """RN101: the OOM killer, with the memory timeline of the last seconds and a guard interrupt before."""
    source = "df = pd.read_csv('big.csv')\ndf['x'] = df.a * 2"
    facts = DeathFacts(path=str(nb), returncode=-9, cell_id="load", pid=4242, peak_rss=2 * GiB - (20 << 20),
                       cgroup_before=CgroupInfo(2, 2 * GiB, GiB, 0), cgroup_after=CgroupInfo(2, 2 * GiB, 2 * GiB, 1),
                       host_total=16 * GiB, cell_label="[7] \"df = pd.read_csv('big.csv')\"",
                       extra=_live_extra("k-oom-1", nb, 7, source))
    timeline = [[when - 30 + i * 0.5, (200 << 20) + i * (30 << 20), 95.0] for i in range(60)]
    guard = [{"time": when - 3, "action": "interrupt", "rss": int(1.8 * GiB), "limit": 2 * GiB,
              "limit_source": "cgroup", "share": 0.9, "execution_count": 7, "cell_id": "load"}]
    record = _record(incident_id, when, nb, facts, kernel_id="k-oom-1", oom_kill_line=OOM_LINE, guard=guard,
                     cell={"execution_count": 7, "cell_id": "load", "source_head": source, "started": when - 31,
                           "seconds": 31.0},
                     memory={"peak_rss": facts.peak_rss, "last_rss": timeline[-1][1],
                             "limits": {"the cgroup v2 memory limit": 2 * GiB, "the machine's RAM": 16 * GiB},
                             "timeline": timeline})
    record["finding"]["evidence"]["from_an_older_version"] = "dropped: no RN101 layout declares it"
    return record


def crash_record(nb: Path, when: float, incident_id: str = "bbbb55556666") -> dict[str, Any]:
    """RN102: a segfault in native code, with faulthandler's dump."""
    facts = DeathFacts(path=str(nb), returncode=-11, cell_id="crash", pid=4243, faulthandler_text=FAULTHANDLER,
                       cell_label='[3] "fastlib.crash_me()"', extra=_live_extra("k-crash-2", nb, 3, "fastlib.crash_me()"))
    return _record(incident_id, when, nb, facts, kernel_id="k-crash-2",
                   cell={"execution_count": 3, "cell_id": "crash", "source_head": "fastlib.crash_me()",
                         "started": when - 0.2, "seconds": 0.2})


def exit_record(nb: Path, when: float, incident_id: str = "aaaa33334444") -> dict[str, Any]:
    """RN103: the kernel exited by itself, between cells."""
    facts = DeathFacts(path=str(nb), returncode=3, pid=4244, extra={"live_session": True})
    return _record(incident_id, when, nb, facts, kernel_id="k-exit-3", cell=None)


@pytest.fixture
def store(jupyter_home: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """Three incidents: RN103 ten days ago and RN101 two hours ago on analysis.ipynb, RN102 yesterday on
    crash.ipynb."""
    analysis = write(tmp_path / "analysis.ipynb", notebook(code("import pandas as pd", id="imports"),
                                                             code("df = pd.read_csv('big.csv')", id="load")))
    crash = write(tmp_path / "crash.ipynb", notebook(code("fastlib.crash_me()", id="crash")))
    records = {"old": exit_record(analysis, NOW - 10 * 86400), "crash": crash_record(crash, NOW - 26 * 3600),
               "oom": oom_record(analysis, NOW - 2 * 3600)}
    for record in records.values():
        save_incident(record)
    return {"analysis": analysis, "crash": crash, **records}


def test_list_one_line_per_incident_oldest_first(store: dict[str, Any], run_cli: Cli) -> None:
    code_, out, err = run_cli("incidents")
    assert code_ == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["aaaa33334444", "bbbb55556666", "aaaa11112222"]
    oom = lines[2]
    assert oom.startswith(f"aaaa11112222  {local_time(store['oom']['time'])}  analysis.ipynb  RN101  ")
    message = oom.split("  RN101  ", 1)[1]
    assert len(message) <= 100 and message.endswith("...")  # the diagnosis is longer: cut
    assert store["oom"]["finding"]["message"].startswith(message[:-3])
    assert "  crash.ipynb  RN102  the kernel was killed by SIGSEGV" in lines[1]
    assert run_cli("incidents", "list")[1] == out


def test_list_filters_by_time_and_notebook(store: dict[str, Any], run_cli: Cli) -> None:
    def ids(*args: str) -> list[str]:
        code_, out, err = run_cli("incidents", "list", *args)
        assert code_ == 0, err
        return [line.split()[0] for line in out.splitlines() if not line.startswith("no incidents")]

    assert ids("--since", "3h") == ["aaaa11112222"]
    assert ids("--since", "2d") == ["bbbb55556666", "aaaa11112222"]
    assert ids("--since", "180m") == ids("--since", "3h")
    assert ids("--since", "30d") == ids()
    assert ids("--since", "15m") == []
    minute = local_time(store["crash"]["time"])[:16]  # 'YYYY-MM-DD HH:MM', before the crash's seconds
    assert ids("--since", minute) == ["bbbb55556666", "aaaa11112222"]
    day = local_time(store["old"]["time"])[:10]
    assert ids("--since", day) == ids()
    clock = local_time(store["oom"]["time"])[11:16]  # a time of day: today at that time
    today = datetime.combine(date.today(), datetime.strptime(clock, "%H:%M").time()).timestamp()
    assert ids("--since", clock) == [r["id"] for r in list_incidents() if r["time"] >= today]
    assert ids("--notebook", "analysis.ipynb") == ["aaaa33334444", "aaaa11112222"]
    assert ids("--notebook", str(store["crash"]), "--since", "3h") == []
    code_, out, _ = run_cli("incidents", "--notebook", "other.ipynb")
    assert code_ == 0 and out.startswith("no incidents recorded")
    code_, _, err = run_cli("incidents", "--since", "yesterday")
    assert code_ == 2 and "--since 'yesterday': expected a time such as" in err and len(err.splitlines()) == 1
    code_, _, err = run_cli("incidents", "list", "aaaa")
    assert code_ == 2 and "nbmedic incidents show aaaa" in err


def test_list_json_gives_the_records(store: dict[str, Any], run_cli: Cli) -> None:
    code_, out, err = run_cli("incidents", "--format", "json", "--since", "2d")
    assert code_ == 0, err
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["incidents"] == json.loads(json.dumps([store["crash"], store["oom"]]))


def test_show_an_oom_kill(store: dict[str, Any], run_cli: Cli) -> None:
    code_, out, err = run_cli("incidents", "show", "aaaa1")
    assert code_ == 0, err
    lines = out.splitlines()
    assert lines[0] == "incident aaaa11112222"
    assert f"  time        {local_time(store['oom']['time'])}" in lines
    assert "  kernel      k-oom-1 (python3, provisioner, pid 4242)" in lines
    assert "  notebook    analysis.ipynb" in lines
    assert "  cell        [7] id load, had run 31.0 s" in lines
    assert "                | df = pd.read_csv('big.csv')" in lines and "                | df['x'] = df.a * 2" in lines
    cause = next(line for line in lines if line.startswith("  cause       "))
    assert cause == "  cause       RN101 " + store["oom"]["finding"]["message"]
    assert "  fix         reduce the memory the named cell needs" in out
    assert "  exit        signal SIGKILL" in lines
    assert "  memory      peak 2.0 GiB, last 1.9 GiB" in lines
    assert "  limits      the cgroup v2 memory limit 2.0 GiB, the machine's RAM 16.0 GiB" in lines
    timeline = next(line for line in lines if line.startswith("  timeline    "))
    assert timeline.split()[1].startswith("▂▂") and timeline.split()[1].endswith("██")  # from 0 to the peak
    assert "200.0 MiB -> 1.9 GiB, peak 1.9 GiB" in timeline
    assert "over 29.5 s (60 samples)" in timeline
    assert f"  OOM killer  {OOM_LINE}" in lines
    guard_time = local_time(store["oom"]["guard"][0]["time"])[11:]
    assert f"  guard       {guard_time} interrupt at 1.8 GiB of 2.0 GiB (90 %, cgroup), cell [7]" in lines
    assert "    cgroup_oom_kills: 1" in lines and "    peak_rss: 2.0 GiB" in lines
    code_, out, err = run_cli("incidents", "show", "aaaa11112222", "--format", "json")
    assert code_ == 0 and json.loads(out) == json.loads(json.dumps(store["oom"]))


def test_show_a_native_crash(store: dict[str, Any], run_cli: Cli) -> None:
    code_, out, err = run_cli("incidents", "show", "bbbb")
    assert code_ == 0, err
    lines = out.splitlines()
    assert "  cause       RN102 the kernel was killed by SIGSEGV" in out
    assert "  exit        signal SIGSEGV" in lines and "  memory" not in out  # never sampled
    assert "  cell        [3] id crash, had run 0.2 s" in lines
    at = lines.index("  faulthandler")
    assert lines[at + 1] == "    Fatal Python error: Segmentation fault"  # the crash, not the dump before it
    assert any("in crash_me" in line for line in lines[at:])
    assert "    crash_function: crash_me" in lines
    assert not any(line.startswith("    stack:") for line in lines)  # the stack is the faulthandler's


def test_show_errors_are_one_line(store: dict[str, Any], run_cli: Cli) -> None:
    for args, words in ((("show",), "an incident id is needed"), (("show", "aaaa"), "is ambiguous"),
                        (("show", "zzzz"), "no incident 'zzzz'")):
        code_, out, err = run_cli("incidents", *args)
        assert code_ == 1 and out == "" and words in err and len(err.splitlines()) == 1, (args, err)
    assert "aaaa11112222, aaaa33334444" in run_cli("incidents", "show", "aaaa")[2]


def test_no_incidents(jupyter_home: dict[str, Path], run_cli: Cli) -> None:
    assert run_cli("incidents") == (0, "no incidents recorded\n", "")
    code_, out, _ = run_cli("incidents", "--format", "json")
    assert code_ == 0 and json.loads(out) == {"version": 1, "incidents": [], "findings": [], "files": [],
                                              "summary": {"files": 0, "error": 0, "warning": 0, "info": 0}}


def test_doctor_reports_recent_incidents_of_its_notebooks(store: dict[str, Any], run_cli: Cli) -> None:
    code_, out, err = run_cli("doctor", "--no-run", "--format", "json", "analysis.ipynb", "crash.ipynb")
    assert code_ == 1, err
    found = [f for f in json.loads(out)["findings"] if f["code"].startswith("RN10")]
    assert [(f["code"], f["path"]) for f in found] == [("RN101", "analysis.ipynb"), ("RN102", "crash.ipynb")]
    oom = found[0]  # the RN103 of ten days ago is older than doctor looks
    assert oom["message"] == f"in a live session at {local_time(store['oom']['time'])}, " + \
        store["oom"]["finding"]["message"]
    assert oom["cell"] == 1 and oom["cell_id"] == "load" and oom["severity"] == "error"
    assert oom["fix"].startswith("reduce the memory the named cell needs")
    evidence = oom["evidence"]
    assert evidence["live_session"] is True and evidence["incident"] == "aaaa11112222"
    assert evidence["incident_time"] == local_time(store["oom"]["time"])
    assert evidence["kernel_id"] == "k-oom-1" and evidence["notebook"] == str(store["analysis"])
    assert evidence["execution_count"] == 7 and evidence["oom_kill_line"] == OOM_LINE
    assert evidence["cgroup_oom_kills"] == 1 and "from_an_older_version" not in evidence
    assert found[1]["cell"] == 0 and found[1]["evidence"]["crash_function"] == "crash_me"
    code_, text, _ = run_cli("doctor", "--no-run", str(store["analysis"]))
    assert "✗ RN101 cell 1: in a live session at" in text, text
    code_, out, _ = run_cli("doctor", "--no-run", "--no-env", "--format", "json", "analysis.ipynb")
    assert not [f for f in json.loads(out)["findings"] if f["code"].startswith("RN")]


def test_incident_findings_keep_the_notebook_identity(store: dict[str, Any], tmp_path: Path) -> None:
    since = NOW - 30 * 86400
    relative = incident_findings("analysis.ipynb", since)
    absolute = incident_findings(str(store["analysis"]), since)
    assert [f.path for f in relative] == ["analysis.ipynb"] * 2 and [f.path for f in absolute] == [
        str(store["analysis"])] * 2
    assert [f.code for f in relative] == ["RN103", "RN101"] and relative[0].cell_id is None
    assert relative[1].cell is None  # no parsed notebook given: the cell's index is unknown
    assert incident_findings("analysis.ipynb", NOW - 3600) == []
    link = tmp_path / "link.ipynb"
    link.symlink_to(store["analysis"])
    assert [f.code for f in incident_findings(str(link), since)] == ["RN103", "RN101"]


def test_since_and_sparkline() -> None:
    now = datetime(2026, 3, 4, 12, 0).timestamp()
    assert since_epoch("2h", now=now) == now - 7200
    assert since_epoch("3d", now=now) == now - 3 * 86400 and since_epoch("15m", now=now) == now - 900
    assert since_epoch("2026-01-02 10:11", now=now) == datetime(2026, 1, 2, 10, 11).timestamp()
    assert since_epoch("2026-01-02", now=now) == datetime(2026, 1, 2).timestamp()
    assert since_epoch("10:11", now=now) == datetime(2026, 3, 4, 10, 11).timestamp()
    with pytest.raises(UsageError):
        since_epoch("2 fortnights", now=now)
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5.0] * 100, width=10) == "█" * 10
    assert sparkline([0, 1, 8], ascii_only=True) == "_.@" and sparkline([]) == ""


def test_reports_of_incidents_and_their_saved_document(store: dict[str, Any], run_cli: Cli, tmp_path: Path) -> None:
    page, saved = tmp_path / "incidents.html", tmp_path / "incidents.json"
    code_, out, err = run_cli("incidents", "--since", "2d", "--format", "json", "--report", str(page),
                              "--report", str(saved))
    assert code_ == 0, err
    doc = json.loads(out)
    assert json.loads(saved.read_text(encoding="utf-8")) == doc
    by_path = {f["path"]: f["code"] for f in doc["findings"]}  # each record's diagnosis, on its notebook
    crash = store["crash"]["notebook"]  # ("crash" is the record; its notebook is the path)
    assert by_path == {crash: "RN102", str(store["analysis"]): "RN101"}
    assert sorted(doc["files"]) == sorted([crash, str(store["analysis"])])
    html = page.read_text(encoding="utf-8")
    assert 'class="chart memory incident"' in html and "RN101" in html and "RN102" in html
    again = tmp_path / "again.html"
    code_, _, err = run_cli("report", str(saved), "-o", str(again))
    assert code_ == 0, err
    assert again.read_text(encoding="utf-8").count('<section class="notebook"') == html.count('<section class="notebook"')
    code_, _, err = run_cli("incidents", "show", "aaaa1", "--report", str(page))
    assert code_ == 2 and "--report goes with `incidents list`" in err
