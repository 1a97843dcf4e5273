"""How many bytes an output, a mime value or a stream text takes in a notebook file, from the parsed
notebook (base64 images and text measured as strings; escapes ignored; JSON mime bundles serialised)."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["OutputSize", "bundle_size", "output_size", "value_size"]


def _str_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def value_size(value: Any) -> int:
    """Bytes a mime value or stream text takes in the file (close enough: escapes are ignored)."""
    if isinstance(value, str):
        return _str_size(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(_str_size(v) for v in value)
    if value is None:
        return 0
    import orjson

    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return len(repr(value))


class OutputSize(NamedTuple):
    bytes: int
    cell: int
    output: int | None  # None for a markdown attachment
    mime_type: str  # the largest part of the output
    output_type: str
    attachment: str | None = None

    def as_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cell": self.cell, "output": self.output, "mime_type": self.mime_type,
                               "output_type": self.output_type, "bytes": self.bytes}
        if self.attachment is not None:
            out["attachment"] = self.attachment
        return out


def bundle_size(bundle: Any) -> tuple[int, str]:
    """(total bytes, largest mime type) of a mime bundle."""
    if not isinstance(bundle, dict):
        return 0, ""
    total, best, best_size = 0, "", -1
    for mime, value in bundle.items():
        size = value_size(value)
        total += size
        if size > best_size:
            best, best_size = str(mime), size
    return total, best


def output_size(cell: int, index: int, output: dict[str, Any]) -> OutputSize:
    kind = output.get("output_type")
    kind = kind if isinstance(kind, str) else "unknown"
    if kind == "stream":
        name = output.get("name")
        return OutputSize(value_size(output.get("text")), cell, index,
                          f"stream/{name if isinstance(name, str) else 'unknown'}", kind)
    if kind == "error":
        size = value_size(output.get("traceback")) + value_size(output.get("evalue"))
        return OutputSize(size, cell, index, "error/traceback", kind)
    size, mime = bundle_size(output.get("data"))
    return OutputSize(size, cell, index, mime or "none", kind)
