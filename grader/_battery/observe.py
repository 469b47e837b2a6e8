"""The observing half of a check: call the student's code on inputs the judge chose, and
write down what happened, as plain data.

This is the only part of the grader that must run where the student's code lives: in
the notebook itself for a live ``grader.check``, or in the sandboxed process of a
notebook being autograded, where :mod:`grader.instructor.engine` passes it the judge's
requests one at a time. It decides nothing: every verdict is taken by
:mod:`grader._battery.judge` from what :func:`answer` returns, with torch's own results
computed by the judge. What comes back is only data about the call: the value (or the
exception, or that it ran out of time), the gradients through it, the arguments it
changed, the torch operators it ran, and what it printed.

A request is a dict with ``"op"``:

``describe``
    the subject itself: whether it can be called, its name, its parameters.
``call``
    call it on ``args`` (tensors are moved to ``device``; the names in ``positional``
    are passed by position, the rest by keyword), within ``time_limit`` seconds; with
    ``grad`` (argument names) and ``upstream``, also the gradient of
    ``(value * upstream).sum()`` with respect to those arguments; with ``count``, the
    torch operators and Python lines it ran; with ``extract`` = ``"linear"``, the
    weight and bias of the ``nn.Linear`` it returned instead of the value.
``time``
    the least CPU time of ``repeat`` calls on ``args``, and of torch's own ``reference``.
"""

from __future__ import annotations

import inspect
import os
import time
import traceback
from typing import Any, Callable

import torch

from .guard import Call, call_guarded
from .report import describe_value
from .spec import LAYOUTS


def is_module_class(subject: Any) -> bool:
    return inspect.isclass(subject) and issubclass(subject, torch.nn.Module)


def as_function(subject: Any) -> Callable:
    """A callable with a function's signature: an ``nn.Module`` class is built with the
    keyword arguments and called on the positional ones, as ``nn.BCELoss(**kw)(x, y)``."""
    if is_module_class(subject):
        def call(input, target, *options, **kwargs):  # options: the module's own, by position
            return subject(*options, **kwargs)(input, target)

        return call
    return subject


def _parameter(p: inspect.Parameter) -> dict:
    item: dict = {"name": p.name, "kind": int(p.kind)}
    if p.default is not inspect.Parameter.empty:
        default = p.default
        item["default"] = default if default is None or isinstance(default, (bool, int, float, str)) \
            else {"repr": repr(default)[:200]}
    return item


def describe(subject: Any) -> dict:
    """What the subject is, for the judge: callable, an ``nn.Module`` class, its name and
    its parameters (None when Python cannot tell them)."""
    module = is_module_class(subject)
    try:
        parameters = [_parameter(p) for p in inspect.signature(subject).parameters.values()]
    except (TypeError, ValueError):
        parameters = None
    return {"callable": callable(subject), "module": module, "name": str(getattr(subject, "__name__", ""))[:100],
            "shown": describe_value(subject), "parameters": parameters}


def _placed(args: dict, device: str, grad: list[str], layout: dict) -> dict:
    out = {}
    for key, value in args.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if key in grad:
                value.requires_grad_(True)
            if key in layout:
                value = LAYOUTS[layout[key]](value)
        out[key] = value
    return out


#: An integer type of each floating type's size: tensors compared bit for bit through it.
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` holds what ``b`` (its copy from before the call) holds, bit for bit: a
    NaN the same NaN, a zero of the same sign (one comparison, where comparing values with
    NaN in them takes six operations and four copies)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    bits = _BITS.get(a.dtype)
    if bits is None:
        return bool(torch.equal(a.detach(), b.detach()))
    return bool(torch.equal(a.detach().view(bits), b.detach().view(bits)))


def exception_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def student_frames(exc: BaseException) -> str:
    """The part of a traceback that is in the student's code (not the grader's or torch's)."""
    grader_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith((grader_dir, torch_dir))]
    lines = [f"line {f.lineno}" + (f" in {f.name}" if f.name != "<module>" else "")
             + (f": {f.line}" if f.line else "") for f in frames[-3:]]
    return "\n".join(lines)


def error_data(error: BaseException | None) -> dict | None:
    if error is None:
        return None
    return {"types": [c.__name__ for c in type(error).__mro__], "text": exception_text(error)[:2000],
            "message": str(error)[:2000], "frames": student_frames(error)[:2000],
            "in place": isinstance(error, RuntimeError) and "in-place operation" in str(error)}


def _call_data(call: Call) -> dict:
    return {"timed_out": call.timed_out, "error": error_data(call.error), "seconds": call.seconds,
            "ops": call.op_count, "lines": call.line_count, "forbidden": list(call.forbidden_ops)[:20],
            "stdout": call.stdout[-4000:], "stderr": call.stderr[-4000:], "warnings": call.warnings[:20]}


def _linear(value: Any) -> dict:
    """The weight and bias of the single ``nn.Linear`` a module is (or is made of)."""
    linear = value if isinstance(value, torch.nn.Linear) else None
    if linear is None and isinstance(value, torch.nn.Module):
        linears = [m for m in value.modules() if isinstance(m, torch.nn.Linear)]
        if len(linears) == 1 and len(list(value.parameters())) == len(list(linears[0].parameters())):
            linear = linears[0]
    if linear is None:
        return {"not linear": describe_value(value)}
    return {"weight": linear.weight.detach().to("cpu"),
            "bias": None if linear.bias is None else linear.bias.detach().to("cpu")}


def _gradients(value: torch.Tensor, upstream: torch.Tensor, inputs: list[torch.Tensor], time_limit: float,
               second: bool = False) -> dict:
    """The gradients of ``(value * upstream).sum()``; with ``second``, also the gradient of
    ``sum((g * upstream).sum())`` over those gradients g (second derivatives)."""
    if not value.requires_grad:
        return {"no graph": True}
    upstream = upstream.to(value.device)
    got = call_guarded(lambda: torch.autograd.grad((value * upstream).sum(), inputs, allow_unused=True,
                                                   create_graph=second),
                       time_limit=time_limit, record_ops=False)
    if not got.ok:
        return {"problem": "ran out of time" if got.timed_out else f"raised {exception_text(got.error)}"}
    data: dict = {"values": [None if g is None else g.detach().to("cpu") for g in got.value]}
    if second:
        first = [g for g in got.value if g is not None and g.requires_grad]
        again = call_guarded(lambda: torch.autograd.grad(sum((g * upstream).sum() for g in first), inputs,
                                                         allow_unused=True) if first else [None for _ in inputs],
                             time_limit=time_limit, record_ops=False)
        if not again.ok:
            data["second problem"] = "ran out of time" if again.timed_out else f"raised {exception_text(again.error)}"
        else:
            data["second"] = [None if g is None else g.detach().to("cpu") for g in again.value]
    return data


def _call(subject: Any, request: dict) -> dict:
    fn = as_function(subject)
    grad = [k for k in request.get("grad") or [] if k in request["args"]]
    args = _placed(request["args"], request.get("device", "cpu"), grad, dict(request.get("layout") or {}))
    positional = list(request.get("positional", ("input", "target")))
    pristine = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in request["args"].items()} \
        if request.get("without grad") else None
    before = {k: (v.detach().clone(), v._version) for k, v in args.items() if isinstance(v, torch.Tensor)}
    call = call_guarded(fn, tuple(args[k] for k in positional), {k: v for k, v in args.items() if k not in positional},
                        time_limit=float(request.get("time_limit", 5.0)), count_lines=bool(request.get("count")),
                        count_ops=bool(request.get("count")),
                        record_ops=request.get("record_ops", True))
    data = _call_data(call)
    data["changed"] = [k for k, (copy, version) in before.items()
                       if args[k]._version != version or not _same(args[k].detach(), copy)]
    if not call.ok:
        return data
    value = call.value
    if request.get("extract") == "linear":
        data["value"] = _linear(value)
    elif isinstance(value, torch.Tensor):
        data["value"] = value.detach().to("cpu")
        data["value device"] = str(value.device)
        data["requires grad"] = bool(value.requires_grad)
        if grad and request.get("upstream") is not None:
            data["gradients"] = _gradients(value, request["upstream"], [args[k] for k in grad],
                                           float(request.get("time_limit", 5.0)), bool(request.get("second")))
        if pristine is not None:
            data["without grad"] = _without_grad(fn, _placed(pristine, request.get("device", "cpu"), [],
                                                             dict(request.get("layout") or {})), positional, request, data)
    else:
        data["not a tensor"] = describe_value(value)
    return data


def _without_grad(fn: Callable, args: dict, positional: list, request: dict, data: dict) -> dict:
    """The same call again under ``torch.no_grad()``, on copies of the arguments that do not require
    grad (as in evaluation): torch's result is the same either way."""
    with torch.no_grad():
        call = call_guarded(fn, tuple(args[k] for k in positional), {k: v for k, v in args.items() if k not in positional},
                            time_limit=float(request.get("time_limit", 5.0)), record_ops=request.get("record_ops", True))
    data["forbidden"] = list(dict.fromkeys([*data["forbidden"], *call.forbidden_ops]))[:20]
    if not call.ok:
        return {"error": error_data(call.error) if call.error else {"text": "ran out of time"}}
    if not isinstance(call.value, torch.Tensor):
        return {"not a tensor": describe_value(call.value)}
    return {"value": call.value.detach().to("cpu")}


def _timed(fn: Callable) -> float:
    """The CPU time ``fn()`` takes on this thread: what other work on the machine, or other
    threads of this process, do not change."""
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def _torch_reference(function: str) -> Callable:
    from . import cases

    if function in cases.GRADIENTS:
        return cases.gradient_reference(getattr(torch.nn.functional, cases.base_loss(function)))
    if function not in cases.FUNCTIONS:
        raise ValueError(f"no torch function {function!r} to time")
    return getattr(torch.nn.functional, function)


def _time(subject: Any, request: dict) -> dict:
    """The student's best CPU time on the request's arguments, over up to ``repeat`` calls, and
    torch's best over seven. With ``fast`` (seconds), a call that takes no longer ends the
    timing: the judge calls nothing that fast slow, whatever torch takes, so torch is not
    timed either (``"torch seconds"`` is None)."""
    fn = as_function(subject)
    device = request.get("device", "cpu")
    args = tuple(a.to(device) for a in request["args"])
    reference = _torch_reference(str(request["reference"]))
    fast = request.get("fast")
    fast = float(fast) if isinstance(fast, (int, float)) and not isinstance(fast, bool) else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread each: contention for the cores skews parallel kernels most
    try:
        best = float("inf")
        for _ in range(int(request.get("repeat", 3))):
            call = call_guarded(fn, args, time_limit=float(request.get("time_limit", 5.0)), record_ops=False)
            if not call.ok:
                return {"problem": "ran out of time" if call.timed_out else f"raised {exception_text(call.error)}"}
            best = min(best, call.cpu_seconds)
            if fast is not None and best <= fast:
                return {"seconds": best, "torch seconds": None}
        torch_best = min(_timed(lambda: reference(*args)) for _ in range(7))
    finally:
        torch.set_num_threads(threads)
    return {"seconds": best, "torch seconds": torch_best}


def _buffers(subject: Any, request: dict) -> dict:
    if not is_module_class(subject):
        return {"refused": "not an nn.Module class"}
    built = call_guarded(lambda: dict(subject(**request["kwargs"]).named_buffers()),
                         time_limit=float(request.get("time_limit", 5.0)), record_ops=False)
    if not built.ok:
        return {"error": error_data(built.error) if built.error else {"text": "ran out of time"}}
    return {"buffers": {str(k)[:100]: v.detach().to("cpu") for k, v in list(built.value.items())[:20]
                        if isinstance(v, torch.Tensor)}}


def steps(subject: Any, request: dict, tensors: dict) -> list:
    """The steps of a ``sequence`` request, run on ``subject`` (the student's, or torch's for the
    judge) with ``tensors``, which they change in place: what each step gave, as plain data."""

    def resolve(spec: dict) -> dict:
        return {k: tensors[v["ref"]] if isinstance(v, dict) else v for k, v in spec.items()}

    module = subject(**resolve(request["build"])) if request.get("build") is not None else None
    results: list = []
    for step in request["steps"]:
        try:
            if "copy" in step:
                with torch.no_grad():
                    tensors[step["copy"]].copy_(tensors[step["from"]])
                results.append({})
            elif "set" in step:
                setattr(module, str(step["set"]), step["value"])
                results.append({})
            elif "state_dict" in step:
                results.append({"keys": [str(k)[:100] for k in list(module.state_dict())[:20]]})
            elif "load" in step:
                module.load_state_dict(resolve(step["load"]))
                results.append({})
            else:
                args = resolve(step["call"])
                fn = module if module is not None else subject
                input, target = args.pop("input"), args.pop("target")
                with torch.set_grad_enabled(not step.get("no_grad")):
                    value = fn(input, target, **args)
                results.append({"value": value.detach().to("cpu", copy=True)} if isinstance(value, torch.Tensor)
                               else {"not a tensor": describe_value(value)})
        except Exception as error:  # noqa: BLE001 - the code under test: written down, then the next step
            results.append({"error": error_data(error)})
    return results


def _sequence(subject: Any, request: dict) -> dict:
    """Several calls of one subject that share its arguments (and, for a module class, one module
    built once with ``build``), with the arguments changed in place, the module's ``reduction``
    set, or its ``state_dict`` read and loaded between them, all within ``time_limit``: what a
    function or module that keeps something from one call to the next gets wrong. Each step's
    result is written down (a value, the error it raised, or the state_dict's keys)."""
    tensors = {str(k): v for k, v in request["tensors"].items() if isinstance(v, torch.Tensor)}

    call = call_guarded(lambda: steps(subject, request, tensors), time_limit=float(request.get("time_limit", 5.0)))
    if not call.ok:
        return {"error": error_data(call.error) if call.error else {"text": "ran out of time"}}
    return {"results": call.value, "forbidden": list(call.forbidden_ops)[:20]}


def _value(subject: Any, request: dict) -> dict:
    """A number or a small tensor the student computed (a prediction), as plain data."""
    if isinstance(subject, torch.Tensor) and subject.numel() <= 10_000:
        return {"value": torch.Tensor(subject).detach().to("cpu").clone()}
    if isinstance(subject, (int, float)) and not isinstance(subject, bool):
        return {"value": float(subject)}
    return {"not a number": describe_value(subject)}


_OPS = {"describe": lambda subject, request: describe(subject), "call": _call, "time": _time,
        "buffers": _buffers, "value": _value, "sequence": _sequence}


def answer(subject: Any, request: dict) -> dict:
    """What ``subject`` (the student's function, or ``nn.Module`` class) did for ``request``:
    plain data, tensors on the CPU. Never raises for anything the student's code does."""
    op = request.get("op")
    if op not in _OPS:
        return {"refused": f"unknown request {op!r}"}
    if op not in ("describe", "value") and not callable(subject):
        return {"refused": "not callable"}
    try:
        return _OPS[op](subject, request)
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # a request this cannot follow
        return {"refused": f"a request the grader's observer cannot follow ({type(error).__name__}: {error})"}
