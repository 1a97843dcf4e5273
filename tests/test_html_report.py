"""The HTML report's page contract (render.html), checked by parsing the page with the standard library:
sections and ids per file, the charts' points and bars, findings linked to cells that exist, the CSP
hashes of the one inline style and script, and notebook content (XSS payloads) shown only as text."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nbmedic.commands.incidents import incidents_document
from nbmedic.render.document import build_document
from nbmedic.render.html import render_html
from nbmedic.render.html_charts import MAX_POINTS, cell_bars, downsample, line_path
from tests.nbfactory import code, display, error, md, notebook, result, stream, write
from tests.runhelpers import make_nb

CLINIC = Path(__file__).resolve().parents[1] / "examples" / "clinic"
Run = Callable[..., tuple[int, str, str]]


class Page(HTMLParser):
    """Every start tag with its attributes, the text of <style> and <script>, and the ids."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.raw: dict[str, list[str]] = {"style": [], "script": []}
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag in self.raw:
            self._in = tag
            self.raw[tag].append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.raw[self._in][-1] += data

    def find(self, tag: str, cls: str | None = None, **attrs: str) -> list[dict[str, str]]:
        out = []
        for name, a in self.tags:
            if name != tag or (cls and not set(cls.split()) <= set(a.get("class", "").split())):
                continue
            if all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(a)
        return out

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def check_page(text: str) -> Page:
    """What holds for every page: one style, one script, a CSP naming exactly their hashes, no network."""
    page = Page(text)
    assert len(page.raw["style"]) == 1 and len(page.raw["script"]) == 1
    assert text.count("<script") == 1 and text.count("<style") == 1
    csp = page.find("meta", http_equiv="Content-Security-Policy")
    assert len(csp) == 1
    policy = dict(part.strip().split(" ", 1) for part in csp[0]["content"].split(";"))
    assert policy["default-src"] == "'none'" and policy["img-src"] == "data:"
    assert policy["script-src"] == _sha(page.raw["script"][0])
    assert policy["style-src"] == _sha(page.raw["style"][0])
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"
    for _, attrs in page.tags:
        assert not [k for k in attrs if k.startswith("on")], attrs
        assert "style" not in attrs, attrs  # inline style attributes would be blocked by the CSP
        assert attrs.get("href", "#").startswith("#"), attrs
        if "src" in attrs:
            assert attrs["src"].startswith(("data:image/png;base64,", "data:image/jpeg;base64,")), attrs
    for tag in ("iframe", "object", "embed", "link", "form", "base", "foreignobject"):
        assert not page.find(tag)
    for link in page.find("a"):
        if link.get("href", "").startswith("#") and len(link["href"]) > 1:
            assert link["href"][1:] in page.ids, link
    for use in page.find("use"):  # the charts' shared parts: defined once in the page
        assert use["href"].startswith("#c-") and use["href"][1:] in page.ids, use
    return page


_LINE_RE = re.compile(r"M(-?\d+) (-?\d+)(?:l((?:-?\d+[ -]?)+))?")


def points(line: dict[str, str]) -> list[tuple[int, int]]:
    """The absolute points of a drawn line: ``d="M x y l dx dy dx dy ..."`` (relative whole-unit steps)."""
    match = _LINE_RE.fullmatch(line["d"])
    assert match, f"not a line path: {line['d'][:80]!r}"
    x, y = int(match[1]), int(match[2])
    out = [(x, y)]
    steps = [int(v) for v in re.findall(r"-?\d+", match[3] or "")]
    assert len(steps) % 2 == 0, line["d"][:80]
    for dx, dy in zip(steps[::2], steps[1::2], strict=True):
        x, y = x + dx, y + dy
        out.append((x, y))
    return out


def subpaths(path: dict[str, str]) -> list[str]:
    """The subpaths of a ``d`` (each begins with ``M``)."""
    return re.findall(r"M[^M]*", path["d"])


def cells_of(page: Page, tag: str, cls: str) -> list[int]:
    """The cells a path-per-series element draws (``data-cells``, one per subpath, in order), over all of
    them (a series may be split, e.g. its ``hot`` bars)."""
    out = []
    for path in page.find(tag, cls):
        cells = [int(c) for c in path["data-cells"].split()]
        assert len(cells) == len(subpaths(path)), path
        out.extend(cells)
    return out


def memory_svgs(text: str) -> list[str]:
    return re.findall(r'<svg class="chart memory.*?</svg>', text, re.DOTALL)


# --------------------------------------------------------------------------------------- real documents


def test_a_run_report_has_its_charts_and_matches_the_saved_document(
        tmp_path: Path, jupyter_home: dict[str, Path], run_cli: Run) -> None:
    nb = make_nb(tmp_path, "import time\nx = 1",
                 "blocks = []\nfor _ in range(12):\n    blocks.append(bytearray(8 * 2**20))\n    time.sleep(0.05)",
                 "print(len(blocks))")
    html_path = tmp_path / "run.html"
    code_, out, err = run_cli("run", str(nb), "--format", "json", "--report", str(html_path))
    assert code_ == 0, err
    doc = json.loads(out)
    run = doc["runs"][0]
    text = html_path.read_text(encoding="utf-8")
    page = check_page(text)
    section = page.find("section", "notebook", id="nb-0")
    assert section and section[0]["data-path"] == str(nb) and section[0]["data-status"] == "ok"
    svg = page.find("svg", "chart memory")
    assert len(svg) == 1
    timeline = run["timeline"]
    assert len(timeline) >= 5
    assert int(svg[0]["data-points"]) == min(len(timeline), MAX_POINTS) or len(timeline) > MAX_POINTS
    (rss,) = page.find("path", "series rss")
    assert len(points(rss)) == int(svg[0]["data-points"])
    assert 2 <= len(points(rss)) <= MAX_POINTS
    # the peak is drawn: the highest point of the line is the run's peak (y grows downwards)
    y0, y1, vmax = (float(svg[0][f"data-{k}"]) for k in ("y0", "y1", "vmax"))
    top = y0 - (y0 - y1) * max(s["rss"] for s in timeline) / vmax
    assert min(y for _, y in points(rss)) == pytest.approx(top, abs=1)
    ran = [c["index"] for c in run["cells"]]
    assert len(page.find("path", "cell-boundaries")) == 1
    assert sorted(cells_of(page, "path", "cell-boundaries")) == ran
    for kind in ("duration", "peak"):
        assert sorted(cells_of(page, "path", f"bars {kind}")) == ran
    # the memory-growing cell stands out
    assert cells_of(page, "path", "bars peak hot") == [1]
    assert not page.find("line", "cell-boundary") and not page.find("rect")
    assert {f"nb-0-cell-{i}" for i in range(3)} <= page.ids
    assert "MiB" in text and "time (s)" in text
    # the saved document renders the same page structure through `nbmedic report`
    saved = tmp_path / "doc.json"
    saved.write_text(out, encoding="utf-8")
    again = tmp_path / "again.html"
    code_, _, err = run_cli("report", str(saved), "-o", str(again))
    assert code_ == 0, err
    other = check_page(again.read_text(encoding="utf-8"))
    assert other.ids == page.ids
    assert [a["data-points"] for a in other.find("svg", "chart memory")] == [svg[0]["data-points"]]
    assert memory_svgs(again.read_text(encoding="utf-8")) == memory_svgs(text)


def test_the_clinic_check_report(tmp_path: Path, run_cli: Run) -> None:
    html_path = tmp_path / "check.html"
    code_, out, err = run_cli("check", str(CLINIC), "--format", "json", "--report", str(html_path))
    assert code_ == 1, err
    doc = json.loads(out)
    text = html_path.read_text(encoding="utf-8")
    page = check_page(text)
    sections = page.find("section", "notebook")
    assert sorted(s["id"] for s in sections) == sorted(f"nb-{i}" for i in range(len(doc["files"])))
    assert {s["data-path"] for s in sections} == set(doc["files"])
    assert not page.find("svg", "chart memory")  # check runs nothing
    articles = page.find("article", "finding")
    assert len(articles) == len(doc["findings"])
    by_path = {p: i for i, p in enumerate(doc["files"])}
    for f in doc["findings"]:
        n = by_path[f["path"]]
        mine = [a for a in articles if a["id"].startswith(f"nb-{n}-f-") and a["data-code"] == f["code"]]
        assert mine and f"sev-{f['severity']}" in mine[0]["class"]
    links = page.find("a", "cell-link")
    assert len(links) == sum(1 for f in doc["findings"] if f.get("cell") is not None)
    assert all(a["href"][1:] in page.ids for a in links)
    # contents: notebooks with errors first, the healthy ones listed as such
    toc = re.search(r'<nav class="toc".*?</nav>', text, re.DOTALL)
    assert toc
    badges = re.findall(r'<span class="badge (sev-\w+|healthy)">', toc.group(0))
    assert badges == sorted(badges, key=["sev-error", "sev-warning", "sev-info", "healthy"].index)
    assert "healthy" in badges and badges[0] == "sev-error"
    # the clinic's saved html_page.ipynb is a web page, not a notebook: its text is shown, escaped
    assert "<title>analysis.ipynb" not in text
    summary = page.find("section", id="summary")
    assert summary and "Findings by code" in text


def test_a_notebook_that_runs_is_shown_from_its_executed_copy(
        tmp_path: Path, jupyter_home: dict[str, Path], run_cli: Run) -> None:
    nb = make_nb(tmp_path, "print('from the run')", "1/0")
    html_path = tmp_path / "r.html"
    code_, _, err = run_cli("run", str(nb), "--report", str(html_path))
    assert code_ == 1, err
    text = html_path.read_text(encoding="utf-8")
    page = check_page(text)
    assert "from the run" in text and "ZeroDivisionError" in text
    (art,) = page.find("article", "finding", data_code="RN120")
    assert art["id"] == "nb-0-f-0"
    assert page.find("a", "cell-link", href="#nb-0-cell-1")
    assert page.find("section", "notebook", id="nb-0", data_status="failed")


# -------------------------------------------------------------------------------------------- untrusted


PAYLOADS = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '<a href="javascript:window.__pwned=1">click</a>',
    '<svg xmlns="http://www.w3.org/2000/svg"><script>window.__pwned=1</script></svg>',
    "</pre></div></section><script>window.__pwned=1</script>",
    '<iframe src="https://example.com"></iframe><style>body{display:none}</style>',
]
_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40).decode()


def _xss_notebook() -> Any:
    return notebook(
        md("# title\n<script>window.__pwned=1</script><img src=x onerror=alert(1)>"),
        code("s = '</script><script>window.__pwned=1</script>'", count=1, outputs=[
            stream(PAYLOADS[0]), stream(PAYLOADS[1], name="stderr"),
            display({"text/html": PAYLOADS[4], "text/plain": "<b>plain</b>"}),
            display({"image/svg+xml": PAYLOADS[3]}),
            display({"text/markdown": PAYLOADS[2], "application/javascript": "window.__pwned = 1"}),
            result({"text/html": PAYLOADS[5]}, 1),
            error("Boom", "<script>x</script>", ["\x1b[31mBoom\x1b[0m: <img src=x onerror=alert(1)>"]),
        ]),
        code("img", count=2, outputs=[
            display({"image/png": "not base64 at all!!", "text/plain": "<Figure>"}),
            display({"image/png": base64.b64encode(b"GIF89a....").decode()}),
            display({"image/jpeg": _PNG}),  # a PNG claimed to be a JPEG
            display({"image/png": _PNG}),
        ]),
    )


def test_notebook_content_is_only_ever_text(tmp_path: Path) -> None:
    path = write(tmp_path / "xss.ipynb", _xss_notebook())
    nb = json.loads(path.read_text(encoding="utf-8"))
    doc = build_document([], [str(path)])
    text = render_html(doc, notebook=lambda p: nb if p == str(path) else None)
    page = check_page(text)
    for payload in PAYLOADS:
        assert payload not in text
    for raw in ("<script>window", "<img src=x", '<a href="javascript', "<iframe", "<svg xmlns", "</script><script>",
                "<b>plain</b>", "\x1b[31m"):
        assert raw not in text, raw
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in text  # shown, as text
    assert "&lt;b&gt;plain&lt;/b&gt;" in text
    imgs = page.find("img")
    assert [i["src"] for i in imgs] == [f"data:image/png;base64,{_PNG}"]
    assert text.count("not a valid image, not shown") == 3
    cells = page.find("div", "cell")
    assert [c["id"] for c in cells] == ["nb-0-cell-0", "nb-0-cell-1", "nb-0-cell-2"]
    # everything inside the cells is one of a few inert tags
    inside = re.search(r'<div class="cell markdown".*</details>', text, re.DOTALL)
    assert inside
    assert set(re.findall(r"<([a-zA-Z][\w-]*)", inside.group(0))) <= {"div", "p", "pre", "details", "summary", "img"}


def test_document_strings_are_escaped_too(tmp_path: Path) -> None:
    evil = "<script>window.__pwned=1</script>"
    doc = build_document([], [f"a{evil}.ipynb"], {"runs": [{"path": f"a{evil}.ipynb", "status": evil,
                                                            "kernel": evil, "cells": [], "timeline": []}]})
    doc["findings"] = [{"code": "RN120", "severity": "error", "path": f"a{evil}.ipynb", "cell": 0,
                        "message": evil, "fix": evil, "evidence": {"ename": evil, "traceback": f"a\n{evil}\nb"}}]
    text = render_html(doc, notebook=lambda p: None)
    check_page(text)
    assert evil not in text and "window.__pwned" in text
    # the finding's cell cannot be read: a placeholder is its link's target
    assert 'id="nb-0-cell-0"' in text


# ------------------------------------------------------------------------------------ odd documents


@pytest.mark.parametrize("doc", [
    {},
    {"findings": "x", "runs": "y", "files": 3, "machine": "odd", "incidents": {}},
    {"version": 1, "findings": [None, 3, {"code": 5}, {"code": "XX999", "message": "unknown code", "path": "a.ipynb",
                                                        "cell": "one", "evidence": []}],
     "files": [None, "a.ipynb", "a.ipynb"], "machine": {"ram": "lots", "cpus": True, "cgroup_memory_limit": -1},
     "runs": [1, {"path": 3}, {"path": "a.ipynb", "status": None, "duration": float("nan"), "peak_rss": "big",
                               "cells": [None, {"index": "x"}, {"index": 0, "wall": "slow", "peak_rss": None}],
                               "timeline": [None, {"t": "0", "rss": 5}, {"t": 1.0, "rss": float("inf")},
                                            {"t": 2.0, "rss": 100, "cpu": "hot", "cell": [1]}, {"t": 3.0, "rss": 50}]}],
     "incidents": [None, {"id": 7, "notebook": "b.ipynb", "time": "later", "memory": {"timeline": [[1, "x"], [2, 5, 1]],
                                                                                        "limits": {"x": "y"}}}]},
    {"findings": [], "files": ["a.ipynb"], "runs": [{"path": "a.ipynb", "timeline": [{"t": 0, "rss": 0}]}]},
])
def test_an_edited_document_still_renders(doc: dict[str, Any]) -> None:
    text = render_html(doc, notebook=lambda p: {"cells": "no"} if p == "a.ipynb" else None)
    check_page(text)


def test_surrogates_and_controls_do_not_break_the_page() -> None:
    doc = build_document([], ["a.ipynb"])
    nb = {"cells": [{"cell_type": "code", "source": "x = '\ud800'\x00\x07", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["a\x1b[1mb", 3, None]}]}]}
    text = render_html(doc, notebook=lambda p: nb)
    text.encode("utf-8")
    assert "\x00" not in text and "\x1b" not in text
    check_page(text)


# ------------------------------------------------------------------------------------------- charts


def test_downsampling_keeps_the_peak_and_the_ends() -> None:
    ts = [i * 0.1 for i in range(2000)]
    values = [float(i % 50) for i in range(2000)]
    values[1234] = 1e9
    t2, v2 = downsample(ts, values)
    assert 2 < len(t2) <= MAX_POINTS and len(t2) == len(v2)
    assert max(v2) == 1e9 and t2[v2.index(1e9)] == ts[1234]
    assert (t2[0], t2[-1]) == (ts[0], ts[-1])
    assert t2 == sorted(t2)
    for n in (1, 2, MAX_POINTS - 1, MAX_POINTS):
        assert downsample(ts[:n], values[:n]) == (ts[:n], values[:n])
    for n in (MAX_POINTS + 1, MAX_POINTS + 2, 2 * MAX_POINTS - 3, 5001):
        big_t = [float(i) for i in range(n)]
        assert len(downsample(big_t, big_t)[0]) <= MAX_POINTS


def test_a_line_path_is_its_points() -> None:
    xs = [62, 63, 70, 70, 100, 99, 672]
    ys = [200, 14, 14, 199, 0, 37, 200]
    d = line_path(xs, ys)
    assert d == "M62 200l1-186 7 0 0 185 30-199-1 37 573 163"
    assert points({"d": d}) == list(zip(xs, ys, strict=True))
    assert line_path([5], [7]) == "M5 7" and points({"d": "M5 7"}) == [(5, 7)]
    assert line_path([], []) == ""


def test_bars_are_one_path_per_series_with_a_subpath_per_cell() -> None:
    records = [{"index": 3, "wall": 1.0, "peak_rss": 2**20, "rss_delta": 0},
               {"index": 4, "wall": 10.0, "peak_rss": 2**24, "rss_delta": 2**24},
               {"index": 6, "wall": 0.0, "peak_rss": None, "rss_delta": 0},
               {"index": 7, "wall": 1.5, "peak_rss": 2**21, "rss_delta": 0}]
    page = Page(cell_bars(records))
    for kind in ("duration", "peak"):
        (plain,) = [p for p in page.find("path", f"bars {kind}") if "hot" not in p["class"].split()]
        (hot,) = page.find("path", f"bars {kind} hot")
        assert plain["data-cells"] == "3 6 7" and hot["data-cells"] == "4"
        assert plain["stroke-width"] == hot["stroke-width"] and int(plain["stroke-width"]) > 1
        heights = {c: int(sub.rsplit("v", 1)[1]) for c, sub in zip([3, 6, 7], subpaths(plain), strict=True)}
        heights[4] = int(subpaths(hot)[0].rsplit("v", 1)[1])
        assert heights[4] == max(heights.values()) and heights[6] == 1  # nothing: a 1-unit stub, still there
        xs = [int(sub[1:].split()[0]) for sub in subpaths(plain)]
        assert xs == sorted(xs)  # in cell order, left to right
    assert cells_of(page, "path", "bars duration") == [3, 6, 7, 4]
    assert not page.find("rect")


def _run_doc(findings: list[dict[str, Any]], *, samples: int = 1000) -> dict[str, Any]:
    timeline = [{"t": 1 + i * 0.1, "rss": 50 * 2**20 + i * 2**18, "cpu": 50.0, "threads": 1, "children": 0,
                 "gpu": None, "cell": i * 3 // samples} for i in range(samples)]
    cells = [{"index": c, "id": None, "status": "ok", "wall": samples * 0.1 / 3, "cpu": 1.0, "peak_rss": 2**28,
              "rss_delta": 0, "gpu_peak": None, "output_bytes": 0} for c in range(3)]
    doc = build_document([], ["n.ipynb"], {"runs": [{"path": "n.ipynb", "status": "died", "kernel": "python3",
                                                   "output": None, "duration": samples * 0.1 + 1, "peak_rss": 2**28,
                                                   "exit_code": -9, "cells": cells, "timeline": timeline}],
                                         "machine": {"ram": 2**34, "cpus": 2, "cgroup_memory_limit": None}})
    doc["findings"] = findings
    return doc


def test_limit_and_event_markers() -> None:
    findings = [
        {"code": "RN101", "severity": "error", "path": "n.ipynb", "cell": 2, "message": "killed",
         "evidence": {"peak_rss": 2**28, "limit": 300 * 2**20, "limits": {"--memory-limit": 300 * 2**20}}},
        {"code": "RN110", "severity": "error", "path": "n.ipynb", "cell": 1, "message": "timeout",
         "evidence": {"cell_timeout": 5, "elapsed": 5.1}},
        {"code": "RN150", "severity": "error", "path": "n.ipynb", "cell": 0, "message": "input",
         "evidence": {"seconds_into_cell": 1.5}},
    ]
    doc = _run_doc(findings)
    text = render_html(doc, notebook=lambda p: None)
    page = check_page(text)
    (svg,) = page.find("svg", "chart memory")
    timeline = doc["runs"][0]["timeline"]
    kept = downsample([s["t"] for s in timeline], [s["rss"] for s in timeline])[0]
    assert int(svg["data-points"]) == len(kept) <= MAX_POINTS < len(timeline)
    assert len(points(page.find("path", "series rss")[0])) == int(svg["data-points"])
    assert page.find("path", "series cpu") and not page.find("path", "series gpu")
    (limit,) = page.find("line", "limit")
    assert limit["data-bytes"] == str(300 * 2**20)
    assert [a["data-cell"] for a in page.find("g", "event death")] == ["2"]
    assert [a["data-cell"] for a in page.find("g", "event timeout")] == ["1"]
    (interrupt,) = page.find("g", "event interrupt")
    assert interrupt["data-cell"] == "0" and float(interrupt["data-t"]) == pytest.approx(2.5)
    # findings sorted by severity then cell; each linked to a placeholder cell (no notebook content)
    assert [a["data-code"] for a in page.find("article", "finding")] == ["RN150", "RN110", "RN101"]
    assert {f"nb-0-cell-{i}" for i in range(3)} <= page.ids
    assert "cgroup memory limit" in text and "16.0 GiB" in text


def test_the_machine_cgroup_limit_is_the_line_when_no_death_names_one() -> None:
    doc = _run_doc([])
    doc["machine"]["cgroup_memory_limit"] = 2**29
    page = check_page(render_html(doc, notebook=lambda p: None))
    assert page.find("line", "limit", data_bytes=str(2**29))


def test_an_incident_with_its_memory_timeline(tmp_path: Path) -> None:
    record = {"schema": 1, "id": "a1b2c3d4e5f6", "time": 1000.0 + 30, "kernel_id": "k", "kernelspec": "python3",
              "notebook": str(tmp_path / "live.ipynb"), "supervisor": "provisioner", "pid": 42, "exit_code": -9,
              "signal": "SIGKILL",
              "finding": {"code": "RN101", "severity": "error", "message": "killed for memory", "fix": "",
                          "cell_id": None, "evidence": {"peak_rss": 2**30}},
              "cell": {"execution_count": 3, "cell_id": None, "source_head": "big = load()</pre><script>x</script>",
                       "started": 1000.0, "seconds": 30.0},
              "memory": {"peak_rss": 2**30, "last_rss": 2**30, "limits": {"cgroup": 2**30 + 2**28},
                         "timeline": [[1000.0 + i * 0.5, 2**20 * (10 + i * 17), 90.0] for i in range(60)]},
              "faulthandler": "", "oom_kill_line": None, "guard": None}
    doc = incidents_document([record])
    text = render_html(doc, notebook=lambda p: None)
    page = check_page(text)
    (svg,) = page.find("svg", "chart memory incident")
    assert svg["data-points"] == "60"
    assert page.find("g", "event death") and page.find("line", "limit")
    assert page.find("section", "notebook", id="nb-0", data_path=record["notebook"])
    assert "</pre><script>x" not in text and "a1b2c3d4e5f6" in text
