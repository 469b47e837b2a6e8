"""What comes out of a graded workspace: per-student feedback, the grades
(exported as CSV), and a report (figures and a summary)."""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from .grading import _last_error
from .release import environment_bin_on_path
from .workspace import WorkflowError, Workspace

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
