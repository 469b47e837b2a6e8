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

Where things live: the public API, the limits and ``collect`` itself here; the naming rule
(the default one, the roster's, ids that are assignment names), student ids and safe names
in ``names``; which assignment a notebook is in ``notebooks``; reading untrusted files in
``files``; folders, zip archives and exchanges in ``sources``; when each submission was
handed in (nbgrader's timestamp.txt) in ``times``; the roster (read, checked, remembered as
roster.json) in ``roster``; removing a student from the workspace in ``remove``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ..workspace import WorkflowError, Workspace, _short, _submitted_students
from . import times
from .names import (DEFAULT_PATTERNS, EXCHANGE_ENTRY, STUDENT_ID, _assignment_like, _closest, _default_student,
                    _named_assignment, _not_an_assignment, _roster_student, _shown)
from .notebooks import TOO_DEEP, Identifier, _damaged_json, _malformed
from .remove import remove_students
from .roster import ROSTER_FILE, read_roster, remember, remembered
from .sources import Candidate, _Budget, _candidates

__all__ = ["collect", "CollectReport", "remove_students", "remove_command", "ROSTER_FILE", "REPORTS_FOLDER",
           "Candidate", "Identifier", "DEFAULT_PATTERNS", "STUDENT_ID", "EXCHANGE_ENTRY", "MAX_NOTEBOOK_BYTES",
           "MAX_COMPRESSION_RATIO", "RATIO_CHECKED_FROM", "MAX_FILES", "MAX_TOTAL_BYTES", "MAX_DEPTH",
           "MAX_ZIP_DIRECTORY_BYTES"]

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
    collected: list[dict] = field(default_factory=list)   # student, assignment, origin, status, submitted_at, time_from
    problems: list[dict] = field(default_factory=list)    # origin, problem (student, assignment where known)
    missing: list[dict] = field(default_factory=list)     # student, assignment
    ran_at: str | None = None                             # when this collect ran (UTC, ISO 8601)
    roster: dict | None = None                            # the roster applied: from (a file or roster.json), students

    def to_dict(self) -> dict:
        return asdict(self)


#: Every collect's report is kept here (one file per run, named by when it ran);
#: collect-report.json is the latest.
REPORTS_FOLDER = "collect-reports"


def collect(workspace: Workspace, sources: Iterable[str | os.PathLike], *,
            patterns: Iterable[str] | None = None, roster: Path | None = None,
            assignment: str | None = None) -> CollectReport:
    """Bring submissions into ``submitted/<student>/<assignment>/``, each with the time it
    was handed in (nbgrader's ``timestamp.txt``, see ``times``).

    Each notebook's assignment is read from its nbgrader cells; its student from the
    exchange entry, from the first of ``patterns`` (regular expressions with a ``student``
    group, searched in the file's relative path) that matches, else from the roster (the
    longest id on it that begins the file's name, followed by "_", or names its folder),
    else by the default rule (the id before the first "_", or the folder's name), which
    refuses a name it can read more than one way. An id that is (or looks like) an
    assignment's name is refused. Whatever cannot be matched, read or placed without
    guessing is reported and skipped: files that are not notebooks, notebooks of no (or of
    another) assignment or with damaged nbgrader metadata, two files for the same student
    and assignment, students not on the roster, links, pipes and devices, unsafe or
    unreadable names, broken archives, files over the limits (see MAX_NOTEBOOK_BYTES and
    the others above).

    ``roster`` (a file) is remembered in the workspace (``roster.json``); without one, the
    remembered roster applies. Students collected before who are not on the roster are
    reported, with the command that removes them, and left out of the missing list. Each
    run's report is kept in collect-reports/, the latest also in collect-report.json.
    """
    import nbformat

    ran_at = datetime.datetime.now(datetime.timezone.utc)
    released = workspace.released()
    identify = Identifier(released)
    if assignment and assignment not in released:
        raise WorkflowError(f"no assignment {assignment!r}; the assignments are {', '.join(released)}")
    rules = None
    if patterns:
        rules = []
        for pattern in patterns:
            try:
                rules.append(re.compile(pattern))
            except re.error as exc:
                raise WorkflowError(f"--pattern {pattern!r} is not a regular expression ({exc})") from None
        for rule in rules:
            if "student" not in rule.groupindex:
                raise WorkflowError(f"the pattern {rule.pattern!r} has no (?P<student>...) group")
    if roster is not None:
        allowed = read_roster(roster, released)
        roster_info = {"from": str(roster), "students": len(allowed)}
    else:
        allowed = remembered(workspace)
        roster_info = {"from": ROSTER_FILE, "students": len(allowed)} if allowed is not None else None
    on_roster = set(allowed) if allowed is not None else None
    course_id = workspace.config().CourseDirectory.course_id
    report = CollectReport(ran_at=ran_at.isoformat(), roster=roster_info)
    found: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    budget = _Budget()

    def skip(cand: Candidate, problem: str, student: str | None = None, which: str | None = None) -> None:
        item = {"origin": _shown(cand.origin), "problem": _shown(problem)}
        if student and STUDENT_ID.fullmatch(student) and not _assignment_like(student, released):
            item["student"] = student
        if which:
            item["assignment"] = which
        report.problems.append(item)

    def name(cand: Candidate) -> tuple[str | None, str | None]:
        """The student ``cand`` is handed in by, or why none can be told without guessing."""
        if cand.student is not None:
            return cand.student, None
        if rules is not None:
            match = next((m for m in (r.search(cand.relative) for r in rules) if m), None)
            return (match["student"].strip() if match else None), None
        if on_roster is not None:
            student, problem = _roster_student(cand.relative, on_roster)
            if student or problem:
                return student, problem
            default, _ = _default_student(cand.relative, released)
            closest = _closest(cand.relative, on_roster, released)
            hint = f" (the closest ids on it: {', '.join(closest)})" if closest else ""
            if default and STUDENT_ID.fullmatch(default):
                return None, (_not_an_assignment(default, cand.relative, released)
                              or f"{default!r} is not on the roster{hint}")
            which = _named_assignment(cand.relative, released) or "ASSIGNMENT"
            return None, (f"no student id in its name: no id on the roster begins it (followed by '_') or names "
                          f"its folder{hint}; name it ID_{which}.ipynb")
        return _default_student(cand.relative, released)

    def consider(cand: Candidate, staging: Path) -> None:
        student, naming = name(cand)
        named = cand.assignment or _named_assignment(cand.relative, released)
        if cand.problem is not None:
            skip(cand, cand.problem, student, named)
            return
        try:
            nb = nbformat.reads(cand.data.decode("utf-8"), as_version=4)
        except RecursionError:  # JSON readers recurse once per level
            skip(cand, TOO_DEEP, student, named)
            return
        except Exception as exc:  # noqa: BLE001 - anything unreadable is reported, not fatal
            kind = "invalid JSON" if isinstance(exc, json.JSONDecodeError) or "JSON" in str(exc) else \
                "not a Jupyter notebook"
            skip(cand, _damaged_json(cand.data) or f"{kind}: {_short(exc)}", student, named)
            return
        damaged = _malformed(nb)
        if damaged:
            skip(cand, damaged, student, named)
            return
        if naming:
            skip(cand, naming, None, named)
            return
        if student is None:
            skip(cand, "no student id in its name (see the naming rule, --pattern)", None, named)
            return
        if not STUDENT_ID.fullmatch(student):
            skip(cand, f"{student!r} cannot be a student id (letters, digits, . _ @ -)", None, named)
            return
        which = identify(nb)
        not_a_student = _not_an_assignment(student, cand.relative, released)
        if not_a_student:
            skip(cand, not_a_student, None, named or which)
            return
        if on_roster is not None and student not in on_roster:
            skip(cand, f"{student!r} is not on the roster", student, named)
            return
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
            report.collected.append(_place(workspace, student, which, cands[0]))

    with workspace.gradebook() as gb:  # so that export lists them, with 0 for what is missing
        graded = {s.id for s in gb.students}
        before = graded | set(_submitted_students(workspace))
        if on_roster is None:
            students = {s for s, _ in found} | set(_submitted_students(workspace))
        else:
            students = set(on_roster)
        for student in sorted(students - graded):
            gb.update_or_create_student(student)
    if on_roster is not None:
        for student in sorted(before - on_roster):
            report.problems.append(_off_roster(workspace, student, student in graded))
    # missing: what was collected now (or asked for), for every student known
    collected_now = {assignment} if assignment else {which for _, which in found} | {
        p["assignment"] for p in report.problems if p.get("assignment")}
    for student in sorted(students):
        for which in released:
            if which not in collected_now:
                continue
            if not workspace.submitted(student, which).exists():
                report.missing.append({"student": student, "assignment": which})
    if roster is not None:
        remember(workspace, allowed)
    _keep(workspace, report, ran_at)
    return report


def _place(workspace: Workspace, student: str, which: str, cand: Candidate) -> dict:
    """Put ``cand`` (set aside in the staging folder) in submitted/, with the time it was
    handed in; what the report says of it. A submission whose content has not changed keeps
    the time recorded when it was first collected."""
    target = workspace.submitted(student, which)
    status = "new"
    if target.exists():
        status = "unchanged" if _digest(target.read_bytes()) == cand.digest else "updated"
    when, source = cand.time, cand.time_from
    if status != "unchanged":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cand.staged.read_bytes())
    else:
        recorded = times.read(target.parent)
        if recorded is not None:
            when, source = recorded, "recorded"
    if when is not None and (status != "unchanged" or source != "recorded"):
        times.write(target.parent, when)
    elif when is None and status != "unchanged":
        (target.parent / "timestamp.txt").unlink(missing_ok=True)  # an earlier version's time
    return {"student": student, "assignment": which, "origin": _shown(cand.origin), "status": status,
            "submitted_at": when.isoformat() if when else None, "time_from": source}


def _off_roster(workspace: Workspace, student: str, in_gradebook: bool) -> dict:
    """The report's item for a student collected before who is not on the roster."""
    folder = workspace.root / "submitted" / student
    where = str(folder) if folder.exists() else f"the gradebook of {workspace.root}"
    kept = " and ".join(w for w, here in (("in the gradebook", in_gradebook), ("in submitted/", folder.exists()))
                        if here)
    return {"origin": where, "student": student, "problem": (
        f"{student!r} is not on the roster but is {kept} (collected before): left out of the missing list and of "
        f"what the roster governs; to remove them and their grades: {remove_command(workspace, [student])}")}


def remove_command(workspace: Workspace, students: list[str]) -> str:
    """The command line that removes ``students`` from ``workspace`` (see ``remove``)."""
    import shlex

    words = ["python", "-m", "grader", "remove-student", *students, "--workspace", str(workspace.root)]
    recorded = getattr(workspace, "recorded", lambda what: None)("db_url")  # the workspace's own gradebook
    if workspace.db_url and workspace.db_url not in (recorded, os.environ.get("BCE_COURSE_DB_URL")):
        words += ["--db-url", _without_password(workspace.db_url)]
    return " ".join(shlex.quote(w) for w in words) + " --yes"


def _without_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: shown as it is
        return url


def _keep(workspace: Workspace, report: CollectReport, ran_at: datetime.datetime) -> Path:
    """Write this run's report into collect-reports/ (never over an earlier run's) and as
    collect-report.json, the latest."""
    folder = workspace.root / REPORTS_FOLDER
    folder.mkdir(exist_ok=True)
    stem = ran_at.strftime("%Y-%m-%dT%H-%M-%S.%fZ")
    data = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
    for number in range(1, 1000):
        path = folder / (f"{stem}.json" if number == 1 else f"{stem}-{number}.json")
        try:
            with path.open("x") as f:  # never replaces a file that is there
                f.write(data)
            break
        except FileExistsError:
            continue
    workspace.write_json("collect-report.json", report.to_dict())
    return path


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
