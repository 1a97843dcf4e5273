"""JupyterLab extensions of the installation ``nbmedic server`` examines: EN252-EN255.

* EN252: a prebuilt (federated) extension whose ``package.json`` requires ``@jupyterlab/*`` versions the
  installed JupyterLab does not ship.  The ranges (npm syntax, ``semantic_version.NpmSpec``) are matched
  against the exact versions of JupyterLab's own packages (the ``resolutions`` of its
  ``staging/package.json``, the file JupyterLab's ``labextension list`` checks compatibility against),
  else ``@jupyterlab/application`` against the JupyterLab version.  Prereleases count as their release,
  as JupyterLab counts them.
* EN253: one extension name in two ``labextensions`` folders; the first folder of the data path loads.
* EN254: an installed extension disabled in ``page_config.json`` (the ``labconfig`` folders of the config
  path and the application's ``settings`` folder, merged as jupyterlab_server merges them).
* EN255: JupyterLab's own ``build_check`` in the installation's Python, asked only when the application
  folder has something a build takes in (source extension tarballs, linked or local packages, core
  extensions uninstalled, a build of another version): importing ``jupyterlab.commands`` takes seconds.

Nothing is reported when the installation's Python has no JupyterLab.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from glob import glob
from typing import TYPE_CHECKING, Any

from nbmedic.envs.server.where import JupyterSetup, ProbeError, ask_early, run_python
from nbmedic.findings import Finding, make
from nbmedic.notebook.io import read_json_object

if TYPE_CHECKING:
    from nbmedic.envs.server.context import ServerContext

__all__ = ["begin", "findings"]

# The installed JupyterLab: its version, package folder and application folder (as
# ``jupyterlab.commands.get_app_dir`` finds it, without importing jupyterlab).
_ASK_LAB = """\
import json, os, site, sys
from importlib import metadata, util
try:
    version = metadata.version("jupyterlab")
    spec = util.find_spec("jupyterlab")
except (metadata.PackageNotFoundError, ImportError, ValueError):
    print(json.dumps({"version": None})); raise SystemExit(0)
here = list(spec.submodule_search_locations or [""])[0] if spec else ""
if os.environ.get("JUPYTERLAB_DIR"):
    app = os.path.realpath(os.environ["JUPYTERLAB_DIR"])
else:
    app = os.path.join(sys.prefix, "share", "jupyter", "lab")
    user = site.getuserbase() if hasattr(site, "getuserbase") else None
    up = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here)))),
                      "share", "jupyter", "lab")
    if user and here.startswith(user) and not app.startswith(user):
        app = os.path.join(user, "share", "jupyter", "lab")
    elif sys.prefix.startswith("/usr") and not os.path.exists(app) and os.path.exists("/usr/local/share/jupyter/lab"):
        app = "/usr/local/share/jupyter/lab"
    elif not os.path.exists(app) and os.path.exists(up):
        app = up
print(json.dumps({"version": version, "package": here, "app_dir": app}))
"""

# JupyterLab's own verdict on its build.  build_check() first asks for nodejs; without it the same check
# runs through the handler it would use.
_BUILD_CHECK = """\
import json, logging
logging.disable(logging.CRITICAL)
from jupyterlab import commands
try:
    messages = commands.build_check()
except ValueError:
    messages = commands._AppHandler(commands.AppOptions()).build_check()
print(json.dumps([str(m) for m in messages]))
"""

_BUILD_KEYS = ("local_extensions", "linked_packages", "uninstalled_core_extensions")
_RELEASE = re.compile(r"^[v=~^\s]*(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class _Lab:
    version: str  # the jupyterlab distribution's version
    package: str  # its package folder
    app_dir: str
    core: dict[str, Any]  # its staging/package.json (empty when unreadable)

    def shipped(self) -> dict[str, str]:
        """The release each @jupyterlab/* package has in this JupyterLab ("~4.6.6" → "4.6.6")."""
        out = {}
        for name, spec in (self.core.get("resolutions") or {}).items():
            found = _RELEASE.match(str(spec)) if name.startswith("@jupyterlab/") else None
            if found:
                out[name] = ".".join(found.groups())
        return out


@dataclass
class _Extension:
    name: str
    version: str
    folder: str  # the extension's folder (holds package.json)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def package_json(self) -> str:
        return os.path.join(self.folder, "package.json")

    def requirements(self) -> dict[str, str]:
        """Its @jupyterlab/* ranges (dependencies, then peerDependencies)."""
        out: dict[str, str] = {}
        for key in ("dependencies", "peerDependencies"):
            deps = self.data.get(key)
            if isinstance(deps, dict):
                out.update({k: str(v) for k, v in deps.items() if k.startswith("@jupyterlab/") and k not in out})
        return out

    def pip_package(self) -> str | None:
        install = _read_json(os.path.join(self.folder, "install.json"))
        name = install.get("packageName") if install.get("packageManager") == "python" else None
        return name if isinstance(name, str) and name else None


def _read_json(path: str) -> dict[str, Any]:
    return read_json_object(path) or {}


def begin(setup: JupyterSetup) -> bool:
    """Ask the installation's Python about its JupyterLab now (``where.ask_early``); whether it started."""
    return setup.python_exists and setup.error is None and ask_early(setup.python, _ASK_LAB)


def _ask_lab(python: str) -> _Lab | None:
    try:
        found = run_python(python, _ASK_LAB)
    except ProbeError:
        return None
    if not isinstance(found, dict) or not found.get("version"):
        return None
    package = str(found.get("package") or "")
    core = _read_json(os.path.join(package, "staging", "package.json")) if package else {}
    return _Lab(str(found["version"]), package, str(found.get("app_dir") or ""), core)


def _federated(data_path: Iterable[str]) -> dict[str, list[_Extension]]:
    """Every prebuilt extension, by name; each name's copies in load order (the first one loads)."""
    out: dict[str, list[_Extension]] = {}
    seen: set[str] = set()
    for folder in data_path:
        root = os.path.join(folder, "labextensions")
        real = os.path.realpath(root)
        if real in seen or not os.path.isdir(root):
            continue
        seen.add(real)
        pkgs = sorted(glob(os.path.join(root, "[!@]*", "package.json")))
        pkgs += sorted(glob(os.path.join(root, "@*", "*", "package.json")))
        for pkg in pkgs:
            data = _read_json(pkg)
            name = data.get("name")
            if isinstance(name, str) and name:
                out.setdefault(name, []).append(_Extension(name, str(data.get("version", "")),
                                                           os.path.dirname(pkg), data))
    return out


def _excluded(ext: _Extension, lab: _Lab) -> list[tuple[str, str, str]]:
    """The requirements of ``ext`` this JupyterLab does not meet: (package, range, the version it ships)."""
    import semantic_version

    shipped = lab.shipped()
    if not shipped:  # no list of JupyterLab's packages: its application package has its version
        release = _RELEASE.match(lab.version)
        shipped = {"@jupyterlab/application": ".".join(release.groups())} if release else {}
    out = []
    for package, spec in ext.requirements().items():
        if package not in shipped:
            continue
        try:
            ok = semantic_version.NpmSpec(spec).match(semantic_version.Version(shipped[package]))
        except ValueError:  # not a range (workspace:, file:, a tag): npm's business, not ours
            continue
        if not ok:
            out.append((package, spec, shipped[package]))
    return out


def _incompatible(installed: dict[str, list[_Extension]], lab: _Lab) -> Iterator[Finding]:
    for name, copies in installed.items():
        ext = copies[0]  # the copy that loads
        bad = _excluded(ext, lab)
        if not bad:
            continue
        requires = ", ".join(f"{package} {spec}" for package, spec, _ in bad)
        ships = ", ".join(f"{package} {version}" for package, _, version in bad)
        pip = ext.pip_package()
        yield make("EN252", ext.package_json,
                   f"JupyterLab extension {name} {ext.version} requires {requires}; JupyterLab {lab.version} "
                   f"has {ships}",
                   evidence={"extension": name, "requires": requires, "jupyterlab": lab.version,
                             "package_json": ext.package_json},
                   fix=(f"install the extension's release for JupyterLab {lab.version} (`pip install -U "
                        f"{pip}`), or remove it") if pip else None)


def _duplicates(installed: dict[str, list[_Extension]]) -> Iterator[Finding]:
    for name, copies in installed.items():
        if len(copies) < 2:
            continue
        used = copies[0]
        others = ", ".join(f"{c.version or '?'} in {os.path.dirname(c.folder)}" for c in copies[1:])
        yield make("EN253", used.package_json,
                   f"JupyterLab extension {name} is installed {len(copies)} times: Jupyter loads "
                   f"{used.version or 'the copy'} from {used.folder}, not {others}",
                   evidence={"extension": name, "locations": [c.folder for c in copies], "used": used.folder})


def _page_configs(config_path: Iterable[str], app_dir: str) -> list[str]:
    """The page_config files jupyterlab_server reads, lowest priority first."""
    files = [os.path.join(app_dir, "settings", "page_config.json")] if app_dir else []
    for folder in reversed(list(config_path)):
        lab = os.path.join(folder, "labconfig")
        files += sorted(glob(os.path.join(lab, "page_config.d", "*.json")))
        files.append(os.path.join(lab, "page_config.json"))
    return files


def _disabled_names(files: Iterable[str]) -> dict[str, str]:
    """Each name disabled in the merged page config → the file whose setting wins."""
    state: dict[str, tuple[bool, str]] = {}
    for path in files:
        value = _read_json(path).get("disabledExtensions")
        if isinstance(value, list):  # the older form: a list of names
            value = {str(v): True for v in value}
        if not isinstance(value, dict):
            continue
        for name, on in value.items():
            if on is None:
                state.pop(name, None)
            else:
                state[name] = (bool(on), path)
    return {name: path for name, (on, path) in state.items() if on}


def _built(app_dir: str) -> set[str]:
    """The extensions built into the application (core and source extensions)."""
    jlab = _read_json(os.path.join(app_dir, "static", "package.json")).get("jupyterlab") or {}
    out: set[str] = set()
    for key in ("extensions", "mimeExtensions"):
        if isinstance(jlab.get(key), dict):
            out.update(jlab[key])
    return out


def _disabled(ctx: ServerContext, installed: dict[str, list[_Extension]], lab: _Lab) -> Iterator[Finding]:
    names = set(installed) | (_built(lab.app_dir) if lab.app_dir else set())
    for name, page_config in sorted(_disabled_names(_page_configs(ctx.setup.config_path, lab.app_dir)).items()):
        if name in names:
            yield make("EN254", page_config, f"JupyterLab extension {name} is installed but disabled",
                       evidence={"extension": name, "page_config": page_config},
                       fix=f"`jupyter labextension enable {name}` if you expect it")


def _needs_build_check(lab: _Lab) -> bool:
    """Whether the application folder has anything a build takes in (else build_check has nothing to say)."""
    app = lab.app_dir
    if not app or not os.path.isdir(app):
        return False
    if glob(os.path.join(app, "extensions", "*.tgz")):
        return True
    build_config = _read_json(os.path.join(app, "settings", "build_config.json"))
    if any(build_config.get(key) for key in _BUILD_KEYS):
        return True
    static = _read_json(os.path.join(app, "static", "package.json"))
    built = (static.get("jupyterlab") or {}).get("version") if static else None
    current = (lab.core.get("jupyterlab") or {}).get("version")
    return bool(built and current and built != current and not str(built).endswith("-spliced"))


def _rebuild(python: str, lab: _Lab) -> Iterator[Finding]:
    if not _needs_build_check(lab):
        return
    try:
        messages = run_python(python, _BUILD_CHECK, timeout=120.0)
    except ProbeError:  # JupyterLab could not tell (a broken tarball, a broken installation)
        return
    if isinstance(messages, list) and messages:
        lines = [str(m) for m in messages]
        yield make("EN255", lab.app_dir, f"JupyterLab needs a rebuild: {'; '.join(lines)}",
                   evidence={"messages": lines})


def findings(ctx: ServerContext) -> list[Finding]:
    setup = ctx.setup
    if setup.error or not setup.python_exists:
        return []
    lab = _ask_lab(setup.python)
    if lab is None:
        return []
    installed = _federated(setup.data_path)
    return [*_incompatible(installed, lab), *_duplicates(installed), *_disabled(ctx, installed, lab),
            *_rebuild(setup.python, lab)]
