"""Hostile and broken submissions, autograded by the warm engine together with honest
ones: each gets exactly the score it earned, is named in the summary, and nothing of the
course, the gradebook or the other students is touched.

Each case in tests/hostile/ is a small notebook: the cells a student wrote or changed,
merged into the released notebook by :func:`submission` (metadata ``hostile``:
``solution`` replaces a solution cell, ``after`` adds a cell after the named one,
``edit`` replaces a test cell's source, ``delete`` removes it, ``index`` replaces the source
of the released notebook's cell at that index; ``recorded`` fills in the table of torch's answers
that tests/replay.py records with a local grader.check); its metadata says what
it does, the score each test cell must get, and what the summary must say.

The class is graded with a known autograding secret ($BCE_GRADER_SALT), which no notebook may see.
"""

import contextlib
import functools
import hashlib
import io
import json
import os
import sqlite3
from pathlib import Path

import nbformat
import pytest

import replay
from grader._battery import salt
from grader.instructor import release
from grader.instructor.cli import main
from grader.instructor.secret import FILE as SECRET_FILE
from helpers import A1, Class, hidden_lines, released_workspace, solutions

pytestmark = pytest.mark.slow  # grades a class, or builds an environment: minutes

HOSTILE = Path(__file__).parent.parent / "hostile"
#: In one honest student's submission only; a notebook that finds it read another student's work.
MARKER = "zq-marker-of-alice" + "-9f31c7"
#: In the instructor's environment while the class is graded: no notebook may see it.
SECRET = "zq-instructors-token" + "-51d0e2"
#: The secret the grader draws its inputs with, given as the instructor may: no notebook may see it.
SALT = "zq-grading-secret" + "-4b7e21"
CASES = sorted(p.stem for p in HOSTILE.glob("*.ipynb"))
TESTS = ("bce_vector_examples", "bce_vector_edges", "bce_vector_grad")


def submission(released, case: nbformat.NotebookNode) -> str:
    nb = nbformat.from_dict(json.loads(json.dumps(released)))
    by_id = lambda grade_id: next(i for i, c in enumerate(nb.cells)  # noqa: E731
                                  if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    for cell in case.cells:
        what = cell.metadata["hostile"]
        if "solution" in what or "edit" in what:
            nb.cells[by_id(what.get("solution") or what["edit"])].source = cell.source
        elif "after" in what:
            nb.cells.insert(by_id(what["after"]) + 1, nbformat.v4.new_code_cell(cell.source))
        elif "delete" in what:
            del nb.cells[by_id(what["delete"])]
        elif "index" in what:  # a cell of the released notebook's own, edited (no shared beginning then)
            nb.cells[what["index"]].source = cell.source
        if what.get("recorded"):  # the corpus shows the code; the table is recorded now, as a student would
            assert cell.source == replay.source({}), "the notebook's replaying code is not tests/replay.py's"
            nb.cells[by_id(what["solution"])].source = replay.source(_recorded())
    return nbformat.writes(nb)


@functools.lru_cache(maxsize=None)
def _recorded() -> dict:
    """torch's answers to notebook 01's binary_cross_entropy, recorded by a local grader.check of every
    category with no optional argument (as its test cells check it), without the secret."""
    return replay.record(arguments=[])


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    workspace = released_workspace(tmp / "course", tmp / "notebooks",
                                   "c.Execute.timeout = 8\nc.WarmExecute.notebook_time_limit = 120\n")
    released = nbformat.read(workspace.released()[A1], as_version=4)
    alice = {**solutions(A1)}
    alice["bce_vector_solution"] += f"\n# {MARKER}\n"
    honest = {"alice": alice, "bob": {}, "carol": {"bce_vector_solution": solutions(A1)["bce_vector_solution"]}}
    downloads = tmp / "downloads"
    downloads.mkdir()
    build = Class(workspace)
    for student, answers in honest.items():
        (downloads / f"{student}_{A1}.ipynb").write_text(build.notebook(A1, answers))
    for case in CASES:
        student = case.replace("_", "")
        (downloads / f"{student}_{A1}.ipynb").write_text(
            submission(released, nbformat.read(HOSTILE / f"{case}.ipynb", as_version=4)))
    assert main(["collect", str(downloads), "--workspace", str(workspace.root)]) == 0
    course = release.master_path(A1).parents[2]
    before = {"course": _digest(course), "source": _digest(workspace.root / "source"),
              "submitted": _digest(workspace.root / "submitted")}
    os.environ["BCE_HOSTILE_SECRET"] = SECRET  # the engine starts with the instructor's environment
    os.environ[salt.VARIABLE] = SALT
    printed = io.StringIO()  # what the instructor's terminal shows
    try:
        with contextlib.redirect_stdout(printed):
            assert main(["autograde", "--quiet", "--jobs", "2", "--workspace", str(workspace.root)]) == 0
    finally:
        del os.environ["BCE_HOSTILE_SECRET"], os.environ[salt.VARIABLE]
    workspace.printed = printed.getvalue()
    assert main(["feedback", "--workspace", str(workspace.root)]) == 0
    after = {"course": _digest(course), "source": _digest(workspace.root / "source"),
             "submitted": _digest(workspace.root / "submitted")}
    return workspace, before, after


def _scores(workspace):
    with workspace.gradebook() as gb:
        return {sub.student.id: {g.name: g.score for nb in sub.notebooks for g in nb.grades}
                for sub in gb.assignment_submissions(A1)}


def _flags(workspace):
    return json.loads((workspace.root / "autograde-flags.json").read_text())


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES)
def test_each_hostile_submission_gets_exactly_its_score_and_is_named(graded, case):
    workspace, _, _ = graded
    expected = nbformat.read(HOSTILE / f"{case}.ipynb", as_version=4).metadata["hostile"]
    student = case.replace("_", "")
    got = _scores(workspace)[student]
    flags = _flags(workspace)[f"{student}/{A1}"]
    assert {name: got[name] for name in TESTS} == expected["scores"], (case, flags)
    if expected["flag"] is not None:
        assert any(expected["flag"] in flag for flag in flags), flags
    if expected.get("output_says"):
        autograded = _autograded(workspace, student)
        shown = "".join(o.get("text", "") for c in autograded.cells for o in c.get("outputs", []))
        assert expected["output_says"] in shown and "LEAK" not in shown, shown[-2000:]


def _autograded(workspace, student):
    return nbformat.read(workspace.root / "autograded" / student / A1 / f"{A1}.ipynb", as_version=4)


def test_no_autograded_notebook_and_no_feedback_holds_a_line_of_a_hidden_test(graded):
    """The hidden tests never enter a student's process, so nothing a notebook prints, reads or
    inspects can show them; nbgrader's autograded copies and the feedback do not hold them either."""
    workspace, _, _ = graded
    released = nbformat.read(workspace.released()[A1], as_version=4)
    visible = "\n".join(cell.source for cell in released.cells)
    secret = [line for line in hidden_lines(A1) if line not in visible]  # not also in what students got
    assert secret
    autograded = sorted((workspace.root / "autograded").rglob("*.ipynb"))
    feedback = sorted((workspace.root / "feedback").rglob("*.html"))
    assert len(autograded) == len(CASES) + 3 and len(feedback) == len(CASES) + 3
    for path in autograded + feedback:
        text = path.read_text()
        if path.suffix == ".html":
            import html

            text = html.unescape(text)
        leaked = [line for line in secret if line in text]
        assert not leaked, (path, leaked)
        assert SECRET not in text and SALT not in text, path


def test_the_secret_given_in_the_environment_is_not_written_down(graded):
    workspace, _, _ = graded
    assert not (workspace.root / SECRET_FILE).exists()
    assert SALT not in workspace.printed


def test_what_the_summary_quotes_of_a_submission_cannot_drive_the_terminal(graded):
    workspace, _, _ = graded
    shown = [line for line in workspace.printed.splitlines() if line.startswith("retitlestheterminal ")]
    assert len(shown) == 1 and "\\x1b]2;graded by hand" in shown[0], workspace.printed[-3000:]
    assert not [c for c in workspace.printed if c not in "\n\t" and not c.isprintable()]


def test_a_students_html_neither_runs_nor_loads_anything_in_the_feedback(graded):
    from grader.instructor.feedback_html import POLICY

    from bs4 import BeautifulSoup

    workspace, _, _ = graded
    page = (workspace.root / "feedback" / "scriptsthefeedback" / A1 / f"{A1}.html").read_text()
    soup = BeautifulSoup(page, features="html.parser")
    first = soup.head.find(True)
    assert (first.name, first.get("http-equiv"), first.get("content")) == ("meta", "Content-Security-Policy", POLICY)
    body = soup.body
    assert not body.find_all(["iframe", "meta", "script", "base", "link"])
    attributes = [(e.name, k, str(v)) for e in body.find_all(True) for k, v in e.attrs.items()]
    assert not [a for a in attributes if a[1].startswith("on") or "script:" in a[2] or "evil.example" in a[2]]
    shown = body.get_text()
    assert "shown in the notebook" in shown and "click" in shown  # what it shows, it still shows


def test_honest_students_are_unaffected(graded):
    workspace, _, _ = graded
    scores = _scores(workspace)
    points = {"bce_vector_examples": 2, "bce_vector_edges": 3, "bce_vector_grad": 2}
    assert {n: scores["alice"][n] for n in TESTS} == points
    assert {n: scores["bob"][n] for n in TESTS} == dict.fromkeys(TESTS, 0)
    assert {n: scores["carol"][n] for n in TESTS} == {**points, "bce_vector_grad": 0}
    flags = _flags(workspace)
    assert flags[f"alice/{A1}"] == [] and flags[f"carol/{A1}"] == []


def test_the_course_the_gradebook_and_the_submissions_are_intact(graded):
    workspace, before, after = graded
    assert before == after
    db = workspace.root / "gradebook.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with workspace.gradebook() as gb:
        assert len(gb.students) == len(CASES) + 3
    # nothing a notebook wrote landed next to the submissions
    assert not list((workspace.root / "autograded").rglob("big"))
    assert not list((workspace.root / "autograded").rglob("evidence.jsonl"))
    assert not list((workspace.root / "submitted").rglob("evidence.jsonl"))


@pytest.mark.parametrize("path", sorted(release.COURSE_DIR.glob("source/*/*.ipynb")), ids=lambda p: p.stem)
def test_the_course_itself_looks_harmless_and_every_test_cell_can_be_judged(path):
    """The tampering scan must not flag the course's own cells, and the judge must be able to
    read the checks of every autograded test cell, hidden tests only calling checks."""
    from grader.instructor import scan, verdict
    from grader.instructor.plugins import HideHiddenTests

    nb = nbformat.read(path, as_version=4)
    assert scan.suspicious(nb) == []
    tests = [c for c in nb.cells if verdict.is_test_cell(c)]
    assert tests
    for cell in tests:
        visible, calls, problem = verdict.split_test_cell(cell.source, HideHiddenTests().split)
        assert calls and problem is None, cell.source
        assert "HIDDEN" not in visible
