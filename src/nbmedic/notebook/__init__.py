"""Notebook file I/O: fast reading with precise diagnosis, canonical writing, atomic replace."""

from nbmedic.notebook.io import (
    NotebookReadError,
    ReadProblem,
    atomic_write_bytes,
    canonical,
    conflict_markers,
    detect_newline,
    dumps,
    encode_text,
    load_bytes,
    read_notebook,
    write_notebook,
)

__all__ = [
    "NotebookReadError",
    "ReadProblem",
    "atomic_write_bytes",
    "canonical",
    "conflict_markers",
    "detect_newline",
    "dumps",
    "encode_text",
    "load_bytes",
    "read_notebook",
    "write_notebook",
]
