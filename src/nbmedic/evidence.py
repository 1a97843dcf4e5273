"""The evidence layout of every finding code: which keys it carries, in which order, and in which unit.

One layout per code: every finding of a code carries only the keys declared here (a key may be left
out when the fact is unknown).  The JSON output gives the raw values (bytes, seconds and counts as plain
numbers); the text report formats each value by its declared unit, never by guessing from the key's
name, and shows the keys in the order declared here.

Units:

``bytes``    a size in bytes                    ``1.1 MiB``
``seconds``  a duration in seconds              ``0.397 s``
``count``    how many of something              ``12,000``
``lines``    a number of lines of text          ``12,000 lines``
``fraction`` a share between 0 and 1            ``4.2 %``
``number``   an index, line number, code or id  ``18``
``text``     words; when multi-line, the last lines matter most (tracebacks, logs, stderr)
``stack``    a stack dump; the first lines matter most (innermost frame first)

A unit applies to a value, to each item of a list and to each value of a mapping, at any depth; a
nested layout ``key:{sub:unit,...}`` gives the unit of each key of a mapping (or of each mapping in a
list).  Booleans read ``yes``/``no`` whatever the unit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, Union

Unit = Literal["bytes", "seconds", "count", "lines", "fraction", "number", "text", "stack"]
UNITS: frozenset[str] = frozenset(("bytes", "seconds", "count", "lines", "fraction", "number", "text", "stack"))
UnitSpec = Union[str, Mapping[str, "UnitSpec"]]  # noqa: UP007 - a recursive alias needs Union: a Unit, or a nested layout
Layout = Mapping[str, UnitSpec]

STRICT_ENV = "NBMEDIC_STRICT_EVIDENCE"  # set (the test suite does): an undeclared key is an error

# What every kernel death carries (RN100-RN103: one set of facts, classified into one of four codes);
# each code shows first the facts that explain it.
_DEATH_FACTS = {
    "memory": "peak_rss:bytes limit:bytes limits:bytes top_allocation top_allocation_bytes:bytes top_allocation_line "
              "cells_growing_rss:{cell:number,rss_growth:bytes} "
              "killed_by_watchdog killed_by_nbmedic cgroup_oom_kills:count host_oom_kills:count",
    "signal": "signal",
    # a death of a live kernel: the incident to read first (`nbmedic incidents show ID`)
    "live": "incident incident_time",
    "crash": "fatal_error crash_function cell_line:number cell_function stack:stack crash_file crash_thread_is_main",
    "exit": "exit_code seconds_into_cell:seconds stderr_tail",
    "rest": "rss_trend:{rss_first:bytes,rss_last:bytes,rss_max:bytes,seconds:seconds,rss_growth_per_s:bytes} "
            "cgroup:{version:number,limit:bytes,usage:bytes} pid:number "
            # a death of a live (monitored) kernel: nbmedic monitor / kernel-wrapper
            "live_session kernel_id notebook execution_count:number cell_source "
            "oom_kill_line guard_interrupts:count",
}


def _death(*order: str) -> str:
    return " ".join(_DEATH_FACTS[part] for part in order)


_STACK = "where cell_line:number cell_function stack:stack stack_method threads:count stack_error"
_LOG = "count:count first_line:text last_line:text lines:number source"  # every LG code starts so

_LAYOUTS: dict[str, str] = {
    "NB000": "error errno:number",
    "NB001": "problem title reason error line:number column:number near size:bytes encoding first_bytes "
             "offset:number bytes type nbformat cells_started:count tail",
    "NB002": "conflicts:count markers:count marker_lines:number line:number column:number problem",
    "NB003": "nbformat errors:{path:text,message:text} count:count",
    "NB004": "nbformat_minor:number cells_with_id:number cells:number count:count id",
    "NB010": "outputs:count cells_with_outputs:number cells_with_execution_count:number first_cell:number config",
    "NB011": "breaks:{cell:number,count:number,previous_cell:number,previous_count:number} count:count",
    "NB012": "cells:number count:count first_executed_cell:number last_executed_cell:number",
    "NB013": "first_count:number last_count:number executed_cells:count gaps:number",
    "NB020": "size:bytes limit:bytes limit_name save_limits:{name:text,bytes:bytes,effect:text} "
             "largest_outputs:{cell:number,output:number,mime_type:text,output_type:text,bytes:bytes,attachment:text}",
    "NB021": "bytes:bytes limit:bytes cell:number output:number mime_type output_type attachment",
    "NB022": "lines:lines limit:lines output:number name",
    "NB070": "lines:lines limit:lines",
    "NB071": "names count:count limit:number read_by:number",
    "NB030": "missing kernelspec language_info",
    "NB031": "kernel display_name installed",
    "NB040": "paths lines:number count:count",
    "NB041": "modules cells:number interpreter kernel installs_in_notebook:number",
    "NB050": "widgets:count cells:number model_ids saved_state",
    "NB051": "errors:{cell:number,ename:text,evalue:text} count:count",
    "NB060": "cells:number tagged:number markers:number count:count",
    "RN100": _death("live", "exit", "signal", "memory", "crash", "rest"),
    "RN101": _death("live", "memory", "signal", "exit", "crash", "rest"),
    "RN102": _death("live", "signal", "crash", "exit", "memory", "rest"),
    "RN103": _death("live", "exit", "signal", "crash", "memory", "rest"),
    "RN110": f"cell_timeout:seconds elapsed:seconds {_STACK} interrupted escalated exit_code",
    "RN111": f"timeout:seconds elapsed:seconds {_STACK} interrupted escalated exit_code",
    "RN112": f"quiet_seconds:seconds stall_after:seconds {_STACK}",
    "RN120": "ename evalue traceback allow_errors",
    "RN130": "total:bytes max_output:bytes kept:bytes dropped:bytes",
    "RN140": "kernel error missing kernelspec argv exit_code signal stderr_tail installed pid:number",
    "RN141": "kernel startup_timeout:seconds argv stderr_tail pid:number heard",
    "RN150": "prompt password seconds_into_cell:seconds interrupted escalated",
    "RN160": "diff mime_types stored_outputs:count new_outputs:count image_sizes:bytes stored_cell:number",
    "RN170": "output error errno:number",
    "RN171": "error",
    "RN180": "worker error attempts:count scheduler",
    "EN200": "kernel argv resource_dir",
    "EN201": "kernel interpreter prefix python_version",
    "EN202": "kernel startup_timeout:seconds argv stderr_tail pid:number heard resource_dir",
    "EN203": "display_name kernels kernel active source shadowed",
    "EN204": "kernel display_name claimed actual notebook_version kernel_version interpreter",
    "EN210": "kernel kernel_prefix tools",
    "EN211": "kernel user_site prefix shadowed",
    "EN212": "kernel argv0 server_python python_on_path",
    "EN220": "package locked installed difference interpreter",
    "EN221": "locked current difference implementation interpreter",
    "EN222": "locked current",
    "EN223": "lock unpinned config",
    "EN230": "kernel extension profile error traceback_tail",
    "EN231": "kernel file kind error traceback_tail",
    "EN240": "needed:bytes limit:bytes available:bytes limit_source limits:bytes cgroup_usage:bytes",
    "EN241": "free:bytes total:bytes free_fraction:fraction mount paths min_free:bytes min_fraction:fraction",
    "EN250": "extension module stage error config_file interpreter",
    "EN251": "setting replacement config_file",
    "EN252": "extension requires jupyterlab package_json",
    "EN253": "extension locations used",
    "EN254": "extension page_config",
    "EN255": "messages",
    "EN256": "config_file error line:number",
    "EN257": "setting suggestion config_file",
    "EN258": "runtime_file pid:number url",
    "EN259": "url ip port:number pid:number runtime_file",
    "EN260": "runtime_dir problem free:bytes mode",
    "EN261": "commands interpreters",
    "EN262": "script interpreter",
    "EN242": "imports cuda_lines:{cell:number,line:number,text:text} cpu_fallback nvml_error "
             "devices:{index:number,name:text,total:bytes,free:bytes,used:bytes} CUDA_VISIBLE_DEVICES notebook",
    "LG300": f"{_LOG} kernel_id path n:count max:count ports oom_killer_lines:number",
    "LG301": f"{_LOG} kernel_id",
    "LG302": f"{_LOG} python",
    "LG303": f"{_LOG} python",
    "LG304": f"{_LOG} kernel_name",
    "LG305": _LOG,
    "LG306": f"{_LOG} seconds:seconds",
    "LG307": f"{_LOG} kernel_id",
    "LG308": _LOG,
    "LG309": f"{_LOG} where",
    "LG310": f"{_LOG} module",
    "LG311": f"{_LOG} rate",
    "LG312": _LOG,
    "LG313": f"{_LOG} seconds:seconds",
    "LG314": f"{_LOG} detail",
    "LG315": _LOG,
    "LG316": f"{_LOG} path error",
    "LG317": f"{_LOG} bytes:bytes name",
    "LG318": f"{_LOG} problem path",
    "LG319": f"{_LOG} problem ms:number key",
    "LG320": f"{_LOG} ext profile",
    "LG321": f"{_LOG} file",
    "LG322": f"{_LOG} error",
    "LG323": f"{_LOG} sub",
    "LG324": f"{_LOG} pid:number comm anon_rss scope",
    "LG325": f"{_LOG} status:number oom_killer_lines:number",
}


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside braces."""
    parts: list[str] = []
    depth = start = 0
    for i, ch in enumerate(text):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def parse_layout(text: str, sep: str = " ") -> dict[str, UnitSpec]:
    """``"size:bytes errors:{path:text,message:text} title"`` -> {"size": "bytes", "errors": {...}, ...}."""
    layout: dict[str, UnitSpec] = {}
    for item in _split(text.strip(), sep):
        key, _, unit = item.partition(":")
        if unit.startswith("{"):
            layout[key] = parse_layout(unit[1:-1], ",")
        else:
            unit = unit or "text"
            if unit not in UNITS:
                raise ValueError(f"unknown evidence unit {unit!r} for {key!r}")
            layout[key] = unit
    return layout


LAYOUTS: dict[str, dict[str, UnitSpec]] = {code: parse_layout(text) for code, text in _LAYOUTS.items()}


def layout(code: str) -> Mapping[str, UnitSpec]:
    return LAYOUTS.get(code, {})


def undeclared(code: str, evidence: Mapping[str, Any]) -> list[str]:
    """Keys of ``evidence`` that the layout of ``code`` does not declare."""
    declared = LAYOUTS.get(code, {})
    return [str(k) for k in evidence if k not in declared]


def strict() -> bool:
    return bool(os.environ.get(STRICT_ENV))
