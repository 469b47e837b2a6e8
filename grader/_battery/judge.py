"""The judging half of a check: choose the inputs, compute torch's results, and decide.

:func:`battery` drives the student's function through ``ask``, a function that takes a
request (see :mod:`grader._battery.observe`) and returns what the student's code did
with it, as plain data. In a notebook, ``ask`` calls :func:`observe.answer` directly;
in autograding it sends the request to the sandboxed process of the notebook and reads
the answer back (:mod:`grader.instructor.engine.driver`). Either way the judge chooses
every input, computes every one of torch's results itself, and takes every verdict; an
answer only supplies the student function's outputs for those inputs, and an answer
that is not well formed fails the case it was for. When autograding, the random inputs are
drawn with a secret of the course mixed into their seeds (:mod:`.salt`): no student can know
them ahead, so none can hand in torch's answers recorded at home.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Iterable

import torch

from . import cases as _cases
from . import diagnose, probes, stateful, sweep, wire
from .cases import BCE, BCE_WITH_LOGITS, CHECKABLE, HINTS, LEGACY, PARAMETERS, TOLERANCES, Case
from .answers import Seen, _same_device, compare
from .references import KNOWN_DEVICES, _device_skip_reason, _laid_out, reference, reference_name, torch_reference
from .report import Failure, Report, describe_tensor
from .signature import signature_problem
from .wire import Unreadable, text

#: What the judge calls to reach the student's code: a request in, an answer out.
Ask = Callable[[dict], dict]

#: Seconds one case may take before it counts as hanging.
CASE_TIME_LIMIT = 5.0
#: After this many cases ran out of time, the rest are not run.
MAX_TIMEOUTS = 2
#: nn.Module classes whose name says which loss they implement.
MODULES = {"BCELoss": BCE, "BCEWithLogitsLoss": BCE_WITH_LOGITS}


class CaseJudgement:
    """torch's result for one case on one device, and the verdict on the student's."""

    def __init__(self, case: Case, device: str, torch_function: Callable, time_limit: float,
                 function: str = "", key: str = ""):
        self.case, self.device, self.time_limit, self.function = case, device, time_limit, function
        self.failures: list[Failure] = []
        self.checked: set[str] = set()
        self.reference = torch_reference(case, device, torch_function, key or function)
        self.base = self.reference.base
        self.args = _laid_out(case, self.base)
        self.expected, self.ref_error = self.reference.expected, self.reference.error
        self.wrt = self.reference.wrt if self.reference.gradients is not None else []
        self.seen: Seen | None = None

    def skip_reason(self) -> str | None:
        """Why torch's own result leaves nothing to compare with, or None."""
        if self.case.expect_error and self.ref_error is None:
            return f"torch {torch.__version__} does not raise here"
        if not self.case.expect_error and self.ref_error is not None:
            return f"torch itself cannot compute this on {self.device}: {self.ref_error}"
        return None

    def request(self) -> dict:
        """What the student's code is asked to do for this case."""
        # copies: the cached arguments never reach the student's code, which may change them
        request = {"op": "call", "device": self.device, "time_limit": self.time_limit,
                   "args": {k: (v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v)
                            for k, v in self.base.items()},
                   "layout": dict(self.case.layout), "positional": list(self.case.positional)}
        if self.wrt:
            request.update(grad=self.wrt, upstream=self.reference.upstream.to("cpu", copy=True))
            if self.case.second_order:
                request["second"] = True  # and the gradient of that gradient
        if not self.case.expect_error and not self.case.large:  # (a large call twice costs too much)
            request["without grad"] = True  # and once more under torch.no_grad()
        # the same for every student: a notebook's process is sent the bytes written the first time
        return wire.Kept(request, self.reference.requests, self.time_limit)

    def fail(self, category: str, message: str, **detail) -> None:
        self.failures.append(Failure(category=category, case=self.case.name, device=self.device,
                                     dtype=str(self.case.dtype).replace("torch.", ""),
                                     message=message, hint=detail.pop("hint", self.case.hint),
                                     inputs=self._inputs_text(), **detail))

    def _inputs_text(self) -> dict[str, str]:
        """The case's arguments in words, written once per process and kept with torch's answer
        (they are the same for every student)."""
        if self.reference.inputs is None:
            self.reference.inputs = {k: (describe_tensor(v) if isinstance(v, torch.Tensor) else repr(v))
                                     for k, v in self.args.items()}
        return dict(self.reference.inputs)

    def _described(self, what: str, tensor: torch.Tensor) -> str:
        """One of torch's tensors for this case (``what``: its result, a gradient) in words, written
        once per process and kept with torch's answer, as the inputs are."""
        if what not in self.reference.described:
            self.reference.described[what] = describe_tensor(tensor)
        return self.reference.described[what]

    def judge(self, answer: Any) -> None:
        """Decide the case from the student's answer."""
        case = self.case
        try:
            seen = self.seen = Seen(answer)
        except Unreadable as error:
            self.checked = {case.category}
            self.fail(case.category, f"the grader has no usable result of your function here ({error})")
            return
        self.checked.update(("own work", "inputs unchanged"))
        if seen.in_the_source:
            self.fail("own work", "your code uses torch's own binary cross-entropy instead of computing it ("
                      + "; ".join(seen.in_the_source[:3]) + ")", hint=HINTS["own work in the source"])
        elif seen.forbidden:
            self.fail("own work", "your function called torch's own binary cross-entropy "
                      f"({', '.join(seen.forbidden)}) instead of computing it", hint=HINTS["own work"])
        for key in seen.changed:
            if key in self.args:
                self.fail("inputs unchanged", f"your function modified the argument {key!r} in place",
                          hint=HINTS["in place"])
        self.checked.add(case.category)
        if seen.timed_out:
            self.fail(case.category, f"your function took longer than {self.time_limit:g} s: is there an endless loop?")
            return
        if case.expect_error:
            self._judge_error(seen)
            return
        if seen.error is not None:
            not_implemented = seen.raised(NotImplementedError)
            self.fail(case.category, f"your function raised {seen.error_text()}", traceback=seen.frames(),
                      hint=HINTS["not implemented"] if not_implemented else case.hint,
                      kind="not implemented" if not_implemented else "")
            if seen.in_place():
                self.fail("inputs unchanged", f"your function changed an argument in place ({seen.error_text()})",
                          hint=HINTS["in place"])
            return
        self.checked.add("output")
        if not isinstance(seen.value, torch.Tensor):
            self.fail("output", f"your function returned {text(seen.not_a_tensor, 300) or 'something else'}, "
                                "not a torch.Tensor", hint=HINTS["not a tensor"], kind="cause")
            self.fail(case.category, "could not compare: the result is not a tensor")
            return
        self._judge_output(seen)

    def _judge_error(self, seen: Seen) -> None:
        expected = type(self.ref_error)
        torch_said = f"torch raises {expected.__name__}: {self.ref_error}"
        if seen.error is None:
            got = "a tensor" if isinstance(seen.value, torch.Tensor) else text(seen.not_a_tensor, 300) or "a value"
            if isinstance(seen.value, torch.Tensor):
                got = describe_tensor(seen.value)
            self.fail(self.case.category, f"{torch_said}; your function returned {got} instead of raising")
        elif seen.raised(NotImplementedError):  # a RuntimeError, but not the one torch means
            self.fail(self.case.category, f"{torch_said}; your function raised NotImplementedError",
                      hint=HINTS["not implemented"], kind="not implemented")
        elif not seen.raised(expected):
            self.fail(self.case.category, f"{torch_said}; your function raised {seen.error_text()} instead",
                      traceback=seen.frames())

    def _judge_output(self, seen: Seen) -> None:
        case, expected, value = self.case, self.expected, seen.value
        rtol, atol = TOLERANCES[case.dtype]
        problems = []
        if value.shape != expected.shape:
            problems.append(f"shape {tuple(value.shape)} where torch gives {tuple(expected.shape)}")
        if value.dtype != expected.dtype:
            problems.append(f"dtype {value.dtype} where torch gives {expected.dtype}")
        if not _same_device(seen.value_device, expected.device):
            problems.append(f"device {seen.value_device} where torch gives {expected.device}")
        if problems:
            self.fail("output", "your result has " + " and ".join(problems),
                      expected=self._described("result", expected), actual=describe_tensor(value),
                      hint=HINTS["output"] if value.dtype == expected.dtype else HINTS["dtype"],
                      kind="cause" if value.dtype != expected.dtype else "")
        diff = compare(value, expected, rtol, atol, self.reference.exact[0]) if value.shape == expected.shape else None
        if value.shape != expected.shape or diff is not None:
            named = diagnose.values(self.function, case, self.args, expected, value, kept=self.reference.mistakes)
            message = ("could not compare: " + problems[0]) if value.shape != expected.shape else \
                "your values differ from torch's"
            hint = case.hint
            if named is not None:
                message, hint = named
            self.fail(case.category, message, hint=hint, expected=self._described("result", expected),
                      actual=describe_tensor(value), difference=diff)
            return
        problem = None if case.large else stateful.without_grad(seen.without_grad, expected, case.dtype,
                                                                self.reference.exact[0])
        if problem:
            self.fail(case.category, hint=HINTS["no grad"], **problem)
        elif self.wrt:
            self._judge_gradients(seen)

    def _judge_gradients(self, seen: Seen) -> None:
        self.checked.add("gradients")
        ref = self.reference.gradients
        got = seen.gradients
        if not isinstance(got, dict):
            self.fail("gradients", "the grader has no usable gradient of your function here")
            return
        if got.get("no graph"):
            self.fail("gradients", "your result is not connected to the input, so no gradient "
                                   "can flow back through it", hint=HINTS["gradients"])
            return
        if got.get("problem"):
            self.fail("gradients", f"computing the gradient through your function {text(got['problem'], 300)}",
                      hint=HINTS["gradients"])
            return
        values = got.get("values")
        if not isinstance(values, list) or len(values) != len(self.wrt) or not all(
                v is None or isinstance(v, torch.Tensor) for v in values):
            self.fail("gradients", "the grader has no usable gradient of your function here")
            return
        rtol, atol = TOLERANCES[self.case.dtype]
        exact = self.reference.exact[1] or (None,) * len(self.wrt)
        for key, r, x, g in zip(self.wrt, ref, exact, values):
            if r is None:
                continue
            if g is None:
                self.fail("gradients", f"no gradient reaches {key!r}: your result does not depend on it",
                          hint=HINTS["gradients"])
                continue
            diff = compare(g, r, rtol, atol, x)
            if diff is not None:
                message, hint = diagnose.gradients(self.function, self.case, self.args, key, r, g) or (
                    f"the gradient with respect to {key!r} differs from torch's", HINTS["gradients"])
                self.fail("gradients", message, expected=self._described("gradient " + key, r),
                          actual=describe_tensor(g), difference=diff, hint=hint)
        if self.case.second_order and not self.failures:
            problem = stateful.second_problem(got, self.reference.second, rtol, atol)
            if problem:
                self.fail("gradients", hint=HINTS["second order"], **problem)


# --- the whole battery --------------------------------------------------------------------------

def which_function(described: dict, function: str | None) -> str:
    """The torch function a subject is compared with: ``function`` if given, else its name."""
    name = function or (MODULES.get(described.get("name")) if described.get("module") else described.get("name"))
    if name not in CHECKABLE:
        shown = text(described.get("name"), 100) or "this"
        if described.get("module"):
            raise ValueError(f"cannot tell which loss {shown} implements: pass function='{BCE}' (like "
                             f"nn.BCELoss) or '{BCE_WITH_LOGITS}' (like nn.BCEWithLogitsLoss)")
        raise ValueError(f"cannot tell which function {shown!r} implements: pass "
                         f"function= one of {', '.join(map(repr, CHECKABLE))}")
    return name


def _takes(described: dict, names: set[str]) -> bool:
    """Whether the described signature has parameters ``names`` (or takes ``**kwargs``)."""
    if not names:
        return True
    parameters = described.get("parameters")
    if not isinstance(parameters, list):
        return False
    have = {p.get("name") for p in parameters if isinstance(p, dict)}
    var_keyword = any(isinstance(p, dict) and p.get("kind") == 4 for p in parameters)
    return var_keyword or names <= have


def selection(function: str, categories: Iterable[str] | None, arguments: Iterable[str] | None
              ) -> tuple[list[str], list[Case]]:
    """The categories a check covers and the cases it runs; ValueError for unknown names."""
    applicable = _cases.categories_for(function)
    if categories is None:
        selected = list(applicable)
    else:
        categories = list(categories)
        unknown = [c for c in categories if c not in applicable]
        if unknown:
            raise ValueError(f"unknown categories for {function}: {', '.join(map(repr, unknown))}; "
                             f"choose from {', '.join(map(repr, applicable))}")
        # The signature, the checks made on every call and the repeated calls always apply.
        wanted = {"signature", *categories, *_cases.PER_CALL_CATEGORIES, stateful.CATEGORY}
        selected = [c for c in applicable if c in wanted]
    cases = list(_cases.battery(function))
    if arguments is not None:
        arguments = set(arguments)
        unknown = arguments - set(PARAMETERS[function])
        if unknown:
            raise ValueError(f"{function} has no argument {', '.join(sorted(unknown))}; its optional "
                             f"arguments are {', '.join(PARAMETERS[function]) or 'none'}")
        cases = [c for c in cases if c.keywords <= arguments]
    return selected, [c for c in cases if c.category in selected]


def battery(ask: Ask, function: str | None = None, *, categories: Iterable[str] | None = None,
            arguments: Iterable[str] | None = None, devices: Iterable[str] | None = None,
            time_limit: float = CASE_TIME_LIMIT, name: str | None = None, figure: bool = False) -> Report:
    """Compare the student's function, reached through ``ask``, with torch over the battery.

    ``function`` says which torch function it implements (default: from its name);
    ``categories`` limits the check to some categories (the signature, and the output,
    inputs-unchanged and own-work checks of every call, always apply); ``arguments`` names
    the optional arguments it takes (cases that pass others are left out); ``devices``
    defaults to every device the battery knows, those absent being reported as skipped. With
    ``figure``, a report whose values differ from torch's also holds the student's function and
    torch's over the range that matters (:mod:`grader._battery.sweep`), for its HTML figure."""
    described = ask({"op": "describe"})
    if not isinstance(described, dict):
        described = {"callable": False, "shown": "something the grader cannot read"}
    function = which_function(described, function)
    module = bool(described.get("module"))
    selected, run_cases = selection(function, categories, arguments)
    shown_name = text(name or described.get("name") or function, 100)
    report = Report(function=shown_name, reference=reference_name(module, function),
                    torch_version=torch.__version__, categories=selected)
    started = time.perf_counter()
    run_cases = [c for c in run_cases if _takes(described, c.keywords & set(LEGACY))]
    needed = set().union(*(c.keywords for c in run_cases)) if run_cases else set()
    problem = signature_problem(described, function, needed)
    report.record({"signature"}, [Failure(category="signature", case="the signature", device="-", dtype="-",
                                          message=problem)] if problem else [])
    if problem and not described.get("callable"):
        report.note("Nothing else was checked: there is no function to call.")
        report.seconds = time.perf_counter() - started
        return report
    torch_function = reference(function, module=module)
    if module and "weight" in selected:
        kept = probes.module_buffers(ask, function, needed)
        report.record({"weight"}, [kept] if kept else [])
    timeouts = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warnings (deprecations, the reference calls)
        for device in dict.fromkeys(devices or KNOWN_DEVICES):
            reason = _device_skip_reason(device)
            if reason:
                report.skip_device(device, reason)
                continue
            report.ran_device(device)
            elementwise = None
            if "vectorized" in selected:
                elementwise = probes.vectorization(ask, function, device, time_limit)
                report.record({"vectorized"}, [elementwise] if elementwise else [])
                timeouts += bool(elementwise and "out of time" in elementwise.message)
            if stateful.CATEGORY in selected and device == "cpu" and timeouts < MAX_TIMEOUTS:
                found = stateful.repeated_calls(ask, function, module, needed, time_limit)
                if found is not None:
                    report.record({stateful.CATEGORY} | {f.category for f in found}, found)
            for case in run_cases:
                if case.cpu_only and device != "cpu":
                    report.skip_case(case, device, f"runs on the CPU only: torch checks this on {device} "
                                                   "with a device-side assert")
                    continue
                if timeouts >= MAX_TIMEOUTS or (case.large and elementwise):
                    if timeouts >= MAX_TIMEOUTS or "out of time" in elementwise.message:
                        why = "earlier cases ran out of time"
                    elif elementwise.message.startswith("could not check"):
                        why = "your function failed on small tensors (see vectorized)"
                    else:
                        why = "your function works element by element, which takes too long on a large tensor"
                    report.record({case.category}, [Failure(
                        category=case.category, case=case.name, device=device,
                        dtype=str(case.dtype).replace("torch.", ""), message=f"not run: {why}",
                        kind=elementwise.kind if elementwise else "")])
                    continue
                judgement = CaseJudgement(case, device, torch_function, time_limit, function,
                                          key=report.reference)
                reason = judgement.skip_reason()
                if reason:
                    report.skip_case(case, device, reason)
                    continue
                judgement.judge(ask(judgement.request()))
                timeouts += bool(judgement.seen and judgement.seen.timed_out)
                report.record(judgement.checked, judgement.failures, judgement.seen)
        if figure and any(f.difference for f in report.failures) and timeouts < MAX_TIMEOUTS:
            report.sweep = sweep.gather(ask, function, described, "cpu", time_limit)
    report.seconds = time.perf_counter() - started
    return report
