"""Grading beyond one machine: shards of a class, each into a gradebook of its own, and the
merge that brings them together, keeping for every submission the newest grading wherever it is.

``autograde --shard I/N`` grades a fixed share of the students (by a hash of their id) into
``gradebook-shard-I-of-N.db``; each gradebook's gradings are recorded beside it, with when
they happened (``autograde-graded.json``, ``gradebook-shard-I-of-N.graded.json``), so that
:func:`merge` can keep the newest and running it again changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .workspace import WorkflowError, Workspace

SHARD = re.compile(r"^(?P<index>\d+)/(?P<count>\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' (1 <= i <= N) -> (i, N)."""
    match = SHARD.match(text or "")
    if not match or not 1 <= int(match["index"]) <= int(match["count"]):
        raise WorkflowError(f"a shard is written i/N with 1 <= i <= N, for instance 2/8; not {text!r}")
    return int(match["index"]), int(match["count"])


def in_shard(student: str, shard: tuple[int, int]) -> bool:
    """Whether ``student`` belongs to ``shard``: a fixed hash of the id, the same on every machine."""
    import zlib

    index, count = shard
    return zlib.crc32(student.encode()) % count == index - 1


def shard_workspace(workspace: Workspace, shard: tuple[int, int]) -> Workspace:
    """The same workspace, with a gradebook of the shard's own (a copy of the main one,
    which knows the assignments): shards running at once never write to one database."""
    if workspace.db_url and not workspace.db_url.startswith("sqlite"):
        raise WorkflowError("--shard keeps a SQLite gradebook per shard; with another database, run the "
                            "shards against it directly (without --shard, selecting --student)")
    index, count = shard
    path = workspace.root / f"gradebook-shard-{index}-of-{count}.db"
    main_db = workspace.root / "gradebook.db"
    if workspace.db_url:  # the one merge will merge into
        main_db = Path(workspace.db_url.removeprefix("sqlite:///"))
    if not path.exists():
        if not main_db.exists():
            raise WorkflowError(f"no gradebook in {workspace.root}: run `python -m grader release` first")
        _copy_sqlite(main_db, path)
    return Workspace(workspace.root, f"sqlite:///{path}")


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (even while another process writes to it),
    put in place whole: a shard that dies while copying leaves no half gradebook behind."""
    import sqlite3

    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        src, dst = sqlite3.connect(source), sqlite3.connect(partial)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


# --- when each submission was graded ------------------------------------------------------
#
# Every gradebook has a record beside its flags of when each of its submissions was graded:
# autograde-graded.json for the workspace's gradebook, gradebook-shard-I-of-N.graded.json for a
# shard's, {"student/assignment": {"graded_at_ns": ..., "notebook": {...}, ...}}. Each file has one
# writer (the run grading into that gradebook; merge for the main one) and is replaced whole.
#
# The time is the file system's, not the grading machine's: the mtime of the autograded notebook
# nbgrader has just written into the shared workspace (an NFS server stamps what it is sent with its
# own clock), or of a file written for the purpose when grading left no notebook. And it is always
# later than every record of that submission in any of the workspace's gradebooks: a grading that
# starts after another has ended is newer whatever the clocks say (a Lamport clock); only gradings
# of one submission running at once are ordered by the clock. ``notebook`` is the autograded
# notebook's fingerprint (mtime, size, sha256; null when grading left none): merge checks that the
# autograded/ folder, which every gradebook's runs share, holds the grading it keeps.

MAIN_FLAGS = "autograde-flags.json"
MAIN_GRADED = "autograde-graded.json"
SHARD_DB = re.compile(r"^gradebook-shard-(?P<index>\d+)-of-(?P<count>\d+)\.db$")
#: The note merge leaves in the flags when autograded/ holds another grading than the one kept.
OTHER_FOLDER = "autograded/ holds another grading than this grade: grade it again"


def _graded_records(workspace: Workspace) -> list[dict]:
    """The records of every gradebook in the workspace (its own and the shards')."""
    names = [MAIN_GRADED] + sorted(p.name for p in workspace.root.glob("gradebook-shard-*-of-*.graded.json"))
    return [workspace.read_json(name, {}) for name in names]


def _file_system_now(folder: Path) -> int:
    """Now, in ns, by the clock of the file system ``folder`` is on."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix=".clock-", dir=folder)
    try:
        os.write(fd, b"now")
        os.close(fd)
        return os.stat(name).st_mtime_ns
    finally:
        os.unlink(name)


def _fingerprint(notebook: Path, *, digest: bool = True) -> dict | None:
    import hashlib

    try:
        stat = notebook.stat()
        if not digest:
            return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
        return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size,
                "sha256": hashlib.sha256(notebook.read_bytes()).hexdigest()}
    except FileNotFoundError:
        return None


def _autograded_notebook(workspace: Workspace, student: str, assignment: str) -> Path:
    return workspace.root / "autograded" / student / assignment / f"{assignment}.ipynb"


def _record_graded(workspace: Workspace, graded_file: str, gradebook: str,
                   done: dict[tuple[str, str], dict | None]) -> None:
    """Record that the submissions ``done`` were graded just now: {(student, assignment): the
    fingerprint of the autograded notebook grading left, None when it left none}."""
    import datetime

    if not done:
        return
    others = _graded_records(workspace)
    records = workspace.read_json(graded_file, {})
    now = None
    for (student, assignment), notebook in done.items():
        key = f"{student}/{assignment}"
        if notebook:
            at = notebook["mtime_ns"]
        else:  # nbgrader removes the folder of a submission it could not grade
            now = now or _file_system_now(workspace.root)
            at = now
        known = [r[key]["graded_at_ns"] for r in (*others, records) if isinstance(r.get(key), dict)
                 and isinstance(r[key].get("graded_at_ns"), int)]
        at = max([at] + [k + 1 for k in known])
        records[key] = {
            "graded_at_ns": at,
            "graded_at": datetime.datetime.fromtimestamp(at / 1e9, datetime.timezone.utc).isoformat(),
            "graded_in": gradebook,
            "notebook": notebook,
        }
    _write_json_whole(workspace.root / graded_file, records)


def _write_json_whole(path: Path, data) -> None:
    """Write ``path`` under another name, then rename it (atomic, NFS included): a reader
    sees the old file or the new one, never part of one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


# --- merge ---------------------------------------------------------------------------------

@dataclass
class _Candidate:
    """A gradebook's grading of one submission, as merge weighs it."""
    rank: tuple          # larger is newer: (graded_at_ns or an unknown's rank, the main one first on a tie, ...)
    path: Path | None    # the shard's gradebook; None: the workspace's own
    record: dict | None  # its graded-at record; None: graded before such records were kept
    flags: list


#: Ranks of gradings without a record (graded before records were kept): older than any recorded one;
#: a shard's replaces the main gradebook's, as merge always did.
_UNKNOWN_SHARD, _UNKNOWN_MAIN = -1, -2


def merge(workspace: Workspace, shards: Iterable[Path] | None = None) -> list[Path]:
    """Bring the shards' gradings into the workspace's gradebook: for each student and
    assignment, the newest grading of all, whichever gradebook holds it (the workspace's
    own or a shard's), with its grades, comments, flags and graded-at record. Running it
    again changes nothing.

    A shard's gradebook starts as a copy of the workspace's: only what the shard graded
    itself (what its record lists) competes. Where the kept grade changes, the feedback/
    written from the grade replaced is removed (``feedback`` writes it again); where the
    autograded/ folder, which all runs share, holds another grading than the one kept,
    the flags say so."""
    from nbgrader.api import Gradebook

    paths = sorted(Path(p) for p in shards) if shards else sorted(workspace.root.glob("gradebook-shard-*-of-*.db"))
    if not paths:
        raise WorkflowError(f"no shard gradebooks (gradebook-shard-I-of-N.db) in {workspace.root}")
    course_id = workspace.config().CourseDirectory.course_id
    flags = workspace.read_json(MAIN_FLAGS, {})
    records = workspace.read_json(MAIN_GRADED, {})

    with workspace.gradebook() as main:
        held = _submissions(main)
    best: dict[tuple[str, str], _Candidate] = {}
    for pair in held:
        record = records.get("/".join(pair))
        if not _recorded(record):
            record = None
        rank = record["graded_at_ns"] if record else _UNKNOWN_MAIN
        best[pair] = _Candidate((rank, 1, 0), None, record, flags.get("/".join(pair), []))
    for order, path in enumerate(paths):
        shard_flags = _beside(workspace, path, ".flags.json")
        shard_records = _beside(workspace, path, ".graded.json")
        with Gradebook(f"sqlite:///{path}", course_id) as gb:
            theirs = _submissions(gb)
        if shard_records is None:  # graded before records were kept: its own students' submissions
            which = SHARD_DB.match(path.name)
            mine = [p for p in theirs if not which or in_shard(p[0], (int(which["index"]), int(which["count"])))]
            found = [(p, None, _UNKNOWN_SHARD) for p in mine]
        else:
            found = [(p, shard_records[k], shard_records[k]["graded_at_ns"]) for p in theirs
                     if _recorded(shard_records.get(k := "/".join(p)))]
        for pair, record, at in found:
            candidate = _Candidate((at, 0, -order), path, record, (shard_flags or {}).get("/".join(pair), []))
            if pair not in best or candidate.rank > best[pair].rank:
                best[pair] = candidate

    changed = set()
    by_shard: dict[Path, list[tuple[str, str]]] = {}
    for pair, candidate in best.items():
        if candidate.path is not None:
            by_shard.setdefault(candidate.path, []).append(pair)
    with workspace.gradebook() as main:
        for path, pairs in by_shard.items():
            with Gradebook(f"sqlite:///{path}", course_id) as gb:
                for student, assignment in sorted(pairs):
                    key = f"{student}/{assignment}"
                    candidate = best[(student, assignment)]
                    if _copy_submission(gb, main, student, assignment):
                        changed.add((student, assignment))
                    if candidate.record is not None:
                        if records.get(key) != candidate.record:
                            changed.add((student, assignment))
                        records[key] = candidate.record
                    flags[key] = [f for f in candidate.flags if f != OTHER_FOLDER]
    for student, assignment in sorted(changed):
        stale = workspace.root / "feedback" / student / assignment  # written from the grade replaced
        if stale.is_dir():
            shutil.rmtree(stale)
    for (student, assignment), candidate in best.items():
        if candidate.record is None:
            continue
        key = f"{student}/{assignment}"
        kept = [f for f in flags.get(key, []) if f != OTHER_FOLDER]
        if not _folder_holds(workspace, student, assignment, candidate.record):
            kept.append(OTHER_FOLDER)
        if kept or key in flags:
            flags[key] = kept
    _write_json_whole(workspace.root / MAIN_GRADED, records)
    workspace.write_json(MAIN_FLAGS, flags)
    return paths


def _recorded(record) -> bool:
    return isinstance(record, dict) and isinstance(record.get("graded_at_ns"), int)


def _beside(workspace: Workspace, path: Path, suffix: str) -> dict | None:
    """The json file of a shard's gradebook (its flags or its records): beside it, else in the
    workspace; None when there is none."""
    for candidate in (path.with_suffix(suffix), workspace.root / path.with_suffix(suffix).name):
        if candidate.exists():
            return json.loads(candidate.read_text())
    return None


def _submissions(gb) -> set[tuple[str, str]]:
    return {(sub.student.id, assignment.name) for assignment in gb.assignments
            for sub in gb.assignment_submissions(assignment.name)}


def _copy_submission(source, target, student_id: str, assignment: str) -> bool:
    """Copy a submission with its grades and comments from gradebook ``source`` into
    ``target``; whether anything there changed."""
    from nbgrader.api import MissingEntry

    sub = source.find_submission(assignment, student_id)
    student = sub.student
    target.update_or_create_student(student.id, first_name=student.first_name,
                                    last_name=student.last_name, email=student.email)
    changed = False
    try:
        into_sub = target.find_submission(assignment, student.id)
    except MissingEntry:
        into_sub = target.add_submission(assignment, student.id)
        changed = True

    def set_all(obj, **values) -> None:
        nonlocal changed
        for name, value in values.items():
            if getattr(obj, name) != value:
                setattr(obj, name, value)
                changed = True

    set_all(into_sub, timestamp=sub.timestamp)
    for nb in sub.notebooks:
        for grade in nb.grades:
            set_all(target.find_grade(grade.name, nb.name, assignment, student.id),
                    auto_score=grade.auto_score, manual_score=grade.manual_score,
                    extra_credit=grade.extra_credit, needs_manual_grade=grade.needs_manual_grade)
        for comment in nb.comments:
            set_all(target.find_comment(comment.name, nb.name, assignment, student.id),
                    auto_comment=comment.auto_comment, manual_comment=comment.manual_comment)
    target.db.commit()
    return changed


def _folder_holds(workspace: Workspace, student: str, assignment: str, record: dict) -> bool:
    """Whether autograded/<student>/<assignment>/ is the one the grading ``record`` left."""
    expected = record.get("notebook")
    notebook = _autograded_notebook(workspace, student, assignment)
    seen = _fingerprint(notebook, digest=False)
    if expected is None or seen is None:
        return expected is None and seen is None
    if seen == {"mtime_ns": expected.get("mtime_ns"), "size": expected.get("size")}:
        return True
    return (_fingerprint(notebook) or {}).get("sha256") == expected.get("sha256")


