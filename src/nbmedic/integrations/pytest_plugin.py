"""The pytest plugin (entry point ``pytest11``): ``pytest --nbmedic`` collects notebooks as tests.

Inert unless ``--nbmedic`` is given; importing it costs nothing (pytest loads it in every run).
"""

from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("nbmedic")
    group.addoption("--nbmedic", action="store_true", default=False,
                    help="collect *.ipynb files and run each in a fresh, monitored kernel (nbmedic)")
