"""Checks for exercises that are not a loss: a number the student predicted, and a function
compared with a reference that torch computes.

Each exercise registers what the judge needs under a key, in :mod:`grader._battery.items`
(one module per notebook):

* a :class:`Quantity`: how torch computes the number a student is asked to predict
  (``grader.assert_prediction(prediction, "03-sigmoid-rounds")``);
* a :class:`Reference`: the cases a function is called on and torch's answer for each
  (``grader.assert_matches(logistic_gradient, "03-logistic-gradient")``).

Both are judges in the sense of :mod:`grader._battery.checks`: the student's process only
supplies its value, or its function's outputs for arguments the judge chose; torch's
answers are computed here. In a notebook they run in place (:func:`run_prediction`,
:func:`run_matches`); in autograding, in the engine.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import salt
from .answers import Seen, compare
from .checks import Ask, local, register
from .report import describe_tensor
from .wire import Unreadable, text


@dataclass(frozen=True)
class Quantity:
    """A number (or small tensor) a student predicts, and how torch computes it."""

    key: str
    what: str
    compute: Callable[[], Any]
    rtol: float = 0.02
    atol: float = 1e-3


@dataclass(frozen=True)
class Reference:
    """A function a student writes: the cases it is called on, ``[(name, {argument: value})]``
    with the arguments in the order they are passed by position, and torch's answer."""

    key: str
    what: str
    cases: Callable[[], list[tuple[str, dict]]]
    reference: Callable[..., torch.Tensor]
    rtol: float = 1e-5
    atol: float = 1e-6
    time_limit: float = 10.0
    hint: str = ""


QUANTITIES: dict[str, Quantity] = {}
REFERENCES: dict[str, Reference] = {}


def quantity(key: str, what: str, **options) -> Callable:
    """Register the decorated function, which computes the number with torch, as ``key``."""
    def add(compute):
        QUANTITIES[key] = Quantity(key, what, compute, **options)
        return compute

    return add


def reference(key: str, what: str, cases: Callable[[], list[tuple[str, dict]]], **options) -> Callable:
    """Register the decorated function, torch's answer, with the cases it is compared on."""
    def add(fn):
        REFERENCES[key] = Reference(key, what, cases, fn, **options)
        return fn

    return add


def _load() -> None:
    from . import items

    for module in pkgutil.iter_modules(items.__path__):
        importlib.import_module(f"{items.__name__}.{module.name}")


def _find(registry: dict, key: Any, kind: str):
    _load()
    if key not in registry:
        raise ValueError(f"the grader has no {kind} called {text(key, 100)!r}")
    return registry[key]


#: torch's answers, computed once per process (every input is seeded: they never change):
#: each quantity's value, and each reference's cases with torch's result for each, by the
#: secret the cases' random draws were made with (:mod:`.salt`).
_VALUES: dict[str, torch.Tensor] = {}
_ANSWERS: dict[tuple[str, str], list[tuple[str, dict, Any]]] = {}


def _truth(q: Quantity) -> torch.Tensor:
    """torch's value of ``q``, a copy of the one kept."""
    if q.key not in _VALUES:
        _VALUES[q.key] = _as_tensor(q.compute())
    return _VALUES[q.key].clone()


def _answers(ref: Reference) -> list[tuple[str, dict, Any]]:
    """``ref``'s cases ``(name, arguments, torch's result)``, kept; the judge sends copies of
    the arguments, so the student's code never changes those kept."""
    key = (ref.key, salt.tag())
    if key not in _ANSWERS:
        found = []
        for case, args in ref.cases():
            expected = ref.reference(**{k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                        for k, v in args.items()})
            found.append((case, args, expected.detach() if isinstance(expected, torch.Tensor) else expected))
        _ANSWERS[key] = found
    return _ANSWERS[key]


def prepare() -> int:
    """Compute, once, torch's answer for every prediction and every case of every exercise: the
    autograder does this in the process its workers fork from. Returns how many."""
    _load()
    for q in QUANTITIES.values():
        _truth(q)
    return len(QUANTITIES) + sum(len(_answers(ref)) for ref in REFERENCES.values())


def _as_tensor(value: Any) -> torch.Tensor:
    return value.detach().to("cpu", torch.float64) if isinstance(value, torch.Tensor) else \
        torch.tensor(float(value), dtype=torch.float64)


@register("assert_prediction", positional=("key",))
def judge_prediction(params: dict, subject: str | None, ask: Ask) -> list[str]:
    q = _find(QUANTITIES, params.get("key"), "prediction")
    name = subject or "your prediction"
    answer = ask({"op": "value"})
    if not isinstance(answer, dict) or not ("value" in answer or "not a number" in answer):
        return [f"the grader could not read {name}"]
    value = answer.get("value")
    if not isinstance(value, (torch.Tensor, float)) or (isinstance(value, torch.Tensor) and not value.is_floating_point()
                                                        and value.dtype != torch.int64):
        shown = text(answer.get("not a number"), 200) or "something else"
        return [f"{name} should be a number (or a tensor) for {q.what}, but it is {shown}"]
    truth = _truth(q)
    mine = _as_tensor(value)
    if mine.shape != truth.shape and mine.numel() == truth.numel() == 1:
        mine = mine.reshape(truth.shape)
    difference = compare(mine, truth, q.rtol, q.atol)
    if difference is None:
        return []
    if mine.shape != truth.shape:
        return [f"{name} has shape {tuple(mine.shape)}, but {q.what} has shape {tuple(truth.shape)}"]
    return [f"your prediction of {q.what} is {_shown(mine)}; torch gives {_shown(truth)} "
            f"(a prediction passes within {q.rtol:g} relative or {q.atol:g} absolute)"]


def _shown(t: torch.Tensor) -> str:
    return f"{t.item():.6g}" if t.numel() == 1 else describe_tensor(t)


@register("assert_matches", positional=("key",))
def judge_matches(params: dict, subject: str | None, ask: Ask) -> list[str]:
    ref = _find(REFERENCES, params.get("key"), "exercise")
    name = subject or "your function"
    described = ask({"op": "describe"})
    if not isinstance(described, dict) or not described.get("callable"):
        shown = text((described or {}).get("shown") if isinstance(described, dict) else None, 200)
        return [f"{name} should be a function, but it is {shown or 'something else'}"]
    problems = []
    for case, args, expected in _answers(ref):
        request = {"op": "call", "device": "cpu", "time_limit": ref.time_limit, "positional": list(args),
                   "args": {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}}
        try:
            seen = Seen(ask(request))
        except Unreadable as error:
            problems.append(f"{case}: the grader has no usable result of {name} ({error})")
            continue
        problem = _judge_call(seen, expected, ref, name, args)
        if problem:
            problems.append(f"{case}: {problem}" + (f"\nHint: {ref.hint}" if ref.hint else ""))
            if len(problems) >= 3 or seen.timed_out:
                break
    return problems


def _judge_call(seen: Seen, expected: torch.Tensor, ref: Reference, name: str, args: dict) -> str | None:
    if seen.timed_out:
        return f"{name} took longer than {ref.time_limit:g} s"
    if seen.error is not None:
        if seen.raised(NotImplementedError):
            return f"{name} is not written yet: replace `raise NotImplementedError()` with your own code"
        frames = seen.frames()
        return f"{name} raised {seen.error_text()}" + (f"\n  {frames}" if frames else "")
    changed = [key for key in seen.changed if key in args]
    if changed:
        return (f"{name} changed its argument {changed[0]!r} in place (the caller's tensor is no longer what it "
                "passed): work on new tensors, never on the arguments themselves")
    if not isinstance(seen.value, torch.Tensor):
        return f"{name} returned {text(seen.not_a_tensor, 200) or 'something else'}, not a torch.Tensor"
    value = seen.value
    if value.shape != expected.shape:
        return f"{name} returned shape {tuple(value.shape)} where torch gives {tuple(expected.shape)}"
    if value.dtype != expected.dtype:
        return f"{name} returned dtype {value.dtype} where torch gives {expected.dtype}"
    difference = compare(value, expected, ref.rtol, ref.atol)
    if difference is None:
        return None
    where = f" at index {difference['index']}" if difference.get("index") else ""
    return (f"{name} returned {describe_tensor(value)} where torch gives {describe_tensor(expected)}; "
            f"largest difference{where}: torch {difference['expected']!r}, yours {difference['actual']!r}")


@dataclass
class Verdict:
    """What a check found, for a notebook: ``passed``, and the problems in words."""

    title: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.passed:
            return f"{self.title}: passed"
        return "\n".join([f"{self.title}: FAILED", *self.problems])

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def run_prediction(value: Any, key: str, name: str = "your prediction") -> Verdict:
    return Verdict(f"{name} ({_find(QUANTITIES, key, 'prediction').what})",
                   judge_prediction({"key": key}, name, local(value)))


def run_matches(fn: Any, key: str) -> Verdict:
    name = getattr(fn, "__name__", "your function")
    return Verdict(f"{name} ({_find(REFERENCES, key, 'exercise').what})", judge_matches({"key": key}, name, local(fn)))


