"""The student's function and torch's over a range of inputs, for the report's figure.

:func:`gather` runs on the judge's side, like the battery: it chooses the points, computes
torch's values itself, and asks the student's code (through ``ask``, see
:mod:`grader._battery.observe`) only for its outputs at those points. What comes back is read
with :class:`grader._battery.answers.Seen`; an answer that is malformed, an error, a call that
ran out of time, a result that is not a tensor, has the wrong shape or is nan gives no number
(None) at the points it was for. Nothing the student's code does makes :func:`gather` raise.

What is swept, for the targets y = 0 and y = 1:

* ``binary_cross_entropy``: the loss against the probability p, on a grid of [0, 1] that holds
  0 and 1 exactly (where torch clamps each log at -100);
* ``binary_cross_entropy_with_logits``: the loss against the logit z, on a grid of [-30, 30]
  that holds 0 exactly (beyond about |z| = 17, sigmoid rounds to 0 or 1 in float32);
* the ``_grad`` functions: the gradient against p (on [0.01, 0.99], where the battery checks
  it) or z. They return the gradient of the mean loss over their n elements, so every value,
  torch's and the student's, is multiplied by n: the gradient of one element's loss.

A function that takes ``reduction`` (or an ``nn.Module`` class) is called once per target,
with ``reduction='none'``; one that does not, or whose answer to that call has no numbers, once
per point on one-element tensors, whose mean is the element itself. A gradient is called once
per target. All in float32.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F

from .answers import Seen
from .cases import GRADIENTS, TOLERANCES, base_loss, gradient_reference, takes_logits
from .report import Sweep
from .wire import Unreadable

#: Points per curve when the student's function is called once per curve.
FINE_POINTS = 201
#: Points per curve when it is called once per point: the number of calls is twice this.
COARSE_POINTS = 51
#: The logits swept, [-Z_MAX, Z_MAX].
Z_MAX = 30.0
#: The probabilities swept for the gradient of BCE, [P_EDGE, 1 - P_EDGE].
P_EDGE = 0.01
#: The target values, one curve each.
TARGETS = (0.0, 1.0)

DTYPE = torch.float32


def grid(function: str, points: int) -> torch.Tensor:
    """The points swept for ``function``, in float64: built from whole numbers, so that the
    ends (0 and 1, or -30 and 30) and, for logits, 0 itself are exact."""
    if takes_logits(function):
        half = (points - 1) // 2
        return (torch.arange(-half, half + 1, dtype=torch.float64) / half) * Z_MAX
    unit = torch.arange(points, dtype=torch.float64) / (points - 1)
    if function in GRADIENTS:
        return P_EDGE + (1 - 2 * P_EDGE) * unit
    return unit


def torch_values(function: str, x: torch.Tensor, target: float, device: str = "cpu") -> list[float]:
    """torch's value at every point of ``x`` for ``target``, in float32 on ``device``: the loss
    with ``reduction='none'``, or the gradient of the mean loss times the number of points."""
    input = x.to(device, DTYPE)
    y = torch.full_like(input, target)
    loss = getattr(F, base_loss(function))
    if function in GRADIENTS:
        raw = gradient_reference(loss)(input, y)
        return (raw.to("cpu", torch.float64) * x.numel()).tolist()
    return loss(input, y, reduction="none").to("cpu", torch.float64).tolist()


def takes_reduction(described: dict) -> bool:
    """Whether the subject is an ``nn.Module`` class, or has a parameter named ``reduction`` or
    a ``**kwargs`` (one that ignores it is then called again, point by point)."""
    if described.get("module"):
        return True
    parameters = described.get("parameters")
    return isinstance(parameters, list) and any(
        isinstance(p, dict) and (p.get("name") == "reduction" or p.get("kind") == 4) for p in parameters)


def numbers(answer, count: int) -> list[float | None] | None:
    """The ``count`` values of an answer to a ``call`` request, in float64, None for nan; None
    when the answer holds no such values (unreadable, an error, a timeout, not a tensor, a
    complex tensor, the wrong number of elements, or a shape other than ``(count,)``)."""
    try:
        seen = Seen(answer)
    except Unreadable:
        return None
    value = seen.value
    if not seen.ok or not isinstance(value, torch.Tensor) or value.is_complex():
        return None
    try:
        if value.numel() != count or (count > 1 and tuple(value.shape) != (count,)):
            return None
        flat = value.detach().to("cpu", torch.float64).reshape(-1).tolist()
    except (RuntimeError, TypeError, ValueError):
        return None
    return [None if not isinstance(v, float) or math.isnan(v) else v for v in flat]


class _Asker:
    """Asks the student's code within one budget: after a call that ran out of time, or once
    ``budget`` seconds have passed, it asks nothing more (every later point has no number)."""

    def __init__(self, ask: Callable[[dict], dict], device: str, time_limit: float):
        self.ask, self.device, self.time_limit = ask, device, time_limit
        self.deadline = time.monotonic() + time_limit
        self.stopped = False
        self.calls = 0

    def values(self, args: dict, count: int) -> list[float | None] | None:
        if self.stopped or time.monotonic() > self.deadline:
            self.stopped = True
            return None
        self.calls += 1
        answer = self.ask({"op": "call", "device": self.device, "args": args,
                           "time_limit": self.time_limit, "record_ops": False})
        if isinstance(answer, dict) and answer.get("timed_out") is True:
            self.stopped = True
        return numbers(answer, count)


def _tensors(x: torch.Tensor, target: float) -> tuple[torch.Tensor, torch.Tensor]:
    input = x.to(DTYPE)
    return input, torch.full_like(input, target)


def _whole(asker: _Asker, x: torch.Tensor, extra: dict) -> list[list[float | None] | None]:
    """One call per target on every point: the student's values, or None for a curve without."""
    curves = []
    for target in TARGETS:
        input, y = _tensors(x, target)
        curves.append(asker.values({"input": input, "target": y, **extra}, x.numel()))
    return curves


def _per_point(asker: _Asker, x: torch.Tensor) -> list[list[float | None]]:
    """One call per point on one-element tensors, whose mean is the point's loss."""
    curves = []
    for target in TARGETS:
        input, y = _tensors(x, target)
        curve = []
        for i in range(x.numel()):
            got = asker.values({"input": input[i:i + 1].clone(), "target": y[i:i + 1].clone()}, 1)
            curve.append(got[0] if got else None)
        curves.append(curve)
    return curves


def _titles(function: str, points: int) -> tuple[str, str, str]:
    variable = "the logit z" if takes_logits(function) else "the probability p"
    x_label = "logit z (the input)" if takes_logits(function) else "probability p (the input)"
    if function in GRADIENTS:
        symbol = "z" if takes_logits(function) else "p"
        return (f"The gradient of one element's loss against {variable}: torch's and yours, each "
                f"multiplied by the number of elements ({points}), since the function returns the "
                "gradient of their mean",
                x_label, f"d loss / d {symbol}")
    return f"The loss of one element against {variable}: torch's and yours", x_label, "loss"


def gather(ask: Callable[[dict], dict], function: str, described: dict, device: str,
           time_limit: float) -> Sweep | None:
    """The student's function (reached through ``ask``) and torch's ``function`` at the same
    points, on ``device`` in float32, with the battery's float32 tolerance; None for a function
    the sweep does not cover. ``described`` is the observer's description of the subject; every
    call may take up to ``time_limit`` seconds, and all of them together as long."""
    if function not in (*GRADIENTS, "binary_cross_entropy", "binary_cross_entropy_with_logits"):
        return None
    rtol, atol = TOLERANCES[DTYPE]
    asker = _Asker(ask, device, time_limit)
    if function in GRADIENTS:
        x = grid(function, FINE_POINTS)
        curves = _whole(asker, x, {})
        # |n yours - n torch| <= n atol + rtol |n torch| is the battery's test on the raw values
        curves = [None if c is None else [None if v is None else v * x.numel() for v in c] for c in curves]
        atol *= x.numel()
    else:
        curves = [None]
        if takes_reduction(described):
            x = grid(function, FINE_POINTS)
            curves = _whole(asker, x, {"reduction": "none"})
        if any(c is None for c in curves) and not asker.stopped:
            x = grid(function, COARSE_POINTS)
            curves = _per_point(asker, x)
    series = []
    for target, curve in zip(TARGETS, curves):
        series.append({"label": f"y = {target:g}", "torch": torch_values(function, x, target, device),
                       "yours": curve if curve is not None else [None] * x.numel()})
    title, x_label, y_label = _titles(function, x.numel())
    return Sweep(title=title, x_label=x_label, y_label=y_label, x=x.tolist(), series=series,
                 rtol=rtol, atol=atol)


def differs(sweep: Sweep) -> list[list[bool]]:
    """For each series, at each point: whether the student's value is missing (None) or further
    from torch's than the tolerance, ``|yours - torch| > atol + rtol * |torch|``."""
    out = []
    for series in sweep.series:
        flags = []
        for expected, got in zip(series["torch"], series["yours"]):
            if got is None:
                flags.append(True)
            elif got == expected:  # equal infinities included
                flags.append(False)
            else:
                flags.append(not abs(got - expected) <= sweep.atol + sweep.rtol * abs(expected))
        out.append(flags)
    return out
