"""torch's side of a check: its answer for every case of the battery, on each device.

The judge (:mod:`.judge`) compares a student's outputs with a :class:`Reference`: the case's
arguments, torch's result or exception, and torch's gradients. Every input is seeded by its
case (and the course's secret when autograding, :mod:`.salt`), so a reference is computed
once per process and kept; the autograder computes them all (:func:`prepare`) in the process
its workers fork from.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from . import cases as _cases
from . import recompute, salt, stateful
from .cases import BCE, CHECKABLE, GRADIENTS, LAYOUTS, Case

#: Every device the battery knows; those absent are reported as skipped.
KNOWN_DEVICES = ("cpu", "cuda", "mps")


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
    second: tuple | None = None  # for a case of second derivatives, the gradient of (gradients * upstream).sum()
    exact: tuple = (None, None)  # the same result and gradients computed in float64 (recompute.exact)
    inputs: dict | None = None  # the arguments in words, for a failure's report (written on first use)
    #: torch's result and gradients in words, for a failure's report (written on first use), by what they are
    described: dict = field(default_factory=dict)
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
                                                  [ref_args[k] for k in wrt], allow_unused=True,
                                                  create_graph=case.second_order)
        if case.second_order:
            reference.gradients, reference.second = stateful.second_order(reference.gradients, reference.upstream,
                                                                          [ref_args[k] for k in wrt])
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
