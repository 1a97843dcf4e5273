"""RN160: re-executed outputs compared with the stored ones, after normalization."""

from __future__ import annotations

import base64
import copy
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbmedic.execute.compare import compare_outputs, normalize
from nbmedic.execute.params import inject_parameters
from tests import nbfactory as nbf

# --- normalize ----------------------------------------------------------------------------------

SAME_AFTER_NORMALIZE = [
    ("<__main__.Foo object at 0x7f3a2b1c9d40>", "<__main__.Foo object at 0x7f99aa001122>"),
    ("[<matplotlib.lines.Line2D at 0x10a2b3c40>]", "[<matplotlib.lines.Line2D at 0x7fa1b2c3d4e5>]"),
    ("<function f at 0x7f0000000001>", "<function f at 0x7f0000000002>"),
    ("\x1b[31mred\x1b[0m text", "red text"),
    ("\x1b]0;title\x07done", "done"),
    ("CPU times: user 1.2 s, sys: 3 ms, total: 1.21 s\nWall time: 3.4 s\n",
     "CPU times: user 900 ms, sys: 0 ns, total: 900 ms\nWall time: 1.02 s"),
    ("1.23 ms ± 4.5 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)",
     "987 µs ± 12.1 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)"),
    ("10.2 ns ± 0 ns per loop (mean ± std. dev. of 1 run, 1 loop each)",
     "9.9 ns ± 0 ns per loop (mean ± std. dev. of 1 run, 1 loop each)"),
    ("100 loops, best of 3: 1.2 ms per loop", "1000 loops, best of 3: 999 us per loop"),
    ("The slowest run took 4.50 times longer than the fastest.",
     "The slowest run took 12.1 times longer than the fastest."),
    ("100%|██████████| 10/10 [00:01<00:00,  9.80it/s]", "100%|██████████| 10/10 [00:02<00:00,  4.90it/s]"),
    ("Epoch 1: 100%|#####| 10/10 [00:01<00:00, 9.8it/s, loss=0.1]\n",
     "Epoch 1: 100%|#####| 10/10 [00:03<00:00, 3.1it/s, loss=0.1]"),
    (("\r  0%|          | 0/10 [00:00<?, ?it/s]\r 50%|#####     | 5/10 [00:00<00:00, 9.8it/s]"
      "\r100%|##########| 10/10 [00:01<00:00, 9.8it/s]\n"),
     "100%|##########| 10/10 [00:02<00:00, 5.0it/s]\n"),
    ("57it [00:01, 51.2it/s]", "57it [00:03, 12.0it/s]"),
    ("run at 2024-05-01T12:03:04.123456+02:00", "run at 2025-11-30T01:02:03Z"),
    ("today is 2024-05-01", "today is 2026-01-31"),
    ("12:03:45,123 INFO start", "09:00:01,999 INFO start"),
    ("training took 3.21s", "training took 12.5s"),
    ("Elapsed: 2 min", "Elapsed: 13 min"),
    ("finished in 0.53 seconds", "finished in 2 seconds"),
    ("<Thread(worker, started daemon 140234567)>", "<Thread(worker, started daemon 1357911)>"),
    ("<Process name='P-1' pid=1234 parent=99 started>", "<Process name='P-1' pid=77 parent=12 started>"),
    ("/tmp/ipykernel_4012/3062374361.py:3: UserWarning: x", "/tmp/ipykernel_88/1234.py:3: UserWarning: x"),
    ("a  \nb\t\n\n\n", "a\nb"),
    ("x\r\ny\r\n", "x\ny"),
]


@pytest.mark.parametrize(("a", "b"), SAME_AFTER_NORMALIZE)
def test_normalize_equal(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)


DIFFERENT_AFTER_NORMALIZE = [
    ("result: 42", "result: 43"),
    ("accuracy 0.91", "accuracy 0.92"),
    ("  indented", "indented"),
    ("a\n\nb", "a\nb"),
    ("0xff", "0xfe"),
    ("Epoch 1: 100%|#####| 10/10", "Epoch 2: 100%|#####| 10/10"),
    ("took 3 apples", "took 4 apples"),
    ("the sum is 3.21s", "the sum is 3.22s"),
    ("version 1.2.3", "version 1.2.4"),
    ("array([1, 2, 3])", "array([1, 2, 4])"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT_AFTER_NORMALIZE)
def test_normalize_keeps_real_differences(a: str, b: str) -> None:
    assert normalize(a) != normalize(b)


def test_normalize_markers() -> None:
    assert normalize("<Foo object at 0x7f3a2b1c9d40>") == "<Foo object at 0x…>"
    assert normalize("CPU times: user 1 s\nWall time: 2 s") == "CPU times: …\nWall time: …"
    assert normalize("Loss: 100%|███| 3/3 [00:01<00:00, 2.9it/s]") == "Loss: <progress>"
    assert normalize("took 3.21s!") == "took <duration>!"
    assert normalize("at 2024-05-01 10:00:00 done") == "at <datetime> done"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z ]{0,10}[0-9]{1,4}(\.[0-9]{1,3})?[a-z ]{0,10}", fullmatch=True))
def test_normalize_keeps_plain_numbers(text: str) -> None:
    assert normalize(text) == text.rstrip()


# --- compare_outputs ----------------------------------------------------------------------------

PNG_A = base64.b64encode(b"\x89PNG" + b"a" * 100).decode()
PNG_B = base64.b64encode(b"\x89PNG" + b"b" * 120).decode()


def _nb(*cells: Any) -> Any:
    return nbf.notebook(*cells)


def _run(nb: Any, **replacements: list[Any]) -> Any:
    """A re-executed copy: cell index (as ``c<i>``) -> new outputs; counts shifted to show they don't matter."""
    new = copy.deepcopy(nb)
    for cell in new.cells:
        if cell.cell_type == "code":
            cell.execution_count = (cell.execution_count or 0) + 10
            for output in cell.outputs:
                if "execution_count" in output:
                    output.execution_count = cell.execution_count
    for key, outputs in replacements.items():
        new.cells[int(key[1:])].outputs = outputs
    return new


def _stored() -> Any:
    return _nb(
        nbf.md("# Title"),
        nbf.code("x = Foo(); x", count=1, outputs=[nbf.result({"text/plain": "<Foo object at 0x7f3a2b1c9d40>"}, 1)]),
        nbf.code("%time train()", count=2, outputs=[
            nbf.stream("CPU times: user 1.2 s, sys: 3 ms, total: 1.21 s\nWall time: 3.4 s\n"),
            nbf.stream("\x1b[32mloss\x1b[0m 0.25\n"),
            nbf.stream("100%|██████████| 10/10 [00:01<00:00,  9.80it/s]\n", name="stderr")]),
        nbf.code("total", count=3, outputs=[nbf.result({"text/plain": "42", "text/html": "<b>42</b>"}, 3)]),
        nbf.code("plot()", count=4, outputs=[nbf.display({"image/png": PNG_A, "text/plain": "<Figure size 640x480>"})]),
        nbf.code("never_run()"),
    )


def test_no_finding_when_equal_after_normalization() -> None:
    stored = _stored()
    new = _run(stored, c1=[nbf.result({"text/plain": "<Foo object at 0x7f0011223344>"}, 11)], c2=[
        nbf.stream("CPU times: user 800 ms, sys: 0 ns, total: 800 ms\n"),
        nbf.stream("Wall time: 1.1 s\n\x1b[32mloss\x1b[0m 0.25  \n"),  # split differently, trailing spaces
        nbf.stream("\r  0%|          | 0/10 [00:00<?, ?it/s]\r100%|██████████| 10/10 [00:03<00:00,  3.1it/s]\n",
                   name="stderr")])
    assert compare_outputs(stored, new, path="nb.ipynb") == []


def test_changed_number_gives_rn160_with_diff() -> None:
    stored = _stored()
    new = _run(stored, c3=[nbf.result({"text/plain": "43", "text/html": "<b>43</b>"}, 13)])
    [finding] = compare_outputs(stored, new, path="nb.ipynb")
    assert finding.code == "RN160" and finding.severity == "warning"
    assert finding.path == "nb.ipynb" and finding.cell == 3
    assert finding.cell_id == new.cells[3].id
    diff = finding.evidence["diff"].splitlines()
    assert diff[:2] == ["--- stored", "+++ new"]
    assert "-42" in diff and "+43" in diff and "-<b>42</b>" in diff and "+<b>43</b>" in diff
    assert finding.evidence["mime_types"] == ["text/plain", "text/html"]
    assert finding.evidence["stored_outputs"] == 1 and finding.evidence["new_outputs"] == 1
    assert "text differs" in finding.message
    assert finding.to_dict()["evidence"]["diff"] == finding.evidence["diff"]


def test_changed_stream_text() -> None:
    stored = _stored()
    new = _run(stored, c2=[nbf.stream("CPU times: user 1 s\nWall time: 1 s\nloss 0.26\n")])
    [finding] = compare_outputs(stored, new, path="nb.ipynb")
    assert finding.cell == 2
    assert "-loss 0.25" in finding.evidence["diff"] and "+loss 0.26" in finding.evidence["diff"]
    assert "stream/stderr" in finding.evidence["mime_types"]  # the progress bar went missing
    assert finding.evidence["stored_outputs"] == 3 and finding.evidence["new_outputs"] == 1


def test_image_changed() -> None:
    stored = _stored()
    new = _run(stored, c4=[nbf.display({"image/png": PNG_B, "text/plain": "<Figure size 640x480>"})])
    [finding] = compare_outputs(stored, new, path="nb.ipynb")
    assert finding.cell == 4
    assert "image differs" in finding.message and "text differs" not in finding.message
    assert "104 → 124 bytes" in finding.message
    assert finding.evidence["image_sizes"] == {"image/png": {"stored": [104], "new": [124]}}
    assert "image/png" in finding.evidence["mime_types"]


def test_same_image_split_into_lines_is_equal() -> None:
    stored = _stored()
    lines = [PNG_A[i:i + 40] + "\n" for i in range(0, len(PNG_A), 40)]
    new = _run(stored, c4=[nbf.display({"image/png": lines, "text/plain": "<Figure size 640x480>"})])
    assert compare_outputs(stored, new, path="nb.ipynb") == []


def test_error_compared_by_name_and_value() -> None:
    stored = _nb(nbf.code("f()", count=1, outputs=[nbf.error("KeyError", "'a'", ["trace 1"])]))
    same = _run(stored, c0=[nbf.error("KeyError", "'a'", ["a different traceback"])])
    assert compare_outputs(stored, same, path="n") == []
    changed = _run(stored, c0=[nbf.error("KeyError", "'b'")])
    [finding] = compare_outputs(stored, changed, path="n")
    assert "-KeyError: 'a'" in finding.evidence["diff"] and "+KeyError: 'b'" in finding.evidence["diff"]
    assert finding.evidence["mime_types"] == ["error"]


def test_added_and_removed_outputs() -> None:
    stored = _stored()
    added = _run(stored, c3=[nbf.result({"text/plain": "42", "text/html": "<b>42</b>"}, 13),
                             nbf.stream("a warning\n", name="stderr")])
    [finding] = compare_outputs(stored, added, path="n")
    assert finding.evidence["stored_outputs"] == 1 and finding.evidence["new_outputs"] == 2
    assert "+a warning" in finding.evidence["diff"] and "2 outputs instead of 1" in finding.message

    removed = _run(stored, c3=[])
    [finding] = compare_outputs(stored, removed, path="n")
    assert finding.evidence["new_outputs"] == 0
    assert "no output this time" in finding.message


def test_never_run_cells_not_compared() -> None:
    stored = _stored()
    new = _run(stored, c5=[nbf.stream("now it prints\n")])
    assert compare_outputs(stored, new, path="n") == []


def test_cells_not_reached_this_time_not_compared() -> None:
    stored = _stored()
    new = _run(stored, c4=[])
    new.cells[4].execution_count = None  # the run stopped before this cell
    assert compare_outputs(stored, new, path="n") == []


def test_execution_count_irrelevant() -> None:
    stored = _stored()
    new = _run(stored)
    new.cells[3].outputs[0].execution_count = 99
    new.cells[3].outputs[0].metadata = {"some": "metadata"}
    assert compare_outputs(stored, new, path="n") == []


def test_alignment_by_id_when_cells_move() -> None:
    stored = _stored()
    new = _run(stored, c3=[nbf.result({"text/plain": "43", "text/html": "<b>42</b>"}, 13)])
    moved = new.cells.pop(3)
    new.cells.insert(1, moved)  # the cells are now in another order: ids still match them
    [finding] = compare_outputs(stored, new, path="n")
    assert finding.cell == 1 and finding.cell_id == moved.id
    assert finding.evidence["stored_cell"] == 3


def test_alignment_by_id_skips_cells_the_new_notebook_lacks() -> None:
    stored = _stored()
    new = _run(stored)
    new.cells[3].id = "renamed"
    new.cells[3].outputs = [nbf.stream("something else\n")]
    assert compare_outputs(stored, new, path="n") == []


def test_alignment_by_index_without_ids() -> None:
    stored = _stored()
    stored.nbformat_minor = 4
    for cell in stored.cells:
        del cell["id"]
    new = _run(stored, c3=[nbf.result({"text/plain": "7"}, 13)])
    new.cells.insert(0, nbf.md("an extra markdown cell does not shift code cells"))
    del new.cells[0]["id"]
    [finding] = compare_outputs(stored, new, path="n")
    assert finding.cell == 4 and finding.cell_id is None
    assert finding.evidence["stored_cell"] == 3


def test_injected_parameters_cell_ignored_when_aligning_by_index() -> None:
    stored = _stored()
    stored.nbformat_minor = 4
    for cell in stored.cells:
        del cell["id"]
    stored.cells[1].metadata["tags"] = ["parameters"]
    new = _run(nbformat.from_dict(inject_parameters(stored, {"a": 1})))
    assert new.cells[2].metadata.tags == ["injected-parameters"]
    assert compare_outputs(stored, new, path="n") == []


def test_diff_is_short() -> None:
    stored = _nb(nbf.code("p()", count=1, outputs=[nbf.stream("".join(f"{i}\n" for i in range(200)))]))
    new = _run(stored, c0=[nbf.stream("".join(f"{i * 2}\n" for i in range(200)))])
    [finding] = compare_outputs(stored, new, path="n")
    lines = finding.evidence["diff"].splitlines()
    assert len(lines) == 21 and lines[-1].startswith("… ") and lines[-1].endswith("more diff lines")


def test_json_and_markdown_outputs() -> None:
    stored = _nb(nbf.code("d", count=1, outputs=[nbf.display({"application/json": {"b": 1, "a": [1, 2]},
                                                                "text/markdown": "**bold**"})]))
    reordered = _run(stored, c0=[nbf.display({"application/json": {"a": [1, 2], "b": 1},
                                              "text/markdown": "**bold**"})])
    assert compare_outputs(stored, reordered, path="n") == []
    changed = _run(stored, c0=[nbf.display({"application/json": {"a": [1, 3], "b": 1},
                                            "text/markdown": "**bold**"})])
    [finding] = compare_outputs(stored, changed, path="n")
    assert finding.evidence["mime_types"] == ["text/markdown", "application/json"]
