"""The incident store: one JSON record per kernel death under ``<data>/nbmedic/incidents``.

IncidentRecord::

    {"schema": 1, "id": str (12 hex), "time": float (epoch of the death), "kernel_id": str,
     "kernelspec": str | null, "notebook": str | null, "supervisor": "provisioner" | "wrapper",
     "pid": int | null, "exit_code": int | null, "signal": str | null,
     "finding": {code, severity, message, fix, cell_id, evidence}   (Finding.to_dict: the RN100-RN103 diagnosis)
     "cell": {"execution_count", "cell_id", "source_head", "started", "seconds"} | null,
     "memory": {"peak_rss": int, "last_rss": int | null, "limits": {name: bytes},
                "timeline": [[epoch, rss, cpu], ...]},
     "faulthandler": str, "oom_kill_line": str | null, "guard": GuardRecord | [GuardRecord, ...] | null}

``incident_findings`` turns the recent incidents of a notebook into findings for ``doctor`` (the recorded
diagnosis, marked as coming from a live session).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from nbmedic.errors import NbmedicError
from nbmedic.evidence import layout
from nbmedic.findings import Finding, make
from nbmedic.live.paths import incident_path, incidents_dir, read_json, write_json
from nbmedic.notebook.cells import cell_id as _cell_id

__all__ = ["DEATH_CODES", "find_incident", "incident_finding", "incident_findings", "list_incidents", "local_time",
           "new_incident_id", "save_incident"]

SCHEMA = 1
DEATH_CODES = ("RN100", "RN101", "RN102", "RN103")  # the codes an incident's finding carries


def new_incident_id() -> str:
    return secrets.token_hex(6)


def save_incident(record: dict[str, Any]) -> str:
    """Write ``record`` (its ``id`` set when missing) atomically; return the file's path."""
    record.setdefault("schema", SCHEMA)
    record.setdefault("id", new_incident_id())
    path = incident_path(str(record["id"]))
    write_json(path, record)
    return path


def _records(folder: str) -> Iterable[dict[str, Any]]:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            record = read_json(os.path.join(folder, name))
            if record is not None and isinstance(record.get("id"), str):
                yield record


@functools.lru_cache(maxsize=4096)
def _resolved(norm: str) -> str:
    """``os.path.realpath`` of a normalised absolute path (doctor compares every notebook with every record)."""
    return os.path.realpath(norm)


def _same_notebook(a: str | None, b: str) -> bool:
    """The same notebook: equal as absolute normalised paths, or once symbolic links are resolved."""
    if not a:
        return False
    na, nb = os.path.normpath(os.path.abspath(a)), os.path.normpath(os.path.abspath(b))
    return na == nb or _resolved(na) == _resolved(nb)


def list_incidents(*, since: float | None = None, notebook: str | None = None) -> list[dict[str, Any]]:
    """Every readable record, oldest first; ``since`` (epoch) and ``notebook`` filter."""
    out = []
    for record in _records(incidents_dir()):
        when = record.get("time")
        if not isinstance(when, (int, float)):
            continue
        if since is not None and when < since:
            continue
        if notebook is not None and not _same_notebook(record.get("notebook"), notebook):
            continue
        out.append(record)
    return sorted(out, key=lambda r: (r["time"], r["id"]))


def find_incident(prefix: str) -> dict[str, Any]:
    """The record whose id starts with ``prefix``; NbmedicError when none or several match."""
    prefix = prefix.strip().rstrip("…").rstrip(".")
    if not prefix:
        raise NbmedicError("an incident id is needed (see `nbmedic incidents list`)")
    matches = [r for r in _records(incidents_dir()) if r["id"].startswith(prefix)]
    if not matches:
        raise NbmedicError(f"no incident {prefix!r} in {incidents_dir()} (see `nbmedic incidents list`)")
    if len(matches) > 1:
        ids = ", ".join(sorted(r["id"] for r in matches)[:5])
        raise NbmedicError(f"incident id {prefix!r} is ambiguous: {ids}")
    return matches[0]


def local_time(epoch: float) -> str:
    """``2026-11-30 10:42:13`` in local time."""
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


# --- findings for doctor --------------------------------------------------------------------------------


def _cell_index(nb: Mapping[str, Any] | None, ident: object) -> int | None:
    """The index of the cell with id ``ident`` in the notebook as it is now (None when not there)."""
    cells = nb.get("cells") if nb is not None else None
    if not isinstance(ident, str) or not isinstance(cells, list):
        return None
    return next((i for i, cell in enumerate(cells) if _cell_id(cell) == ident), None)


def _death_message(record: Mapping[str, Any]) -> str:
    """When the record has no diagnosis: what is known of the death."""
    if record.get("signal"):
        return f"the kernel died on {record['signal']}"
    if isinstance(record.get("exit_code"), int):
        return f"the kernel died with exit code {record['exit_code']}"
    return "the kernel died"


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def incident_finding(record: Mapping[str, Any], path: str, *, nb: Mapping[str, Any] | None = None) -> Finding:
    """The recorded diagnosis of one incident as a finding about the notebook ``path`` (its identity).

    Evidence: the recorded finding's (keys its code does not declare are dropped), the running cell, the
    OOM-killer line, and where it comes from (``live_session``, ``incident``, ``incident_time``...)."""
    recorded = _mapping(record.get("finding"))
    code = str(recorded["code"]) if recorded.get("code") in DEATH_CODES else "RN100"
    declared = layout(code)
    evidence = {k: v for k, v in _mapping(recorded.get("evidence")).items() if k in declared}
    cell = _mapping(record.get("cell"))
    if isinstance(cell.get("execution_count"), int):
        evidence.setdefault("execution_count", cell["execution_count"])
    if cell.get("source_head"):
        evidence.setdefault("cell_source", str(cell["source_head"]))
    if record.get("oom_kill_line"):
        evidence.setdefault("oom_kill_line", record["oom_kill_line"])
    when = local_time(float(record["time"]))
    evidence.update(live_session=True, incident=record["id"], incident_time=when,
                    kernel_id=record.get("kernel_id"), notebook=record.get("notebook"))
    message = str(recorded.get("message") or _death_message(record))
    ident = cell.get("cell_id") if isinstance(cell.get("cell_id"), str) else recorded.get("cell_id")
    return make(code, path, f"in a live session at {when}, {message}", cell=_cell_index(nb, ident),
                cell_id=ident if isinstance(ident, str) else None, evidence=evidence)


def incident_findings(notebook: str, since: float, *, nb: Mapping[str, Any] | None = None,
                      records: Iterable[Mapping[str, Any]] | None = None) -> list[Finding]:
    """A finding (RN100-RN103) for each incident of ``notebook`` at or after ``since`` (epoch), oldest first.

    ``notebook`` is the path as the command holds it (the findings' identity); ``nb``, the parsed
    notebook, places each finding on the cell that was running (by its id) when it is still there.
    ``records``: the store already read (``list_incidents``), when many notebooks are looked up."""
    if records is None:
        records = list_incidents(since=since, notebook=notebook)
    mine = [r for r in records if isinstance(r.get("time"), (int, float)) and r["time"] >= since
            and _same_notebook(r.get("notebook"), notebook)]
    return [incident_finding(r, notebook, nb=nb) for r in mine]
