"""Git's long-running filter process protocol (gitattributes(5), "Long Running Filter Process").

Git starts ``nbmedic git filter-process`` once per command (``git add``, ``git status``, ``git checkout``)
and sends it every file through one pipe, framed as pkt-lines:

* a pkt-line is 4 hex digits giving the length of the whole packet (header included) followed by at
  most 65516 bytes of payload; ``0000`` is a *flush* packet that ends a list or a content stream;
* handshake: git sends ``git-filter-client``, ``version=2``, flush; we answer ``git-filter-server``,
  ``version=2``, flush; git lists its capabilities (``capability=clean``, ``=smudge``, ``=delay``),
  flush; we answer with the subset we serve, flush;
* per file: ``command=clean`` (or ``smudge``), ``pathname=...``, maybe more ``key=value`` lines, flush,
  the content, flush; we answer ``status=success``, flush, the new content, flush, and an empty list
  (flush) that keeps the status.  ``status=error``, flush tells git this one file failed.

``clean`` strips notebooks (:mod:`nbmedic.vcs.strip`) with the ``[tool.nbmedic.strip]`` options read
once per process from ``pyproject.toml`` in git's working directory (the repository root).
``smudge`` passes content through unchanged, so ``filter.nbmedic.required = true`` works on checkout.
A file that is not a notebook is stored unchanged with a one-line warning on stderr: the filter never
blocks ``git add`` on a user's file and never corrupts content.  ``status=error`` is for internal failures.

Set ``NBMEDIC_FILTER_LOG=FILE`` to append one tab-separated line per file served (pid, command, path,
bytes in, bytes out, milliseconds): a cheap way to see what git asks of the filter.

The per-file path imports nothing: the stripper and the configuration are loaded on the first
``clean`` request.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from nbmedic.errors import NbmedicError
from nbmedic.notebook.io import NotebookReadError
from nbmedic.vcs.strip import StripOptions, options_from_config, strip_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "MAX_PAYLOAD",
    "FilterServer",
    "Handler",
    "PktReader",
    "PktWriter",
    "ProtocolError",
    "make_clean",
    "run_filter_process",
    "smudge",
]

MAX_PAYLOAD = 65516  # LARGE_PACKET_MAX (65520) minus the 4-byte header
FLUSH = b"0000"
LOG_ENV = "NBMEDIC_FILTER_LOG"

Handler = Callable[[bytes, str], bytes]
"""One filter command: (content, pathname) -> new content."""


class ProtocolError(Exception):
    """Git and the filter are out of step (bad framing, unexpected handshake)."""


class PktReader:
    """Reads pkt-lines from a binary stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._read = stream.read

    def packet(self) -> bytes | None:
        """The next payload; ``None`` for a flush packet.  ``EOFError`` at a clean end of stream."""
        header = self._read(4)
        if len(header) != 4:
            if not header:
                raise EOFError
            raise ProtocolError(f"stream ended inside a pkt-line header ({header!r})")
        try:
            size = int(header, 16)
        except ValueError:
            raise ProtocolError(f"bad pkt-line header {header!r}") from None
        if size == 0:
            return None
        if size < 4 or size > MAX_PAYLOAD + 4:
            raise ProtocolError(f"bad pkt-line length {size} (header {header!r})")
        payload = self._read(size - 4)
        if len(payload) != size - 4:
            raise ProtocolError(f"stream ended inside a pkt-line ({len(payload)} of {size - 4} bytes)")
        return payload

    def text_list(self) -> list[str]:
        """Text packets up to the next flush, without their trailing newline."""
        items: list[str] = []
        while True:
            pkt = self.packet()
            if pkt is None:
                return items
            items.append(pkt.decode("utf-8", "surrogateescape").removesuffix("\n"))

    def content(self) -> bytes:
        """Binary packets up to the next flush, joined."""
        chunks: list[bytes] = []
        while True:
            try:
                pkt = self.packet()
            except EOFError:
                raise ProtocolError("stream ended inside a file's content") from None
            if pkt is None:
                return b"".join(chunks)
            chunks.append(pkt)


class PktWriter:
    """Collects pkt-lines and writes them in one go (``send``)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._parts: list[bytes] = []

    def text(self, line: str) -> None:
        payload = line.encode("utf-8", "surrogateescape") + b"\n"
        self._parts.append(b"%04x" % (len(payload) + 4))
        self._parts.append(payload)

    def flush_pkt(self) -> None:
        self._parts.append(FLUSH)

    def content(self, data: bytes) -> None:
        """``data`` as pkt-lines of at most ``MAX_PAYLOAD`` bytes (nothing for empty content)."""
        parts = self._parts
        for start in range(0, len(data), MAX_PAYLOAD):
            chunk = data[start: start + MAX_PAYLOAD]
            parts.append(b"%04x" % (len(chunk) + 4))
            parts.append(chunk)
        self.flush_pkt()

    def send(self) -> None:
        self._stream.writelines(self._parts)
        self._stream.flush()
        self._parts = []


def smudge(data: bytes, pathname: str) -> bytes:
    """Checkout: the stored content as it is (stripped outputs do not come back)."""
    return data


class FilterServer:
    """Serves one git process: handshake, then one request per file until git closes the pipe."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes], handlers: Mapping[str, Handler],
                 *, stderr: IO[str] | None = None, log: IO[str] | None = None) -> None:
        self.reader = PktReader(stdin)
        self.writer = PktWriter(stdout)
        self.handlers = dict(handlers)
        self.stderr = stderr if stderr is not None else sys.stderr
        self.log = log
        self.capabilities: list[str] = []
        self.served = 0

    def handshake(self) -> None:
        try:
            welcome = self.reader.text_list()
        except EOFError:
            raise ProtocolError("git closed the pipe before the handshake") from None
        if not welcome or welcome[0] != "git-filter-client":
            raise ProtocolError(f"expected 'git-filter-client', got {welcome[:1]!r}: is this run by git "
                                "as filter.<driver>.process?")
        versions = {item.partition("=")[2] for item in welcome[1:] if item.startswith("version=")}
        if "2" not in versions:
            raise ProtocolError(f"git offers protocol versions {sorted(versions)}; nbmedic speaks version 2")
        self.writer.text("git-filter-server")
        self.writer.text("version=2")
        self.writer.flush_pkt()
        self.writer.send()
        try:
            offered = self.reader.text_list()
        except EOFError:
            raise ProtocolError("git closed the pipe during capability negotiation") from None
        wanted = [item.partition("=")[2] for item in offered if item.startswith("capability=")]
        self.capabilities = [cap for cap in wanted if cap in self.handlers]
        for cap in self.capabilities:
            self.writer.text(f"capability={cap}")
        self.writer.flush_pkt()
        self.writer.send()

    def serve_one(self) -> bool:
        """Answer one request; ``False`` when git has closed the pipe."""
        try:
            headers = self.reader.text_list()
        except EOFError:
            return False
        meta: dict[str, str] = {}
        for item in headers:
            key, _, value = item.partition("=")
            meta.setdefault(key, value)
        data = self.reader.content()
        command = meta.get("command", "")
        pathname = meta.get("pathname", "")
        handler = self.handlers.get(command) if command in self.capabilities else None
        started = time.perf_counter()
        out: bytes | None = None
        if handler is None:
            self._say(f"nbmedic: error: {pathname}: git asked for {command!r}, which was not negotiated")
        else:
            try:
                out = handler(data, pathname)
            except Exception as exc:  # noqa: BLE001  # an internal failure: this file fails, the process serves the next
                self._say(f"nbmedic: internal error: {pathname}: {type(exc).__name__}: {exc} "
                          "(this is a bug; please report it)")
        w = self.writer
        if out is None:
            w.text("status=error")
            w.flush_pkt()
        else:
            w.text("status=success")
            w.flush_pkt()
            w.content(out)
            w.flush_pkt()  # an empty list: the status stays "success"
        w.send()
        self.served += 1
        if self.log is not None:
            ms = (time.perf_counter() - started) * 1000
            self.log.write(f"{os.getpid()}\t{command}\t{pathname}\t{len(data)}\t"
                           f"{-1 if out is None else len(out)}\t{ms:.2f}\n")
            self.log.flush()
        return True

    def serve(self) -> None:
        self.handshake()
        while self.serve_one():
            pass

    def _say(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()


def _strip_options(root: Path, warn: Callable[[str], None]) -> StripOptions | None:
    """``[tool.nbmedic.strip]`` of ``root/pyproject.toml``; ``None`` (after a warning) when it is unusable."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return StripOptions()
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
        tool = doc.get("tool", {})
        section = tool.get("nbmedic", {}) if isinstance(tool, dict) else {}
        table = section.get("strip") if isinstance(section, dict) else None
        if table is None:
            return StripOptions()
        if not isinstance(table, dict):
            raise NbmedicError(f"{path}: [tool.nbmedic.strip] must be a table")
        return options_from_config(table, where=f"{path} [tool.nbmedic.strip]")
    except (OSError, tomllib.TOMLDecodeError, NbmedicError) as exc:
        warn(f"nbmedic: warning: cannot use {path}: {exc}; notebooks are stored unstripped until it is fixed")
        return None


class _Cleaner:
    """The ``clean`` handler: strip notebooks, pass anything else through with a one-line warning.

    The options are read on the first call, once per process.
    """

    def __init__(self, root: Path, stderr: IO[str] | None) -> None:
        self.root = root
        self.stderr = stderr if stderr is not None else sys.stderr
        self.loaded = False
        self.opts: StripOptions | None = None

    def warn(self, line: str) -> None:
        self.stderr.write(line + "\n")
        self.stderr.flush()

    def __call__(self, data: bytes, pathname: str) -> bytes:
        if not self.loaded:
            self.opts = _strip_options(self.root, self.warn)
            self.loaded = True
        if self.opts is None:
            return data
        try:
            return strip_bytes(data, self.opts)
        except NotebookReadError as exc:
            self.warn(f"nbmedic: warning: {pathname}: not a valid notebook ({exc}); stored unchanged")
            return data


def make_clean(root: Path, *, stderr: IO[str] | None = None) -> Handler:
    """The ``clean`` handler for the notebooks of the repository at ``root``."""
    return _Cleaner(root, stderr)


def run_filter_process(root: Path | None = None, *, stdin: IO[bytes] | None = None,
                       stdout: IO[bytes] | None = None) -> int:
    """The body of ``nbmedic git filter-process``: serve git on stdin/stdout until it closes the pipe.

    ``stdin``/``stdout`` default to the process's own file descriptors (the tests pass streams)."""
    if stdin is None:
        stdin = open(sys.stdin.fileno(), "rb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    if stdout is None:
        stdout = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
        sys.stdout = sys.stderr  # a stray print() must never land in the protocol stream
    log = None
    log_path = os.environ.get(LOG_ENV)
    if log_path:
        log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115  # closed below
    handlers: dict[str, Handler] = {"clean": make_clean(root or Path.cwd()), "smudge": smudge}
    try:
        FilterServer(stdin, stdout, handlers, log=log).serve()
    except ProtocolError as exc:
        sys.stderr.write(f"nbmedic: error: git filter protocol: {exc}\n")
        return 2
    except BrokenPipeError:
        return 0  # git went away; nothing left to answer
    finally:
        if log is not None:
            log.close()
    return 0
