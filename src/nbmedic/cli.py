"""Command-line entry point: parse, dispatch, and map every exception to one line and an exit code.

Exit codes: 0 no error findings; 1 error findings (or warnings with --strict); 2 usage error;
3 internal bug; 130 interrupted.  Keep imports here light: ``nbmedic --version`` must start fast.  The
grammar lives in ``nbmedic.parsers``; the command that runs is imported here, and only that one (the one
place nbmedic imports its own modules lazily, so a command pays only for what it uses).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Sequence

from nbmedic import PROJECT_URL, __version__
from nbmedic.errors import NbmedicError
from nbmedic.parsers import build_parser

__all__ = ["EXIT_BUG", "EXIT_FINDINGS", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
ISSUES_URL = f"{PROJECT_URL}/issues"


# work that starts before the command is imported, in other processes: the fork template of the kernel a
# run most likely uses (commands.prelude), the installation's Python importing jupyter_server and its
# extensions (commands.server_prelude; the doctor runs the server probes too); each saves a few tenths of a
# second, or more, of the command's time
_PRELUDES = {"run": ("nbmedic.commands.prelude",),
             "doctor": ("nbmedic.commands.prelude", "nbmedic.commands.server_prelude"),
             "server": ("nbmedic.commands.server_prelude",)}


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process (7 ms): ``main`` called in-process many times (the pytest plugin,
    the test suite, the fuzzers) parses with the same one; argparse keeps no state between parses."""
    return build_parser()


def _dispatch(args: argparse.Namespace) -> int:
    """Run ``nbmedic.commands.<command>.run(args)``."""
    for prelude in _PRELUDES.get(args.command, ()):
        importlib.import_module(prelude).prestart(args)
    module = importlib.import_module(f"nbmedic.commands.{args.command.replace('-', '_')}")
    return int(module.run(args))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:  # answered before the sub-parsers of every command are built
        print(f"nbmedic {__version__}")
        return EXIT_OK
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args)
    except NbmedicError as exc:
        print(f"nbmedic: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nbmedic: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`); nothing left to say
        return EXIT_FINDINGS
    except Exception as exc:  # noqa: BLE001 - the one place a bug becomes a message
        import traceback

        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"nbmedic: internal error: {detail}\n"
              f"nbmedic: this is a bug; please report it with the command you ran at {ISSUES_URL}",
              file=sys.stderr)
        return EXIT_BUG
