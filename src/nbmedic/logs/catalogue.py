"""The log signature catalogue, kept as data: one entry per signature (code ``LG3xx``).

Each :class:`Signature` carries its patterns (regular expressions searched in a log line after its
``[I … ServerApp]`` prefix and ANSI colours are removed), the usual cause, the fix and where the text comes
from.  Every pattern has a ``needle``: a literal substring that must occur in the raw line before the regex
is tried, so that a 100 MB log costs one cheap pre-filter per line.

Templates (``message``, ``fix``) use ``{name}`` for a captured variable (``{name|default}`` when it may be
missing) and ``[ … ]`` around a part that is dropped when a variable inside it was not captured.
``{times}`` ("once", "5 times") and ``{count}`` are always available; a message without ``{times}`` gets
"(once, line 3)" / "(5 times, lines 12–80)" appended, one with it "(lines 12–80)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from nbmedic.findings import Severity

Role = Literal["event", "trigger", "attach"]


@dataclass(frozen=True)
class Pattern:
    """One way a signature shows up in a log line.

    ``role``: ``event`` counts an occurrence; ``trigger`` only arms the patterns that ``need_trigger``
    (within ``window`` lines); ``attach`` adds its captures to the latest group of the signature (within
    ``window`` lines) without counting.  ``kind`` names what is counted: a group's count is the largest
    count among its kinds (a restart logged twice, once per logger, counts once).  ``values`` adds
    constant variables.
    """

    regex: str
    needle: str
    role: Role = "event"
    kind: str = "event"
    need_trigger: bool = False
    window: int = 200
    values: tuple[tuple[str, str], ...] = ()
    flags: int = 0

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.regex, self.flags)


@dataclass(frozen=True)
class Signature:
    code: str
    severity: Severity
    title: str  # the README's "meaning" column and the CodeInfo title
    message: str  # template of the finding's sentence (before " (lines …): cause")
    cause: str
    fix: str  # template
    source: str  # where the text comes from
    patterns: tuple[Pattern, ...]
    group_by: tuple[str, ...] = ()  # variables that separate groups (e.g. one group per kernel id)
    examples: tuple[str, ...] = field(default=(), compare=False)  # realistic lines (used by the tests)


P = Pattern

CATALOGUE: tuple[Signature, ...] = (
    Signature(
        "LG300", "error", "a kernel died and was restarted automatically",
        "the kernel[ {kernel_id}][ for {path}] died and was restarted {times}",
        "most often the OOM killer (the kernel ran out of memory)",
        "find the memory peak and the cell (`nbmedic run NB` names it); lower the memory use or raise the limit",
        "jupyter_client KernelRestarter and jupyter_server (server log); JupyterLab/Notebook (browser)",
        (
            P(r"(?:\w*KernelRestarter): restarting kernel \((?P<n>\d+)/(?P<max>\d+)\)(?:, (?P<ports>\w+) random ports)?",
              "restarting kernel", kind="restarting"),
            P(r"^[Kk]ernel (?P<kernel_id>[\w-]+) restarted\.?$", "restarted", kind="restarted"),
            P(r"The kernel for (?P<path>.+?) appears to have died\. It will restart automatically", "appears to have died",
              kind="browser"),
            P(r"(?:^|\s)Kernel Restarting\s*$", "Kernel Restarting", kind="dialog"),
        ),
        group_by=("kernel_id", "path"),
    ),
    Signature(
        "LG301", "error", "a kernel died and its automatic restart failed",
        "the kernel[ {kernel_id}] died and the automatic restart failed",
        "the kernel crashes at start-up, repeatedly",
        "read the kernel's stderr just above these lines; fix the kernel's environment or kernelspec",
        "jupyter_client KernelRestarter, jupyter_server (server log); JupyterLab/Notebook (browser)",
        (
            P(r"KernelRestarter: restart failed", "restart failed", kind="restarter"),
            P(r"Kernel (?P<kernel_id>[\w-]+) died, removing from map", "removing from map", kind="removed"),
            P(r"[Kk]ernel (?P<kernel_id>[\w-]+) restarted failed", "restarted failed", kind="ws"),
            P(r"The kernel has died, and the automatic restart has failed", "automatic restart has failed",
              kind="browser"),
        ),
        group_by=("kernel_id",),
    ),
    Signature(
        "LG302", "error", "a kernel's interpreter lacks ipykernel (\"No module named ipykernel_launcher\")",
        "the kernel's interpreter[ {python}] cannot import ipykernel",
        "the kernelspec's interpreter has no ipykernel installed",
        "`{python|INTERPRETER} -m pip install ipykernel`, or re-register the kernel from an environment that has it",
        "the kernel's stderr, relayed by the server log",
        (P(r"(?:(?P<python>(?:[A-Za-z]:)?[^\s:]*(?:[/\\][^\s:]*|python[\w.]*)): )?No module named "
           r"'?ipykernel_launcher'?", "ipykernel_launcher"),),
        group_by=("python",),
    ),
    Signature(
        "LG303", "error", "a kernelspec's interpreter does not exist (FileNotFoundError when launching the kernel)",
        "the kernel could not be launched: its interpreter[ {python}] does not exist",
        "the kernelspec's argv[0] points to a deleted or moved environment",
        "fix or remove the kernelspec (`jupyter kernelspec list`, then `jupyter kernelspec remove NAME`)",
        "jupyter_client launcher (`Failed to run command:`) and the traceback after it (server log)",
        (
            P(r"Failed to run command:", "Failed to run command", role="trigger"),
            P(r"FileNotFoundError: \[(?:Errno 2|WinError 2)\] [^:]*: '(?P<python>[^']+)'", "FileNotFoundError",
              need_trigger=True),
        ),
        group_by=("python",),
    ),
    Signature(
        "LG304", "error", "the notebook's kernel is not installed here (\"No such kernel named …\")",
        "no kernel[ named {kernel_name}] is installed here",
        "the notebook's metadata.kernelspec.name is not installed on this machine",
        "install and register that kernel (`python -m ipykernel install --user --name {kernel_name|NAME}`), "
        "or run with another kernel name",
        "jupyter_client NoSuchKernel (server log, nbclient); nbconvert",
        (
            P(r"No such kernel named (?P<kernel_name>[^\s'\"]+)", "No such kernel named"),
            P(r"Kernelspec name (?P<kernel_name>\S+) cannot be found", "cannot be found"),
        ),
        group_by=("kernel_name",),
    ),
    Signature(
        "LG305", "error", "a kernel died during start-up, before replying to kernel_info",
        "a kernel died during start-up before replying to kernel_info",
        "the kernel process exited while starting (broken environment, failing import, crash)",
        "run the kernel's command by hand (`jupyter kernelspec list`, then its argv) to see its error",
        "jupyter_client / nbclient RuntimeError",
        (P(r"Kernel died before replying to kernel_info", "Kernel died before replying"),),
    ),
    Signature(
        "LG306", "error", "a kernel did not respond within the start-up timeout",
        "a kernel did not respond in time after starting[ ({seconds} seconds)]",
        "start-up timeout exceeded: slow imports, an overloaded machine, many kernels starting at once",
        "raise the start-up timeout (`--startup-timeout`, `ExecutePreprocessor.startup_timeout`); start fewer kernels at once",
        "jupyter_client / nbclient RuntimeError (`Kernel didn't respond in N seconds`)",
        (P(r"Kernel didn't respond in (?P<seconds>\d+(?:\.\d+)?) seconds", "didn't respond in"),),
    ),
    Signature(
        "LG307", "warning", "a client timed out waiting for a kernel's kernel_info reply",
        "the server timed out waiting for a kernel_info reply[ from kernel {kernel_id}]",
        "the kernel is dead or blocked when a client (a browser tab) connects",
        "restart the kernel (Kernel > Restart); if it keeps happening, look for a cell that blocks the kernel",
        "jupyter_server websocket handler (server log)",
        (P(r"Timeout waiting for kernel_info reply from (?P<kernel_id>[\w-]+)", "Timeout waiting for kernel_info"),),
        group_by=("kernel_id",),
    ),
    Signature(
        "LG308", "error", "a kernel could not bind its ZMQ port (\"Address already in use\")",
        "a kernel could not bind a ZMQ port: address already in use",
        "a port race when many kernels start at once",
        "use the ipc transport (`--transport ipc` / `KernelManager.transport = 'ipc'`), or retry / serialize kernel starts",
        "pyzmq (kernel stderr, server log)",
        (P(r"ZMQError: Address already in use", "Address already in use"),),
    ),
    Signature(
        "LG309", "error", "libzmq failed on Windows (\"Bad file descriptor … epoll.cpp\")",
        "libzmq failed with \"Bad file descriptor\"[ at {where}]",
        "a libzmq bug on Windows (Store Python, non-ASCII user name)",
        "upgrade pyzmq (`python -m pip install -U pyzmq`)",
        "libzmq assertion (kernel or server stderr)",
        (P(r"Bad file descriptor \((?P<where>[^)]*epoll\.cpp:\d+)\)", "epoll.cpp"),),
    ),
    Signature(
        "LG310", "error", "pywin32 is broken in the kernel environment (\"DLL load failed while importing win32api\")",
        "pywin32 is broken: DLL load failed while importing[ {module}]",
        "a broken pywin32 installation in the kernel environment",
        "reinstall pywin32 in the kernel environment (`python -m pip install --force-reinstall pywin32`)",
        "ImportError in the kernel's stderr (server log)",
        (P(r"DLL load failed while importing (?P<module>win32\w*|pywintypes|pythoncom|_win32sysloader)",
           "DLL load failed"),),
    ),
    Signature(
        "LG311", "warning", "output exceeded the IOPub data or message rate limit and was dropped",
        "output was dropped: the IOPub[ {rate}] rate limit was exceeded",
        "a cell printed more than 1 MB/s or 1000 messages/s for 3 s",
        "print less (summaries, progress bars); or raise `ZMQChannelsWebsocketConnection.iopub_data_rate_limit` "
        "(older servers: `ServerApp.`/`NotebookApp.iopub_data_rate_limit`)",
        "jupyter_server (cell output and server log)",
        (
            P(r"IOPub (?P<rate>data|message) rate exceeded", "rate exceeded", kind="exceeded"),
            P(r"iopub messages resumed", "iopub messages resumed", kind="resumed"),
        ),
    ),
    Signature(
        "LG312", "error", "a kernel died while a cell was executing (DeadKernelError)",
        "the kernel died while a cell was executing",
        "the kernel died during a cell, often killed by the OOM killer",
        "find the memory peak and the cell (`nbmedic run NB` names it); lower the memory use or raise the limit",
        "nbclient / nbconvert / papermill",
        (
            P(r"DeadKernelError: Kernel died", "DeadKernelError", kind="error"),
            P(r"Kernel died while waiting for execute reply", "waiting for execute reply", kind="waiting"),
        ),
    ),
    Signature(
        "LG313", "error", "a cell timed out while executing (CellTimeoutError)",
        "a cell timed out[ after {seconds} seconds]",
        "a stuck or slow cell",
        "find where it blocks (`nbmedic run NB` shows the stack); raise the timeout only if it is just slow",
        "nbclient / nbconvert / papermill",
        (P(r"A cell timed out while it was being executed, after (?P<seconds>\d+(?:\.\d+)?) seconds",
           "A cell timed out"),),
    ),
    Signature(
        "LG314", "warning", "a saved notebook failed nbformat validation",
        "a notebook failed validation[ ({detail})]",
        "a writer/nbformat version mismatch (e.g. widget state written by another tool)",
        "re-save the notebook with current tools, or `nbmedic repair NB`",
        "nbformat validator; jupyter_server contents manager (server log)",
        (
            P(r"Notebook validation failed: ?(?P<detail>.*)", "Notebook validation failed"),
            P(r"The save operation succeeded, but the notebook does not appear to be valid", "does not appear to be valid"),
            P(r"Notebook JSON is invalid: (?!Additional properties are not allowed \('id' was unexpected\))(?P<detail>.*)",
              "Notebook JSON is invalid"),
        ),
    ),
    Signature(
        "LG315", "warning", "cell ids in a notebook whose nbformat_minor < 5 (\"'id' was unexpected\")",
        "a notebook has cell ids although its nbformat_minor is below 5",
        "cell ids in a file whose nbformat_minor < 5, or an nbformat too old for them",
        "set `nbformat_minor` to 5 (`nbmedic repair NB`), or upgrade nbformat",
        "nbformat validator (server log)",
        (P(r"Notebook JSON is invalid: Additional properties are not allowed \('id' was unexpected\)", "'id' was unexpected"),),
    ),
    Signature(
        "LG316", "error", "a notebook file could not be read (\"Unreadable Notebook\", NotJSONError)",
        "the notebook[ {path}] could not be read[: {error}]",
        "HTML saved as .ipynb, an empty file, broken escaping or git conflict markers",
        "`nbmedic check {path|NB}` and `nbmedic repair {path|NB}`; or restore from the `.~` checkpoint copy",
        "jupyter_server contents manager (server log, HTTP 400)",
        (P(r"Unreadable Notebook: (?P<path>.+?)(?:\s+(?P<error>\w+\(.*))?$", "Unreadable Notebook"),),
        group_by=("path",),
    ),
    Signature(
        "LG317", "error", "a save was rejected as too large by a reverse proxy (HTTP 413)",
        "a save was rejected as too large (HTTP 413)[ for {name}]",
        "the reverse proxy's body limit (nginx's default is 1 MiB)",
        "shrink the notebook's outputs; raise nginx `client_max_body_size` / the ingress `proxy-body-size`",
        "reverse proxy (nginx error log); JupyterLab (browser, \"File Save Error\")",
        (
            P(r"\b413\b.*Request Entity Too Large|Request Entity Too Large.*\b413\b|^413 Request Entity Too Large",
              "Request Entity Too Large"),
            P(r"File Save Error for (?P<name>\S+?)[:.,]?\s.*\b413\b", "File Save Error"),
            P(r"client intended to send too large body(?:: (?P<bytes>\d+) bytes)?", "too large body"),
        ),
    ),
    Signature(
        "LG318", "error", "saving failed: disk full, a locked database or a disk I/O error",
        "saving or storing failed: {problem|an I/O error}",
        "the disk is full, or the notebook signature / history SQLite database is on NFS",
        "free disk space (`df -h`); move the SQLite databases off NFS (`NotebookNotary.db_file`, "
        "`HistoryManager.hist_file`)",
        "jupyter_server contents manager, notary and IPython history (server log)",
        (
            P(r"No space left on device", "No space left on device", kind="disk-full",
              values=(("problem", "no space left on device"),)),
            P(r"^(?!.*history saving thread).*database is locked", "database is locked", kind="locked",
              values=(("problem", "database is locked"),)),
            P(r"disk I/O error", "disk I/O error", kind="io", values=(("problem", "disk I/O error"),)),
            P(r"Unexpected error while saving file: (?P<path>\S+)", "Unexpected error while saving", role="attach",
              window=1),
        ),
        group_by=("problem",),
    ),
    Signature(
        "LG319", "warning", "websocket connections dropped (ping timeout) or replaced (stale connection)",
        "websocket connections were {problem|dropped}",
        "a proxy or the network drops the websocket; a second browser tab on the same session",
        "raise the proxy's websocket/read timeouts; close the other tab on the same notebook",
        "jupyter_server websocket handler (server log); browser console",
        (
            P(r"WebSocket ping timeout after (?P<ms>\d+) ms", "WebSocket ping timeout",
              values=(("problem", "dropped after a ping timeout"),)),
            P(r"Replacing stale connection: (?P<key>\S+)", "Replacing stale connection",
              values=(("problem", "replaced by another connection"),)),
        ),
        group_by=("problem",),
    ),
    Signature(
        "LG320", "warning", "an IPython extension failed to load in the kernel",
        "the IPython extension[ {ext}] failed to load",
        "the extension is not importable in the kernel's environment",
        "install `{ext|EXTENSION}` in the kernel's environment, or remove it from the IPython config[ in {profile}]",
        "IPython (kernel's start-up output, server log)",
        (
            P(r"Error in loading extension: (?P<ext>\S+)", "Error in loading extension"),
            P(r"Check your config files in (?P<profile>\S+)", "Check your config files", role="attach", window=5),
        ),
        group_by=("ext",),
    ),
    Signature(
        "LG321", "warning", "an IPython startup file raised an error",
        "an IPython startup file[ {file}] raised an error",
        "an exception in `~/.ipython/profile_*/startup/*.py` (or the PYTHONSTARTUP file)",
        "run `ipython` in the kernel's environment to see the error; fix or move[ {file}| the file]",
        "IPython (kernel's start-up output, server log)",
        (
            P(r"Unknown error in handling (?:startup files|PYTHONSTARTUP file (?P<file>.+?)):", "Unknown error in handling"),
            P(r"File \"(?P<file>[^\"]*[/\\]startup[/\\][^\"]+\.py)\"", "startup", role="attach", window=30),
        ),
    ),
    Signature(
        "LG322", "warning", "IPython's history database is locked (history saving thread error)",
        "IPython's history saving thread failed[: {error}]",
        "the IPython history SQLite database is on NFS or shared between machines",
        "set `HistoryManager.hist_file=:memory:` (or a local path) in the IPython config",
        "IPython HistorySavingThread (kernel stderr, server log)",
        (P(r"The history saving thread hit an unexpected error \((?P<error>.*)\)\.?", "history saving thread"),),
    ),
    Signature(
        "LG323", "error", "a `jupyter` subcommand is not installed",
        "the command `jupyter-{sub|SUBCOMMAND}` was not found",
        "the subcommand is not installed in the environment of the `jupyter` first on PATH",
        "install it in that environment (e.g. `python -m pip install jupyterlab` for `jupyter-lab`); check `which jupyter`",
        "jupyter_core (terminal)",
        (P(r"Jupyter command `jupyter-(?P<sub>[\w.-]+)` not found", "not found"),),
        group_by=("sub",),
    ),
    Signature(
        "LG324", "error", "the OOM killer killed a process (kernel log)",
        "the OOM killer killed {comm|a process}[ ({scope})] {times}",
        "the process used more memory than the container's limit (cgroup) or the host had",
        "lower the notebook's memory use (load less, chunk, smaller dtypes) or raise the memory limit",
        "Linux kernel log (`dmesg`, `journalctl -k`)",
        (
            P(r"Memory cgroup out of memory: Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)(?:.*?anon-rss:(?P<anon_rss>\d+\s*kB))?",
              "Memory cgroup out of memory", values=(("scope", "memory cgroup limit"),)),
            P(r"(?<!cgroup )Out of memory: Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)(?:.*?anon-rss:(?P<anon_rss>\d+\s*kB))?",
              "Out of memory", values=(("scope", "host out of memory"),)),
        ),
        group_by=("comm",),
    ),
    Signature(
        "LG325", "error", "a process was killed by SIGKILL (exit status 137 / return code -9)",
        "a process was killed by SIGKILL[ ({status})]",
        "SIGKILL, most often from the OOM killer or a container's memory limit",
        "look for the OOM killer in `dmesg`/`kubectl describe pod`; lower the memory use or raise the limit",
        "shells, containers (docker, Kubernetes `Exit Code: 137`, `OOMKilled`), subprocess return codes",
        (
            P(r"(?:exit(?:ed)?(?: with)?[ _-]?(?:code|status)|return[ _]?code|exitCode)[\s:=]*(?P<status>137|-9)\b",
              "137", flags=re.IGNORECASE),
            P(r"(?:exit(?:ed)?(?: with)?[ _-]?(?:code|status)|return[ _]?code|exitCode)[\s:=]*(?P<status>137|-9)\b",
              "-9", flags=re.IGNORECASE),
            P(r"\bOOMKilled\b", "OOMKilled", values=(("status", "OOMKilled"),)),
        ),
    ),
)

BY_CODE: dict[str, Signature] = {sig.code: sig for sig in CATALOGUE}

_OPTIONAL_RE = re.compile(r"\[([^\[\]]*)\]")
_FIELD_RE = re.compile(r"\{(\w+)(?:\|([^{}]*))?\}")


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``template``: ``[…]`` parts vanish when a variable inside is missing; ``{a|b}`` defaults to b."""

    def field_value(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise KeyError(m.group(1))
            return m.group(2)
        return value

    def optional(m: re.Match[str]) -> str:
        inner = m.group(1)
        alt = ""
        if "|" in inner and not _FIELD_RE.fullmatch(inner.strip()):
            # "[{file}| the file]": the alternative after the top-level bar
            depth, cut = 0, -1
            for i, ch in enumerate(inner):
                depth += ch == "{"
                depth -= ch == "}"
                if ch == "|" and depth == 0:
                    cut = i
                    break
            if cut >= 0:
                inner, alt = inner[:cut], inner[cut + 1:]
        try:
            return _FIELD_RE.sub(field_value, inner)
        except KeyError:
            return alt

    return _FIELD_RE.sub(field_value, _OPTIONAL_RE.sub(optional, template))
