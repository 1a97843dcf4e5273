"""nbmedic: find what is wrong with Jupyter notebooks, say why with evidence, and fix it."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
