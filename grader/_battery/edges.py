"""The cases of the battery at the edges: extreme values, the errors torch raises, the
gradients, and the cases of the hand-derived gradient functions."""

from __future__ import annotations

import re
from typing import Callable, Iterable

import torch

from .. import articles
from .hints import HINTS
from .spec import (BCE, BCE_WITH_LOGITS, GRAD_BCE_WITH_LOGITS, Case, base_loss, fixed, logits, maker,
                   probabilities, soft_targets, takes_logits)


inf, nan = float("inf"), float("nan")


def edge_cases(function) -> list[Case]:
    if function == BCE:
        return [
            Case("probabilities exactly 0 and 1, reduction='none'", "edge values",
                 fixed([0, 1, 0, 1, 0, 1], [0, 1, 1, 0, 0.5, 0.5], reduction="none"),
                 grad_input=False, hint=HINTS["clamp"]),
            Case("probabilities exactly 0 and 1, averaged", "edge values",
                 fixed([0, 1, 0, 1, 0.3], [0, 1, 1, 0, 0.6]),
                 grad_input=False, hint=HINTS["clamp"]),
            Case("tiny probabilities (1e-30, 1e-20, 1e-10) and 1 - 6e-8, reduction='none'", "edge values",
                 fixed([1e-30, 1e-20, 1e-10, 1 - 6e-8], [1, 1, 0.5, 0], reduction="none"),
                 grad_input=False, hint=HINTS["epsilon"]),
            Case("tiny probabilities (1e-30, 1e-20, 1e-10) and 1 - 6e-8, averaged", "edge values",
                 fixed([1e-30, 1e-20, 1e-10, 1 - 6e-8], [1, 1, 0.5, 0]),
                 grad_input=False, hint=HINTS["epsilon"]),
            Case("probabilities below e^-100 (1e-45, 1e-44), whose logs torch clamps, averaged", "edge values",
                 fixed([1e-45, 1e-44, 0.5], [1.0, 1.0, 1.0]), grad_input=False, hint=HINTS["clamp"]),
            Case("subnormal probabilities (1e-40, 1e-39), whose logs torch does not clamp, reduction='none'",
                 "edge values", fixed([1e-40, 1e-39, 0.5], [1.0, 1.0, 1.0], reduction="none"),
                 grad_input=False, hint=HINTS["clamp"]),
            Case("float64 probabilities of 1e-40 and 1e-300, reduction='none'", "edge values",
                 fixed([1e-40, 1e-300, 0.5], [1.0, 1.0, 0.0], reduction="none"), dtype=torch.float64,
                 grad_input=False, hint=HINTS["clamp"]),
            Case("probabilities near 0 and 1 (5e-5, 1e-4, 0.9999, 0.99995), reduction='none'", "edge values",
                 fixed([5e-5, 1e-4, 0.9999, 0.99995], [1.0, 0.0, 0.0, 1.0], reduction="none")),
            Case("hard 0/1 targets", "edge values", maker(function, (4, 5), hard=True), grad_target=True),
            Case("soft targets", "edge values",
                 fixed([0.2, 0.5, 0.7, 0.9], [0.1, 0.5, 0.95, 0.25], reduction="none"),
                 grad_target=True),
        ]
    return [
        Case("logits of +-20 (beyond float32's sigmoid), reduction='none'", "edge values",
             fixed([20, -20, 20, -20], [0, 1, 1, 0], reduction="none"), hint=HINTS["stable"]),
        Case("logits of +-100, reduction='none'", "edge values",
             fixed([100, -100, 100, -100], [0, 1, 1, 0], reduction="none"), hint=HINTS["stable"]),
        Case("logits of +-1e4, reduction='none'", "edge values",
             fixed([1e4, -1e4, 1e4, -1e4], [0, 1, 1, 0], reduction="none"), hint=HINTS["stable"]),
        Case("logits of +-1e4, averaged", "edge values",
             fixed([1e4, -1e4, 3.0, -2.0], [0, 1, 1, 0.5]), hint=HINTS["stable"]),
        Case("logits of +-inf, reduction='none'", "edge values",
             fixed([inf, -inf, inf, -inf, 1.0], [0, 1, 1, 0, 0.5], reduction="none"), grad_input=False,
             hint=HINTS["stable"]),
        Case("logits of exactly 0 (where a zero-initialised model starts), reduction='none'", "edge values",
             fixed([0.0, 0.0, 0.0, -0.0], [0.0, 1.0, 0.5, 0.25], reduction="none"),
             grad_target=True, hint=HINTS["kink"]),
        Case("logits of exactly 0 with pos_weight, reduction='none'", "edge values",
             fixed([0.0, 0.0, 0.0, -0.0], [0.0, 1.0, 0.5, 0.25], pos_weight=[3.0], reduction="none"),
             grad_target=True, hint=HINTS["kink"]),
        Case("a weight of 0 on a logit that is nan or inf, reduction='none'", "edge values",
             fixed([nan, 2.0, inf, -1.0], [0.0, 1.0, 0.0, 1.0], weight=[0.0, 1.0, 0.0, 1.0], reduction="none"),
             grad_input=False, hint=HINTS["zero weight"]),
        Case("targets outside [0, 1] (torch does not check them)", "edge values",
             fixed([0.5, -1.0, 2.0, 0.25, -3.0], [-0.5, 1.5, 2.0, 0.3, -1.0], reduction="none"),
             grad_target=True, hint=HINTS["logit targets"]),
        Case("hard 0/1 targets", "edge values", maker(function, (4, 5), hard=True), grad_target=True),
        Case("soft targets", "edge values",
             fixed([-2.0, 0.5, 1.5, 4.0], [0.1, 0.5, 0.95, 0.25], reduction="none"),
             grad_target=True),
    ]


def gradient_checks(function) -> list[Case]:
    cases = [
        Case("gradient with respect to input and target" + (f", reduction={r!r}" if r else ""), "gradients",
             maker(function, (4, 5), reduction=r), grad_target=True, hint=HINTS["gradients"])
        for r in (None, "sum", "none")
    ]
    cases.append(Case("gradient of a 3-d batch", "gradients", maker(function, (2, 3, 4)),
                      grad_target=True, hint=HINTS["gradients"]))
    cases.append(Case("gradient with respect to input and target, with a weight", "gradients",
                      maker(function, (3, 4), weight=(4,)), grad_target=True, hint=HINTS["gradients"]))
    cases.append(Case("second derivatives: the gradient of the gradient (what a Hessian takes)", "gradients",
                      maker(function, (4, 5)), dtype=torch.float64, second_order=True,
                      hint=HINTS["second order"]))
    if function == BCE_WITH_LOGITS:
        cases.append(Case("gradient with respect to input and target, with pos_weight", "gradients",
                          maker(function, (3, 4), pos_weight=(4,)), grad_target=True, hint=HINTS["gradients"]))
    return cases


def _error(name, build, hint, **options) -> Case:
    return Case(name, "errors", build, grad_input=False, expect_error=True, hint=hint, **options)


def error_cases(function) -> list[Case]:
    cases = []
    if function == BCE:
        for name, inp, tgt, hint in [
            ("an input above 1", [0.2, 1.5, 0.5], [0.0, 1.0, 0.5], HINTS["range"]),
            ("an input below 0", [0.2, -0.1, 0.5], [0.0, 1.0, 0.5], HINTS["range"]),
            ("an input that is nan", [0.2, float("nan"), 0.5], [0.0, 1.0, 0.5], HINTS["range"]),
            ("a target above 1", [0.2, 0.7, 0.5], [0.0, 1.5, 0.5], HINTS["target range"]),
            ("a target below 0", [0.2, 0.7, 0.5], [0.0, -0.5, 0.5], HINTS["target range"]),
            ("a target that is nan", [0.2, 0.7, 0.5], [0.0, float("nan"), 0.5], HINTS["target range"]),
            ("an input just above 1 (the float32 after 1)", [0.2, 1 + 2 ** -23, 0.5], [0.0, 1.0, 0.5],
             HINTS["range"]),
            ("an input just below 0 (-1e-7)", [0.2, -1e-7, 0.5], [0.0, 1.0, 0.5], HINTS["range"]),
            ("a target just above 1 (the float32 after 1)", [0.2, 0.7, 0.5], [0.0, 1 + 2 ** -23, 0.5],
             HINTS["target range"]),
            ("a target just below 0 (-1e-7)", [0.2, 0.7, 0.5], [0.0, -1e-7, 0.5], HINTS["target range"]),
        ]:
            # torch checks the range on the device, where a failure is a device-side assert.
            cases.append(_error(name, fixed(inp, tgt), hint, cpu_only=True))
    inputs = logits if takes_logits(function) else probabilities

    def mismatched(in_shape, target_shape):
        return lambda g: {"input": inputs(g, in_shape), "target": soft_targets(g, target_shape)}

    for in_shape, target_shape in [((3,), (4,)), ((3, 1), (3,)), ((3, 4), (4,)), ((3, 4), (1, 4))]:
        broadcasts = " (the two would broadcast)" if target_shape in ((3,), (1, 4)) else ""
        cases.append(_error(f"a target of shape {target_shape} for an input of shape {in_shape}{broadcasts}",
                            mismatched(in_shape, target_shape), HINTS["size"]))
    for reduction in ("avg", "MEAN", "Mean", "", "sum ", None):
        def build(g, reduction=reduction):  # maker leaves reduction=None out; here it is passed
            return {**maker(function, (3,))(g), "reduction": reduction}

        cases.append(_error(f"reduction={reduction!r}", build,
                            HINTS["unknown reduction"] if reduction in ("avg", "") else HINTS["reduction names"]))
    cases.append(_error("a weight of shape (3,) for an input of shape (3, 4)", maker(function, (3, 4), weight=(3,)),
                        "a weight must broadcast to the input's shape; torch raises RuntimeError otherwise."))
    for shape in ((2, 3, 4), (1, 3, 4)):
        cases.append(_error(f"a weight of shape {shape} for an input of shape (3, 4) (it broadcasts into a "
                            "larger shape)", maker(function, (3, 4), weight=shape), HINTS["larger"]))
    cases.append(_error("a weight of shape (2, 4) for an input of shape (1, 4) (it broadcasts into a larger "
                        "shape of as many dimensions)", maker(function, (1, 4), weight=(2, 4)), HINTS["larger"]))
    if function == BCE_WITH_LOGITS:
        cases.append(_error("a pos_weight of shape (3,) for an input of shape (3, 4)",
                            maker(function, (3, 4), pos_weight=(3,)),
                            "pos_weight broadcasts against the last dimension; torch raises RuntimeError "
                            "when it cannot."))
        cases.append(_error("a pos_weight of shape (2, 3, 4) for an input of shape (3, 4) (it broadcasts into "
                            "a larger shape)", maker(function, (3, 4), pos_weight=(2, 3, 4)), HINTS["larger"]))
        cases.append(_error("a pos_weight of shape (2, 1) for an input of shape (1, 4) (it broadcasts into a "
                            "larger shape of as many dimensions)", maker(function, (1, 4), pos_weight=(2, 1)),
                            HINTS["larger"]))
    return cases


def gradient_reference(reference: Callable) -> Callable:
    """The gradient of ``reference(input, target)`` with respect to the input, by autograd."""

    def gradient(input, target, **kwargs):
        x = input.detach().requires_grad_(True)
        return torch.autograd.grad(reference(input=x, target=target.detach(), **kwargs), x)[0]

    return gradient


_REDUCTION_IN_NAME = re.compile(r",? reduction='\w+'")
#: The categories of a loss whose inputs a hand-derived gradient is checked on.
_GRADIENT_CATEGORIES = ("article examples", "shapes", "layouts", "edge values", "dtypes")


def gradient_cases(function: str, loss_cases: Iterable[Case]) -> list[Case]:
    """The hand-derived gradient of the mean loss: the inputs of the loss's cases
    that take no weight (their reduction dropped), compared with autograd through
    torch; for the logits, also the logits behind the sigmoid of article 002."""
    loss = base_loss(function)
    torch_loss = getattr(torch.nn.functional, loss)
    hint = ("the gradient of the mean loss with respect to each input element; compare your formula "
            "with autograd's input.grad.")
    edge_hint = ("torch's backward divides by max(p(1 - p), 1e-12), so that the gradient stays finite at "
                 "p = 0 and 1: floor the denominator the same way.")
    cases: dict[str, Case] = {}
    if function == GRAD_BCE_WITH_LOGITS:
        for key in ("002-1", "002-2"):
            ex = articles.example(key)
            name = f"article {key}: the logits of {ex.title}"
            cases[name] = Case(name, "article examples", lambda g, key=key: articles.logits_of(key),
                               grad_input=False, hint=hint, reference=gradient_reference(torch_loss))
    for case in loss_cases:
        if case.category not in _GRADIENT_CATEGORIES or case.keywords - {"reduction"} or case.dtypes or case.loss_only:
            continue

        def build(g, case=case):
            args = case.build(g)
            args.pop("reduction", None)
            return args

        name = _REDUCTION_IN_NAME.sub("", case.name).replace(", averaged", "")
        cases.setdefault(name, Case(
            name=name, category=case.category, build=build, dtype=case.dtype, grad_input=False,
            large=case.large, layout=case.layout,
            hint=edge_hint if case.category == "edge values" and loss == BCE else hint,
            reference=gradient_reference(case.reference or torch_loss)))
    return list(cases.values())
