"""``nbmedic kernel-wrapper [options] -- ARGV``: run a kernel under nbmedic's supervision (see live/wrapper)."""

from __future__ import annotations

import argparse

from nbmedic.errors import UsageError
from nbmedic.live.session import GuardConfig
from nbmedic.live.wrapper import run_wrapper
from nbmedic.units import parse_size


def guard_config(args: argparse.Namespace) -> GuardConfig:
    """The memory guard's settings from ``--memory-limit``, ``--guard``, ``--interrupt-at``, ``--kill-at``."""
    limit = parse_size(args.memory_limit) if args.memory_limit else None
    if not 0 < args.interrupt_at <= args.kill_at <= 1:
        raise UsageError("--interrupt-at and --kill-at must satisfy 0 < interrupt-at <= kill-at <= 1 "
                         f"(got {args.interrupt_at} and {args.kill_at})")
    return GuardConfig(memory_limit=limit, guard=bool(args.guard), interrupt_at=float(args.interrupt_at),
                       kill_at=float(args.kill_at))


def run(args: argparse.Namespace) -> int:
    return run_wrapper(list(args.argv), kernel_name=args.kernel_name, guard=guard_config(args))
