"""Checks of the battery that are not cases: whether the student's function works on whole
tensors (the vectorization probe), and whether a module keeps its weights as buffers.

Like every case, each asks the student's code only for outputs on inputs the judge chose,
and decides from counts and values the judge reads without trusting them.
"""

from __future__ import annotations

import math
import random
from typing import Callable

import torch

from . import cases as _cases
from . import salt
from .answers import Seen, _count
from .cases import HINTS
from .report import Failure
from .wire import Unreadable, text

Ask = Callable[[dict], dict]



# The vectorization probe: counts at two sizes, then a timing on a large tensor that
# only a loop far slower than torch fails. The sizes are drawn for each probe (a function
# that works element by element except at sizes it expects must not pass).
_SMALL_SIZES = range(3, 10)
_GROWTH = range(12, 21)
_TIMING_SIZES = range(1 << 16, (1 << 16) + 4096)
_draw = random.SystemRandom()
_MAX_SLOWDOWN = 50.0
_MIN_SLOW_SECONDS = 0.01


def _vector_failure(device: str, message: str) -> Failure:
    return Failure(category="vectorized", case="the same function on a few, some dozens and 65536 elements",
                   device=device, dtype="float32", message=message, hint=HINTS["vectorized"])


def _probe_args(function: str, n: int) -> dict:
    args = _cases.maker(function, (n,))(torch.Generator().manual_seed(n))
    return {"input": args["input"].float(), "target": args["target"].float()}


def vectorization(ask: Ask, function: str, device: str, time_limit: float) -> Failure | None:
    """Whether the student's function works on whole tensors. Decided by counts, which do
    not depend on how busy the machine is: the torch operators and the Python lines a call
    runs must not grow with the number of elements. A timing against torch backs them up
    for loops that neither count sees."""
    counts = []
    small = _draw.choice(_SMALL_SIZES)
    sizes = (small, small * _draw.choice(_GROWTH))
    for n in sizes:
        try:
            seen = Seen(ask({"op": "call", "device": device, "args": _probe_args(function, n),
                             "count": True, "time_limit": time_limit}))
            if not seen.ok:
                problem = "ran out of time" if seen.timed_out else f"raised {seen.error_text()}"
                failure = _vector_failure(device, f"could not check: on a tensor of {n} elements your function "
                                                  f"{problem}")
                failure.kind = "not implemented" if seen.raised(NotImplementedError) else ""
                return failure
            ops, lines = _count(seen.ops), _count(seen.lines)
        except Unreadable as error:
            return _vector_failure(device, f"the grader has no usable measurement of your function ({error})")
        counts.append((ops, lines))
    (small_ops, small_lines), (big_ops, big_lines) = counts
    n_small, n_big = sizes
    if big_ops > small_ops + 4:
        return _vector_failure(device, f"your function ran {small_ops} torch operations on {n_small} elements but "
                                       f"{big_ops} on {n_big}: it works element by element")
    if big_lines > small_lines + 8:
        return _vector_failure(device, f"your function ran {small_lines} lines of Python on {n_small} elements but "
                                       f"{big_lines} on {n_big}: it loops over the elements in Python")
    if device != "cpu":
        return None
    timing_size = _draw.choice(_TIMING_SIZES)
    args = _probe_args(function, timing_size)
    # (a function as fast as _MIN_SLOW_SECONDS passes whatever torch takes: its timing stops there)
    timed = ask({"op": "time", "device": device, "args": [args["input"], args["target"]], "repeat": 3,
                 "reference": function, "time_limit": time_limit, "fast": _MIN_SLOW_SECONDS})
    if not isinstance(timed, dict):
        return _vector_failure(device, "the grader has no usable timing of your function")
    if "problem" in timed:
        return _vector_failure(device, f"on a tensor of {timing_size} elements your function "
                                       f"{text(timed['problem'], 300)}")
    try:
        student_best = float(timed["seconds"])
        if not math.isfinite(student_best) or student_best < 0:
            raise ValueError(student_best)
        if student_best <= _MIN_SLOW_SECONDS:
            return None
        torch_best = float(timed["torch seconds"])
        if not math.isfinite(torch_best) or torch_best < 0:
            raise ValueError(torch_best)
    except (KeyError, TypeError, ValueError, OverflowError):
        return _vector_failure(device, "the grader has no usable timing of your function")
    ratio = student_best / max(torch_best, 1e-9)
    if ratio > _MAX_SLOWDOWN and student_best > _MIN_SLOW_SECONDS:
        return _vector_failure(
            device, f"on {timing_size} elements your function took {student_best * 1e3:.1f} ms, "
                    f"{ratio:.0f} times as long as torch ({torch_best * 1e3:.2f} ms): it works element by element")
    return None



# --- a module's buffers ------------------------------------------------------------------------

#: The constructor arguments torch's loss modules keep as buffers.
BUFFERS = {"weight": (4, 5), "pos_weight": (5,)}


def module_buffers(ask: Ask, function: str, needed: set[str]) -> Failure | None:
    """Whether a module class keeps the tensors it is built with as buffers, as torch's loss
    modules do (so that ``.to(device)`` and ``.double()`` move them, and ``state_dict`` holds
    them): the student's module is built with them and the judge reads its named buffers."""
    kept = [k for k in BUFFERS if k in needed and k in _cases.PARAMETERS[function]]
    if not kept:
        return None
    g = salt.generator(len(kept))
    given = {k: 0.5 + torch.rand(BUFFERS[k], generator=g) for k in kept}
    name = "the module keeps " + " and ".join(kept) + " as buffers (register_buffer)"

    def failure(message: str) -> Failure:
        return Failure(category="weight", case=name, device="cpu", dtype="float32", message=message,
                       hint=HINTS["buffer"])

    answer = ask({"op": "buffers", "kwargs": given})
    if not isinstance(answer, dict) or "refused" in answer:
        return failure("the grader could not build your module to look at its buffers")
    if answer.get("error") is not None:
        return failure(f"building your module raised {text((answer.get('error') or {}).get('text'), 300)}")
    buffers = answer.get("buffers")
    if not isinstance(buffers, dict):
        return failure("the grader has no usable list of your module's buffers")
    for key, tensor in given.items():
        found = buffers.get(key)
        if not isinstance(found, torch.Tensor):
            listed = ", ".join(map(str, buffers)) or "it has none"
            return failure(f"{key} is not among your module's buffers ({listed}): after super().__init__(), "
                           f"use self.register_buffer({key!r}, {key})")
        if found.shape != tensor.shape or not torch.equal(found.to(tensor.dtype), tensor):
            return failure(f"the buffer {key!r} does not hold the {key} your module was built with")
    return None
