"""The roster: the students' ids, read from the instructor's file (one id a line, or a CSV
whose first column is the id), checked (each must be a student id, none an assignment's
name), and remembered in the workspace as ``roster.json`` (a sorted JSON list of ids), which
later collects (and export) apply until another roster replaces it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..workspace import WorkflowError, Workspace
from .names import STUDENT_ID, _assignment_like, _shown

#: The roster a workspace remembers, in its folder.
ROSTER_FILE = "roster.json"
_HEADERS = ("id", "student", "student_id", "student id", "username", "login")


def read_roster(path: Path, released) -> list[str]:
    """The ids in the roster file ``path``, sorted, each once."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a CSV saved by a spreadsheet starts with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read the roster {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0] and rows[0][0].strip().lower() in _HEADERS:
        rows = rows[1:]
    ids = []
    for number, row in enumerate(rows, 1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        student = row[0].strip()
        if not STUDENT_ID.fullmatch(student):
            raise WorkflowError(f"the roster {path} lists {_shown(student)!r}, which cannot be a student id "
                                "(letters, digits, . _ @ -, starting with a letter or digit): correct it")
        like = _assignment_like(student, released)
        if like:
            raise WorkflowError(f"the roster {path} lists {student!r}, which "
                                f"{'is' if like.lower() == student.lower() else 'looks like'} the assignment "
                                f"{like!r}, not a student id: take it off the roster")
        ids.append(student)
    if not ids:
        raise WorkflowError(f"the roster {path} lists no student (one id a line, or a CSV whose first column "
                            "is the id)")
    return sorted(set(ids))


def remembered(workspace: Workspace) -> list[str] | None:
    """The roster the workspace remembers (``roster.json``), if any."""
    path = workspace.root / ROSTER_FILE
    if not path.exists():
        return None
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"{path} is damaged ({exc}): collect once with --roster FILE to write it again, "
                            "or delete it to collect without a roster") from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) and STUDENT_ID.fullmatch(i) for i in ids):
        raise WorkflowError(f"{path} is not a list of student ids: collect once with --roster FILE to write it "
                            "again, or delete it to collect without a roster")
    return sorted(set(ids))


def remember(workspace: Workspace, ids: list[str]) -> None:
    ids = sorted(set(ids))
    if workspace.read_json(ROSTER_FILE, None) != ids:
        workspace.write_json(ROSTER_FILE, ids)
