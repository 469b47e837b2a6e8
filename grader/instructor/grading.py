"""Autograding a workspace's submissions (with the warm engine, run as
``python -m grader.instructor.engine``, or with plain nbgrader), the summary of
what needs attention, and grading in shards merged afterwards."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .release import environment_bin_on_path
from .shards import (MAIN_FLAGS, MAIN_GRADED, _autograded_notebook, _fingerprint, _record_graded, in_shard,
                     shard_workspace)
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
    flags_file, graded_file, gradebook = MAIN_FLAGS, MAIN_GRADED, "main"
    if shard:
        workspace = shard_workspace(workspace, shard)
        gradebook = Path(workspace.db_url.removeprefix("sqlite:///")).name
        flags_file = Path(gradebook).with_suffix(".flags.json").name
        graded_file = Path(gradebook).with_suffix(".graded.json").name
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
    done: dict[tuple[str, str], dict | None] = {}
    if engine == "warm":
        results = _grade_warm(workspace, pending, jobs or os.cpu_count() or 1, progress)
    else:
        results = _grade_plain(workspace, pending, progress)
    for student, assignment, success, log in results:
        attention = edited_test_cells(workspace, student, assignment)
        if not success:
            attention.append("nbgrader could not grade it: " + _last_error(log))
        notebook = _autograded_notebook(workspace, student, assignment)
        done[(student, assignment)] = _fingerprint(notebook)
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
    _record_graded(workspace, graded_file, gradebook, done)  # when, for merge to keep the newest
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


def summary(workspace: Workspace, flags_file: str = MAIN_FLAGS) -> list[Graded]:
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
