"""Waiting for the answer to one request: its reply on shell, and the kernel back to idle on iopub.

One loop serves every wait of a run (a cell's execution, the wait after an interrupt).  It feeds the
request's iopub messages to the cell's ``OutputCollector``, watches the kernel process and the deadlines,
and says how the wait ended (``Waited``); what that means for the run is the caller's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nbmedic.execute.kernel import Kernel
from nbmedic.execute.outputs import OutputCollector

__all__ = ["IDLE_GRACE", "POLL", "Deadline", "Ending", "Waited", "Watch", "wait_reply"]

POLL = 0.05  # seconds between checks of the kernel process and the deadlines
IDLE_GRACE = 5.0  # seconds the kernel gets to report idle after its reply

Ending = Literal["done", "died", "deadline", "stdin"]
Watch = Callable[[float, float], None]  # (now, time of the latest output), called while no reply came


@dataclass(frozen=True)
class Deadline:
    name: str  # "cell", "run", "grace": said back in ``Waited.deadline``
    at: float  # time.monotonic()


@dataclass(frozen=True)
class Waited:
    """How a wait ended: ``done`` (replied, and idle or ``IDLE_GRACE`` passed), the kernel ``died``, a
    ``deadline`` passed, or the kernel asked for input on ``stdin``."""

    ending: Ending
    reply: dict[str, Any] | None  # the reply's content, when it came
    at: float  # time.monotonic() when the wait ended
    deadline: str | None = None  # the name of the deadline that passed
    request: dict[str, Any] | None = None  # the input_request's content


@dataclass
class _Exchange:
    msg_id: str
    last_output: float
    reply: dict[str, Any] | None = None
    reply_at: float = 0.0
    idle: bool = False
    input_request: dict[str, Any] | None = None


def _take(exchange: _Exchange, messages: list[tuple[str, dict[str, Any]]], collector: OutputCollector,
          stdin: bool) -> None:
    for channel, msg in messages:
        msg_type = msg.get("msg_type") or msg["header"]["msg_type"]
        if channel == "stdin" and msg_type == "input_request":
            # one cell runs at a time, so any input request is this cell's: ipykernel does not always
            # parent it to the execute request, and missing it would hang the run
            if stdin:
                exchange.input_request = msg["content"]
            continue
        if (msg.get("parent_header") or {}).get("msg_id") != exchange.msg_id:
            continue
        if channel == "iopub":
            if msg_type == "status":
                exchange.idle = exchange.idle or msg["content"].get("execution_state") == "idle"
            elif collector.handle(msg_type, msg["content"]):
                exchange.last_output = time.monotonic()
        elif channel == "shell" and msg_type.endswith("_reply"):
            exchange.reply, exchange.reply_at = msg["content"], time.monotonic()


def wait_reply(kernel: Kernel, msg_id: str, collector: OutputCollector, deadlines: Sequence[Deadline] = (), *,
               stdin: bool = True, watch: Watch | None = None) -> Waited:
    """Receive until the request ``msg_id`` is answered, the kernel dies, a deadline passes or (with
    ``stdin``) the kernel asks for input.  ``watch`` is called every turn while no reply has come."""
    exchange = _Exchange(msg_id, last_output=time.monotonic())
    while not (exchange.reply is not None and exchange.idle):
        now = time.monotonic()
        if kernel.returncode() is not None:
            return Waited("died", exchange.reply, now)
        if exchange.reply is not None and now - exchange.reply_at > IDLE_GRACE:
            break  # the reply came but iopub's idle did not: do not wait forever
        passed = next((d for d in deadlines if now >= d.at), None)
        if passed is not None:
            return Waited("deadline", exchange.reply, now, deadline=passed.name)
        if watch is not None and exchange.reply is None:
            watch(now, exchange.last_output)
        wait = min([POLL, *(max(0.0, d.at - now) for d in deadlines)])
        _take(exchange, kernel.receive(wait), collector, stdin)
        if exchange.input_request is not None:
            return Waited("stdin", exchange.reply, time.monotonic(), request=exchange.input_request)
    return Waited("done", exchange.reply, time.monotonic())
