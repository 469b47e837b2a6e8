"""The instructor's workflow on top of nbgrader: a course workspace, collect,
autograde, feedback, export and report.

The workspace is an nbgrader course folder (``source/``, ``release/``,
``submitted/``, ``autograded/``, ``feedback/`` and the gradebook), with an
``nbgrader_config.py`` that loads the course's own configuration, so that
nbgrader's commands and its formgrader work there too. Every command is safe
to run again: collect replaces a submission only when its content changed,
autograde and feedback overwrite their outputs, export and report read the
gradebook.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from . import release
from .release import COURSE_DIR, REPO_ROOT, environment_bin_on_path

#: Where the workspace lives unless --workspace or $BCE_COURSE_WORKSPACE says otherwise (git ignores it).
DEFAULT_WORKSPACE = REPO_ROOT / "course-workspace"

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


class WorkflowError(Exception):
    """Something the instructor must fix before the command can run."""


# --- the workspace -------------------------------------------------------------------

@dataclass
class Workspace:
    root: Path
    db_url: str | None = None

    @classmethod
    def at(cls, root: str | os.PathLike | None = None, db_url: str | None = None) -> "Workspace":
        root = Path(root or os.environ.get("BCE_COURSE_WORKSPACE") or DEFAULT_WORKSPACE).resolve()
        return cls(root, db_url or os.environ.get("BCE_COURSE_DB_URL"))

    @property
    def config_file(self) -> Path:
        return self.root / "nbgrader_config.py"

    def prepare(self) -> None:
        """Create the folder and its nbgrader_config.py, and bring source/ in line with the masters."""
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Written by `python -m grader`: this folder is an nbgrader course, so nbgrader's own",
            "# commands (nbgrader autograde, nbgrader formgrader ...) work here too.",
            "c = get_config()  # noqa: F821",
            f"load_subconfig({str(COURSE_DIR / 'nbgrader_config.py')!r})  # noqa: F821",
            f"c.CourseDirectory.root = {str(self.root)!r}",
        ]
        if self.db_url:
            lines.append(f"c.CourseDirectory.db_url = {self.db_url!r}")
        text = "\n".join(lines) + "\n"
        if not self.config_file.exists() or self.config_file.read_text() != text:
            self.config_file.write_text(text)
        for name in release.assignments():
            target = self.root / "source" / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(release.master_path(name), target / f"{name}.ipynb")

    def config(self):
        from traitlets.config.loader import PyFileConfigLoader

        if not self.config_file.exists():
            raise WorkflowError(f"{self.root} is not a course workspace yet: run `python -m grader release` first")
        config = PyFileConfigLoader(self.config_file.name, path=str(self.root)).load_config()
        if self.db_url:
            config.CourseDirectory.db_url = self.db_url
        return config

    def api(self, warm: bool = False):
        """nbgrader's API on this workspace; ``warm``: notebooks run by the warm engine
        (grader.engine.WarmExecute in place of nbgrader's Execute)."""
        from nbgrader.apps import NbGraderAPI
        from nbgrader.converters import Autograde
        from nbgrader.coursedir import CourseDirectory

        config = self.config()
        if warm:
            from nbgrader.preprocessors import Execute

            config.Autograde.autograde_preprocessors = [
                "grader.engine.WarmExecute" if p is Execute else p
                for p in Autograde.class_traits()["autograde_preprocessors"].default()]
        return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)

    def gradebook(self):
        from nbgrader.api import Gradebook

        config = self.config()
        course_id = config.CourseDirectory.course_id
        db_url = self.db_url or f"sqlite:///{self.root / 'gradebook.db'}"
        return Gradebook(db_url, course_id)

    def released(self) -> dict[str, Path]:
        """The released student notebook of each assignment."""
        found = {name: self.root / "release" / name / f"{name}.ipynb" for name in release.assignments()}
        missing = [n for n, p in found.items() if not p.exists()]
        if missing:
            raise WorkflowError(f"{', '.join(missing)} not released in {self.root}: "
                                "run `python -m grader release` first")
        return found

    def submitted(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment / f"{assignment}.ipynb"

    def write_json(self, name: str, data) -> Path:
        path = self.root / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    def read_json(self, name: str, default):
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else default


def release_course(workspace: Workspace, out: Path) -> list[Path]:
    """Generate the student copies in the workspace (registering the assignments
    in its gradebook) and copy them to ``out``."""
    workspace.prepare()
    return release.generate(out, workspace=workspace.root, config=workspace.config())


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


def _submitted_students(workspace: Workspace) -> list[str]:
    folder = workspace.root / "submitted"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- autograde ---------------------------------------------------------------------------

def tampering(workspace: Workspace, student: str, assignment: str) -> list[str]:
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
        attention = tampering(workspace, student, assignment)
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
        done = subprocess.run([sys.executable, "-m", "grader.engine"], input=json.dumps(job), text=True,
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


# --- feedback ------------------------------------------------------------------------------

def feedback(workspace: Workspace, *, students: Iterable[str] | None = None,
             assignments: Iterable[str] | None = None) -> list[Path]:
    """Per-student HTML feedback (feedback/<student>/<assignment>/), without hidden tests."""
    api = workspace.api()
    wanted = set(students) if students else None
    written = []
    with workspace.gradebook() as gb:
        pairs = [(s.id, a.name) for s in gb.students for a in gb.assignments]
    with environment_bin_on_path():
        for student, assignment in sorted(pairs):
            if (wanted is not None and student not in wanted) or (assignments and assignment not in assignments):
                continue
            if not (workspace.root / "autograded" / student / assignment).is_dir():
                continue
            result = api.generate_feedback(assignment, student, force=True)
            if not result.get("success"):
                raise WorkflowError(f"nbgrader could not write feedback for {student} {assignment}: "
                                    f"{_last_error((result.get('log') or '') + (result.get('error') or ''))}")
            written += sorted((workspace.root / "feedback" / student / assignment).glob("*.html"))
    return written


# --- export ---------------------------------------------------------------------------------

def grades(workspace: Workspace) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(assignments in course order, {student: {assignment: score}}) from the gradebook;
    a missing submission scores 0."""
    with workspace.gradebook() as gb:
        assignments = sorted(a.name for a in gb.assignments)
        table = {}
        for student in sorted(s.id for s in gb.students):
            row = {}
            for assignment in assignments:
                try:
                    row[assignment] = float(gb.find_submission(assignment, student).score)
                except Exception:  # noqa: BLE001 - MissingEntry: nothing handed in
                    row[assignment] = 0.0
            table[student] = row
    return assignments, table


def export(workspace: Workspace, out: Path | None = None) -> Path:
    """grades.csv: one row per student, one column per notebook, and the total."""
    assignments, table = grades(workspace)
    out = Path(out) if out else workspace.root / "grades.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *assignments, "total"])
        for student, row in table.items():
            writer.writerow([student, *(f"{row[a]:g}" for a in assignments), f"{sum(row.values()):g}"])
    return out


# --- report ----------------------------------------------------------------------------------

_SUMMARY_LINE = re.compile(r"^(?P<function>\w+): FAILED in (?P<categories>.+)$", re.M)


def report(workspace: Workspace, out: Path | None = None) -> dict:
    """Figures to look at: the distribution of total scores, the pass rate of
    each test cell, and the checker's most common failing categories; as PNG
    files, with the numbers behind them in report.json and summary.txt."""
    import nbformat

    out = Path(out) if out else workspace.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    assignments, table = grades(workspace)
    totals = {student: sum(row.values()) for student, row in table.items()}
    tests: dict[str, dict] = {}
    categories: Counter = Counter()
    with workspace.gradebook() as gb:
        for assignment in assignments:
            for sub in gb.assignment_submissions(assignment):
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        if grade.cell_type != "code" or not grade.max_score:
                            continue
                        key = f"{assignment}/{grade.name}"
                        entry = tests.setdefault(key, {"passed": 0, "submissions": 0})
                        entry["submissions"] += 1
                        entry["passed"] += int(grade.score == grade.max_score)
            for student in table:
                path = workspace.root / "autograded" / student / assignment / f"{assignment}.ipynb"
                if not path.exists():
                    continue
                seen = set()
                for cell in nbformat.read(path, as_version=4).cells:
                    for output in cell.get("outputs", []):
                        if output.get("output_type") == "error" and output.get("ename") == "AssertionError":
                            for match in _SUMMARY_LINE.finditer(output.get("evalue", "")):
                                seen |= {c.strip() for c in match["categories"].split(",")}
                categories.update(seen)  # once per submission
    data = {
        "students": len(totals),
        "totals": totals,
        "maximum": sum(_maxima(workspace).values()),
        "mean": (sum(totals.values()) / len(totals)) if totals else 0.0,
        "tests": {k: {**v, "rate": v["passed"] / v["submissions"]} for k, v in sorted(tests.items())},
        "failing_categories": dict(categories.most_common()),
    }
    (out / "report.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    values = list(totals.values())
    with _figure(out / "scores.png", 3.5) as ax:
        ax.hist(values, bins=min(20, max(5, len(values))), range=(0, data["maximum"] or 1), color="C0",
                edgecolor="white")
        ax.set(xlabel=f"total score (of {data['maximum']:g})", ylabel="students",
               title=f"Score distribution: {len(values)} students, mean {data['mean']:.2f}")
    names = list(data["tests"])
    with _figure(out / "tests.png", 0.5 + 0.35 * max(1, len(names))) as ax:
        bars = ax.barh(names, [100 * data["tests"][n]["rate"] for n in names], color="C2")
        ax.bar_label(bars, padding=3, fontsize=8,
                     labels=[f"{data['tests'][n]['passed']}/{data['tests'][n]['submissions']}" for n in names])
        ax.set(xlim=(0, 115), xlabel="submissions with full points (%)", title="Pass rate of each test")
        ax.invert_yaxis()
    cats = list(data["failing_categories"])
    with _figure(out / "categories.png", 0.5 + 0.35 * max(1, len(cats))) as ax:
        bars = ax.barh(cats or ["(none)"], [data["failing_categories"][c] for c in cats] or [0], color="C3")
        ax.bar_label(bars, padding=3, fontsize=8)
        ax.set(xlabel="submissions failing it", title="The checker's most common failing categories")
        ax.invert_yaxis()

    lines = [f"{data['students']} students; mean total {data['mean']:.2f} of {data['maximum']:g}",
             "pass rate of each test:"]
    lines += [f"  {n}: {v['passed']}/{v['submissions']} ({100 * v['rate']:.0f} %)" for n, v in data["tests"].items()]
    lines.append("most common failing categories:")
    lines += [f"  {c}: {n} submissions" for c, n in data["failing_categories"].items()] or ["  (none)"]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    data["text"] = "\n".join(lines)
    return data


@contextlib.contextmanager
def _figure(path: Path, height: float):
    """An axes to draw on; the figure is saved to ``path`` afterwards."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, height))
    FigureCanvasAgg(figure)
    yield figure.add_subplot()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _maxima(workspace: Workspace) -> dict[str, float]:
    with workspace.gradebook() as gb:
        return {a.name: float(a.max_score) for a in gb.assignments}
