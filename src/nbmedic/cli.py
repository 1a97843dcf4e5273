"""Command-line entry point: parse, dispatch, and map every exception to one line and an exit code.

Exit codes: 0 no error findings; 1 error findings (or warnings with --strict); 2 usage error;
3 internal bug; 130 interrupted.  Keep imports here light: ``nbmedic --version`` must start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nbmedic import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
ISSUES_URL = "https://github.com/nbmedic/nbmedic/issues"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, not the whole usage block: the message and where to read more."""
        self.exit(EXIT_USAGE, f"nbmedic: error: {message} (see `{self.prog} --help`)\n")


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text", help="report format (default: text)")
    p.add_argument("--select", metavar="CODES", help="only these codes or prefixes, comma-separated (e.g. NB01,NB041)")
    p.add_argument("--ignore", metavar="CODES", help="skip these codes or prefixes, comma-separated")
    p.add_argument("--strict", action="store_true", default=None, help="warnings fail too (exit 1)")
    p.add_argument("--config", metavar="PYPROJECT", help="read [tool.nbmedic] from this file instead of the nearest")


def _add_run_options(p: argparse.ArgumentParser, *, doctor: bool = False) -> None:
    """Limits and switches of monitored execution (shared by ``run`` and ``doctor``)."""
    g = p.add_argument_group("execution")
    g.add_argument("--kernel", metavar="NAME", help="kernel to use instead of the notebook's kernelspec")
    g.add_argument("--cell-timeout", type=float, metavar="S", help="seconds a cell may run")
    g.add_argument("--timeout", type=float, metavar="S", help="seconds the whole notebook may run")
    g.add_argument("--startup-timeout", type=float, metavar="S", help="seconds the kernel may take to start")
    g.add_argument("--memory-limit", metavar="SIZE", help="kill the kernel when its RSS passes SIZE (e.g. 2G)")
    g.add_argument("--max-output", metavar="SIZE", help="keep at most SIZE of output per cell (e.g. 1M)")
    g.add_argument("--stall-after", type=float, metavar="S",
                   help="warn when a cell has had no output and no CPU for S seconds (default 30)")
    g.add_argument("-j", "--jobs", type=int, metavar="N", help="notebooks run in parallel, one kernel each")
    if doctor:
        g.add_argument("--no-run", action="store_true", help="static checks only: do not execute the notebooks")
        g.add_argument("--no-env", action="store_true",
                       help="skip the environment probes (kernelspecs, interpreters, locks)")
        return
    g.add_argument("--allow-errors", action="store_true", default=None, help="continue past cells that raise")
    g.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a parameter (papermill-compatible; repeatable)")
    g.add_argument("-f", "--parameters-file", metavar="YAML", help="parameters from a YAML file")
    g.add_argument("--compare", action="store_true", default=None,
                   help="compare the new outputs with the stored ones (RN160)")
    g.add_argument("--debug", metavar="FILE", help="write every kernel message to FILE as JSON lines")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nbmedic",
        description="Find what is wrong with Jupyter notebooks, say why with evidence, and fix it.",
    )
    parser.add_argument("--version", action="version", version=f"nbmedic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    doctor = sub.add_parser("doctor", help="diagnose notebooks: one readable report (the main command)",
                            description="Diagnose notebooks and print one readable report.")
    doctor.add_argument("paths", nargs="+", metavar="PATH", help="notebooks or folders (searched recursively)")
    _add_report_options(doctor)
    _add_run_options(doctor, doctor=True)

    check = sub.add_parser("check", help="static checks of notebook files (never runs code)",
                           description="Static checks of notebook files; never executes notebook code.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="notebooks or folders (searched recursively)")
    _add_report_options(check)

    run = sub.add_parser("run", help="execute notebooks in monitored kernels; explain deaths and stuck cells",
                         description="Execute notebooks top to bottom in fresh, monitored kernels. Writes the "
                         "executed notebook to a new file (also when the run fails) and explains every failure.")
    run.add_argument("paths", nargs="+", metavar="NB", help="notebooks to run")
    dest = run.add_mutually_exclusive_group()
    dest.add_argument("-o", "--output", metavar="OUT", help="executed notebook path (one input only)")
    dest.add_argument("--output-dir", metavar="DIR", help="write executed notebooks into DIR (same names)")
    dest.add_argument("--in-place", action="store_true", help="replace the input with the executed notebook")
    _add_report_options(run)
    _add_run_options(run)

    repair = sub.add_parser("repair", help="fix broken notebook files (conflicts, truncation, ids, old format)",
                            description="Fix what can be fixed in broken notebook files and say what was lost.")
    repair.add_argument("paths", nargs="+", metavar="PATH", help="notebooks to repair")
    where = repair.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the repaired notebook here (one input only)")
    where.add_argument("--in-place", action="store_true", help="replace the file, keeping NAME.ipynb.bak")
    repair.add_argument("--prefer", choices=("local", "remote"),
                        help="for conflicting cells keep one side instead of both")
    repair.add_argument("--format", choices=("text", "json"), default="text", help="report format")
    # git hygiene: each module defines its own sub-parser (they import nothing heavy at module level)
    from nbmedic.commands import diff, env, git, kernels, logs, merge, strip

    for module in (strip, git, diff, merge, kernels, env, logs):
        module.add_parser(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        from nbmedic.commands.check import run_check

        return run_check(args)
    if args.command == "doctor":
        from nbmedic.commands.doctor import run_doctor

        return run_doctor(args)
    if args.command == "run":
        from nbmedic.commands.run import run_run

        return run_run(args)
    if args.command == "repair":
        from nbmedic.commands.repair import run_repair

        return run_repair(args)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    raise AssertionError(args.command)  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:  # answered before the sub-parsers of every command are built
        print(f"nbmedic {__version__}")
        return EXIT_OK
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from nbmedic.errors import NbmedicError

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
    except Exception as exc:  # the one place a bug becomes a message
        import traceback

        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"nbmedic: internal error: {detail}\n"
              f"nbmedic: this is a bug; please report it with the command you ran at {ISSUES_URL}",
              file=sys.stderr)
        return EXIT_BUG
