"""Collecting submissions into a workspace: from folders, zip archives and nbgrader
exchanges, named by the naming rule (or the exchange), checked against the roster,
each notebook's assignment told from its nbgrader cells."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .workspace import WorkflowError, Workspace, _short, _submitted_students


#: How a submitted file's path (relative to the folder or archive it came in, with "/"
#: separators) names its student, tried in order: "alice_01-bce-vector.ipynb" (flat, the
#: student id before the first "_"), then "alice/01-bce-vector.ipynb" (a folder per student).
DEFAULT_PATTERNS = (
    r"(?:^|/)(?P<student>[^/_]+)_[^/]*\.ipynb$",
    r"(?:^|/)(?P<student>[^/]+)/[^/]+\.ipynb$",
)
#: What nbgrader accepts as a student id here: it becomes a folder name.
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
#: The folders of an nbgrader exchange's inbound: student+assignment+timestamp[+random].
EXCHANGE_ENTRY = re.compile(r"^(?P<student>[^+/]+)\+(?P<assignment>[^+/]+)\+(?P<timestamp>[^+/]+)(?:\+[^/]*)?$")


# --- which assignment a notebook is -------------------------------------------------------

def _grade_ids(nb) -> set[str]:
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}


class Identifier:
    """Tells a notebook's assignment from its nbgrader cells (the ids of its
    solution and test cells), whatever its file is called."""

    def __init__(self, released: dict[str, Path]):
        import nbformat

        ids = {name: _grade_ids(nbformat.read(path, as_version=4)) for name, path in released.items()}
        shared = set.intersection(*ids.values()) if len(ids) > 1 else set()
        self.ids = {name: found - shared for name, found in ids.items()}

    def __call__(self, nb) -> str | None:
        found = _grade_ids(nb)
        scores = {name: len(found & ids) for name, ids in self.ids.items()}
        best = max(scores.values(), default=0)
        winners = [name for name, score in scores.items() if score == best]
        return winners[0] if best and len(winners) == 1 else None


# --- collect ----------------------------------------------------------------------------------

@dataclass
class Candidate:
    origin: str          # where it came from, for the report
    relative: str        # the path the naming rule reads
    data: bytes
    student: str | None = None
    assignment: str | None = None  # named by an exchange entry


@dataclass
class CollectReport:
    collected: list[dict] = field(default_factory=list)   # student, assignment, origin, status
    problems: list[dict] = field(default_factory=list)    # origin, problem
    missing: list[dict] = field(default_factory=list)     # student, assignment

    def to_dict(self) -> dict:
        return asdict(self)


def _from_folder(folder: Path) -> Iterator[Candidate]:
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or ".ipynb_checkpoints" in path.parts:
            continue
        relative = path.relative_to(folder).as_posix()
        if path.suffix.lower() == ".zip":
            yield from _from_zip(path)
        elif path.suffix.lower() == ".ipynb":
            yield Candidate(str(path), relative, path.read_bytes())


def _from_zip(archive: Path) -> Iterator[Candidate]:
    try:
        with zipfile.ZipFile(archive) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                name = info.filename
                if info.is_dir() or not name.lower().endswith(".ipynb") or "__MACOSX" in name \
                        or ".ipynb_checkpoints" in name:
                    continue
                yield Candidate(f"{archive}:{name}", name.lstrip("/"), z.read(info))
    except zipfile.BadZipFile as exc:
        raise WorkflowError(f"{archive} is not a readable zip archive: {exc}") from exc


def _from_exchange(inbound: Path) -> Iterator[Candidate]:
    """The latest submission of each student and assignment in an nbgrader exchange's inbound."""
    latest: dict[tuple[str, str], tuple[str, Path]] = {}
    for entry in sorted(p for p in inbound.iterdir() if p.is_dir()):
        match = EXCHANGE_ENTRY.match(entry.name)
        if not match:
            continue
        key = (match["student"], match["assignment"])
        if key not in latest or match["timestamp"] > latest[key][0]:
            latest[key] = (match["timestamp"], entry)
    for (student, assignment), (_, entry) in sorted(latest.items()):
        for path in sorted(entry.glob("*.ipynb")):
            yield Candidate(str(path), f"{student}/{path.name}", path.read_bytes(), student, assignment)


def _exchange_inbound(source: Path, course_id: str) -> Path | None:
    for candidate in (source / course_id / "inbound", source / "inbound", source):
        if candidate.is_dir() and any(EXCHANGE_ENTRY.match(p.name) for p in candidate.iterdir() if p.is_dir()):
            return candidate
    return None


def _candidates(source: Path, course_id: str) -> Iterator[Candidate]:
    if not source.exists():
        raise WorkflowError(f"{source} does not exist")
    if source.is_file():
        if source.suffix.lower() == ".zip":
            yield from _from_zip(source)
        elif source.suffix.lower() == ".ipynb":
            yield Candidate(str(source), source.name, source.read_bytes())
        else:
            raise WorkflowError(f"{source} is neither a folder, a .zip archive nor an .ipynb notebook")
        return
    inbound = _exchange_inbound(source, course_id)
    yield from (_from_exchange(inbound) if inbound else _from_folder(source))


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
    another) assignment, two files for the same student and assignment,
    students not on the roster.
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

    def skip(cand: Candidate, problem: str, student: str | None = None, which: str | None = None) -> None:
        item = {"origin": cand.origin, "problem": problem}
        if student:
            item["student"] = student
        if which:
            item["assignment"] = which
        report.problems.append(item)

    for source in sources:
        for cand in _candidates(Path(source), course_id):
            student = cand.student
            if student is None:
                match = next((m for m in (r.search(cand.relative) for r in rules) if m), None)
                student = match["student"].strip() if match else None
            named = cand.assignment or _named_assignment(cand.relative, released)
            try:
                nb = nbformat.reads(cand.data.decode("utf-8"), as_version=4)
            except Exception as exc:  # noqa: BLE001 - anything unreadable is reported, not fatal
                kind = "invalid JSON" if isinstance(exc, json.JSONDecodeError) or "JSON" in str(exc) else \
                    "not a Jupyter notebook"
                skip(cand, f"{kind}: {_short(exc)}", student, named)
                continue
            if student is None:
                skip(cand, "no student id in its name (see the naming rule, --pattern)", None, named)
                continue
            if not STUDENT_ID.match(student):
                skip(cand, f"{student!r} cannot be a student id (letters, digits, . _ @ -)", None, named)
                continue
            if allowed is not None and student not in allowed:
                skip(cand, f"{student!r} is not on the roster", student, named)
                continue
            which = identify(nb)
            if which is None:
                skip(cand, "not a notebook of this course's assignments (no matching nbgrader cells)", student, named)
                continue
            if named and named != which:
                skip(cand, f"named {named!r} but it is the notebook of {which!r}: wrong notebook", student, named)
                continue
            if assignment and which != assignment:
                continue
            found[(student, which)].append(cand)

    for (student, which), cands in sorted(found.items()):
        if len(cands) > 1:
            report.problems.append({"origin": ", ".join(c.origin for c in cands), "student": student,
                                    "assignment": which, "problem":
                                    f"{len(cands)} files for {student} and {which}: keep one and collect again"})
            continue
        target = workspace.submitted(student, which)
        status = "new"
        if target.exists():
            status = "unchanged" if _digest(target.read_bytes()) == _digest(cands[0].data) else "updated"
        if status != "unchanged":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(cands[0].data)
        report.collected.append({"student": student, "assignment": which, "origin": cands[0].origin,
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


def _named_assignment(relative: str, released: dict[str, Path]) -> str | None:
    """An assignment named in the file name (as a whole word), if any."""
    name = relative.rsplit("/", 1)[-1]
    hits = [a for a in released if re.search(rf"(?:^|[^0-9A-Za-z]){re.escape(a)}(?:$|[^0-9A-Za-z])", name)]
    return hits[0] if len(hits) == 1 else None



def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
