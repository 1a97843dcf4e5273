"""The memory guard's settings: the provisioner's config in a kernelspec, the wrapper's flags, the
command-line options of ``monitor install`` and ``kernel-wrapper``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.units import format_bytes, parse_size

__all__ = ["GuardConfig"]


@dataclass(frozen=True)
class GuardConfig:
    """The memory guard's settings, as the provisioner's config and the wrapper's flags carry them."""

    memory_limit: int | None = None  # bytes; None: the cgroup's limit, if any
    guard: bool = True
    interrupt_at: float = 0.90
    kill_at: float = 0.97

    def to_dict(self) -> dict[str, Any]:
        return {"memory_limit": self.memory_limit, "guard": self.guard, "interrupt_at": self.interrupt_at,
                "kill_at": self.kill_at}

    @classmethod
    def from_dict(cls, data: object) -> GuardConfig:
        """Leniently: a missing or odd value is the default."""
        d = data if isinstance(data, Mapping) else {}
        limit, guard = d.get("memory_limit"), d.get("guard")
        return cls(memory_limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
                   guard=guard if isinstance(guard, bool) else True,
                   interrupt_at=_number(d.get("interrupt_at"), cls.interrupt_at),
                   kill_at=_number(d.get("kill_at"), cls.kill_at))

    def flags(self) -> list[str]:
        """``kernel-wrapper``'s options for these settings."""
        out = [] if self.memory_limit is None else ["--memory-limit", str(self.memory_limit)]
        out += [] if self.guard else ["--no-guard"]
        return [*out, "--interrupt-at", repr(float(self.interrupt_at)), "--kill-at", repr(float(self.kill_at))]

    def describe(self) -> str:
        limit = "memory limit " + (format_bytes(self.memory_limit) if self.memory_limit is not None
                                   else "from the cgroup, if any")
        if not self.guard:
            return f"{limit}, guard off"
        return f"{limit}, guard on: interrupt at {_percent(self.interrupt_at)}, kill at {_percent(self.kill_at)}"

    @classmethod
    def from_options(cls, memory_limit: str | None, guard: bool, interrupt_at: float, kill_at: float) -> GuardConfig:
        """From the command line's ``--memory-limit``, ``--guard``, ``--interrupt-at``, ``--kill-at``, checked."""
        limit = None if memory_limit is None else parse_size(memory_limit, what="--memory-limit")
        if limit == 0:
            raise UsageError("--memory-limit must be more than 0")
        if not 0 < interrupt_at < kill_at <= 1:
            raise UsageError(f"--interrupt-at {interrupt_at:g} and --kill-at {kill_at:g}: expected "
                             "0 < interrupt-at < kill-at <= 1 (shares of the memory limit)")
        return cls(limit, bool(guard), float(interrupt_at), float(kill_at))


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _percent(share: float) -> str:
    return f"{share * 100:g} %"
