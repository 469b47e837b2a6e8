"""torch's answers computed once and kept: what the autograder computes before its workers
fork (``references.prepare``, ``exercises.prepare``) is what every judgement then uses, and no
student's code can change what is kept."""

import pytest
import torch

from grader._battery import exercises, judge, references
from grader._battery.cases import CHECKABLE, GRADIENTS, battery as cases_of
from grader._battery.checks import local
from grader.instructor.engine import prefix
from implementations import bce_direct


def test_prepare_computes_every_reference_the_battery_asks_for(monkeypatch):
    monkeypatch.setattr(references, "_REFERENCES", {})
    count = references.prepare(["cpu"])
    expected = sum(len(list(cases_of(f))) * (1 if f in GRADIENTS else 2) for f in CHECKABLE)
    assert count == expected == len(references._REFERENCES)
    kept = dict(references._REFERENCES)
    report = judge.battery(local(bce_direct), "binary_cross_entropy", devices=["cpu"])
    assert report.passed, str(report)
    assert references._REFERENCES == kept  # nothing computed again: every case found its reference


def test_a_function_that_changes_its_inputs_cannot_change_the_kept_references(monkeypatch):
    monkeypatch.setattr(references, "_REFERENCES", {})
    references.prepare(["cpu"])

    def vandal(input, target, weight=None, reduction="mean"):
        result = bce_direct(input, target, weight=weight, reduction=reduction)
        with torch.no_grad():
            input.fill_(0.5)
            target.fill_(0.5)
        return result

    assert not judge.battery(local(vandal), "binary_cross_entropy", devices=["cpu"]).passed
    report = judge.battery(local(bce_direct), "binary_cross_entropy", devices=["cpu"])
    assert report.passed, str(report)


def test_each_prediction_and_exercise_is_computed_once_and_handed_out_as_copies(monkeypatch):
    monkeypatch.setattr(exercises, "_VALUES", {})
    monkeypatch.setattr(exercises, "_ANSWERS", {})
    calls = []
    exercises._load()
    key, quantity = next(iter(exercises.QUANTITIES.items()))
    counted = exercises.Quantity(quantity.key, quantity.what, lambda: calls.append(1) or quantity.compute(),
                                 quantity.rtol, quantity.atol)
    monkeypatch.setitem(exercises.QUANTITIES, key, counted)
    count = exercises.prepare()
    assert count == len(exercises.QUANTITIES) + sum(len(ref.cases()) for ref in exercises.REFERENCES.values())
    first = exercises._truth(counted)
    first.fill_(-1.0)  # a caller that changes what it was given
    again = exercises._truth(counted)
    assert calls == [1]
    assert torch.equal(again, exercises._as_tensor(quantity.compute()))
    assert exercises.run_prediction(again.item(), key).passed


def test_an_exercise_function_that_changes_its_arguments_cannot_change_the_kept_cases(monkeypatch):
    monkeypatch.setattr(exercises, "_ANSWERS", {})
    exercises._load()
    key, ref = next(iter(exercises.REFERENCES.items()))

    def vandal(*args, **kwargs):
        result = ref.reference(*args, **kwargs)
        for value in [*args, *kwargs.values()]:
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                with torch.no_grad():
                    value.fill_(7.0)
        return result

    exercises.run_matches(vandal, key)
    kept = exercises._answers(ref)
    fresh = [(case, args) for case, args in ref.cases()]
    for (case, args, _), (fresh_case, fresh_args) in zip(kept, fresh):
        assert case == fresh_case
        for name, value in args.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, fresh_args[name]), (case, name)


@pytest.mark.parametrize("code, prepared", [
    ("import math\nimport grader.imbalance", True),
    ("from grader import datasets, imbalance", True),
    ("    import grader.imbalance as gi", True),
    ("import grader.imbalanced", False),
    ("# import grader.imbalance", False),
    ("print('import grader.imbalance')", False),
    ("import grader.datasets", False),
])
def test_a_beginning_prepares_the_course_modules_it_imports(monkeypatch, code, prepared):
    import types

    calls = []
    module = types.ModuleType("grader.imbalance")
    module.prepare = lambda: calls.append("prepared")
    monkeypatch.setitem(__import__("sys").modules, "grader.imbalance", module)
    prefix.prepare_what_it_imports([code])
    assert calls == (["prepared"] if prepared else [])
