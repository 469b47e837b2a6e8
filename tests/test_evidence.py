"""Judging from evidence: the verdict the engine recomputes, in a process no student code
ran in, from what the student's process observed, is the verdict of the live battery; and
evidence that was forged or mangled never passes."""

import copy
import json

import pytest
import torch

import grader
from grader import checks, evidence
from grader.cases import BCE, BCE_WITH_LOGITS, GRADIENTS

from implementations import CORRECT_BCE, CORRECT_LOGITS, MISTAKES, BCELossModule


def _observe(fn, function, **kwargs):
    seen: dict = {}
    report = checks.run(fn, function, devices=["cpu"], observe=seen, **kwargs)
    # what crosses the process boundary is JSON text
    return report, json.loads(json.dumps(seen))


def _judged(function, seen, **kwargs):
    return checks.run(None, function, devices=["cpu"], observed=seen, **kwargs)


IMPLEMENTATIONS = ([(fn, BCE) for fn in CORRECT_BCE] + [(fn, BCE_WITH_LOGITS) for fn in CORRECT_LOGITS]
                   + [(BCELossModule, BCE)] + [(fn, function) for fn, function, _ in MISTAKES])


@pytest.mark.parametrize("fn, function", IMPLEMENTATIONS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_judge_agrees_with_the_live_battery(fn, function):
    live, seen = _observe(fn, function)
    judged = _judged(function, seen)
    assert judged.failed_categories() == live.failed_categories()
    assert [(f.category, f.case, f.message) for f in judged.failures] == \
        [(f.category, f.case, f.message) for f in live.failures]


def test_a_gradient_is_judged_from_evidence():
    def binary_cross_entropy_grad(input, target):
        return (input - target) / torch.clamp(input * (1 - input), min=1e-12) / input.numel()

    def wrong_grad(input, target):  # forgets the mean's 1/N
        return (input - target) / torch.clamp(input * (1 - input), min=1e-12)

    function = next(g for g in GRADIENTS if g.startswith("binary_cross_entropy_grad"))
    for fn, passes in ((binary_cross_entropy_grad, True), (wrong_grad, False)):
        live, seen = _observe(fn, function)
        assert live.passed is passes
        assert _judged(function, seen).passed is passes


def _correct_observation():
    return _observe(CORRECT_BCE[0], BCE)[1]


def test_forged_values_fail():
    seen = _correct_observation()
    case = next(k for k, v in seen["cases"].items() if v["value"] and "tensor" in v["value"])
    value = evidence.decode_tensor(seen["cases"][case]["value"])
    seen["cases"][case]["value"] = evidence.encode_tensor(value + 1)
    judged = _judged(BCE, seen)
    assert not judged.passed
    assert any(f.case in case and "differ" in f.message for f in judged.failures)


def test_a_missing_case_fails():
    seen = _correct_observation()
    seen["cases"].pop(next(iter(seen["cases"])))
    judged = _judged(BCE, seen)
    assert not judged.passed
    assert any("no usable result" in f.message for f in judged.failures)


def test_an_empty_observation_fails():
    problems = evidence.decide("assert_passes", {"subject": BCE}, {})
    assert problems and "could not read" in problems[0]


def test_hiding_a_call_to_torch_is_not_enough():
    """A student's process could claim a clean op trace; the values still have to be right."""
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return torch.nn.functional.binary_cross_entropy(input, target, weight=weight, reduction=reduction)

    live, seen = _observe(binary_cross_entropy, BCE)
    assert "own work" in live.failed_categories()
    assert "own work" in _judged(BCE, seen).failed_categories()


@pytest.mark.parametrize("mangle", [
    lambda v: v.update(tensor="object"),
    lambda v: v.update(shape=[-1]),
    lambda v: v.update(shape=[10 ** 9]),
    lambda v: v.update(data="!!not base64!!"),
    lambda v: v.update(data=""),
])
def test_malformed_tensors_fail_without_crashing(mangle):
    seen = _correct_observation()
    case = next(k for k, v in seen["cases"].items() if v["value"] and "tensor" in v["value"])
    mangle(seen["cases"][case]["value"])
    judged = _judged(BCE, seen)
    assert not judged.passed


def test_the_judge_takes_the_function_from_the_test_cell():
    """An observation of another function (say, the easier gradient) does not pass a check
    of the loss."""
    seen = _correct_observation()
    forged = copy.deepcopy(seen)
    forged["function"] = BCE_WITH_LOGITS
    assert evidence.decide("assert_passes", {"subject": BCE}, seen) == []
    assert evidence.decide("assert_passes", {"subject": BCE}, forged)


def test_assert_passes_records_its_keyword_arguments(tmp_path, monkeypatch):
    path = tmp_path / "evidence.jsonl"
    monkeypatch.setenv(evidence.ENV, str(path))
    grader.assert_passes(CORRECT_BCE[0], BCE, categories=("shapes",), arguments=[], devices=["cpu"])
    (item,) = evidence.read(str(path))
    assert item["check"] == "assert_passes"
    assert item["params"] == {"function": BCE, "categories": ["shapes"], "arguments": [], "devices": ["cpu"]}
    assert evidence.decide("assert_passes", item["params"] | {"subject": "whatever"}, item["observation"]) == []


def test_evidence_files_that_are_not_records_are_ignored(tmp_path):
    path = tmp_path / "evidence.jsonl"
    path.write_text('not json\n[1, 2]\n{"check": 1}\n{"check": "x", "params": {}, "observation": {}}\n')
    assert evidence.read(str(path)) == [{"check": "x", "params": {}, "observation": {}}]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64])
def test_tensors_survive_the_round_trip(dtype):
    t = (torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * 100).to(dtype)
    back = evidence.decode_tensor(json.loads(json.dumps(evidence.encode_tensor(t))))
    assert back.dtype == dtype and torch.equal(back, t)
