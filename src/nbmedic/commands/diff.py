"""``nbmedic diff``: a cell-aware diff of two notebooks, or git's textconv rendering of one.

Forms:

* ``nbmedic diff A B`` — the terminal diff (also as a git difftool: ``nbmedic diff $LOCAL $REMOTE``);
  exit 0 when the notebooks are the same, 1 when they differ, 2 when one is not a notebook;
* ``nbmedic diff --textconv FILE`` — git's ``diff.nbmedic.textconv`` (git appends the path): a text
  rendering on stdout.  A file that is not a notebook is passed through as it is (``git diff`` never
  fails because of it);
* seven arguments (``GIT_EXTERNAL_DIFF``: path old-file old-hex old-mode new-file new-hex new-mode)
  diff the old and new files.

``/dev/null`` (a file git creates or deletes) reads as an empty notebook.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from nbmedic.ansi import colour_wanted, paint
from nbmedic.errors import UsageError
from nbmedic.notebook.format import empty_notebook
from nbmedic.notebook.io import NotebookReadError, load_bytes
from nbmedic.vcs.diff import diff_notebooks, textconv

_COLOURS = {"file": "1", "cell": "1", "hunk": "36", "add": "32", "del": "31", "change": "33"}


def _read(path: str) -> tuple[dict[str, Any], bytes]:
    if path == os.devnull:
        return empty_notebook(), b""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    try:
        nb = load_bytes(data)
    except NotebookReadError as exc:
        raise UsageError(f"{path}: not a notebook: {exc}") from None
    if not isinstance(nb.get("cells"), list) and isinstance(nb.get("worksheets"), list):
        raise UsageError(f"{path}: nbformat 3 notebooks cannot be diffed; convert it first "
                         "(`jupyter nbconvert --to notebook --nbformat 4`)")
    return nb, data


def _textconv(path: str, args: argparse.Namespace) -> int:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    try:
        nb = load_bytes(data)
        text = textconv(nb, outputs=not args.ignore_outputs, metadata=not args.ignore_metadata)
    except NotebookReadError as exc:  # git must still be able to diff it: show it as it is
        print(f"nbmedic diff: {path}: not a notebook ({exc}); shown as plain text", file=sys.stderr)
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return 0
    sys.stdout.write(text)
    return 0


def _use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return colour_wanted(sys.stdout)


def run(args: argparse.Namespace) -> int:
    files: list[str] = args.files
    if args.textconv:
        if len(files) != 1:
            raise UsageError("--textconv takes exactly one FILE")
        return _textconv(files[0], args)
    if len(files) == 7:  # GIT_EXTERNAL_DIFF: path old-file old-hex old-mode new-file new-hex new-mode
        names, files = (f"a/{files[0]}", f"b/{files[0]}"), [files[1], files[4]]
    elif len(files) == 2:
        names = (files[0], files[1])
    else:
        raise UsageError(f"diff takes two notebooks (A B), not {len(files)} argument(s)")

    a, data_a = _read(files[0])
    b, data_b = _read(files[1])
    if data_a == data_b and files[0] != os.devnull and files[1] != os.devnull:
        return 0
    lines = diff_notebooks(a, b, names=names, outputs=not args.ignore_outputs,
                           metadata=not args.ignore_metadata)
    if not lines:
        return 0
    colour = _use_colour(args.color)
    out = [f"--- {names[0]}", f"+++ {names[1]}"]
    if colour:
        out = [paint(line, "1") for line in out]
    for line in lines:
        code = _COLOURS.get(line.kind) if colour else None
        out.append(paint(line.text, code) if code else line.text)
    sys.stdout.write("\n".join(out) + "\n")
    return 1
