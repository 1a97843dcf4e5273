"""A small harness for the browser tests of the HTML report: the system's Chromium, headless, driven by
Selenium through the system's chromedriver (Debian: ``apt-get install chromium chromium-driver``).

Nothing is downloaded: the driver is given to Selenium by path, so Selenium Manager never runs.  Where no
browser or driver (or no ``selenium``) is found, ``browser_or_skip`` skips with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "apt-get install chromium chromium-driver"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver",)
WIDTH = 1280  # the window's width, CSS pixels (device scale 1)


def _first(names: tuple[str, ...], env: str) -> str | None:
    named = os.environ.get(env)
    if named:
        return named if Path(named).is_file() else None
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/lib/chromium:/usr/bin")
        if found:
            return found
    return None


def find_browser() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason there are none.  ``NBMEDIC_CHROMIUM`` and
    ``NBMEDIC_CHROMEDRIVER`` name other binaries."""
    browser = _first(BROWSERS, "NBMEDIC_CHROMIUM")
    driver = _first(DRIVERS, "NBMEDIC_CHROMEDRIVER")
    if browser is None:
        return f"no Chromium found (install it: {INSTALL_HINT})"
    if driver is None:
        return f"no chromedriver found (install it: {INSTALL_HINT})"
    return browser, driver


def browser_or_skip() -> Iterator[Any]:
    """A headless Chromium for the caller's lifetime (a generator for a fixture); skips when none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the browser tests need selenium (pip install selenium)")
    found = find_browser()
    if isinstance(found, str):
        pytest.skip(found)
    browser, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={WIDTH},900",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars"):
        options.add_argument(arg)
    if os.geteuid() == 0:  # Chromium refuses to start as root with its sandbox
        options.add_argument("--no-sandbox")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def console(driver: Any) -> list[dict[str, Any]]:
    """The browser console's entries since the last call (reading them empties the log)."""
    return list(driver.get_log("browser"))


def severe(entries: list[dict[str, Any]]) -> list[str]:
    return [f"{e.get('level')}: {e.get('message')}" for e in entries if e.get("level") == "SEVERE"]


def open_report(driver: Any, path: Path) -> list[dict[str, Any]]:
    """Load ``path`` (file://) in a clean state; the console entries the load produced."""
    console(driver)  # drop what earlier pages logged
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    driver.get(path.resolve().as_uri())
    wait_for(driver, lambda: driver.execute_script("return document.readyState") == "complete", "page load")
    return console(driver)


def wait_for(driver: Any, ready: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def csp_hash(text: str) -> str:
    """The CSP source expression that allows an inline element whose text is ``text``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


_LINE_RE = re.compile(r"M(-?\d+) (-?\d+)(?:l((?:-?\d+[ -]?)+))?")


def line_points(d: str) -> list[tuple[int, int]]:
    """The absolute points of a drawn line, ``d="M x y l dx dy dx dy ..."`` (whole-unit relative steps)."""
    match = _LINE_RE.fullmatch(d)
    assert match, f"not a line path: d={d[:80]!r}"
    x, y = int(match[1]), int(match[2])
    steps = [int(v) for v in re.findall(r"-?\d+", match[3] or "")]
    assert len(steps) % 2 == 0, f"odd number of coordinates in d={d[:80]!r}"
    out = [(x, y)]
    for dx, dy in zip(steps[::2], steps[1::2], strict=True):
        x, y = x + dx, y + dy
        out.append((x, y))
    return out


def path_cells(paths: list[dict[str, Any]]) -> list[str]:
    """The cells drawn by paths that carry ``data-cells`` (one per subpath, in order), over all of them;
    AssertionError when a path's cells and subpaths do not pair up."""
    out: list[str] = []
    for path in paths:
        cells = (path.get("cells") or "").split()
        assert len(cells) == (path.get("d") or "").count("M"), f"data-cells and subpaths differ: {path}"
        out.extend(cells)
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; AssertionError when ``data`` is not a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR", "a PNG without IHDR first"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def screenshot(driver: Any, selector: str | None = None, max_height: int = 2000) -> bytes:
    """A PNG of the page (or from the top of the element ``selector`` down) at the window's width, at most
    ``max_height`` CSS pixels high, taken with a viewport of that height (what a tall window shows)."""
    top, total = driver.execute_script(
        "const el = arguments[0] ? document.querySelector(arguments[0]) : null;"
        "return [el ? Math.floor(el.getBoundingClientRect().top + window.scrollY) : 0,"
        " Math.ceil(document.documentElement.scrollHeight)];", selector)
    height = max(1, min(int(total) - int(top), max_height))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.execute_script("window.scrollTo(0, arguments[0])", top)
        clip = {"x": 0, "y": int(top), "width": WIDTH, "height": height, "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "clip": clip})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return base64.b64decode(shot["data"])


def print_pdf(driver: Any) -> bytes:
    shot = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
    return base64.b64decode(shot["data"])
