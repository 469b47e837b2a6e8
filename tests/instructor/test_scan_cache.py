"""The tampering scan keeps what depends on a cell's source alone (its reading, what
binding needs of its trees, what it was found to do with given bindings) from one
notebook to the next: a class's notebooks share most of their cells. What it finds
must be what a scan from scratch finds, for every notebook, whatever was scanned
before it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.instructor import scan
from grader.instructor.scan import cells as scan_cells
from grader.instructor.scan import plans as scan_plans

ROOT = Path(__file__).resolve().parents[2]
MASTERS = sorted((ROOT / "grader" / "course" / "source").glob("*/*.ipynb"))

SOLUTION = {"nbgrader": {"solution": True, "grade": False, "grade_id": "x", "locked": False, "schema_version": 3}}
LOCKED = {"nbgrader": {"solution": False, "grade": False, "grade_id": "setup", "locked": True, "schema_version": 3}}
SETUP = "import torch\nimport grader\n"


def course_and_student(course: list[str], student: list[str]):
    """The course's locked cells, then the student's (the first a solution cell)."""
    cells = [new_code_cell(SETUP, metadata=LOCKED)] + [new_code_cell(s, metadata=LOCKED) for s in course]
    cells += [new_code_cell(s, metadata=SOLUTION if i == 0 else {}) for i, s in enumerate(student)]
    return new_notebook(cells=cells)


@pytest.fixture
def empty_caches():
    """Start from nothing kept, and leave nothing of this test's kept behind."""
    scan_cells._READINGS.clear()
    scan._SCANS.clear()
    yield
    scan_cells._READINGS.clear()
    scan._SCANS.clear()


def test_one_source_with_different_bindings_gets_each_notebooks_own_findings(empty_caches):
    patched = "G.binary_cross_entropy = None"
    as_functional = course_and_student(["G = torch.nn.functional"], [patched])
    as_a_number = course_and_student(["G = 3"], [patched])
    as_an_alias = course_and_student([], ["G = torch.nn", patched])
    expected = {
        "functional": ["cell 3, line 1: assigns to G.binary_cross_entropy, which is "
                       "torch.nn.functional.binary_cross_entropy (monkeypatching torch)"],
        "number": [],
        "alias": ["cell 3, line 1: assigns to G.binary_cross_entropy, which is "
                  "torch.nn.binary_cross_entropy (monkeypatching torch)"],
    }
    notebooks = {"functional": as_functional, "number": as_a_number, "alias": as_an_alias}
    for order in (["functional", "number", "alias"], ["number", "alias", "functional"],
                  ["alias", "functional", "number", "functional", "alias", "number"]):
        for name in order:
            assert scan.suspicious(notebooks[name]) == expected[name], (order, name)


def test_more_bindings_than_are_kept_for_one_source_are_each_scanned_right(empty_caches):
    expected = {
        "torch": ["cell 3, line 1: assigns to m.x, which is torch.x (monkeypatching torch)"],
        "grader": ["cell 3, line 1: reaches grader.x, the grader's internals",
                   "cell 3, line 1: assigns to m.x, which is grader.x (changing the grader)"],
        "sys": ["cell 3, line 1: assigns to m.x, which is sys.x (changing the interpreter)"],
        "builtins": ["cell 3, line 1: reaches Python's built-ins (builtins)",
                     "cell 3, line 1: assigns to m.x, which is builtins.x (changing Python's built-ins)"],
        "3": [],
        "torch.nn": ["cell 3, line 1: assigns to m.x, which is torch.nn.x (monkeypatching torch)"],
        "grader.datasets": ["cell 3, line 1: assigns to m.x, which is grader.datasets.x (changing the grader)"],
        "None": [],
    }
    assert len(expected) > scan._SCANS_PER_SOURCE
    for order in (list(expected), list(reversed(expected)), list(expected)):
        for root in order:
            nb = course_and_student([f"import builtins\nimport sys\nm = {root}"], ["m.x = 1"])
            assert scan.suspicious(nb) == expected[root], root


def test_a_source_seen_as_the_courses_is_scanned_as_the_students_in_another_notebook(empty_caches):
    tampering = "torch.allclose = lambda *a, **k: True"
    assert scan.suspicious(course_and_student([tampering], ["x = 1"])) == []
    assert scan.suspicious(course_and_student([], [tampering])) == [
        "cell 2, line 1: assigns to torch.allclose (monkeypatching torch)"]
    assert scan.suspicious(course_and_student([tampering], ["x = 1"])) == []


def test_what_a_cell_binds_for_the_course_depends_on_whose_cell_it_is(empty_caches):
    """``import torch as T`` in the course's cell makes ``T`` a name the student must not
    rebind; the same source in the student's cell does not."""
    alias, rebinding = "import torch as T", "T = None"
    course = course_and_student([alias], [rebinding])
    student = course_and_student([], [alias, rebinding])
    for _ in range(2):
        assert scan.suspicious(course) == ["cell 3, line 1: rebinds T, which the course's cells use"]
        assert scan.suspicious(student) == []


def test_sources_that_differ_only_in_blank_lines_keep_their_own_lines(empty_caches):
    first = scan.suspicious(course_and_student([], ["torch.x = 1"]))
    second = scan.suspicious(course_and_student([], ["\n\ntorch.x = 1"]))
    assert first == ["cell 2, line 1: assigns to torch.x (monkeypatching torch)"]
    assert second == ["cell 2, line 3: assigns to torch.x (monkeypatching torch)"]
    assert scan.scan_source("torch.x = 1 ") == [(1, "assigns to torch.x (monkeypatching torch)")]
    assert scan.scan_source("\ntorch.x = 1") == [(2, "assigns to torch.x (monkeypatching torch)")]


TAMPERING_CELL = (
    "%%capture\n"
    "class Loss(torch.nn.Module):\n"
    "    f = torch.nn.functional\n"
    "    def __init__(self, g=grader):\n"
    "        self.k = g.check\n"
    "        self.f.binary_cross_entropy = None\n"
    "        return (lambda q=torch: q)()\n"
    "ops = [torch]\n"
    "ops[0].allclose = None\n"
    "for m in ops:\n"
    "    m.any = print\n"
    "with open('x.py', 'w') as handle:\n"
    "    handle.write('x')\n"
    "%time torch.y = 1\n"
    "exec('torch.z = 1')\n"
)


def _dumps(reading) -> list[str]:
    return [ast.dump(piece.tree, include_attributes=True) for piece in reading.pieces]


def test_a_kept_reading_is_frozen_and_its_trees_are_not_changed_by_binding_or_scanning(empty_caches):
    reading = scan_cells._read(TAMPERING_CELL)
    assert reading.kept and scan_cells._read(TAMPERING_CELL) is reading
    assert isinstance(reading.pieces, tuple) and isinstance(reading.found, tuple)
    assert all(isinstance(piece.read, frozenset) for piece in reading.pieces)
    with pytest.raises(AttributeError):
        reading.pieces[0].tree = None  # type: ignore[misc]
    before = _dumps(reading)
    nb = course_and_student(["helper = torch.nn"], [TAMPERING_CELL, TAMPERING_CELL, "Loss()"])
    first = scan.suspicious(nb)
    second = scan.suspicious(nb)
    scan._SCANS.clear()
    third = scan.suspicious(nb)
    assert first == second == third and first
    assert _dumps(reading) == before
    assert scan_cells._read(TAMPERING_CELL) is reading


FRESH = """
import json, sys
import nbformat
from grader.instructor import scan
print(json.dumps([scan.suspicious(nbformat.reads(text, as_version=4)) for text in json.load(sys.stdin)]))
"""


def test_what_is_found_with_the_caches_warm_is_what_a_fresh_process_finds():
    notebooks = [course_and_student(["helper = torch.nn"], [TAMPERING_CELL, "Loss()"]),
                 course_and_student([], [TAMPERING_CELL]),
                 course_and_student([TAMPERING_CELL], ["ops.append(grader)\nops[1].x = 1"])]
    notebooks += [nbformat.read(path, as_version=4) for path in MASTERS]
    for nb in notebooks[-len(MASTERS):]:  # a student who rewrote every cell of the course's
        for cell in nb.cells:
            if cell.cell_type == "code" and not scan.written_by_the_student(cell):
                cell.metadata = {}
    warm = [scan.suspicious(nb) for nb in notebooks + notebooks]
    fresh = subprocess.run([sys.executable, "-c", FRESH], input=json.dumps([nbformat.writes(nb) for nb in notebooks]),
                           capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(fresh.stdout) == warm[:len(notebooks)] == warm[len(notebooks):]
    assert warm[0] and warm[1] and warm[2]


def test_the_caches_are_bounded_and_forget_the_least_recently_used(empty_caches, monkeypatch):
    monkeypatch.setattr(scan_cells._READINGS, "size", 8)
    monkeypatch.setattr(scan._SCANS, "size", 8)
    course = "import torch as T\nT.manual_seed(0)"
    for student in range(40):
        nb = course_and_student([course], [f"x_{student} = {student}\nT.allclose = None"])
        assert scan.suspicious(nb) == ["cell 3, line 2: assigns to T.allclose, which is torch.allclose "
                                       "(monkeypatching torch)"]
        assert len(scan_cells._READINGS) <= 8 and len(scan._SCANS) <= 8
    assert scan_cells._READINGS.get(course) is not None and scan_cells._READINGS.get(SETUP) is not None
    assert scan_cells._READINGS.get("x_0 = 0\nT.allclose = None") is None
    live = {id(piece) for source in list(scan_cells._READINGS._items) for piece in
            scan_cells._READINGS._items[source].pieces}
    assert len(scan_plans._PLANS) <= len(live) + 8  # plans go with their pieces


def test_a_cell_too_deep_to_keep_is_read_and_named_each_time(empty_caches):
    deep = "x = " + "-" * 1000 + "1\ntorch.x = 1"
    assert not scan_cells._read(deep).kept and scan_cells._READINGS.get(deep) is None
    nb = course_and_student([], ["y = 1", deep, "torch.y = 1"])
    first = scan.suspicious(nb)
    assert first == scan.suspicious(nb)
    assert any(f.startswith("cell 3, line 1: ") and "nested too deeply" in f for f in first), first
    assert "cell 4, line 1: assigns to torch.y (monkeypatching torch)" in first


def test_functions_of_one_name_that_take_turns_do_not_stop_what_still_changes(empty_caches):
    """Two functions named ``f`` make the bindings change at every round (each definition
    in turn); names bound in cells read later in the notebook must still be followed,
    one round per cell, back to the first cell."""
    chain = [f"a{i} = a{i + 1}" for i in range(15)]
    cells = ["def f(p):\n    p.x = 1", "f(a0)", "def f(q, r):\n    return q"] + chain + ["a15 = torch"]
    found = scan.suspicious(course_and_student([], cells + ["a0.allclose = None"]))
    assert "cell 2, line 2: assigns to p.x, which is torch.x (monkeypatching torch)" in found, found
    assert f"cell {len(cells) + 2}, line 1: assigns to a0.allclose, which is torch.allclose " \
           "(monkeypatching torch)" in found, found


def test_an_attribute_bound_later_is_looked_up_once_it_is_known(empty_caches):
    """A target (``self.f``, ``box[0]``) bound to torch makes the same text stand for torch
    wherever it is read, and what is bound from it too, even where no target of that name
    was known before."""
    found = scan.suspicious(course_and_student([], [
        "def use(self):\n    self.f.x = 1\n    g = self.f\n    g.y = 1\n    box[0].y = 2\n    h = box[0]\n    h.z = 3",
        "class Loss:\n    def __init__(self):\n        self.f = torch.nn.functional",
        "box = {}\nbox[0] = grader"]))
    assert found == [
        "cell 2, line 2: assigns to self.f.x, which is torch.nn.functional.x (monkeypatching torch)",
        "cell 2, line 4: assigns to g.y, which is torch.nn.functional.y (monkeypatching torch)",
        "cell 2, line 5: reaches grader.y, the grader's internals",
        "cell 2, line 5: assigns to box[0].y, which is grader.y (changing the grader)",
        "cell 2, line 7: reaches grader.z, the grader's internals",
        "cell 2, line 7: assigns to h.z, which is grader.z (changing the grader)",
    ], found
