"""The checks a test cell may call, by name, each as a judge that drives the student's code.

A check is ``judge(params, subject, ask) -> problems``: ``params`` are the keyword
arguments the test cell wrote (``categories=[...]``), ``subject`` the name of the
student's code it passed first (``binary_cross_entropy``), and ``ask`` reaches that code
(see :mod:`grader._battery.observe`); it returns what is wrong, in words, or nothing.

The same judge serves a student's notebook, where ``ask`` calls the student's function in
the same process (:func:`local`), and the autograding engine, where ``ask`` talks to the
notebook's sandboxed process and the judge runs in the engine's own process, which no
student code has run in. A test cell passes when every check it calls finds nothing wrong.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from . import observe
from .judge import MODULES, Ask, battery
from .cases import CHECKABLE

Judge = Callable[[dict, "str | None", Ask], list[str]]

#: The judge of every check a test cell may call, by the name of the public function.
JUDGES: dict[str, Judge] = {}
#: Positional parameters after the first (the student's code), by check.
POSITIONAL: dict[str, tuple[str, ...]] = {"assert_passes": ("function",)}

#: Set in the process of a notebook being autograded: its checks run in the judge instead.
JUDGED_ELSEWHERE = "BCE_GRADER_JUDGED"


def judged_elsewhere() -> bool:
    """Whether this process is a notebook being autograded, whose test cells the engine
    judges from outside: the checks called here then do nothing."""
    return os.environ.get(JUDGED_ELSEWHERE) == "1"


#: Set in the process of a notebook being autograded while it runs a cell nobody grades
#: (an explanation, a cell the student added): its figures are made but not drawn.
NOT_DRAWN = "BCE_GRADER_NOT_DRAWN"


def figures_drawn() -> bool:
    """Whether the cell running now has its figures drawn: always, but while the autograder
    runs a cell whose output nobody grades (no feedback needs its pixels)."""
    return os.environ.get(NOT_DRAWN) != "1"


#: What a check computes the same for every student (its cases, torch's answers), by check:
#: a function the autograder calls once, ahead, in the process its judges fork from.
PREPARE: dict[str, Callable[[], Any]] = {}


def register(name: str, positional: tuple[str, ...] = (),
             prepare: Callable[[], Any] | None = None) -> Callable[[Judge], Judge]:
    """Register a judge as the check ``name``; ``prepare``, if given, computes ahead, once, what
    the judge computes the same for every student (:func:`prepare`)."""
    def add(fn: Judge) -> Judge:
        JUDGES[name] = fn
        if positional:
            POSITIONAL[name] = positional
        if prepare is not None:
            PREPARE[name] = prepare
        return fn

    return add


def called_in(sources) -> list[str]:
    """The checks of the course that the code ``sources`` (strings) calls, by name."""
    import re

    code = "\n".join(sources)
    return [name for name in judges() if re.search(rf"\b{name}\s*\(", code)]


def prepare(names) -> list[str]:
    """Compute ahead, once in this process, what the checks ``names`` compute the same for every
    student, so that every judge forked from it finds it done. Returns the checks prepared; one
    whose preparation fails is left to compute it when it judges (and to say then what is wrong)."""
    prepared = []
    for name in names:
        if name in judges() and name in PREPARE:
            try:
                PREPARE[name]()
            except Exception:  # noqa: BLE001 - only a head start: the judge meets the problem and says it
                continue
            prepared.append(name)
    return prepared


def judges() -> dict[str, Judge]:
    """Every check of the course, by name (importing the modules that define them)."""
    from . import capstone, exercises  # noqa: F401 - register the capstone's and the exercises' checks

    return dict(JUDGES)


def local(subject: Any) -> Ask:
    """An ``ask`` that calls ``subject`` in this process."""
    return lambda request: observe.answer(subject, request)


def decide(name: str, params: dict, subject: str | None, ask: Ask) -> list[str]:
    """Run the judge of check ``name``; whatever goes wrong reading the student's answers is
    a problem of the check, never an error of the grader."""
    judge = judges().get(name)
    if judge is None:
        return [f"the grader has no check called {name}"]
    try:
        return list(judge(params, subject, ask))
    except ValueError as error:  # the test cell's own arguments, or an unreadable answer
        return [str(error)]
    except (KeyError, TypeError, IndexError, AttributeError, RuntimeError, ArithmeticError) as error:
        return [f"the grader could not read the result of {name}: {type(error).__name__}: {error}"]


@register("assert_passes", positional=("function",))
def _assert_passes(params: dict, subject: str | None, ask: Ask) -> list[str]:
    """The battery, with the test cell's arguments; ``function`` defaults to the name the cell
    passed (``binary_cross_entropy``, ``BCELoss``), then to the function's own name."""
    function = params.get("function") or (subject if subject in CHECKABLE else MODULES.get(subject or ""))
    report = battery(ask, function, categories=params.get("categories"), arguments=params.get("arguments"),
                     devices=params.get("devices"))
    return [] if report.passed else [str(report)]


def run(fn: Any, function: str | None = None, *, categories=None, arguments=None, devices=None,
        time_limit: float | None = None, name: str | None = None, chunks=None):
    """The battery on ``fn``, called in this process: :func:`grader.check`'s report.

    Own work is also read in the source, as the judge reads it when autograding
    (:mod:`grader._battery.source`): the kernel's history, or ``chunks``, the ``(label,
    source)`` of a loaded file. What ``fn`` or torch writes to file descriptor 2 meanwhile is
    kept off stderr (nbgrader gives no points to a test cell that wrote there) and noted in the
    report."""
    from . import source
    from .guard import StderrCapture
    from .judge import CASE_TIME_LIMIT

    ask = local(fn)
    uses = source.torch_losses(fn, name, chunks)
    if uses:
        ask = source.adding(ask, uses)
    with StderrCapture() as fd2:
        report = battery(ask, function, categories=categories, arguments=arguments, devices=devices,
                         time_limit=time_limit or CASE_TIME_LIMIT, name=name, figure=True)
    if fd2.text.strip():
        report.note_output("stderr", fd2.text)
    return report
