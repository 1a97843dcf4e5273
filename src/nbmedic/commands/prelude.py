"""What ``run`` and ``doctor`` do before the CLI imports them: start the fork template of the kernel their
notebooks most likely ask for, so that it imports ipykernel (≈0.4 s of CPU) on another core while this
process imports the command and reads the notebooks.

A guess, never a decision: each kernel is still forked from the template its own launch asks for
(``execute.forkstart``), so a wrong guess (another kernel in the notebooks' metadata, ``fork = false`` in
a configuration) only leaves an idle template, retired as any other.  ``NBMEDIC_NO_PRESTART=1`` turns it
off.
"""

from __future__ import annotations

import argparse
import os

from nbmedic.execute.forkstart import prestart as start_template
from nbmedic.execute.kernel import launch_prediction

__all__ = ["prestart"]


def prestart(args: argparse.Namespace) -> bool:
    """Start the template for ``--kernel`` (default ``python3``) unless nothing will be forked here; whether
    one was started (or already ran)."""
    if (getattr(args, "no_fork", None) or getattr(args, "no_run", None) or getattr(args, "scheduler", None)
            or os.environ.get("DASK_SCHEDULER_ADDRESS") or os.environ.get("NBMEDIC_NO_PRESTART")):
        return False
    paths = getattr(args, "paths", None) or []
    if not paths or not all(os.path.exists(p) for p in paths):  # the command will stop at a usage error
        return False
    predicted = launch_prediction(getattr(args, "kernel", None) or "python3")
    return predicted is not None and start_template(*predicted)
