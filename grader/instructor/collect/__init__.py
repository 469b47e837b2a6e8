"""Collecting submissions into a workspace: from folders, zip archives and nbgrader
exchanges, named by the naming rule (or the exchange), checked against the roster,
each notebook's assignment told from its nbgrader cells.

What a source holds is untrusted (students made it), so collect reads it defensively:
it never follows a link (to a file or to a folder: a link could hand in someone else's
file, or the master with its solutions), reads regular files only (never a named pipe,
a device or a socket, and never in a way that can block), opens each file relative to
its already opened folder without following links and checks that what it opened is
what it looked at, caps what it reads (per notebook, per archive member, in all, and
how many files it considers), refuses zip members that would unpack to absurd sizes
before unpacking them, and refuses names with control characters, path separators,
``.``/``..`` or absolute paths. Each thing it refuses is reported with why and skipped;
everything else is collected. Only the SOURCE paths themselves, which the instructor
typed, are taken as they are (a SOURCE that is a link is followed).

Where things live: the public API, the limits and ``collect`` itself here; the naming rule,
student ids and safe names in ``names``; which assignment a notebook is in ``notebooks``;
reading untrusted files in ``files``; folders, zip archives and exchanges in ``sources``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ..workspace import WorkflowError, Workspace, _short, _submitted_students
from .names import DEFAULT_PATTERNS, EXCHANGE_ENTRY, STUDENT_ID, _named_assignment, _shown
from .notebooks import Identifier, _damaged_json, _malformed
from .sources import Candidate, _Budget, _candidates

__all__ = ["collect", "CollectReport", "Candidate", "Identifier", "DEFAULT_PATTERNS", "STUDENT_ID",
           "EXCHANGE_ENTRY", "MAX_NOTEBOOK_BYTES", "MAX_COMPRESSION_RATIO", "RATIO_CHECKED_FROM", "MAX_FILES",
           "MAX_TOTAL_BYTES", "MAX_DEPTH", "MAX_ZIP_DIRECTORY_BYTES"]

# --- the limits on what collect reads (raise them here if a genuine class needs more) ---------

#: The most a notebook may weigh, as a file in a folder or unpacked from a zip archive.
MAX_NOTEBOOK_BYTES = 32 * 1024 ** 2
#: A zip member that unpacks to more than RATIO_CHECKED_FROM bytes may be at most this many
#: times larger than it is packed (notebooks compress 3:1 to 10:1; zeros compress 1000:1).
MAX_COMPRESSION_RATIO = 100
RATIO_CHECKED_FROM = 1024 ** 2
#: The most files and folders (archive members included) one collect considers, all sources together.
MAX_FILES = 100_000
#: The most bytes one collect reads (notebooks and unpacked archive members), all sources together.
MAX_TOTAL_BYTES = 4 * 1024 ** 3
#: The deepest folder collect descends into, below a SOURCE.
MAX_DEPTH = 64
#: The largest table of contents (central directory) of a zip archive collect reads.
MAX_ZIP_DIRECTORY_BYTES = 8 * 1024 ** 2


@dataclass
class CollectReport:
    collected: list[dict] = field(default_factory=list)   # student, assignment, origin, status
    problems: list[dict] = field(default_factory=list)    # origin, problem
    missing: list[dict] = field(default_factory=list)     # student, assignment

    def to_dict(self) -> dict:
        return asdict(self)


def _roster(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkflowError(f"cannot read the roster {path}: {exc}") from exc
    rows = list(csv.reader(io.StringIO(text)))
    if rows and rows[0] and rows[0][0].strip().lower() in ("id", "student", "student_id"):
        rows = rows[1:]
    return [row[0].strip() for row in rows if row and row[0].strip() and not row[0].startswith("#")]


def collect(workspace: Workspace, sources: Iterable[str | os.PathLike], *,
            patterns: Iterable[str] | None = None, roster: Path | None = None,
            assignment: str | None = None) -> CollectReport:
    """Bring submissions into ``submitted/<student>/<assignment>/``.

    Each notebook's assignment is read from its nbgrader cells; its student from
    the exchange entry or from the first of ``patterns`` (regular expressions
    with a ``student`` group, searched in the file's relative path) that
    matches. Whatever cannot be matched, read or placed without guessing is
    reported and skipped: files that are not notebooks, notebooks of no (or of
    another) assignment or with damaged nbgrader metadata, two files for the
    same student and assignment, students not on the roster, links, pipes and
    devices, unsafe or unreadable names, broken archives, files over the limits
    (see MAX_NOTEBOOK_BYTES and the others above).
    """
    import nbformat

    released = workspace.released()
    identify = Identifier(released)
    if assignment and assignment not in released:
        raise WorkflowError(f"no assignment {assignment!r}; the assignments are {', '.join(released)}")
    rules = [re.compile(p) for p in (patterns or DEFAULT_PATTERNS)]
    for rule in rules:
        if "student" not in rule.groupindex:
            raise WorkflowError(f"the pattern {rule.pattern!r} has no (?P<student>...) group")
    allowed = _roster(roster)
    course_id = workspace.config().CourseDirectory.course_id
    report = CollectReport()
    found: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    budget = _Budget()

    def skip(cand: Candidate, problem: str, student: str | None = None, which: str | None = None) -> None:
        item = {"origin": _shown(cand.origin), "problem": _shown(problem)}
        if student and STUDENT_ID.fullmatch(student):
            item["student"] = student
        if which:
            item["assignment"] = which
        report.problems.append(item)

    def consider(cand: Candidate, staging: Path) -> None:
        student = cand.student
        if student is None:
            match = next((m for m in (r.search(cand.relative) for r in rules) if m), None)
            student = match["student"].strip() if match else None
        named = cand.assignment or _named_assignment(cand.relative, released)
        if cand.problem is not None:
            skip(cand, cand.problem, student, named)
            return
        try:
            nb = nbformat.reads(cand.data.decode("utf-8"), as_version=4)
        except Exception as exc:  # noqa: BLE001 - anything unreadable is reported, not fatal
            kind = "invalid JSON" if isinstance(exc, json.JSONDecodeError) or "JSON" in str(exc) else \
                "not a Jupyter notebook"
            skip(cand, _damaged_json(cand.data) or f"{kind}: {_short(exc)}", student, named)
            return
        damaged = _malformed(nb)
        if damaged:
            skip(cand, damaged, student, named)
            return
        if student is None:
            skip(cand, "no student id in its name (see the naming rule, --pattern)", None, named)
            return
        if not STUDENT_ID.fullmatch(student):
            skip(cand, f"{student!r} cannot be a student id (letters, digits, . _ @ -)", None, named)
            return
        if allowed is not None and student not in allowed:
            skip(cand, f"{student!r} is not on the roster", student, named)
            return
        which = identify(nb)
        if which is None:
            skip(cand, "not a notebook of this course's assignments (no matching nbgrader cells)", student, named)
            return
        if named and named != which:
            skip(cand, f"named {named!r} but it is the notebook of {which!r}: wrong notebook", student, named)
            return
        if assignment and which != assignment:
            return
        if not found[(student, which)]:  # set aside on disk: only one notebook is held in memory at a time
            cand.digest = _digest(cand.data)
            cand.staged = staging / f"{len(found)}.ipynb"
            cand.staged.write_bytes(cand.data)
        cand.data = None
        found[(student, which)].append(cand)

    with tempfile.TemporaryDirectory(prefix=".collect-", dir=workspace.root) as staging:
        for source in sources:
            if budget.stopped:
                break
            for cand in _candidates(Path(source), course_id, budget):
                try:
                    consider(cand, Path(staging))
                except Exception as exc:  # noqa: BLE001 - one file never stops the others
                    skip(cand, f"could not be collected ({_short(exc)}): check it and collect again")
                cand.data = None

        for (student, which), cands in sorted(found.items()):
            if len(cands) > 1:
                report.problems.append({"origin": ", ".join(_shown(c.origin) for c in cands), "student": student,
                                        "assignment": which, "problem":
                                        f"{len(cands)} files for {student} and {which}: keep one and collect again"})
                continue
            target = workspace.submitted(student, which)
            status = "new"
            if target.exists():
                status = "unchanged" if _digest(target.read_bytes()) == cands[0].digest else "updated"
            if status != "unchanged":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(cands[0].staged.read_bytes())
            report.collected.append({"student": student, "assignment": which, "origin": _shown(cands[0].origin),
                                     "status": status})

    students = set(allowed or []) | {s for s, _ in found} | set(_submitted_students(workspace))
    with workspace.gradebook() as gb:  # so that export lists them, with 0 for what is missing
        for student in sorted(students):
            gb.update_or_create_student(student)
    # missing: what was collected now (or asked for), for every student known
    collected_now = {assignment} if assignment else {which for _, which in found} | {
        p["assignment"] for p in report.problems if p.get("assignment")}
    for student in sorted(students):
        for which in released:
            if which not in collected_now:
                continue
            if not workspace.submitted(student, which).exists():
                report.missing.append({"student": student, "assignment": which})
    workspace.write_json("collect-report.json", report.to_dict())
    return report


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
