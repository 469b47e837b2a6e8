"""Own work, read in the source by the judge (grader.instructor.scan.reach): every way a graded
name can reach torch's own binary cross-entropy through the student's cells is named, with its
cell and line; code the graded name does not reach, and the course's own solutions, are not."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.instructor import scan, verdict
from grader.instructor.plugins import HideHiddenTests
from helpers import scanned_notebook as notebook

ROOT = Path(__file__).resolve().parents[2]
MASTERS = sorted((ROOT / "grader" / "course" / "source").glob("*/*.ipynb"))
RELEASED = sorted((ROOT / "notebooks").glob("*.ipynb"))
HONEST_BODY = "    return -(target * torch.log(input) + (1 - target) * torch.log(1 - input)).mean()\n"

#: Each: the student's cells (the graded name is ``bce`` unless said), and what must be named:
#: (index of the student's cell, from 0; line; the text named).
REACHES = {
    "calls_it": (["import torch.nn.functional as F\ndef bce(input, target):\n"
                  "    return F.binary_cross_entropy(input, target)"], [(0, 3, "F.binary_cross_entropy")]),
    "full_name": (["def bce(input, target):\n    return torch.nn.functional.binary_cross_entropy(input, target)"],
                  [(0, 2, "torch.nn.functional.binary_cross_entropy")]),
    "an_alias": (["fn = torch.nn.functional.binary_cross_entropy", "def bce(input, target):\n    return fn(input, target)"],
                 [(0, 1, "torch.nn.functional.binary_cross_entropy")]),
    "a_module_made_elsewhere": (["from torch import nn\ncriterion = nn.BCELoss()",
                                 "def bce(input, target):\n    return criterion(input, target)"], [(0, 2, "nn.BCELoss")]),
    "a_helper_in_another_cell": (["import torch.nn.functional as F\ndef helper(a, b):\n"
                                  "    return F.binary_cross_entropy(a, b)",
                                  "def bce(input, target):\n    return helper(input, target)"],
                                 [(0, 3, "F.binary_cross_entropy")]),
    "a_helper_of_a_helper": (["import torch.nn.functional as F\ndef inner(a, b):\n    return F.binary_cross_entropy(a, b)",
                              "def outer(a, b):\n    return inner(a, b)", "def bce(input, target):\n    return outer(input, target)"],
                             [(0, 3, "F.binary_cross_entropy")]),
    "imported_under_the_graded_name": (["from torch.nn.functional import binary_cross_entropy as bce"],
                                       [(0, 1, "import of torch.nn.functional.binary_cross_entropy")]),
    "imported_inside": (["def bce(input, target):\n    from torch.nn.functional import binary_cross_entropy as b\n"
                         "    return b(input, target)"], [(0, 2, "import of torch.nn.functional.binary_cross_entropy")]),
    "bound_through_global": (["import torch.nn.functional as F\ndef setup():\n    global bce\n"
                              "    bce = lambda i, t: F.binary_cross_entropy(i, t)\nsetup()"],
                             [(0, 4, "F.binary_cross_entropy")]),
    "a_partial": (["import functools\nimport torch.nn.functional as F\n"
                   "bce = functools.partial(F.binary_cross_entropy, reduction='mean')"], [(0, 3, "F.binary_cross_entropy")]),
    "an_aten_operator": (["def bce(input, target):\n    return torch.ops.aten.binary_cross_entropy.default(input, target)"],
                         [(0, 2, "torch.ops.aten.binary_cross_entropy.default")]),
    "with_logits": (["def bce(input, target):\n    return torch.binary_cross_entropy_with_logits(input, target)"],
                    [(0, 2, "torch.binary_cross_entropy_with_logits")]),
    "a_branch_never_taken": (["import torch.nn.functional as F\ndef bce(input, target):\n    if input.dim() > 8:\n"
                              "        return F.binary_cross_entropy(input, target)\n" + HONEST_BODY],
                             [(0, 4, "F.binary_cross_entropy")]),
    "a_default_argument": (["import torch.nn.functional as F\ndef bce(input, target, fn=F.binary_cross_entropy):\n"
                            "    return fn(input, target)"], [(0, 2, "F.binary_cross_entropy")]),
    "a_decorator": (["import torch.nn.functional as F\ndef swap(f):\n    return lambda i, t: F.binary_cross_entropy(i, t)\n"
                     "@swap\ndef bce(input, target):\n" + HONEST_BODY], [(0, 3, "F.binary_cross_entropy")]),
    "a_forked_child": (["import os\nimport torch.nn.functional as F\ndef bce(input, target):\n    if os.fork() == 0:\n"
                        "        F.binary_cross_entropy(input, target)\n        os._exit(0)\n" + HONEST_BODY],
                       [(0, 5, "F.binary_cross_entropy")]),
    "a_traced_function": (["from torch.fx.experimental.proxy_tensor import make_fx\nimport torch.nn.functional as F\n"
                           "traced = make_fx(F.binary_cross_entropy)", "def bce(input, target):\n    return traced(input, target)"],
                          [(0, 3, "F.binary_cross_entropy")]),
    "a_class_deriving_from_torchs": (["from torch import nn\nclass BCELoss(nn.BCELoss):\n    pass"], [(0, 2, "nn.BCELoss")]),
    "a_method_of_the_class": (["from torch import nn\nimport torch.nn.functional as F\nclass BCELoss(nn.Module):\n"
                               "    def forward(self, input, target):\n        return F.binary_cross_entropy(input, target)"],
                              [(0, 5, "F.binary_cross_entropy")]),
}


def _graded(case: str) -> str:
    return "BCELoss" if "class" in case else "bce"


@pytest.mark.parametrize("case", sorted(REACHES))
def test_each_use_of_torchs_loss_the_graded_name_reaches_is_named(case):
    sources, expected = REACHES[case]
    found = scan.Notebook(notebook(*sources)).torch_losses(_graded(case))
    for index, line, text in expected:
        assert f"cell {3 + index}, line {line}: {text}" in found, (case, found)


NOT_REACHED = {
    "compared_in_another_cell": ["import torch.nn.functional as F\ndef bce(input, target):\n" + HONEST_BODY,
                                 "p, y = torch.rand(4), torch.ones(4)\n"
                                 "print(torch.allclose(bce(p, y), F.binary_cross_entropy(p, y)))"],
    "a_reference_kept_at_the_top": ["import torch.nn.functional as F\nreference = F.binary_cross_entropy",
                                    "def bce(input, target):\n" + HONEST_BODY],
    "a_local_name_like_a_top_level_one": ["import torch.nn.functional as F\nloss = F.binary_cross_entropy",
                                          "def bce(input, target):\n    loss = -(target * torch.log(input)).mean()\n"
                                          "    return loss"],
    "torchs_other_functions": ["import torch.nn.functional as F\ndef bce(input, target):\n"
                               "    return -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input)).mean()"],
    "a_docstring_that_names_it": ["def bce(input, target):\n    '''Like F.binary_cross_entropy.'''\n" + HONEST_BODY],
}


@pytest.mark.parametrize("case", sorted(NOT_REACHED))
def test_code_the_graded_name_does_not_reach_is_not_named(case):
    assert scan.Notebook(notebook(*NOT_REACHED[case])).torch_losses("bce") == []


def test_the_instructors_cells_are_not_read():
    """The course may use torch's loss in its own cells, and a student's function may call the
    course's helpers: only the student's cells are followed."""
    nb = notebook("def bce(input, target):\n    return course_helper(input, target)")
    nb.cells[0].source += "\nimport torch.nn.functional as F\ndef course_helper(a, b):\n    return F.binary_cross_entropy(a, b)\n"
    assert scan.Notebook(nb).torch_losses("bce") == []


def test_a_name_nobody_defines_reaches_nothing():
    assert scan.Notebook(notebook("x = 1")).torch_losses("bce") == []


def _subjects(nb) -> set[str]:
    found = set()
    for cell in nb.cells:
        if verdict.is_test_cell(cell):
            _, calls, _ = verdict.split_test_cell(cell.source, HideHiddenTests().split)
            found |= {subject for _, _, subject in calls or [] if subject}
    return found


@pytest.mark.parametrize("path", MASTERS + RELEASED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_courses_solutions_and_released_notebooks_are_own_work(path):
    nb = nbformat.read(path, as_version=4)
    reading = scan.Notebook(nb)
    subjects = _subjects(nb)
    assert subjects, "no graded name found"
    assert {s: reading.torch_losses(s) for s in subjects} == {s: [] for s in subjects}


def test_a_deeply_nested_definition_stops_nothing():
    deep = "def bce(input, target):\n    return " + "(" * 400 + "input" + ")" * 400
    nb = new_notebook(cells=[new_code_cell(deep)])
    assert scan.Notebook(nb).torch_losses("bce") == []
