"""Whatever a student hands in, the grader answers with a report, never its own traceback."""

import os
import sys
import warnings

import numpy as np
import pytest

import grader
import implementations as impl
from grader._battery.cases import BCE


def check(fn, **kwargs):
    return grader._battery.checks.run(fn, BCE, **kwargs)


def test_not_callable():
    report = check(42)
    assert report.failed_categories() == ["signature"]
    assert "should be a function" in str(report) and "an int" in str(report)


def test_wrong_signature_is_named_and_the_rest_still_runs():
    def binary_cross_entropy(p, y):
        return impl.bce_direct(p, y)

    report = check(binary_cross_entropy)
    assert "signature" in report.failed_categories()
    assert "must accept (input, target, weight=None, reduction='mean')" in str(report)
    assert report.categories["article examples"].status == "passed"


def test_wrong_default_is_named():
    def binary_cross_entropy(input, target, weight=None, reduction="sum"):
        return impl.bce_direct(input, target, weight, reduction)

    report = check(binary_cross_entropy)
    assert "signature" in report.failed_categories()
    assert "default of reduction should be 'mean'" in str(report)


def test_unexpected_exception_shows_the_students_line():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return input[100]

    report = check(binary_cross_entropy, categories=["article examples"])
    first = report.first_failure()
    assert "raised IndexError" in first.message
    assert "input[100]" in first.traceback


@pytest.mark.parametrize("returned, words", [
    (None, "returned None"),
    (0.5, "returned a float"),
    (np.float32(0.5), "NumPy"),
    (np.zeros(3), "NumPy"),
    ("0.5", "a str"),
])
def test_returning_something_other_than_a_tensor(returned, words):
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return returned

    report = check(binary_cross_entropy, categories=["article examples"])
    assert report.failed_categories() == ["article examples", "output"]
    assert words in report.categories["output"].failures[0].message


def test_wrong_shape_is_reported_as_output_and_not_compared():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return impl.bce_direct(input, target, weight, "none")

    report = check(binary_cross_entropy, categories=["article examples"])
    assert set(report.failed_categories()) == {"article examples", "output"}
    assert "shape (5,) where torch gives ()" in report.categories["output"].failures[0].message


def test_a_hang_is_stopped_by_the_time_limit():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        while True:
            pass

    report = check(binary_cross_entropy, time_limit=0.3)
    assert not report.passed
    assert "took longer than 0.3 s" in str(report)
    # after two hangs the rest is not run, so a hanging function costs seconds, not minutes
    assert report.seconds < 5


def test_a_student_cannot_swallow_the_timeout():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        while True:
            try:
                while True:
                    pass
            except Exception:
                pass

    report = check(binary_cross_entropy, categories=["article examples"], time_limit=0.2)
    assert "took longer" in str(report)


def test_output_of_the_students_code_never_reaches_stderr(capfd):
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        print("debugging", file=sys.stderr)
        print("to stdout")
        os.write(2, b"straight to file descriptor 2\n")
        warnings.warn("a warning from the student")
        return impl.bce_direct(input, target, weight, reduction)

    report = check(binary_cross_entropy)
    out, err = capfd.readouterr()
    assert err == ""
    assert out == ""
    assert report.passed, str(report)
    text = str(report)
    assert "wrote to stderr" in text and "printed" in text and "raised warnings" in text


def test_sys_exit_inside_the_function_is_a_failure_not_an_exit():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        raise SystemExit(3)

    report = check(binary_cross_entropy, categories=["article examples"])
    assert "raised SystemExit" in str(report)


def test_modifying_the_target_in_place_is_caught_even_when_values_return():
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        target.mul_(1.0)  # same values, but an in-place write all the same
        return impl.bce_direct(input, target, weight, reduction)

    report = check(binary_cross_entropy, categories=["shapes"])
    assert "inputs unchanged" in report.failed_categories()
    assert "'target'" in report.categories["inputs unchanged"].failures[0].message


def test_writing_an_input_behind_torchs_back_is_caught_and_reading_nan_is_not():
    def writes_through_numpy(input, target, weight=None, reduction="mean"):
        if target.numel():
            target.detach().numpy().reshape(-1)[0] = 0.5  # torch's version counter does not see this
        return impl.bce_direct(input, target, weight, reduction)

    def flips_a_zeros_sign(input, target, weight=None, reduction="mean"):
        flat = target.detach().numpy().reshape(-1)
        flat[flat == 0] = -0.0  # equal values, other bits: the argument was written all the same
        return impl.bce_direct(input, target, weight, reduction)

    for vandal in (writes_through_numpy, flips_a_zeros_sign):
        report = check(vandal)
        assert "inputs unchanged" in report.failed_categories(), vandal.__name__
    # every input left as it was (NaN in some of them): nothing is changed
    assert "inputs unchanged" not in check(impl.bce_direct).failed_categories()


def test_unknown_category_is_an_instructor_error():
    with pytest.raises(ValueError, match="choose from"):
        check(impl.bce_direct, categories=["clamping"])


def test_an_unwritten_exercise_passes_nothing():
    """NotImplementedError is a RuntimeError: it must not pass the cases where torch raises one."""
    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        raise NotImplementedError()

    report = check(binary_cross_entropy)
    assert report.categories["errors"].passed == 0
    assert all(r.status in ("failed", "skipped") for n, r in report.categories.items()
               if n not in ("signature", "inputs unchanged", "own work"))
    assert "replace `raise NotImplementedError()`" in str(report)
