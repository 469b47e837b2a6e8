"""The battery passes correct implementations and fails each subtle mistake
in the category a teacher would name."""

import pytest
import torch
import torch.nn.functional as F

import grader
import implementations as impl
from grader._battery.cases import BCE, BCE_WITH_LOGITS, battery, categories_for


@pytest.mark.parametrize("fn", impl.CORRECT_BCE, ids=lambda f: f.__name__)
def test_correct_bce_passes_everything(fn):
    report = grader.check(fn, BCE)
    assert report.passed, str(report)
    assert report.ran
    # every applicable category was actually checked, none silently skipped
    assert {c.name: c.status for c in report.categories.values()} == {c: "passed" for c in categories_for(BCE)}


@pytest.mark.parametrize("fn", impl.CORRECT_LOGITS, ids=lambda f: f.__name__)
def test_correct_bce_with_logits_passes_everything(fn):
    report = grader.check(fn, BCE_WITH_LOGITS)
    assert report.passed, str(report)
    assert all(c.status == "passed" for c in report.categories.values())


def test_module_form_is_checked_against_the_module():
    report = grader.check(impl.BCELossModule, BCE)
    assert report.passed, str(report)
    assert report.reference == "torch.nn.BCELoss"


@pytest.mark.parametrize("fn, function, category", impl.MISTAKES, ids=[m[0].__name__ for m in impl.MISTAKES])
def test_each_mistake_fails_in_its_category(fn, function, category):
    report = grader.check(fn, function)
    assert not report.passed
    assert category in report.failed_categories(), str(report)
    assert "signature" not in report.failed_categories()
    failure = report.categories[category].failures[0]
    assert failure.message  # a reason in words, never an empty verdict


def test_mistakes_cover_at_least_twelve_kinds_and_eight_categories():
    assert len(impl.MISTAKES) >= 12
    assert len({category for _, _, category in impl.MISTAKES}) >= 8


@pytest.mark.parametrize("function", [BCE, BCE_WITH_LOGITS])
def test_torch_itself_fails_only_for_calling_torch(function):
    """The battery's own sanity check: every case agrees with torch, so torch's
    own function fails exactly one category, the one that forbids calling it."""
    report = grader.check(getattr(F, function), function)
    assert report.failed_categories() == ["own work"], str(report)


@pytest.mark.parametrize("function", [BCE, BCE_WITH_LOGITS])
def test_battery_covers_what_the_course_promises(function):
    cases = battery(function)
    names = " | ".join(c.name for c in cases)
    for shape in ["shape ()", "shape (1,)", "shape (5,)", "shape (5, 5)", "shape (5, 5, 5)", "shape (0,)",
                  "large tensor"]:
        assert shape in names
    for reduction in ["'mean'", "'sum'", "'none'"]:
        assert f"reduction={reduction}" in names
    assert {c.dtype for c in cases} == {torch.float32, torch.float64, torch.float16, torch.bfloat16}
    assert any(c.grad_target for c in cases)
    assert {c.category for c in cases} | {"signature", "output", "inputs unchanged", "own work",
                                          "vectorized", "repeated calls"} == set(categories_for(function))
    assert len({c.name for c in cases}) == len(cases), "case names identify cases"
    examples = [c for c in cases if c.category == "article examples"]
    assert len(examples) == (5 if function == BCE else 2)


def test_only_selected_categories_run():
    def binary_cross_entropy(input, target):  # an early exercise: no weight, no reduction
        return -(target * input.log().clamp_min(-100) + (1 - target) * (1 - input).log().clamp_min(-100)).mean()

    report = grader.check(binary_cross_entropy, categories=["article examples", "shapes"])
    assert report.passed, str(report)
    assert list(report.categories) == ["signature", "article examples", "shapes", "repeated calls", "output",
                                       "inputs unchanged", "own work"]
    with pytest.raises(ValueError, match="pos_weight"):
        grader.check(binary_cross_entropy, categories=["pos_weight"])


def test_function_name_decides_the_reference():
    def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
        return impl.logits_stable(input, target, weight, pos_weight, reduction)

    assert grader.check(binary_cross_entropy_with_logits).passed
    with pytest.raises(ValueError, match="function="):
        grader.check(lambda input, target: input)


def test_assert_passes_raises_assertion_error_with_the_report():
    with pytest.raises(AssertionError) as info:
        grader.assert_passes(impl.bce_no_clamp, BCE, categories=["edge values"])
    text = str(info.value)
    assert "edge values" in text and "clamp" in text and "torch returned" in text
    assert grader.assert_passes(impl.bce_direct, BCE, categories=["edge values"]) is None


def test_first_failure_shows_a_reproduction():
    report = grader.check(impl.bce_no_clamp, BCE)
    first = report.first_failure()
    assert first.category == "edge values"
    assert "input" in first.inputs and "target" in first.inputs
    assert first.difference["total"] >= first.difference["mismatched"] > 0
    text = str(report)
    assert "First failure, edge values" in text
    assert "tolerance" in text and "Hint:" in text


def test_report_is_json_serialisable():
    import json

    data = json.loads(json.dumps(grader.check(impl.bce_epsilon, BCE).to_dict()))
    assert data["passed"] is False
    statuses = {c["name"]: c["status"] for c in data["categories"]}
    assert statuses["edge values"] == "failed" and statuses["article examples"] == "passed"
    assert data["failures"][0]["category"] in statuses


def test_a_faithful_loss_gradient_that_differs_only_at_the_kink_is_named():
    report = grader.check(impl.logits_max_form, BCE_WITH_LOGITS)
    assert report.failed_categories() == ["gradients"]
    assert "exactly 0" in report.first_failure().case


def test_a_function_that_waits_is_not_taken_for_a_loop():
    """Waiting (here a sleep standing for a machine busy with other work) costs no CPU time:
    an honest function is never failed for the wall-clock time the machine took."""
    import time

    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        time.sleep(3e-6 * input.numel())
        return impl.bce_direct(input, target, weight, reduction)

    report = grader.check(binary_cross_entropy, categories=["vectorized"], devices=["cpu"])
    assert report.passed, str(report)


def test_a_loop_that_no_count_sees_is_caught_by_the_time_against_torch():
    """The timing backstop: constant operator and line counts, but work that
    grows with the elements (here a loop in C, Python's own sum over a range). It is timed
    in CPU time, so it is the work that counts, not how busy the machine is."""
    import threading

    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        sum(range(200 * input.numel()))
        return impl.bce_direct(input, target, weight, reduction)

    stop = threading.Event()
    busy = threading.Thread(target=lambda: [None for _ in iter(lambda: stop.is_set(), True)], daemon=True)
    busy.start()  # another thread of the process, busy all along: its time is not the function's
    try:
        report = grader.check(binary_cross_entropy, categories=["vectorized"])
    finally:
        stop.set()
        busy.join()
    assert report.failed_categories() == ["vectorized"], str(report)
    assert "times as long as torch" in report.categories["vectorized"].failures[0].message


def test_a_loop_that_works_on_whole_tensors_only_at_the_probes_usual_sizes_is_caught():
    """The probe's sizes are drawn each time: a function that loops over the elements except
    at sizes it expects the probe to use (4, 64, or at least 4096) still loops at the others."""
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        if input.numel() in (4, 64) or input.numel() >= 4096:
            return impl.bce_direct(input, target, weight, reduction)
        return impl.bce_python_loop(input, target, weight, reduction)

    # a draw of exactly 4 and 64 (one in 63) lets it through once: three draws all doing so, one in 250,047
    reports = [grader.check(binary_cross_entropy, categories=["vectorized"], devices=["cpu"]) for _ in range(3)]
    assert any(r.failed_categories() == ["vectorized"] for r in reports), str(reports[0])
    assert all(r.failed_categories() in ([], ["vectorized"]) for r in reports)


def test_arguments_leave_out_cases_for_arguments_an_exercise_does_not_cover():
    def binary_cross_entropy(input, target, reduction="mean"):
        return impl.bce_direct(input, target, None, reduction)

    report = grader.check(binary_cross_entropy, arguments=["reduction"])
    assert report.passed, str(report)
    assert "weight" in report.categories and report.categories["weight"].status == "skipped"
    assert report.categories["reductions"].passed > 0
    with pytest.raises(ValueError, match="no argument pos_weight"):
        grader.check(binary_cross_entropy, arguments=["pos_weight"])


def bce_grad(input, target):
    return (input - target) / torch.clamp(input * (1 - input), min=1e-12) / input.numel()


def logits_grad(input, target):
    return (torch.sigmoid(input) - target) / input.numel()


@pytest.mark.parametrize("fn, function", [(bce_grad, "binary_cross_entropy_grad"),
                                          (logits_grad, "binary_cross_entropy_with_logits_grad")])
def test_hand_derived_gradients_are_compared_with_autograd(fn, function):
    report = grader.check(fn, function)
    assert report.passed, str(report)
    assert report.reference.startswith("autograd through torch.nn.functional.")
    assert report.categories["article examples"].passed > 0
    # the gradient battery keeps the loss's cases, their reduction dropped
    for category in ("shapes", "dtypes"):
        assert report.categories[category].passed >= 3, str(report)
    if function.endswith("with_logits_grad"):
        assert report.categories["edge values"].passed >= 5
        assert "article 002-1: the logits" in " ".join(c.name for c in grader._battery.cases.battery(function))


@pytest.mark.parametrize("fn, function, category", [
    (lambda input, target: (input - target) / input.numel(), "binary_cross_entropy_grad", "article examples"),
    (lambda input, target: torch.sigmoid(input) - target, "binary_cross_entropy_with_logits_grad", "article examples"),
    (lambda input, target: (input - target) / (input * (1 - input)) / input.numel(),
     "binary_cross_entropy_with_logits_grad", "article examples"),
])
def test_wrong_gradients_fail(fn, function, category):
    assert category in grader.check(fn, function).failed_categories()


def test_an_input_target_only_exercise_is_still_tested_on_every_category():
    """arguments=[] keeps a case of every category that needs no optional argument."""
    def binary_cross_entropy(input, target):
        return impl.bce_direct(input, target)

    report = grader.check(binary_cross_entropy, arguments=[])
    assert report.passed, str(report)
    for category in ("article examples", "shapes", "edge values", "dtypes", "gradients", "errors", "vectorized"):
        assert report.categories[category].passed >= 1, category
    detached = grader.check(lambda input, target: impl.bce_direct(input.detach(), target.detach()),
                            "binary_cross_entropy", arguments=[], categories=["gradients"])
    assert detached.failed_categories() == ["gradients"]
    epsilon = grader.check(lambda input, target: impl.bce_epsilon(input, target),
                           "binary_cross_entropy", arguments=[], categories=["edge values"])
    assert epsilon.failed_categories() == ["edge values"]


def test_only_the_students_own_lines_are_counted():
    """The vectorization probe counts the lines of the student's code, not those of Python's or
    the installed packages' (a library looping internally, or finalizing objects an earlier
    test left behind, as jupyter_client's do, is not the student looping)."""
    import os
    import sys

    from grader._battery.guard import call_guarded

    library = {}
    exec(compile("def work(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n",
                 os.path.join(sys.prefix, "lib", "a_library.py"), "exec"), library)
    mine = {}
    exec(compile("def work(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n",
                 "/tmp/my_own_code.py", "exec"), mine)
    small, big = (call_guarded(library["work"], (n,), count_lines=True).line_count for n in (4, 64))
    assert small == big
    small, big = (call_guarded(mine["work"], (n,), count_lines=True).line_count for n in (4, 64))
    assert big > small + 100
