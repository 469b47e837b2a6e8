"""The instructor's mistakes and interruptions, through the command line: each gets one line
that says what is wrong and what to do, a non-zero exit and no traceback; nbgrader's own
error is shown for a notebook it cannot grade; Ctrl-C says what was saved and what to run;
a run grades only what is new or changed, and prints only the selection."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.instructor import grading
from grader.instructor.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import A1, Class, released_workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    return released_workspace(root / "workspace", root / "notebooks")


@pytest.fixture
def workspace(released, tmp_path):
    """A copy of the released workspace, for one test."""
    copy = tmp_path / "workspace"
    shutil.copytree(released.root, copy)
    text = (copy / "nbgrader_config.py").read_text().replace(str(released.root), str(copy))
    (copy / "nbgrader_config.py").write_text(text)
    from grader.instructor.workspace import Workspace

    return Workspace.at(copy)


def hand_in(workspace, tmp_path, students, answers=None):
    folder = tmp_path / "inbox"
    folder.mkdir(exist_ok=True)
    for student in students:
        (folder / f"{student}_{A1}.ipynb").write_text(Class(workspace).notebook(A1, answers=answers))
    assert main(["collect", str(folder), "--workspace", str(workspace.root)]) == 0
    return folder


def one_line_error(capsys, code, *words):
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(w in lines[-1] for w in words), err
    return err


@pytest.mark.parametrize("jobs", ["-3", "0", "two"])
def test_jobs_must_be_a_whole_number_of_at_least_one(workspace, capsys, jobs):
    with pytest.raises(SystemExit) as exit_:
        main(["autograde", "--workspace", str(workspace.root), "--jobs", jobs])
    assert exit_.value.code == 2
    one_line_error(capsys, 2, "--jobs", "at least 1")


@pytest.mark.parametrize("pattern, words", [("(?P<student>[^_]+", "is not a regular expression"),
                                            (r"[^_]+_.*\.ipynb$", "no (?P<student>...) group")])
def test_a_bad_naming_rule_is_named(workspace, tmp_path, capsys, pattern, words):
    (tmp_path / "inbox").mkdir()
    assert main(["collect", str(tmp_path / "inbox"), "--workspace", str(workspace.root), "--pattern", pattern]) == 2
    one_line_error(capsys, 2, "--pattern", words)


def test_autograde_before_collect_says_to_collect(workspace, capsys):
    assert main(["autograde", "--workspace", str(workspace.root), "--quiet"]) == 2
    one_line_error(capsys, 2, "nothing to grade", "collect")


def test_feedback_before_autograde_says_to_autograde(workspace, tmp_path, capsys):
    hand_in(workspace, tmp_path, ["alice"])
    capsys.readouterr()
    assert main(["feedback", "--workspace", str(workspace.root)]) == 2
    one_line_error(capsys, 2, "nothing is autograded yet", "autograde")


def test_an_unknown_student_or_assignment_is_named(workspace, tmp_path, capsys):
    hand_in(workspace, tmp_path, ["alice"])
    capsys.readouterr()
    assert main(["autograde", "--workspace", str(workspace.root), "--student", "nobody", "--quiet"]) == 2
    one_line_error(capsys, 2, "no student nobody", "alice")
    assert main(["feedback", "--workspace", str(workspace.root), "--assignment", "07-nothing"]) == 2
    one_line_error(capsys, 2, "no assignment 07-nothing", A1)


NBGRADER_LOG = """[INFO] Overwriting files with master versions...
Traceback (most recent call last):
  File "/x/nbgrader/converters/base.py", line 399, in _convert_notebook
    output, resources = self.exporter.from_filename(notebook_filename, resources=resources)
  File "/x/nbgrader/preprocessors/overwritecells.py", line 97, in preprocess
    nb, resources = self.add_missing_task_cells(nb, resources)
  File "/x/nbgrader/preprocessors/overwritecells.py", line 159, in add_missing_task_cells
    submitted_ids = [cell["metadata"]["nbgrader"]["grade_id"] for cell in nb.cells if
  File "/x/nbgrader/preprocessors/overwritecells.py", line 159, in <listcomp>
    submitted_ids = [cell["metadata"]["nbgrader"]["grade_id"] for cell in nb.cells if
KeyError: 'grade_id'
[ERROR] There was an error processing assignment '01-bce-vector' for student 'bob'
[ERROR] Please see the the above traceback for details on the specific errors on the above failures.
nbgrader.converters.base.NbGraderException: Please see the the above traceback for details on the specific errors.
"""


def test_nbgraders_own_error_is_shown_not_its_pointer_to_a_traceback():
    shown = grading._last_error(NBGRADER_LOG)
    assert shown == "KeyError: 'grade_id' (in nbgrader's overwritecells.add_missing_task_cells)"
    assert grading._last_error("[ERROR] Notebook does not exist\n[ERROR] Please see the above") == \
        "Notebook does not exist"


def test_only_new_or_changed_submissions_are_graded_again_and_tables_follow_the_selection(
        workspace, tmp_path, capsys):
    folder = hand_in(workspace, tmp_path, ["alice", "bob"])
    args = ["autograde", "--workspace", str(workspace.root), "--quiet", "--engine", "nbgrader"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "alice" in first and "bob" in first and "graded before" not in first
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "graded 0; 2 graded before and unchanged since" in again
    # bob hands in again, changed: only bob is graded
    (folder / f"bob_{A1}.ipynb").write_text(Class(workspace).notebook(A1, answers={"bce_vector_solution": "x = 1"}))
    assert main(["collect", str(folder), "--workspace", str(workspace.root)]) == 0
    capsys.readouterr()
    assert main(args + ["--student", "bob"]) == 0
    bob = capsys.readouterr().out
    assert "bob" in bob and "alice" not in bob  # the table shows the selection
    assert main(args + ["--regrade"]) == 0
    assert "graded before" not in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["nbgrader", "warm"])
def test_no_database_warnings_flood_the_terminal(workspace, tmp_path, engine):
    hand_in(workspace, tmp_path, ["alice"])
    done = subprocess.run([sys.executable, "-m", "grader", "autograde", "--workspace", str(workspace.root), "--quiet",
                           "--engine", engine, "--regrade"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "SAWarning" not in done.stderr and "Warning" not in done.stdout


@pytest.mark.slow
def test_ctrl_c_says_what_was_saved_and_a_rerun_grades_the_rest(workspace, tmp_path):
    students = ["ann", "ben", "cat", "dan", "eve", "fay"]
    hand_in(workspace, tmp_path, students)
    command = [sys.executable, "-m", "grader", "autograde", "--workspace", str(workspace.root), "--quiet",
               "--jobs", "1"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env=env)
    autograded = workspace.root / "autograded"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if autograded.is_dir() and len(list(autograded.glob(f"*/{A1}/{A1}.ipynb"))) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "it finished before it could be interrupted"
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends to the command in the foreground
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and "graded and saved" in line and "run the same command again" in line
    graded = int(line.split("interrupted: ")[1].split()[0])
    assert 1 <= graded < len(students)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert f"graded {len(students) - graded}; {graded} graded before and unchanged since" in done.stdout
    rows = json.loads(json.dumps([r.__dict__ for r in grading.summary(workspace)]))
    assert sorted(r["student"] for r in rows if r["score"] is not None) == students


def test_the_course_folder_is_hidden_from_notebooks_wherever_it_lives(monkeypatch, tmp_path):
    """A course given with --course may sit where the sandbox can read (/opt, say): the engine
    is told where it is and hides it like the workspace."""
    from traitlets.config import Config

    from grader.instructor.engine.preprocessor import _hidden_paths

    monkeypatch.setenv("BCE_COURSE_DIR", str(tmp_path / "my-course"))
    monkeypatch.delenv("BCE_COURSE_WORKSPACE", raising=False)
    config = Config()
    config.CourseDirectory.root = str(tmp_path / "workspace")
    assert _hidden_paths(config) == [str(tmp_path / "workspace"), str(tmp_path / "my-course")]
