"""The HTML report's charts: static SVG (readable without JavaScript), built from untrusted documents.

``memory_chart``: the kernel's memory over time (one ``path.series.rss`` downsampled to at most
``MAX_POINTS`` points keeping the peak; CPU and GPU where sampled), the cell boundaries (one path), the
memory limit and the death / timeout / interrupt markers.  ``cell_bars``: per-cell duration and peak-memory
bars (one path per series, a subpath per cell).  ``DEFS``: what every chart repeats (axis titles, legend),
defined once per page and drawn with ``<use>``.

A 500-notebook page must stay under 5 MB, so the markup is lean: a line is ``M x y`` then relative ``l``
steps (whole viewBox units), the ``data-cells`` of a path name its subpaths' cells in order.  Every value
comes from a saved document a person may have edited: anything that is not a finite number is dropped,
never raised on.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from nbmedic.units import MiB, format_bytes

__all__ = ["DEFS", "MAX_POINTS", "Event", "Series", "cell_bars", "downsample", "line_path", "memory_chart", "number",
           "seconds_text", "series_of", "series_of_pairs"]

MAX_POINTS = 240  # points of a displayed timeline (a 720-unit chart: within ~3 units of every sample)
_W, _H = 720, 230  # the memory chart's viewBox
_X0, _X1, _Y0, _Y1 = 62, 672, 200, 14  # its plot area: left, right, bottom, top
_CPU_POINTS = 80  # CPU and GPU points (averages and peaks) of a displayed timeline
_LIMIT_ON_SCALE = 4.0  # a limit more than this many times the peak is drawn at the top, marked off scale


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: object) -> float | None:
    """A finite number, or None (booleans, strings, NaN and infinities are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def seconds_text(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} s"
    return f"{value:.2f}".rstrip("0").rstrip(".") + " s" if value < 10 else f"{value:.1f}".removesuffix(".0") + " s"


@dataclass
class Series:
    """A timeline as parallel lists: seconds from the start, RSS bytes, and CPU percent / GPU bytes where
    sampled (None otherwise); the first sample's time of each cell."""

    t: list[float]
    rss: list[float]
    cpu: list[float] | None = None
    gpu: list[float] | None = None
    first_of_cell: dict[int, float] = field(default_factory=dict)  # cell index -> seconds


def _finite_sum(values: list[Any]) -> bool:
    total = sum(values)  # TypeError on anything but numbers
    return isinstance(total, (int, float)) and math.isfinite(total)


def _sampled(samples: Sequence[Mapping[str, Any]], key: str) -> list[float] | None:
    """``key`` of every sample when some carry it (probed at ~50 places first); None when not sampled."""
    step = max(1, len(samples) // 50)
    if not any((number(s.get(key)) or 0) > 0 for s in samples[::step]):
        return None
    try:
        values = list(map(itemgetter(key), samples))
        if _finite_sum(values):
            return values
    except (KeyError, TypeError, AttributeError):
        pass
    return [number(s.get(key)) or 0.0 for s in samples]


def series_of(timeline: object) -> Series | None:
    """The run's timeline (``[{"t", "rss", "cpu", "gpu", "cell", ...}, ...]``); None when it has no
    usable sample.  Fast path for a well-formed one (list comprehensions); a careful one otherwise."""
    if not isinstance(timeline, list) or not timeline:
        return None
    try:
        ts = list(map(itemgetter("t"), timeline))
        rss = list(map(itemgetter("rss"), timeline))
        if not (_finite_sum(ts) and _finite_sum(rss)) or not all(isinstance(s, dict) for s in timeline[::97]):
            raise TypeError("not finite")
        samples: list[Any] = timeline
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError):
        samples = [s for s in timeline if isinstance(s, Mapping) and number(s.get("t")) is not None
                   and number(s.get("rss")) is not None]
        ts = [float(s["t"]) for s in samples]
        rss = [float(s["rss"]) for s in samples]
    if not samples:
        return None
    series = Series(ts, rss, _sampled(samples, "cpu"), _sampled(samples, "gpu"))
    try:
        cells = list(map(itemgetter("cell"), samples))
        first = dict(zip(reversed(cells), range(len(cells) - 1, -1, -1), strict=True))
        series.first_of_cell = {c: ts[i] for c, i in first.items() if isinstance(c, int) and not isinstance(c, bool)}
    except (KeyError, TypeError, AttributeError):
        pass
    return series


def series_of_pairs(timeline: object) -> Series | None:
    """An incident's timeline (``[[epoch, rss, cpu], ...]``), as seconds from its first sample."""
    if not isinstance(timeline, list):
        return None
    rows = [r for r in timeline if isinstance(r, (list, tuple)) and len(r) >= 2
            and number(r[0]) is not None and number(r[1]) is not None]
    if not rows:
        return None
    start = float(rows[0][0])
    cpu = [(number(r[2]) or 0.0) if len(r) > 2 else 0.0 for r in rows]
    return Series([float(r[0]) - start for r in rows], [float(r[1]) for r in rows], cpu if any(cpu) else None)


def downsample(ts: Sequence[float], values: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``limit`` points (seconds, value): all of them when they fit, else the first, the last, and
    the highest of each run of ``ceil((n - 2) / (limit - 2))`` samples between them, so the peak is kept."""
    n = len(values)
    if n <= limit:
        return list(ts), list(values)
    size = -(-(n - 2) // (limit - 2))
    inner = list(zip(values[1:n - 1], ts[1:n - 1], strict=True))
    peaks = list(map(max, zip(*[iter(inner)] * size, strict=False)))
    if len(inner) % size:
        peaks.append(max(inner[len(inner) - len(inner) % size:]))
    return [ts[0], *(t for _, t in peaks), ts[n - 1]], [values[0], *(v for v, _ in peaks), values[n - 1]]


def _means(ts: Sequence[float], values: Sequence[float], limit: int) -> tuple[list[float], list[float]]:
    """Averages of ``limit`` runs of samples (CPU: a mean reads better than a peak), at their middle."""
    n = len(values)
    if n <= limit:
        return list(ts), list(values)
    size = -(-n // limit)
    sums = list(map(sum, zip(*[iter(values)] * size, strict=False)))
    return [ts[k * size + size // 2] for k in range(len(sums))], [v / size for v in sums]


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / max(ticks, 1)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if mult * mag >= raw:
            return float(mult * mag)
    return float(10 * mag)


def _mib_step(vmax: float) -> float:
    """A tick step in bytes that reads well in MiB/GiB (powers of two above 1 MiB)."""
    step = float(MiB)
    while vmax / step > 5:
        step *= 2
    while vmax / step < 2 and step > 1024:
        step /= 2
    return step


@dataclass(frozen=True)
class Event:
    """A marker on the memory chart: ``kind`` death, timeout or interrupt."""

    kind: str
    t: float | None  # seconds; None = at the end of the timeline
    cell: int | None
    code: str
    label: str


@dataclass(frozen=True)
class _Frame:
    tmax: float
    vmax: float

    def xs(self, ts: Sequence[float]) -> list[int]:
        a, b = _X0, (_X1 - _X0) / self.tmax
        return [round(a + b * (t if t > 0 else 0.0)) for t in ts]

    def ys(self, vs: Sequence[float], top: float | None = None) -> list[int]:
        a, b = _Y0, (_Y0 - _Y1) / (top or self.vmax)
        return [round(a - b * (v if v > 0 else 0.0)) for v in vs]

    def x(self, t: float) -> int:
        return self.xs([min(t, self.tmax)])[0]

    def y(self, v: float) -> int:
        return self.ys([min(v, self.vmax)])[0]


def _axes(frame: _Frame) -> str:
    step = _nice_step(frame.tmax, 5)
    xticks = [k * step for k in range(12) if k * step <= frame.tmax * 1.0001]
    vstep = _mib_step(frame.vmax)
    yticks = [k * vstep for k in range(1, 12) if k * vstep <= frame.vmax * 1.0001]
    xs, ys = frame.xs(xticks), frame.ys(yticks)
    return (f'<path class="tick" d="{"".join(f"M{x} {_Y0}v4" for x in xs)}"/>'
            f'<path class="grid" d="{"".join(f"M{_X0} {y}H{_X1}" for y in ys)}"/>'
            f'<g class="tick-label mid" transform="translate(0 {_Y0 + 15})">'
            + "".join(f'<text x="{x}">{seconds_text(t)}</text>' for x, t in zip(xs, xticks, strict=True))
            + f'</g><g class="tick-label end" transform="translate({_X0 - 4} 4)">'
            + "".join(f'<text y="{y}">{_mib_label(v)}</text>' for y, v in zip(ys, yticks, strict=True))
            + '</g><use class="axes" href="#c-mem"/>')


def _mib_label(value: float) -> str:
    mib = value / MiB
    return f"{mib:,.0f} MiB" if mib >= 10 or mib == int(mib) else f"{mib:.1f} MiB"


def line_path(xs: Sequence[int], ys: Sequence[int]) -> str:
    """``d`` of a line through whole-unit points: ``M x y`` then one relative ``l`` step per further point
    (``dx dy``; a minus sign separates numbers without a space)."""
    if not xs:
        return ""
    steps = " ".join([f"{x - px} {y - py}" for x, y, px, py in zip(xs[1:], ys[1:], xs, ys, strict=False)])
    return f"M{xs[0]} {ys[0]}" + (f"l{steps}".replace(" -", "-") if steps else "")


def _series(cls: str, xs: Sequence[int], ys: Sequence[int]) -> str:
    return f'<path class="series {cls}" d="{line_path(xs, ys)}"/>'


def _limit(frame: _Frame, limit: float, name: str, peak: float) -> str:
    off = limit > peak * _LIMIT_ON_SCALE
    y = _Y1 if off else frame.y(limit)
    label = f"{name} {format_bytes(limit)}" + (" (above the chart)" if off else "")
    return (f'<line class="limit" x1="{_X0}" y1="{y}" x2="{_X1}" y2="{y}" data-bytes="{int(limit)}"/>'
            f'<text class="limit-label" x="{_X0 + 4}" y="{max(y - 3, 10)}">{_esc(label)}</text>')


def _event(frame: _Frame, event: Event, end: float) -> str:
    t = end if event.t is None else event.t
    x = frame.x(t)
    cell = "" if event.cell is None else f' data-cell="{event.cell}"'
    right = x > (_X0 + _X1) / 2
    mark = {"death": "✕", "timeout": "◷", "interrupt": "‖"}.get(event.kind, "•")
    return (f'<g class="event {event.kind}"{cell} data-code="{_esc(event.code)}" data-t="{t:.3f}">'
            f'<title>{_esc(event.label)} at {seconds_text(t)}</title>'
            f'<line x1="{x}" y1="{_Y0}" x2="{x}" y2="{_Y1}"/>'
            f'<text x="{x - 4 if right else x + 4}" y="{_Y1 + 10}" text-anchor="{"end" if right else "start"}">'
            f'{mark} {_esc(event.label)}</text></g>')


def _boundaries(frame: _Frame, cell_starts: Mapping[int, float]) -> str:
    """One dotted path through the cell starts, scaled to the plot's height (each subpath: y 0 to 1);
    ``data-cells`` names their cells in order."""
    if not cell_starts:
        return ""
    order = sorted(cell_starts.items())
    xs = frame.xs([t for _, t in order])
    return (f'<path class="cell-boundaries" data-cells="{" ".join(str(c) for c, _ in order)}" '
            f'transform="matrix(1 0 0 {_Y0 - _Y1} 0 {_Y1})" d="{"".join(f"M{x} 0v1" for x in xs)}"/>')


def _cpu(frame: _Frame, series: Series) -> str:
    if not series.cpu:
        return ""
    ts, cpu = _means(series.t, series.cpu, _CPU_POINTS)
    top = max(100.0, max(cpu))
    return (_series("cpu", frame.xs(ts), frame.ys(cpu, top))
            + f'<g class="tick-label cpu"><text x="{_X1 + 4}" y="{_Y1 + 4}">{top:.0f} %</text>'
            f'<use class="key" href="#c-cpu0"/></g>')


def memory_chart(series: Series, *, cell_starts: Mapping[int, float], limit: tuple[str, float] | None,
                 events: Sequence[Event], duration: float | None = None, label: str = "", cls: str = "") -> str:
    """The memory chart's SVG: RSS in MiB over seconds, with ``cell_starts`` (cell index -> seconds) as
    boundaries, ``limit`` (name, bytes) as a line and ``events`` as markers."""
    ts, rss = downsample(series.t, series.rss)
    peak = max(rss)
    at = ts[rss.index(peak)]
    end = max(ts)
    gpu = downsample(series.t, series.gpu, _CPU_POINTS) if series.gpu else None
    vtop = max(peak, max(gpu[1]) if gpu else 0.0, 1.0)
    if limit is not None and limit[1] <= vtop * _LIMIT_ON_SCALE:
        vtop = max(vtop, limit[1])
    frame = _Frame(max(end, duration or 0.0, 1e-3), vtop * 1.08)
    aria = (f"Memory (RSS) over {seconds_text(end)}: peak {format_bytes(peak)} at {seconds_text(at)}"
            + (f"; {limit[0]} {format_bytes(limit[1])}" if limit else "") + "".join(f"; {e.label}" for e in events))
    xs = frame.xs(ts)
    parts = [f'<svg class="chart memory{cls}" data-points="{len(ts)}" role="img" aria-label="{_esc(label + aria)}" '
             + f'viewBox="0 0 {_W} {_H}" data-x0="{_X0}" data-x1="{_X1}" data-y0="{_Y0}" data-y1="{_Y1}" '
             + f'data-tmax="{frame.tmax:.4g}" data-vmax="{frame.vmax:.6g}">',
             _axes(frame), _boundaries(frame, cell_starts),
             _limit(frame, limit[1], limit[0], vtop) if limit is not None else "", _cpu(frame, series),
             _series("gpu", frame.xs(gpu[0]), frame.ys(gpu[1])) if gpu else "",
             _series("rss", xs, frame.ys(rss)),
             f'<circle class="peak" cx="{frame.x(at)}" cy="{frame.y(peak)}" r="3"><title>peak '
             + f'{_esc(format_bytes(peak))} at {seconds_text(at)}</title></circle>',
             *(_event(frame, e, end) for e in events), _legend(bool(series.cpu), bool(gpu)), "</svg>"]
    return "".join(parts)


_LEGEND = (("rss", "RSS (MiB)"), ("cpu", "CPU (%, right)"), ("gpu", "GPU memory"))


def _legend(cpu: bool, gpu: bool) -> str:
    shown = [cls for cls, on in (("rss", True), ("cpu", cpu), ("gpu", gpu)) if on]
    return "".join(f'<use class="key {cls}" href="#c-{cls}"/>' for cls in shown)


def _defs() -> str:
    """The page's one ``<svg>`` of definitions: the memory chart's axis and titles, its legend entries, the
    bars chart's axes and its cell label, drawn by ``<use class="..." href="#c-...">`` (same document only).
    Page styles do not reach into a ``<use>``: its parts are styled by presentation attributes and what
    they inherit from the ``<use>`` (``color`` for lines, ``fill`` for text; see ``render.html_assets``)."""
    mid = (_Y0 + _Y1) // 2
    line = 'fill="none" stroke="currentColor"'
    legend = []
    x = _X0 + 6
    for cls, text in _LEGEND:
        legend.append(f'<g id="c-{cls}"><path {line} stroke-width="1.6" d="M{x} 6h14"/>'
                      f'<text x="{x + 18}" y="10">{text}</text></g>')
        x += 30 + 7 * len(text)
    return ('<svg class="defs" aria-hidden="true" focusable="false"><defs>'
            f'<g id="c-mem" font-weight="600" text-anchor="middle"><path {line} d="M{_X0} {_Y1}V{_Y0}H{_X1}"/>'
            f'<text x="{(_X0 + _X1) // 2}" y="{_H - 2}">time (s)</text>'
            f'<text x="12" y="{mid}" transform="rotate(-90 12 {mid})">RSS (MiB)</text></g>'
            f'<text id="c-cpu0" x="{_X1 + 4}" y="{_Y0}">0 %</text>{"".join(legend)}'
            f'<g id="c-bars"><path {line} d="M{_BX0} {_ROWS[0][1]}H{_BX1}M{_BX0} {_ROWS[1][1]}H{_BX1}"/>'
            f'<text x="{_BX0 - 18}" y="{_ROWS[1][1] + 14}" text-anchor="middle">cell</text></g>'
            "</defs></svg>")


_BW, _BH = 720, 190  # the bars chart's viewBox
_BX0, _BX1 = 62, 712
_ROWS = ((16, 78), (106, 168))  # (top, bottom) of the duration row and the peak-memory row


def _standouts(values: Sequence[float]) -> list[bool]:
    """The values that stand out: at least half the largest and twice the mean (none when all are alike)."""
    top = max(values, default=0.0)
    mean = sum(values) / len(values) if values else 0.0
    return [top > 0 and v >= top / 2 and v >= 2 * mean for v in values]


def _bar_row(kind: str, top: int, bottom: int, xs: Sequence[int], cells: Sequence[int], values: Sequence[float],
             width: int, hot_cells: Sequence[bool]) -> str:
    """One row of bars drawn upwards from ``bottom``: a path per series (``bars KIND``, and ``bars KIND hot``
    for the cells that stand out), a vertical subpath per cell as wide as its stroke; ``data-cells`` names
    the subpaths' cells in order."""
    vmax = max(values, default=0.0)
    rows: dict[bool, tuple[list[str], list[str]]] = {False: ([], []), True: ([], [])}
    for x, cell, value, is_hot in zip(xs, cells, values, hot_cells, strict=True):
        h = max(1, round((bottom - top) * value / vmax)) if vmax > 0 else 1
        rows[is_hot][0].append(str(cell))
        rows[is_hot][1].append(f"M{x} 0v{h}")
    return "".join(
        f'<path class="bars {kind}{" hot" if hot else ""}" data-cells="{" ".join(names)}" stroke-width="{width}" '
        f'transform="matrix(1 0 0 -1 0 {bottom})" d="{"".join(d)}"/>'
        for hot, (names, d) in rows.items() if names)


def cell_bars(records: Sequence[Mapping[str, Any]], *, label: str = "") -> str:
    """One duration bar and one peak-memory bar per cell record (``{"index", "wall", "peak_rss", ...}``,
    index an int).  The cells that stand out are marked ``hot``: the longest (at least half the longest and
    twice the mean duration), and in memory those whose growth (``rss_delta``) stands out so, since a
    cell's peak includes what earlier cells kept."""
    cells = [int(r["index"]) for r in records]
    walls = [number(r.get("wall")) or 0.0 for r in records]
    peaks = [number(r.get("peak_rss")) or 0.0 for r in records]
    growth = [max(number(r.get("rss_delta")) or 0.0, 0.0) for r in records]
    slot = (_BX1 - _BX0) / max(len(cells), 1)
    width = max(1, round(min(slot * 0.8, 28)))
    xs = [round(_BX0 + k * slot + slot / 2) for k in range(len(cells))]  # the bars' centres
    dmax, pmax = max(walls, default=0.0), max(peaks, default=0.0)
    aria = (f"Per cell: duration (longest {seconds_text(dmax)}) and peak memory (highest {format_bytes(pmax)}) "
            f"of {len(cells)} cells")
    labels = ""
    if cells:
        every = -(-len(cells) // 12)
        labels = (f'<g class="tick-label mid" transform="translate(0 {_ROWS[1][1] + 14})">'
                  + "".join(f'<text x="{x}">{c}</text>'
                            for k, (x, c) in enumerate(zip(xs, cells, strict=True)) if k % every == 0) + "</g>")
    return (f'<svg class="chart cells" role="img" aria-label="{_esc(label + aria)}" viewBox="0 0 {_BW} {_BH}">'
            f'<text class="axis-title" x="2" y="{_ROWS[0][0] - 4}">duration (s), longest {seconds_text(dmax)}</text>'
            f'<text class="axis-title" x="2" y="{_ROWS[1][0] - 4}">peak memory (MiB), highest {_mib_label(pmax)}</text>'
            + _bar_row("duration", *_ROWS[0], xs, cells, walls, width, _standouts(walls))
            + _bar_row("peak", *_ROWS[1], xs, cells, peaks, width, _standouts(growth)) + labels
            + '<use class="key" href="#c-bars"/></svg>')


DEFS = _defs()
