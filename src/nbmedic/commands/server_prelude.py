"""What ``nbmedic server`` does before the CLI imports it: find the installation and start the one run in its
Python (importing jupyter_server and every enabled extension, most of the command's time), so that it
works while this process imports the command and runs the other probes.  The installation found is handed
to the command on ``args`` (``server_setup``), so it is looked up once."""

from __future__ import annotations

import argparse

from nbmedic.config import Config, split_codes
from nbmedic.envs.server import extensions, labext
from nbmedic.envs.server.where import find_setup
from nbmedic.errors import UsageError

__all__ = ["prestart"]

EXTENSION_CODES = ("EN250", "EN251", "EN256", "EN257")  # the probes that share the run
LAB_CODES = ("EN252", "EN253", "EN254", "EN255")  # the JupyterLab probe asks its own question


def prestart(args: argparse.Namespace) -> bool:
    """Find the installation and begin its extension run and its JupyterLab question (each unless none of its
    codes is selected); whether one was started.  Bad options are left for the command to report."""
    try:
        config = Config(select=split_codes(args.select, what="--select") if args.select else (),
                        ignore=split_codes(args.ignore, what="--ignore") if args.ignore else ())
    except UsageError:
        return False
    setup = find_setup()
    args.server_setup = setup
    started = [begin(setup) for codes, begin in ((EXTENSION_CODES, extensions.begin), (LAB_CODES, labext.begin))
               if any(config.wants(code) for code in codes)]  # the long run first
    return any(started)
