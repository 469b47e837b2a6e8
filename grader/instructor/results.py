"""What comes out of a graded workspace: per-student feedback, the grades
(exported as CSV), and a report (figures and a summary).

The students are those on the roster when the workspace has one (``roster.json``, which
``collect --roster`` writes): all of them, those who handed nothing in included, and no one
else; without a roster, every student the gradebook or ``submitted/`` knows.

Each submission (a student's notebook) has one status:

``graded``
    graded: its score is final.
``blank``
    handed in, but with no answer written: every solution cell is still what the
    released notebook holds (its stub). Graded as it is, so it has a score (0, unless
    a test passes on the stub).
``needs manual grading``
    graded, but an answer is still to be graded by hand (nbgrader's formgrade): its
    score so far counts what is graded.
``not graded``
    collected, not autograded yet: no score.
``missing``
    nothing handed in: no score.

grades.csv (``export``) is one row per student, with for each notebook, in course order:

- ``NOTEBOOK``: the score, after nbgrader's late penalty; empty when there is none
  (missing, not graded). Only numbers, so that a spreadsheet can sum a column;
- ``NOTEBOOK status``: one of the words above;
- ``NOTEBOOK submitted (UTC)``: when it was handed in (``YYYY-MM-DD HH:MM:SS``, as
  nbgrader recorded it), empty when unknown;
- ``NOTEBOOK late penalty``: nbgrader's late penalty (already taken off the score) when it was
  handed in after the due date, 0 when late without a penalty; empty when on time.

then ``total (missing counts 0)``: the sum of the scores (what is missing or not graded adds
0), ``handed in``: how many notebooks were, and ``pending``: how many still wait for a grade
(needs manual grading, not graded). The first row after the header, ``(maximum)``, holds
each notebook's maximum score (and, under submitted, its due date, if any), the maximum
total and the number of notebooks.

report/ (``report``) holds scores.png (each notebook's score distribution, of those who
handed it in), tests.png (the pass rate of each test cell, in notebook order),
categories.png (the checker's failing categories, per notebook and exercise), report.json
(the numbers behind every figure and the summary) and summary.txt.
"""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .grading import _last_error, one_line
from .release import environment_bin_on_path
from .workspace import WorkflowError, Workspace, _submitted_students

# --- feedback ------------------------------------------------------------------------------

class FeedbackFailed(WorkflowError):
    """Feedback nbgrader could not write for some notebooks, everyone else's written: ``written``
    (the files) and ``failed`` (each other's student, assignment and nbgrader's error)."""

    def __init__(self, written: list[Path], failed: list[tuple[str, str, str]], folder: Path):
        self.written, self.failed = written, failed
        each = "".join(f"\n  {student} {assignment}: {error}" for student, assignment, error in failed)
        super().__init__(f"nbgrader could not write feedback for {plural(len(failed), 'notebook')} (everyone "
                         f"else's is written: {plural(len(written), 'file')} under {folder}):{each}\n"
                         "once the cause is fixed, `python -m grader feedback --student STUDENT` writes theirs")


def feedback(workspace: Workspace, *, students: Iterable[str] | None = None,
             assignments: Iterable[str] | None = None) -> list[Path]:
    """Per-student HTML feedback (feedback/<student>/<assignment>/), without hidden tests,
    each file self-contained (grader/instructor/feedback_html.py): formulas rendered, long
    lines wrapped, nothing loaded from the network. A notebook whose feedback nbgrader cannot
    write stops no one else's: all others are written, then :class:`FeedbackFailed` says which failed."""
    import importlib.util

    if importlib.util.find_spec("latex2mathml") is None:
        raise WorkflowError("the feedback renders formulas with latex2mathml, which is not installed: "
                            "pip install 'bce-course[instructor]' (or pip install latex2mathml)")
    api = workspace.api()
    wanted = set(students) if students else None
    written, failed = [], []
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
                if (result.get("error") or "").rstrip().endswith("KeyboardInterrupt"):
                    raise KeyboardInterrupt  # nbgrader's capture_log caught Ctrl-C: stop, as asked
                failed.append((student, assignment,
                               _last_error((result.get("log") or "") + (result.get("error") or ""))))
                continue
            written += sorted((workspace.root / "feedback" / student / assignment).glob("*.html"))
    if failed:
        raise FeedbackFailed(written, failed, workspace.root / "feedback")
    return written


# --- the grades, with each submission's status ------------------------------------------------

GRADED, BLANK, MANUAL, NOT_GRADED, MISSING = "graded", "blank", "needs manual grading", "not graded", "missing"
#: The statuses of a notebook that was handed in and graded: it has a score.
SCORED = (GRADED, BLANK, MANUAL)
#: The header of the total's column: what it counts.
TOTAL = "total (missing counts 0)"
#: The label of the row of maxima in grades.csv.
MAXIMUM_ROW = "(maximum)"
ROSTER_FILE = "roster.json"


@dataclass
class Entry:
    """One student's notebook."""
    status: str
    score: float | None = None            # after the late penalty
    penalty: float | None = None          # None: on time (or no due date)
    timestamp: datetime.datetime | None = None


@dataclass
class Table:
    assignments: list[str]                          # in course order
    maxima: dict[str, float]
    duedates: dict[str, datetime.datetime | None]
    students: list[str]
    rows: dict[str, dict[str, Entry]]
    roster: bool                                    # the students are the roster's
    left_out: list[str] = field(default_factory=list)  # known to the gradebook, not on the roster

    def total(self, student: str) -> float:
        return sum(e.score for e in self.rows[student].values() if e.score is not None)


def roster(workspace: Workspace) -> list[str] | None:
    """The roster's student ids (``roster.json``, as ``collect --roster`` writes it), or None."""
    try:
        ids = workspace.read_json(ROSTER_FILE, None)
    except (OSError, ValueError) as exc:
        raise WorkflowError(f"{workspace.root / ROSTER_FILE} is damaged ({exc}): collect once with --roster FILE "
                            "to write it again, or delete it to use no roster") from exc
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise WorkflowError(f"{workspace.root / ROSTER_FILE} is not a list of student ids: collect once with "
                            "--roster FILE to write it again, or delete it to use no roster")
    return sorted(set(ids))


def course_order(names: Iterable[str]) -> list[str]:
    """``names`` in course order: assignments' names sort in order (``release.assignments``)."""
    return sorted(set(names))


def released_notebook(workspace: Workspace, assignment: str):
    """The released student notebook of ``assignment`` (as JSON), or None."""
    for path in (workspace.root / "release" / assignment / f"{assignment}.ipynb",
                 workspace.root / "source" / assignment / f"{assignment}.ipynb"):
        notebook = _read_notebook(path)
        if notebook is not None:
            return notebook
    return None


def _read_notebook(path: Path) -> dict | None:
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return notebook if isinstance(notebook, dict) and isinstance(notebook.get("cells"), list) else None


def _nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
    nbgrader = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return nbgrader if isinstance(nbgrader, dict) else {}


def _source(cell) -> str:
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def solution_stubs(notebook: dict | None) -> dict[str, str]:
    """The released notebook's solution cells (nbgrader's ``utils.is_solution``): grade id -> its
    source, which is the stub a student replaces by an answer."""
    if notebook is None:
        return {}
    return {_nbgrader(c)["grade_id"]: _source(c) for c in notebook["cells"]
            if _nbgrader(c).get("solution") and _nbgrader(c).get("grade_id")}


def ordered_tests(notebook: dict | None) -> list[str]:
    """The grade ids of the released notebook's test cells (graded code cells that are not
    answers), in the notebook's order."""
    if notebook is None:
        return []
    return [_nbgrader(c)["grade_id"] for c in notebook["cells"]
            if c.get("cell_type") == "code" and _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")
            and _nbgrader(c).get("grade_id")]


def is_blank(notebook: dict | None, stubs: dict[str, str]) -> bool:
    """Whether ``notebook`` (a submission) answers nothing: each of its solution cells is still
    the released stub, or was deleted."""
    if notebook is None or not stubs:
        return False
    theirs = {_nbgrader(c).get("grade_id"): _source(c) for c in notebook["cells"] if _nbgrader(c).get("grade_id")}
    return all(theirs.get(grade_id, stub) == stub for grade_id, stub in stubs.items())


def _utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    """nbgrader's timestamps are naive UTC; an aware one is brought to UTC."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


def gather(workspace: Workspace) -> Table:
    """Every student's notebooks, with their status, score, penalty and time (see the module's
    docstring)."""
    on_roster = roster(workspace)
    with workspace.gradebook() as gb:
        known = {a.name: a for a in gb.assignments}
        assignments = course_order(known)
        maxima = {a: float(known[a].max_score or 0) for a in assignments}
        duedates = {a: _utc(known[a].duedate) for a in assignments}
        in_gradebook = {s.id for s in gb.students}
        everyone = in_gradebook | set(_submitted_students(workspace))
        students = on_roster if on_roster is not None else sorted(everyone)
        wanted = set(students)
        submissions = {}
        for assignment in assignments:
            for sub in gb.assignment_submissions(assignment):
                if sub.student.id in wanted:
                    submissions[(sub.student.id, assignment)] = (
                        float(sub.score or 0), float(sub.late_submission_penalty or 0),
                        float(sub.total_seconds_late or 0), _utc(sub.timestamp), bool(sub.needs_manual_grade))
    stubs = {a: solution_stubs(released_notebook(workspace, a)) for a in assignments}
    rows: dict[str, dict[str, Entry]] = {}
    for student in students:
        row = rows[student] = {}
        for assignment in assignments:
            found = submissions.get((student, assignment))
            submitted = workspace.submitted(student, assignment)
            if found is None:
                row[assignment] = Entry(NOT_GRADED if submitted.exists() else MISSING)
                continue
            raw, penalty, late, timestamp, manual = found
            # what was graded (its answers are the student's), else what was handed in
            handed_in = _read_notebook(workspace.root / "autograded" / student / assignment
                                       / f"{assignment}.ipynb") or _read_notebook(submitted)
            status = BLANK if is_blank(handed_in, stubs[assignment]) else MANUAL if manual else GRADED
            row[assignment] = Entry(status, max(0.0, raw - penalty),
                                    penalty if (late > 0 or penalty > 0) else None, timestamp)
    return Table(assignments, maxima, duedates, students, rows, on_roster is not None,
                 sorted(everyone - wanted) if on_roster is not None else [])


def grades(workspace: Workspace) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(assignments in course order, {student: {assignment: score}}): the score after the
    late penalty, 0 where there is none (missing, not graded)."""
    table = gather(workspace)
    return table.assignments, {s: {a: (e.score or 0.0) for a, e in row.items()} for s, row in table.rows.items()}


# --- export ---------------------------------------------------------------------------------

def _number(value: float) -> str:
    """A score as a plain decimal number: at most 4 decimals, never an exponent."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _when(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def export(workspace: Workspace, out: Path | None = None) -> Path:
    """grades.csv: one row per student, for each notebook its score, status, time and late
    penalty, then the total; a first row of maxima (see the module's docstring)."""
    import csv

    table = gather(workspace)
    out = Path(out) if out else workspace.root / "grades.csv"
    header, maxima = ["student"], [MAXIMUM_ROW]
    for a in table.assignments:
        header += [a, f"{a} status", f"{a} submitted (UTC)", f"{a} late penalty"]
        maxima += [_number(table.maxima[a]), "", _when(table.duedates[a]), ""]
    header += [TOTAL, "handed in", "pending"]
    maxima += [_number(sum(table.maxima.values())), str(len(table.assignments)), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerow(maxima)
        for student in table.students:
            row, line = table.rows[student], [student]
            for a in table.assignments:
                e = row[a]
                line += [_number(e.score) if e.score is not None else "", e.status, _when(e.timestamp),
                         _number(e.penalty) if e.penalty is not None else ""]
            line += [_number(table.total(student)), str(sum(e.status != MISSING for e in row.values())),
                     str(sum(e.status in (MANUAL, NOT_GRADED) for e in row.values()))]
            writer.writerow(line)
    return out


# --- report ----------------------------------------------------------------------------------

_SUMMARY_LINE = re.compile(r"^(?P<function>\w+): FAILED in (?P<categories>.+)$", re.M)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _category_order(name: str) -> tuple[int, str]:
    try:
        from .._battery.cases import CATEGORIES
        order = list(CATEGORIES)
    except Exception:  # noqa: BLE001
        order = []
    return (order.index(name) if name in order else len(order), name)


def failing_categories(notebook: dict | None) -> dict[str, dict[str, set[str]]]:
    """What the checker's reports in a graded notebook say failed: {function: {category: {test
    cells}}}, from the summary lines (``binary_cross_entropy: FAILED in edge values, dtypes``) of
    the AssertionErrors its test cells raised."""
    found: dict[str, dict[str, set[str]]] = {}
    for cell in (notebook or {}).get("cells", []):
        grade_id = _nbgrader(cell).get("grade_id") or "(a cell)"
        for output in cell.get("outputs", []) if isinstance(cell, dict) else []:
            if not isinstance(output, dict) or output.get("output_type") != "error" \
                    or output.get("ename") != "AssertionError":
                continue
            for match in _SUMMARY_LINE.finditer(str(output.get("evalue", ""))):
                for category in (c.strip() for c in match["categories"].split(",")):
                    if category:
                        found.setdefault(match["function"], {}).setdefault(category, set()).add(grade_id)
    return found


def report_data(workspace: Workspace) -> dict:
    """The numbers behind the report's figures and summary (what report.json holds)."""
    table = gather(workspace)
    released = {a: released_notebook(workspace, a) for a in table.assignments}
    order = {a: ordered_tests(released[a]) for a in table.assignments}
    handed_in = {a: [s for s in table.students if table.rows[s][a].status in SCORED] for a in table.assignments}
    counted = {(s, a) for a, who in handed_in.items() for s in who}
    cell_grades: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with workspace.gradebook() as gb:
        for assignment in table.assignments:
            for sub in gb.assignment_submissions(assignment):
                if (sub.student.id, assignment) not in counted:
                    continue
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        if grade.cell_type == "code" and grade.max_score:
                            cell_grades.setdefault((assignment, grade.name), []).append(
                                (float(grade.score or 0), float(grade.max_score)))
    tests = {}
    for assignment in table.assignments:
        cells = order[assignment] + sorted({c for a, c in cell_grades if a == assignment} - set(order[assignment]))
        for cell in cells:
            scores = cell_grades.get((assignment, cell), [])
            passed = sum(score >= maximum for score, maximum in scores)
            tests[f"{assignment}/{cell}"] = {"assignment": assignment, "cell": cell, "passed": passed,
                                             "submissions": len(scores),
                                             "rate": passed / len(scores) if scores else None}
    categories: dict[str, dict] = {}
    pooled: Counter = Counter()
    for assignment in table.assignments:
        per_function: dict[str, dict] = {}
        for student in handed_in[assignment]:
            path = workspace.root / "autograded" / student / assignment / f"{assignment}.ipynb"
            seen = set()
            for function, failed in failing_categories(_read_notebook(path)).items():
                entry = per_function.setdefault(function, {"cells": set(), "failing": Counter()})
                for category, cells in failed.items():
                    entry["failing"][category] += 1  # once per submission
                    entry["cells"] |= cells
                    seen.add(category)
            pooled.update(seen)
        rank = {cell: i for i, cell in enumerate(order[assignment])}

        def place(cell: str, rank=rank) -> tuple[int, str]:
            return rank.get(cell, len(rank)), cell

        # the exercises in the order of their first test cell, their categories in the battery's
        functions = sorted(per_function, key=lambda f: (min(map(place, per_function[f]["cells"])), f))
        categories[assignment] = {
            f: {"cells": sorted(per_function[f]["cells"], key=place),
                "failing": dict(sorted(per_function[f]["failing"].items(), key=lambda kv: _category_order(kv[0])))}
            for f in functions}
    notebooks = {}
    for a in table.assignments:
        entries = [table.rows[s][a] for s in table.students]
        scores = {s: table.rows[s][a].score for s in handed_in[a]}
        notebooks[a] = {
            "maximum": table.maxima[a], "handed_in": len(scores),
            "duedate": _when(table.duedates[a]) or None,
            **{key: sum(e.status == status for e in entries) for key, status in
               (("blank", BLANK), ("needs_manual_grading", MANUAL), ("not_graded", NOT_GRADED), ("missing", MISSING))},
            "late": sum(e.penalty is not None for e in entries),
            "scores": scores,
            "mean": sum(scores.values()) / len(scores) if scores else None,
        }
    totals = {s: table.total(s) for s in table.students}
    return {
        "assignments": table.assignments,
        "roster": table.roster,
        "left_out": table.left_out,
        "students": len(table.students),
        "submissions": sum(n["handed_in"] for n in notebooks.values()),
        "maxima": table.maxima,
        "maximum": sum(table.maxima.values()),
        "totals": totals,
        "mean": sum(totals.values()) / len(totals) if totals else 0.0,
        "notebooks": notebooks,
        "tests": tests,
        "categories": categories,
        "failing_categories": dict(sorted(pooled.items(), key=lambda kv: (-kv[1], _category_order(kv[0])))),
    }


def summary_text(data: dict) -> str:
    who = "on the roster" if data["roster"] else "in the gradebook"
    lines = [f"{plural(data['students'], 'student')} {who}; {plural(data['submissions'], 'submission')} "
             f"of {plural(len(data['assignments']), 'notebook')}"
             + (f"; mean total {data['mean']:.2f} of {_number(data['maximum'])} (missing counts 0)"
                if data["students"] else "")]
    if data["left_out"]:
        lines.append(f"left out, not on the roster: {', '.join(one_line(s) for s in data['left_out'])}")
    lines.append("per notebook, of those who handed it in:")
    for a in data["assignments"]:
        n = data["notebooks"][a]
        if not n["handed_in"]:
            text = "no submissions yet"
        else:
            text = (f"{n['handed_in']} of {plural(data['students'], 'student')} handed in"
                    + (f" ({n['blank']} blank)" if n["blank"] else "")
                    + f", mean {n['mean']:.2f} of {_number(n['maximum'])}")
        notes = [f"{n['needs_manual_grading']} {'needs' if n['needs_manual_grading'] == 1 else 'need'} manual grading"
                 if n["needs_manual_grading"] else "",
                 f"{n['late']} late" if n["late"] else "",
                 f"{n['not_graded']} not graded yet" if n["not_graded"] else ""]
        lines.append(f"  {a}: {'; '.join([text] + [x for x in notes if x])}")
    lines.append("pass rate of each test cell, in notebook order:")
    shown = [f"  {k}: {v['passed']}/{v['submissions']} ({100 * v['rate']:.0f} %)"
             for k, v in data["tests"].items() if v["submissions"]]
    lines += shown or ["  (no submissions yet)"]
    lines.append("failing categories per exercise (submissions failing it):")
    failing = []
    for a in data["assignments"]:
        for function, entry in data["categories"][a].items():
            parts = ", ".join(f"{one_line(c)} {k} of {data['notebooks'][a]['handed_in']}"
                              for c, k in entry["failing"].items())
            failing.append(f"  {a} {one_line(function)}: {parts}")
    lines += failing or ["  (none)" if data["submissions"] else "  (no submissions yet)"]
    return "\n".join(lines)


def report(workspace: Workspace, out: Path | None = None) -> dict:
    """Figures to look at: each notebook's score distribution (of those who handed it in), the
    pass rate of each test cell in notebook order, the checker's failing categories per
    notebook and exercise; as PNG files, with the numbers behind them in report.json and
    summary.txt."""
    from .report_figures import figures

    out = Path(out) if out else workspace.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    data = report_data(workspace)
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    for name, figure in figures(data).items():
        figure.savefig(out / name, dpi=100)
    text = summary_text(data)
    (out / "summary.txt").write_text(text + "\n")
    data["text"] = text
    return data
