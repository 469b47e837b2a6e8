"""Every requirement an exercise states is checked, and the masters' solutions pass the
whole battery.

An exercise is a markdown cell that states what to write, the solution cell after it, and
the test cells that check it (visible and hidden). The requirements are read from the
exercise's words: each phrase below names a category of the battery, which the exercise's
test cells must run whenever it applies to the function."""

import ast
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import grader
from grader._battery.cases import CHECKABLE, categories_for
from grader._battery.judge import MODULES, selection
from grader.instructor import release, verdict

#: What an exercise's words require, as (pattern, category).
REQUIREMENTS = [
    (r"raises? `?(ValueError|RuntimeError)", "errors"),
    (r"nan", "errors"),
    (r"no Python loop|whole tensors", "vectorized"),
    (r"dtype|float64|float16|bfloat16", "dtypes"),
    (r"autograd can differentiate|connected to", "gradients"),
    (r"register_buffer", "weight"),
    (r"10\^\{-12\}|1e-12", "edge values"),
    (r"-100|\\pm 10\^4|saturates", "edge values"),
    (r"`weight`", "weight"),
    (r"`pos_weight`", "pos_weight"),
    (r"`'sum'`|`'none'`", "reductions"),
    (r"any shape|empty", "shapes"),
    (r"weight.{0,80}broadcast", "weight"),
]

ASSIGNMENTS = [name for name in release.assignments() if not name.startswith("06")]


def _definitions(cells) -> str:
    """The imports, definitions and assignments of plain code cells (given helpers, a buggy
    version to fix): what a solution may build on."""
    kept = []
    for c in cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if c.cell_type != "code" or meta.get("grade") or meta.get("solution") or "header" in c.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(c.source)
        except SyntaxError:  # magics
            continue
        kept += [ast.get_source_segment(c.source, node) for node in tree.body
                 if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign))]
    return "\n".join(kept)


def _exercises(assignment):
    """(exercise text, solution source with what precedes it, [(check name, params, subject)] of
    its test cells)."""
    cells = nbformat.read(release.master_path(assignment), as_version=4).cells
    found, text, solution, calls = [], None, None, []
    for cell in cells + [None]:
        meta = (cell or {}).get("metadata", {}).get("nbgrader", {})
        starts = cell is not None and cell.cell_type == "markdown" and "Exercise" in cell.source.split("\n")[0]
        if (starts or cell is None) and text is not None and calls:
            found.append((text, solution, calls))
        if starts:
            text, solution, calls = cell.source, None, []
        elif cell is not None and text is not None and meta.get("solution") and cell.cell_type == "code":
            solution = (_definitions(cells[:cells.index(cell)]), cell.source)
        elif cell is not None and text is not None and meta.get("grade") and cell.cell_type == "code":
            calls += [c for c in verdict.checks_in(cell.source) or [] if c[0] == "assert_passes"]
    return found


EXERCISES = [(a, i, ex) for a in ASSIGNMENTS for i, ex in enumerate(_exercises(a))]
IDS = [f"{a}-{i + 1}" for a, i, _ in EXERCISES]


def test_every_checked_exercise_is_found():
    assert len(EXERCISES) == 6  # 01 (loss, gradient), 02, 03, 04, 05
    assert {a for a, _, _ in EXERCISES} == set(ASSIGNMENTS)


def _function(calls):
    subject = calls[0][2]
    return calls[0][1].get("function") or (subject if subject in CHECKABLE else MODULES[subject])


@pytest.mark.parametrize("assignment, index, exercise", EXERCISES, ids=IDS)
def test_every_requirement_the_exercise_states_is_checked(assignment, index, exercise):
    text, _, calls = exercise
    function = _function(calls)
    applicable = set(categories_for(function))
    required = {category for pattern, category in REQUIREMENTS if re.search(pattern, text)} & applicable
    checked = set().union(*(set(params.get("categories") or applicable) for _, params, _ in calls))
    assert required - checked == set(), f"stated in the exercise but not checked: {required - checked}"


@pytest.mark.parametrize("assignment, index, exercise", EXERCISES, ids=IDS)
def test_the_masters_solution_passes_the_whole_battery(assignment, index, exercise):
    _, (before, solution), calls = exercise
    namespace = {"torch": torch, "F": F, "nn": nn}
    for statement in ast.parse(before).body:  # what the notebook defines above the solution
        try:
            exec(compile(ast.Module([statement], []), f"<{assignment}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - a statement that needs the notebook's running state
            pass
    exec(compile(solution.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""),
                 f"<{assignment} solution>", "exec"), namespace)
    subject = namespace[calls[0][2]]
    arguments = calls[0][1].get("arguments")
    report = grader.check(subject, _function(calls), arguments=arguments)
    assert report.passed, str(report)
    _, cases = selection(_function(calls), None, arguments)
    with_cases = {c.category for c in cases} | {"signature", "output", "inputs unchanged", "own work", "vectorized",
                                                "repeated calls"}
    assert {c.name for c in report.categories.values() if c.status == "passed"} == with_cases, str(report)
