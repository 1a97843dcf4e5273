"""Build real nbformat-4 notebooks for tests (through nbformat's own constructors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4


def code(source: str = "", *, count: int | None = None, outputs: list[Any] | None = None,
         **fields: Any) -> Any:
    cell = v4.new_code_cell(source, execution_count=count, outputs=outputs or [], **fields)
    return cell


def md(source: str = "", **fields: Any) -> Any:
    return v4.new_markdown_cell(source, **fields)


def stream(text: str, name: str = "stdout") -> Any:
    return v4.new_output("stream", name=name, text=text)


def display(data: dict[str, Any], **fields: Any) -> Any:
    return v4.new_output("display_data", data=data, **fields)


def result(data: dict[str, Any], count: int) -> Any:
    return v4.new_output("execute_result", data=data, execution_count=count)


def error(ename: str = "ValueError", evalue: str = "bad", traceback: list[str] | None = None) -> Any:
    return v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback or [f"{ename}: {evalue}"])


def notebook(*cells: Any, kernel: str | None = "python3", **metadata: Any) -> Any:
    nb = v4.new_notebook(cells=list(cells))
    if kernel is not None:
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
    nb.metadata.update(metadata)
    return nb


def write(path: Path, nb: Any) -> Path:
    """Write as Jupyter would (nbformat.write), so files are exactly what users have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        nbformat.write(nb, fh)
    return path


def write_raw(path: Path, doc: Any) -> Path:
    """Write any JSON document (possibly invalid as a notebook) with nbformat's layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
