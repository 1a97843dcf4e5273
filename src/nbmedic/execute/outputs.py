"""Kernel messages → a cell's saved outputs, as Jupyter front-ends save them.

* consecutive stream messages of the same name are merged into one output, and ``\\r`` / backspace are
  applied to the saved text (nbclient's ``coalesce_streams`` rules, applied line-locally as text arrives);
* ``clear_output(wait=True)`` clears just before the next output; ``update_display_data`` and outputs
  with a ``display_id`` update every output shown with that id, in any cell (nbclient's display-id map);
* ``max_output``: once the saved outputs of a cell pass the limit, further output is dropped and a marker
  line says how much (errors are always kept).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from nbmedic.units import format_bytes

__all__ = ["DisplayMap", "OutputCollector", "process_control_chars", "truncation_marker"]

_RGX_CARRIAGERETURN = re.compile(r".*\r(?=[^\n])")
_RGX_BACKSPACE = re.compile("[^\n\x08]\x08")  # nbclient's r"[^\n]\b" is a word boundary

DisplayMap = dict[str, list[dict[str, Any]]]


def process_control_chars(text: str) -> str:
    """Apply backspaces and carriage returns as a terminal would (nbclient's rules)."""
    if "\b" in text:
        old = None
        while old is None or len(text) < len(old):
            old = text
            text = _RGX_BACKSPACE.sub("", text)
    if "\r" in text:
        text = _RGX_CARRIAGERETURN.sub("", text)
    return text


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _size(out: dict[str, Any]) -> int:
    try:
        return len(orjson.dumps(out))
    except (TypeError, orjson.JSONEncodeError):
        return len(repr(out))


def truncation_marker(limit: int, dropped: int) -> str:
    return f"\n[nbmedic: output truncated after {format_bytes(limit)}; {format_bytes(dropped)} dropped]\n"


class OutputCollector:
    """The outputs of one cell as they arrive."""

    def __init__(self, displays: DisplayMap, max_output: int | None = None) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.displays = displays
        self.limit = max_output
        self.kept = 0  # bytes of the outputs now held
        self.dropped = 0  # bytes of output dropped for the limit
        self.execution_count: int | None = None
        self._clear_pending = False
        self._sizes: dict[int, int] = {}  # id(output) -> its size when counted

    # --- helpers ----------------------------------------------------------------------------

    def _apply_pending_clear(self) -> None:
        if self._clear_pending:
            self._clear_pending = False
            self._clear_now()

    def _clear_now(self) -> None:
        self.outputs.clear()
        self._sizes.clear()
        self.kept = 0

    def _room(self) -> int | None:
        return None if self.limit is None else self.limit - self.kept

    # --- messages -----------------------------------------------------------------------------

    def clear(self, wait: bool) -> None:
        if wait:
            self._clear_pending = True
        else:
            self._clear_pending = False
            self._clear_now()

    def stream(self, name: str, text: str) -> None:
        self._apply_pending_clear()
        if not text:
            return
        room = self._room()
        if room is not None:
            raw = text.encode("utf-8", "surrogatepass")
            if len(raw) > room:
                kept = raw[: max(room, 0)].decode("utf-8", "ignore")
                self.dropped += len(raw) - _nbytes(kept)
                text = kept
                if not text:
                    return
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last.get("output_type") == "stream" and last.get("name") == name:
            old: str = last["text"]
            if "\r" in text or "\b" in text or old.endswith("\r"):
                cut = old.rfind("\n") + 1
                tail = old[cut:]
                new_tail = process_control_chars(tail + text)
                last["text"] = old[:cut] + new_tail
                self.kept += _nbytes(new_tail) - _nbytes(tail)
            else:
                last["text"] = old + text
                self.kept += _nbytes(text)
            return
        text = process_control_chars(text)
        out = {"output_type": "stream", "name": name, "text": text}
        self.outputs.append(out)
        self.kept += _nbytes(text)

    def add(self, out: dict[str, Any], display_id: str | None = None) -> bool:
        """Append a display_data / execute_result / error output; False if dropped for the limit."""
        self._apply_pending_clear()
        size = _size(out)
        room = self._room()
        if room is not None and size > room and out.get("output_type") != "error":
            self.dropped += size
            return False
        self.outputs.append(out)
        self._sizes[id(out)] = size
        self.kept += size
        if display_id:
            self.displays.setdefault(display_id, []).append(out)
        return True

    def update_display(self, display_id: str, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Replace the data of every output shown with ``display_id`` (in this cell or earlier ones)."""
        for out in self.displays.get(display_id, []):
            out["data"] = data
            out["metadata"] = metadata
            key = id(out)
            if key in self._sizes:  # an output of this cell: keep the byte count right
                new = _size(out)
                self.kept += new - self._sizes[key]
                self._sizes[key] = new

    def finish(self) -> None:
        """Add the truncation marker (once) if output was dropped."""
        if self.dropped and self.limit is not None:
            marker = truncation_marker(self.limit, self.dropped)
            last = self.outputs[-1] if self.outputs else None
            if last is not None and last.get("output_type") == "stream":
                last["text"] += marker
            else:
                self.outputs.append({"output_type": "stream", "name": "stdout", "text": marker})
            self.limit = None  # finished: nothing more is counted

    def handle(self, msg_type: str, content: dict[str, Any]) -> bool:
        """Apply one iopub message; True if it was output (for stall detection)."""
        if msg_type == "stream":
            self.stream(str(content.get("name", "stdout")), str(content.get("text", "")))
            return True
        if msg_type in ("display_data", "execute_result", "update_display_data"):
            transient = content.get("transient")
            display_id = transient.get("display_id") if isinstance(transient, dict) else None
            data = content.get("data") or {}
            metadata = content.get("metadata") or {}
            if display_id:
                self.update_display(display_id, data, metadata)
            if msg_type == "update_display_data":
                return True
            out: dict[str, Any] = {"output_type": msg_type, "data": data, "metadata": metadata}
            if msg_type == "execute_result":
                out["execution_count"] = content.get("execution_count")
            self.add(out, display_id)
            return True
        if msg_type == "error":
            self.add({"output_type": "error", "ename": content.get("ename", ""),
                      "evalue": content.get("evalue", ""), "traceback": list(content.get("traceback") or [])})
            return True
        if msg_type == "clear_output":
            self.clear(bool(content.get("wait")))
            return True
        if msg_type == "execute_input":
            count = content.get("execution_count")
            if isinstance(count, int):
                self.execution_count = count
        return False
