"""``nbmedic kernel-wrapper [options] -- ARGV``: run a kernel under nbmedic's supervision (see live/wrapper)."""

from __future__ import annotations

import argparse

from nbmedic.live.guard import GuardConfig
from nbmedic.live.wrapper import run_wrapper


def run(args: argparse.Namespace) -> int:
    guard = GuardConfig.from_options(args.memory_limit, args.guard, args.interrupt_at, args.kill_at)
    return run_wrapper(list(args.argv), kernel_name=args.kernel_name, guard=guard)
