"""NB040 (absolute local paths) and NB041 (imports the kernel cannot resolve)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nbmedic.checks import CheckEnv, check_paths, code
from nbmedic.config import Config
from nbmedic.notebook import imports
from tests import nbfactory as nbf
from tests.conftest import codes
from tests.specs import LAUNCHER, make_bare_venv, write_spec

CheckJson = Callable[..., tuple[int, list[dict[str, Any]]]]
MISSING = "nbmedic_surely_missing_mod"


def _one(tmp_path: Path, *cells: Any, name: str = "nb.ipynb", **kw: Any) -> Path:
    return nbf.write(tmp_path / name, nbf.notebook(*cells, **kw))


# --- NB040 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "paths"), [
    ('df = read_csv("/home/alice/data/sales.csv")', ["/home/alice/data/sales.csv"]),
    ("open('/Users/bob/Desktop/x.txt')", ["/Users/bob/Desktop/x.txt"]),
    (r'p = "C:\\Users\\carol\\data.csv"', [r"C:\\Users\\carol\\data.csv"]),
    (r'p = r"C:\Users\Dave Smith\data.csv"', [r"C:\Users\Dave Smith\data.csv"]),
    ('p = "C:/Users/erin/x.csv"\nq = "c:\\\\users\\\\erin"', ["C:/Users/erin/x.csv", "c:\\\\users\\\\erin"]),
    ("!ls /home/frank/project  # list it", ["/home/frank/project"]),
    ('os.chdir("/home/gina")', ["/home/gina"]),
    ('x = "a # b"; y = "/home/hal/f"', ["/home/hal/f"]),
])
def test_nb040_finds_local_paths(tmp_path: Path, check_json: CheckJson, source: str, paths: list[str]) -> None:
    path = _one(tmp_path, nbf.code("x = 1"), nbf.code(source))
    _, findings = check_json("--select", "NB040", str(path))
    [f] = findings
    assert f["severity"] == "warning" and f["cell"] == 1
    assert f["evidence"]["paths"] == paths
    assert repr(paths[0]) in f["message"] or len(paths) > 1


@pytest.mark.parametrize("source", [
    "# data lives in /home/alice/data\nx = 1",
    "x = 1  # was '/Users/bob/x.csv'",
    'url = "https://example.com/home/alice/page"',
    'p = Path.home() / "data"',
    'p = "~/home/alice"',
    'p = f"/home/{user}/data"',
    'p = "data/home/alice.csv"',
    "s = '#'; t = 'ok'",
])
def test_nb040_ignores_comments_urls_and_portable_paths(tmp_path: Path, check_json: CheckJson, source: str) -> None:
    path = _one(tmp_path, nbf.code(source))
    assert check_json("--select", "NB040", str(path))[1] == []


def test_nb040_only_code_cells(tmp_path: Path, check_json: CheckJson) -> None:
    path = _one(tmp_path, nbf.md("Put the data in `/home/<you>/data` or /home/alice/data"),
                nbf.code("x = 1"))
    assert check_json(str(path))[1] == []


def test_nb040_one_finding_per_cell(tmp_path: Path, check_json: CheckJson) -> None:
    path = _one(tmp_path, nbf.code('a = "/home/u/a"\nb = "/home/u/b"\na2 = "/home/u/a"'),
                nbf.code('c = "/Users/v/c"'))
    _, findings = check_json("--select", "NB040", str(path))
    assert [(f["cell"], f["evidence"]["paths"], f["evidence"]["lines"]) for f in findings] == [
        (0, ["/home/u/a", "/home/u/b"], [1, 2, 3]), (1, ["/Users/v/c"], [1])]
    assert "2 absolute paths" in findings[0]["message"]


def test_comment_spans_handles_strings() -> None:
    source = 'a = "# not"  # yes\nb = """\n# inside\n"""\nc = \'x\\\'#\'  # two'
    spans = [source[s:e] for s, e in code.comment_spans(source)]
    assert spans == ["# yes", "# two"]


# --- NB041 ------------------------------------------------------------------------------------------
# Modules that must be missing are either names no package has (MISSING, OTHER) or real package names
# asked of a Python that has nothing installed (the ``bare`` kernel: a venv without pip), so the answers
# do not depend on what this machine happens to have.

OTHER = "nbmedic_surely_missing_other"


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bare_venv(tmp_path_factory.mktemp("bare") / "venv")


@pytest.fixture
def bare_kernel(bare_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec ``bare`` (in a temporary JUPYTER_PATH) whose Python has only the standard library."""
    write_spec(tmp_path / "jp", "bare", [str(bare_python), *LAUNCHER])
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    monkeypatch.setenv("NBMEDIC_CACHE_DIR", str(tmp_path / "cache"))
    return "bare"


REALISTIC = [
    "%load_ext autoreload\n%autoreload 2\nimport os, sys\nimport json as j\nfrom collections import OrderedDict",
    "from . import sibling\nfrom .pkg import thing\nfrom __future__ import annotations",
    f"try:\n    import {MISSING}\nexcept ImportError:\n    {MISSING} = None",
    f"try:\n    from {MISSING} import x\nexcept (ModuleNotFoundError, KeyError):\n    x = None",
    f"try:\n    import {MISSING}\nexcept Exception:\n    pass",
    f"import sys\nif sys.version_info < (3, 8):\n    import {MISSING}",
    f"if TYPE_CHECKING:\n    import {MISSING}",
    f"import contextlib\nwith contextlib.suppress(ImportError):\n    import {MISSING}",
    f"%%bash\npython -c 'import {MISSING}'",
    f"%%writefile notes.txt\nimport {MISSING}",
    f"x = 1 +\nimport {MISSING}",  # a syntax error: skipped silently
    "df?\nimport os\n!pip list\nfiles = !ls\n%time import json\n??os.path",
    f"# import {MISSING}\ns = 'import {MISSING}'",
]


@pytest.mark.parametrize("source", REALISTIC)
def test_nb041_quiet_on_realistic_cells(tmp_path: Path, check_json: CheckJson, source: str) -> None:
    path = _one(tmp_path, nbf.code(source))
    assert check_json("--select", "NB041", str(path))[1] == []


def test_nb041_missing_modules(tmp_path: Path, check_json: CheckJson) -> None:
    path = _one(tmp_path,
                nbf.code(f"%time x = 1\nimport {OTHER} as o\nimport os, sys"),
                nbf.md(f"import {MISSING}"),
                nbf.code(f"from {MISSING}.sub import thing\nimport {OTHER}.linalg"),
                nbf.code(f"%%time\nimport {MISSING}"))
    _, findings = check_json(str(path))
    assert codes(findings) == ["NB041"]
    [f] = findings
    assert f["severity"] == "warning" and f["cell"] == 0
    ev = f["evidence"]
    assert ev["modules"] == [OTHER, MISSING]
    assert ev["cells"] == {OTHER: [0, 2], MISSING: [2, 3]}
    assert ev["interpreter"] == sys.executable and ev["kernel"] == "python3"
    assert f"`{OTHER}`" in f["message"] and sys.executable in f["message"]
    assert f"%pip install {OTHER} {MISSING}" in f["fix"]


def test_nb041_pip_installing_notebook_is_info(tmp_path: Path, check_json: CheckJson, bare_kernel: str) -> None:
    path = _one(tmp_path, nbf.code("!pip install -q scikit-learn"), nbf.code("from sklearn import svm"),
                kernel=bare_kernel)
    _, findings = check_json(str(path))
    [f] = findings
    assert f["code"] == "NB041" and f["severity"] == "info"
    assert f["evidence"]["installs_in_notebook"] == [0]
    assert "installs packages itself" in f["message"]
    assert "scikit-learn" in f["fix"]


@pytest.mark.parametrize("install", ["%pip install numpy", "%conda install -y numpy",
                                     "!{sys.executable} -m pip install numpy",
                                     "%%capture\n!pip install numpy"])
def test_nb041_install_forms(tmp_path: Path, check_json: CheckJson, bare_kernel: str, install: str) -> None:
    path = _one(tmp_path, nbf.code(install), nbf.code("import numpy"), kernel=bare_kernel)
    [f] = check_json(str(path))[1]
    assert f["evidence"]["modules"] == ["numpy"] and f["severity"] == "info"


def test_nb041_commented_install_does_not_count(tmp_path: Path, check_json: CheckJson, bare_kernel: str) -> None:
    path = _one(tmp_path, nbf.code("# !pip install numpy"), nbf.code("import numpy"), kernel=bare_kernel)
    [f] = check_json(str(path))[1]
    assert f["evidence"]["modules"] == ["numpy"] and f["severity"] == "warning"


def test_nb041_local_and_written_modules(tmp_path: Path, check_json: CheckJson) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "mypkg").mkdir()
    path = _one(tmp_path,
                nbf.code("%%writefile gen_mod.py\ndef f():\n    return 1"),
                nbf.code("%%writefile -a gen_pkg/__init__.py\nY = 2"),
                nbf.code("import helpers, mypkg, gen_mod\nfrom gen_pkg import Y"))
    assert check_json(str(path))[1] == []
    # the same imports from another folder are not importable
    other = _one(tmp_path / "sub", nbf.code("import helpers"))
    [f] = check_json(str(other))[1]
    assert f["code"] == "NB041" and f["evidence"]["modules"] == ["helpers"]


def test_nb041_skipped_for_other_languages(tmp_path: Path, check_json: CheckJson) -> None:
    nb = nbf.notebook(nbf.code(f"library({MISSING})\nimport {MISSING}"), kernel="python3")
    nb.metadata["kernelspec"]["language"] = "R"
    path = nbf.write(tmp_path / "r.ipynb", nb)
    assert check_json("--select", "NB041", str(path))[1] == []
    nb.metadata["kernelspec"]["language"] = "python"  # the same cells in a Python notebook
    nbf.write(path, nb)
    assert codes(check_json("--select", "NB041", str(path))[1]) == ["NB041"]


def test_nb041_no_kernelspec_uses_default_kernel(tmp_path: Path, check_json: CheckJson) -> None:
    path = _one(tmp_path, nbf.code(f"import {MISSING}"), kernel=None)
    assert codes(check_json(str(path))[1]) == ["NB030", "NB041"]


def test_nb041_uses_the_kernels_interpreter_and_env(tmp_path: Path, check_json: CheckJson,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    extra = tmp_path / "extra-site"
    extra.mkdir()
    (extra / "kernel_only_mod.py").write_text("")
    write_spec(tmp_path / "jp", "withpath", [sys.executable, *LAUNCHER], env={"PYTHONPATH": str(extra)})
    write_spec(tmp_path / "jp", "broken", [str(tmp_path / "nowhere" / "python3"), *LAUNCHER])
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    src = nbf.code("import kernel_only_mod")
    nb_dir = tmp_path / "nbs"
    assert check_json(str(_one(nb_dir, src, name="a.ipynb", kernel="withpath")))[1] == []
    [f] = check_json(str(_one(nb_dir, src, name="b.ipynb", kernel="python3")))[1]
    assert f["evidence"]["modules"] == ["kernel_only_mod"]
    # a kernel whose interpreter is gone: that is for the environment checks; NB041 stays silent
    assert check_json(str(_one(nb_dir, src, name="c.ipynb", kernel="broken")))[1] == []


def test_nb041_honours_the_kernels_interpreter_options(tmp_path: Path, check_json: CheckJson,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -I`` ignores PYTHONPATH: a module only PYTHONPATH provides is missing for that kernel."""
    extra = tmp_path / "extra-site"
    extra.mkdir()
    (extra / "path_only_mod.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(extra))
    write_spec(tmp_path / "jp", "plain", [sys.executable, *LAUNCHER])
    write_spec(tmp_path / "jp", "isolated", [sys.executable, "-I", *LAUNCHER])
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    monkeypatch.setenv("NBMEDIC_CACHE_DIR", str(tmp_path / "cache"))
    src = nbf.code("import path_only_mod")
    assert check_json(str(_one(tmp_path / "nbs", src, name="a.ipynb", kernel="plain")))[1] == []
    [f] = check_json(str(_one(tmp_path / "nbs", src, name="b.ipynb", kernel="isolated")))[1]
    assert f["evidence"]["modules"] == ["path_only_mod"]


def test_nb041_one_probe_per_interpreter_and_none_when_warm(tmp_path: Path, bare_kernel: str) -> None:
    """Cold: one subprocess for the whole command (the first notebook's names, and the listing that answers
    the others).  Warm (a later command, the environment unchanged): none."""
    paths = [
        _one(tmp_path, nbf.code("import os, json\nimport numpy"), name="a.ipynb", kernel=bare_kernel),
        _one(tmp_path, nbf.code(f"import numpy\nimport {MISSING}\nimport re"), name="b.ipynb", kernel=bare_kernel),
        _one(tmp_path, nbf.code(f"import numpy, {MISSING}, zipfile"), name="c.ipynb", kernel=bare_kernel),
        _one(tmp_path, nbf.code("print('no imports')"), name="d.ipynb", kernel=bare_kernel),
    ]
    expected = [("a.ipynb", ["numpy"]), ("b.ipynb", ["numpy", MISSING]), ("c.ipynb", ["numpy", MISSING])]
    for probes in (1, 0):
        env = CheckEnv()
        found = check_paths(paths, Config(), env)
        assert [(Path(f.path).name, f.evidence["modules"]) for f in found] == expected
        assert code.import_prober(env).probes_run == probes


def test_parse_cell_neutralises_ipython_syntax() -> None:
    source = "%load_ext autoreload\nfor i in x:\n    !echo {i}\n    %time f(i)\nobj.method?\nout = !ls"
    tree = imports.parse_cell(source)
    assert tree is not None
    assert imports.parse_cell("def broken(:\n    pass") is None


def test_nb041_matplotlib_magic_needs_matplotlib(tmp_path: Path, check_json: CheckJson, bare_kernel: str) -> None:
    path = nbf.write(tmp_path / "plot.ipynb", nbf.notebook(nbf.code("%matplotlib inline\nx = 1", count=1),
                                                           kernel=bare_kernel))
    found = [f for f in check_json(str(path))[1] if f["code"] == "NB041"]
    assert [f["evidence"]["modules"] for f in found] == [["matplotlib"]]
