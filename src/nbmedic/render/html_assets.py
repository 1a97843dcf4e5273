"""The HTML report's one inline style sheet and one inline script, and the Content-Security-Policy that
allows exactly those two (by their SHA-256) and nothing else: no network, no other script or style.

The script only enhances a page that reads without it: expand/collapse-all buttons, every ``<details>``
opened for printing, and a readout of time and memory under the pointer on the memory charts.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["SCRIPT", "STYLE", "csp_hash"]

STYLE = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;--err:#cf222e;--warn:#9a6700;
--info:#0969da;--ok:#1a7f37;--rss:#0969da;--cpu:#8250df;--gpu:#bf3989}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
margin:0 auto;padding:1rem 1.5rem 3rem;max-width:1100px}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.25rem;margin:0 0 .5rem}h3{font-size:1.05rem;margin:1rem 0 .4rem}
a{color:var(--info)}
a:focus-visible,summary:focus-visible,button:focus-visible,[tabindex]:focus-visible{outline:3px solid #fb8500;
outline-offset:2px;border-radius:2px}
pre{background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:.4rem .6rem;margin:.3rem 0;
overflow:auto;max-height:28rem;white-space:pre-wrap;word-break:break-word;font:12.5px/1.4 ui-monospace,
SFMono-Regular,Menlo,Consolas,monospace}
section{border-top:2px solid var(--line);padding-top:1rem;margin-top:1.5rem}
table{border-collapse:collapse}td,th{border-bottom:1px solid var(--line);padding:.2rem .6rem;text-align:left;
vertical-align:top}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.badge{display:inline-block;border-radius:1em;padding:0 .55em;font-size:.8rem;font-weight:600;
border:1px solid currentColor;vertical-align:middle}
.sev-error .badge,.badge.sev-error,.badge.st-died,.badge.st-failed,.badge.st-timeout,.badge.st-not-started{color:var(--err)}
.sev-warning .badge,.badge.sev-warning{color:var(--warn)}.sev-info .badge,.badge.sev-info{color:var(--info)}
.badge.healthy,.badge.st-ok{color:var(--ok)}
.toc li{margin:.15rem 0}.toc .counts{color:var(--muted);font-size:.85rem}
nav.nb-toc{font-size:.9rem;color:var(--muted)}nav.nb-toc a{margin-right:.8rem}
article.finding{border-left:4px solid var(--line);padding:.3rem .8rem;margin:.6rem 0;background:var(--soft)}
article.sev-error{border-color:var(--err)}article.sev-warning{border-color:var(--warn)}
article.sev-info{border-color:var(--info)}
article.finding h4{margin:0;font-size:.95rem}article.finding .code{font-family:ui-monospace,monospace}
article.finding .fix{margin:.3rem 0}article.finding .fix b{color:var(--ok)}
.evidence{margin:.3rem 0}.evidence dt{font-family:ui-monospace,monospace;font-size:.85rem}
.evidence dd pre{margin:0}
.healthy-note{color:var(--ok)}
.note{color:var(--muted);font-size:.85rem;margin:.2rem 0}
.cell{border:1px solid var(--line);border-radius:4px;margin:.5rem 0;padding:.3rem .5rem}
.cell:target{outline:3px solid #fb8500}
.cell>p:first-child{font-size:.85rem;color:var(--muted);margin:0}
.cell.missing{border-style:dashed}
.cell.markdown>pre:nth-child(2),.cell.raw>pre:nth-child(2){background:#fff}
pre.err{background:#fff5f5}pre.tb{background:#ffebe9}
img.output-image{max-width:100%;height:auto}
svg.chart{width:100%;height:auto;max-width:900px;display:block;margin:.4rem 0;font:11px system-ui,sans-serif}
svg.defs{position:absolute;width:0;height:0;overflow:hidden}
svg.chart text{fill:var(--fg)}svg .tick-label{fill:var(--muted)}svg .axis-title{font-weight:600}
svg .mid{text-anchor:middle}svg .end{text-anchor:end}
svg .tick{stroke:var(--muted);stroke-width:1;fill:none}svg .grid{fill:none;stroke:var(--line);stroke-width:.5}
svg path.series{fill:none;stroke-width:1.6;stroke-linejoin:round}
svg use.axes{fill:var(--fg);color:var(--muted)}svg use.key{fill:var(--muted);color:var(--muted)}
svg use.rss{color:var(--rss)}svg use.cpu{color:var(--cpu)}svg use.gpu{color:var(--gpu)}
svg path.rss{stroke:var(--rss)}svg path.cpu{stroke:var(--cpu)}svg .series.cpu{stroke-width:1;opacity:.55}
svg path.gpu{stroke:var(--gpu)}
svg .cell-boundaries{fill:none;stroke:#8c959f;stroke-width:.7;stroke-dasharray:2 3;vector-effect:non-scaling-stroke}
svg .limit{stroke:var(--err);stroke-width:1.4;stroke-dasharray:6 4}svg .limit-label{fill:var(--err)}
svg .event line{stroke-width:2}svg .event text{font-weight:600}
svg .event.death line{stroke:var(--err)}svg .event.death text{fill:var(--err)}
svg .event.timeout line{stroke:var(--warn)}svg .event.timeout text{fill:var(--warn)}
svg .event.interrupt line{stroke:var(--cpu)}svg .event.interrupt text{fill:var(--cpu)}
svg circle.peak{fill:var(--rss)}svg .readout{font-weight:600}svg circle.cursor{fill:#fb8500}
svg path.bars{fill:none}svg .bars.duration{stroke:#8ab4f8}svg .bars.peak{stroke:#b392f0}svg .bars.hot{stroke:var(--err)}
.incident{border:1px solid var(--line);border-radius:4px;padding:.3rem .8rem;margin:.6rem 0}
#tools{position:fixed;right:1rem;bottom:1rem;background:var(--bg);border:1px solid var(--line);padding:.3rem;
border-radius:4px}
#tools button{font:inherit;margin:0 .2rem}
@media print{
#tools,nav.nb-toc{display:none}
body{max-width:none;padding:0;font-size:11pt}
pre{max-height:none;overflow:visible}
details>*{display:block}details::details-content{display:contents;content-visibility:visible}
section.notebook,article.finding,.cell,svg.chart{break-inside:avoid-page}
a{color:inherit;text-decoration:none}
}
"""

SCRIPT = """
(function () {
  "use strict";
  var doc = document;
  var all = function (sel) { return Array.prototype.slice.call(doc.querySelectorAll(sel)); };
  var setAll = function (open) { all("details").forEach(function (d) { d.open = open; }); };
  var tools = doc.getElementById("tools");
  if (tools) {
    tools.hidden = false;
    tools.addEventListener("click", function (ev) {
      var act = ev.target && ev.target.getAttribute ? ev.target.getAttribute("data-act") : null;
      if (act) { setAll(act === "open"); }
    });
  }
  var closed = [];
  window.addEventListener("beforeprint", function () {
    closed = all("details:not([open])");
    closed.forEach(function (d) { d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    closed.forEach(function (d) { d.open = false; });
    closed = [];
  });
  var NS = "http://www.w3.org/2000/svg";
  var mib = function (b) { return (b / 1048576).toFixed(b < 10485760 ? 1 : 0) + " MiB"; };
  all("svg.chart.memory").forEach(function (svg) {
    var line = svg.querySelector("path.series.rss");
    if (!line || !svg.getScreenCTM) { return; }
    var nums = (line.getAttribute("d") || "").match(/-?[0-9.]+/g) || [], pts = [], px = 0, py = 0, k;
    for (k = 0; k + 1 < nums.length; k += 2) {  /* M x y, then relative steps */
      px += parseFloat(nums[k]); py += parseFloat(nums[k + 1]); pts.push({x: px, y: py});
    }
    var n = function (k) { return parseFloat(svg.getAttribute("data-" + k)); };
    var x0 = n("x0"), x1 = n("x1"), y0 = n("y0"), y1 = n("y1"), tmax = n("tmax"), vmax = n("vmax");
    if (!(x1 > x0) || !(y0 > y1)) { return; }
    var dot = doc.createElementNS(NS, "circle");
    dot.setAttribute("class", "cursor"); dot.setAttribute("r", "3.5"); dot.setAttribute("visibility", "hidden");
    var text = doc.createElementNS(NS, "text");
    text.setAttribute("class", "readout"); text.setAttribute("x", String(x1)); text.setAttribute("y", "24");
    text.setAttribute("text-anchor", "end");
    svg.appendChild(dot); svg.appendChild(text);
    svg.addEventListener("mousemove", function (ev) {
      var m = svg.getScreenCTM();
      if (!m) { return; }
      var p = svg.createSVGPoint(); p.x = ev.clientX; p.y = ev.clientY;
      var q = p.matrixTransform(m.inverse());
      var best = null, i;
      for (i = 0; i < pts.length; i++) {
        var c = pts[i];
        if (best === null || Math.abs(c.x - q.x) < Math.abs(best.x - q.x)) { best = c; }
      }
      if (!best) { return; }
      dot.setAttribute("cx", String(best.x)); dot.setAttribute("cy", String(best.y));
      dot.setAttribute("visibility", "visible");
      var t = (best.x - x0) / (x1 - x0) * tmax, v = (y0 - best.y) / (y0 - y1) * vmax;
      text.textContent = t.toFixed(t < 10 ? 2 : 1) + " s \\u00b7 " + mib(v);
    });
    svg.addEventListener("mouseleave", function () {
      dot.setAttribute("visibility", "hidden"); text.textContent = "";
    });
  });
})();
"""


def csp_hash(text: str) -> str:
    """``'sha256-…'`` of an inline script or style, as a CSP source expression."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"

