"""Who a collected file belongs to, and what the workspace keeps of it, through the command
line: ids that are assignment names are refused; names that can be read two ways are refused
without a roster and read with one (the longest id on it that begins the name, so ids may hold
'_'); the roster is remembered and applies to what was collected before; remove-student takes a
student out cleanly; each submission's time is recorded as nbgrader's timestamp.txt (and
nbgrader's late penalty follows from it); every collect's report is kept."""

import datetime
import json
import os
import shlex
import shutil
import sqlite3
import struct
import zipfile

import pytest

from grader.instructor.cli import main
from grader.instructor.workspace import Workspace

from helpers import A1, A5, Class, released_workspace, solutions

A2 = "02-bce-matrix"
UTC = datetime.timezone.utc


@pytest.fixture
def course(released, tmp_path):
    """A fresh copy of the released workspace, a folder of sources beside it, and a class."""
    ws = Workspace.at(tmp_path / "ws")
    shutil.copytree(released.root, ws.root)
    ws.prepare()  # points the copied config at the copy
    ws = Workspace.at(ws.root)
    src = tmp_path / "src"
    src.mkdir()
    return ws, src, Class(ws)


def cli(ws, *argv, capsys):
    """Run the command line on ``ws``: its exit status, and what it printed (out, err)."""
    code = main([*map(str, argv), "--workspace", str(ws.root)])
    out, err = capsys.readouterr()
    return code, out, err


def report(ws) -> dict:
    return json.loads((ws.root / "collect-report.json").read_text())


def collected(ws) -> list[tuple[str, str]]:
    return sorted((c["student"], c["assignment"]) for c in report(ws)["collected"])


def problem(ws, name: str) -> str:
    """The one reason given for the item whose origin ends with ``name``."""
    hits = [p["problem"] for p in report(ws)["problems"] if p["origin"].endswith(name)]
    assert len(hits) == 1, (name, report(ws)["problems"])
    return hits[0]


def students_in(ws) -> set[str]:
    """The students of the gradebook and of submitted/."""
    with ws.gradebook() as gb:
        known = {s.id for s in gb.students}
    folder = ws.root / "submitted"
    return known | ({p.name for p in folder.iterdir()} if folder.is_dir() else set())


def skipped_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("SKIPPED")]


# --- ids that are assignment names -----------------------------------------------------------

def test_ids_that_are_assignment_names_are_refused(course, capsys):
    ws, src, build = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    (src / f"{A2}_grace.ipynb").write_text(build.notebook(A2))       # the instructor's case
    (src / "01-BCE-Vector_heidi.ipynb").write_text(build.notebook(A1))   # the same, in other letters
    (src / "02-matrix_ivan.ipynb").write_text(build.notebook(A2))    # looks like one
    (src / A5).mkdir()
    (src / A5 / "judy.ipynb").write_text(build.notebook(A5))          # a folder per assignment
    inbound = src.parent / "exchange" / "inbound"
    entry = inbound / f"{A1}+{A1}+2026-01-02 10:00:00.000000 UTC"
    entry.mkdir(parents=True)
    (entry / f"{A1}.ipynb").write_text(build.notebook(A1))

    code, out, _ = cli(ws, "collect", src, capsys=capsys)
    assert code == 1
    assert collected(ws) == [("alice", A1)]
    assert problem(ws, f"{A2}_grace.ipynb") == (
        f"'{A2}' is the name of an assignment, not a student id: name the file grace_{A2}.ipynb "
        "(the student's id, '_', the assignment)")
    assert f"SKIPPED   {src / f'{A2}_grace.ipynb'}: '{A2}' is the name of an assignment" in out
    assert "is the name of an assignment" in problem(ws, "01-BCE-Vector_heidi.ipynb")
    assert f"name the file heidi_{A1}.ipynb" in problem(ws, "01-BCE-Vector_heidi.ipynb")
    assert f"'02-matrix' looks like the assignment '{A2}'" in problem(ws, "02-matrix_ivan.ipynb")
    assert f"name the file ivan_{A2}.ipynb" in problem(ws, "02-matrix_ivan.ipynb")
    assert f"name the file judy_{A5}.ipynb" in problem(ws, f"{A5}/judy.ipynb")
    # no student named like an assignment, anywhere
    assert students_in(ws) == {"alice"}
    assert all("student" not in p for p in report(ws)["problems"])

    code, _, _ = cli(ws, "collect", src.parent / "exchange", capsys=capsys)
    assert code == 1 and collected(ws) == []
    assert "is the name of an assignment" in problem(ws, f"{A1}+{A1}+2026-01-02 10:00:00.000000 UTC/{A1}.ipynb")
    assert students_in(ws) == {"alice"}

    # nor on a roster: one line, exit 2, nothing collected or remembered
    roster = src.parent / "roster.csv"
    roster.write_text(f"id\nalice\n{A2}\n")
    code, out, err = cli(ws, "collect", src, "--roster", roster, capsys=capsys)
    assert code == 2 and out == ""
    assert err == f"error: the roster {roster} lists '{A2}', which is the assignment '{A2}', not a student id: " \
                  "take it off the roster\n"
    roster.write_text("alice\nbob smith\n")
    code, _, err = cli(ws, "collect", src, "--roster", roster, capsys=capsys)
    assert code == 2 and "'bob smith', which cannot be a student id" in err and len(err.splitlines()) == 1
    assert not (ws.root / "roster.json").exists()


# --- names read two ways ---------------------------------------------------------------------

def test_without_a_roster_names_read_two_ways_are_refused(course, capsys):
    ws, src, build = course
    for name in ("alice", "mary_jane", "jo_ann", "jo_bob"):
        (src / f"{name}_{A1}.ipynb").write_text(build.notebook(A1))
    (src / "kim_lee").mkdir()  # a folder per student says which reading is meant
    (src / "kim_lee" / f"kim_lee_{A1}.ipynb").write_text(build.notebook(A1))
    (src / "bo_my_notebook.ipynb").write_text(build.notebook(A5))  # no assignment in the name either

    code, out, _ = cli(ws, "collect", src, capsys=capsys)
    assert code == 1
    assert collected(ws) == [("alice", A1), ("kim_lee", A1)]
    assert problem(ws, f"mary_jane_{A1}.ipynb") == (
        "its name can be read as the student 'mary' or 'mary_jane' (an id may hold '_'): collect with "
        "--roster FILE listing the students' ids (the longest id on it that begins a name is taken), or rename "
        f"it ID_{A1}.ipynb with an id that holds no '_'")
    assert "'jo' or 'jo_ann'" in problem(ws, f"jo_ann_{A1}.ipynb")
    assert "'jo' or 'jo_bob'" in problem(ws, f"jo_bob_{A1}.ipynb")
    assert "'bo' or 'bo_my'" in problem(ws, "bo_my_notebook.ipynb")
    assert len(skipped_lines(out)) == 4
    assert students_in(ws) == {"alice", "kim_lee"}  # no "mary", no "jo"


def test_a_roster_takes_the_longest_id_that_begins_the_name(course, capsys):
    ws, src, build = course
    roster = src.parent / "students.csv"  # as a spreadsheet saves it: a BOM, a header, more columns
    roster.write_text("\ufeffStudent ID,name\nmary,Mary Major\nmary_jane,Mary Jane\njo_ann,Jo Ann\n"
                      "jo_bob,Jo Bob\nalice,Alice\nbob,Bob\ngrace,Grace\n# a comment\n\nerin,Erin\n",
                      encoding="utf-8")
    (src / f"mary_jane_{A1}.ipynb").write_text(build.notebook(A1))
    (src / f"mary_{A1}.ipynb").write_text(build.notebook(A1))
    (src / f"jo_ann_{A1}.ipynb").write_text(build.notebook(A1))
    (src / f"jo_bob_Copy of {A1}.ipynb").write_text(build.notebook(A1))
    (src / "jo_bob").mkdir()
    (src / "jo_bob" / f"{A5}.ipynb").write_text(build.notebook(A5))      # a folder per student
    (src / f"alcie_{A1}.ipynb").write_text(build.notebook(A1))          # a typo
    (src / f"zed_{A1}.ipynb").write_text(build.notebook(A1))            # not on the roster
    (src / f"{A2}_grace.ipynb").write_text(build.notebook(A2))          # the wrong way round
    (src / f"{A1}.ipynb").write_text(build.notebook(A1))                 # no id at all
    (src / "bob").mkdir()
    (src / "bob" / f"alice_{A5}.ipynb").write_text(build.notebook(A5))  # bob's folder, alice's name
    with zipfile.ZipFile(src / "lms.zip", "w") as z:
        z.writestr(f"export/grace/{A1}.ipynb", build.notebook(A1))
        z.writestr(f"export/mary_jane_{A5}.ipynb", build.notebook(A5))

    code, out, _ = cli(ws, "collect", src, "--roster", roster, capsys=capsys)
    assert code == 1
    assert collected(ws) == [("grace", A1), ("jo_ann", A1), ("jo_bob", A1), ("jo_bob", A5), ("mary", A1),
                             ("mary_jane", A1), ("mary_jane", A5)]
    assert problem(ws, f"alcie_{A1}.ipynb") == "'alcie' is not on the roster (the closest ids on it: alice)"
    assert problem(ws, f"zed_{A1}.ipynb") == "'zed' is not on the roster"
    assert f"name the file grace_{A2}.ipynb" in problem(ws, f"{A2}_grace.ipynb")
    assert problem(ws, f"/{A1}.ipynb").startswith("no student id in its name: no id on the roster begins it")
    assert problem(ws, f"bob/alice_{A5}.ipynb") == (
        "its path names two students on the roster, 'alice' (its name) and 'bob' (its folder 'bob'): collect it "
        "alone, or rename it")
    assert len(skipped_lines(out)) == 5
    # remembered, for later collects and for export: the ids, sorted
    assert json.loads((ws.root / "roster.json").read_text()) == [
        "alice", "bob", "erin", "grace", "jo_ann", "jo_bob", "mary", "mary_jane"]
    assert report(ws)["roster"] == {"from": str(roster), "students": 8}
    assert students_in(ws) == {"alice", "bob", "erin", "grace", "jo_ann", "jo_bob", "mary", "mary_jane"}
    assert ("erin", A1) in {(m["student"], m["assignment"]) for m in report(ws)["missing"]}


def test_the_roster_applies_to_what_was_collected_before(course, capsys):
    ws, src, build = course
    for name in ("alice", "zed", "yves"):
        (src / f"{name}_{A1}.ipynb").write_text(build.notebook(A1))
    assert cli(ws, "collect", src, capsys=capsys)[0] == 0
    assert students_in(ws) == {"alice", "yves", "zed"}

    roster = src.parent / "roster.txt"
    roster.write_text("alice\nbob\n")
    (src / f"zed_{A1}.ipynb").unlink()
    (src / f"yves_{A1}.ipynb").unlink()
    code, out, _ = cli(ws, "collect", src, "--roster", roster, capsys=capsys)
    assert code == 1
    assert collected(ws) == [("alice", A1)]
    zed = problem(ws, "submitted/zed")
    assert zed.startswith("'zed' is not on the roster but is in the gradebook and in submitted/ (collected "
                          "before): left out of the missing list and of what the roster governs")
    command = f"python -m grader remove-student zed --workspace {shlex.quote(str(ws.root))} --yes"
    assert zed.endswith(f"to remove them and their grades: {command}")
    assert f"SKIPPED   {ws.root / 'submitted' / 'zed'}: 'zed' is not on the roster" in out
    assert "'yves' is not on the roster" in problem(ws, "submitted/yves")
    missing = {m["student"] for m in report(ws)["missing"]}
    assert missing == {"bob"}  # on the roster, nothing handed in; zed and yves are not counted

    # the roster is remembered: a later collect without --roster applies it
    (src / f"xavier_{A1}.ipynb").write_text(build.notebook(A1))
    code, out, _ = cli(ws, "collect", src, capsys=capsys)
    assert code == 1
    assert report(ws)["roster"] == {"from": "roster.json", "students": 2}
    assert problem(ws, f"xavier_{A1}.ipynb") == "'xavier' is not on the roster"
    assert "xavier" not in students_in(ws)

    # the command the report gives removes zed; then only yves is reported
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "grader"]
    assert main(argv[3:]) == 0
    assert "zed" not in students_in(ws)
    assert cli(ws, "collect", src, capsys=capsys)[0] == 1
    assert [p["student"] for p in report(ws)["problems"] if "collected before" in p["problem"]] == ["yves"]


# --- remove-student ---------------------------------------------------------------------------

def _state(ws) -> dict:
    """Every file of the workspace (its gradebooks by their rows), to compare before and after."""
    found = {}
    for path in sorted(ws.root.rglob("*")):
        if path.is_file() and path.suffix == ".db":
            with sqlite3.connect(path) as db:
                found[str(path)] = [db.execute(f"SELECT * FROM {t}").fetchall() for (t,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        elif path.is_file():
            found[str(path)] = path.read_bytes()
    return found


def test_remove_student_lists_then_removes_everything_of_theirs(course, capsys):
    ws, src, build = course
    for name in ("alice", "zed"):
        (src / f"{name}_{A1}.ipynb").write_text(build.notebook(A1))
        (src / f"{name}_{A5}.ipynb").write_text(build.notebook(A5))
    roster = src.parent / "roster.txt"
    roster.write_text("alice\nzed\n")
    assert cli(ws, "collect", src, "--roster", roster, capsys=capsys)[0] == 0
    with ws.gradebook() as gb:  # what autograde leaves: submissions and grades
        for name in ("alice", "zed"):
            gb.add_submission(A1, name)
    for name in ("alice", "zed"):
        for folder in ("autograded", "feedback"):
            (ws.root / folder / name / A1).mkdir(parents=True)
            (ws.root / folder / name / A1 / f"{A1}.{'html' if folder == 'feedback' else 'ipynb'}").write_text("{}")
    shutil.copyfile(ws.root / "gradebook.db", ws.root / "gradebook-shard-1-of-2.db")
    records = {f"{name}/{a}": ["a flag"] for name in ("alice", "zed") for a in (A1, A5)}
    for name in ("autograde-flags.json", "autograde-graded.json", "gradebook-shard-1-of-2.flags.json"):
        (ws.root / name).write_text(json.dumps(records))
    (ws.root / "other.json").write_text(json.dumps({"zedd/x": 1, "alice": 2}))  # not zed's: left as it is

    before = _state(ws)
    code, out, err = cli(ws, "remove-student", "zed", capsys=capsys)  # a dry run
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"would remove zed from the gradebook, with 1 submission and its grades ({A1})",
        f"would remove zed from the shard gradebook gradebook-shard-1-of-2.db, with 1 submission and its grades ({A1})",
        f"would remove {ws.root / 'submitted' / 'zed'} (4 files)",
        f"would remove {ws.root / 'autograded' / 'zed'} (1 file)",
        f"would remove {ws.root / 'feedback' / 'zed'} (1 file)",
        "would remove zed's 2 entries in autograde-flags.json",
        "would remove zed's 2 entries in autograde-graded.json",
        "would remove zed's 2 entries in collect-report.json",
        "would remove zed's 2 entries in gradebook-shard-1-of-2.flags.json",
        "would remove zed from the remembered roster (roster.json; take them off your roster file too, or the "
        "next `collect --roster FILE` puts them back)",
        "nothing was removed: run the same command with --yes to remove all this",
    ]
    assert _state(ws) == before

    for argv in (["nobody"], ["zed", "nobody", "--yes"], ["../alice", "--yes"], ["zed\n", "--yes"]):
        code, out, err = cli(ws, "remove-student", *argv, capsys=capsys)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, (argv, err)
        assert err.startswith("error: no student '") and "nothing removed (the students there: alice, zed)" in err
    assert _state(ws) == before

    code, out, _ = cli(ws, "remove-student", "zed", "--yes", capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"removed zed from the gradebook, with 1 submission and its grades ({A1})"
    assert len(lines) == 11 and all(line.startswith("removed ") for line in lines[:-1])
    assert lines[-1].startswith("zed removed; run `python -m grader export` and `python -m grader report` again")

    after = _state(ws)
    assert not any("/zed/" in path or path.endswith("/zed") for path in after)
    assert students_in(ws) == {"alice"}
    with ws.gradebook() as gb:
        assert [s.student.id for s in gb.assignment_submissions(A1)] == ["alice"]
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{ws.root / 'gradebook-shard-1-of-2.db'}", "bce-course") as gb:
        assert {s.id for s in gb.students} == {"alice"}
    alice = {k: v for k, v in records.items() if k.startswith("alice/")}
    for name in ("autograde-flags.json", "autograde-graded.json", "gradebook-shard-1-of-2.flags.json"):
        assert json.loads((ws.root / name).read_text()) == alice
    assert json.loads((ws.root / "other.json").read_text()) == {"zedd/x": 1, "alice": 2}
    assert json.loads((ws.root / "roster.json").read_text()) == ["alice"]
    assert {c["student"] for c in report(ws)["collected"]} == {"alice"}
    # alice's files are exactly as they were
    assert {k: v for k, v in after.items() if "/alice/" in k} == {k: v for k, v in before.items() if "/alice/" in k}

    # removed: it is unknown now, and says so
    code, _, err = cli(ws, "remove-student", "zed", "--yes", capsys=capsys)
    assert code == 2 and "no student 'zed'" in err and "the students there: alice)" in err


# --- when each submission was handed in -------------------------------------------------------

def _recorded(ws, student, assignment) -> datetime.datetime:
    """The time nbgrader reads from the submission's timestamp.txt (naive, UTC), as autograde does."""
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory().get_existing_timestamp(str(ws.submitted(student, assignment).parent))


def _at(*args) -> float:
    return datetime.datetime(*args, tzinfo=UTC).timestamp()


def test_each_submission_gets_nbgraders_timestamp(course, capsys):
    ws, src, build = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    os.utime(src / f"alice_{A1}.ipynb", (_at(2026, 1, 5, 9, 30), _at(2026, 1, 5, 9, 30)))
    with zipfile.ZipFile(src / "lms.zip", "w") as z:
        z.writestr(zipfile.ZipInfo(f"bob/{A1}.ipynb", date_time=(2026, 1, 6, 14, 0, 2)), build.notebook(A1))
        ut = zipfile.ZipInfo(f"carol/{A1}.ipynb", date_time=(2026, 1, 1, 0, 0, 0))
        ut.extra = struct.pack("<HHBi", 0x5455, 5, 1, int(_at(2026, 1, 7, 8, 0)))  # Info-ZIP's UTC time
        z.writestr(ut, build.notebook(A1))
        z.writestr(zipfile.ZipInfo(f"dave/{A1}.ipynb"), build.notebook(A1))  # no date: the archive's
    os.utime(src / "lms.zip", (_at(2026, 1, 8, 12, 0), _at(2026, 1, 8, 12, 0)))
    inbound = src / "exchange" / "bce-course" / "inbound"
    for student, stamp in (("erin", "2026-01-09 17:45:10.250000 UTC"), ("frank", "not a time")):
        entry = inbound / f"{student}+{A1}+{stamp}"
        entry.mkdir(parents=True)
        (entry / f"{A1}.ipynb").write_text(build.notebook(A1))
        os.utime(entry / f"{A1}.ipynb", (_at(2026, 1, 3, 7, 0), _at(2026, 1, 3, 7, 0)))

    assert cli(ws, "collect", src / f"alice_{A1}.ipynb", src / "lms.zip", src / "exchange", capsys=capsys)[0] == 0
    local = datetime.datetime(2026, 1, 6, 14, 0, 2).astimezone(UTC)  # a zip's date is local time
    expected = {"alice": (datetime.datetime(2026, 1, 5, 9, 30, tzinfo=UTC), "file"),
                "bob": (local, "zip"),
                "carol": (datetime.datetime(2026, 1, 7, 8, 0, tzinfo=UTC), "zip"),
                "dave": (datetime.datetime(2026, 1, 8, 12, 0, tzinfo=UTC), "archive"),
                "erin": (datetime.datetime(2026, 1, 9, 17, 45, 10, 250000, tzinfo=UTC), "exchange"),
                "frank": (datetime.datetime(2026, 1, 3, 7, 0, tzinfo=UTC), "file")}
    for item in report(ws)["collected"]:
        when, source = expected[item["student"]]
        assert (item["submitted_at"], item["time_from"]) == (when.isoformat(), source), item
        assert _recorded(ws, item["student"], A1) == when.replace(tzinfo=None), item
    assert (ws.submitted("erin", A1).parent / "timestamp.txt").read_text() == "2026-01-09 17:45:10.250000 UTC"

    # collected again: the content unchanged keeps its time, whatever the file's time says now
    os.utime(src / f"alice_{A1}.ipynb", (_at(2026, 2, 1), _at(2026, 2, 1)))
    assert cli(ws, "collect", src / f"alice_{A1}.ipynb", capsys=capsys)[0] == 0
    assert report(ws)["collected"][0]["status"] == "unchanged"
    assert report(ws)["collected"][0]["time_from"] == "recorded"
    assert _recorded(ws, "alice", A1) == datetime.datetime(2026, 1, 5, 9, 30)
    # a new version: its own time
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1, solutions(A1)))
    os.utime(src / f"alice_{A1}.ipynb", (_at(2026, 2, 2), _at(2026, 2, 2)))
    assert cli(ws, "collect", src / f"alice_{A1}.ipynb", capsys=capsys)[0] == 0
    assert report(ws)["collected"][0]["status"] == "updated"
    assert _recorded(ws, "alice", A1) == datetime.datetime(2026, 2, 2)


@pytest.mark.slow  # grades two notebooks
def test_a_late_submission_gets_nbgraders_late_penalty(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # for the grading processes
    ws = released_workspace(tmp_path / "ws", tmp_path / "notebooks",
                            "c.LateSubmissionPlugin.penalty_method = 'zero'\n")
    with ws.gradebook() as gb:
        gb.update_or_create_assignment(A1, duedate="2026-01-10 12:00:00 UTC")
    build = Class(ws)
    src = tmp_path / "src"
    src.mkdir()
    for student, day in (("early", 9), ("late", 11)):
        path = src / f"{student}_{A1}.ipynb"
        path.write_text(build.notebook(A1, solutions(A1)))
        os.utime(path, (_at(2026, 1, day, 12, 0), _at(2026, 1, day, 12, 0)))
    capsys.readouterr()
    assert main(["collect", str(src), "--workspace", str(ws.root)]) == 0
    assert main(["autograde", "--quiet", "--jobs", "1", "--workspace", str(ws.root)]) == 0
    with ws.gradebook() as gb:
        early = gb.find_submission(A1, "early")
        late = gb.find_submission(A1, "late")
        assert early.timestamp == datetime.datetime(2026, 1, 9, 12, 0) and early.total_seconds_late == 0
        assert late.timestamp == datetime.datetime(2026, 1, 11, 12, 0)
        assert late.total_seconds_late == 24 * 3600
        assert early.score == late.score == 9  # both right
        assert early.late_submission_penalty == 0
        assert late.late_submission_penalty == 9  # penalty_method 'zero': the whole score


# --- every collect's report is kept -----------------------------------------------------------

def test_every_collects_report_is_kept(course, capsys):
    ws, src, build = course
    (src / f"alice_{A1}.ipynb").write_text(build.notebook(A1))
    assert cli(ws, "collect", src, capsys=capsys)[0] == 0
    first = report(ws)
    (src / f"bob_{A1}.ipynb").write_text("not a notebook")
    assert cli(ws, "collect", src, capsys=capsys)[0] == 1
    second = report(ws)
    assert cli(ws, "collect", src, capsys=capsys)[0] == 1
    third = report(ws)

    kept = sorted((ws.root / "collect-reports").iterdir())
    assert [json.loads(p.read_text()) for p in kept] == [first, second, third]
    assert first["ran_at"] < second["ran_at"] < third["ran_at"]
    assert [p.name for p in kept] == sorted(
        datetime.datetime.fromisoformat(r["ran_at"]).strftime("%Y-%m-%dT%H-%M-%S.%fZ.json")
        for r in (first, second, third))
    assert first["problems"] == [] and "bob_" in second["problems"][0]["origin"]
    assert [c["status"] for c in second["collected"]] == ["unchanged"]
