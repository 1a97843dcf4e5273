"""Runs INSIDE the Jupyter installation's Python (``where.run_python``): the facts the server-extension and
config probes need, gathered in one run.  Standard library plus jupyter_core, traitlets and jupyter_server
only (imported lazily, as that Python has them); it never imports nbmedic.  ``script(args)`` is the program
sent; it prints one JSON line:

* ``extensions``: each jupyter_server extension that is enabled, in the order jupyter_server merges its
  config (``ServerApp.jpserver_extensions`` from the traitlets config files ``jupyter_config`` and
  ``jupyter_server_config``, then the JSON files and ``jupyter_server_config.d/*.json`` of every config
  folder, lowest priority first, as ``ServerApp.find_server_extensions`` does), with the file that enables
  it and what failed: importing it, listing its extension points, a point's module, or its load function.
  The load functions are never called and no server starts.  With notebook_shim enabled, the
  ``NotebookApp.nbserver_extensions`` of ``jupyter_notebook_config.json`` / ``.d`` are added the way it
  adds them;
* ``files``: every ``jupyter_*config.py`` / ``.json`` / ``.d/*.json`` of the config folders: whether an
  installed application reads it, its load error (the traceback's last line and the line in the file; Python
  files are loaded with traitlets' ``PyFileConfigLoader``), its ``Class.trait`` settings and its
  ``NotebookApp.nbserver_extensions``;
* ``unknown``: settings naming a class or trait that does not exist among the configurable classes of the
  applications that read the file, with the closest name (``difflib``);
* ``renames``: the jupyter_server name of each ``NotebookApp`` trait met (``ServerApp.<trait>``, or the new
  home jupyter_server's own help text gives a deprecated ServerApp trait: ``IdentityProvider.token``);
* ``readers``: classic Notebook installed, something reading ``jupyter_notebook_config``, notebook_shim on.
"""

from __future__ import annotations

import contextlib
import difflib
import glob
import importlib
import importlib.util
import json
import os
import re
import sys
import traceback
import warnings
from typing import Any

__all__ = ["script"]

_SOURCE = os.path.abspath(__file__) if "__file__" in globals() else ""
_FAILURES = (Exception, SystemExit)
_LOADERS = ("_load_jupyter_server_extension", "load_jupyter_server_extension")  # jupyter_server's get_loader


def script(args: dict[str, Any]) -> str:
    """The program ``run_python`` sends: this module's source and a call with ``args``."""
    with open(_SOURCE, encoding="utf-8") as fh:
        source = fh.read()
    return f"{source}\n_main({json.dumps(json.dumps(args))})\n"


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _line_in(exc: BaseException, path: str) -> int | None:
    """The line of ``path`` where ``exc`` arose (a SyntaxError's line, else the innermost frame there)."""
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == path:
        return exc.lineno
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if os.path.abspath(frame.f_code.co_filename) == path:
            line = lineno
    return line


def _stem_app(name: str) -> str:
    """``jupyter_lab_config.py`` → ``lab``; ``jupyter_config.json`` → ``""``."""
    stem = name.rsplit(".", 1)[0]
    return stem[len("jupyter_"):-len("_config")] if stem != "jupyter_config" else ""


def _file_list(dirs: list[str]) -> list[dict[str, Any]]:
    """Every config file of ``dirs`` (highest priority first), lowest priority first."""
    out: list[dict[str, Any]] = []
    for folder in reversed(dirs):
        esc = glob.escape(folder)
        for path in sorted(glob.glob(os.path.join(esc, "jupyter_*config.py"))
                           + glob.glob(os.path.join(esc, "jupyter_*config.json"))):
            kind = "py" if path.endswith(".py") else "json"
            out.append({"path": path, "kind": kind, "app": _stem_app(os.path.basename(path)),
                        "folder": folder})
        for sub in sorted(glob.glob(os.path.join(esc, "jupyter_*config.d"))):
            app = _stem_app(os.path.basename(sub)[:-2] + ".json")
            for path in sorted(glob.glob(os.path.join(glob.escape(sub), "*.json"))):
                out.append({"path": path, "kind": "d", "app": app, "folder": folder})
    return out


def _load(entry: dict[str, Any]) -> Any:
    """The file's traitlets Config (None on failure, with ``error`` and ``line`` set in ``entry``)."""
    loader: Any = importlib.import_module("traitlets.config.loader")
    path = entry["path"]
    try:
        if entry["kind"] == "py":
            with contextlib.redirect_stdout(sys.stderr):
                py_loader = loader.PyFileConfigLoader(os.path.basename(path), path=os.path.dirname(path))
                return py_loader.load_config()
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if entry["kind"] == "d" and not text.strip():
            return loader.Config()  # jupyter_server skips empty files of a .d folder
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"the file holds a JSON {type(data).__name__}, not an object")
        return loader.Config(data)
    except json.JSONDecodeError as exc:
        entry["error"], entry["line"] = f"JSONDecodeError: {exc}", exc.lineno
    except _FAILURES as exc:
        entry["error"], entry["line"] = _last_line(exc), _line_in(exc, os.path.abspath(path))
    return None


def _sections(config: Any) -> dict[str, Any]:
    """The ``Class`` sections of a Config (what traitlets treats as class names)."""
    return {k: v for k, v in config.items() if k[:1].isupper() and isinstance(v, dict)}


def _dict_value(value: Any, current: dict[str, Any]) -> dict[str, Any]:
    """A Dict setting as traitlets would apply it over ``current`` (``c.X.d.update(...)`` is lazy)."""
    if hasattr(value, "get_value"):
        return dict(value.get_value(dict(current)))
    return dict(value) if isinstance(value, dict) else dict(current)


def _trait_extensions(files: list[dict[str, Any]]) -> dict[str, tuple[bool, str]]:
    """``ServerApp.jpserver_extensions`` as the traitlets config of ServerApp sets it: ``jupyter_config``
    files, then ``jupyter_server_config`` files, each lowest priority first (``Config.merge``: a plain dict
    replaces the value, ``c.ServerApp.jpserver_extensions.update(...)`` updates it)."""
    found: dict[str, tuple[bool, str]] = {}
    for app in ("", "server"):
        for entry in files:
            config = entry.get("config")
            if entry["app"] != app or entry["kind"] == "d" or config is None:
                continue
            value = _sections(config).get("ServerApp", {}).get("jpserver_extensions")
            if isinstance(value, dict):
                found = {str(k): (bool(v), entry["path"]) for k, v in value.items()}
            elif hasattr(value, "get_value"):
                before = {k: v for k, (v, _) in found.items()}
                after = _dict_value(value, before)
                found = {str(k): (bool(v), found[k][1] if k in found and before[k] == bool(v)
                                  else entry["path"]) for k, v in after.items()}
    return found


def _json_extensions(files: list[dict[str, Any]], app: str, section: str,
                     key: str) -> dict[str, tuple[bool, str]]:
    """``section.key`` merged the way jupyter_server's ConfigManager does: per folder (lowest priority
    first) its ``.d/*.json`` then its ``.json``; None removes."""
    found: dict[str, tuple[bool, str]] = {}
    for entry in files:
        config = entry.get("config")
        if entry["app"] != app or entry["kind"] == "py" or config is None:
            continue
        value = _sections(config).get(section, {}).get(key)
        if not isinstance(value, dict):
            continue
        for name, enabled in value.items():
            if enabled is None:
                found.pop(name, None)
            else:
                found[name] = (bool(enabled), entry["path"])
    return found


def _ordered(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Within a folder, ConfigManager reads ``.d/*.json`` before the ``.json`` (which wins)."""
    rank = {"d": 0, "json": 1, "py": 1}
    folders: list[str] = []
    for entry in files:
        if entry["folder"] not in folders:
            folders.append(entry["folder"])
    return sorted(files, key=lambda e: (folders.index(e["folder"]), rank[e["kind"]]))


def _check_extension(name: str) -> tuple[list[dict[str, str]], list[Any]]:
    """What fails for one extension (module, stage, error), and the ExtensionApp classes it declares."""
    try:
        module = importlib.import_module(name)
    except _FAILURES as exc:
        return [{"module": name, "stage": "import", "error": _last_line(exc)}], []
    try:
        if hasattr(module, "_jupyter_server_extension_points"):
            points = list(module._jupyter_server_extension_points())
        elif hasattr(module, "_jupyter_server_extension_paths"):
            points = list(module._jupyter_server_extension_paths())
        else:
            points = [{"module": name}]
    except _FAILURES as exc:
        return [{"module": name, "stage": "points", "error": _last_line(exc)}], []
    failures: list[dict[str, str]] = []
    apps: list[Any] = []
    for point in points:
        if not isinstance(point, dict) or not isinstance(point.get("module"), str):
            failures.append({"module": name, "stage": "points",
                             "error": f"an extension point has no 'module' key: {point!r}"[:300]})
            continue
        try:
            sub = importlib.import_module(point["module"])
        except _FAILURES as exc:
            failures.append({"module": point["module"], "stage": "import", "error": _last_line(exc)})
            continue
        owner = point.get("app") or sub
        if not any(hasattr(owner, f) for f in _LOADERS):
            what = getattr(owner, "__name__", point["module"])
            failures.append({"module": point["module"], "stage": "load-function",
                             "error": f"{what} has no _load_jupyter_server_extension function"})
        elif point.get("app") is not None:
            apps.append(point["app"])
    return failures, apps


def _enabled(files: list[dict[str, Any]]) -> dict[str, tuple[bool, str]]:
    """The jpserver_extensions jupyter_server ends up with (ServerApp.find_server_extensions)."""
    enabled = _trait_extensions(files)
    for name, value in sorted(_json_extensions(_ordered(files), "server", "ServerApp",
                                               "jpserver_extensions").items()):
        enabled.setdefault(name, value)
    return enabled


def _extensions(files: list[dict[str, Any]], readers: dict[str, bool],
                enabled: dict[str, tuple[bool, str]]) -> tuple[list[dict[str, Any]], list[Any]]:
    out: list[dict[str, Any]] = []
    apps: list[Any] = []
    for name, (on, source) in sorted(enabled.items()):
        if on:
            failures, found = _check_extension(name)
            out.append({"name": name, "config_file": source, "via": "jpserver_extensions",
                        "failures": failures})
            apps.extend(found)
    shim = next((e for e in out if e["name"] == "notebook_shim"), None)
    readers["notebook_shim"] = shim is not None and not shim["failures"]
    if readers["notebook_shim"]:  # it adds the nbserver_extensions of the JSON notebook config
        legacy = _json_extensions(_ordered(files), "notebook", "NotebookApp", "nbserver_extensions")
        for name, (on, source) in sorted(legacy.items()):
            if on and name not in enabled:
                failures, found = _check_extension(name)
                out.append({"name": name, "config_file": source, "via": "nbserver_extensions",
                            "failures": failures})
                apps.extend(found)
    return out, apps


def _configurables(roots: list[Any]) -> dict[str, set[str]]:
    """Class name → its config traits and those of its known subclasses (conservative: a setting on a
    parent class configures the subclasses too)."""
    configurable: Any = importlib.import_module("traitlets.config.configurable").Configurable
    classes: dict[str, Any] = {}
    for root in roots:
        for cls in [root, *getattr(root, "classes", [])]:
            for parent in getattr(cls, "__mro__", ()):
                if isinstance(parent, type) and issubclass(parent, configurable):
                    classes.setdefault(parent.__name__, parent)
    table: dict[str, set[str]] = {name: set(cls.class_traits(config=True)) for name, cls in classes.items()}
    known: Any
    for known in classes.values():
        for base in known.__mro__[1:]:
            base_name = str(base.__name__)
            if classes.get(base_name) is base:
                table[base_name] |= table[known.__name__]
    return table


def _entry_app(app: str) -> Any:
    """The Application class of the ``jupyter-APP`` command of this Python (None when there is none)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts"):
        if ep.name.replace("-", "_") == f"jupyter_{app}":
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    target = ep.load()
            except _FAILURES:
                return None
            owner = getattr(target, "__self__", None)
            return owner if isinstance(owner, type) and hasattr(owner, "class_traits") else None
    return None


def _unknown(entry: dict[str, Any], table: dict[str, set[str]]) -> list[dict[str, str]]:
    """Settings of one file naming a class or trait that does not exist in ``table``."""
    out: list[dict[str, str]] = []
    for cls, section in entry["settings"].items():
        if cls == "NotebookApp":
            continue  # the classic Notebook's: EN251's business
        for trait in section:
            if cls in table:
                if trait in table[cls]:
                    continue
                near = difflib.get_close_matches(trait, sorted(table[cls]), n=1, cutoff=0.6)
                out.append({"config_file": entry["path"], "setting": f"{cls}.{trait}",
                            "suggestion": f"{cls}.{near[0]}" if near else ""})
                continue
            near = difflib.get_close_matches(cls, sorted(table), n=1, cutoff=0.85)
            if near:  # a class merely not installed here is not a typo: only names close to a known one
                inner = difflib.get_close_matches(trait, sorted(table[near[0]]), n=1, cutoff=0.6)
                out.append({"config_file": entry["path"], "setting": f"{cls}.{trait}",
                            "suggestion": f"{near[0]}.{inner[0] if inner else trait}"})
    return out


def _renames(files: list[dict[str, Any]], server_app: Any) -> dict[str, str]:
    """jupyter_server's name for each NotebookApp trait the files set ("" when it has none)."""
    traits = server_app.class_traits(config=True)
    out: dict[str, str] = {}
    for entry in files:
        for trait in entry["settings"].get("NotebookApp", []):
            if trait == "nbserver_extensions":
                out[trait] = "ServerApp.jpserver_extensions"
            elif trait not in traits:
                out[trait] = ""
            else:
                # jupyter_server's own table: a deprecated ServerApp trait's help names its new home
                help_text = " ".join((traits[trait].help or "").split())
                moved = re.search(r"(?:DEPRECATED|deprecated)[^.]*\..*?\b[Uu]se ([A-Za-z_]\w*(?:\.\w+)?)",
                                  help_text)
                new = moved.group(1) if moved else trait
                out[trait] = new if "." in new else f"ServerApp.{new}"
    return out


def _readers(subcommands: set[str]) -> dict[str, bool]:
    spec = importlib.util.find_spec("notebook")
    classic = bool(spec and spec.origin and os.path.exists(os.path.join(os.path.dirname(spec.origin),
                                                                        "notebookapp.py")))
    return {"classic_notebook": classic, "notebook_reader": classic or "notebook" in subcommands}


def _settings(config: Any) -> tuple[dict[str, list[str]], dict[str, bool]]:
    """A file's ``Class.trait`` settings, and its ``NotebookApp.nbserver_extensions``."""
    if config is None:
        return {}, {}
    sections = _sections(config)
    settings = {k: sorted(str(t) for t in v if str(t)[:1].islower() or str(t)[:1] == "_")
                for k, v in sections.items()}
    legacy = sections.get("NotebookApp", {}).get("nbserver_extensions")
    return settings, ({str(k): bool(v) for k, v in legacy.items() if v is not None}
                      if isinstance(legacy, dict) else {})


def _gather(args: dict[str, Any]) -> dict[str, Any]:
    paths: Any = importlib.import_module("jupyter_core.paths")
    command: Any = importlib.import_module("jupyter_core.command")
    server_app: Any = importlib.import_module("jupyter_server.serverapp").ServerApp
    dirs = list(args.get("config_path") or paths.jupyter_config_path())
    if paths.jupyter_config_dir() not in dirs:
        dirs.insert(0, paths.jupyter_config_dir())  # as JupyterApp.config_file_paths does
    subcommands = {s.replace("-", "_") for s in command.list_subcommands()}
    files = _file_list(dirs)
    for entry in files:  # the server's own files (and every JSON file) first: they enable the extensions
        entry["error"], entry["line"], entry["config"] = None, None, None
        if entry["kind"] != "py" or entry["app"] in ("", "server"):
            entry["config"] = _load(entry)
    readers = _readers(subcommands)
    enabled = _enabled(files)
    extensions, apps = _extensions(files, readers, enabled)
    app_names = {str(getattr(a, "name", "")).replace("-", "_") for a in apps}
    readers["notebook_reader"] = readers["notebook_reader"] or "notebook" in app_names
    for entry in files:  # then the Python files of the other applications installed here
        entry["loaded"] = _reads(entry["app"], subcommands | app_names) or (
            entry["app"] == "notebook" and entry["kind"] != "py" and readers["notebook_shim"])
        wanted = entry["loaded"] or entry["app"] == "notebook"  # its NotebookApp settings matter even unread
        if entry["kind"] == "py" and entry["app"] not in ("", "server") and wanted:
            entry["config"] = _load(entry)
    unknown = _all_unknown(files, _configurables([server_app, *apps]), app_names)
    for entry in files:
        entry["settings"], entry["nbserver_extensions"] = _settings(entry.pop("config"))
    return {"python": sys.executable, "error": None, "dirs": dirs, "extensions": extensions, "files": files,
            "jpserver_extensions": {k: v for k, (v, _) in enabled.items()},
            "unknown": unknown, "renames": _renames(files, server_app), "readers": readers}


def _all_unknown(files: list[dict[str, Any]], server_table: dict[str, set[str]],
                 app_names: set[str]) -> list[dict[str, str]]:
    """EN257's facts over every loaded top-level file, each against the classes of the applications that
    read it (the server and its extensions share one config; another application, by its command)."""
    unknown: list[dict[str, str]] = []
    for entry in files:
        config = entry.get("config")
        if entry["kind"] == "d" or config is None or not entry["loaded"]:
            continue
        settings, _ = _settings(config)
        checked = {**entry, "settings": settings}
        if entry["app"] in ("", "server") or entry["app"] in app_names:
            unknown.extend(_unknown(checked, server_table))
        else:
            app = _entry_app(entry["app"])
            if app is not None:
                unknown.extend(_unknown(checked, _configurables([app])))
    return unknown


def _reads(app: str, names: set[str]) -> bool:
    """Whether an installed application reads ``jupyter_{app}_config``."""
    return app in ("", "server") or app in names


def _main(raw: str) -> None:
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # a `jupyter` command does not import from the current folder
    warnings.simplefilter("ignore")
    # jsonschema imports rfc3987_syntax for its "iri" format checker when it is installed (jupyter_events
    # brings jsonschema into every jupyter_server), and that module builds a grammar at import: 1.4 s of
    # this run's 3.5 s, measured, for a check these probes never make.  Without it jsonschema simply does
    # not check that format; nothing else changes, and only in this probe's own process.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    real_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = _gather(json.loads(raw))
    except ImportError as exc:
        result = {"python": sys.executable, "error": _last_line(exc)}
    real_stdout.write(json.dumps(result, default=str) + "\n")
    real_stdout.flush()
