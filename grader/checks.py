"""Run the battery: compare a student's BCE with torch's, case by case, device by device."""

from __future__ import annotations

import contextlib
import inspect
import os
import time
import traceback
import warnings
from typing import Any, Callable, Iterable

import torch

from . import cases as _cases
from . import evidence as _evidence
from ._guard import Call, StderrCapture, call_guarded
from .cases import BCE, BCE_WITH_LOGITS, CHECKABLE, GRADIENTS, HINTS, PARAMETERS, TOLERANCES, Case
from .report import Failure, Report, describe_value, describe_tensor

#: Seconds one case may take before it counts as hanging.
CASE_TIME_LIMIT = 5.0
#: After this many cases ran out of time, the rest are not run.
MAX_TIMEOUTS = 2

#: Every device the battery knows; those absent are reported as skipped.
KNOWN_DEVICES = ("cpu", "cuda", "mps")

_MODULES = {"BCELoss": BCE, "BCEWithLogitsLoss": BCE_WITH_LOGITS}

# The vectorization probe (see _vectorization): counts at two sizes, then a
# timing on a large tensor that only a loop far slower than torch fails.
_PROBE_SIZES = (4, 64)
_TIMING_SIZE = 1 << 16
_MAX_SLOWDOWN = 50.0
_MIN_SLOW_SECONDS = 0.01


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


# --- what is being checked --------------------------------------------------

def _resolve(fn: Any, function: str | None) -> tuple[str, Callable, str]:
    """Return (torch function name, a callable with the functional signature,
    the name to use for the student's code in messages)."""
    if inspect.isclass(fn) and issubclass(fn, torch.nn.Module):
        name = function or _MODULES.get(fn.__name__)
        if name not in (BCE, BCE_WITH_LOGITS):
            raise ValueError(
                f"cannot tell which loss {fn.__name__} implements: pass "
                f"function='{BCE}' (like nn.BCELoss) or '{BCE_WITH_LOGITS}' (like nn.BCEWithLogitsLoss)")

        def as_function(input, target, **kwargs):
            return fn(**kwargs)(input, target)

        return name, as_function, fn.__name__
    name = function or getattr(fn, "__name__", None)
    if name not in CHECKABLE:
        raise ValueError(
            f"cannot tell which function {getattr(fn, '__name__', fn)!r} implements: pass "
            f"function= one of {', '.join(map(repr, CHECKABLE))}")
    return name, fn, getattr(fn, "__name__", name)


def _reference(function: str, module: bool = False) -> Callable:
    """torch's own function, or a call of its module form with the same arguments;
    for a gradient, autograd through torch's loss."""
    if function in GRADIENTS:
        return _cases.gradient_reference(_reference(_cases.base_loss(function)))
    if not module:
        return getattr(torch.nn.functional, function)
    cls = torch.nn.BCELoss if function == BCE else torch.nn.BCEWithLogitsLoss
    return lambda input, target, **kwargs: cls(**kwargs)(input, target)


def _signature_problem(fn: Any, function: str, needed: set[str]) -> str | None:
    """Why ``fn`` cannot be called like torch's ``function``, or None."""
    if inspect.isclass(fn) and issubclass(fn, torch.nn.Module):
        module = "nn.BCELoss" if function == BCE else "nn.BCEWithLogitsLoss"
        try:
            inspect.signature(fn).bind(**{k: PARAMETERS[function][k] for k in needed})
        except TypeError:
            wanted = ", ".join(f"{k}={PARAMETERS[function][k]!r}" for k in PARAMETERS[function])
            return f"{fn.__name__}(...) must accept ({wanted}) like {module}: {inspect.signature(fn)}"
        except ValueError:
            pass
        return None
    if not callable(fn):
        return (f"{function} should be a function, but it is {describe_value(fn)}. "
                f"Define it with def {function}(input, target, ...):")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin or C function: nothing to inspect, let the cases decide
    wanted = "input, target" + "".join(f", {k}={v!r}" for k, v in PARAMETERS[function].items())
    try:
        sig.bind(None, None, **{k: PARAMETERS[function][k] for k in needed})
    except TypeError:
        return f"{function} must accept ({wanted}) like torch.nn.functional.{function}; yours takes {sig}"
    for key in needed:
        param, expected = sig.parameters.get(key), PARAMETERS[function][key]
        if param is None or param.default is inspect.Parameter.empty:
            continue
        if not (param.default is expected or (isinstance(param.default, str) and param.default == expected)):
            return (f"the default of {key} should be {PARAMETERS[function][key]!r} as in torch, "
                    f"not {param.default!r}: {function}({wanted})")
    return None


# --- running one case -------------------------------------------------------

def _prepare(case: Case, device: str) -> dict:
    args = case.build(torch.Generator().manual_seed(case.seed))
    out = {}
    for key, value in args.items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                value = value.to(case.dtype)
            value = value.to(device)
        out[key] = value
    return out


def _fresh(args: dict, case: Case) -> dict:
    out = {}
    for key, value in args.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().clone()
            if (key == "input" and case.grad_input) or (key == "target" and case.grad_target):
                value.requires_grad_(True)
        out[key] = value
    return out


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(
        torch.equal(a.detach().nan_to_num(0.0), b.detach().nan_to_num(0.0))
        and torch.equal(a.detach().isnan(), b.detach().isnan()))


def compare(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> dict | None:
    """None when ``actual`` matches ``expected`` within the tolerance (nan
    where torch has nan, the same infinities), else what differs most."""
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if a.shape != e.shape:
        return {"reason": f"shape {tuple(a.shape)} instead of {tuple(e.shape)}"}
    if a.numel() == 0:
        return None
    allowed = atol + rtol * e.abs()
    nan_mismatch = a.isnan() != e.isnan()
    both_inf = a.isinf() & e.isinf()
    diff = (a - e).abs()
    diff = torch.where(a.isnan() & e.isnan(), torch.zeros_like(diff), diff)
    diff = torch.where(both_inf & (a == e), torch.zeros_like(diff), diff)
    bad = nan_mismatch | (diff > allowed) | (diff.isnan())
    if not bool(bad.any()):
        return None
    score = torch.where(bad, torch.where(diff.isnan(), torch.full_like(diff, float("inf")), diff),
                        torch.full_like(diff, -1.0))
    flat = int(score.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape)) if a.dim() else ()
    return {
        "index": index,
        "expected": e.flatten()[flat].item(),
        "actual": a.flatten()[flat].item(),
        "difference": diff.flatten()[flat].item(),
        "mismatched": int(bad.sum()),
        "total": a.numel(),
        "rtol": rtol,
        "atol": atol,
    }


class _CaseRun:
    """The student's and torch's results for one case on one device."""

    def __init__(self, case: Case, device: str, reference: Callable, time_limit: float):
        self.case, self.device, self.time_limit = case, device, time_limit
        self.failures: list[Failure] = []
        self.checked: set[str] = set()
        args = _prepare(case, device)
        reference = case.reference or reference

        ref_args = _fresh(args, case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.expected = reference(**ref_args)
                self.ref_error: BaseException | None = None
            except Exception as exc:  # noqa: BLE001 - torch's own verdict on these arguments
                self.expected, self.ref_error = None, exc
        self.ref_args = ref_args
        self.args = _fresh(args, case)
        self.pristine = {k: v.detach().clone() for k, v in self.args.items() if isinstance(v, torch.Tensor)}
        self.versions = {k: v._version for k, v in self.args.items() if isinstance(v, torch.Tensor)}
        self.call: Call | None = None
        # Judged from an observation (see grader.evidence) instead of a live call: what the
        # student's process saw; None when the student's function is called here.
        self.observed: dict | None = None
        self.gradient_seen: dict | None = None
        self.changed: list[str] = []  # the arguments the call modified in place

    def call_student(self, student: Callable) -> None:
        rest = {k: v for k, v in self.args.items() if k not in ("input", "target")}
        self.call = call_guarded(student, (self.args["input"], self.args["target"]), rest,
                                 time_limit=self.time_limit)

    def observation(self) -> dict:
        """What the student's call did, as JSON, for a judge in another process."""
        call = self.call
        value = call.value
        return {
            "case": self.case.name, "device": self.device, "timed_out": call.timed_out,
            "forbidden": list(call.forbidden_ops), "error": _error_observation(call.error),
            "value": (_evidence.encode_tensor(value) if isinstance(value, torch.Tensor)
                      else {"not a tensor": describe_value(value)}) if call.ok else None,
            "changed": self.changed, "gradients": self.gradient_seen,
        }

    def load(self, seen: dict) -> None:
        """Take the student's call from an observation instead of calling it."""
        self.observed = seen
        call = Call(timed_out=bool(seen.get("timed_out")),
                    forbidden_ops=[str(op) for op in seen.get("forbidden") or []][:20],
                    error=_observed_error(seen.get("error")))
        if not call.timed_out and call.error is None:
            value = seen.get("value")
            if isinstance(value, dict) and "not a tensor" in value:
                call.value = _NotATensor(str(value["not a tensor"]))
            else:
                tensor = _evidence.decode_tensor(value)
                device = value.get("device", "cpu")
                call.value = tensor.to(device) if _placeable(device) else tensor
        self.call = call

    def skip_reason(self) -> str | None:
        """Why torch's own result leaves nothing to compare with, or None."""
        if self.case.expect_error and self.ref_error is None:
            return f"torch {torch.__version__} does not raise here"
        if not self.case.expect_error and self.ref_error is not None:
            return f"torch itself cannot compute this on {self.device}: {self.ref_error}"
        return None

    def fail(self, category: str, message: str, **detail) -> None:
        self.failures.append(Failure(category=category, case=self.case.name, device=self.device,
                                     dtype=str(self.case.dtype).replace("torch.", ""),
                                     message=message, hint=detail.pop("hint", self.case.hint),
                                     inputs=self._inputs_text(), **detail))

    def _inputs_text(self) -> dict[str, str]:
        return {k: (describe_tensor(v) if isinstance(v, torch.Tensor) else repr(v))
                for k, v in self.pristine.items()} | {
            k: repr(v) for k, v in self.args.items() if not isinstance(v, torch.Tensor)}

    def run_checks(self) -> None:
        case, call = self.case, self.call
        self.checked.update(("own work", "inputs unchanged"))
        if call.forbidden_ops:
            self.fail("own work", "your function called torch's own binary cross-entropy "
                      f"({', '.join(sorted(set(call.forbidden_ops)))}) instead of computing it",
                      hint=HINTS["own work"])
        self._check_unchanged()

        if call.timed_out:
            self.checked.add(case.category)
            self.fail(case.category, f"your function took longer than {self.time_limit:g} s: "
                                     "is there an endless loop?")
            return
        if case.expect_error:
            self.checked.add(case.category)
            self._check_error()
            return
        self.checked.add(case.category)
        if call.error is not None:
            hint = HINTS["not implemented"] if isinstance(call.error, NotImplementedError) else self.case.hint
            self.fail(case.category, f"your function raised {_exception_text(call.error)}",
                      traceback=_student_frames(call.error), hint=hint)
            if _is_inplace_error(call.error):
                self.fail("inputs unchanged", f"your function changed an argument in place ({call.error})",
                          hint=HINTS["in place"])
            return
        self.checked.add("output")
        value = call.value
        if not isinstance(value, torch.Tensor):
            shown = value.text if isinstance(value, _NotATensor) else describe_value(value)
            self.fail("output", f"your function returned {shown}, not a torch.Tensor",
                      hint=HINTS["not a tensor"])
            self.fail(case.category, "could not compare: the result is not a tensor")
            return
        self._check_output(value)

    def _changed(self) -> list[str]:
        if self.observed is not None:
            return [k for k in self.observed.get("changed") or [] if k in self.pristine]
        return [key for key, before in self.pristine.items()
                if self.args[key]._version != self.versions[key] or not _same(self.args[key].detach(), before)]

    def _check_unchanged(self) -> None:
        self.changed = self._changed()
        for key in self.changed:
            self.fail("inputs unchanged", f"your function modified the argument {key!r} in place",
                      hint=HINTS["in place"])

    def _check_error(self) -> None:
        call, expected = self.call, type(self.ref_error)
        torch_said = f"torch raises {expected.__name__}: {self.ref_error}"
        if call.error is None:
            got = call.value.text if isinstance(call.value, _NotATensor) else describe_value(call.value)
            self.fail(self.case.category, f"{torch_said}; your function returned {got} instead of raising")
        elif isinstance(call.error, NotImplementedError):  # a RuntimeError, but not the one torch means
            self.fail(self.case.category, f"{torch_said}; your function raised NotImplementedError",
                      hint=HINTS["not implemented"])
        elif not isinstance(call.error, expected):
            self.fail(self.case.category,
                      f"{torch_said}; your function raised {_exception_text(call.error)} instead",
                      traceback=_student_frames(call.error))

    def _check_output(self, value: torch.Tensor) -> None:
        case, expected = self.case, self.expected
        rtol, atol = TOLERANCES[case.dtype]
        problems = []
        if value.shape != expected.shape:
            problems.append(f"shape {tuple(value.shape)} where torch gives {tuple(expected.shape)}")
        if value.dtype != expected.dtype:
            problems.append(f"dtype {value.dtype} where torch gives {expected.dtype}")
        if value.device != expected.device:
            problems.append(f"device {value.device} where torch gives {expected.device}")
        if problems:
            self.fail("output", "your result has " + " and ".join(problems),
                      expected=describe_tensor(expected), actual=describe_tensor(value),
                      hint=HINTS["output"] if value.dtype == expected.dtype else HINTS["dtype"])
        if value.shape != expected.shape:
            self.fail(case.category, "could not compare: " + problems[0],
                      expected=describe_tensor(expected), actual=describe_tensor(value))
            return
        diff = compare(value, expected, rtol, atol)
        if diff is not None:
            self.fail(case.category, "your values differ from torch's",
                      expected=describe_tensor(expected), actual=describe_tensor(value), difference=diff)
            return
        if case.grad_input or case.grad_target:
            self._check_gradients(value)

    def _check_gradients(self, value: torch.Tensor) -> None:
        self.checked.add("gradients")
        case = self.case
        wrt = [k for k, on in (("input", case.grad_input), ("target", case.grad_target)) if on]
        upstream = torch.randn(self.expected.shape, generator=torch.Generator().manual_seed(case.seed),
                               dtype=torch.float64).to(self.expected.dtype).to(self.device)
        # The vector-Jacobian product as the gradient of a scalar: passing
        # ``upstream`` as grad_outputs would make torch import sympy on first use.
        ref = torch.autograd.grad((self.expected * upstream).sum(), [self.ref_args[k] for k in wrt],
                                  allow_unused=True)
        seen = self._student_gradients(value, upstream, wrt)
        if seen.get("no graph"):
            self.fail("gradients", "your result is not connected to the input, so no gradient "
                                   "can flow back through it", hint=HINTS["gradients"])
            return
        if seen.get("problem"):
            self.fail("gradients", f"computing the gradient through your function {seen['problem']}",
                      hint=HINTS["gradients"])
            return
        values = seen.get("values")
        if not isinstance(values, list) or len(values) != len(wrt):
            raise _evidence.EvidenceError("gradients of the wrong form")
        got_values = [None if g is None else _evidence.decode_tensor(g) for g in values]
        rtol, atol = TOLERANCES[case.dtype]
        for key, r, g in zip(wrt, ref, got_values):
            if r is None:
                continue
            if g is None:
                self.fail("gradients", f"no gradient reaches {key!r}: your result does not depend on it",
                          hint=HINTS["gradients"])
                continue
            diff = compare(g, r, rtol, atol)
            if diff is not None:
                self.fail("gradients", f"the gradient with respect to {key!r} differs from torch's",
                          expected=describe_tensor(r), actual=describe_tensor(g), difference=diff,
                          hint=HINTS["gradients"])


    def _student_gradients(self, value: torch.Tensor, upstream: torch.Tensor, wrt: list[str]) -> dict:
        """The gradient of ``(value * upstream).sum()`` with respect to ``wrt``, as an
        observation: computed through the student's graph, or read from the observation."""
        if self.observed is not None:
            seen = self.observed.get("gradients")
            if not isinstance(seen, dict):
                raise _evidence.EvidenceError("no gradients were observed")
            return seen
        if not value.requires_grad:
            seen = {"no graph": True}
        else:
            inputs = [self.args[k] for k in wrt]
            got = call_guarded(lambda: torch.autograd.grad((value * upstream.to(value.device)).sum(), inputs,
                                                           allow_unused=True),
                               time_limit=self.time_limit, record_ops=False)
            if not got.ok:
                seen = {"problem": "ran out of time" if got.timed_out else f"raised {_exception_text(got.error)}"}
            else:
                seen = {"values": [None if g is None else _evidence.encode_tensor(g) for g in got.value]}
        self.gradient_seen = seen
        return seen


class _NotATensor:
    """What a student's function returned instead of a tensor, as its description."""

    def __init__(self, text: str):
        self.text = text


def _placeable(device: str) -> bool:
    try:
        return torch.device(device).type in available_devices()
    except (RuntimeError, TypeError):
        return False


def _error_observation(error: BaseException | None) -> dict | None:
    if error is None:
        return None
    return {"types": [c.__name__ for c in type(error).__mro__], "text": _exception_text(error),
            "message": str(error)[:2000],
            "frames": _student_frames(error), "in place": _is_inplace_error(error)}


def _observed_error(seen: Any) -> BaseException | None:
    """An exception standing for one raised in the student's process: an instance of the
    nearest built-in class it derived from, carrying the original text."""
    if seen is None:
        return None
    if not isinstance(seen, dict):
        raise _evidence.EvidenceError("an error of the wrong form")
    import builtins

    names = [n for n in seen.get("types") or [] if isinstance(n, str)]
    cls = next((getattr(builtins, n) for n in names
                if isinstance(getattr(builtins, n, None), type) and issubclass(getattr(builtins, n), BaseException)),
               Exception)
    error = cls.__new__(cls)
    error.args = (str(seen.get("message", ""))[:2000],)
    error._observed = {"text": str(seen.get("text", cls.__name__))[:2000], "frames": str(seen.get("frames", ""))[:2000],
                       "in place": bool(seen.get("in place"))}
    return error


def _exception_text(exc: BaseException) -> str:
    if hasattr(exc, "_observed"):
        return exc._observed["text"]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _is_inplace_error(exc: BaseException) -> bool:
    if hasattr(exc, "_observed"):
        return exc._observed["in place"]
    return isinstance(exc, RuntimeError) and "in-place operation" in str(exc)


def _student_frames(exc: BaseException) -> str:
    """The part of a traceback that is in the student's code."""
    if hasattr(exc, "_observed"):
        return exc._observed["frames"]
    here = os.path.dirname(os.path.abspath(__file__))
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith((here, torch_dir))]
    lines = [f"line {f.lineno}" + (f" in {f.name}" if f.name != "<module>" else "")
             + (f": {f.line}" if f.line else "") for f in frames[-3:]]
    return "\n".join(lines)


# --- the vectorization probe --------------------------------------------------

def _vectorization(student: Callable, function: str, device: str, time_limit: float) -> Failure | None:
    """Whether ``student`` works on whole tensors. Decided by counts, which do
    not depend on how busy the machine is: the torch operators and the Python
    lines a call runs must not grow with the number of elements. A timing
    against torch backs them up for loops that neither count sees."""
    return _judge_vectorization(_measure_vectorization(student, function, device, time_limit), device)


def _measure_vectorization(student: Callable, function: str, device: str, time_limit: float) -> dict:
    """The counts and times :func:`_judge_vectorization` decides on, as JSON."""
    def make(n: int) -> tuple:
        args = _cases._maker(function, (n,))(torch.Generator().manual_seed(n))
        return args["input"].float().to(device), args["target"].float().to(device)

    calls = []
    for n in _PROBE_SIZES:
        call = call_guarded(student, make(n), time_limit=time_limit, count_lines=True)
        if not call.ok:
            problem = "ran out of time" if call.timed_out else f"raised {_exception_text(call.error)}"
            return {"problem": f"could not check: on a tensor of {n} elements your function {problem}"}
        calls.append(call)
    seen = {"ops": [c.op_count for c in calls], "lines": [c.line_count for c in calls]}
    if device != "cpu" or _counts_problem(seen):
        return seen
    args = make(_TIMING_SIZE)
    reference = _reference(function)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread each: contention for the cores skews parallel kernels most
    try:
        seen["torch seconds"] = min(_timed(lambda: reference(*args)) for _ in range(7))
        student_best = float("inf")
        for _ in range(3):
            call = call_guarded(student, args, time_limit=time_limit, record_ops=False)
            if not call.ok:
                problem = "ran out of time" if call.timed_out else f"raised {_exception_text(call.error)}"
                return {"problem": f"on a tensor of {_TIMING_SIZE} elements your function {problem}"}
            student_best = min(student_best, call.seconds)
        seen["seconds"] = student_best
    finally:
        torch.set_num_threads(threads)
    return seen


def _counts_problem(seen: dict) -> str | None:
    (small_ops, big_ops), (small_lines, big_lines) = seen["ops"], seen["lines"]
    (n_small, n_big) = _PROBE_SIZES
    if int(big_ops) > int(small_ops) + 4:
        return (f"your function ran {small_ops} torch operations on {n_small} elements but "
                f"{big_ops} on {n_big}: it works element by element")
    if int(big_lines) > int(small_lines) + 8:
        return (f"your function ran {small_lines} lines of Python on {n_small} elements but "
                f"{big_lines} on {n_big}: it loops over the elements in Python")
    return None


def _judge_vectorization(seen: Any, device: str) -> Failure | None:
    if not isinstance(seen, dict):
        raise _evidence.EvidenceError("no vectorization measurement was observed")
    if "problem" in seen:
        return _vector_failure(device, str(seen["problem"])[:500])
    problem = _counts_problem(seen)
    if problem:
        return _vector_failure(device, problem)
    if device != "cpu":
        return None
    student_best, torch_best = float(seen["seconds"]), float(seen["torch seconds"])
    ratio = student_best / max(torch_best, 1e-9)
    if ratio > _MAX_SLOWDOWN and student_best > _MIN_SLOW_SECONDS:
        return _vector_failure(
            device, f"on {_TIMING_SIZE} elements your function took {student_best * 1e3:.1f} ms, "
                    f"{ratio:.0f} times as long as torch ({torch_best * 1e3:.2f} ms): it works element "
                    "by element")
    return None


def _timed(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _vector_failure(device: str, message: str) -> Failure:
    return Failure(category="vectorized", case="the same function on 4, 64 and 65536 elements",
                   device=device, dtype="float32", message=message, hint=HINTS["vectorized"])


# --- the whole battery --------------------------------------------------------

def run(
    fn: Any,
    function: str | None = None,
    *,
    categories: Iterable[str] | None = None,
    arguments: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
    time_limit: float = CASE_TIME_LIMIT,
    name: str | None = None,
    observe: dict | None = None,
    observed: dict | None = None,
) -> Report:
    """Compare ``fn`` with torch over the battery and return a :class:`Report`.

    ``fn`` is a function with the signature of ``torch.nn.functional``'s
    ``binary_cross_entropy`` or ``binary_cross_entropy_with_logits``; or the
    gradient of either's mean with respect to the input, derived by hand,
    ``binary_cross_entropy_grad(input, target)`` or
    ``binary_cross_entropy_with_logits_grad(input, target)``; or an
    ``nn.Module`` class like ``nn.BCELoss`` or ``nn.BCEWithLogitsLoss``. Which
    one is taken from its name, or from ``function``.

    ``categories`` limits the check to some categories (the signature, and
    the output, inputs-unchanged and own-work checks of every call, always
    apply). ``arguments`` names the optional arguments the function takes
    (default: all of torch's); cases that pass others are left out, so an
    early exercise can implement ``(input, target)`` alone. ``devices``
    defaults to every device the battery knows, those absent here being
    reported as skipped. ``name`` is what the report calls the function
    (default: its own name).

    ``observe``, a dict, is filled with what the student's function did, as
    JSON (see :mod:`grader.evidence`). ``observed`` is such a dict: the
    battery is then judged from it, without calling anything (``fn`` is
    ignored and ``function`` must be given).
    """
    if observed is not None:
        if function not in CHECKABLE:
            raise ValueError(f"judging an observation needs function= one of {', '.join(CHECKABLE)}")
        if observed.get("function") != function:
            raise _evidence.EvidenceError(f"the observation is of {observed.get('function')!r}, not {function!r}")
        student, is_module = None, bool(observed.get("module"))
        shown_name = str(name or observed.get("name") or function)[:100]
    else:
        function, student, shown_name = _resolve(fn, function)
        shown_name = name or shown_name
        is_module = inspect.isclass(fn)
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
    device_list = list(dict.fromkeys(devices or KNOWN_DEVICES))
    report = Report(function=shown_name, reference=_reference_name(is_module, function),
                    torch_version=torch.__version__, categories=selected)
    started = time.perf_counter()
    battery = list(_cases.battery(function))
    if arguments is not None:
        arguments = set(arguments)
        unknown = arguments - set(PARAMETERS[function])
        if unknown:
            raise ValueError(f"{function} has no argument {', '.join(sorted(unknown))}; its optional "
                             f"arguments are {', '.join(PARAMETERS[function]) or 'none'}")
        battery = [c for c in battery if c.keywords <= arguments]
    run_cases = [c for c in battery if c.category in selected]
    needed = set().union(*(c.keywords for c in run_cases)) if run_cases else set()

    if observed is not None:
        problem, can_call = observed.get("signature"), bool(observed.get("callable"))
        problem = str(problem)[:1000] if problem else None
        seen_cases, seen_vectors = observed.get("cases"), observed.get("vectorized")
        if not isinstance(seen_cases, dict) or not isinstance(seen_vectors, dict):
            raise _evidence.EvidenceError("an observation without cases")
    else:
        problem, can_call = _signature_problem(fn, function, needed), callable(fn)
        if observe is not None:
            observe.update(function=function, module=is_module, name=shown_name, signature=problem,
                           callable=can_call, cases={}, vectorized={})
    report.record({"signature"}, [Failure(category="signature", case="the signature", device="-",
                                          dtype="-", message=problem)] if problem else [])
    if problem:
        if not can_call:
            report.note("Nothing else was checked: there is no function to call.")
            report.seconds = time.perf_counter() - started
            return report

    reference = _reference(function, module=is_module)
    with StderrCapture() as fd2, _quiet_torch():
        timeouts = 0
        for device in device_list:
            reason = _device_skip_reason(device)
            if reason:
                report.skip_device(device, reason)
                continue
            report.ran_device(device)
            elementwise = None
            if "vectorized" in selected:
                if observed is not None:
                    try:
                        elementwise = _judge_vectorization(seen_vectors.get(device), device)
                    except (_evidence.EvidenceError, KeyError, TypeError, ValueError):
                        elementwise = _vector_failure(device, "the grader has no usable measurement of your function")
                else:
                    measured = _measure_vectorization(student, function, device, time_limit)
                    if observe is not None:
                        observe["vectorized"][device] = measured
                    elementwise = _judge_vectorization(measured, device)
                report.record({"vectorized"}, [elementwise] if elementwise else [])
                timeouts += bool(elementwise and "out of time" in elementwise.message)
            for case in run_cases:
                if case.cpu_only and device != "cpu":
                    report.skip_case(case, device, f"runs on the CPU only: torch checks this on {device} "
                                                   "with a device-side assert")
                    continue
                if timeouts >= MAX_TIMEOUTS or (case.large and elementwise):
                    why = ("earlier cases ran out of time" if timeouts >= MAX_TIMEOUTS else
                           "your function works element by element, which takes too long on a large tensor")
                    report.record({case.category}, [Failure(
                        category=case.category, case=case.name, device=device,
                        dtype=str(case.dtype).replace("torch.", ""), message=f"not run: {why}")])
                    continue
                outcome = _CaseRun(case, device, reference, time_limit)
                reason = outcome.skip_reason()
                if reason:
                    report.skip_case(case, device, reason)
                    continue
                key = f"{case.name}@{device}"
                if observed is not None:
                    try:
                        seen = seen_cases.get(key)
                        if not isinstance(seen, dict):
                            raise _evidence.EvidenceError("no result was observed for this case")
                        outcome.load(seen)
                        outcome.run_checks()
                    except (_evidence.EvidenceError, KeyError, TypeError, ValueError, RuntimeError) as error:
                        outcome.failures, outcome.checked = [], {case.category}
                        outcome.call = outcome.call or Call()
                        outcome.fail(case.category, f"the grader has no usable result of your function here ({error})")
                else:
                    outcome.call_student(student)
                    outcome.run_checks()
                    if observe is not None:
                        observe["cases"][key] = outcome.observation()
                timeouts += outcome.call.timed_out
                report.record(outcome.checked, outcome.failures, outcome.call)
    if fd2.text.strip():
        report.note_output("stderr", fd2.text)
    report.seconds = time.perf_counter() - started
    return report


def _reference_name(is_module: bool, function: str) -> str:
    if function in GRADIENTS:
        return f"autograd through torch.nn.functional.{_cases.base_loss(function)}"
    if is_module:
        return "torch.nn.BCELoss" if function == BCE else "torch.nn.BCEWithLogitsLoss"
    return f"torch.nn.functional.{function}"


@contextlib.contextmanager
def _quiet_torch():
    """Keep torch's own warnings (deprecations, the reference calls) out of the output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- the judge of grader.assert_passes, in a process no student code ran in ----------------

@_evidence.judge("assert_passes")
def _judge_assert_passes(params: dict, observation: dict) -> list[str]:
    """Judge an ``assert_passes`` observation. ``params["subject"]`` (set by the
    engine) is the name the test cell passed as the function, which decides which
    torch function it is compared with; ``function=`` overrides it, as in the cell."""
    subject = params.get("subject")
    function = params.get("function") or (subject if subject in CHECKABLE else _MODULES.get(subject))
    if function is None:
        function = observation.get("function")
    if function not in CHECKABLE:
        return [f"the grader cannot tell which function {subject or '?'} implements"]
    report = run(None, function, categories=params.get("categories"), arguments=params.get("arguments"),
                 devices=params.get("devices"), observed=observation)
    return [] if report.passed else [str(report)]
