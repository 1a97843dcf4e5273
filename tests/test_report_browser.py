"""The HTML report in a real browser: the system's headless Chromium driven by Selenium (tests/browserhelpers).

The clinic's report (one ``nbmedic doctor examples/clinic`` for the module, its ``.json`` report written by
the same run) opens with no console errors under its Content-Security-Policy, draws the charts the document
describes (points per memory timeline, bars per cell record), and its cell links navigate by mouse and by
keyboard; it prints expanded.  A notebook whose outputs carry script payloads runs none of them, whether its
report comes from ``check`` (stored outputs) or ``run`` (the executed outputs).

With ``NBMEDIC_SCREENSHOT=1`` the run also saves the README's screenshot, docs/img/clinic-report.png.
Skipped, with the reason, where no Chromium and chromedriver are installed (``apt-get install chromium
chromium-driver``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browserhelpers import (
    WIDTH,
    browser_or_skip,
    console,
    csp_hash,
    line_points,
    open_report,
    path_cells,
    png_size,
    print_pdf,
    screenshot,
    severe,
    wait_for,
)
from tests.nbfactory import code, display, error, md, notebook, stream, write

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the clinic's kernels: Linux only")

ROOT = Path(__file__).resolve().parent.parent
CLINIC = ROOT / "examples" / "clinic"
SCREENSHOT = ROOT / "docs" / "img" / "clinic-report.png"
SCREENSHOT_MEMORY = ROOT / "docs" / "img" / "clinic-report-memory.png"
MAX_POINTS = 240  # the contract's downsampling bound for a drawn timeline
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from browser_or_skip()


@pytest.fixture(scope="module")
def clinic(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The clinic's HTML report and the document it renders (the ``.json`` report of the same doctor run,
    which, unlike ``--format json`` on stdout, carries the memory timelines and the machine)."""
    tmp = tmp_path_factory.mktemp("clinic-report")
    home = tmp / "jupyter-home"  # private Jupyter folders, as the ``jupyter_home`` fixture makes them
    dirs = {name: home / name for name in ("data", "runtime", "config")}
    for folder in dirs.values():
        folder.mkdir(parents=True, mode=0o700)  # private, as Jupyter makes them (else EN260)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "JUPYTER_DATA_DIR": str(dirs["data"]), "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
           "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_PATH": str(dirs["data"])}
    env.pop("JPY_SESSION_NAME", None)
    page, doc = tmp / "clinic.html", tmp / "clinic.json"
    proc = subprocess.run([sys.executable, "-m", "nbmedic", "doctor", "examples/clinic", "--report", str(page),
                           "--report", str(doc)], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 1, proc.stderr  # the clinic holds errors
    return page, json.loads(doc.read_text(encoding="utf-8"))


# --- what the page shows, gathered in one script per question ----------------------------------------------

_SECTIONS_JS = """
const attr = (el, name) => el.getAttribute(name);
const all = (root, sel) => Array.from(root.querySelectorAll(sel));
const paths = p => ({cells: attr(p, 'data-cells'), d: attr(p, 'd')});
return all(document, 'section.notebook').map(s => ({
  id: s.id, path: attr(s, 'data-path'), status: attr(s, 'data-status'),
  memory: all(s, 'svg.chart.memory').map(svg => ({
    points: attr(svg, 'data-points'), role: attr(svg, 'role'), label: attr(svg, 'aria-label'),
    rss: all(svg, 'path.series.rss').map(p => ({d: attr(p, 'd'), width: p.getBBox().width})),
    width: svg.getBoundingClientRect().width, height: svg.getBoundingClientRect().height,
    boundaries: all(svg, 'path.cell-boundaries').map(paths),
    limits: all(svg, 'line.limit').length,
    events: all(svg, 'g.event').map(g => [attr(g, 'class'), attr(g, 'data-cell')]),
    shared: all(svg, 'use').map(u => [attr(u, 'href'), u.getBoundingClientRect().width]),
  })),
  bars: all(s, 'svg.chart.cells').map(svg => ({
    duration: all(svg, 'path.bars.duration').map(paths),
    peak: all(svg, 'path.bars.peak').map(paths),
    drawn: all(svg, 'path.bars').every(p => p.getBBox().height > 0 && getComputedStyle(p).stroke !== 'none'
                                             && parseFloat(getComputedStyle(p).strokeWidth) >= 1),
  })),
  findings: all(s, 'article.finding').map(a => ({
    id: a.id, code: attr(a, 'data-code'), cls: attr(a, 'class'),
    links: all(a, 'a.cell-link').map(l => attr(l, 'href')),
  })),
  cells: all(s, 'div.cell').map(c => c.id),
}));
"""

_TARGET_IN_VIEW_JS = """
const el = document.getElementById(arguments[0]);
if (!el) return null;
const r = el.getBoundingClientRect();
return {top: r.top, bottom: r.bottom, height: window.innerHeight, hash: location.hash,
        target: document.querySelector(':target') === el};
"""


def _sections(browser: Any) -> list[dict[str, Any]]:
    return list(browser.execute_script(_SECTIONS_JS))


def _by_path(doc: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    runs = {run["path"]: run for run in doc.get("runs") or []}
    findings: dict[str, list[dict[str, Any]]] = {}
    for finding in doc["findings"]:
        findings.setdefault(finding["path"], []).append(finding)
    return runs, findings


def _expected_points(timeline: list[dict[str, Any]]) -> int | None:
    """K of the contract when it is exact (None: downsampled, at most MAX_POINTS)."""
    return len(timeline) if len(timeline) <= MAX_POINTS else None


def _assert_in_view(browser: Any, target: str) -> None:
    wait_for(browser, lambda: browser.execute_script("return location.hash") == "#" + target, f"#{target}")
    seen = browser.execute_script(_TARGET_IN_VIEW_JS, target)
    assert seen is not None, f"no element #{target}"
    assert seen["target"], f"#{target} is not the :target"
    assert -2 <= seen["top"] < seen["height"], f"#{target} is not scrolled into view: {seen}"


# --- the clinic ---------------------------------------------------------------------------------------------

def test_the_clinic_report_opens_without_errors_under_its_csp(browser: Any, clinic: tuple[Path, dict[str, Any]]
                                                             ) -> None:
    page, doc = clinic
    entries = open_report(browser, page)
    assert severe(entries) == [], "console errors while opening the clinic's report"
    facts = browser.execute_script("""
      const meta = document.querySelectorAll('meta[http-equiv="Content-Security-Policy"]');
      return {csp: Array.from(meta).map(m => m.getAttribute('content')),
              scripts: Array.from(document.scripts).map(s => [s.src, s.textContent]),
              styles: Array.from(document.querySelectorAll('style')).map(s => s.textContent),
              sheets: document.querySelectorAll('link').length,
              resources: performance.getEntriesByType('resource').map(r => r.name),
              summary: (document.getElementById('summary') || {}).innerText || null};""")
    assert len(facts["csp"]) == 1, facts["csp"]
    csp = {part.split()[0]: part.split()[1:] for part in facts["csp"][0].split(";") if part.strip()}
    assert csp.get("default-src") == ["'none'"] and csp.get("base-uri") == ["'none'"], csp
    assert csp.get("img-src") == ["data:"] and csp.get("form-action") == ["'none'"], csp
    assert len(facts["scripts"]) == 1 and facts["scripts"][0][0] == "", "one inline script, no script file"
    assert len(facts["styles"]) == 1 and facts["sheets"] == 0, "one inline style, no style sheet file"
    assert csp.get("script-src") == [csp_hash(facts["scripts"][0][1])], "the script is allowed by its hash only"
    assert csp.get("style-src") == [csp_hash(facts["styles"][0])], "the style is allowed by its hash only"
    assert facts["resources"] == [], "the page loaded something"
    summary = facts["summary"]
    assert summary is not None, "no #summary"
    assert str(len(doc["files"])) in summary and "MiB" in summary and re.search(r"\d s\b", summary), summary


def test_the_clinic_charts_match_the_document(browser: Any, clinic: tuple[Path, dict[str, Any]]) -> None:
    page, doc = clinic
    open_report(browser, page)
    sections = _sections(browser)  # in any order; nb-N is the N-th of the document's files
    assert sorted(s["id"] for s in sections) == sorted(f"nb-{n}" for n in range(len(doc["files"])))
    assert all(s["path"] == doc["files"][int(s["id"][3:])] for s in sections), "nb-N is not files[N]"
    runs, findings = _by_path(doc)
    charted = 0
    for section in sections:
        run = runs.get(section["path"])
        if run is None:
            assert section["memory"] == [] and section["bars"] == [], section["path"]
            continue
        assert section["status"] == run["status"], section["path"]
        timeline = run.get("timeline") or []
        if timeline:
            charted += 1
            _check_memory_chart(section, run, findings.get(section["path"], []), doc)
        records = sorted(str(record["index"]) for record in run["cells"])
        assert len(section["bars"]) == 1, section["path"]
        assert sorted(path_cells(section["bars"][0]["duration"])) == records, section["path"]
        assert sorted(path_cells(section["bars"][0]["peak"])) == records, section["path"]
        assert section["bars"][0]["drawn"], f"{section['path']}: a bar series is not drawn"
        source = json.loads((ROOT / section["path"]).read_text(encoding="utf-8"))
        assert section["cells"] == [f"{section['id']}-cell-{i}" for i in range(len(source["cells"]))]
    assert charted >= 10, "the clinic's runs should carry memory timelines"


def _check_memory_chart(section: dict[str, Any], run: dict[str, Any], findings: list[dict[str, Any]],
                        doc: dict[str, Any]) -> None:
    where = section["path"]
    assert len(section["memory"]) == 1, where
    chart = section["memory"][0]
    timeline = run["timeline"]
    assert chart["role"] == "img" and chart["label"], where
    assert chart["width"] > 0 and chart["height"] > 0, f"{where}: the chart is not drawn"
    assert len(chart["rss"]) == 1, where
    drawn = len(line_points(chart["rss"][0]["d"]))
    assert str(drawn) == chart["points"], f"{where}: data-points={chart['points']} but {drawn} points drawn"
    expected = _expected_points(timeline)
    assert drawn == expected if expected is not None else 2 <= drawn <= MAX_POINTS, (where, drawn, len(timeline))
    if drawn > 1:
        assert chart["rss"][0]["width"] > 0, f"{where}: the memory line has no extent"
    cells = {str(record["index"]) for record in run["cells"]}
    started = {str(sample["cell"]) for sample in timeline if sample.get("cell") is not None}
    assert len(chart["boundaries"]) <= 1, f"{where}: the cell boundaries are one path"
    drawn_cells = path_cells(chart["boundaries"])
    boundaries = set(drawn_cells)
    assert len(drawn_cells) == len(boundaries), f"{where}: a cell's boundary is drawn twice"
    assert boundaries <= cells and started & cells <= boundaries, (where, boundaries, started, cells)
    shared = dict(chart["shared"])
    assert shared.get("#c-mem", 0) > 0 and shared.get("#c-rss", 0) > 0, f"{where}: axes or legend not drawn"

    limit = doc.get("machine", {}).get("cgroup_memory_limit") or any(
        f["code"] == "RN101" and f["evidence"].get("limit") for f in findings)
    if limit:
        assert chart["limits"] == 1, f"{where}: the memory limit is known but not drawn"
    kinds = {"death": ("RN100", "RN101", "RN102", "RN103"), "timeout": ("RN110", "RN111")}
    for kind, codes in kinds.items():
        for finding in (f for f in findings if f["code"] in codes):
            marks = [cell for cls, cell in chart["events"] if kind in (cls or "").split()]
            assert marks, f"{where}: no {kind} marker for {finding['code']}"
            if finding.get("cell") is not None:
                assert str(finding["cell"]) in marks, (where, finding["code"], marks)


def test_the_pointer_reads_time_and_memory_off_a_memory_chart(browser: Any, clinic: tuple[Path, dict[str, Any]]
                                                              ) -> None:
    """The one enhancement on the charts: under the pointer, the nearest point of the line (read from its
    path) is marked and its time and memory shown."""
    open_report(browser, clinic[0])
    shown = browser.execute_script("""
      const svg = document.querySelector('svg.chart.memory');
      svg.scrollIntoView();
      const r = svg.getBoundingClientRect();
      svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width / 2, clientY: r.top + r.height / 2,
                                                     bubbles: true}));
      const dot = svg.querySelector('circle.cursor');
      const at = new DOMPoint(r.left + r.width / 2, 0).matrixTransform(svg.getScreenCTM().inverse()).x;
      const nums = svg.querySelector('path.series.rss').getAttribute('d').match(/-?[0-9.]+/g).map(Number);
      const xs = [nums[0]];
      for (let i = 2; i < nums.length; i += 2) xs.push(xs[xs.length - 1] + nums[i]);
      const nearest = xs.reduce((a, b) => Math.abs(b - at) < Math.abs(a - at) ? b : a);
      return {text: (svg.querySelector('text.readout') || {}).textContent || '', nearest: nearest,
              dot: dot ? [dot.getAttribute('visibility'), +dot.getAttribute('cx')] : null};""")
    assert re.fullmatch(r"[0-9.]+ s · [0-9.]+ MiB", shown["text"]), shown
    # the mark sits on the line's point nearest the pointer (where that is depends on the run's samples)
    assert shown["dot"] and shown["dot"][0] == "visible" and shown["dot"][1] == shown["nearest"], shown
    assert severe(console(browser)) == []


def test_every_finding_is_shown_with_a_link_to_its_cell(browser: Any, clinic: tuple[Path, dict[str, Any]]) -> None:
    page, doc = clinic
    open_report(browser, page)
    sections = _sections(browser)
    _, findings = _by_path(doc)
    ids = [a["id"] for s in sections for a in s["findings"]]
    assert len(ids) == len(set(ids)), "finding ids repeat"
    existing = set(browser.execute_script("return Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
    for section in sections:
        expected = findings.get(section["path"], [])
        shown = section["findings"]
        assert Counter(a["code"] for a in shown) == Counter(f["code"] for f in expected), section["path"]
        for article in shown:
            assert re.fullmatch(rf"{section['id']}-f-\d+", article["id"]), article["id"]
        for finding in expected:
            match = [a for a in shown if a["code"] == finding["code"] and f"sev-{finding['severity']}" in a["cls"].split()]
            assert match, (section["path"], finding["code"], "no article of that severity")
            if finding.get("cell") is not None:
                href = f"#{section['id']}-cell-{finding['cell']}"
                assert any(href in a["links"] for a in match), (section["path"], finding["code"], href)
                assert href[1:] in existing, f"{href} points nowhere"
    assert sum(len(s["findings"]) for s in sections) >= len(doc["files"]) - 1


def test_a_cell_link_scrolls_its_cell_into_view(browser: Any, clinic: tuple[Path, dict[str, Any]]) -> None:
    from selenium.webdriver.common.by import By

    open_report(browser, clinic[0])
    links = [link for link in browser.find_elements(By.CSS_SELECTOR, "a.cell-link") if link.is_displayed()]
    assert links, "no visible cell link"
    # the last one: its cell is far from the top of the page, which starts scrolled to the top
    link = links[-1]
    target = link.get_attribute("href").split("#", 1)[1]
    before = browser.execute_script(_TARGET_IN_VIEW_JS, target)
    assert before is not None and before["top"] >= before["height"], "the target is already in view"
    link.click()
    _assert_in_view(browser, target)


def test_tab_reaches_a_link_and_enter_follows_it(browser: Any, clinic: tuple[Path, dict[str, Any]]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_report(browser, clinic[0])
    focused: dict[str, Any] | None = None
    for _ in range(80):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.execute_script("""
          const el = document.activeElement;
          if (!el || el.tagName !== 'A') return null;
          const href = el.getAttribute('href') || '';
          const style = getComputedStyle(el);
          return {href: href, outline: style.outlineStyle, shadow: style.boxShadow,
                  visible: el.matches(':focus-visible')};""")
        if focused and re.fullmatch(r"#nb-\d+-cell-\d+", focused["href"]):
            break
    assert focused and re.fullmatch(r"#nb-\d+-cell-\d+", focused["href"]), "Tab never reached a cell link"
    assert focused["visible"] and (focused["outline"] != "none" or focused["shadow"] != "none"), \
        f"the focused link shows no focus: {focused}"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    _assert_in_view(browser, focused["href"][1:])


def test_printing_expands_the_folded_evidence(browser: Any, clinic: tuple[Path, dict[str, Any]]) -> None:
    open_report(browser, clinic[0])
    folded_js = """
      const hidden = [];
      for (const d of document.querySelectorAll('details')) {
        for (const child of d.children) {
          if (child.tagName !== 'SUMMARY' && !child.checkVisibility()) hidden.push(d.id || d.textContent.slice(0, 60));
        }
      }
      const pinned = Array.from(document.querySelectorAll('body *')).filter(
        el => ['sticky', 'fixed'].includes(getComputedStyle(el).position) && el.checkVisibility()).length;
      return {details: document.querySelectorAll('details').length, hidden: hidden, pinned: pinned};"""
    on_screen = browser.execute_script(folded_js)
    assert on_screen["details"] > 0 and on_screen["hidden"], "no folded evidence on screen"
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        printed = browser.execute_script(folded_js)
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert printed["hidden"] == [], "folded evidence stays hidden in print"
    assert printed["pinned"] == 0, "sticky or fixed elements in print"
    pdf = print_pdf(browser)
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) > 1, "the clinic's report prints on one page"
    assert severe(console(browser)) == []


def test_screenshot_of_the_clinic_report(browser: Any, clinic: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The top of the page (summary, contents) and the memory hog's section (its chart, bars, finding, cells);
    with NBMEDIC_SCREENSHOT=1 they become the README's images."""
    open_report(browser, clinic[0])
    shots = {SCREENSHOT: screenshot(browser),
             SCREENSHOT_MEMORY: screenshot(browser, 'section.notebook[data-path$="/memory_hog.ipynb"]', 1400)}
    for path, png in shots.items():
        (tmp_path / path.name).write_bytes(png)
        width, height = png_size(png)
        assert width == WIDTH and 600 <= height <= 2000, (path.name, width, height)
        assert len(png) > 30_000, f"{path.name}: a nearly blank screenshot"
        if os.environ.get("NBMEDIC_SCREENSHOT") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
    assert severe(console(browser)) == []


def test_a_long_timeline_is_downsampled_keeping_its_peak(browser: Any, clinic: tuple[Path, dict[str, Any]],
                                                         run_cli: Run, tmp_path: Path) -> None:
    _, clinic_doc = clinic
    doc = json.loads(json.dumps(clinic_doc))
    run = next(r for r in doc["runs"] if r.get("timeline"))
    flat, spike, at = 100 * 2**20, 8 * 2**30, 3217
    sample = dict(run["timeline"][0])
    run["timeline"] = [{**sample, "t": i * 0.01, "rss": spike if i == at else flat, "cell": run["cells"][0]["index"]}
                       for i in range(5000)]
    saved, page = tmp_path / "long.json", tmp_path / "long.html"
    saved.write_text(json.dumps(doc), encoding="utf-8")
    code_, _, err = run_cli("report", str(saved), "-o", str(page))
    assert code_ == 0, err
    assert severe(open_report(browser, page)) == []
    sections = [s for s in _sections(browser) if s["path"] == run["path"]]
    assert len(sections) == 1 and len(sections[0]["memory"]) == 1, f"no memory chart for {run['path']}"
    chart = sections[0]["memory"][0]
    drawn = len(line_points(chart["rss"][0]["d"]))
    assert 2 <= drawn <= MAX_POINTS and str(drawn) == chart["points"], drawn
    ys = [y for _, y in line_points(chart["rss"][0]["d"])]
    assert max(ys) - min(ys) > 5, "the spike is lost: the downsampled line is flat"
    assert sum(1 for y in ys if abs(y - min(ys)) < 0.5) == 1, "the peak should be one point above a flat line"


# --- untrusted outputs ----------------------------------------------------------------------------------------

# (mime type, payload): each would set window.__pwned (or hide, restyle or move the page) if it became markup
PAYLOADS: list[tuple[str, str]] = [
    ("text/html", "<script>window.__pwned=1</script>"),
    ("text/html", '<img src=x onerror="window.__pwned=2">'),
    ("text/html", '<a id="pwn-link" href="javascript:window.__pwned=3">click me</a>'),
    ("image/svg+xml", ('<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=4">'
                       "<script>window.__pwned=4</script></svg>")),
    ("text/html", "</pre></div></details></article></section></main></body><script>window.__pwned=5</script>"),
    ("application/javascript", "window.__pwned=6"),
    ("text/markdown", '**bold** <img src=x onerror="window.__pwned=8"> <script>window.__pwned=8</script>'),
    ("text/html", '<iframe srcdoc="<script>parent.__pwned=9</script>"></iframe>'),
    ("text/html", '<style>body{display:none}</style><link rel="stylesheet" href="data:text/css,body{display:none}">'),
    ("text/html", '<meta http-equiv="refresh" content="0;url=data:text/html,gone"><base href="https://evil.invalid/">'),
    ("text/html", '<object data="javascript:window.__pwned=12"></object><embed src="javascript:window.__pwned=12">'),
    ("text/html", '<form action="javascript:window.__pwned=13"><button id="pwn-submit">go</button></form>'),
]
# image/png data that is no PNG: an attribute break-out, and an SVG with a script in base64
BAD_IMAGES = ['" onerror="window.__pwned=10" x="',
              base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=11"/>').decode()]
SOURCE_PAYLOAD = "</script><script>window.__pwned=7</script>"
MARKDOWN_CELL = '<script>window.__pwned=14</script><img src=x onerror="window.__pwned=14">'
STREAM_PAYLOAD = "<script>window.__pwned=15</script>"
ERROR_PAYLOAD = '<img src=x onerror="window.__pwned=16">'
NB_NAME = "pwn\"'><img src=x onerror=window.__pwned=17>.ipynb"  # the path is shown too


def _xss_notebook(folder: Path) -> Path:
    """Harmless Python that displays every payload; its stored outputs are what a run displays."""
    cells = [md(MARKDOWN_CELL), code(f"label = {SOURCE_PAYLOAD!r}", count=1)]
    shown = [*PAYLOADS, *(("image/png", data) for data in BAD_IMAGES)]
    for i, (mime, payload) in enumerate(shown, start=2):
        cells.append(code(f"display({{{mime!r}: {payload!r}}}, raw=True)", count=i,
                          outputs=[display({mime: payload})]))
    cells.append(code(f"print({STREAM_PAYLOAD!r})", count=len(cells), outputs=[stream(STREAM_PAYLOAD + "\n")]))
    cells.append(code(f"raise ValueError({ERROR_PAYLOAD!r})", count=len(cells),
                      outputs=[error("ValueError", ERROR_PAYLOAD, [f"ValueError: {ERROR_PAYLOAD}"])]))
    nb = notebook(*cells)
    nb.metadata["kernelspec"]["display_name"] = "<script>window.__pwned=18</script>"
    return write(folder / NB_NAME, nb)


_DOM_JS = """
const found = sel => document.querySelectorAll(sel).length;
const onAttrs = [];
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) if (a.name.toLowerCase().startsWith('on')) onAttrs.push(el.tagName + ' ' + a.name);
}
const summary = document.getElementById('summary');
return {
  pwned: typeof window.__pwned, href: location.href, base: document.baseURI,
  scripts: found('script'), styles: found('style'),
  foreign: found('iframe, object, embed, link, base, form, meta[http-equiv="refresh"], body svg script'),
  onAttrs: onAttrs,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.protocol]),
  images: Array.from(document.images).map(i => i.getAttribute('src')),
  bodyShown: getComputedStyle(document.body).display !== 'none',
  summaryShown: !!summary && summary.checkVisibility(),
  text: document.body.textContent,
  cells: Array.from(document.querySelectorAll('div.cell')).map(c => c.id),
  paths: Array.from(document.querySelectorAll('section.notebook')).map(s => s.getAttribute('data-path')),
};"""


def _never_pwned(browser: Any, seconds: float = 1.0) -> None:
    """Give the payloads ``seconds`` to fire (error handlers, refreshes, loads), failing as soon as one has."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert browser.execute_script("return typeof window.__pwned") == "undefined", "a payload ran"
        time.sleep(0.1)


@pytest.mark.parametrize("command", ["check", "run"])
def test_no_notebook_payload_runs(browser: Any, run_cli: Run, jupyter_home: dict[str, Path], tmp_path: Path,
                                  command: str) -> None:
    from selenium.webdriver.common.by import By

    nb = _xss_notebook(tmp_path / "nbs")
    page = tmp_path / f"{command}.html"
    code_, _, err = run_cli(command, str(nb), "--report", str(page))
    assert code_ == {"check": 0, "run": 1}[command], err  # the saved error is NB051 (info); RN120 is an error
    entries = open_report(browser, page)
    url = browser.current_url
    _never_pwned(browser)
    for link in browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:"], #pwn-link, #pwn-submit'):
        browser.execute_script("arguments[0].click()", link)
    _never_pwned(browser, 0.3)
    dom = browser.execute_script(_DOM_JS)
    assert severe(entries + console(browser)) == [], "console errors: a payload became markup the CSP blocked"
    assert dom["pwned"] == "undefined" and dom["href"] == url == dom["base"], dom["href"]
    assert dom["scripts"] == 1 and dom["styles"] == 1 and dom["foreign"] == 0, dom
    assert dom["onAttrs"] == [], dom["onAttrs"]
    assert all(href.startswith("#") or protocol in ("https:", "http:") for href, protocol in dom["links"]), dom["links"]
    for src in dom["images"]:
        assert re.match(r"data:image/(png|jpeg);base64,", src or ""), f"an image not from validated data: {src!r}"
        raw = binascii.a2b_base64(src.split(",", 1)[1])
        assert raw.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")), "an image whose bytes are not its type"
    assert dom["bodyShown"] and dom["summaryShown"], "a notebook's style hid the page"
    assert dom["paths"] == [str(nb)]
    cells = len(json.loads(nb.read_text(encoding="utf-8"))["cells"])
    assert dom["cells"] == [f"nb-0-cell-{i}" for i in range(cells)]
    shown_as_text = [payload for _, payload in PAYLOADS] + [SOURCE_PAYLOAD, MARKDOWN_CELL, STREAM_PAYLOAD,
                                                          ERROR_PAYLOAD]
    missing = [payload for payload in shown_as_text if payload not in dom["text"]]
    assert missing == [], f"outputs not shown as text: {missing}"
