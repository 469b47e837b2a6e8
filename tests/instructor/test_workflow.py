"""The instructor's workflow end to end, as the README tells it: release, collect,
autograde, feedback, export, report, on a class of synthetic submissions built
from the released notebooks."""

import csv
import html
import json
import re
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader.instructor import release
from grader.instructor.cli import main
from grader.instructor.grading import edited_test_cells
from grader.instructor.results import grades
from grader.instructor.workspace import Workspace

from helpers import A1, A5, Class, hidden_lines, solutions

pytestmark = pytest.mark.slow  # grades a class, or builds an environment: minutes


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A workspace after the whole workflow, with what each command printed."""
    tmp = tmp_path_factory.mktemp("course")
    ws = Workspace.at(tmp / "workspace")
    printed = {}

    def run(*argv, expect=0, capsys=None):
        code = main([*argv, "--workspace", str(ws.root)])
        assert code == expect, (argv, code)

    run("release", "--out", str(tmp / "notebooks"))
    assert release.differences(tmp / "notebooks", release.REPO_ROOT / "notebooks") == []

    build = Class(ws)
    s1, s5 = solutions(A1), solutions(A5)
    no_clamp = s1["bce_vector_solution"].replace(".clamp(min=-100)", "").replace("clamp(min=-100)", "")
    no_clamp = re.sub(r"torch\.clamp\(([^,]+), min=-100\)", r"\1", no_clamp)
    assert no_clamp != s1["bce_vector_solution"], "the partial answer must differ from the solution"
    warning = ("import warnings, sys\nwarnings.warn('this is deprecated', DeprecationWarning)\n"
               "print('a message on stderr', file=sys.stderr)\n" + s1["bce_vector_solution"].replace(
                   "    return ", "    warnings.warn('computing the loss', UserWarning)\n"
                   "    print('computing', file=sys.stderr)\n    return ", 1))
    assert "warnings.warn('computing" in warning
    tests1 = [c.metadata.nbgrader.grade_id for c in build.released[A1].cells
              if c.get("metadata", {}).get("nbgrader", {}).get("grade")]

    colab = tmp / "downloads"          # what Colab students download and mail or upload
    colab.mkdir()
    (colab / f"frank_{A1}.ipynb").write_text(build.notebook(A1, {**s1, "bce_vector_solution": warning}))
    (colab / f"dave_{A1}.ipynb").write_text(build.notebook(A1, {**s1, "bce_vector_solution": no_clamp}))
    (colab / f"grace_{A1}.ipynb").write_text(build.notebook(A1, edit={t: "pass" for t in tests1}))
    (colab / f"heidi_{A1}.ipynb").write_text(build.notebook(A1, s1, delete=[tests1[0]]))
    (colab / f"ivan_{A1}.ipynb").write_text("This is not a notebook.\n")
    (colab / f"judy_{A1}.ipynb").write_text(build.notebook(A1, s1)[:500])
    (colab / f"mallory_{A1}.ipynb").write_text(build.notebook(A5, s5))
    (colab / f"oscar_{A1}.ipynb").write_text(build.notebook(A1, s1))
    (colab / "oscar").mkdir()
    (colab / "oscar" / f"{A1}.ipynb").write_text(build.notebook(A1))
    (colab / f"{A1}.ipynb").write_text(build.notebook(A1, s1))   # no student id in the name

    lms = tmp / "lms-export.zip"       # a folder per student, as many LMS exports are
    with zipfile.ZipFile(lms, "w") as z:
        z.writestr(f"alice/{A1}.ipynb", build.notebook(A1, s1))
        z.writestr(f"alice/{A5}.ipynb", build.notebook(A5, s5))
        z.writestr(f"bob/{A1}.ipynb", build.notebook(A1))
        z.writestr(f"carol/{A1}.ipynb", build.notebook(A1, {"bce_vector_solution": s1["bce_vector_solution"]}))

    roster = tmp / "roster.csv"
    roster.write_text("id\n" + "\n".join(["alice", "bob", "carol", "dave", "erin", "frank", "grace",
                                          "heidi", "ivan", "judy", "mallory", "oscar"]) + "\n")

    for attempt in range(2):  # collecting again changes nothing
        run("collect", str(colab), str(lms), "--roster", str(roster), expect=1)
        printed[f"collect{attempt}"] = json.loads((ws.root / "collect-report.json").read_text())
    for attempt in range(2):  # grading again changes nothing
        run("autograde", "--quiet")
        printed[f"grades{attempt}"] = grades(ws)
    run("feedback")
    run("export")
    first_csv = (ws.root / "grades.csv").read_text()
    run("export")
    assert (ws.root / "grades.csv").read_text() == first_csv
    run("report")
    return ws, printed, tmp


EXPECTED = {  # student: {assignment: score}; 01 has 9 points: 2 for the prediction, 2 + 3 for the loss,
    #                                     2 for its gradient; 05 has 10
    "alice": {A1: 9, A5: 10},  # everything right, both notebooks
    "bob": {A1: 0},            # handed in unchanged
    "carol": {A1: 5},          # the loss right, its prediction and gradient not written
    "dave": {A1: 6},           # no clamp at -100: the examples pass, the edge cases fail; the rest right
    "frank": {A1: 9},          # right, but warns and writes to stderr
    "grace": {A1: 0},          # replaced the tests by `pass`: graded with the original tests
    "heidi": {A1: 9},          # deleted a test cell: graded with it put back
}


def test_every_student_gets_exactly_the_expected_score(course):
    ws, printed, _ = course
    assignments, table = printed["grades1"]
    for student, scores in EXPECTED.items():
        for assignment in assignments:
            assert table[student][assignment] == scores.get(assignment, 0), (student, assignment)
    assert printed["grades0"] == printed["grades1"]


def test_malformed_and_unmatched_input_is_reported_and_skipped(course):
    ws, printed, _ = course
    report = printed["collect0"]
    problems = {Path(p["origin"].split(":")[-1]).name + " | " + p["problem"] for p in report["problems"]}
    text = "\n".join(sorted(problems))
    assert re.search(r"ivan_01-bce-vector.ipynb \| (invalid JSON|not a Jupyter notebook)", text), text
    assert re.search(r"judy_01-bce-vector.ipynb \| (invalid JSON|not a Jupyter notebook)", text), text
    assert "mallory_01-bce-vector.ipynb | named '01-bce-vector' but it is the notebook of '05-bce-with-logits'" in text
    assert "2 files for oscar and 01-bce-vector" in text
    assert f"{A1}.ipynb | no student id in its name" in text
    collected = {(c["student"], c["assignment"]) for c in report["collected"]}
    assert collected == {(s, a) for s, scores in EXPECTED.items() for a in scores}
    missing = {(m["student"], m["assignment"]) for m in report["missing"]}
    assert ("erin", A1) in missing and ("oscar", A1) in missing and ("ivan", A1) in missing
    # nothing was guessed: the skipped students have no submission at all
    for student in ("ivan", "judy", "mallory", "oscar", "erin"):
        assert not (ws.root / "submitted" / student).exists()
    assert all(c["status"] == "unchanged" for c in printed["collect1"]["collected"])


def test_tampered_test_cells_are_flagged(course):
    ws, _, _ = course
    assert edited_test_cells(ws, "grace", A1) and all(t.startswith("edited test cell")
                                                      for t in edited_test_cells(ws, "grace", A1))
    assert any(t.startswith("deleted test cell") for t in edited_test_cells(ws, "heidi", A1))
    assert edited_test_cells(ws, "alice", A1) == []
    flags = json.loads((ws.root / "autograde-flags.json").read_text())
    assert any("edited test cell" in f for f in flags[f"grace/{A1}"])
    assert any("deleted test cell" in f for f in flags[f"heidi/{A1}"])


def test_a_new_release_is_compared_with_its_own_test_cells(course, tmp_path):
    import nbformat

    ws, _, _ = course
    copy = Workspace.at(tmp_path / "workspace")
    shutil.copytree(ws.root, copy.root)
    copy.prepare()
    assert edited_test_cells(copy, "alice", A1) == []
    path = copy.released()[A1]
    nb = nbformat.read(path, as_version=4)
    test = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.cell_type == "code")
    test.source += "\n# changed in a new release"
    nbformat.write(nb, path)
    assert edited_test_cells(copy, "alice", A1) == [f"edited test cell {test.metadata.nbgrader.grade_id}"]


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def visible_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(" ".join(parser.parts).split())


def test_feedback_never_shows_a_hidden_test(course):
    ws, _, _ = course
    files = sorted((ws.root / "feedback").rglob("*.html"))
    assert {(p.parts[-3], p.parts[-2]) for p in files} == {(s, a) for s, sc in EXPECTED.items() for a in sc}
    secret = {a: hidden_lines(a) for a in (A1, A5)}
    assert all(secret.values())
    for path in files:
        text = visible_text(path)
        raw = html.unescape(path.read_text())
        for line in secret[path.parts[-2]]:
            squashed = " ".join(line.split())
            assert squashed not in text and line not in raw, (path, line)
        assert "hidden tests, run by the autograder" in text
    # the autograded notebooks, which only the instructor sees, do hold them
    autograded = (ws.root / "autograded" / "alice" / A1 / f"{A1}.ipynb").read_text()
    assert secret[A1][0].split("(")[0] in autograded


def test_export_equals_the_gradebook(course):
    from nbgrader.api import MissingEntry

    from grader.instructor.results import TOTAL, course_order

    ws, _, _ = course
    with (ws.root / "grades.csv").open() as f:
        maximum, *rows = list(csv.DictReader(f))
    roster = ws.read_json("roster.json", None)
    with ws.gradebook() as gb:
        assignments = course_order(a.name for a in gb.assignments)
        students = roster if roster is not None else sorted(s.id for s in gb.students)
        assert [r["student"] for r in rows] == students
        assert list(maximum)[:3] == ["student", assignments[0], f"{assignments[0]} status"]
        assert maximum["student"] == "(maximum)"
        assert float(maximum[TOTAL]) == sum(float(maximum[a]) for a in assignments)
        for row in rows:
            total = 0.0
            for assignment in assignments:
                assert float(maximum[assignment]) == gb.find_assignment(assignment).max_score
                try:
                    submission = gb.find_submission(assignment, row["student"])
                except MissingEntry:  # nothing handed in: no score, and says so
                    assert row[assignment] == "" and row[f"{assignment} status"] in ("missing", "not graded")
                    continue
                score = max(0.0, submission.score - submission.late_submission_penalty)
                assert float(row[assignment]) == score
                total += score
            assert float(row[TOTAL]) == total
    by = {r["student"]: r for r in rows}
    assert by["bob"][f"{A1} status"] == "blank" and by["bob"][A1] == "0"  # handed in unchanged
    assert by["erin"][f"{A1} status"] == "missing" and by["erin"][A1] == ""  # on the roster, nothing handed in
    assert by["alice"][f"{A1} status"] == "graded" and by["alice"][A1] == "9"


def test_report_shows_the_gradebooks_numbers(course):
    ws, _, _ = course
    out = ws.root / "report"
    for name in ("scores.png", "tests.png", "categories.png", "summary.txt", "report.json"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "report.json").read_text())
    _, table = grades(ws)
    assert data["totals"] == {s: sum(r.values()) for s, r in table.items()}
    assert data["mean"] == pytest.approx(sum(data["totals"].values()) / len(table))
    with ws.gradebook() as gb:
        for key, entry in data["tests"].items():
            assignment, cell = key.split("/")
            subs = gb.assignment_submissions(assignment)
            scores = [g for s in subs for n in s.notebooks for g in n.grades if g.name == cell]
            assert entry["submissions"] == len(scores)
            assert entry["passed"] == sum(g.score == g.max_score for g in scores)
    # dave's missing clamp shows as the checker's "edge values"
    assert data["failing_categories"].get("edge values", 0) >= 1
    summary = (out / "summary.txt").read_text()
    assert f"mean total {data['mean']:.2f}" in summary


def test_plain_nbgrader_works_in_the_workspace(course):
    import subprocess
    import sys

    ws, _, _ = course
    done = subprocess.run([sys.executable, "-m", "nbgrader", "db", "student", "list"], cwd=ws.root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "alice" in done.stdout and "erin" in done.stdout


def test_commands_need_a_released_workspace(tmp_path, capsys):
    assert main(["autograde", "--workspace", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "run `python -m grader release` first" in capsys.readouterr().err
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_summary_says_why_each_skipped_submission_has_no_score(course):
    from grader.instructor.grading import summary

    ws, _, _ = course
    rows = {(r.student, r.assignment): r for r in summary(ws)}
    assert rows[("ivan", A1)].score is None and "not collected: invalid JSON" in rows[("ivan", A1)].attention[0]
    assert "wrong notebook" in rows[("mallory", A1)].attention[0]
    assert "2 files for oscar" in rows[("oscar", A1)].attention[0]
    assert rows[("erin", A1)].attention == ["missing"]
    assert rows[("grace", A1)].score == 0 and any("edited test cell" in a for a in rows[("grace", A1)].attention)
    assert rows[("alice", A1)].attention == []


def test_the_summary_gives_each_submission_the_gradebooks_own_score(course):
    """The summary reads each assignment's submissions at once; each score, maximum and
    need of manual grading is what nbgrader's own submission object says."""
    from grader.instructor.grading import summary

    ws, _, _ = course
    rows = [r for r in summary(ws) if r.score is not None]
    assert len(rows) >= len(EXPECTED)
    with ws.gradebook() as gb:
        for row in rows:
            sub = gb.find_submission(row.assignment, row.student)
            assert (row.score, row.max_score) == (sub.score, sub.max_score), row
            assert ("needs manual grading" in row.attention) == bool(sub.needs_manual_grade), row


def test_test_cells_are_read_from_a_submission_as_nbformat_reads_them(course, tmp_path):
    """A version 4 submission's cells with a grade id, read as JSON, are nbformat's own (same
    source, metadata and nbgrader checksum); another version is converted by nbformat."""
    import nbformat
    from nbgrader.utils import compute_checksum

    from grader.instructor.grading import _cells_with_grade_ids

    ws, _, _ = course
    text = ws.submitted("alice", A1).read_text()
    expected = {c.metadata.nbgrader.grade_id: c for c in nbformat.reads(text, as_version=4).cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
    found = _cells_with_grade_ids(text)
    assert list(found) == list(expected) and expected
    for grade_id, cell in expected.items():
        assert found[grade_id].source == cell.source and isinstance(found[grade_id].source, str)
        assert found[grade_id].metadata == cell.metadata
        assert compute_checksum(found[grade_id]) == compute_checksum(cell)
    v3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
        nbformat.v3.new_code_cell(input="x = 1", metadata={"nbgrader": {"grade_id": "old", "grade": False}})])])
    old = _cells_with_grade_ids(nbformat.writes(v3, version=3))
    assert list(old) == ["old"] and old["old"].source == "x = 1"


def test_collect_reads_an_exchange_and_custom_naming_rules(course, tmp_path):
    from grader.instructor.collect import collect

    ws, _, _ = course
    copy = Workspace.at(tmp_path / "ws")
    shutil.copytree(ws.root, copy.root)
    shutil.rmtree(copy.root / "submitted")
    (copy.root / "roster.json").unlink()  # the class's roster, remembered by collect: these students are others
    copy.prepare()  # points the copied config at the copy
    build = Class(copy)
    s1 = solutions(A1)

    # an nbgrader exchange: the latest of two submissions counts
    inbound = tmp_path / "exchange" / "bce-course" / "inbound"
    for stamp, answers in (("2026-01-01 10:00:00.000000 UTC", None), ("2026-01-02 10:00:00.000000 UTC", s1)):
        entry = inbound / f"peggy+{A1}+{stamp}"
        entry.mkdir(parents=True)
        (entry / f"{A1}.ipynb").write_text(build.notebook(A1, answers))
    # Moodle-style folders, with a rule that takes the participant number
    moodle = tmp_path / "moodle"
    (moodle / "Trent Smith_4711_assignsubmission_file_").mkdir(parents=True)
    (moodle / "Trent Smith_4711_assignsubmission_file_" / "Copy of notebook.ipynb").write_text(build.notebook(A1))

    report = collect(copy, [tmp_path / "exchange"])
    assert [(c["student"], c["assignment"]) for c in report.collected] == [("peggy", A1)]
    assert "raise NotImplementedError" not in copy.submitted("peggy", A1).read_text().split("bce_vector_solution")[0]
    assert s1["bce_vector_solution"].splitlines()[-1].strip() in copy.submitted("peggy", A1).read_text()

    report = collect(copy, [moodle], patterns=[r"_(?P<student>\d+)_assignsubmission_file_/"])
    assert [(c["student"], c["assignment"]) for c in report.collected] == [("4711", A1)]
    report = collect(copy, [moodle])  # the default rule finds no usable id there
    assert report.collected == [] and "cannot be a student id" in report.problems[0]["problem"]
