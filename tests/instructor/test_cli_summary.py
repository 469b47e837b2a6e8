"""The summary table ``python -m grader autograde`` prints: one line per student and notebook,
whatever a submission put into the notes of its row. A note may quote a submission (an
error's message, a string its code opened, the sandbox's message); line breaks, carriage
returns and other control characters in it are written as escapes, so that it cannot start
rows of its own (a forged grade for another student) or drive the terminal."""

import sys
from pathlib import Path

import pytest

from grader.instructor import cli, grading
from grader.instructor.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import A1, Class, solutions  # noqa: E402

#: What a student's cell raises: its message, quoted in the note of the student's row, holds
#: lines that look like the rows of two other students.
FORGED = ("x)\nalice            01-bce-vector                   0 / 9  copied from eve: identical submission, "
          "grade by hand\nbob              01-bce-vector                   9 / 9  ")


def _rows(printed: str) -> dict[str, list[str]]:
    """The printed table's lines, by the student each begins with."""
    rows: dict[str, list[str]] = {}
    for line in printed.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], []).append(line)
    return rows


def test_each_note_is_one_line_with_its_control_characters_escaped():
    note = f"cell 3 could not open a file ({FORGED})"
    table = grading.summary_table([
        grading.Graded("mallory", A1, 0, 9, [note, "tab\there\rreturn\x1b[2J\u2028\u202e"]),
        grading.Graded("alice", A1, 9, 9, []), grading.Graded("bob", A1, 3, 9, []),
    ])
    lines = table.splitlines()
    assert len(lines) == 4 and [line.split()[0] for line in lines] == ["student", "mallory", "alice", "bob"]
    assert FORGED.replace("\n", "\\n") in lines[1]
    assert lines[1].endswith("; tab\\there\\rreturn\\x1b[2J\\u2028\\u202e")
    assert grading.one_line("plain text, é and ü") == "plain text, é and ü"


def test_the_printed_summary_has_one_row_per_student(monkeypatch, capsys, tmp_path):
    rows = grading.Summary([
        grading.Graded("alice", A1, 9, 9, []), grading.Graded("bob", A1, 3, 9, []),
        grading.Graded("mallory", A1, 0, 9, [f"cell 3 could not open a file ({FORGED})"]),
    ], graded=3)
    monkeypatch.setattr(cli, "_workspace", lambda args: tmp_path)
    monkeypatch.setattr(grading, "autograde", lambda *args, **kwargs: rows)
    assert main(["autograde", "--quiet"]) == 0
    printed = _rows(capsys.readouterr().out)
    assert {s: len(lines) for s, lines in printed.items()} == {"student": 1, "alice": 1, "bob": 1, "mallory": 1}
    assert "3 / 9" in printed["bob"][0] and "9 / 9" not in printed["bob"][0]
    assert FORGED.replace("\n", "\\n") in printed["mallory"][0]


@pytest.mark.slow
def test_a_forged_row_in_an_error_message_stays_in_its_students_row(released, tmp_path, capsys):
    """The whole way: a cell raises the error, the warm engine quotes it in the note, the
    command prints the table."""
    import shutil

    from grader.instructor.workspace import Workspace

    copy = tmp_path / "workspace"
    shutil.copytree(released.root, copy)
    text = (copy / "nbgrader_config.py").read_text().replace(str(released.root), str(copy))
    (copy / "nbgrader_config.py").write_text(text)
    workspace = Workspace.at(copy)
    folder = tmp_path / "inbox"
    folder.mkdir()
    s1 = solutions(A1)
    raising = {**s1, "bce_vector_solution": s1["bce_vector_solution"] + f"\nraise FileNotFoundError({FORGED!r})\n"}
    for student, answers in (("alice", s1), ("bob", {}), ("mallory", raising)):
        (folder / f"{student}_{A1}.ipynb").write_text(Class(workspace).notebook(A1, answers))
    assert main(["collect", str(folder), "--workspace", str(copy)]) == 0
    capsys.readouterr()
    assert main(["autograde", "--workspace", str(copy), "--quiet", "--jobs", "1"]) == 0
    printed = _rows(capsys.readouterr().out)
    assert {s: len(lines) for s, lines in printed.items()} == {"student": 1, "alice": 1, "bob": 1, "mallory": 1}
    assert "could not open a file (x)\\nalice " in printed["mallory"][0]
    assert "copied from eve" not in printed["alice"][0]
