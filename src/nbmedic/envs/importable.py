"""Which top-level modules a kernel's Python can import: asked of that Python once, remembered on disk.

One probe runs ``PYTHON [flags] -c SCRIPT`` in the kernel's environment.  It answers the names asked
with ``importlib.util.find_spec`` and also lists every top-level name the interpreter offers (built-in,
frozen and already-imported modules, the entries of every ``sys.path`` folder, editable-install finders),
so later questions about the same interpreter need no subprocess.  The listing is *exact* when only the
standard finders are at work; otherwise a name it lacks is asked again.  The working folder is left out
of ``sys.path`` (NB041 looks at the notebook's folder itself), so the answers hold for every folder.

Before reading a folder the probe records its mtime ("stamps": the interpreter, ``pyvenv.cfg``, every
``sys.path`` entry, every site folder with its ``.pth`` and ``*customize.py`` files).  The index is stored
in ``<cache dir>/imports/<key>.json``, keyed by the interpreter's path, its flags and the ``PYTHON*``
variables of the kernel's environment; a later command re-stats the stamps (a dozen ``stat`` calls) and
reuses the index only if none changed — installing or removing a package changes its site folder's
mtime.  An index whose stamps are younger than ``RACY_NS`` is kept in memory only (a change within the
same clock tick would not move the mtime).  ``NBMEDIC_CACHE_DIR`` moves the cache; set to an empty value,
it turns the disk cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbmedic.cache import cache_dir
from nbmedic.notebook.io import atomic_write_bytes

__all__ = ["CACHE_VERSION", "ImportIndex", "ImportProber", "cache_dir"]

CACHE_VERSION = 1
PROBE_TIMEOUT = 60.0
RACY_NS = 100_000_000  # stamps this close to the probe's start are not trusted on disk (coarse clocks)
COARSE_RACY_NS = 2_000_000_000  # whole-second (or FAT's 2 s) timestamps
MAX_CACHE_FILES = 256
# variables that change what an interpreter imports (sys.path, the user site, the start-up files)
_ENV_PREFIXES = ("PYTHON",)
_ENV_NAMES = ("HOME", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "__PYVENV_LAUNCHER__")

_PROBE_SCRIPT = r"""
import importlib.machinery as M, importlib.util, json, os, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]  # `-c` puts the working folder first; the notebook's folder is looked at apart
names = json.loads(sys.stdin.read() or "[]")
stamps = {}
def stamp(path):
    if path and path not in stamps:
        try:
            stamps[path] = os.stat(path).st_mtime_ns
        except OSError:
            stamps[path] = None
stamp(sys.executable)
stamp(os.path.realpath(sys.executable))
stamp(os.path.join(sys.prefix, "pyvenv.cfg"))
try:
    import site
    sites = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        sites.append(site.getusersitepackages())
except Exception:
    sites = []
for folder in sites:
    stamp(folder)
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(".pth") or e.name in ("sitecustomize.py", "usercustomize.py"):
                    stamp(e.path)
    except OSError:
        pass
listing = set(sys.builtin_module_names)
listing.update(n for n in list(sys.modules) if "." not in n)
try:
    import _imp
    listing.update(n for n in _imp._frozen_module_names() if "." not in n)
except Exception:
    pass
exact = True
standard = (M.BuiltinImporter, M.FrozenImporter, M.PathFinder)
for finder in sys.meta_path:
    if finder in standard or isinstance(finder, standard):
        continue
    where = getattr(finder, "__module__", "") or ""
    module = sys.modules.get(where)
    mapping = getattr(module, "MAPPING", None) or getattr(finder, "_redirections", None)
    if isinstance(mapping, dict):  # setuptools' and editables' editable installs
        listing.update(str(k).partition(".")[0] for k in mapping)
        spaces = getattr(module, "NAMESPACES", None)
        if isinstance(spaces, dict):
            listing.update(str(k).partition(".")[0] for k in spaces)
    elif where == "_distutils_hack":
        listing.add("distutils")  # setuptools provides it
    elif where != "_virtualenv":  # virtualenv's patches dotted names only
        exact = False
suffixes = tuple(M.all_suffixes())
relative = False
for entry in list(sys.path):
    if not os.path.isabs(entry):
        relative = True
    stamp(entry)
    if entry in sys.path_importer_cache:
        finder = sys.path_importer_cache[entry]
    else:
        finder = None
        for hook in sys.path_hooks:
            try:
                finder = hook(entry)
                break
            except ImportError:
                continue
    if finder is None:
        continue
    if isinstance(finder, M.FileFinder):
        try:
            with os.scandir(entry or ".") as entries:
                for e in entries:
                    name = e.name
                    try:
                        is_dir = e.is_dir()
                    except OSError:
                        continue
                    if is_dir:
                        if name.isidentifier():
                            listing.add(name)  # a package, or a namespace portion
                        continue
                    for suffix in suffixes:
                        if name.endswith(suffix) and name[:-len(suffix)].isidentifier():
                            listing.add(name[:-len(suffix)])
        except OSError:
            pass
    elif type(finder).__name__ == "zipimporter":
        import pkgutil
        try:
            listing.update(n for n, _ in pkgutil.iter_importer_modules(finder))
        except Exception:
            exact = False
    else:
        exact = False
answers = {}
for name in names:
    if name in sys.modules:
        answers[name] = True
        continue
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    answers[name] = spec is not None
sys.stdout.write(json.dumps({"executable": sys.executable, "answers": answers, "listing": sorted(listing),
                             "exact": exact, "relative": relative, "stamps": stamps}))
"""


def _stat(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@dataclass
class ImportIndex:
    """What one interpreter, with one set of flags and environment, can import."""

    python: str
    answers: dict[str, bool] = field(default_factory=dict)  # asked with find_spec
    listing: frozenset[str] = frozenset()
    exact: bool = False  # the listing holds every importable top-level name
    relative: bool = False  # sys.path has relative entries: the answers depend on the folder
    stamps: dict[str, int | None] = field(default_factory=dict)
    started_ns: int = 0  # when the probe that made it started
    from_disk: bool = False

    def lookup(self, name: str) -> bool | None:
        """True/False when known, None when the interpreter must be asked."""
        known = self.answers.get(name)
        if known is not None:
            return known
        if name in self.listing:
            return True
        return False if self.exact else None

    def fresh(self) -> bool:
        """Every stamp still matches the file system."""
        return all(_stat(path) == mtime for path, mtime in self.stamps.items())

    def racy(self) -> bool:
        """A stamp so close to the probe's start that a later change could keep the same mtime."""
        for mtime in self.stamps.values():
            if mtime is None:
                continue
            window = COARSE_RACY_NS if mtime % 1_000_000_000 == 0 else RACY_NS
            if mtime > self.started_ns - window:
                return True
        return False

    def to_json(self, key_doc: Mapping[str, Any]) -> bytes:
        doc = {"version": CACHE_VERSION, "key": key_doc, "python": self.python, "exact": self.exact,
               "answers": dict(sorted(self.answers.items())), "listing": sorted(self.listing),
               "stamps": self.stamps}
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, key_doc: Mapping[str, Any]) -> ImportIndex | None:
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION or doc.get("key") != key_doc:
            return None
        answers, listing, stamps = doc.get("answers"), doc.get("listing"), doc.get("stamps")
        if not (isinstance(answers, dict) and isinstance(listing, list) and isinstance(stamps, dict)):
            return None
        return cls(python=str(doc.get("python") or ""), answers={str(k): bool(v) for k, v in answers.items()},
                   listing=frozenset(str(n) for n in listing), exact=bool(doc.get("exact")),
                   stamps={str(k): (v if isinstance(v, int) else None) for k, v in stamps.items()},
                   from_disk=True)


def _key_doc(python: str, flags: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any]:
    env = {k: v for k, v in sorted(environ.items()) if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES}
    return {"python": os.path.abspath(python), "flags": list(flags), "env": env}


def _key_name(key_doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode("utf-8")).hexdigest()[:32]


class ImportProber:
    """Answers "can this interpreter import these names?" for one command; share one per command."""

    def __init__(self, cache: Path | None = None, *, use_disk: bool = True) -> None:
        self.folder = (cache if cache is not None else cache_dir()) if use_disk else None
        self._memory: dict[str, ImportIndex | None] = {}
        # (python, flags, id(environ)) -> (environ, its key document, its key): one hash per kernel
        self._keys: dict[tuple[str, tuple[str, ...], int], tuple[Mapping[str, str], dict[str, Any], str]] = {}
        self.probes_run = 0  # subprocesses started (for tests and benchmarks)

    def importable(self, python: str, names: Iterable[str], *, flags: Sequence[str] = (),
                   environ: Mapping[str, str] | None = None, cwd: str | None = None) -> dict[str, bool] | None:
        """``{name: importable}`` for ``names``; None when the interpreter cannot be asked."""
        names = list(dict.fromkeys(names))
        env, key_doc, key = self._key(python, tuple(flags), environ)
        index = self._index(key, key_doc, cwd)
        if key in self._memory and index is None:
            return None  # it failed before: do not pay for it again
        unknown = names if index is None else [n for n in names if index.lookup(n) is None]
        if unknown or index is None:
            index = self._probe(python, flags, env, cwd, unknown, index)
            self._memory[self._memory_key(key, index, cwd)] = index
            if index is None:
                return None
            self._save(key, key_doc, index)
        return {n: bool(index.lookup(n)) for n in names}

    def _key(self, python: str, flags: tuple[str, ...],
             environ: Mapping[str, str] | None) -> tuple[Mapping[str, str], dict[str, Any], str]:
        """The environment, the key document and the key of an interpreter; hashed once per kernel (the
        same ``environ`` object), os.environ read afresh on each call."""
        if environ is None:
            key_doc = _key_doc(python, flags, os.environ)
            return dict(os.environ), key_doc, _key_name(key_doc)
        memo = (python, flags, id(environ))
        hit = self._keys.get(memo)
        if hit is None or hit[0] is not environ:
            key_doc = _key_doc(python, flags, environ)
            hit = self._keys[memo] = (environ, key_doc, _key_name(key_doc))
        return hit

    @staticmethod
    def _memory_key(key: str, index: ImportIndex | None, cwd: str | None) -> str:
        return f"{key}\0{cwd}" if index is not None and index.relative else key

    def _index(self, key: str, key_doc: Mapping[str, Any], cwd: str | None) -> ImportIndex | None:
        for memory_key in (key, f"{key}\0{cwd}"):
            if memory_key in self._memory:
                return self._memory[memory_key]
        index = self._load(key, key_doc)
        if index is not None:
            self._memory[key] = index
        return index

    def _load(self, key: str, key_doc: Mapping[str, Any]) -> ImportIndex | None:
        if self.folder is None:
            return None
        try:
            data = (self.folder / "imports" / f"{key}.json").read_bytes()
        except OSError:
            return None
        index = ImportIndex.from_json(data, key_doc)
        return index if index is not None and index.fresh() else None

    def _save(self, key: str, key_doc: Mapping[str, Any], index: ImportIndex) -> None:
        if self.folder is None or index.relative or index.racy():
            return
        target = self.folder / "imports" / f"{key}.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, index.to_json(key_doc))
        except OSError:
            return  # a read-only home: the cache is an optimisation
        _prune(target.parent)

    def _probe(self, python: str, flags: Sequence[str], env: Mapping[str, str], cwd: str | None,
               names: list[str], previous: ImportIndex | None) -> ImportIndex | None:
        import subprocess  # only when a probe runs: a warm cache never needs it

        self.probes_run += 1
        started = time.time_ns()
        try:
            proc = subprocess.run([python, *flags, "-c", _PROBE_SCRIPT], input=json.dumps(names),
                                  capture_output=True, text=True, cwd=cwd, env=dict(env),
                                  timeout=PROBE_TIMEOUT, check=False)
            doc = json.loads(proc.stdout) if proc.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, ValueError):
            doc = None
        if not isinstance(doc, dict):
            return None
        raw = doc.get("stamps")
        stamps = {str(k): (v if isinstance(v, int) else None) for k, v in raw.items()} if isinstance(raw, dict) else {}
        answers: dict[str, bool] = {}
        if previous is not None and previous.stamps == stamps:
            answers.update(previous.answers)  # the same state of the environment: earlier answers hold
        found = doc.get("answers")
        answers.update({str(k): bool(v) for k, v in found.items()} if isinstance(found, dict) else {})
        return ImportIndex(python=python, answers=answers,
                           listing=frozenset(str(n) for n in doc.get("listing") or ()),
                           exact=bool(doc.get("exact")), relative=bool(doc.get("relative")),
                           stamps=stamps, started_ns=started)


def _prune(folder: Path) -> None:
    """Keep the newest ``MAX_CACHE_FILES`` indexes (one per interpreter and environment)."""
    try:
        files = [(entry.stat().st_mtime_ns, entry.path) for entry in os.scandir(folder)
                 if entry.name.endswith(".json")]
    except OSError:
        return
    if len(files) <= MAX_CACHE_FILES:
        return
    for _, path in sorted(files)[:len(files) - MAX_CACHE_FILES]:
        try:
            os.unlink(path)
        except OSError:
            pass
