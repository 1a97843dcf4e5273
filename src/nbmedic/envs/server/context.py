"""What every probe of ``nbmedic server`` gets: the installation and the --fix settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from nbmedic.envs.server.where import JupyterSetup

__all__ = ["ServerContext"]


def _never(_question: str) -> bool:
    return False


@dataclass
class ServerContext:
    setup: JupyterSetup
    fix: bool = False  # --fix: stale runtime files are removed; anything else only after ``confirm``
    confirm: Callable[[str], bool] = _never  # asks the user a yes/no question (``--yes``: always yes)
    fixed: list[str] = field(default_factory=list)  # what --fix changed, one line each

    def change(self, what: str, action: Callable[[], None], done: str) -> bool:
        """With --fix and the user's yes to ``what?``: ``action``, recorded in ``fixed`` as ``done`` (or as
        why ``what`` could not be done); whether it was done."""
        if not self.fix or not self.confirm(f"{what}?"):
            return False
        try:
            action()
        except OSError as exc:
            self.fixed.append(f"could not {what}: {exc.strerror or exc}")
            return False
        self.fixed.append(done)
        return True
