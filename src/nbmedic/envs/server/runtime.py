"""(being written) the runtime probe of `nbmedic server`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbmedic.findings import Finding

if TYPE_CHECKING:
    from nbmedic.envs.server.context import ServerContext


def findings(ctx: ServerContext) -> list[Finding]:
    return []
