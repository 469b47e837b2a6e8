"""Check a binary cross-entropy implementation against PyTorch's own.

For a student's check cell::

    import grader
    grader.check(binary_cross_entropy)          # shows the report

For an nbgrader test cell, where a failure must raise ``AssertionError``::

    grader.assert_passes(binary_cross_entropy, categories=["reductions", "weight"])

The same battery runs from a terminal: ``python -m grader check FILE``.
"""

from __future__ import annotations

from typing import Any, Iterable

from . import evidence
from .cases import CATEGORIES
from .checks import available_devices, run
from .loading import checks_suppressed
from .report import Report

__all__ = ["CATEGORIES", "Report", "assert_passes", "available_devices", "check"]
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
        return _not_run(fn, function)
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
    has no output to score). Nothing is written to stderr either way."""
    if checks_suppressed():
        return
    categories = None if categories is None else list(categories)
    arguments = None if arguments is None else list(arguments)
    devices = None if devices is None else list(devices)
    seen: dict | None = {} if evidence.recording() else None
    report = run(fn, function, categories=categories, arguments=arguments, devices=devices, observe=seen)
    if seen is not None:
        # What the keyword arguments were, as the test cell wrote them: the autograding engine
        # judges the observation again, in its own process, with the cell's own arguments.
        given = {"function": function, "categories": categories, "arguments": arguments, "devices": devices}
        evidence.record("assert_passes", {k: v for k, v in given.items() if v is not None}, seen)
    if not report.passed:
        raise AssertionError("\n" + str(report))


def _not_run(fn: Any, function: str | None) -> Report:
    report = Report(function=function or getattr(fn, "__name__", "?"), reference="torch",
                    torch_version="", categories=[])
    report.note("Not run here: `python -m grader check` runs the whole battery after loading the file.")
    return report
