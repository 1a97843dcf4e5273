"""The incident store: one JSON record per kernel death under ``<data>/nbmedic/incidents``.

IncidentRecord::

    {"schema": 1, "id": str (12 hex), "time": float (epoch of the death), "kernel_id": str,
     "kernelspec": str | null, "notebook": str | null, "supervisor": "provisioner" | "wrapper",
     "pid": int | null, "exit_code": int | null, "signal": str | null,
     "finding": {code, severity, message, fix, cell_id, evidence}   (Finding.to_dict: the RN100-RN103 diagnosis)
     "cell": {"execution_count", "cell_id", "source_head", "started", "seconds"} | null,
     "memory": {"peak_rss": int, "last_rss": int | null, "limits": {name: bytes},
                "timeline": [[epoch, rss, cpu], ...]},
     "faulthandler": str, "oom_kill_line": str | null, "guard": GuardRecord | null}
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from collections.abc import Iterable
from typing import Any

from nbmedic.errors import NbmedicError
from nbmedic.live.paths import incident_path, incidents_dir, read_json, write_json

__all__ = ["find_incident", "list_incidents", "local_time", "new_incident_id", "save_incident"]

SCHEMA = 1


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


def _same_notebook(a: str | None, b: str) -> bool:
    if not a:
        return False
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


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
