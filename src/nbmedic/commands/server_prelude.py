"""What ``nbmedic server`` (and the doctor, which runs the same probes) does before the CLI imports it: find the installation and start the one run in its
Python (importing jupyter_server and every enabled extension, most of the command's time), so that it
works while this process imports the command and runs the other probes.  The installation found is handed
to the command on ``args`` (``server_setup``), so it is looked up once."""

from __future__ import annotations

import argparse

from nbmedic.config import code_selection
from nbmedic.envs.server import extensions, labext, wanted
from nbmedic.envs.server.where import find_setup
from nbmedic.errors import UsageError

__all__ = ["prestart"]


def prestart(args: argparse.Namespace) -> bool:
    """Find the installation and begin its extension run and its JupyterLab question (each unless none of its
    codes is selected, or the doctor skips the environment); whether one was started.  Bad options are left
    for the command to report."""
    if getattr(args, "no_env", False):
        return False
    try:
        config = code_selection(args.select, args.ignore)
    except UsageError:
        return False
    setup = find_setup()
    args.server_setup = setup
    # the long run first: the server-extension and config probes share it; the JupyterLab probe asks its own
    started = [begin(setup) for names, begin in ((("server-extensions", "config"), extensions.begin),
                                                 (("lab-extensions",), labext.begin)) if wanted(config.wants, *names)]
    return any(started)
