"""The terminal report (``render.text``): severity order, width, units, --verbose, colour, escapes, summary.

Findings are real ones built with ``findings.make`` and real codes; the report is rendered into a
StringIO, with a forced width where the width matters.
"""

from __future__ import annotations

import io
import re

import pytest

from nbmedic.execute.batch import run_note
from nbmedic.execute.result import CellRecord, RunResult
from nbmedic.findings import Finding, make
from nbmedic.render.text import render_text, report_width

NB = "work/analysis.ipynb"


def _render(findings: list[Finding], files: list[str] | None = None, **kwargs: object) -> str:
    stream = io.StringIO()
    render_text(findings, files=[NB] if files is None else files, stream=stream, **kwargs)  # type: ignore[arg-type]
    return stream.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _killed() -> Finding:
    return make("RN101", NB, "the kernel was killed for memory while running cell 3", cell=3, evidence={
        "peak_rss": 3 * 2**30, "limit": 2 * 2**30, "limits": {"--memory-limit": 2 * 2**30, "the machine's RAM": 25276063744},
        "killed_by_watchdog": True, "cgroup_oom_kills": 0, "pid": 4242})


def _raised() -> Finding:
    traceback = ("KeyError                                  Traceback (most recent call last)\n"
                 "Cell In[2], line 1\n----> 1 batch = settings['batch_size']\n\nKeyError: 'batch_size'")
    return make("RN120", NB, "cell 1 raised KeyError: 'batch_size'", cell=1, evidence={
        "ename": "KeyError", "evalue": "'batch_size'", "traceback": traceback, "allow_errors": False})


def _mixed() -> list[Finding]:
    return [
        make("NB013", NB, "execution counts start at 4 instead of 1", cell=0, evidence={"first_count": 4}),
        make("NB040", NB, "cell 2 uses 1 absolute path", cell=2, evidence={"paths": ["/home/a/x.csv"], "count": 1}),
        _raised(),
        make("NB002", NB, "the file holds git conflict markers on 3 line(s)", evidence={"markers": 3}),
        _killed(),
    ]


def test_findings_are_grouped_per_file_errors_first_then_by_cell() -> None:
    other = "work/other.ipynb"
    found = [*_mixed(), make("NB030", other, "the notebook names no kernel")]
    text = _render(found, files=[NB, other, "work/fine.ipynb"])
    lines = text.splitlines()
    codes = [m.group(1) for line in lines if (m := re.match(r"^  . (\w{2}\d{3}) ", line))]
    assert codes == ["NB002", "RN120", "RN101", "NB040", "NB013", "NB030"]  # severity, then file first, by cell
    headers = [line for line in lines if not line.startswith(" ")]
    assert headers[0] == f"✗ {NB}"  # the worst severity's mark, though the first by cell is info
    assert headers[1] == "! work/other.ipynb" and headers[2] == "✓ work/fine.ipynb  no problems found"
    assert "  ✗ RN120 cell 1: cell 1 raised KeyError: 'batch_size'" in lines
    assert "  ✗ NB002 file: the file holds git conflict markers on 3 line(s)" in lines


def test_each_finding_is_a_headline_its_key_facts_and_its_fix() -> None:
    lines = _render([_raised()], width=120).splitlines()
    assert lines[1:4] == [
        "  ✗ RN120 cell 1: cell 1 raised KeyError: 'batch_size'",
        # ename and evalue are in the headline: the traceback's innermost frame and its code line are not
        "    traceback: Cell In[2], line 1: batch = settings['batch_size']",
        "    fix: fix the cell (the evidence has the exception and a short traceback), or run with `--allow-errors`",
    ]


def test_eighty_columns_clip_every_line_and_the_facts_show_what_the_clip_hides() -> None:
    long = make("RN101", NB, "the kernel was killed for memory while running cell 3: its processes used 3.0 GiB, "
                "over the --memory-limit of 2.0 GiB", cell=3, evidence=_killed().evidence)
    text = _render([long], width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines[:-1]) == 80 and lines[1].endswith("…")
    assert lines[1].startswith("  ✗ RN101 cell 3: the kernel was killed for memory")
    assert lines[2].startswith("    peak_rss: 3.0 GiB · limit: 2.0 GiB · limits: --memory-limit=2.0 GiB, t")
    wide = _render([long], width=200).splitlines()
    assert "peak_rss" not in wide[2] and wide[2].startswith("    limits: ")  # the headline tells the rest


def test_the_width_is_the_terminals_or_100_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert report_width(io.StringIO()) == 100
    assert report_width(_Terminal()) == 80  # a terminal whose size cannot be read (no file descriptor)
    monkeypatch.setenv("COLUMNS", "72")
    assert report_width(io.StringIO()) == 100 and report_width(_Terminal()) == 72
    monkeypatch.setenv("COLUMNS", "8")
    assert report_width(_Terminal()) == 40  # never narrower than that


def test_values_print_with_their_units_never_a_raw_byte_count() -> None:
    text = _render([_killed()], verbose=True)
    assert "peak_rss: 3.0 GiB" in text and "limit: 2.0 GiB" in text
    assert "limits: --memory-limit=2.0 GiB, the machine's RAM=23.5 GiB" in text  # a mapping under a bytes key
    assert "25276063744" not in text and "3221225472" not in text
    flood = make("RN130", NB, "cell 0 printed too much", cell=0, evidence={
        "total": 3 * 2**20, "max_output": 100 * 2**10, "kept": 100 * 2**10, "dropped": 2 * 2**20})
    folded = _render([flood])
    assert "total: 3.0 MiB · max_output: 100.0 KiB · kept: 100.0 KiB" in folded
    lines = make("NB022", NB, "cell 0 printed a lot", cell=0, evidence={"lines": 12000, "limit": 10000})
    assert "lines: 12,000 lines · limit: 10,000 lines" in _render([lines])


def test_undeclared_subkeys_of_a_nested_layout_are_left_out_not_printed_raw() -> None:
    trend = {"rss_first": 2**20, "rss_last": 2**30, "rss_max": 2**30, "seconds": 1.5,
             "rss_growth_per_s": 768106401, "samples": [[0.1, 46911488]]}
    died = make("RN103", NB, "the kernel process exited by itself with code 3", cell=0,
                evidence={"exit_code": 3, "rss_trend": trend})
    text = _render([died], verbose=True, width=200)
    assert ("rss_trend: rss_first=1.0 MiB, rss_last=1.0 GiB, rss_max=1.0 GiB, seconds=1.5 s, "
            "rss_growth_per_s=732.5 MiB\n") in text  # a declared sub-key in its unit
    assert "768106401" not in text and "46911488" not in text  # samples: not declared, left out


def test_verbose_shows_every_fact_and_multi_line_excerpts() -> None:
    folded = _render([_killed(), _raised()])
    assert "killed_by_watchdog" not in folded and "pid" not in folded and "Traceback" not in folded
    text = _render([_killed(), _raised()], verbose=True)
    for fact in ("peak_rss: 3.0 GiB", "killed_by_watchdog: yes", "cgroup_oom_kills: 0", "pid: 4242",
                 "ename: KeyError", "allow_errors: no"):
        assert f"\n    {fact}\n" in text, fact
    assert "\n    traceback:\n      KeyError                                  Traceback (most recent call last)\n" \
           "      Cell In[2], line 1\n      ----> 1 batch = settings['batch_size']\n      KeyError: 'batch_size'\n" in text


def test_verbose_wraps_long_lines_instead_of_clipping() -> None:
    words = " ".join(f"word{i}" for i in range(40))
    text = _render([make("NB030", NB, f"the notebook names no kernel: {words}")], verbose=True, width=60)
    lines = text.splitlines()
    assert max(len(line) for line in lines[:-1]) <= 60 and "…" not in text
    assert "word39" in text and lines[2].startswith("      word")  # continued under the headline


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal = _Terminal()
    render_text(_mixed(), files=[NB], stream=terminal)
    assert "\x1b[1;31m✗ \x1b[0m" in terminal.getvalue() and "\x1b[32mfix: \x1b[0m" in terminal.getvalue()
    assert "\x1b[" not in _render(_mixed())  # not a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    render_text(_mixed(), files=[NB], stream=terminal)
    assert "\x1b" not in terminal.getvalue()


def test_colour_does_not_count_toward_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = _Terminal()
    render_text([_killed()], files=[NB], stream=terminal, width=50)
    visible = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in terminal.getvalue().splitlines()]
    assert max(len(line) for line in visible[:-1]) == 50


@pytest.mark.parametrize("verbose", [False, True])
def test_escape_sequences_from_notebooks_never_reach_the_terminal(verbose: bool) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b31m\x07bell\tTab"
    found = make("RN120", "work/\x1b[2Jname.ipynb", f"cell 0 raised ValueError: {evil}", cell=0,
                 evidence={"ename": "ValueError", "evalue": evil, "traceback": f"Cell In[1], line 1\n----> 1 {evil}"},
                 fix=f"fix {evil}")
    text = _render([found], files=["work/\x1b[2Jname.ipynb"], verbose=verbose, title=f"title {evil}")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)  # no ESC, BEL, CSI, tab: only newlines
    assert "red?31m?bell    Tab" in text and "work/name.ipynb" in text


def test_healthy_files_fold_into_one_line_when_many() -> None:
    files = [f"nb{i}.ipynb" for i in range(6)]
    text = _render([make("NB030", "nb2.ipynb", "the notebook names no kernel")], files=files)
    lines = text.splitlines()
    assert lines[0] == "! nb2.ipynb"
    assert lines[-2] == "✓ 5 notebooks without problems: nb0.ipynb, nb1.ipynb, nb3.ipynb, nb4.ipynb, nb5.ipynb"
    narrow = _render([], files=files, width=60).splitlines()
    assert narrow[0] == "✓ 6 notebooks without problems: nb0.ipynb, … and 5 more"  # whole names only
    verbose = _render([make("NB030", "nb2.ipynb", "the notebook names no kernel")], files=files, verbose=True)
    assert "✓ nb5.ipynb  no problems found" in verbose  # each on its own line with --verbose


def test_findings_in_a_row_with_the_same_fix_share_one_fix_line() -> None:
    fix = "restart the kernel and run all cells top to bottom, then save"
    found = [make("NB012", NB, "cell 2 was never run", cell=2), make("NB011", NB, "cell 3 was run before cell 1", cell=3)]
    lines = _render(found).splitlines()
    assert lines[1:] == ["  ! NB012 cell 2: cell 2 was never run", "  ! NB011 cell 3: cell 3 was run before cell 1",
                         f"    fix (2 findings): {fix}", "1 notebook checked: 0 errors, 2 warnings, 0 info"]


def _note(status: str, seconds: float) -> str:
    cells = [CellRecord(index=0, id="a", status="ok"), CellRecord(index=1, id="b", status="error")]
    return "ran: " + run_note(RunResult(path=NB, status=status, duration=seconds, cells=cells, peak_rss=2**27))  # type: ignore[arg-type]


def test_the_summary_counts_severities_notebooks_and_runs() -> None:
    files = [NB, "b.ipynb", "c.ipynb"]
    notes = {NB: _note("died", 1.25), "b.ipynb": _note("ok", 2.0)}
    text = _render(_mixed(), files=files, notes=notes, summary="examined", title="nbmedic doctor: 3 notebooks")
    lines = text.splitlines()
    assert lines[0] == "nbmedic doctor: 3 notebooks"
    assert lines[1] == f"✗ {NB}  {notes[NB]}"  # the note (run_note's own words) on the file's header
    assert lines[-1] == "3 notebooks examined: 3 errors, 1 warning, 1 info · 2 runs, 1 failed, 3.2 s"
    assert _render([], files=[NB]).splitlines()[-1] == "1 notebook checked: 0 errors, 0 warnings, 0 info"
    narrow = _render(_mixed(), files=files, notes=notes, summary="examined", width=60).splitlines()[-1]
    assert narrow == "3 notebooks examined: 3 errors, 1 warning, 1 info"  # the runs part left out, never clipped


def test_show_info_false_hides_info_findings() -> None:
    text = _render(_mixed(), show_info=False)
    assert "NB013" not in text and text.splitlines()[-1] == "1 notebook checked: 3 errors, 1 warning, 0 info"
