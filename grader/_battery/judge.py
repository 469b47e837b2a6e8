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
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from . import cases as _cases
from . import diagnose, probes, recompute, salt, sweep, wire
from .cases import (BCE, BCE_WITH_LOGITS, CHECKABLE, GRADIENTS, HINTS, LAYOUTS, LEGACY, PARAMETERS,
                    TOLERANCES, Case)
from .answers import Seen, _same_device, compare
from .report import Failure, Report, describe_tensor
from .signature import signature_problem
from .wire import Unreadable, text

#: What the judge calls to reach the student's code: a request in, an answer out.
Ask = Callable[[dict], dict]

#: Seconds one case may take before it counts as hanging.
CASE_TIME_LIMIT = 5.0
#: After this many cases ran out of time, the rest are not run.
MAX_TIMEOUTS = 2
#: Every device the battery knows; those absent are reported as skipped.
KNOWN_DEVICES = ("cpu", "cuda", "mps")
#: nn.Module classes whose name says which loss they implement.
MODULES = {"BCELoss": BCE, "BCEWithLogitsLoss": BCE_WITH_LOGITS}



def available_devices() -> list[str]:
    """The devices torch can use here, CPU first."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def _device_skip_reason(device: str) -> str | None:
    if device in available_devices():
        return None
    if device not in KNOWN_DEVICES:
        return f"unknown device (choose from {', '.join(KNOWN_DEVICES)})"
    return f"no {device.upper() if device != 'mps' else 'MPS'} device here"


def reference(function: str, module: bool = False) -> Callable:
    """torch's own function, or a call of its module form with the same arguments; for a
    gradient, autograd through torch's loss."""
    if function in GRADIENTS:
        return _cases.gradient_reference(reference(_cases.base_loss(function)))
    if not module:
        return getattr(torch.nn.functional, function)
    cls = torch.nn.BCELoss if function == BCE else torch.nn.BCEWithLogitsLoss
    return lambda input, target, **kwargs: cls(**kwargs)(input, target)


def reference_name(module: bool, function: str) -> str:
    if function in GRADIENTS:
        return f"autograd through torch.nn.functional.{_cases.base_loss(function)}"
    if module:
        return "torch.nn.BCELoss" if function == BCE else "torch.nn.BCEWithLogitsLoss"
    return f"torch.nn.functional.{function}"


# --- one case on one device ------------------------------------------------------------------

def _prepare(case: Case, device: str) -> dict:
    """The case's arguments on ``device``, each floating tensor in its dtype; not yet laid out
    (drawn with the case's seed, mixed with the autograder's secret if there is one: :mod:`.salt`)."""
    args = case.build(salt.generator(case.seed))
    out = {}
    for key, value in args.items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                value = value.to(case.dtype_of(key))
            value = value.to(device)
        out[key] = value
    return out


def _laid_out(case: Case, args: dict) -> dict:
    layout = dict(case.layout)
    return {k: LAYOUTS[layout[k]](v) if k in layout else v for k, v in args.items()}


@dataclass
class Reference:
    """What torch gives for one case on one device: the arguments (not yet laid out), the
    result or the exception, and for the gradients the upstream gradient and torch's
    gradients with respect to each argument in ``wrt``. Computed once per process and
    reused: every input is seeded by the case (and the secret, :mod:`.salt`), so torch's
    answers never change."""

    base: dict
    expected: torch.Tensor | None
    error: BaseException | None
    wrt: list[str]
    upstream: torch.Tensor | None = None
    gradients: tuple | None = None
    exact: tuple = (None, None)  # the same result and gradients computed in float64 (recompute.exact)
    inputs: dict | None = None  # the arguments in words, for a failure's report (written on first use)
    #: the case's request as sent to a notebook's process, by time limit (:class:`wire.Kept`)
    requests: dict = field(default_factory=dict)
    #: the results of the mistakes a diagnosis recomputes for this case (:func:`diagnose.values`)
    mistakes: dict = field(default_factory=dict)


_REFERENCES: dict[tuple, Reference] = {}
_MAX_REFERENCES = 4096


def torch_reference(case: Case, device: str, torch_function: Callable, key: str) -> Reference:
    """torch's :class:`Reference` for ``case`` on ``device``, where ``key`` names the
    reference function (a function and its module form may differ in what they accept)."""
    cache_key = (key, case.name, case.category, device, salt.tag())
    found = _REFERENCES.get(cache_key)
    if found is not None:
        return found
    base = _prepare(case, device)
    ref_args = _laid_out(case, {k: (v.detach().clone().requires_grad_(
        (k == "input" and case.grad_input) or (k == "target" and case.grad_target))
        if isinstance(v, torch.Tensor) else v) for k, v in base.items()})
    wrt = [k for k, on in (("input", case.grad_input), ("target", case.grad_target)) if on]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected, error = (case.reference or torch_function)(**ref_args), None
        except Exception as exc:  # noqa: BLE001 - torch's own verdict on these arguments
            expected, error = None, exc
    reference = Reference(base, None if expected is None else expected.detach(), error, wrt)
    if wrt and expected is not None and expected.requires_grad:
        reference.upstream = torch.randn(expected.shape, generator=salt.generator(case.seed),
                                         dtype=torch.float64).to(expected.dtype).to(expected.device)
        reference.gradients = torch.autograd.grad((expected * reference.upstream).sum(),
                                                  [ref_args[k] for k in wrt], allow_unused=True)
    if expected is not None:
        reference.exact = recompute.exact(case.reference or torch_function, base, lambda args: _laid_out(case, args),
                                          reference.upstream, wrt)
    if len(_REFERENCES) >= _MAX_REFERENCES:
        _REFERENCES.clear()
    _REFERENCES[cache_key] = reference
    return reference


def prepare(devices: Iterable[str] = ("cpu",)) -> int:
    """torch's :class:`Reference` for every case of every function the battery checks, in its
    function and (for the losses) its module form, on ``devices``: the autograder computes them
    once in the process its workers fork from, so that no judgement computes them again.
    Returns how many there are."""
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warnings about the cases' arguments
        for function in CHECKABLE:
            for module in (False, True) if function not in GRADIENTS else (False,):
                torch_function, key = reference(function, module=module), reference_name(module, function)
                for device in devices:
                    for case in _cases.battery(function):
                        torch_reference(case, device, torch_function, key)
                        count += 1
    return count


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
        if seen.forbidden:
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
                      expected=describe_tensor(expected), actual=describe_tensor(value),
                      hint=HINTS["output"] if value.dtype == expected.dtype else HINTS["dtype"],
                      kind="cause" if value.dtype != expected.dtype else "")
        diff = compare(value, expected, rtol, atol) if value.shape == expected.shape else None
        exact = self.reference.exact[0]
        if diff is not None and exact is not None and compare(value, exact, rtol, atol) is None:
            diff = None  # as close to torch's result computed in float64, where its own is less exact
        if value.shape != expected.shape or diff is not None:
            named = diagnose.values(self.function, case, self.args, expected, value, kept=self.reference.mistakes)
            message = ("could not compare: " + problems[0]) if value.shape != expected.shape else \
                "your values differ from torch's"
            hint = case.hint
            if named is not None:
                message, hint = named
            self.fail(case.category, message, hint=hint, expected=describe_tensor(expected),
                      actual=describe_tensor(value), difference=diff)
            return
        if self.wrt:
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
            diff = compare(g, r, rtol, atol)
            if diff is not None and x is not None and compare(g, x, rtol, atol) is None:
                diff = None  # as close to torch's gradient computed in float64, where its own is less exact
            if diff is not None:
                message, hint = diagnose.gradients(self.function, self.case, self.args, key, r, g) or (
                    f"the gradient with respect to {key!r} differs from torch's", HINTS["gradients"])
                self.fail("gradients", message, expected=describe_tensor(r), actual=describe_tensor(g),
                          difference=diff, hint=hint)


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
        # The signature and the checks made on every call always apply.
        wanted = {"signature", *categories, *_cases.PER_CALL_CATEGORIES}
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
