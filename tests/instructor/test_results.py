"""What comes out of a graded workspace, through the command line: export (grades.csv with
each submission's status, the maxima, the roster's students only, times and late
penalties), report (per-notebook figures and their numbers, sensible with no data, no text
cut) and feedback (formulas rendered and long lines wrapped, offline, in a real browser);
and the pieces they are built from."""

from __future__ import annotations

import csv
import datetime
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from grader.instructor import results
from grader.instructor.cli import main
from grader.instructor.feedback_html import MathMLRenderer, self_contained, to_mathml
from grader.instructor.report_figures import MIN_FONT, PALETTE, figures
from grader.instructor.workspace import Workspace, release_course

from helpers import A1, A5, Class, solutions

A3 = "03-sigmoid-then-bce"
DUE = datetime.datetime(2026, 1, 10, 12, 0, 0)        # 05's due date (UTC)
ON_TIME = datetime.datetime(2026, 1, 9, 8, 30, 0)
LATE = datetime.datetime(2026, 1, 11, 9, 15, 0)
ASSIGNMENTS = ["01-bce-vector", "02-bce-matrix", A3, "04-functional-form", A5, "06-class-imbalance"]
ROSTER = ["alice", "bob", "carol", "dave", "erin", "grace"]   # frank is not on it; erin hands in nothing
LONG_LINE = "x" * 400                                         # printed by carol's answer: one unbroken line
#: frank's Markdown: a heading with the placeholder the feedback once held formulas back with
FORGED_HEADING = '# My notes <span data-held-math="7">on the gradient</span>'
WRITTEN = r"Because $\sigma'(z) = \sigma(z)\,(1 - \sigma(z))$ vanishes when $|z|$ is large."


def _nbgrader_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")  # as nbgrader's exchange writes timestamp.txt


# --- a small graded class, built once --------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A released workspace, reported and exported before anything was handed in, then a small
    class collected, autograded (with a due date and nbgrader's 'zero' late penalty on 05),
    given a roster, exported, reported and sent feedback, all through the command line."""
    tmp = tmp_path_factory.mktemp("results")
    (tmp / "tmp").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp / "tmp"))  # what the grading processes write goes here
        ws = Workspace.at(tmp / "workspace")
        release_course(ws, tmp / "notebooks")
        with ws.config_file.open("a") as f:
            f.write("c.LateSubmissionPlugin.penalty_method = 'zero'\n")
        printed = {}

        def run(*argv, expect=0):
            code = main([*argv, "--workspace", str(ws.root)])
            assert code == expect, (argv, code)

        # nothing handed in yet
        run("export", "--out", str(tmp / "empty" / "grades.csv"))
        run("report", "--out", str(tmp / "empty" / "report"))

        with ws.gradebook() as gb:
            gb.update_or_create_assignment(A5, duedate=DUE)
        build = Class(ws)
        s1, s3, s5 = solutions(A1), solutions(A3), solutions(A5)
        no_clamp = re.sub(r"torch\.clamp\(([^,]+), min=-100\)", r"\1",
                          s1["bce_vector_solution"].replace(".clamp(min=-100)", ""))
        assert no_clamp != s1["bce_vector_solution"]
        written = json.loads(json.dumps(build.released[A3]))
        for cell in written["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "sigmoid_why":
                cell["source"] = WRITTEN
        build.released[f"{A3}+written"] = nbformat.from_dict(written)
        folder = tmp / "handed-in"
        folder.mkdir()
        handed_in = {
            ("alice", A1): build.notebook(A1, s1),
            ("alice", A5): build.notebook(A5, s5),
            ("bob", A1): build.notebook(A1),                     # handed in as released: blank
            ("carol", A1): build.notebook(A1, {**s1, "bce_vector_solution": no_clamp + f"\nprint({LONG_LINE!r})"}),
            ("dave", A3): build.notebook(f"{A3}+written", s3),   # a written answer to grade by hand
            ("grace", A5): build.notebook(A5, s5),               # late
            ("frank", A1): build.notebook(A1, s1),               # not on the roster
        }
        frank = nbformat.reads(handed_in[("frank", A1)], as_version=4)  # a placeholder of the feedback's own
        frank.cells.insert(1, nbformat.v4.new_markdown_cell(FORGED_HEADING))
        handed_in[("frank", A1)] = nbformat.writes(frank)
        for (student, assignment), text in handed_in.items():
            (folder / f"{student}_{assignment}.ipynb").write_text(text)
        run("collect", str(folder))
        for student, when in (("alice", ON_TIME), ("grace", LATE)):
            (ws.submitted(student, A5).parent / "timestamp.txt").write_text(_nbgrader_time(when))
        run("autograde", "--quiet")
        ws.write_json("roster.json", ROSTER)  # what `collect --roster` remembers
        run("export")
        run("report")
        run("feedback")
    return ws, tmp


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- export -------------------------------------------------------------------------------------

slow = pytest.mark.slow  # grades a small class once for the module: a minute or two


@slow
def test_export_marks_each_status_and_gives_the_maxima(course):
    ws, _ = course
    rows = _csv(ws.root / "grades.csv")
    assignments = ASSIGNMENTS
    header = ["student"]
    for a in assignments:
        header += [a, f"{a} status", f"{a} submitted (UTC)", f"{a} late penalty"]
    assert list(rows[0]) == header + [results.TOTAL, "handed in", "pending"]
    maximum, students = rows[0], rows[1:]
    assert maximum["student"] == "(maximum)"
    assert {a: maximum[a] for a in assignments} == {
        "01-bce-vector": "9", "02-bce-matrix": "8", A3: "9", "04-functional-form": "6", A5: "10",
        "06-class-imbalance": "9"}
    assert maximum[results.TOTAL] == "51" and maximum["handed in"] == "6"
    assert maximum[f"{A5} submitted (UTC)"] == "2026-01-10 12:00:00"   # the due date
    # the roster's students, all of them, and no one else
    assert [r["student"] for r in students] == ROSTER
    got = {(r["student"], a): (r[a], r[f"{a} status"]) for r in students for a in assignments}
    assert got[("alice", A1)] == ("9", "graded")
    assert got[("alice", A5)] == ("10", "graded")
    assert got[("bob", A1)] == ("0", "blank")
    assert got[("carol", A1)] == ("6", "graded")
    assert got[("dave", A3)] == ("8", "needs manual grading")  # 8 of 9: the written answer waits
    assert got[("grace", A5)] == ("0", "graded")               # late: nbgrader's 'zero' penalty
    assert all(got[("erin", a)] == ("", "missing") for a in assignments)
    assert got[("alice", "02-bce-matrix")] == ("", "missing")
    by = {r["student"]: r for r in students}
    assert by["grace"][f"{A5} late penalty"] == "10" and by["grace"][f"{A5} submitted (UTC)"] == "2026-01-11 09:15:00"
    assert by["alice"][f"{A5} late penalty"] == "" and by["alice"][f"{A5} submitted (UTC)"] == "2026-01-09 08:30:00"
    for r in students:
        scores = [float(r[a]) for a in assignments if r[a] != ""]
        assert float(r[results.TOTAL]) == sum(scores)
        assert int(r["handed in"]) == sum(r[f"{a} status"] != "missing" for a in assignments)
        for a in assignments:  # a score is a number or empty; a status is never a number
            assert r[a] == "" or _is_number(r[a])
            assert r[f"{a} status"] in (results.GRADED, results.BLANK, results.MANUAL, results.NOT_GRADED,
                                        results.MISSING)
            assert r[f"{a} status"] != "" and not _is_number(r[f"{a} status"])
            assert (r[a] == "") == (r[f"{a} status"] in ("missing", "not graded"))
    assert [by[s][results.TOTAL] for s in ROSTER] == ["19", "0", "6", "8", "0", "0"]
    assert by["dave"]["pending"] == "1" and by["alice"]["pending"] == "0"


@slow
def test_export_without_a_roster_lists_everyone_the_gradebook_knows(course, tmp_path):
    ws, _ = course
    roster = ws.root / "roster.json"
    saved = roster.read_text()
    roster.unlink()
    try:
        assert main(["export", "--workspace", str(ws.root), "--out", str(tmp_path / "all.csv")]) == 0
    finally:
        roster.write_text(saved)
    students = [r["student"] for r in _csv(tmp_path / "all.csv")[1:]]
    assert students == ["alice", "bob", "carol", "dave", "frank", "grace"]  # erin was never collected


@slow
def test_export_of_an_empty_workspace_is_a_header_and_the_maxima(course):
    _, tmp = course
    rows = _csv(tmp / "empty" / "grades.csv")
    assert len(rows) == 1 and rows[0]["student"] == "(maximum)" and rows[0][results.TOTAL] == "51"


# --- report -------------------------------------------------------------------------------------

@slow
def test_report_counts_only_those_who_handed_each_notebook_in(course, capsys):
    ws, _ = course
    data = json.loads((ws.root / "report" / "report.json").read_text())
    assert data["students"] == 6 and data["roster"] is True and data["left_out"] == ["frank"]
    assert data["submissions"] == 6
    n1, n3, n5 = (data["notebooks"][a] for a in (A1, A3, A5))
    assert n1["scores"] == {"alice": 9, "bob": 0, "carol": 6} and n1["blank"] == 1 and n1["missing"] == 3
    assert n1["mean"] == pytest.approx(5.0)
    assert n3["scores"] == {"dave": 8} and n3["needs_manual_grading"] == 1
    assert n5["scores"] == {"alice": 10, "grace": 0} and n5["late"] == 1 and n5["duedate"] == "2026-01-10 12:00:00"
    assert data["notebooks"]["02-bce-matrix"]["handed_in"] == 0 and data["notebooks"]["02-bce-matrix"]["mean"] is None
    assert data["totals"] == {"alice": 19, "bob": 0, "carol": 6, "dave": 8, "erin": 0, "grace": 0}
    assert data["mean"] == pytest.approx(33 / 6)
    # test cells in the order of the released notebook, never alphabetical
    released = nbformat.read(ws.root / "release" / A1 / f"{A1}.ipynb", as_version=4)
    order = [c.metadata.nbgrader.grade_id for c in released.cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert order == ["bce_vector_predict", "bce_vector_examples", "bce_vector_edges", "bce_vector_grad"]
    assert [t["cell"] for t in data["tests"].values() if t["assignment"] == A1] == order
    assert list(data["tests"]) != sorted(data["tests"])
    assert data["tests"][f"{A1}/bce_vector_edges"] == {"assignment": A1, "cell": "bce_vector_edges", "passed": 1,
                                                      "submissions": 3, "rate": pytest.approx(1 / 3)}
    # carol's missing clamp, as the checker names it, under 01's exercise
    exercise = data["categories"][A1]["binary_cross_entropy"]
    assert exercise["failing"]["edge values"] == 1 and "bce_vector_edges" in exercise["cells"]
    assert data["categories"][A5] == {}
    summary = (ws.root / "report" / "summary.txt").read_text()
    assert summary.startswith("6 students on the roster; 6 submissions of 6 notebooks; mean total 5.50 of 51")
    assert f"  {A3}: 1 of 6 students handed in, mean 8.00 of 9; 1 needs manual grading" in summary
    assert f"  {A1}: 3 of 6 students handed in (1 blank), mean 5.00 of 9" in summary
    assert f"  {A5}: 2 of 6 students handed in, mean 5.00 of 10; 1 late" in summary
    assert "  02-bce-matrix: no submissions yet" in summary
    assert f"  {A1} binary_cross_entropy: edge values 1 of 3" in summary
    assert "left out, not on the roster: frank" in summary
    for name in ("scores.png", "tests.png", "categories.png"):
        assert (ws.root / "report" / name).stat().st_size > 10_000, name
    # through the command line, again: it prints the summary and writes the same numbers
    assert main(["report", "--workspace", str(ws.root)]) == 0
    assert capsys.readouterr().out.strip() == summary.strip()
    assert json.loads((ws.root / "report" / "report.json").read_text()) == data


@slow
def test_report_of_an_empty_workspace_says_no_submissions_yet(course):
    _, tmp = course
    out = tmp / "empty" / "report"
    data = json.loads((out / "report.json").read_text())
    assert data["submissions"] == 0 and data["students"] == 0
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("0 students in the gradebook; 0 submissions of 6 notebooks")
    assert "1 submissions" not in summary and "no submissions yet" in summary
    texts = {name: _texts(figure) for name, figure in figures(data).items()}
    for name, shown in texts.items():
        assert any("no submissions yet" in t.get_text() for t in shown), name


def _texts(figure):
    """Every text the figure shows: visible, not empty, in a visible axes, and for a tick
    label, its tick in view (matplotlib keeps labels of ticks it does not draw)."""
    from matplotlib.text import Text

    hidden = set()
    for ax in figure.axes:
        if not ax.get_visible():
            hidden |= {id(t) for t in ax.findobj(Text)}
            continue
        for axis in (ax.xaxis, ax.yaxis):
            if not ax.axison or not axis.get_visible():  # an axis turned off draws no tick
                hidden |= {id(t.label1) for t in axis.get_major_ticks() + axis.get_minor_ticks()}
            low, high = sorted(axis.get_view_interval())
            locs, labels = axis.get_majorticklocs(), axis.get_majorticklabels()
            hidden |= {id(label) for loc, label in zip(locs, labels) if not low - 1e-9 <= loc <= high + 1e-9}
            hidden |= {id(t.label1) for t in axis.get_major_ticks()[len(locs):]}
            hidden |= {id(t.label2) for t in axis.get_major_ticks()}
    found = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden
             and (t.axes is None or t.axes.get_visible())]
    assert found
    return found


def check_figure(figure, name):
    """Nothing is cut at the figure's edge, no two texts overlap, every text is at least 10 pt."""
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    texts = _texts(figure)
    extents = []
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert extent.x0 >= box.x0 - 0.5 and extent.x1 <= box.x1 + 0.5, (name, text.get_text(), extent, box)
        assert extent.y0 >= box.y0 - 0.5 and extent.y1 <= box.y1 + 0.5, (name, text.get_text(), extent, box)
        assert text.get_fontsize() >= MIN_FONT, (name, text.get_text(), text.get_fontsize())
        extents.append((text.get_text(), extent))
    for i, (a, first) in enumerate(extents):
        for b, second in extents[i + 1:]:
            across = min(first.x1, second.x1) - max(first.x0, second.x0)
            up = min(first.y1, second.y1) - max(first.y0, second.y0)
            assert across <= 1 or up <= 1, (name, a, b)
    tight = figure.get_tightbbox(renderer)
    inches = figure.bbox_inches
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01 and tight.x1 <= inches.x1 + 0.01 and tight.y1 <= inches.y1 + 0.01


@slow
def test_no_text_is_cut_in_the_figures_of_a_class_or_of_an_empty_workspace(course):
    ws, tmp = course
    for out in (ws.root / "report", tmp / "empty" / "report"):
        data = json.loads((out / "report.json").read_text())
        for name, figure in figures(data).items():
            check_figure(figure, f"{out.parent.name}/{name}")


@slow
def test_figures_colour_by_notebook_and_label_every_bar(course):
    from matplotlib.colors import to_hex
    from matplotlib.patches import Rectangle

    ws, _ = course
    data = json.loads((ws.root / "report" / "report.json").read_text())
    drawn = figures(data)
    tests = drawn["tests.png"]
    ax = tests.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == f"{A1} (3 submissions)" and labels[1:5] == [
        "bce_vector_predict", "bce_vector_examples", "bce_vector_edges", "bce_vector_grad"]
    assert "02-bce-matrix: no submissions yet" in labels and f"{A3} (1 submission)" in labels
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert {to_hex(b.get_facecolor()).upper() for b in bars} == {PALETTE[0], PALETTE[2], PALETTE[4]}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [A1, A3, A5]
    assert sum("of 3 passed" in t.get_text() for t in ax.texts) == 4
    scores = drawn["scores.png"]
    assert [a.get_title().split("\n")[0] for a in scores.axes if a.get_visible()] == data["assignments"]
    assert scores.axes[0].get_title() == f"{A1}\n3 handed in, mean 5"
    assert sum(p.get_height() for p in scores.axes[0].patches) == 3  # alice, bob, carol: not frank, not erin
    categories = [t.get_text() for t in drawn["categories.png"].axes[0].get_yticklabels()]
    assert categories[0] == f"{A1} (3 submissions)" and "binary_cross_entropy: edge values" in categories


def test_figures_with_many_notebooks_and_long_names_fit():
    names = [f"{i:02d}-a-notebook-with-a-rather-long-name-{i}" for i in range(1, 9)]
    data = {
        "assignments": names, "roster": True, "left_out": [], "students": 120, "submissions": 500,
        "maxima": {n: 12.5 for n in names}, "maximum": 100.0, "totals": {}, "mean": 0.0,
        "notebooks": {n: {"maximum": 12.5, "handed_in": 100, "scores": {f"s{k}": (k % 50) / 4 for k in range(100)},
                          "mean": 6.0} for n in names},
        "tests": {f"{n}/check_{k}_of_a_long_function_name": {
            "assignment": n, "cell": f"check_{k}_of_a_long_function_name", "passed": k * 10, "submissions": 100,
            "rate": k / 10} for n in names for k in range(4)},
        "categories": {n: {"binary_cross_entropy_with_logits": {"cells": ["x"], "failing": {
            "inputs unchanged": 100, "edge values": 3}}} for n in names},
        "failing_categories": {},
    }
    for name, figure in figures(data).items():
        check_figure(figure, name)


def test_plurals():
    assert results.plural(1, "submission") == "1 submission"
    assert results.plural(0, "submission") == "0 submissions"
    assert results.plural(2, "student") == "2 students"


# --- the pieces of export and report --------------------------------------------------------------

def _cell(grade_id, source, *, solution=False, grade=False, cell_type="code", outputs=()):
    cell = {"cell_type": cell_type, "source": source, "metadata": {
        "nbgrader": {"grade_id": grade_id, "solution": solution, "grade": grade}}}
    if cell_type == "code":
        cell["outputs"] = list(outputs)
    return cell


def test_a_submission_is_blank_when_every_solution_cell_is_still_the_stub():
    released = {"cells": [
        _cell("a", "# YOUR CODE HERE\nraise NotImplementedError()", solution=True),
        _cell("a_test", "assert f(1) == 2", grade=True),
        _cell("why", "YOUR ANSWER HERE", solution=True, grade=True, cell_type="markdown"),
        {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []},
    ]}
    stubs = results.solution_stubs(released)
    assert stubs == {"a": "# YOUR CODE HERE\nraise NotImplementedError()", "why": "YOUR ANSWER HERE"}
    assert results.ordered_tests(released) == ["a_test"]
    same = json.loads(json.dumps(released))
    same["cells"][0]["source"] = ["# YOUR CODE HERE\n", "raise NotImplementedError()  \n\n"]  # as saved, lines
    same["cells"][3]["source"] = "x = 2  # other cells may change"
    assert results.is_blank(same, stubs)
    deleted = {"cells": [c for c in same["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != "why"]}
    assert results.is_blank(deleted, stubs)
    answered = json.loads(json.dumps(released))
    answered["cells"][2]["source"] = "Because the gradient vanishes."
    assert not results.is_blank(answered, stubs)
    assert not results.is_blank(None, stubs) and not results.is_blank(same, {})


def test_failing_categories_come_from_the_checkers_summary_lines():
    report = ("binary_cross_entropy compared with torch\n  FAILED   edge values  2 of 4 cases\n\n"
              "binary_cross_entropy: FAILED in edge values, dtypes\n")
    notebook = {"cells": [
        _cell("edges", "grader.assert_passes(...)", grade=True, outputs=[
            {"output_type": "error", "ename": "AssertionError", "evalue": report, "traceback": []}]),
        _cell("grad", "grader.assert_passes(...)", grade=True, outputs=[
            {"output_type": "error", "ename": "AssertionError",
             "evalue": "binary_cross_entropy_grad: FAILED in gradients", "traceback": []},
            {"output_type": "error", "ename": "NameError", "evalue": "x: FAILED in nothing", "traceback": []}]),
    ]}
    assert results.failing_categories(notebook) == {
        "binary_cross_entropy": {"edge values": {"edges"}, "dtypes": {"edges"}},
        "binary_cross_entropy_grad": {"gradients": {"grad"}}}
    assert results.failing_categories(None) == {}


def test_a_damaged_roster_is_an_error_that_says_what_to_do(tmp_path):
    ws = Workspace(tmp_path)
    assert results.roster(ws) is None
    (tmp_path / "roster.json").write_text("[not json")
    with pytest.raises(results.WorkflowError, match="collect once with --roster FILE"):
        results.roster(ws)
    (tmp_path / "roster.json").write_text('{"alice": 1}')
    with pytest.raises(results.WorkflowError, match="not a list of student ids"):
        results.roster(ws)
    (tmp_path / "roster.json").write_text('["bob", "alice", "bob"]')
    assert results.roster(ws) == ["alice", "bob"]


def test_numbers_are_plain_decimals():
    assert [results._number(x) for x in (0, 9, 9.5, 1 / 3, 1234567.0, -0.0)] == [
        "0", "9", "9.5", "0.3333", "1234567", "0"]


# --- feedback -----------------------------------------------------------------------------------

def _markdown(source: str) -> str:
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    return MarkdownWithMath(renderer=MathMLRenderer(escape=False)).render(source)


def test_formulas_become_mathml_with_their_source_as_annotation():
    page = _markdown("## Clamped at $-100$\n\nThe mean $\\frac{1}{N}\\sum_i \\ell_i$ and\n\n"
                     "$$L = -\\frac{1}{N} \\sum_{i=1}^N \\log P(y_i \\mid p_i) < \\infty$$\n")
    assert "$" not in page
    assert page.count("<math ") == 3 and 'display="block"' in page and "<mfrac>" in page
    assert "ns0:" not in page  # the heading's anchor did not mangle the MathML
    assert '<h2 id="Clamped-at--100">' in page
    assert '<annotation encoding="application/x-tex">\\frac{1}{N}\\sum_i \\ell_i</annotation>' in page
    assert "&lt; \\infty</annotation>" in page and "<mo>&#x0003C;</mo>" in page


def test_a_formula_that_cannot_be_read_stays_as_its_source():
    from unittest import mock

    with mock.patch("latex2mathml.converter.convert", side_effect=ValueError("no")):
        assert to_mathml("a < b") == '<code class="math-source">$a &lt; b$</code>'


def test_the_page_loads_nothing_and_wraps_long_lines():
    page = ('<html><head><script src="https://cdn.example/mathjax.js"></script>'
            '<script type="text/x-mathjax-config">init()</script></head><body>'
            '<a href="https://colab.example/x"><img alt="Open In Colab" src="https://colab.example/badge.svg"/></a>'
            '<img alt="figure" src="data:image/png;base64,AAAA"/>'
            '<div class="output_latex output_subarea">$$\\frac{a}{b}$$</div></body></html>')
    out = self_contained(page)
    assert "<script" not in out and "cdn.example" not in out and "badge.svg" not in out
    assert '<span class="remote-image">Open In Colab</span>' in out and 'src="data:image/png' in out
    assert re.search(r'<div class="output_latex output_subarea"><math [^>]*display="block"', out) and "$$" not in out
    assert "white-space: pre-wrap" in out and "overflow-wrap: anywhere" in out


def test_a_notebooks_html_can_neither_run_nor_load_anything_in_the_feedback():
    """What a student's output or Markdown may hold: event handlers, script links (disguised
    with blanks), frames, a refresh, a base, a style sheet, a form, a data: page."""
    from grader.instructor.feedback_html import POLICY

    hostile = ('<img src=x onerror="alert(1)"><a href=" java\tscript:alert(2)">a</a>'
               '<a href="https://example.org/">a link</a><iframe src="https://evil.example"></iframe>'
               '<meta http-equiv="refresh" content="0;url=https://evil.example">'
               '<link rel="stylesheet" href="https://evil.example/x.css"><base href="https://evil.example/">'
               '<svg onload="alert(3)"><a xlink:href="javascript:alert(4)"><text>x</text></a></svg>'
               '<form action="https://evil.example"><input name=a></form><object data="x.swf"></object>'
               '<a href="data:text/html,&lt;script&gt;alert(5)&lt;/script&gt;">d</a>'
               '<img alt="figure" src="data:image/png;base64,AAAA"><div onmouseover="alert(6)">text</div>')
    page = f'<html><head><meta charset="utf-8"/><title>t</title></head><body><div class="x">{hostile}</div></body></html>'
    out = self_contained(page)
    head = re.search(r"<head>(.*?)</head>", out, re.S).group(1)
    assert head.startswith(f'<meta http-equiv="Content-Security-Policy" content="{POLICY}"><meta charset="utf-8">')
    body = out.split("</head>", 1)[1]
    assert not re.search(r"(?i)<(iframe|meta|link|base|form|object|script)\b", body), body
    assert not re.search(r"(?i)\son\w+=", body) and "script:" not in body and "data:text" not in body, body
    assert 'href="https://example.org/"' in body and 'src="data:image/png;base64,AAAA"' in body
    assert "text</div>" in body and ">a link</a>" in body  # the text stays


def test_feedback_says_how_to_install_what_renders_formulas(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "latex2mathml"
                        else find_spec(name, *a))
    with pytest.raises(results.WorkflowError, match=r"pip install 'bce-course\[instructor\]'"):
        results.feedback(Workspace(tmp_path))


def test_the_course_configures_the_feedback_exporter():
    from traitlets.config.loader import PyFileConfigLoader

    from grader.instructor.release import COURSE_DIR

    config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_DIR)).load_config()
    assert config.GenerateFeedback.exporter_class == "grader.instructor.feedback_html.FeedbackExporter"


@slow
def test_feedback_is_self_contained_html_with_mathml(course):
    ws, _ = course
    files = sorted((ws.root / "feedback").rglob("*.html"))
    assert {(p.parts[-3], p.parts[-2]) for p in files} >= {
        ("alice", A1), ("alice", A5), ("bob", A1), ("carol", A1), ("dave", A3), ("grace", A5)}
    page = (ws.root / "feedback" / "carol" / A1 / f"{A1}.html").read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["'](https?:)?//[^"']*\.(js|css|svg|png|woff2?)""", page)
    assert page.count("<math ") > 100 and "<mfrac>" in page and "ns0:" not in page
    assert LONG_LINE in page and "Hint:" in page
    written = (ws.root / "feedback" / "dave" / A3 / f"{A3}.html").read_text()
    assert "<annotation encoding=\"application/x-tex\">\\sigma'(z) = \\sigma(z)\\,(1 - \\sigma(z))</annotation>" \
        in written  # the student's own formula, in the written answer


@slow
def test_a_heading_with_a_placeholder_of_its_own_stops_no_ones_feedback(course):
    """The fixture wrote everyone's feedback (its command exits 0), frank's with his words."""
    ws, _ = course
    page = (ws.root / "feedback" / "frank" / A1 / f"{A1}.html").read_text()
    assert '<h1 id="My-notes-on-the-gradient">My notes <span data-held-math="7">on the gradient</span>' in page


@slow
def test_feedback_that_fails_for_one_student_is_written_for_the_others(course, monkeypatch, capsys):
    from grader.instructor.feedback_html import FeedbackExporter

    ws, _ = course
    render = FeedbackExporter.from_notebook_node

    def fails_for_frank(self, nb, resources=None, **kw):
        if any(FORGED_HEADING in cell.source for cell in nb.cells):
            raise RuntimeError("this page cannot be written")
        return render(self, nb, resources, **kw)

    frank, grace = ws.root / "feedback" / "frank" / A1 / f"{A1}.html", ws.root / "feedback" / "grace" / A5 / f"{A5}.html"
    grace.unlink()
    with monkeypatch.context() as patch:
        patch.setattr(FeedbackExporter, "from_notebook_node", fails_for_frank)
        code = main(["feedback", "--student", "frank", "--student", "grace", "--workspace", str(ws.root)])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error: nbgrader could not write feedback for 1 notebook (everyone else's "
                                          f"is written: 1 file under {ws.root / 'feedback'}):\n"), error
    assert f"\n  frank {A1}: RuntimeError: this page cannot be written" in error
    assert grace.is_file() and not frank.exists()  # grace's, after frank's failure; nbgrader removed his
    assert main(["feedback", "--student", "frank", "--workspace", str(ws.root)]) == 0  # as it was, for the others
    assert frank.is_file()


# --- feedback in a real browser, offline --------------------------------------------------------

#: In the page: the formulas and how they are laid out, the long lines and how they fit.
MEASURE = """() => {
    const maths = Array.from(document.querySelectorAll('math'));
    const frac = document.querySelector('.text_cell_render math mfrac');
    const [top, bottom] = frac ? Array.from(frac.children).map(e => e.getBoundingClientRect()) : [null, null];
    const prose = Array.from(document.querySelectorAll('.text_cell_render')).map(e => {
        const copy = e.cloneNode(true);
        copy.querySelectorAll('math, code, pre').forEach(m => m.remove());
        return copy.textContent;
    }).join('\\n');
    const pre = text => Array.from(document.querySelectorAll('pre')).filter(p => p.textContent.includes(text))
        .map(p => { const r = p.getBoundingClientRect(); const style = getComputedStyle(p);
                    return {left: r.left, right: r.right, height: r.height, scroll: p.scrollWidth,
                            client: p.clientWidth, line: parseFloat(style.lineHeight) || 16}; });
    return {
        maths: maths.length,
        displays: maths.map(m => getComputedStyle(m).display),
        sized: maths.filter(m => m.getBoundingClientRect().height > 0).length,
        frac: frac ? {numeratorBottom: top.bottom, denominatorTop: bottom.top, numeratorLeft: top.left,
                      denominatorLeft: bottom.left} : null,
        prose,
        page: document.documentElement.scrollWidth, viewport: window.innerWidth,
        hint: pre('Hint: torch clamps'), long: pre('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'),
    };
}"""


@pytest.mark.browser
@slow
@pytest.mark.parametrize("student, assignment", [("carol", A1), ("dave", A3)])
def test_feedback_renders_maths_and_wraps_long_lines_offline_in_chromium(course, browser, student, assignment):
    ws, _ = course
    path = ws.root / "feedback" / student / assignment / f"{assignment}.html"
    page = browser.new_page(viewport={"width": 800, "height": 900})  # a narrow window; about A4 portrait
    try:
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())  # offline
        page.goto(path.as_uri(), wait_until="load")
        seen = page.evaluate(MEASURE)
    finally:
        page.close()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # it fetches nothing
    assert seen["maths"] > 50 and seen["sized"] == seen["maths"]
    assert set(seen["displays"]) <= {"inline math", "block math", "math"}, set(seen["displays"])
    frac = seen["frac"]  # laid out as maths: the numerator above the denominator
    assert frac and frac["numeratorBottom"] <= frac["denominatorTop"] + 1, frac
    assert "$" not in seen["prose"] and not re.search(r"\\[a-zA-Z]{2,}", seen["prose"]), \
        re.findall(r".{30}(?:\$|\\[a-zA-Z]{2,}).{30}", seen["prose"])[:3]
    assert seen["page"] <= seen["viewport"], seen  # nothing runs off the page
    if assignment == A1:
        wrapped = seen["hint"] + seen["long"]
        assert seen["hint"] and seen["long"]
        for box in wrapped:  # each long line wraps inside its box, within the page
            assert box["scroll"] <= box["client"] + 1 and box["right"] <= seen["viewport"], box
        assert max(b["height"] for b in seen["long"]) > 3 * seen["long"][0]["line"]  # 400 characters: lines


def test_the_summary_text_quotes_names_on_one_line_each():
    """summary.txt is read in a terminal (cat, less): a student's name or a category that holds a
    line break or an escape sequence neither starts a row of its own nor drives the terminal."""
    name = "01-a"
    data = {
        "assignments": [name], "roster": True, "left_out": ["eve\nfrank: 10/10\x1b]0;owned\x07"], "students": 1,
        "submissions": 1, "maxima": {name: 1.0}, "maximum": 1.0, "totals": {}, "mean": 0.0,
        "notebooks": {name: {"maximum": 1.0, "handed_in": 1, "blank": 0, "mean": 0.0, "needs_manual_grading": 0,
                             "late": 0, "not_graded": 0, "scores": {}}},
        "tests": {}, "categories": {name: {"bce\r\nalice": {"cells": ["x"], "failing": {"edge\x1b[2J": 1}}}},
        "failing_categories": {},
    }
    text = results.summary_text(data)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "eve\\nfrank: 10/10\\x1b]0;owned\\x07" in text
    assert "01-a bce\\r\\nalice: edge\\x1b[2J 1 of 1" in text
    assert len(text.splitlines()) == len(results.summary_text({**data, "left_out": ["eve"], "categories": {
        name: {"bce": {"cells": ["x"], "failing": {"edge": 1}}}}}).splitlines())
