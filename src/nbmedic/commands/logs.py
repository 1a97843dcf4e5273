"""``nbmedic logs FILE|-``: explain Jupyter server, kernel and browser-console logs.

Streams each log line by line (plain, gzip'ed or stdin; any encoding, undecodable bytes replaced) through
the signature catalogue (``nbmedic.logs.catalogue``) and reports each signature found, grouped (one
finding per kernel id, path, extension...) with its line numbers and count.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING, Any

from nbmedic.commands.common import emit
from nbmedic.config import split_codes
from nbmedic.errors import UsageError
from nbmedic.findings import code_matches, exit_code
from nbmedic.logs.catalogue import CATALOGUE
from nbmedic.logs.matcher import Matcher, parse_since

if TYPE_CHECKING:
    from contextlib import ExitStack

    from nbmedic.findings import Finding
    from nbmedic.logs.catalogue import Signature

EXIT_UNREADABLE = 2


def signatures(select: str | None, ignore: str | None) -> list[Signature]:
    """The catalogue entries that ``--select``/``--ignore`` keep (same meaning as in ``check``)."""
    chosen = split_codes(select, what="--select") if select else ()
    skipped = split_codes(ignore, what="--ignore") if ignore else ()
    return [sig for sig in CATALOGUE
            if (not chosen or code_matches(sig.code, chosen)) and not code_matches(sig.code, skipped)]


def open_log(path: str, stack: ExitStack) -> IO[str]:
    """A text stream over the log at ``path`` (``-`` = stdin): gzip and UTF-16/UTF-8 BOMs detected.

    Everything opened is registered on ``stack`` (stdin itself stays open)."""
    import gzip
    import io
    from typing import cast

    buf: io.BufferedReader
    if path == "-":
        stdin = sys.stdin.buffer
        buf = stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(cast(Any, stdin))
    else:
        buf = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the stack
    stream: Any = buf
    head = buf.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        gz = stack.enter_context(gzip.GzipFile(fileobj=buf, mode="rb"))
        stream, head = gz, gz.peek(4)[:4]
    encoding = "utf-8"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"
    elif head[:3] == b"\xef\xbb\xbf":
        encoding = "utf-8-sig"
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline=None)
    if path == "-":
        stack.callback(text.detach)  # leave stdin open
    else:
        stack.enter_context(text)
    return text


def scan(path: str, sigs: list[Signature], since: Any = None) -> list[Finding]:
    """Stream one log through the matcher; OSError/EOFError for unreadable input."""
    from contextlib import ExitStack


    matcher = Matcher("<stdin>" if path == "-" else path, sigs, since=since)
    with ExitStack() as stack:
        for no, line in enumerate(open_log(path, stack), 1):
            matcher.feed(no, line)
    return matcher.findings()


def run(args: argparse.Namespace) -> int:
    import gzip
    import zlib


    paths: list[str] = list(args.paths)
    if paths.count("-") > 1:
        raise UsageError("`-` (stdin) can be given only once")
    sigs = signatures(getattr(args, "select", None), getattr(args, "ignore", None))
    since = None
    if getattr(args, "since", None):
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    findings: list[Finding] = []
    for path in paths:
        try:
            findings.extend(scan(path, sigs, since))
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            print(f"nbmedic: error: cannot read {'stdin' if path == '-' else path}: {why}", file=sys.stderr)
            return EXIT_UNREADABLE
    files = ["<stdin>" if p == "-" else p for p in paths]
    emit(findings, files, args.format, verb="scanned", noun="log")
    return exit_code(findings)
