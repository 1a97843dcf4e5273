"""Notebook parameters, as papermill takes them: ``-p NAME VALUE``, YAML files, an injected cell.

Compatible with papermill 2.x on purpose, so notebooks written for papermill run unchanged:

* ``-p`` values are typed like papermill's CLI (``cli._resolve_type``): ``True``/``False``/``None``,
  then anything ``int()`` accepts, then anything ``float()`` accepts (``1e3``, ``nan``, ``inf``), else
  the text as a string;
* parameter files are YAML read with papermill's loader: safe, and dates stay strings;
* the injected cell is tagged ``injected-parameters`` and holds ``# Parameters`` then one
  ``name = value`` line per parameter, rendered exactly as papermill's ``PythonTranslator`` renders them
  when black is not installed (papermill runs the cell through black when it is, which only changes
  layout, never values);
* the cell goes where papermill puts it: in place of an existing ``injected-parameters`` cell (a
  re-run), else right after the first cell tagged ``parameters``, else at the top.
"""

from __future__ import annotations

import functools
import keyword
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbmedic.errors import UsageError
from nbmedic.notebook.cells import cell_tags
from nbmedic.notebook.format import has_ids, ids_of, new_id

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


# --- values from the command line and from files -----------------------------------------------

def _converts(kind: type[int | float], text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def parse_cli_value(text: str) -> Any:
    """Type a ``-p NAME VALUE`` value as papermill does.

    ``"True"``, ``"False"``, ``"None"`` (exactly) give the constants; text that ``int()`` accepts gives an
    int (``"1_000"``, ``" 7 "``), then text that ``float()`` accepts gives a float (``"1e3"``, ``"nan"``,
    ``"inf"``); anything else stays the string it is.
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    if _converts(int, text):
        return int(text)
    if _converts(float, text):
        return float(text)
    return text


@functools.cache
def _loader() -> Any:
    """papermill's loader: YAML's safe loader without the timestamp resolver (dates stay strings).
    Built on first use: yaml is imported only when there are parameters to read."""
    import yaml

    class NoDatesSafeLoader(yaml.SafeLoader):
        pass

    NoDatesSafeLoader.yaml_implicit_resolvers = {
        first: [resolver for resolver in resolvers if resolver[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return NoDatesSafeLoader


def load_params_yaml(text: str, *, where: str) -> dict[str, Any]:
    """Parse YAML parameters (a mapping; empty text is no parameters); UsageError naming ``where``."""
    import yaml

    try:
        value = yaml.load(text, Loader=_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UsageError(f"{where}: invalid YAML{at}: {problem}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: parameters must be a YAML mapping of names to values, "
                         f"not {_yaml_type(value)}")
    for name in value:
        if not isinstance(name, str):
            raise UsageError(f"{where}: parameter names must be strings, got {name!r}")
    return value


def _yaml_type(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def read_text_file(path: str | os.PathLike[str], where: str) -> str:
    """The UTF-8 text of a parameters or grid file; a one-line UsageError naming ``where`` otherwise."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it: {exc.strerror or exc}") from None


def load_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (or JSON) file of parameters; a one-line UsageError if it is missing or not a mapping."""
    where = os.fspath(path)
    text = read_text_file(path, f"parameters file {where}")
    return load_params_yaml(text, where=where)


# --- rendering: papermill's PythonTranslator ---------------------------------------------------

def _escaped_str(value: Any) -> str:
    """``Translator.translate_escaped_str``: only real strings are escaped; other objects are quoted as is."""
    if isinstance(value, str):
        value = value.encode("unicode_escape").decode("utf-8").replace('"', r"\"")
    return f'"{value}"'


def python_literal(value: Any) -> str:
    """Python source for ``value``, byte for byte what papermill's ``PythonTranslator.translate`` writes."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return _escaped_str(value)
    if isinstance(value, bool):
        return f"{value}"
    if isinstance(value, int):
        return f"{value}"
    if isinstance(value, float):
        if math.isfinite(value):
            return f"{value}"
        if math.isnan(value):
            return "float('nan')"
        return "float('-inf')" if value < 0 else "float('inf')"
    if isinstance(value, dict):
        items = ", ".join(f"{_escaped_str(k)}: {python_literal(v)}" for k, v in value.items())
        return f"{{{items}}}"
    if isinstance(value, list):
        return f"[{', '.join(python_literal(v) for v in value)}]"
    return _escaped_str(value)  # papermill's last resort: the object's str() in quotes


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"parameter name {name!r} is not a valid Python variable name")
    return name


def render_parameters(params: Mapping[str, Any], comment: str = "Parameters") -> str:
    """The injected cell's source: ``# Parameters`` then ``name = value`` lines, each ending in a newline."""
    content = f"{f'# {comment}'.strip()}\n"
    for name, value in params.items():
        content += f"{_check_name(name)} = {python_literal(value)}\n"
    return content


# --- injection ---------------------------------------------------------------------------------

def _first_tagged(cells: list[Any], tag: str) -> int:
    return next((i for i, cell in enumerate(cells) if tag in cell_tags(cell)), -1)


def inject_parameters(nb: Mapping[str, Any], params: Mapping[str, Any], *,
                      language: str = "python") -> dict[str, Any]:
    """A copy of ``nb`` with a code cell tagged ``injected-parameters`` assigning ``params``.

    Placement follows papermill: an existing ``injected-parameters`` cell is replaced in place (and keeps
    its id); otherwise the cell goes right after the first cell tagged ``parameters``, or at the top.
    The new cell gets an id when the notebook has ids (nbformat 4.5 and later).  ``nb`` is not modified;
    the returned notebook shares its other cells and metadata with it (copy before mutating those).

    Callers skip this when there are no parameters, as papermill does.  Only Python kernels take
    parameters for now: another ``language`` raises UsageError, as does a name that is not a Python
    identifier (papermill would write a cell that fails with a SyntaxError).
    """
    if language.strip().lower() != "python":
        raise UsageError(f"only Python kernels take parameters for now; this notebook's kernel language "
                         f"is {language!r}")
    source = render_parameters(params)
    raw_cells = nb.get("cells")
    cells: list[Any] = list(raw_cells) if isinstance(raw_cells, list) else []

    injected = _first_tagged(cells, INJECTED_TAG)
    if injected >= 0:
        at, replaced = injected, 1
    else:
        param_cell = _first_tagged(cells, PARAMETERS_TAG)
        at, replaced = param_cell + 1, 0  # -1 + 1: the top of the notebook

    new_cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [INJECTED_TAG]},
        "outputs": [],
        "source": source.splitlines(True),
    }
    if has_ids(nb.get("nbformat"), nb.get("nbformat_minor")):
        old = cells[injected] if injected >= 0 else None
        old_id = old.get("id") if isinstance(old, dict) else None
        new_cell["id"] = old_id if isinstance(old_id, str) and old_id else new_id(ids_of(cells))
        new_cell = {k: new_cell[k] for k in sorted(new_cell)}

    out = dict(nb)
    out["cells"] = cells[:at] + [new_cell] + cells[at + replaced:]
    return out
