"""Slim a parsed notebook: steps applied least lossy first, stopping once it is under the target.

Pure but for Pillow (``images``): ``slim_notebook`` takes the parsed notebook, changes its outputs and
metadata in place and returns what each change saved.  No cell is removed and no source is touched.
The same function makes the ``--dry-run`` plan and the real run, so the plan is what is then done.

Steps, in order (``STEPS``):

1. ``never-shown``: widget state of models no output displays (nor any displayed model refers to),
   raster images next to an SVG of the same output (Jupyter shows the SVG), a long ``text/plain`` next to
   a richer representation (cut to its head: frontends without HTML need one), outputs of cells tagged
   ``remove-output`` (the tag says they are not to be shown);
2. ``duplicate-images``: an image whose exact bytes already appear in an earlier output: the repeat
   becomes a ``text/plain`` note naming the output that holds the image;
3. ``long-text``: streams and ``text/plain`` over ``MAX_LINES`` lines or ``MAX_CHARS`` characters, cut to
   their head and tail around a marker line;
4. ``images``: PNG and JPEG images over the pixel budget downscaled, large ones re-encoded (``images``);
   their display size kept in the output's ``metadata[mime]``;
5. ``clear-outputs``: the largest outputs left, largest first, each replaced by a one-line note.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nbmedic.notebook.cells import cell_tags
from nbmedic.notebook.sizes import output_size, value_size
from nbmedic.slim import images
from nbmedic.slim.ledger import Ledger
from nbmedic.units import format_bytes

__all__ = ["MARK", "STEPS", "Action", "Change", "SlimResult", "cut_text", "slim_notebook"]

MARK = "nbmedic slim"  # in every note and marker slim leaves, so a second run recognises them
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RASTERS = ("image/png", "image/jpeg", "image/gif")
IMAGES = ("image/svg+xml", "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
RICHER_THAN_TEXT = ("text/html", "text/markdown", "text/latex", "image/svg+xml", "image/png", "image/jpeg",
                    "image/gif")
MAX_LINES, HEAD_LINES, TAIL_LINES = 200, 50, 50
MAX_CHARS, HEAD_CHARS, TAIL_CHARS = 100_000, 40_000, 40_000
SHORT_PLAIN_LINES, SHORT_PLAIN_CHARS = 10, 1_000  # a text/plain next to text/html is cut to this
REENCODE_ABOVE, REENCODE_LOSSY_ABOVE = 256 * 1024, 64 * 1024  # bytes: images under the pixel budget
CLEARED = f"[output cleared by {MARK}"


@dataclass(frozen=True)
class Change:
    """One change to one output (``output`` None: to the notebook's metadata)."""

    step: str
    cell: int | None
    output: int | None
    mime_type: str
    size: int  # bytes it took in the file
    saved: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"cell": self.cell, "output": self.output, "mime_type": self.mime_type, "size": self.size,
                "step": self.step, "saved": self.saved, "detail": self.detail}


@dataclass
class SlimResult:
    before: int
    after: int
    target: int
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.after <= self.target

    def steps(self) -> list[dict[str, Any]]:
        """Each step that changed something: its name, the bytes it saved, the outputs it touched."""
        out: list[dict[str, Any]] = []
        for name in STEP_NAMES:
            mine = [c for c in self.changes if c.step == name]
            if mine:
                out.append({"step": name, "saved": sum(c.saved for c in mine), "outputs": len(mine)})
        return out


@dataclass(frozen=True)
class Action:
    cell: int | None
    output: int | None
    mime_type: str
    detail: str
    replacement: dict[str, Any] | None  # the new output (None: remove it); for output None, the new metadata


Step = Callable[[Ledger, bool], Iterator[Action]]


# --- helpers ------------------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if isinstance(value, list):
        try:
            return "".join(value)  # TypeError unless every line is a string
        except TypeError:
            return None
    return value if isinstance(value, str) else None


def _bundle(output: dict[str, Any]) -> dict[str, Any] | None:
    data = output.get("data")
    if output.get("output_type") in ("display_data", "execute_result") and isinstance(data, dict):
        return data
    return None


def _without(output: dict[str, Any], mimes: set[str], plain: str | None) -> dict[str, Any]:
    """A copy of a display output without ``mimes`` (data and metadata), ``text/plain`` set to ``plain``."""
    data = {k: v for k, v in output["data"].items() if k not in mimes}
    if plain is not None:
        data["text/plain"] = plain
    new = {**output, "data": data}
    meta = output.get("metadata")
    if isinstance(meta, dict):
        new["metadata"] = {k: v for k, v in meta.items() if k not in mimes}
    return new


def _current(ledger: Ledger, cell: int, index: int) -> dict[str, Any]:
    output = ledger.outputs[cell][index]
    assert output is not None, "an output removed earlier in the same step"
    return output


def _by_cost(ledger: Ledger, items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(cell, output) pairs, largest output first (notebook order among equals)."""
    return sorted(items, key=lambda ck: (-ledger.costs[ck[0]][ck[1]], ck))


def cut_text(text: str) -> tuple[str, str] | None:
    """``text`` cut to its head and tail around a marker line, and what was cut; None if short enough."""
    lines = text.splitlines(True)
    detail = []
    if len(lines) > MAX_LINES:
        cut = len(lines) - HEAD_LINES - TAIL_LINES
        head = "".join(lines[:HEAD_LINES])
        if not head.endswith("\n"):
            head += "\n"
        text = head + f"... {cut:,} lines cut by {MARK} ...\n" + "".join(lines[-TAIL_LINES:])
        detail.append(f"{cut:,} lines cut")
    if len(text) > MAX_CHARS:
        cut = len(text) - HEAD_CHARS - TAIL_CHARS
        text = text[:HEAD_CHARS] + f"\n... {cut:,} characters cut by {MARK} ...\n" + text[-TAIL_CHARS:]
        detail.append(f"{cut:,} characters cut")
    return (text, ", ".join(detail)) if detail else None


# --- step 1: what is never shown ----------------------------------------------------------------------------

def _model_refs(value: Any, found: set[str]) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith("IPY_MODEL_"):
                found.add(item[len("IPY_MODEL_"):])
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _widget_action(ledger: Ledger) -> Action | None:
    meta = ledger.nb.get("metadata")
    widgets = meta.get("widgets") if isinstance(meta, dict) else None
    saved = widgets.get(WIDGET_STATE) if isinstance(widgets, dict) else None
    state = saved.get("state") if isinstance(saved, dict) else None
    if not isinstance(meta, dict) or not isinstance(widgets, dict) or not isinstance(saved, dict) \
            or not isinstance(state, dict):
        return None
    shown: set[str] = set()
    for _, _, output in ledger.alive():
        view = (_bundle(output) or {}).get(WIDGET_VIEW)
        if isinstance(view, dict) and isinstance(view.get("model_id"), str):
            shown.add(view["model_id"])
    keep, todo = set(), [m for m in shown if m in state]
    while todo:
        model = todo.pop()
        if model not in keep:
            keep.add(model)
            refs: set[str] = set()
            _model_refs(state[model], refs)
            todo.extend(r for r in refs if r in state)
    if len(keep) == len(state):
        return None
    new_widgets = dict(widgets)
    if keep:
        new_widgets[WIDGET_STATE] = {**saved, "state": {k: v for k, v in state.items() if k in keep}}
    else:
        del new_widgets[WIDGET_STATE]
    new_meta = dict(meta)
    if new_widgets:
        new_meta["widgets"] = new_widgets
    else:
        del new_meta["widgets"]
    detail = f"state of {len(state) - len(keep)} of {len(state)} widget models that no output displays"
    return Action(None, None, WIDGET_STATE, detail, new_meta)


def _short_plain(text: str, shown: str) -> str:
    lines = text.splitlines(True)
    head = "".join(lines[:SHORT_PLAIN_LINES])[:SHORT_PLAIN_CHARS]
    if not head.endswith("\n"):
        head += "\n"
    cut = len(lines) - len(head.splitlines())
    return head + f"... {max(cut, 1):,} lines cut by {MARK} (Jupyter shows the {shown}) ..."


def _unshown(output: dict[str, Any]) -> tuple[dict[str, Any], str, str] | None:
    """The output without what Jupyter never shows of it, the mime type removed or cut, and what."""
    data = _bundle(output)
    if data is None:
        return None
    dropped = {m for m in RASTERS if m in data} if "image/svg+xml" in data else set()
    plain = _text(data.get("text/plain"))
    richer = next((m for m in RICHER_THAN_TEXT if m in data and m not in dropped), None)
    short = None
    if plain is not None and richer and MARK not in plain and (
            len(plain) > 2 * SHORT_PLAIN_CHARS or plain.count("\n") > 2 * SHORT_PLAIN_LINES):
        short = _short_plain(plain, richer)
    if not dropped and short is None:
        return None
    what = [f"{m} next to image/svg+xml" for m in sorted(dropped)]
    if short is not None:
        what.append(f"text/plain cut next to {richer}")
    mime = max(dropped, key=lambda m: value_size(data[m])) if dropped else "text/plain"
    return _without(output, dropped, short), mime, "; ".join(what)


def never_shown(ledger: Ledger, lossy: bool) -> Iterator[Action]:
    widget = _widget_action(ledger)
    if widget is not None:
        yield widget
    found = {(c, k): r for c, k, o in ledger.alive() if (r := _unshown(o)) is not None}
    for c, k in _by_cost(ledger, list(found)):
        new, mime, detail = found[(c, k)]
        yield Action(c, k, mime, detail, new)
    tagged = [(c, k) for c, k, _ in ledger.alive() if "remove-output" in cell_tags(ledger.nb["cells"][c])]
    for c, k in _by_cost(ledger, tagged):
        output = _current(ledger, c, k)
        yield Action(c, k, output_size(c, k, output).mime_type, "the cell is tagged remove-output", None)


# --- step 2: repeated images --------------------------------------------------------------------------------

def _note(mime: str, first: tuple[int, int]) -> str:
    return f"[{mime}: the same image as cell {first[0]}, output {first[1]}; this repeat was removed by {MARK}]"


def duplicate_images(ledger: Ledger, lossy: bool) -> Iterator[Action]:
    seen: dict[tuple[str, str], tuple[int, int]] = {}
    repeats: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
    for c, k, output in ledger.alive():
        for mime, value in (_bundle(output) or {}).items():
            text = _text(value) if mime in IMAGES else None
            if text:
                first = seen.setdefault((mime, text), (c, k))
                if first != (c, k):
                    repeats.setdefault((c, k), {})[mime] = first
    for c, k in _by_cost(ledger, list(repeats)):
        output = _current(ledger, c, k)
        found = repeats[(c, k)]
        plain = "\n".join(_note(mime, first) for mime, first in found.items())
        mime, first = next(iter(found.items()))
        yield Action(c, k, mime, f"same image as cell {first[0]}, output {first[1]}",
                     _without(output, set(found), plain))


# --- step 3: long text --------------------------------------------------------------------------------------

def _cut_output(output: dict[str, Any]) -> tuple[dict[str, Any], str, str] | None:
    if output.get("output_type") == "stream":
        text = _text(output.get("text"))
        cut = cut_text(text) if text is not None else None
        if cut is None:
            return None
        return {**output, "text": cut[0]}, f"stream/{output.get('name', 'unknown')}", cut[1]
    data = _bundle(output)
    plain = _text(data.get("text/plain")) if data is not None else None
    cut = cut_text(plain) if plain is not None else None
    if data is None or cut is None:
        return None
    return {**output, "data": {**data, "text/plain": cut[0]}}, "text/plain", cut[1]


def long_text(ledger: Ledger, lossy: bool) -> Iterator[Action]:
    found = {(c, k): r for c, k, o in ledger.alive() if (r := _cut_output(o)) is not None}
    for c, k in _by_cost(ledger, list(found)):
        new, mime, detail = found[(c, k)]
        yield Action(c, k, mime, detail, new)


# --- step 4: large images -----------------------------------------------------------------------------------

def _image_candidate(output: dict[str, Any], cost: int, lossy: bool) -> str | None:
    """The image mime type of an output worth decoding: over the pixel budget (PNG: read from its
    header) or large in bytes."""
    data = _bundle(output) or {}
    floor = REENCODE_LOSSY_ABOVE if lossy else REENCODE_ABOVE
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            size = images.png_size(data[mime]) if mime == "image/png" else None
            if cost >= floor or (size is not None and size[0] * size[1] > images.PIXEL_BUDGET) or \
                    (mime == "image/jpeg" and cost >= REENCODE_LOSSY_ABOVE):
                return mime
    return None


def _with_image(output: dict[str, Any], mime: str, enc: images.Encoded) -> dict[str, Any]:
    data = {k: v for k, v in output["data"].items() if k != mime}
    data[enc.mime] = enc.data
    meta = dict(output.get("metadata") or {})
    shown = meta.pop(mime, None)
    shown = dict(shown) if isinstance(shown, dict) else {}
    if enc.pixels != enc.original:  # display at the size the original was shown at
        shown.setdefault("width", enc.original[0])
        shown.setdefault("height", enc.original[1])
    if shown:
        meta[enc.mime] = shown
    return {**output, "data": data, "metadata": meta}


def large_images(ledger: Ledger, lossy: bool) -> Iterator[Action]:
    """Largest image first.  Pillow releases the GIL while it decodes, scales and encodes, so the next
    images are re-encoded on other cores while this one is applied (at most one per core is wasted when
    the target is met); the results are applied in the same order as without threads."""
    found = {(c, k): m for c, k, o in ledger.alive()
             if (m := _image_candidate(o, ledger.costs[c][k], lossy)) is not None}
    order = iter(_by_cost(ledger, list(found)))
    workers = max(1, min(len(found), os.cpu_count() or 1, 4))
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: deque[tuple[int, int, dict[str, Any], Future[images.Encoded | None]]] = deque()

    def submit() -> None:
        ck = next(order, None)
        if ck is not None:
            output, mime = ledger.outputs[ck[0]][ck[1]], found[ck]
            assert output is not None
            pending.append((*ck, output, pool.submit(images.reencode, mime, output["data"][mime], lossy=lossy)))

    try:
        for _ in range(workers):
            submit()
        while pending:
            c, k, output, future = pending.popleft()
            submit()
            enc = future.result()
            if enc is not None:
                mime = found[(c, k)]
                yield Action(c, k, mime, enc.detail, _with_image(output, mime, enc))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- step 5: the last resort --------------------------------------------------------------------------------

def clear_outputs(ledger: Ledger, lossy: bool) -> Iterator[Action]:
    items = []
    for c, k, output in ledger.alive():
        plain = _text((_bundle(output) or {}).get("text/plain"))
        if not (plain and plain.startswith(CLEARED)):
            items.append((c, k))
    for c, k in _by_cost(ledger, items):
        output = _current(ledger, c, k)
        mime = output_size(c, k, output).mime_type
        note = f"{CLEARED}: it took {format_bytes(ledger.costs[c][k])} ({mime})]"
        yield Action(c, k, mime, "cleared", {"output_type": "display_data", "data": {"text/plain": note},
                                             "metadata": {}})


STEPS: tuple[tuple[str, Step], ...] = (("never-shown", never_shown), ("duplicate-images", duplicate_images),
                                       ("long-text", long_text), ("images", large_images),
                                       ("clear-outputs", clear_outputs))
STEP_NAMES = tuple(name for name, _ in STEPS)


def _apply(ledger: Ledger, action: Action) -> tuple[int, int]:
    """(bytes the output took, bytes saved) once ``action`` is applied (saved 0: it was not)."""
    if action.output is None or action.cell is None:
        assert action.replacement is not None
        size = value_size(ledger.nb["metadata"].get("widgets"))
        return size, ledger.set_metadata(action.replacement)
    size = ledger.costs[action.cell][action.output]
    if action.replacement is None:
        return size, ledger.remove(action.cell, action.output)
    return size, ledger.replace(action.cell, action.output, action.replacement)


def slim_notebook(nb: dict[str, Any], target: int, *, newline: str = "\n", lossy: bool = False,
                  steps: Collection[str] = STEP_NAMES) -> SlimResult:
    """Slim ``nb`` (a parsed nbformat-4 notebook, changed in place) until its file is at most ``target``
    bytes, with the ``steps`` named (all by default); ``after`` is the exact size ``dumps(nb, newline)``
    then has."""
    ledger = Ledger(nb, newline)
    result = SlimResult(ledger.total, ledger.total, target)
    for name, step in STEPS:
        if ledger.total <= target:
            break
        if name not in steps:
            continue
        missing = images.pillow_missing() if name == "images" else None
        if missing:
            result.notes.append(missing)
            continue
        for action in step(ledger, lossy):
            size, saved = _apply(ledger, action)
            if saved > 0:
                result.changes.append(Change(name, action.cell, action.output, action.mime_type, size, saved,
                                             action.detail))
            if ledger.total <= target:
                break
    ledger.finish()
    result.after = ledger.total
    return result
