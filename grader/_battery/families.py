"""The cases of the battery on ordinary inputs: the articles' examples, shapes, layouts,
reductions, weights, pos_weight and dtypes."""

from __future__ import annotations

import itertools
import random

import torch

from .. import articles
from .hints import HINTS
from .spec import (BCE, BCE_WITH_LOGITS, LARGE_SHAPE, Case, logits, maker, positive, probabilities,
                   shape_text, soft_targets, takes_logits)


def article_cases(function) -> list[Case]:
    cases = []
    for ex in articles.EXAMPLES:
        if ex.function != function:
            continue

        def build(g, ex=ex):
            return ex.build()

        def reference(ex=ex, **args):
            criterion = ex.criterion(args)
            return criterion(args["input"], args["target"])

        cases.append(Case(
            name=f"article {ex.key}: {ex.title}",
            category="article examples",
            build=build,
            grad_target=True,
            reference=reference,
            reference_name="the article's own call",
        ))
    return cases


def shape_cases(function) -> list[Case]:
    shapes = [(), (1,), (5,), (5, 5), (5, 5, 5), (0,), (2, 0, 3)]
    cases = [
        Case(f"shape {shape_text(s)}", "shapes", maker(function, s),
             hint=HINTS["empty"] if 0 in s else "")
        for s in shapes
    ]
    cases.append(Case(f"a large tensor of shape {shape_text(LARGE_SHAPE)}", "shapes",
                      maker(function, LARGE_SHAPE), grad_input=False, large=True))
    cases.append(Case("a mean over more than 2^19 elements (their number drawn for each run)",
                      "shapes", _rising_losses(function), grad_input=False, large=True, loss_only=True,
                      hint=HINTS["large means"]))
    return cases


_draw = random.SystemRandom()


def _beyond() -> int:
    """A number of elements drawn for each run between 2^19 and 1.5 * 2^19, never a multiple of 1024: a mean
    that goes wrong above some size, or on whole pieces of some size, cannot count on the battery's sizes."""
    return (1 << 19) + 1024 * _draw.randrange(0, 256) + _draw.randrange(1, 1024)


def _rising_losses(function):
    """:data:`BEYOND` [0] losses that rise along the tensor (predictions of targets near 0, from about 0.02 to
    0.98, or logits from -4 to 4): the means of pieces of it differ, and an average of them is not the mean."""

    def build(g):
        n = BEYOND[0]
        rise = 0.9 * torch.arange(n, dtype=torch.float64) / n + 0.1 * torch.rand(n, generator=g, dtype=torch.float64)
        input = 8 * rise - 4 if takes_logits(function) else 0.02 + 0.96 * rise
        return {"input": input, "target": 0.2 * torch.rand(n, generator=g, dtype=torch.float64)}

    return build


#: The sizes of the two cases beyond the large tensor, drawn when the battery is loaded: float32, float16.
BEYOND = (_beyond(), _beyond())


def _laid_out(function, shapes: dict, **extra):
    """A ``build`` for arguments of the given (base) shapes: random inputs, soft targets,
    positive weights."""

    def build(g):
        args = {}
        for key, shape in shapes.items():
            if key == "input":
                args[key] = (logits if takes_logits(function) else probabilities)(g, shape)
            elif key == "target":
                args[key] = soft_targets(g, shape)
            else:
                args[key] = positive(g, shape, 0.2, 2.0)
        args.update(extra)
        return args

    return build


def layout_cases(function) -> list[Case]:
    """Arguments that are views with other strides than a fresh tensor's."""
    hint = HINTS["layouts"]
    cases = [
        Case("a transposed input and target of shape (4, 5)", "layouts",
             _laid_out(function, {"input": (5, 4), "target": (5, 4)}),
             layout=(("input", "transposed"), ("target", "transposed")), grad_target=True, hint=hint),
        Case("a sliced input (every other column) of shape (4, 5)", "layouts",
             _laid_out(function, {"input": (4, 11), "target": (4, 5)}), layout=(("input", "sliced"),), hint=hint),
        Case("an expanded target (one row repeated) of shape (4, 5)", "layouts",
             _laid_out(function, {"input": (4, 5), "target": (1, 5)}), layout=(("target", "expanded"),),
             hint=hint),
        Case("a transposed input and target, reduction='none'", "layouts",
             _laid_out(function, {"input": (5, 4), "target": (5, 4)}, reduction="none"),
             layout=(("input", "transposed"), ("target", "transposed")), hint=hint),
        Case("a transposed weight of shape (4, 5), reduction='sum'", "layouts",
             _laid_out(function, {"input": (4, 5), "target": (4, 5), "weight": (5, 4)}, reduction="sum"),
             layout=(("weight", "transposed"),), hint=hint),
    ]
    if function == BCE_WITH_LOGITS:
        cases.append(Case("a channels-last image batch (2, 3, 4, 4) with pos_weight (3, 1, 1)", "layouts",
                          _laid_out(function, {"input": (2, 3, 4, 4), "target": (2, 3, 4, 4), "pos_weight": (3, 1, 1)},
                                    reduction="none"),
                          layout=(("input", "channels last"), ("target", "channels last")), hint=hint))
    return cases


def reduction_cases(function) -> list[Case]:
    cases = []
    for shape, reduction in itertools.product([(5,), (4, 5), (2, 3, 4)], ("mean", "sum", "none")):
        cases.append(Case(f"reduction={reduction!r} on shape {shape_text(shape)}", "reductions",
                          maker(function, shape, reduction=reduction), hint=HINTS["reduction"]))
    for shape, reduction in [((), "none"), ((), "sum"), ((0,), "sum"), ((0,), "none"), ((2, 0), "mean")]:
        cases.append(Case(f"reduction={reduction!r} on shape {shape_text(shape)}", "reductions",
                          maker(function, shape, reduction=reduction),
                          hint=HINTS["empty"] if 0 in shape else HINTS["reduction"]))
    # torch's deprecated arguments, for a signature that has them (see spec.LEGACY)
    for legacy in ({"size_average": False}, {"reduce": False}, {"size_average": True, "reduce": True},
                   {"size_average": False, "reduce": False}, {"reduce": True},
                   {"size_average": False, "reduction": "none"}, {"reduce": False, "reduction": "sum"}):
        text = ", ".join(f"{k}={v!r}" if k == "reduction" else f"{k}={v}" for k, v in legacy.items())
        if "reduction" in legacy:  # a legacy argument given decides, whatever reduction says
            text += " (the legacy argument wins)"
        cases.append(Case(f"the legacy {text}", "reductions", maker(function, (4, 5), **legacy),
                          hint=HINTS["legacy"]))
    cases.append(Case("the legacy reduction='elementwise_mean'", "reductions",
                      maker(function, (4, 5), reduction="elementwise_mean", size_average=None),
                      hint=HINTS["legacy"]))
    return cases


def weight_cases(function) -> list[Case]:
    pairs = [((4, 5), w) for w in [(), (1,), (5,), (1, 5), (4, 1), (4, 5)]]
    pairs += [((3, 4, 5), w) for w in [(5,), (4, 5), (3, 1, 1), (1, 4, 1), (3, 4, 5)]]
    reductions = itertools.cycle(("mean", "sum", "none"))
    cases = [
        Case(f"weight of shape {shape_text(w)} for input {shape_text(s)}, reduction={r!r}",
             "weight", maker(function, s, weight=w, reduction=r), hint=HINTS["weight"])
        for (s, w), r in zip(pairs, reductions)
    ]
    cases.append(Case("weight passed by position: f(input, target, weight)", "weight",
                      maker(function, (4, 5), weight=(5,)), positional=("input", "target", "weight"),
                      hint=HINTS["positional"]))
    return cases


def pos_weight_cases(function) -> list[Case]:
    if function != BCE_WITH_LOGITS:
        return []
    specs = [  # input, pos_weight, weight, reduction, hard targets
        ((6,), (), None, "mean", False),
        ((6,), (1,), None, "none", False),
        ((6,), (6,), None, "sum", False),
        ((4, 5), (5,), None, "mean", True),
        ((4, 5), (5,), None, "none", False),
        ((4, 5), (), None, "sum", True),
        ((4, 5), (1,), None, "mean", True),
        ((4, 5), (4, 5), None, "none", True),
        ((4, 5), (4, 1), None, "none", False),
        ((10, 64), (64,), None, "mean", True),
        ((2, 3, 5), (5,), None, "none", False),
        ((2, 3, 5), (3, 1), None, "mean", False),
        ((2, 3, 4, 4), (3, 1, 1), None, "none", True),
        ((2, 3, 4, 4), (3, 1, 1), None, "mean", True),
        ((2, 3, 4, 4), (4,), None, "sum", False),
        ((4, 5), (5,), (4, 1), "none", True),
        ((3, 4, 5), (5,), (4, 5), "mean", True),
    ]
    cases = []
    for shape, pw, w, r, hard in specs:
        name = f"pos_weight of shape {shape_text(pw)} for input {shape_text(shape)}"
        if len(shape) == 4 and pw == (3, 1, 1):
            name += " (images: one weight per channel)"
        if pw == (4, 1):
            name += " (one weight per sample)"
        if w is not None:
            name += f", with weight of shape {shape_text(w)}"
        name += f", reduction={r!r}" + ("" if hard else ", soft targets")
        cases.append(Case(name, "pos_weight",
                          maker(function, shape, hard=hard, weight=w, pos_weight=pw, reduction=r),
                          grad_target=True, hint=HINTS["pos_weight"]))
    return cases


def _edge_build(function, reduction):
    if takes_logits(function):
        values = ([15.0, -15.0, 1e4, -1e4, 0.5, -3.0], [0.0, 1.0, 1.0, 0.0, 0.3, 1.0])
    else:
        values = ([0.0, 1.0, 0.0, 1.0, 6e-8, 1e-4, 0.999], [0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.0])

    def build(g):
        args = {"input": torch.tensor(values[0], dtype=torch.float64),
                "target": torch.tensor(values[1], dtype=torch.float64)}
        if reduction:
            args["reduction"] = reduction
        return args

    return build


_HALF_SUM = 1 << 16


def _confident_mistakes(function):
    """Predictions far from a target of 1: losses from about 0.7 to 3, whose sum over
    :data:`_HALF_SUM` elements is beyond float16's largest number, 65504."""

    def build(g):
        u = torch.rand(_HALF_SUM, generator=g, dtype=torch.float64)
        input = -3 * u if takes_logits(function) else 0.05 + 0.45 * u
        return {"input": input, "target": torch.ones(_HALF_SUM, dtype=torch.float64)}

    return build


def _small_losses(function):
    """Confident right predictions, of losses from about 0.001 to 0.01, over :data:`BEYOND` [1] elements: each
    loss divided by their number is below 2^-25, which float16 rounds to 0."""

    def build(g):
        u = torch.rand(BEYOND[1], generator=g, dtype=torch.float64)
        input = 4.6 + 2.3 * u if takes_logits(function) else 0.99 + 0.009 * u
        return {"input": input, "target": torch.ones(BEYOND[1], dtype=torch.float64)}

    return build


def dtype_cases(function) -> list[Case]:
    cases = []
    halves = (torch.float16, torch.bfloat16)
    for dtype, grads in [(torch.float64, True), (torch.float16, False), (torch.bfloat16, False)]:
        name = str(dtype).replace("torch.", "")
        for reduction in (None, "none"):  # None: the default, so that (input, target) alone is tested too
            cases.append(Case(name + (f", reduction={reduction!r}" if reduction else ""), "dtypes",
                              maker(function, (4, 5), reduction=reduction),
                              dtype=dtype, grad_input=grads, hint=HINTS["dtype"]))
    edge = "logits of +-15 and +-1e4" if takes_logits(function) else "probabilities 0, 1, 6e-8 and 1e-4"
    hint = HINTS["stable"] if takes_logits(function) else HINTS["clamp"]
    for dtype, reduction in itertools.product(halves, (None, "none")):
        name = str(dtype).replace("torch.", "")
        cases.append(Case(f"{name} {edge}" + (f", reduction={reduction!r}" if reduction else ", averaged"),
                          "dtypes", _edge_build(function, reduction), dtype=dtype, grad_input=False, hint=hint))
    cases.append(Case(f"float16 mean of {_HALF_SUM} confident mistakes (their sum is beyond float16's range)",
                      "dtypes", _confident_mistakes(function), dtype=torch.float16, grad_input=False, large=True,
                      hint=HINTS["half sums"]))
    cases.append(Case("float16 mean of more than 2^19 small losses (each divided by their number is below float16's "
                      "smallest number)", "dtypes", _small_losses(function),
                      dtype=torch.float16, grad_input=False, large=True, loss_only=True, hint=HINTS["half means"]))
    cases.append(Case("float64 with a weight", "dtypes",
                      maker(function, (4, 5), weight=(5,)), dtype=torch.float64, hint=HINTS["dtype"]))
    for dtype, other in [(torch.float32, torch.float64), (torch.float64, torch.float32),
                         (torch.float16, torch.float32)]:
        a, b = (str(d).replace("torch.", "") for d in (dtype, other))
        cases.append(Case(f"a {a} input with a {b} weight", "dtypes", maker(function, (4, 5), weight=(5,)),
                          dtype=dtype, dtypes=(("weight", other),), grad_input=dtype != torch.float16,
                          hint=HINTS["promotion"]))
    if function == BCE_WITH_LOGITS:
        cases.append(Case("a float32 input with a float64 pos_weight", "dtypes",
                          maker(function, (4, 5), pos_weight=(5,)), dtypes=(("pos_weight", torch.float64),),
                          hint=HINTS["promotion"]))
        cases.append(Case("a float16 input with pos_weight, reduction='sum'", "dtypes",
                          maker(function, (4, 5), pos_weight=(5,), reduction="sum"), dtype=torch.float16,
                          grad_input=False, hint=HINTS["pos_weight"]))
        cases.append(Case("a float32 input with a float64 target (the result is float64)", "dtypes",
                          maker(function, (4, 5)), dtypes=(("target", torch.float64),), grad_target=True,
                          hint=HINTS["promotion"]))
    return cases
