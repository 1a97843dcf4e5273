"""The command line's grammar: every command's arguments, built without importing any command.

``build_parser()`` is all ``nbmedic`` needs before it knows which command runs, so nothing here imports
more than argparse: the CLI then imports only ``nbmedic.commands.<name>`` and calls its ``run(args)``.
"""

from __future__ import annotations

import argparse
from typing import Any

from nbmedic import __version__

EXIT_USAGE = 2
MERGE_STRATEGIES = ("inline", "local", "remote", "union")  # nbmedic.vcs.merge.STRATEGIES (tested)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, not the whole usage block: the message and where to read more."""
        self.exit(EXIT_USAGE, f"nbmedic: error: {message} (see `{self.prog} --help`)\n")


def _add_format(p: argparse.ArgumentParser, *, sarif: bool = False) -> None:
    choices = ("text", "json", "sarif") if sarif else ("text", "json")
    p.add_argument("--format", choices=choices, default="text",
                   help="report format (default: text)" + ("; sarif: SARIF 2.1.0 for code scanning" if sarif else ""))


_REPORT_HELP = ("also write the results to FILE; its extension picks the format: .html (a self-contained page), "
                ".sarif (SARIF 2.1.0), .json{junit}; repeatable")


def _add_report_file(p: argparse.ArgumentParser, *, junit: bool = False) -> None:
    p.add_argument("--report", action="append", default=[], metavar="FILE",
                   help=_REPORT_HELP.format(junit=", .xml (JUnit XML)" if junit else ""))


def _add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="text report: every evidence fact of every finding (default: the few that matter)")


def _add_report_options(p: argparse.ArgumentParser, *, junit: bool = False) -> None:
    _add_format(p, sarif=True)
    _add_report_file(p, junit=junit)
    _add_verbose(p)
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
    g.add_argument("--profile-memory", action="store_true", default=None,
                   help="trace allocations in the kernel (tracemalloc): each cell's top allocation sites at its "
                   "end and at its peak, by cell line or package (slows allocation-heavy code)")
    if doctor:
        g.add_argument("--no-run", action="store_true", help="static checks only: do not execute the notebooks")
        g.add_argument("--no-env", action="store_true",
                       help="skip the environment probes (kernelspecs, interpreters, locks, the Jupyter installation)")
        return
    g.add_argument("--allow-errors", action="store_true", default=None, help="continue past cells that raise")
    g.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a parameter (papermill-compatible; repeatable)")
    g.add_argument("-f", "--parameters-file", metavar="YAML", help="parameters from a YAML file")
    g.add_argument("--compare", action="store_true", default=None,
                   help="compare the new outputs with the stored ones (RN160)")
    g.add_argument("--debug", metavar="FILE", help="write every kernel message to FILE as JSON lines")
    g.add_argument("--no-fork", action="store_true", default=None,
                   help="start every kernel the normal way instead of forking it from a warm template process")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the batch on a Dask cluster: tcp://HOST:PORT, or `local` for a LocalCluster "
                   "(default: $DASK_SCHEDULER_ADDRESS when set; needs `pip install 'nbmedic[dask]'`)")
    g.add_argument("--grid", metavar="YAML",
                   help="a parameter sweep: a mapping of parameter -> list of values; one run per combination")
    g.add_argument("--junit-cells", action="store_true", help="JUnit: one testcase per cell instead of per notebook")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nbmedic",
        description="Find what is wrong with Jupyter notebooks, say why with evidence, and fix it.",
    )
    parser.add_argument("--version", action="version", version=f"nbmedic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

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
    _add_report_options(run, junit=True)
    _add_run_options(run)

    repair = sub.add_parser("repair", help="fix broken notebook files (conflicts, truncation, ids, old format)",
                            description="Fix what can be fixed in broken notebook files and say what was lost.")
    repair.add_argument("paths", nargs="+", metavar="PATH", help="notebooks to repair")
    where = repair.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the repaired notebook here (one input only)")
    where.add_argument("--in-place", action="store_true", help="replace the file, keeping NAME.ipynb.bak")
    repair.add_argument("--prefer", choices=("local", "remote"),
                        help="for conflicting cells keep one side instead of both")
    _add_format(repair)
    for add in (_strip, _slim, _server, _git, _diff, _merge, _kernels, _env, _logs, _monitor, _kernel_wrapper, _stack, _ps,
                _incidents, _report):
        add(sub)
    return parser


def _strip(sub: Any) -> None:
    p = sub.add_parser(
        "strip", help="remove outputs, execution counts and volatile metadata (like nbstripout --keep-id)",
        description="Remove outputs, execution counts and volatile metadata from notebooks, in place. Only "
        "notebooks that change are rewritten. The result is byte-identical to `nbstripout --keep-id`. "
        "Options also come from [tool.nbmedic.strip] in the nearest pyproject.toml; the command line wins.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="notebooks or folders (searched recursively); `-` reads stdin and writes stdout")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list the notebooks that would change and exit 1 if there are any")
    bool_flag = argparse.BooleanOptionalAction
    p.add_argument("--keep-count", action=bool_flag, default=None, help="keep execution counts")
    p.add_argument("--keep-output", action=bool_flag, default=None,
                   help="keep outputs (without it, cells tagged or marked keep_output keep theirs)")
    p.add_argument("--keep-id", action=bool_flag, default=None,
                   help="keep cell ids (the default); --no-keep-id numbers them 0, 1, 2 like nbstripout")
    p.add_argument("--drop-empty-cells", action=bool_flag, default=None,
                   help="remove cells whose source is empty or whitespace only")
    p.add_argument("--extra-keys", metavar="KEYS",
                   help="more metadata to remove, space or comma separated "
                   "(e.g. 'metadata.celltoolbar cell.metadata.heading_collapsed')")
    p.add_argument("--keep-metadata-keys", metavar="KEYS",
                   help="metadata removed by default to keep instead (e.g. cell.metadata.collapsed)")
    p.add_argument("--max-output-size", metavar="SIZE",
                   help="keep outputs of at most SIZE characters (e.g. 500, 2K)")
    p.add_argument("--config", metavar="PYPROJECT", help="read [tool.nbmedic] from this file instead of the nearest")
    _add_format(p)


def _slim(sub: Any) -> None:
    p = sub.add_parser(
        "slim", help="shrink notebooks that are too large to save, never touching a source",
        description="Shrink notebooks without touching any cell source: drop what Jupyter never shows, "
        "deduplicate images, cut long text to its head and tail, re-encode or downscale large images, and as "
        "a last resort clear the largest outputs, least lossy step first, stopping once the notebook is under "
        "the target. Says what each step saved. Exit 1 when the target cannot be met, 2 on bad input.")
    p.add_argument("paths", nargs="+", metavar="NB", help="notebooks to slim")
    p.add_argument("--target", metavar="SIZE",
                   help="the size to get under (e.g. 1M, 900K); default: the smallest save limit that "
                   "applies ([tool.nbmedic] max_size, save_limit, deployment)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the slimmed notebook here (one input only)")
    where.add_argument("--in-place", action="store_true", help="replace the file, keeping NAME.ipynb.bak")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (each output: cell, mime type, size, step, bytes saved); write nothing")
    p.add_argument("--lossy", action="store_true",
                   help="images may be re-encoded as JPEG or WebP (default: PNG stays PNG)")
    p.add_argument("--config", metavar="PYPROJECT", help="read [tool.nbmedic] from this file instead of the nearest")
    _add_format(p)


def _server(sub: Any) -> None:
    p = sub.add_parser(
        "server", help="check the Jupyter installation: server and lab extensions, config, running servers",
        description="Check the Jupyter installation that `jupyter` on PATH and this interpreter resolve to: "
        "server extensions that fail to load, JupyterLab extensions built for another JupyterLab, config files "
        "that fail or use names Jupyter ignores, stale or exposed running servers, and Jupyter commands from "
        "different environments. Exit 1 on error findings.")
    p.add_argument("--fix", action="store_true",
                   help="remove stale server runtime files (EN258); asks before any other change")
    p.add_argument("--yes", "-y", action="store_true", help="with --fix: do not ask")
    p.add_argument("--select", metavar="CODES", help="only these codes or prefixes, comma-separated (e.g. EN25)")
    p.add_argument("--ignore", metavar="CODES", help="skip these codes or prefixes, comma-separated")
    _add_format(p)
    _add_verbose(p)


def _git(sub: Any) -> None:
    p = sub.add_parser(
        "git", help="install nbmedic's git filter, diff and merge drivers for notebooks",
        description="Make git strip notebook outputs on `git add` (one long-running filter process), show "
        "notebooks cell by cell in `git diff`, and merge them cell by cell.")
    p.set_defaults(git_command=None)
    verbs = p.add_subparsers(dest="git_command", metavar="{install,status,uninstall}", parser_class=type(p))

    install = verbs.add_parser(
        "install", help="configure the drivers and add the *.ipynb line to .gitattributes",
        description="Write the filter (and the diff and merge drivers) into the repository's git config "
        "(or your user config with --global) and add `*.ipynb filter=nbmedic diff=nbmedic merge=nbmedic` "
        "to .gitattributes (the global attributes file with --global). Running it again is harmless.")
    install.add_argument("--global", dest="scope", action="store_const", const="global", default="local",
                         help="your user git config and global attributes file instead of this repository's")
    install.add_argument("--no-diff", action="store_true", help="no cell-aware `git diff` (textconv driver)")
    install.add_argument("--no-merge", action="store_true", help="no cell-aware merge driver")

    verbs.add_parser("status", help="what is installed where, and whether git can run it",
                     description="Show nbmedic's drivers in the repository and global config, the attributes "
                     "lines that apply them, and whether `nbmedic` resolves on PATH. Exit 1 when the filter "
                     "is not active for notebooks.")

    uninstall = verbs.add_parser("uninstall", help="remove exactly what install added",
                                 description="Remove nbmedic's git config keys and its .gitattributes line.")
    uninstall.add_argument("--global", dest="scope", action="store_const", const="global", default="local",
                           help="your user git config and global attributes file")

    verbs.add_parser("filter-process")  # run by git (filter.nbmedic.process); no help: not for people


def _diff(sub: Any) -> None:
    p = sub.add_parser(
        "diff", help="cell-aware diff of two notebooks (also git's textconv and difftool)",
        description="Show what changed between two notebooks, cell by cell: sources as unified diffs, "
        "outputs summarised, metadata changes listed. Exit 0 if they are the same, 1 if they differ, "
        "2 if one is not a notebook.")
    p.add_argument("files", nargs="+", metavar="FILE", help="A B (or one FILE with --textconv)")
    p.add_argument("--textconv", action="store_true",
                   help="print a line-oriented text rendering of one notebook (git's diff textconv)")
    p.add_argument("--ignore-outputs", action="store_true", help="ignore outputs and execution counts")
    p.add_argument("--ignore-metadata", action="store_true", help="ignore notebook and cell metadata")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the diff (default: auto, only on a terminal)")


def _merge(sub: Any) -> None:
    p = sub.add_parser(
        "merge", help="3-way, cell-aware notebook merge (also git's merge driver)",
        description="Merge two notebooks that diverged from BASE, cell by cell, never dropping a cell. "
        "Exit 0 when clean, 1 while conflicts remain (cells tagged nbmedic-conflict), 2 when an input "
        "is not a notebook.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="BASE LOCAL REMOTE; with --driver git's %%O %%A %%B [%%L [%%P]]")
    p.add_argument("-o", "--output", metavar="OUT", help="write the merged notebook here (default: stdout)")
    p.add_argument("--strategy", choices=MERGE_STRATEGIES, default="inline",
                   help="conflicting cells: both versions between conflict markers in the cell (inline, "
                   "the default), one side's version (local, remote), or both versions as two cells (union)")
    p.add_argument("--driver", action="store_true",
                   help="git merge driver mode: write the result into LOCAL (%%A); exit 1 on conflicts")


def _kernels(sub: Any) -> None:
    p = sub.add_parser(
        "kernels", help="check every installed kernelspec by launching it; --fix removes broken ones",
        description="List every kernelspec Jupyter can see (user, JUPYTER_PATH, environment and system "
        "folders), check that its interpreter exists and has ipykernel, launch it to kernel_info and shut "
        "it down, and compare the Python it runs with what its name, display name or notebooks claim.")
    p.add_argument("names", nargs="*", metavar="NAME", help="only check these kernels (default: all)")
    p.add_argument("--fix", action="store_true", help="remove broken kernelspecs (EN200/EN201/EN202), asking first")
    p.add_argument("--yes", "-y", action="store_true", help="with --fix: remove without asking")
    p.add_argument("--register", nargs="?", const="python3", default=None, metavar="NAME",
                   help="(re)register a kernelspec for the interpreter running nbmedic in the user folder, "
                   "like `python -m ipykernel install --user --name NAME` (default NAME: python3)")
    p.add_argument("--notebook", action="append", default=[], metavar="NB",
                   help="also compare each notebook's language_info.version with its kernel (repeatable)")
    p.add_argument("--startup-timeout", type=float, default=30.0, metavar="S",
                   help="seconds a kernel may take to answer kernel_info (default 30)")
    p.add_argument("-j", "--jobs", type=int, default=4, metavar="N", help="kernels launched in parallel (default 4)")
    p.add_argument("--no-launch", action="store_true", help="check the files and interpreters only; start no kernel")
    _add_format(p)


def _env(sub: Any) -> None:
    p = sub.add_parser(
        "env", help="capture, check, rebuild and export the environment a notebook's kernel runs in",
        description="Lock the environment of a notebook's kernel: its Python, platform and installed "
        "distributions, read inside the kernel's own interpreter. The lock lives in the notebook "
        "(metadata.nbmedic.environment) or in a JSON lock file.")
    actions = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)

    cap = actions.add_parser(
        "capture", help="record the kernel interpreter's Python, platform and distributions",
        description="Record the Python version, platform and installed distributions of the notebook's "
        "kernel interpreter into the notebook's metadata (rewritten atomically) or a lock file.")
    cap.add_argument("notebook", metavar="NB", help="the notebook (its kernelspec names the interpreter)")
    cap.add_argument("--lock-file", metavar="F",
                     help="write the lock to this JSON file; the notebook is not changed")
    cap.add_argument("--imports-only", action="store_true",
                     help="keep only the distributions that provide the notebook's imports")
    cap.add_argument("--python", metavar="INTERPRETER", help="query this Python instead of the kernel's")

    chk = actions.add_parser(
        "check", help="compare the lock with the kernel's environment now (EN220-EN223)",
        description="Compare the lock with the kernel interpreter's environment now. "
        "Exit 1 on error findings.")
    chk.add_argument("notebook", metavar="NB", help="the notebook (its kernelspec names the interpreter)")
    chk.add_argument("--lock-file", metavar="F", help="read the lock from this file instead of the notebook")
    chk.add_argument("--python", metavar="INTERPRETER", help="check this Python instead of the kernel's")
    chk.add_argument("--select", metavar="CODES",
                     help="only these codes or prefixes, comma-separated (e.g. EN220)")
    chk.add_argument("--ignore", metavar="CODES", help="skip these codes or prefixes, comma-separated")
    chk.add_argument("--strict", action="store_true", default=None, help="warnings fail too (exit 1)")
    chk.add_argument("--config", metavar="PYPROJECT",
                     help="read [tool.nbmedic] from this file instead of the nearest")
    _add_format(chk)

    reb = actions.add_parser(
        "rebuild", help="create a venv with the locked versions, register its kernel and launch it",
        description="Create a virtual environment, install the locked versions and ipykernel, register a "
        "user kernelspec and prove it works by launching the kernel.")
    reb.add_argument("source", metavar="NB|LOCK", help="a notebook holding a lock, or a lock file")
    reb.add_argument("--venv", metavar="DIR", required=True,
                     help="the virtual environment to create (or update)")
    reb.add_argument("--kernel-name", metavar="NAME",
                     help="kernelspec name (default: nbmedic-<notebook stem>)")
    reb.add_argument("--python", metavar="INTERPRETER",
                     help="the Python that creates the venv (default: the one running nbmedic)")
    reb.add_argument("--startup-timeout", type=float, default=60, metavar="S",
                     help="seconds the new kernel may take to answer (default 60)")

    exp = actions.add_parser(
        "export", help="write the lock as requirements.txt or a conda environment.yml",
        description="Write the lock as pip requirements (name==version lines) or a conda environment.yml.")
    exp.add_argument("source", metavar="NB|LOCK", help="a notebook holding a lock, or a lock file")
    exp.add_argument("--format", choices=("requirements", "environment.yml"), default="requirements",
                     help="output format (default: requirements)")
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    exp.add_argument("--name", metavar="NAME", help="environment.yml `name:` (default: the source's stem)")


def _logs(sub: Any) -> None:
    p = sub.add_parser(
        "logs", help="explain Jupyter server, kernel and browser logs (kernel deaths, failed saves...)",
        description="Read Jupyter server, kernel or browser-console logs (any version; plain or .gz; `-` for "
        "stdin) and report every known error signature with its cause, fix, line numbers and count. "
        "Repeats are grouped, e.g. one finding per restarted kernel. Exit 1 when an error-severity signature "
        "is found, 2 when a log cannot be read.")
    p.add_argument("paths", nargs="+", metavar="FILE", help="log files (.gz too); `-` reads stdin")
    _add_format(p)
    p.add_argument("--select", metavar="CODES", help="only these codes or prefixes, comma-separated (e.g. LG300,LG31)")
    p.add_argument("--ignore", metavar="CODES", help="skip these codes or prefixes, comma-separated")
    p.add_argument("--since", metavar="TIME",
                   help="skip records logged before TIME ('2026-01-02 10:11', '2026-01-02' or a time of day "
                   "'10:11'); lines without a timestamp follow the record above them")


def _guard_options(p: argparse.ArgumentParser) -> None:
    """The memory guard's settings (``monitor install`` writes them into the kernelspec)."""
    p.add_argument("--memory-limit", metavar="SIZE",
                   help="the kernel's memory limit (e.g. 2G); default: the cgroup's limit, if any")
    p.add_argument("--guard", action=argparse.BooleanOptionalAction, default=True,
                   help="interrupt a cell near the limit and kill the kernel just before it (default: on)")
    p.add_argument("--interrupt-at", type=float, metavar="F", default=0.90,
                   help="share of the limit at which the running cell is interrupted (default 0.90)")
    p.add_argument("--kill-at", type=float, metavar="F", default=0.97,
                   help="share of the limit at which the kernel is killed (default 0.97)")


def _monitor(sub: Any) -> None:
    p = sub.add_parser(
        "monitor", help="monitor the kernels of JupyterLab, Notebook, JupyterHub and VS Code (install/status)",
        description="Mark kernelspecs as monitored: their kernels record the running cell, sample memory, "
        "interrupt a cell before the memory limit, and explain a death in the notebook and as an incident.")
    actions = p.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    inst = actions.add_parser(
        "install", help="monitor kernelspecs (kernel.json gains the nbmedic provisioner; a backup is kept)",
        description="Add the nbmedic kernel provisioner (or, with --wrapper, the kernel wrapper) to "
        "kernelspecs, atomically, keeping a byte-exact backup. Installing twice is harmless.")
    inst.add_argument("kernels", nargs="*", metavar="KERNEL", help="kernelspec names (default: all)")
    _guard_options(inst)
    inst.add_argument("--wrapper", action="store_true",
                      help="wrap argv in `nbmedic kernel-wrapper` (for clients that ignore provisioners, "
                      "e.g. VS Code)")
    _add_format(inst)
    uninst = actions.add_parser(
        "uninstall", help="restore the kernelspecs byte for byte",
        description="Restore each monitored kernel.json from its backup (byte for byte); remove the user "
        "kernelspecs that `install` created.")
    uninst.add_argument("kernels", nargs="*", metavar="KERNEL", help="kernelspec names (default: all monitored)")
    _add_format(uninst)
    status = actions.add_parser(
        "status", help="which kernelspecs are monitored, and the monitored kernels running now",
        description="List every kernelspec and whether it is monitored, and the monitored kernels running now.")
    _add_format(status)


def _kernel_wrapper(sub: Any) -> None:
    p = sub.add_parser(
        "kernel-wrapper", help="supervise a kernel started from argv (what `monitor install --wrapper` writes)",
        description="Start the kernel command after `--`, forward every signal to it, monitor it like the "
        "nbmedic provisioner does, and exit with the kernel's own exit status.")
    _guard_options(p)
    p.add_argument("--kernel-name", metavar="NAME", help="the kernelspec's name (for records)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- ARGV", help="the kernel's command line")


def _stack(sub: Any) -> None:
    p = sub.add_parser(
        "stack", help="print the Python stack of every thread of a running monitored kernel",
        description="Print every thread's Python stack of a running monitored kernel without interrupting "
        "it (faulthandler on SIGUSR1), with the running cell and how long it has run.")
    p.add_argument("target", metavar="NOTEBOOK|KERNEL_ID", help="a notebook path or a kernel id (a prefix will do)")
    _add_format(p)


def _ps(sub: Any) -> None:
    p = sub.add_parser(
        "ps", help="every Jupyter kernel of this user: memory, CPU, uptime, the running cell",
        description="List every kernel on this machine for this user (monitored or not): kernel id, "
        "notebook, state, memory of its process tree and its share of the limit, CPU, uptime, the running cell.")
    p.add_argument("--watch", action="store_true", help="keep the table updated (on a terminal)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between updates (default 2)")
    _add_format(p)


def _incidents(sub: Any) -> None:
    p = sub.add_parser(
        "incidents", help="the kernel deaths monitored kernels recorded (list, show ID)",
        description="List or show the incident records monitored kernels left when they died.")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list", help="list (default) or show")
    p.add_argument("id", nargs="?", metavar="ID", help="with show: the incident id (a unique prefix will do)")
    p.add_argument("--since", metavar="TIME",
                   help="only incidents at or after TIME ('2026-01-02 10:11', '2026-01-02', '10:11', or an age: "
                   "'2h', '3d')")
    p.add_argument("--notebook", metavar="NB", help="only incidents of this notebook")
    _add_format(p)
    _add_report_file(p)


def _report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="render a saved --format json document as a page, SARIF or the terminal report",
        description="Render the --format json output of check, doctor, run or incidents: to files with -o "
        "(the extension picks the format: .html, .sarif, .json), else as the terminal report.")
    p.add_argument("document", metavar="DOC.json", help="a document saved from --format json")
    p.add_argument("-o", "--output", action="append", default=[], metavar="FILE",
                   help="write the report to FILE (.html, .sarif or .json); repeatable")
    _add_verbose(p)
