"""The checks of exercises that are not a loss: a predicted number, and a function compared
with torch's answer on the exercise's cases (grader._battery.exercises)."""

import pytest
import torch

import grader
from grader._battery import checks, exercises


@pytest.fixture
def registered():
    """A quantity and a reference registered for the test, removed after it."""
    exercises._load()

    @exercises.quantity("test-sigmoid-of-2", "sigmoid(2) in float32")
    def _():
        return torch.sigmoid(torch.tensor(2.0))

    def cases():
        g = torch.Generator().manual_seed(0)
        return [("a 3 x 4 batch", {"x": torch.randn(3, 4, generator=g), "w": torch.randn(4, generator=g)}),
                ("one row", {"x": torch.randn(1, 4, generator=g), "w": torch.randn(4, generator=g)})]

    @exercises.reference("test-logits", "the logits x @ w", cases, hint="multiply the rows by w")
    def _(x, w):
        return x @ w

    yield
    del exercises.QUANTITIES["test-sigmoid-of-2"], exercises.REFERENCES["test-logits"]


def test_a_prediction_within_the_tolerance_passes(registered):
    assert grader.check_prediction(0.88, "test-sigmoid-of-2").passed
    assert grader.check_prediction(torch.tensor(0.8808), "test-sigmoid-of-2").passed
    grader.assert_prediction(0.881, "test-sigmoid-of-2")


@pytest.mark.parametrize("value, words", [
    (0.5, "torch gives 0.880797"),
    ("0.88", "should be a number"),
    (None, "should be a number"),
    (torch.ones(2), "has shape (2,)"),
])
def test_a_wrong_prediction_says_what_torch_gives(registered, value, words):
    verdict = grader.check_prediction(value, "test-sigmoid-of-2")
    assert not verdict.passed and words in str(verdict)
    with pytest.raises(AssertionError, match="FAILED"):
        grader.assert_prediction(value, "test-sigmoid-of-2")


def test_a_function_that_matches_torch_on_every_case_passes(registered):
    def logits(x, w):
        return (x * w).sum(dim=1)

    assert grader.check_matches(logits, "test-logits").passed


@pytest.mark.parametrize("body, words", [
    (lambda x, w: x @ w + 1e-3, "largest difference"),
    (lambda x, w: (x @ w).double(), "dtype torch.float64"),
    (lambda x, w: x.sum(), "shape ()"),
    (lambda x, w: float((x @ w).sum()), "not a torch.Tensor"),
    (lambda x, w: (_ for _ in ()).throw(NotImplementedError()), "not written yet"),
    (lambda x, w: x @ w.unsqueeze(0), "raised RuntimeError"),
])
def test_a_wrong_function_gets_the_case_and_the_difference(registered, body, words):
    verdict = grader.check_matches(body, "test-logits")
    assert not verdict.passed and "a 3 x 4 batch" in str(verdict) and words in str(verdict), str(verdict)
    assert "Hint: multiply the rows by w" in str(verdict)


@pytest.mark.parametrize("body, argument", [
    (lambda x, w: x.clone().sub_(1) @ w + w.sum(), None),  # in place on its own copy: fine
    (lambda x, w: x.sub_(1) @ w + w.sum(), "x"),
    (lambda x, w: x @ w.add_(0.5) - x @ torch.full_like(w, 0.5), "w"),
])
def test_a_function_that_changes_its_arguments_in_place_fails(registered, body, argument):
    """Right values are not enough: a function that changes the caller's tensors in place
    (an exercise's gradient that subtracts from y, say) fails, and says which argument."""
    verdict = grader.check_matches(body, "test-logits")
    if argument is None:
        assert verdict.passed, str(verdict)
    else:
        assert not verdict.passed and f"changed its argument {argument!r} in place" in str(verdict), str(verdict)


def test_the_judge_asks_only_for_outputs_on_its_own_inputs(registered):
    """Whatever the student's process answers, torch's side is computed by the judge: a
    forged answer that claims a value for a case is compared with torch's, not believed."""
    seen = []

    def ask(request):
        seen.append(request)
        if request["op"] == "describe":
            return {"callable": True, "name": "logits"}
        return {"value": torch.zeros(request["args"]["x"].shape[0]), "timed_out": False, "error": None}

    problems = checks.decide("assert_matches", {"key": "test-logits"}, "logits", ask)
    assert problems and "largest difference" in problems[0]
    assert {r["op"] for r in seen} == {"describe", "call"}
    assert all(set(r["args"]) == {"x", "w"} and r["positional"] == ["x", "w"] for r in seen if r["op"] == "call")


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="no prediction called 'nope'"):
        grader.check_prediction(1.0, "nope")
    assert checks.decide("assert_matches", {"key": "nope"}, "f", lambda r: {}) == [
        "the grader has no exercise called 'nope'"]


def test_checks_do_nothing_in_a_notebook_being_autograded(registered, monkeypatch):
    monkeypatch.setenv(checks.JUDGED_ELSEWHERE, "1")
    assert grader.assert_prediction(0.1, "test-sigmoid-of-2") is None
    assert grader.assert_matches(lambda x, w: x, "test-logits") is None


def test_the_checks_a_notebook_calls_are_found_in_its_code():
    code = ["grader.assert_passes(binary_cross_entropy)\n",
            "import grader.imbalance\ngrader.imbalance.assert_thresholds (thresholds, cases='edge')",
            "# assert_trained is named in a comment, not called\nassert_prediction_of = 3"]
    assert checks.called_in(code) == ["assert_passes", "assert_thresholds"]
    assert checks.called_in([]) == []


def test_a_check_prepares_ahead_once_and_a_failing_preparation_is_left_to_its_judge(monkeypatch):
    done = []

    def fails():
        raise RuntimeError("no data here")

    checks.judges()  # every check registered (the capstone's with their own preparations) before they are replaced
    monkeypatch.setitem(checks.PREPARE, "assert_pos_weight", lambda: done.append("pos_weight"))
    monkeypatch.setitem(checks.PREPARE, "assert_thresholds", fails)
    prepared = checks.prepare(["assert_pos_weight", "assert_thresholds", "assert_passes", "assert_nothing"])
    assert prepared == ["assert_pos_weight"] and done == ["pos_weight"]
