"""The feedback of a hostile notebook: what a student writes in Markdown or sends to an output
can neither stop anyone's feedback from being written nor run or load anything in a page (the
browser's own parse of it, html5lib's here, holds nothing live), and an honest notebook's
feedback shows what it showed."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from grader.instructor import results
from grader.instructor.feedback_html import MathMLRenderer
from grader.instructor.workspace import Workspace

FORGED = "# My notes <span data-held-math=\"7\">on the gradient</span>"


def _markdown(source: str) -> str:
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    return MarkdownWithMath(renderer=MathMLRenderer(escape=False)).render(source)


# --- a placeholder a student writes stays their text ----------------------------------------------

def test_a_forged_placeholder_in_a_heading_renders_as_text():
    page = _markdown(FORGED)
    assert page.startswith('<h1 id="My-notes-on-the-gradient">') and "on the gradient</span>" in page


def test_a_forged_placeholder_beside_a_formula_takes_nothing_of_it():
    """A formula in the same heading is held as placeholder 0: the student's "0" is not it."""
    page = _markdown("## The loss $L$ and <span data-held-math=\"0\">my words</span> "
                     "<span data-held-math=\"1\">more</span>")
    assert page.count("<math ") == 1 and '<annotation encoding="application/x-tex">L</annotation>' in page
    assert "my words</span>" in page and "more</span>" in page
    assert "<mi>L</mi>" not in page.split("my words")[1]  # the formula is where it was, once


# --- one student's failure stops no one else's feedback ------------------------------------------

class _Gradebook:
    def __init__(self, students, assignments):
        self.students = [type("Student", (), {"id": s}) for s in students]
        self.assignments = [type("Assignment", (), {"name": a}) for a in assignments]


class _API:
    """nbgrader's generate_feedback, writing a page for each student but those in ``fails``."""

    def __init__(self, root: Path, fails: dict[str, str]):
        self.root, self.fails, self.calls = root, fails, []

    def generate_feedback(self, assignment, student, force=True):
        self.calls.append((student, assignment))
        if student in self.fails:
            return {"success": False, "log": "[ERROR] There was an error processing assignment",
                    "error": f"Traceback (most recent call last):\n  File \"feedback_html.py\", line 1, in heading\n"
                             f"{self.fails[student]}\n"}
        folder = self.root / "feedback" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment}.html").write_text("<p>feedback</p>")
        return {"success": True}


@pytest.fixture
def class_of_four(tmp_path, monkeypatch):
    students, assignments = ["alice", "bob", "mallory", "zoe"], ["01-a", "02-b"]
    for student in students:
        for assignment in assignments:
            (tmp_path / "autograded" / student / assignment).mkdir(parents=True)
    workspace = Workspace(tmp_path)
    monkeypatch.setattr(workspace, "gradebook",
                        contextlib.contextmanager(lambda **_: iter([_Gradebook(students, assignments)])))
    return workspace


def test_a_student_whose_feedback_fails_stops_no_one_else(class_of_four, monkeypatch):
    api = _API(class_of_four.root, {"mallory": "IndexError: list index out of range"})
    monkeypatch.setattr(class_of_four, "api", lambda: api)
    with pytest.raises(results.FeedbackFailed) as failed:
        results.feedback(class_of_four)
    assert len(api.calls) == 8  # everyone's, those after mallory included
    written = sorted(p.relative_to(class_of_four.root / "feedback").parts[0]
                     for p in (class_of_four.root / "feedback").rglob("*.html"))
    assert written == ["alice", "alice", "bob", "bob", "zoe", "zoe"]
    assert sorted(failed.value.written) == sorted((class_of_four.root / "feedback").rglob("*.html"))
    assert failed.value.failed == [("mallory", "01-a", "IndexError: list index out of range (in feedback_html.heading)"),
                                   ("mallory", "02-b", "IndexError: list index out of range (in feedback_html.heading)")]
    message = str(failed.value)
    assert message.startswith("nbgrader could not write feedback for 2 notebooks (everyone else's is written: "
                              f"6 files under {class_of_four.root / 'feedback'}):\n"
                              "  mallory 01-a: IndexError: list index out of range (in feedback_html.heading)\n"
                              "  mallory 02-b: IndexError: list index out of range (in feedback_html.heading)\n"), message
    assert isinstance(failed.value, results.WorkflowError)  # the command line says it, exit status 2


def test_the_command_line_says_which_feedback_failed_and_exits_non_zero(class_of_four, monkeypatch, capsys):
    from grader.instructor import cli, grading

    api = _API(class_of_four.root, {"bob": "ValueError: the feedback's HTML does not settle"})
    monkeypatch.setattr(class_of_four, "api", lambda: api)
    monkeypatch.setattr(cli, "_workspace", lambda args: class_of_four)
    monkeypatch.setattr(grading, "check_selection", lambda *a: None)
    monkeypatch.setattr(Workspace, "released", lambda self: {})
    assert cli.main(["feedback", "--assignment", "01-a"]) == cli.EXIT_UNREADABLE
    error = capsys.readouterr().err
    assert error.startswith("error: nbgrader could not write feedback for 1 notebook (everyone else's is written: "
                            "3 files under "), error
    assert "\n  bob 01-a: ValueError: the feedback's HTML does not settle" in error
    assert [p.parts[-3] for p in sorted((class_of_four.root / "feedback").rglob("*.html"))] == ["alice", "mallory", "zoe"]


def test_ctrl_c_during_feedback_stops_it(class_of_four, monkeypatch):
    """nbgrader catches Ctrl-C itself and reports a failure: feedback stops there, as asked."""
    api = _API(class_of_four.root, {"alice": "KeyboardInterrupt"})
    monkeypatch.setattr(class_of_four, "api", lambda: api)
    with pytest.raises(KeyboardInterrupt):
        results.feedback(class_of_four)
    assert api.calls == [("alice", "01-a")]
