"""The spine of nbmedic: every probe produces Findings, every renderer renders them.

Nothing else crosses module borders.  A Finding is immutable; its JSON form is a public
contract (see ``to_dict``) and must stay backward compatible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from nbmedic.evidence import strict, undeclared

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
_SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

JSON_VERSION = 1


@dataclass(frozen=True)
class Finding:
    """One problem found, with the facts behind it and what to do about it."""

    code: str
    severity: Severity
    path: str | None
    message: str
    cell: int | None = None
    cell_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "path": self.path,
            "cell": self.cell,
            "cell_id": self.cell_id,
            "message": self.message,
            "evidence": dict(self.evidence),
            "fix": self.fix,
        }

    def sort_key(self) -> tuple[str, int, int, str]:
        return (
            self.path or "",
            -1 if self.cell is None else self.cell,
            _SEVERITY_RANK[self.severity],
            self.code,
        )


class CodeInfo(NamedTuple):
    """What a finding code means: documented in the README's code table."""

    code: str
    severity: Severity
    title: str
    fix: str


_CODE_LIST: tuple[CodeInfo, ...] = (
    # NB0xx: the notebook file (static, never executes code)
    CodeInfo("NB000", "error", "the file cannot be read (permissions, a broken link, an I/O error)",
             "check the file's permissions and that it exists: `ls -l FILE`"),
    CodeInfo("NB001", "error", "the file is not JSON: empty, truncated, an HTML page, binary or broken text",
             "restore the file from version control or a `.~name.ipynb` / checkpoint copy; "
             "`nbmedic repair FILE` recovers the complete cells of a truncated file"),
    CodeInfo("NB002", "error", "git conflict markers left inside the file by a plain-text merge",
             "`nbmedic repair FILE` rebuilds both sides and keeps every cell"),
    CodeInfo("NB003", "error", "the notebook violates the nbformat schema, or is an nbformat 1-3 file Jupyter "
             "cannot convert (info when it can)",
             "`nbmedic repair FILE`, or re-save it with current Jupyter tools"),
    CodeInfo("NB004", "error", "cell ids are wrong: present while nbformat_minor < 5, duplicated, "
             "missing, or with invalid characters", "`nbmedic repair FILE` adds, de-duplicates and fixes ids"),
    CodeInfo("NB010", "warning", "outputs are committed although the project asks for clean notebooks",
             "`nbmedic strip FILE` (or `nbmedic git install` so git strips notebooks on every `git add`)"),
    CodeInfo("NB011", "warning", "execution counts are out of order: cells were run non-linearly, "
             "hidden state likely", "restart the kernel and run all cells top to bottom, then save"),
    CodeInfo("NB012", "warning", "code cells were never executed between executed ones",
             "restart the kernel and run all cells top to bottom, then save"),
    CodeInfo("NB013", "info", "execution counts do not start at 1 or have gaps (state from earlier runs)",
             "restart the kernel and run all cells top to bottom, then save"),
    CodeInfo("NB020", "warning", "the notebook file is larger than the smallest limit a save must pass (`max_size`, 10 MiB by "
             "default; the team's proxy from `deployment` or `save_limit`; the browser; the Jupyter server)",
             "run `nbmedic slim FILE` (keeps every source; says what each step saved), or save plots as files "
             "and print less"),
    CodeInfo("NB021", "warning", "a single output is larger than the output limit (`max_output_size`, 1 MiB by default)",
             "run `nbmedic slim FILE` to shrink it (or downsample images, print summaries, write data to files)"),
    CodeInfo("NB022", "info", "a stream output has more lines than the limit (`max_stream_lines`, 10,000 by default)",
             "print less (summaries, `tqdm` progress bars instead of a line per step); log to a file instead"),
    CodeInfo("NB030", "warning", "`metadata.kernelspec` is missing or incomplete",
             "open the notebook, pick a kernel and save, or add {\"name\", \"display_name\", \"language\"}"),
    CodeInfo("NB031", "warning", "the notebook's kernel is not installed on this machine (nor known to Jupyter here)",
             "`python -m ipykernel install --user --name NAME` in the right environment, "
             "or switch the notebook's kernel"),
    CodeInfo("NB040", "warning", "absolute local paths in code are not portable to other machines",
             "use paths relative to the notebook, `pathlib.Path.home()`, or a configurable variable"),
    CodeInfo("NB041", "warning", "an imported module is not importable by the kernel's interpreter",
             "`%pip install PACKAGE` inside the notebook (installs into the kernel's environment)"),
    CodeInfo("NB050", "warning", "widget outputs without saved widget state will not render when reopened",
             "in JupyterLab: Settings > Save Widget State Automatically, then re-run and save"),
    CodeInfo("NB051", "info", "the notebook was saved with error outputs (cells tagged `raises-exception` excepted)",
             "fix the failing cells, or clear their outputs if the errors are intended"),
    CodeInfo("NB060", "warning", "cells a merge left unresolved: tagged `nbmedic-conflict` or holding "
             "`<<<<<<< local` conflict markers",
             "resolve each named cell (keep the right lines, delete the `<<<<<<<` / `=======` / `>>>>>>>` "
             "lines), then remove the `nbmedic-conflict` tag"),

    # RN1xx: execution (monitored runs of real kernels)
    CodeInfo("NB070", "info", "a code cell is longer than `max_cell_lines` (60 by default)",
             "split it: move the steps into functions (in a module, or in earlier cells) and keep the cell short"),
    CodeInfo("NB071", "info", "a cell defines many top-level variables (`max_cell_names`, 8 by default) that later "
             "cells read: hidden state that breaks when cells run out of order",
             "wrap the cell's work in a function that returns what later cells need"),
    CodeInfo("RN100", "error", "the kernel died and no cause could be established; all evidence gathered is attached",
             "re-run with `--debug FILE` and read the kernel's stderr tail in the evidence"),
    CodeInfo("RN101", "error", "the kernel was killed for memory: by the OOM killer or by `--memory-limit`",
             "reduce the memory the named cell needs (load less, use chunks or smaller dtypes), or raise the limit"),
    CodeInfo("RN102", "error", "the kernel crashed on a signal (SIGSEGV, SIGABRT, SIGBUS...): a native code crash",
             "the Python stack in the evidence names the library call that crashed: upgrade or reinstall that "
             "library, or report it to its authors"),
    CodeInfo("RN103", "error", "the kernel process exited by itself (`os._exit`, `sys.exit` in a thread...)",
             "remove the exit call from the notebook (the evidence has the exit code and the cell)"),
    CodeInfo("RN110", "error", "a cell ran past its timeout; the stack shows where it was stuck",
             "fix the wait the stack points at; raise `--cell-timeout` only if the cell is just slow"),
    CodeInfo("RN111", "error", "the whole run went past `--timeout`",
             "make the slow cells faster (see the per-cell wall times) or raise `--timeout`"),
    CodeInfo("RN112", "warning", "a cell stalled: no output and almost no CPU for a long time; the stack shows what it "
             "waits for", "look at the stack: a lock, a socket, a subprocess or `input()`; add a timeout to that wait"),
    CodeInfo("RN120", "error", "a cell raised an exception",
             "fix the cell (the evidence has the exception and a short traceback), or run with `--allow-errors`"),
    CodeInfo("RN130", "warning", "a cell produced more output than `--max-output`; the saved output is truncated",
             "print less (summaries, progress bars that update in place), or raise `--max-output`"),
    CodeInfo("RN140", "error", "the kernel failed to start",
             "fix the kernelspec or its environment: the evidence has the command, exit code and stderr; "
             "`python -m pip install ipykernel` for \"No module named ipykernel_launcher\""),
    CodeInfo("RN141", "error", "the kernel did not answer within the start-up timeout",
             "raise `--startup-timeout`, start fewer kernels at once, or look for slow start-up imports"),
    CodeInfo("RN150", "error", "the notebook asked for input (`input()`, `getpass`), which a headless run cannot give",
             "pass the value as a parameter (`-p NAME VALUE`) instead of asking for it"),
    CodeInfo("RN170", "error", "the executed notebook could not be written (missing folder, a directory in the way, "
             "no space or permission)", "choose another `-o`/`--output-dir`, or free space / fix permissions there"),
    CodeInfo("RN171", "error", "the notebook's own run settings (`metadata.nbmedic`) are invalid, so it was not run",
             "correct the value named in the message, e.g. `\"cell_timeout\": 30`, `\"memory_limit\": \"2G\"`"),
    CodeInfo("RN180", "warning", "the Dask worker running the notebook was lost (the worker process died or left "
             "the cluster); the notebook was run again on another worker",
             "look at the worker's memory limit and logs (a worker killed by its nanny for memory); the result "
             "shown is the retry's"),
    CodeInfo("RN160", "warning", "re-executed outputs differ from the stored ones (`--compare`)",
             "pin what varies (random seeds, package versions, data snapshots), or accept the new outputs"),

    # EN2xx: environment and kernelspecs
    CodeInfo("EN200", "error", "a kernelspec's interpreter (argv[0]) is missing or not executable",
             "remove the kernelspec (`jupyter kernelspec remove NAME`) or re-register it from a live environment"),
    CodeInfo("EN201", "error", "a kernelspec's interpreter cannot import ipykernel (\"No module named ipykernel_launcher\")",
             "`INTERPRETER -m pip install ipykernel`, or re-register the kernel from an environment that has it"),
    CodeInfo("EN202", "error", "a kernel does not reach kernel_info within the start-up timeout",
             "run the kernel's command by hand to see its error (the evidence has its stderr tail)"),
    CodeInfo("EN203", "warning", "two kernelspecs share a display name, or a user spec shadows a system one",
             "rename or remove one of them so the kernel picker is unambiguous"),
    CodeInfo("EN204", "warning", "the kernel's Python version differs from what the kernelspec or notebook claims",
             "re-register the kernel, or update the notebook's language_info by running it"),
    CodeInfo("EN210", "warning", "`pip`/`python`/`jupyter` first on PATH belong to another interpreter than the kernel",
             "use `%pip install` inside the notebook, which installs into the kernel's environment"),
    CodeInfo("EN211", "warning", "user-site packages shadow the kernel environment's packages",
             "uninstall the user-site copies (`python -m pip uninstall --user PKG`) or set PYTHONNOUSERSITE=1"),
    CodeInfo("EN212", "info", "the kernelspec's `python` argv is replaced by the server's interpreter",
             "register the kernel with an absolute interpreter path (`python -m ipykernel install --user`)"),
    CodeInfo("EN220", "warning", "a locked package is missing or at another version (error for a major version)",
             "`nbmedic env rebuild` a matching environment, or install the locked versions"),
    CodeInfo("EN221", "warning", "the kernel's Python version differs from the lock",
             "use an interpreter of the locked version (`nbmedic env rebuild`)"),
    CodeInfo("EN222", "info", "the platform differs from the one the lock was captured on",
             "expect platform-specific packages to differ"),
    CodeInfo("EN230", "warning", "an IPython extension configured for the kernel fails to load (\"Error in loading extension\")",
             "install the extension in the kernel's environment, or remove it from the IPython config"),
    CodeInfo("EN231", "warning", "an IPython startup file raises (\"Unknown error in handling startup files\")",
             "run `ipython` in the kernel's environment to see the error; fix or move the file"),
    CodeInfo("EN240", "warning", "little memory headroom: the memory limit is below what the notebooks needed last time",
             "raise the limit (container/cgroup memory, --memory-limit) or make the notebooks use less"),
    CodeInfo("EN241", "warning", "low disk space where notebooks, checkpoints or the Jupyter runtime directory live",
             "free space there (`du -sh` the largest folders), or move the runtime directory (JUPYTER_RUNTIME_DIR)"),
    CodeInfo("EN242", "warning", "a GPU is expected (torch/tensorflow/jax with CUDA use) but none is visible, or little GPU "
             "memory is free", "run on a machine with a GPU, check CUDA_VISIBLE_DEVICES and drivers, or free GPU memory"),
    CodeInfo("EN223", "warning", "the environment lock is missing or unpinned although the config requires one",
             "`nbmedic env capture NB` records it"),
    # EN25x-EN26x: the Jupyter installation itself (`nbmedic server`)
    CodeInfo("EN250", "error", "an enabled Jupyter server extension fails to import or to load",
             "fix or reinstall the package named in the error, or disable it: "
             "`jupyter server extension disable NAME`"),
    CodeInfo("EN251", "warning", "a classic Notebook setting (`NotebookApp.*`, `nbserver_extensions`) that "
             "jupyter_server ignores", "rename it as the finding says (e.g. `ServerApp.port`, "
             "`IdentityProvider.token`, `ServerApp.jpserver_extensions`)"),
    CodeInfo("EN252", "error", "a prebuilt JupyterLab extension requires `@jupyterlab/*` versions the installed "
             "JupyterLab does not ship (usually: built for another major version)",
             "install the extension's release for this JupyterLab (`pip install -U PACKAGE`), or remove it"),
    CodeInfo("EN253", "warning", "a JupyterLab extension is installed in two places; only one of them loads",
             "uninstall the copy you do not want (`jupyter labextension list` shows both)"),
    CodeInfo("EN254", "info", "a JupyterLab extension is installed but disabled in page_config.json",
             "`jupyter labextension enable NAME` if you expect it"),
    CodeInfo("EN255", "warning", "JupyterLab needs a rebuild: source extensions are not in the built application",
             "`jupyter lab build`, or install the extensions' prebuilt (pip) releases"),
    CodeInfo("EN256", "error", "a Jupyter configuration file cannot be loaded (Python that raises, JSON that "
             "does not parse): Jupyter skips it", "fix the file at the line named"),
    CodeInfo("EN257", "warning", "a configuration setting names a class or trait that does not exist: Jupyter "
             "ignores it silently", "correct the name (the finding suggests the closest one)"),
    CodeInfo("EN258", "warning", "a server runtime file whose process is gone (stale)",
             "`nbmedic server --fix` removes it"),
    CodeInfo("EN259", "error", "a running Jupyter server listens beyond localhost without a token or password",
             "stop it and restart it with a token (the default) or a password, or on 127.0.0.1"),
    CodeInfo("EN260", "warning", "the Jupyter runtime folder is almost full, not writable, or readable by others",
             "free space, or fix its permissions (`chmod 700`)"),
    CodeInfo("EN261", "warning", "`jupyter`, `jupyter-lab`, `jupyter-notebook` and `python` on PATH come from "
             "different environments", "activate one environment, or install Jupyter in the one you use"),
    CodeInfo("EN262", "error", "a Jupyter command's shebang names an interpreter that no longer exists "
             "(\"bad interpreter\")", "reinstall Jupyter in a living environment, or remove the stale script"),
    # LG3xx: log signatures
    CodeInfo("LG300", "error", "a kernel died and was restarted automatically",
             "find the memory peak and the cell (`nbmedic run NB` names it); lower the memory use or raise "
             "the limit"),
    CodeInfo("LG301", "error", "a kernel died and its automatic restart failed",
             "read the kernel's stderr just above these lines; fix the kernel's environment or kernelspec"),
    CodeInfo("LG302", "error", "a kernel's interpreter lacks ipykernel (\"No module named "
             "ipykernel_launcher\")",
             "`INTERPRETER -m pip install ipykernel`, or re-register the kernel from an environment that "
             "has it"),
    CodeInfo("LG303", "error", "a kernelspec's interpreter does not exist (FileNotFoundError when "
             "launching the kernel)",
             "fix or remove the kernelspec (`jupyter kernelspec list`, then `jupyter kernelspec remove "
             "NAME`)"),
    CodeInfo("LG304", "error", "the notebook's kernel is not installed here (\"No such kernel named …\")",
             "install and register that kernel (`python -m ipykernel install --user --name NAME`), or run "
             "with another kernel name"),
    CodeInfo("LG305", "error", "a kernel died during start-up, before replying to kernel_info",
             "run the kernel's command by hand (`jupyter kernelspec list`, then its argv) to see its error"),
    CodeInfo("LG306", "error", "a kernel did not respond within the start-up timeout",
             "raise the start-up timeout (`--startup-timeout`, `ExecutePreprocessor.startup_timeout`); "
             "start fewer kernels at once"),
    CodeInfo("LG307", "warning", "a client timed out waiting for a kernel's kernel_info reply",
             "restart the kernel (Kernel > Restart); if it keeps happening, look for a cell that blocks "
             "the kernel"),
    CodeInfo("LG308", "error", "a kernel could not bind its ZMQ port (\"Address already in use\")",
             "use the ipc transport (`--transport ipc` / `KernelManager.transport = 'ipc'`), or retry / "
             "serialize kernel starts"),
    CodeInfo("LG309", "error", "libzmq failed on Windows (\"Bad file descriptor … epoll.cpp\")",
             "upgrade pyzmq (`python -m pip install -U pyzmq`)"),
    CodeInfo("LG310", "error", "pywin32 is broken in the kernel environment (\"DLL load failed while "
             "importing win32api\")",
             "reinstall pywin32 in the kernel environment (`python -m pip install --force-reinstall "
             "pywin32`)"),
    CodeInfo("LG311", "warning", "output exceeded the IOPub data or message rate limit and was dropped",
             "print less (summaries, progress bars); or raise "
             "`ZMQChannelsWebsocketConnection.iopub_data_rate_limit` (older servers: "
             "`ServerApp.`/`NotebookApp.iopub_data_rate_limit`)"),
    CodeInfo("LG312", "error", "a kernel died while a cell was executing (DeadKernelError)",
             "find the memory peak and the cell (`nbmedic run NB` names it); lower the memory use or raise "
             "the limit"),
    CodeInfo("LG313", "error", "a cell timed out while executing (CellTimeoutError)",
             "find where it blocks (`nbmedic run NB` shows the stack); raise the timeout only if it is "
             "just slow"),
    CodeInfo("LG314", "warning", "a saved notebook failed nbformat validation",
             "re-save the notebook with current tools, or `nbmedic repair NB`"),
    CodeInfo("LG315", "warning", "cell ids in a notebook whose nbformat_minor < 5 (\"'id' was unexpected\")",
             "set `nbformat_minor` to 5 (`nbmedic repair NB`), or upgrade nbformat"),
    CodeInfo("LG316", "error", "a notebook file could not be read (\"Unreadable Notebook\", NotJSONError)",
             "`nbmedic check NB` and `nbmedic repair NB`; or restore from the `.~` checkpoint copy"),
    CodeInfo("LG317", "error", "a save was rejected as too large by a reverse proxy (HTTP 413)",
             "shrink the notebook's outputs; raise nginx `client_max_body_size` / the ingress "
             "`proxy-body-size`"),
    CodeInfo("LG318", "error", "saving failed: disk full, a locked database or a disk I/O error",
             "free disk space (`df -h`); move the SQLite databases off NFS (`NotebookNotary.db_file`, "
             "`HistoryManager.hist_file`)"),
    CodeInfo("LG319", "warning", "websocket connections dropped (ping timeout) or replaced (stale "
             "connection)",
             "raise the proxy's websocket/read timeouts; close the other tab on the same notebook"),
    CodeInfo("LG320", "warning", "an IPython extension failed to load in the kernel",
             "install `EXTENSION` in the kernel's environment, or remove it from the IPython config"),
    CodeInfo("LG321", "warning", "an IPython startup file raised an error",
             "run `ipython` in the kernel's environment to see the error; fix or move the file"),
    CodeInfo("LG322", "warning", "IPython's history database is locked (history saving thread error)",
             "set `HistoryManager.hist_file=:memory:` (or a local path) in the IPython config"),
    CodeInfo("LG323", "error", "a `jupyter` subcommand is not installed",
             "install it in that environment (e.g. `python -m pip install jupyterlab` for `jupyter-lab`); "
             "check `which jupyter`"),
    CodeInfo("LG324", "error", "the OOM killer killed a process (kernel log)",
             "lower the notebook's memory use (load less, chunk, smaller dtypes) or raise the memory limit"),
    CodeInfo("LG325", "error", "a process was killed by SIGKILL (exit status 137 / return code -9)",
             "look for the OOM killer in `dmesg`/`kubectl describe pod`; lower the memory use or raise the "
             "limit"),
)

CODES: dict[str, CodeInfo] = {info.code: info for info in _CODE_LIST}


def code_info(code: str) -> CodeInfo:
    return CODES[code]


def make(
    code: str,
    path: str | None,
    message: str,
    *,
    cell: int | None = None,
    cell_id: str | None = None,
    evidence: Mapping[str, Any] | None = None,
    fix: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a Finding whose severity and fix default to the code's registry entry.

    The evidence keys must be those of the code's layout (``nbmedic.evidence``); with
    ``NBMEDIC_STRICT_EVIDENCE`` set (the test suite sets it) another key is an error."""
    info = CODES[code]
    if evidence and strict():
        extra = undeclared(code, evidence)
        if extra:
            raise AssertionError(f"{code}: evidence keys not in its layout (nbmedic/evidence.py): {extra}")
    return Finding(
        code=code,
        severity=severity or info.severity,
        path=path,
        message=message,
        cell=cell,
        cell_id=cell_id,
        evidence=dict(evidence or {}),
        fix=info.fix if fix is None else fix,
    )


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=Finding.sort_key)


def code_matches(code: str, patterns: Iterable[str]) -> bool:
    """True if ``code`` matches any pattern: an exact code or a prefix (``NB``, ``NB0``, ``NB01``)."""
    return any(code.startswith(p) for p in patterns)


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """0 = no error findings, 1 = error findings (or warnings with ``strict``)."""
    failing = {"error", "warning"} if strict else {"error"}
    return 1 if any(f.severity in failing for f in findings) else 0


def to_json(doc: Mapping[str, Any]) -> str:
    """The JSON document every command prints: indented two spaces, non-string keys allowed, any other
    value as its ``str`` (kept here, light, so a command needs nothing heavier to print one).

    What orjson refuses and a notebook can hold (integers past 64 bits, lone surrogates, nesting deeper
    than 254) is written by the standard library instead, non-ASCII as ``\\u`` escapes."""
    import orjson

    try:
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode() + "\n"
    except (TypeError, orjson.JSONEncodeError):
        import json

        return json.dumps(doc, indent=2, default=str) + "\n"
