"""Find the notebooks under the paths a user names."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from nbmedic.errors import UsageError

# Folders never searched: checkpoints, VCS internals, dependencies, build output, virtualenvs.
SKIP_DIRS = frozenset({
    ".ipynb_checkpoints", ".git", ".hg", ".svn", "node_modules", "__pycache__", ".tox", ".nox",
    ".venv", "venv", ".mypy_cache", ".pytest_cache", "site-packages", ".virtual_documents",
})


def _is_virtualenv(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "pyvenv.cfg")) or os.path.isfile(
        os.path.join(folder, "conda-meta", "history"))


def excluded(path: str, exclude: Iterable[str]) -> bool:
    """Does ``path`` (or its file name) match one of the glob patterns?"""
    return any(fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(os.path.basename(path), pat) for pat in exclude)


def iter_notebooks(paths: Iterable[str | os.PathLike[str]], *, exclude: Iterable[str] = ()) -> Iterator[Path]:
    """Yield every notebook named or found (recursively) under ``paths``, each once, sorted per folder.

    A file named explicitly is yielded whatever its suffix.  Raises UsageError for a path that does
    not exist.  Folders with no notebooks simply yield nothing (the caller decides if that is an error).
    A notebook reached twice (named twice, under two named folders, or through a link) is yielded once.
    """
    exclude = tuple(exclude)
    seen: set[str] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"{raw}: no such file or directory")
        if path.is_dir():
            yield from _walk(path, exclude, seen)
        else:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                yield path


def _walk(root: Path, exclude: tuple[str, ...], seen: set[str]) -> Iterator[Path]:
    """The notebooks under ``root``; the real path of the root is worked out once (os.walk does not
    follow links to folders), only a linked file needs its own."""
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs
            if d not in SKIP_DIRS and not _is_virtualenv(os.path.join(folder, d))
            and not excluded(os.path.join(folder, d), exclude)
        )
        real_folder = os.path.join(real_root, os.path.relpath(folder, root))
        for name in sorted(files):
            full = os.path.join(folder, name)
            if not name.endswith(".ipynb") or excluded(full, exclude):
                continue
            key = os.path.realpath(full) if os.path.islink(full) else os.path.normpath(os.path.join(real_folder, name))
            if key not in seen:
                seen.add(key)
                yield Path(full)
