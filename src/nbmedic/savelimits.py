"""The request sizes that stop a notebook from being saved: Jupyter's own, the reverse proxy's, the browser's.

Saving in JupyterLab or Notebook is one HTTP ``PUT /api/contents/PATH`` whose body holds the whole notebook
as JSON, so the file size is (within a few percent) the request size.  Each hop has a limit: the Jupyter
server's (``ServerApp.max_body_size``, 512 MiB), a reverse proxy in front of it (nginx's
``client_max_body_size`` is 1 MiB unless raised, and so is the ingress-nginx controller's ``proxy-body-size``
that most Kubernetes JupyterHubs sit behind), and before any of them the browser, which slows to a crawl
rendering outputs of tens of megabytes.  ``[tool.nbmedic]`` names the team's deployment (``deployment =
"ingress-nginx"``) or its limit (``save_limit = "8 MiB"``); ``max_size`` is the project's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbmedic.errors import UsageError
from nbmedic.units import MiB

if TYPE_CHECKING:
    from nbmedic.config import Config

__all__ = ["BROWSER", "DEPLOYMENTS", "JUPYTER_SERVER", "MAX_SIZE", "SaveLimit", "deployment_name", "save_limits",
           "smallest"]


@dataclass(frozen=True)
class SaveLimit:
    name: str  # "nginx client_max_body_size"
    bytes: int
    effect: str  # what the user sees when a save goes over it

    def as_evidence(self) -> dict[str, object]:
        return {"name": self.name, "bytes": self.bytes, "effect": self.effect}


JUPYTER_SERVER = SaveLimit("Jupyter server max_body_size", 512 * MiB,
                           "the server rejects the save request (raise ServerApp.max_body_size)")
BROWSER = SaveLimit("browser", 50 * MiB, "JupyterLab takes seconds to open, scroll or save the notebook, "
                    "or the tab runs out of memory")
MAX_SIZE = "max_size ([tool.nbmedic])"  # the name of the project's own limit among them
_NGINX = "413 Request Entity Too Large; the save fails with an error in JupyterLab"

DEPLOYMENTS: dict[str, tuple[SaveLimit, ...]] = {
    "jupyter-server": (),  # Jupyter alone: its own limit, always included
    "nginx": (SaveLimit("nginx client_max_body_size", 1 * MiB, _NGINX),),
    "ingress-nginx": (SaveLimit("ingress-nginx proxy-body-size", 1 * MiB, _NGINX),),
    "cloudflare": (SaveLimit("Cloudflare request body limit", 100 * MiB, "413 from Cloudflare's edge"),),
}


def deployment_name(value: object, *, what: str) -> str:
    """A known deployment's name, or a one-line UsageError naming the known ones."""
    if isinstance(value, str) and value.strip().lower() in DEPLOYMENTS:
        return value.strip().lower()
    raise UsageError(f"{what}: expected one of {', '.join(sorted(DEPLOYMENTS))}, got {value!r}")


def save_limits(config: Config) -> list[SaveLimit]:
    """Every limit that applies to a notebook under ``config``, smallest first."""
    out = [JUPYTER_SERVER, BROWSER, SaveLimit(MAX_SIZE, config.max_size,
                                              "nbmedic's own limit for the project (NB020)")]
    if config.deployment:
        out.extend(DEPLOYMENTS[config.deployment])
    if config.save_limit is not None:
        out.append(SaveLimit("save_limit ([tool.nbmedic])", config.save_limit,
                             "the deployment rejects the save request"))
    return sorted(out, key=lambda limit: limit.bytes)


def smallest(config: Config) -> SaveLimit:
    """The limit a notebook must stay under (slim's default target)."""
    return save_limits(config)[0]
