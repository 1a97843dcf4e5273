"""``nbmedic merge``: a 3-way, cell-aware notebook merge; also git's merge driver.

Forms:

* ``nbmedic merge BASE LOCAL REMOTE [-o OUT]`` — the merged notebook goes to OUT (atomically) or
  to stdout; exit 0 when clean, 1 while conflicts remain, 2 when an input is not a notebook;
* ``nbmedic merge --driver %O %A %B %L %P`` — git's ``merge.nbmedic.driver``: the result replaces
  %A (the local version), exit 0 when clean, 1 while conflicts remain.  When a side is not a
  notebook, %A is left untouched, one line says why and the exit code is 1 (git reports a conflict).

An empty BASE (git's add/add conflicts) merges the two sides with each other (a 2-way merge: every
cell either side has is kept).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.notebook.io import (
    NotebookReadError,
    atomic_write_bytes,
    detect_newline,
    dumps,
    encode_text,
    load_bytes,
)
from nbmedic.vcs.merge import MergeInputError, MergeResult, check_notebook, merge3

EXIT_CLEAN, EXIT_CONFLICTS, EXIT_BAD_INPUT = 0, 1, 2


class _BadInput(Exception):
    pass


def _load(path: str, name: str, *, empty_ok: bool = False) -> tuple[dict[str, Any] | None, bytes]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise _BadInput(f"cannot read the {name} version {path}: {exc.strerror or exc}") from None
    if empty_ok and not data.strip():
        return None, data
    try:
        nb = load_bytes(data)
        check_notebook(nb, f"the {name} version")
    except (NotebookReadError, MergeInputError) as exc:
        raise _BadInput(f"the {name} version is not a notebook: {exc}") from None
    return nb, data


@dataclass
class _Call:
    base: str
    local: str
    remote: str
    shown: str  # the name git shows (%P), else LOCAL
    marker_size: int
    target: str | None  # where the result goes (None: stdout)


def _call(args: argparse.Namespace) -> _Call:
    """The arguments of either form, checked."""
    files: list[str] = args.files
    if args.driver:
        if not 3 <= len(files) <= 5:
            raise UsageError("--driver takes %O %A %B [%L [%P]]")
        if args.output:
            raise UsageError("--driver writes into %A; -o cannot be used with it")
    elif len(files) != 3:
        raise UsageError(f"merge takes BASE LOCAL REMOTE, not {len(files)} argument(s)")
    marker_size = 7
    if len(files) >= 4:
        try:
            marker_size = max(7, int(files[3]))
        except ValueError:
            raise UsageError(f"conflict marker size {files[3]!r} is not a number") from None
    shown = files[4] if len(files) == 5 else files[1]
    target = files[1] if args.driver else args.output
    return _Call(files[0], files[1], files[2], shown, marker_size, target)


def _merge(call: _Call, strategy: Any) -> tuple[bytes, MergeResult]:
    """The merged notebook's bytes (in LOCAL's line endings) and what happened; raises _BadInput."""
    base = _load(call.base, "base", empty_ok=True)[0]
    local, local_data = _load(call.local, "local")
    remote = _load(call.remote, "remote")[0]
    assert local is not None and remote is not None
    newline = detect_newline(local_data)
    del local_data  # large notebooks: hold as little at once as possible
    result = merge3(base, local, remote, strategy=strategy, marker_size=call.marker_size)
    del base, local, remote
    data = encode_text(dumps(result.nb, newline))
    result.nb = {}
    return data, result


def _report(call: _Call, result: MergeResult) -> int:
    for note in result.notes:
        print(f"nbmedic merge: {call.shown}: {note}", file=sys.stderr)
    for conflict in result.conflicts:
        print(f"nbmedic merge: {call.shown}: CONFLICT {conflict}", file=sys.stderr)
    if result.conflicts:
        cells = ", ".join(map(str, result.conflict_cells))
        print(f"nbmedic merge: {call.shown}: {len(result.conflicts)} conflict(s) in cell(s) {cells}: resolve "
              "them, delete the <<<<<<< / ======= / >>>>>>> lines and remove the 'nbmedic-conflict' tag",
              file=sys.stderr)
        return EXIT_CONFLICTS
    return EXIT_CLEAN


def run(args: argparse.Namespace) -> int:
    call = _call(args)
    try:
        data, result = _merge(call, args.strategy)
    except _BadInput as exc:
        if args.driver:
            print(f"nbmedic merge: {call.shown}: {exc}; left the local version as it was", file=sys.stderr)
            return EXIT_CONFLICTS
        print(f"nbmedic: error: {call.shown}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if call.target is not None:
        try:
            atomic_write_bytes(call.target, data)
        except OSError as exc:
            print(f"nbmedic merge: cannot write {call.target}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CONFLICTS if args.driver else EXIT_BAD_INPUT
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return _report(call, result)
