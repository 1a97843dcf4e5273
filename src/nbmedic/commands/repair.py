"""``nbmedic repair PATH...`` (being written)."""

from __future__ import annotations

import argparse

from nbmedic.errors import NbmedicError


def run_repair(args: argparse.Namespace) -> int:
    raise NbmedicError("repair is not available yet")
