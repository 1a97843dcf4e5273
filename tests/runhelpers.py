"""Shared helpers of the ``test_run_*`` tests: notebooks to run and kernelspecs to break."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.nbfactory import code, notebook, write


def make_nb(tmp_path: Path, *sources: str, name: str = "nb.ipynb", tags: dict[int, list[str]] | None = None,
            **metadata: Any) -> Path:
    cells = []
    for i, src in enumerate(sources):
        cell = code(src)
        if tags and i in tags:
            cell.metadata["tags"] = tags[i]
        cells.append(cell)
    return write(tmp_path / name, notebook(*cells, **metadata))


def read_out(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def text_of(cell: dict[str, Any]) -> str:
    """All stream text of a saved cell."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text = out["text"]
            parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def kernelspec(root: Path, name: str, argv: list[str], language: str = "python") -> Path:
    """A kernelspec folder under ``root/kernels/name`` (point JUPYTER_PATH at ``root``)."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": name, "language": language}), encoding="utf-8")
    return folder


PY = sys.executable
