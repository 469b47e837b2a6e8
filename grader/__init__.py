"""Check a binary cross-entropy implementation against PyTorch's own.

For a student's check cell::

    import grader
    grader.check(binary_cross_entropy)          # shows the report

For an nbgrader test cell, where a failure must raise ``AssertionError``::

    grader.assert_passes(binary_cross_entropy, categories=["reductions", "weight"])

The same battery runs from a terminal: ``python -m grader check FILE``.

Every notebook's setup cell ends with ``device = grader.setup()``, which picks the device.

What a notebook imports lives here, flat: these functions, the explorers
(:mod:`grader.explore`), the data (:mod:`grader.datasets`), the capstone's helpers
(:mod:`grader.imbalance`) and the articles' examples (:mod:`grader.articles`). The
battery's internals are in :mod:`grader._battery`; the instructor's side (release,
collect, the autograding engine) in :mod:`grader.instructor`.
"""

from __future__ import annotations

from typing import Any, Iterable

from ._battery.cases import CATEGORIES
from ._battery.checks import judged_elsewhere, run
from ._battery.references import available_devices
from ._battery.loading import checks_suppressed
from ._battery.report import Report

__all__ = ["CATEGORIES", "Report", "assert_matches", "assert_passes", "assert_prediction", "available_devices",
           "check", "check_matches", "check_prediction", "setup"]
__version__ = "0.1.0"


def check(
    fn: Any,
    function: str | None = None,
    *,
    categories: Iterable[str] | None = None,
    arguments: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
) -> Report:
    """Compare ``fn`` with torch and return the report (shown when it is the
    last expression of a notebook cell).

    ``fn`` is your ``binary_cross_entropy`` or
    ``binary_cross_entropy_with_logits`` (or an ``nn.Module`` class like
    ``nn.BCELoss``, or a hand-derived gradient ``binary_cross_entropy_grad`` /
    ``binary_cross_entropy_with_logits_grad``); ``function`` says which it
    implements when its name does not. ``categories`` limits the check to
    some of :data:`CATEGORIES`; ``arguments`` to the optional arguments an
    exercise covers (say ``["reduction"]``); ``devices`` to some of "cpu",
    "cuda" and "mps".
    """
    if checks_suppressed():
        return _not_run(fn, function, "Not run here: `python -m grader check` runs the whole battery "
                                      "after loading the file.")
    if judged_elsewhere():
        return _not_run(fn, function, "Not run here: the autograder checks your function when it grades "
                                      "this notebook.")
    return run(fn, function, categories=categories, arguments=arguments, devices=devices)


def assert_passes(
    fn: Any,
    function: str | None = None,
    *,
    categories: Iterable[str] | None = None,
    arguments: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
) -> None:
    """Like :func:`check`, but raise ``AssertionError`` with the report's text
    when a case fails, and return nothing otherwise (an nbgrader test cell then
    has no output to score). Nothing is written to stderr either way.

    When a notebook is autograded, its test cells' checks are run by the grader
    from outside the notebook, so this does nothing there."""
    if checks_suppressed() or judged_elsewhere():
        return
    report = run(fn, function, categories=categories, arguments=arguments, devices=devices)
    if not report.passed:
        raise AssertionError("\n" + str(report))


def check_prediction(value: Any, key: str):
    """Compare a number you predicted with what torch computes (``key`` names the quantity,
    as the exercise says); returns the verdict."""
    from ._battery.exercises import run_prediction

    return run_prediction(value, key)


def assert_prediction(value: Any, key: str) -> None:
    """Like :func:`check_prediction`, but raise ``AssertionError`` when the prediction is off.
    When a notebook is autograded, the grader checks it from outside: this does nothing there."""
    if checks_suppressed() or judged_elsewhere():
        return
    verdict = check_prediction(value, key)
    if not verdict.passed:
        raise AssertionError("\n" + str(verdict))


def check_matches(fn: Any, key: str):
    """Compare a function you wrote for an exercise (other than the losses) with torch's
    answer on the exercise's cases (``key`` names the exercise); returns the verdict."""
    from ._battery.exercises import run_matches

    return run_matches(fn, key)


def assert_matches(fn: Any, key: str) -> None:
    """Like :func:`check_matches`, but raise ``AssertionError`` when a case differs.
    When a notebook is autograded, the grader checks it from outside: this does nothing there."""
    if checks_suppressed() or judged_elsewhere():
        return
    verdict = check_matches(fn, key)
    if not verdict.passed:
        raise AssertionError("\n" + str(verdict))


def setup(installed_from: str | None = None):
    """The last step of a notebook's setup cell: choose the device the notebook computes on
    (CUDA when torch sees a GPU, else the CPU), print one line saying so, with torch's
    version, and return the device. ``installed_from`` is the pip requirement the cell has
    just installed the course package from (in Google Colab), to say so on that line."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    done = (f"installed the course package from {installed_from}" if installed_from
            else "the course package is installed")
    print(f"Setup: {done}; torch {torch.__version__} on {device}.")
    return device


def _not_run(fn: Any, function: str | None, note: str) -> Report:
    report = Report(function=function or getattr(fn, "__name__", "?"), reference="torch",
                    torch_version="", categories=[])
    report.note(note)
    return report
