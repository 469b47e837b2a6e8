"""Autograding a workspace's submissions (with the warm engine, run as
``python -m grader.instructor.engine``, or with plain nbgrader), the summary of
what needs attention, and grading in shards merged afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .release import environment_bin_on_path
from .workspace import WorkflowError, Workspace, _short, _submitted_students

# --- autograde ---------------------------------------------------------------------------

def edited_test_cells(workspace: Workspace, student: str, assignment: str) -> list[str]:
    """Test cells of a submission that differ from the released ones: edited or deleted."""
    import nbformat
    from nbgrader.utils import compute_checksum, is_grade, is_locked

    released = nbformat.read(workspace.released()[assignment], as_version=4)
    try:
        submitted = nbformat.read(workspace.submitted(student, assignment), as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: nbgrader will say so
        return []
    theirs = {c.metadata.nbgrader.grade_id: c for c in submitted.cells
              if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
    found = []
    for cell in released.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (meta.get("grade_id") and (is_locked(cell) or is_grade(cell)) and cell.cell_type == "code"):
            continue
        if not is_grade(cell):
            continue
        mine = theirs.get(meta["grade_id"])
        if mine is None:
            found.append(f"deleted test cell {meta['grade_id']}")
        elif compute_checksum(mine) != compute_checksum(cell) or mine.source != cell.source:
            found.append(f"edited test cell {meta['grade_id']}")
    return found


@dataclass
class Graded:
    student: str
    assignment: str
    score: float | None
    max_score: float | None
    attention: list[str]


ENGINES = ("warm", "nbgrader")
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
    if not path.exists():
        if not main_db.exists():
            raise WorkflowError(f"no gradebook in {workspace.root}: run `python -m grader release` first")
        shutil.copyfile(main_db, path)
    return Workspace(workspace.root, f"sqlite:///{path}")


def merge(workspace: Workspace, shards: Iterable[Path] | None = None) -> list[Path]:
    """Copy every submission and its grades and comments from the shards' gradebooks
    into the workspace's own, replacing what it held for those students; safe to repeat."""
    from nbgrader.api import Gradebook, MissingEntry

    paths = sorted(shards) if shards else sorted(workspace.root.glob("gradebook-shard-*-of-*.db"))
    if not paths:
        raise WorkflowError(f"no shard gradebooks (gradebook-shard-I-of-N.db) in {workspace.root}")
    course_id = workspace.config().CourseDirectory.course_id
    flags = workspace.read_json("autograde-flags.json", {})
    with workspace.gradebook() as main:
        for path in paths:
            with Gradebook(f"sqlite:///{path}", course_id) as shard:
                for assignment in shard.assignments:
                    for sub in shard.assignment_submissions(assignment.name):
                        student = sub.student
                        main.update_or_create_student(student.id, first_name=student.first_name,
                                                      last_name=student.last_name, email=student.email)
                        try:
                            target = main.find_submission(assignment.name, student.id)
                        except MissingEntry:
                            target = main.add_submission(assignment.name, student.id)
                        target.timestamp = sub.timestamp
                        for nb in sub.notebooks:
                            for grade in nb.grades:
                                into = main.find_grade(grade.name, nb.name, assignment.name, student.id)
                                into.auto_score, into.manual_score = grade.auto_score, grade.manual_score
                                into.extra_credit, into.needs_manual_grade = grade.extra_credit, grade.needs_manual_grade
                            for comment in nb.comments:
                                into = main.find_comment(comment.name, nb.name, assignment.name, student.id)
                                into.auto_comment, into.manual_comment = comment.auto_comment, comment.manual_comment
                        main.db.commit()
            flags.update(workspace.read_json(path.with_suffix(".flags.json").name, {}))
    workspace.write_json("autograde-flags.json", flags)
    return paths


def autograde(workspace: Workspace, *, students: Iterable[str] | None = None,
              assignments: Iterable[str] | None = None, progress: bool = True,
              engine: str = "warm", jobs: int | None = None, shard: tuple[int, int] | None = None) -> list[Graded]:
    """Autograde every collected submission (or the selected ones) with nbgrader,
    then read every score back from the gradebook.

    ``engine="warm"`` runs the notebooks in processes forked from a warm one, in
    ``jobs`` parallel workers (default: the number of cores); ``"nbgrader"`` is
    plain nbgrader, a kernel per notebook, one at a time."""
    if engine not in ENGINES:
        raise WorkflowError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    flags_file = "autograde-flags.json"
    if shard:
        workspace = shard_workspace(workspace, shard)
        flags_file = Path(workspace.db_url.removeprefix("sqlite:///")).with_suffix(".flags.json").name
    released = workspace.released()
    wanted_students = set(students) if students else None
    wanted_assignments = set(assignments) if assignments else set(released)
    unknown = wanted_assignments - set(released)
    if unknown:
        raise WorkflowError(f"no assignment {', '.join(sorted(unknown))}; the assignments are {', '.join(released)}")
    pending = [(s, a) for s in _submitted_students(workspace) for a in released
            if a in wanted_assignments and (wanted_students is None or s in wanted_students)
            and (shard is None or in_shard(s, shard)) and workspace.submitted(s, a).exists()]
    flags: dict = workspace.read_json(flags_file, {})
    if engine == "warm":
        results = _grade_warm(workspace, pending, jobs or os.cpu_count() or 1, progress)
    else:
        results = _grade_plain(workspace, pending, progress)
    for student, assignment, success, log in results:
        attention = edited_test_cells(workspace, student, assignment)
        if not success:
            attention.append("nbgrader could not grade it: " + _last_error(log))
        notebook = workspace.root / "autograded" / student / assignment / f"{assignment}.ipynb"
        text = notebook.read_text() if notebook.exists() else ""
        if "CellTimeoutError" in text or "Timeout" in log:
            attention.append("a cell ran out of time")
        engine_notes = _engine_attention(text) if engine == "warm" else []
        if engine_notes:
            attention += engine_notes  # the crash, with its cause, is among them
        elif "DeadKernelError" in text or "DeadKernelError" in log or "Kernel died" in log:
            attention.append("the notebook's process died")
        flags[f"{student}/{assignment}"] = attention
    workspace.write_json(flags_file, flags)
    return summary(workspace, flags_file)


def _engine_attention(text: str) -> list[str]:
    """What the warm engine found while it ran a notebook (its sandbox and verdict), from
    the metadata it writes into the autograded notebook."""
    try:
        notes = json.loads(text).get("metadata", {}).get("bce_grader", {}).get("attention", [])
    except (ValueError, AttributeError):
        return []
    return [str(n) for n in notes] if isinstance(notes, list) else []


def _grade_plain(workspace: Workspace, pending, progress: bool):
    api = workspace.api()
    with environment_bin_on_path():
        for student, assignment in _progress(pending, progress):
            result = api.autograde(assignment, student, force=True, create=True)
            yield student, assignment, bool(result.get("success")), \
                (result.get("log") or "") + (result.get("error") or "")


def _grade_warm(workspace: Workspace, pending, jobs: int, progress: bool):
    """The warm engine runs in a process of its own, which warms up single-threaded
    whatever state this process is in (one that has used torch's thread pool cannot fork)."""
    import subprocess
    import sys

    if not pending:
        return []
    job = {"workspace": str(workspace.root), "db_url": workspace.db_url, "tasks": pending, "jobs": jobs,
           "progress": progress}
    with environment_bin_on_path():
        done = subprocess.run([sys.executable, "-m", "grader.instructor.engine"], input=json.dumps(job), text=True,
                              stdout=subprocess.PIPE, env=dict(os.environ))
    if done.returncode != 0:
        raise WorkflowError(f"the warm engine failed (exit code {done.returncode}); "
                            "run again with --engine nbgrader to grade with plain nbgrader")
    return [tuple(r) for r in json.loads(done.stdout)]


def _progress(items, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="autograde", unit="notebook")


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return _short(Exception((errors or lines or ["(no log)"])[-1]))


def summary(workspace: Workspace, flags_file: str = "autograde-flags.json") -> list[Graded]:
    """Every submission's score and maximum as the gradebook holds them, with what needs attention."""
    flags = workspace.read_json(flags_file, {})
    collected = workspace.read_json("collect-report.json", {"problems": [], "missing": []})
    rows = []
    with workspace.gradebook() as gb:
        assignments = [a.name for a in gb.assignments]
        for student in sorted(s.id for s in gb.students):
            for assignment in assignments:
                attention = list(flags.get(f"{student}/{assignment}", []))
                try:
                    sub = gb.find_submission(assignment, student)
                except Exception:  # noqa: BLE001 - nbgrader raises MissingEntry
                    problems = [p["problem"] for p in collected.get("problems", [])
                                if p.get("student") == student and p.get("assignment") == assignment]
                    if problems:
                        rows.append(Graded(student, assignment, None, None,
                                           [f"not collected: {p}" for p in problems]))
                    elif any(m["student"] == student and m["assignment"] == assignment
                             for m in collected.get("missing", [])):
                        rows.append(Graded(student, assignment, None, None, ["missing"]))
                    continue
                if sub.needs_manual_grade:
                    attention.append("needs manual grading")
                rows.append(Graded(student, assignment, sub.score, sub.max_score, attention))
    return rows


def summary_table(rows: list[Graded]) -> str:
    lines = [f"{'student':16} {'assignment':24} {'score':>12}  needs attention"]
    for r in rows:
        score = "-" if r.score is None else f"{r.score:g} / {r.max_score:g}"
        lines.append(f"{r.student:16} {r.assignment:24} {score:>12}  {'; '.join(r.attention)}")
    return "\n".join(lines)
