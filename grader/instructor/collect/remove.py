"""Removing a student from a workspace (``python -m grader remove-student ID``): from the
gradebook (nbgrader's ``Gradebook.remove_student``, with their submissions and grades, as
``nbgrader db student remove --force`` does), from the shards' gradebooks (which merge would
otherwise bring them back from), their folders under submitted/, autograded/ and feedback/,
and their entries in the workspace's json records (the flags and graded records of autograde
and of the shards, keyed "student/assignment"; the remembered roster; the latest collect
report). The reports of earlier collects (collect-reports/) are history and stay as they were.

Nothing is removed unless asked (``apply``): without it, what would go is listed."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..workspace import WorkflowError, Workspace, _short, _submitted_students
from .names import STUDENT_ID, _shown
from .roster import ROSTER_FILE

#: The workspace's folders that hold a folder per student.
STUDENT_FOLDERS = ("submitted", "autograded", "feedback")


@dataclass
class _Thing:
    """One thing of a student's that removing them removes: what it is, in words, and how."""
    what: str
    remove: Callable[[], None] = field(repr=False)


def remove_students(workspace: Workspace, students: Iterable[str], *, apply: bool = False) -> list[str]:
    """What is (``apply``) or would be removed of ``students``, one line per thing, and a
    last line saying what to do next. Refuses (WorkflowError, nothing removed) when one of
    them is not in the workspace at all."""
    students = list(dict.fromkeys(students))
    if not students:
        raise WorkflowError("name the student to remove: remove-student ID")
    workspace.config()  # a workspace, or the error that says to release first
    plans = {}
    for student in students:
        things = _things(workspace, student) if STUDENT_ID.fullmatch(student) else []
        if not things:
            raise WorkflowError(f"no student {_shown(student)!r} in {workspace.root}: nothing removed "
                                f"({_known(workspace)})")
        plans[student] = things
    lines = []
    for student, things in plans.items():
        for thing in things:
            if apply:
                try:
                    thing.remove()
                except (OSError, ValueError) as exc:
                    raise WorkflowError(f"could not remove {thing.what}: {_short(exc)}; fix that and run "
                                        "remove-student again (what is already removed stays removed)") from exc
                except Exception as exc:  # noqa: BLE001 - the database's own errors, in one line
                    raise WorkflowError(f"could not remove {thing.what}: {_short(exc)}") from exc
            lines.append(f"{'removed' if apply else 'would remove'} {thing.what}")
    who = ", ".join(students)
    if apply:
        lines.append(f"{who} removed; run `python -m grader export` and `python -m grader report` again "
                     "to bring grades.csv and the report up to date")
    else:
        lines.append("nothing was removed: run the same command with --yes to remove all this")
    return lines


def _known(workspace: Workspace) -> str:
    students = set(_submitted_students(workspace))
    try:
        with workspace.gradebook() as gb:
            students |= {s.id for s in gb.students}
    except Exception:  # noqa: BLE001 - only for the message
        pass
    if not students:
        return "it holds no student"
    shown = sorted(students)
    more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
    return f"the students there: {', '.join(shown[:10])}{more}"


def _things(workspace: Workspace, student: str) -> list[_Thing]:
    """Everything of ``student``'s in the workspace (an id already checked to be one)."""
    things = []
    gradebooks = [("the gradebook", None)] + [
        (f"the shard gradebook {p.name}", p) for p in sorted(workspace.root.glob("gradebook-shard-*-of-*.db"))]
    for what, path in gradebooks:
        thing = _in_gradebook(workspace, student, what, path)
        if thing:
            things.append(thing)
    for name in STUDENT_FOLDERS:
        folder = workspace.root / name / student
        if folder.is_symlink() or folder.exists():
            things.append(_Thing(f"{folder} ({_count(folder)})", lambda f=folder: _delete(f)))
    for path in sorted(workspace.root.glob("*.json")):
        thing = _in_json(path, student)
        if thing:
            things.append(thing)
    return things


def _open(workspace: Workspace, path: Path | None):
    from nbgrader.api import Gradebook

    if path is None:
        return workspace.gradebook()
    return Gradebook(f"sqlite:///{path}", workspace.config().CourseDirectory.course_id)


def _in_gradebook(workspace: Workspace, student: str, what: str, path: Path | None) -> _Thing | None:
    from nbgrader.api import MissingEntry

    try:
        with _open(workspace, path) as gb:
            try:
                record = gb.find_student(student)
            except MissingEntry:
                return None
            assignments = sorted(s.assignment.name for s in record.submissions)
    except WorkflowError:
        raise
    except Exception as exc:  # noqa: BLE001 - a database that cannot be read, in one line
        raise WorkflowError(f"cannot read {what} ({_short(exc)}): nothing removed") from exc
    graded = (f", with {len(assignments)} submission{'s' if len(assignments) != 1 else ''} and its grades "
              f"({', '.join(assignments)})") if assignments else " (no graded submission)"

    def remove() -> None:
        with _open(workspace, path) as gb:
            gb.remove_student(student)

    return _Thing(f"{student} from {what}{graded}", remove)


def _count(folder: Path) -> str:
    if folder.is_symlink():
        return "a link"
    files = sum(1 for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return f"{files} file{'s' if files != 1 else ''}"


def _delete(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def _in_json(path: Path, student: str) -> _Thing | None:
    """The student's entries in one of the workspace's json files: keys that are the id or
    begin "id/" (flags and graded records), the id in a list of ids (the roster), items
    about the student in the latest collect report."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not a record of the workspace's (or damaged): left alone
    if isinstance(data, dict) and path.name == "collect-report.json":
        count = sum(1 for items in data.values() if isinstance(items, list)
                    for item in items if isinstance(item, dict) and item.get("student") == student)

        def change(d):
            return {k: [i for i in v if not (isinstance(i, dict) and i.get("student") == student)]
                    if isinstance(v, list) else v for k, v in d.items()}
    elif isinstance(data, dict):
        count = sum(1 for key in data if key == student or key.startswith(student + "/"))

        def change(d):
            return {k: v for k, v in d.items() if not (k == student or k.startswith(student + "/"))}
    elif isinstance(data, list) and all(isinstance(i, str) for i in data):
        count = data.count(student)

        def change(d):
            return [i for i in d if i != student]
    else:
        return None
    if not count:
        return None
    what = (f"{student} from the remembered roster ({ROSTER_FILE}; take them off your roster file too, or the "
            "next `collect --roster FILE` puts them back)" if path.name == ROSTER_FILE else
            f"{student}'s {count} entr{'ies' if count != 1 else 'y'} in {path.name}")

    def remove() -> None:
        _write_whole(path, change(json.loads(path.read_text())))

    return _Thing(what, remove)


def _write_whole(path: Path, data) -> None:
    """Replace ``path`` at once (a reader sees the old file or the new one)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
