"""The battery: every case on which a student's BCE is compared with torch's.

A :class:`Case` only describes its inputs; :mod:`grader._battery.judge` runs it on each
device and compares the student's function with torch there. Expected values
are never stored: they are whatever torch computes in the same run.

Cases pass the student only the keyword arguments they are about
(``weight``, ``pos_weight``, ``reduction``), so an exercise that implements
part of the signature can be checked on the categories it covers.
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib
from dataclasses import dataclass
from typing import Callable

import torch

from .. import articles
from ..articles import BCE, BCE_WITH_LOGITS

#: The losses a student implements, with torch.nn.functional's signatures.
FUNCTIONS = (BCE, BCE_WITH_LOGITS)
#: Their gradients with respect to the input, derived by hand (reduction='mean').
GRAD_BCE = BCE + "_grad"
GRAD_BCE_WITH_LOGITS = BCE_WITH_LOGITS + "_grad"
GRADIENTS = (GRAD_BCE, GRAD_BCE_WITH_LOGITS)
#: Every function the battery can check.
CHECKABLE = FUNCTIONS + GRADIENTS
#: The optional arguments of each, with torch's defaults.
PARAMETERS = {
    BCE: {"weight": None, "reduction": "mean"},
    BCE_WITH_LOGITS: {"weight": None, "pos_weight": None, "reduction": "mean"},
    GRAD_BCE: {},
    GRAD_BCE_WITH_LOGITS: {},
}


def takes_logits(function: str) -> bool:
    return BCE_WITH_LOGITS in function


def base_loss(function: str) -> str:
    """The loss a function is, or is the gradient of."""
    return function.removesuffix("_grad")

#: Every category, in the order a report lists them, with what passing it means.
CATEGORIES: dict[str, str] = {
    "signature": "takes torch's arguments, with torch's defaults",
    "article examples": "the examples of the source articles",
    "shapes": "0-d, 1-d, 2-d, 3-d, empty and large tensors",
    "reductions": "reduction='mean', 'sum' and 'none'",
    "weight": "a weight of every shape that broadcasts to the input",
    "pos_weight": "pos_weight along the last dimension, and [C, 1, 1] for images",
    "edge values": "probabilities of exactly 0 and 1, extreme logits, soft targets",
    "dtypes": "float64, float16 and bfloat16",
    "gradients": "the gradients with respect to the input and the target",
    "errors": "raises the errors torch raises",
    "output": "returns a tensor with torch's shape, dtype and device",
    "inputs unchanged": "leaves its arguments as it found them",
    "own work": "computes the loss itself instead of calling torch's BCE",
    "vectorized": "works on whole tensors, not element by element",
}

#: Categories that are not groups of cases but checks made on every case.
PER_CALL_CATEGORIES = ("output", "inputs unchanged", "own work")

#: The categories that do not apply to a hand-derived gradient, and to each function.
_NOT_FOR_GRADIENTS = {"reductions", "weight", "pos_weight", "errors", "gradients"}
NOT_FOR = {BCE: {"pos_weight"}, BCE_WITH_LOGITS: set(),
           GRAD_BCE: _NOT_FOR_GRADIENTS | {"edge values"}, GRAD_BCE_WITH_LOGITS: _NOT_FOR_GRADIENTS}

#: (rtol, atol) for values and gradients, by dtype. float32 allows for the
#: rounding of formulas that differ from torch's by a few operations.
TOLERANCES = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (5e-2, 1e-2),
}

LARGE_SHAPE = (512, 1024)


@dataclass(frozen=True)
class Case:
    """One comparison with torch.

    ``build(generator)`` returns the arguments as CPU tensors: ``input`` and
    ``target``, and any of ``weight``, ``pos_weight`` (tensors) and
    ``reduction`` (a string). Floating tensors are cast to ``dtype`` and moved
    to the device under test before the call.
    """

    name: str
    category: str
    build: Callable[[torch.Generator], dict]
    dtype: torch.dtype = torch.float32
    grad_input: bool = True
    grad_target: bool = False
    expect_error: bool = False
    cpu_only: bool = False
    large: bool = False
    hint: str = ""
    reference: Callable[..., torch.Tensor] | None = None
    reference_name: str | None = None

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode())

    @functools.cached_property
    def keywords(self) -> frozenset[str]:
        """The keyword arguments this case passes, besides input and target."""
        return frozenset(self.build(torch.Generator().manual_seed(self.seed))) - {"input", "target"}


# --- random inputs ---------------------------------------------------------

def _probabilities(g, shape):
    # Away from 0 and 1, where torch's backward formula and autograd through
    # the logs legitimately differ; the edge cases test 0 and 1 themselves.
    return 0.02 + 0.96 * torch.rand(shape, generator=g, dtype=torch.float64)


def _logits(g, shape):
    return 3 * torch.randn(shape, generator=g, dtype=torch.float64)


def _soft_targets(g, shape):
    return torch.rand(shape, generator=g, dtype=torch.float64)


def _hard_targets(g, shape):
    return torch.randint(0, 2, shape, generator=g).to(torch.float64)


def _positive(g, shape, low, high):
    return low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)


def _maker(function, shape, *, hard=False, weight=None, pos_weight=None, reduction=None):
    """A ``build`` function for random inputs of ``shape``."""

    def build(g):
        inputs = _logits if takes_logits(function) else _probabilities
        args = {
            "input": inputs(g, shape),
            "target": (_hard_targets if hard else _soft_targets)(g, shape),
        }
        if weight is not None:
            args["weight"] = _positive(g, weight, 0.2, 2.0)
        if pos_weight is not None:
            args["pos_weight"] = _positive(g, pos_weight, 0.5, 4.0)
        if reduction is not None:
            args["reduction"] = reduction
        return args

    return build


def _fixed(input, target, **extra):
    def build(g):
        args = {"input": torch.tensor(input, dtype=torch.float64),
                "target": torch.tensor(target, dtype=torch.float64)}
        for key, value in extra.items():
            args[key] = torch.tensor(value, dtype=torch.float64) if key != "reduction" else value
        return args

    return build


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# --- the cases -------------------------------------------------------------

HINTS = {
    "clamp": ("torch clamps each log term at -100: log(0) counts as -100, so 0 * log(0) is 0 "
              "and a wrong certain prediction costs 100. Clamp the logs, "
              "torch.clamp(torch.log(p), min=-100), not the probabilities."),
    "epsilon": ("log(1e-30) is about -69, above the clamp at -100, and torch keeps it. Clamping "
                "the probabilities with a small epsilon changes such values: clamp the log "
                "terms at -100 instead."),
    "stable": ("log(sigmoid(x)) rounds to log(0) once |x| is large (about 17 in float32). Use a "
               "form that never takes the log of a rounded probability: "
               "(1 - y) * x - logsigmoid(x), with torch.nn.functional.logsigmoid."),
    "kink": ("max(x, 0) and |x| have a kink at x = 0, where autograd takes one-sided slopes: a "
             "formula built from them has the right value there but the wrong gradient (torch's "
             "is sigmoid(0) - y = 0.5 - y). Build it from smooth functions: "
             "(1 - y) * x - logsigmoid(x), or softplus."),
    "reduction": ("'mean' averages the per-element losses over all elements, 'sum' adds them up, "
                  "and 'none' returns them with the input's shape."),
    "weight": ("weight multiplies each element's loss before the reduction, broadcasting like "
               "any elementwise product; 'mean' still divides by the number of elements, not "
               "by the sum of the weights."),
    "pos_weight": ("pos_weight multiplies only the positive term, y * log(sigmoid(x)), not the "
                   "negative one, and broadcasts against the last dimension."),
    "empty": "torch returns nan for the mean of an empty tensor and 0 for its sum.",
    "range": ("torch raises RuntimeError when an input or target lies outside [0, 1]; nan lies "
              "outside too (every comparison with nan is False)."),
    "size": ("torch raises ValueError when the target's shape differs from the input's, even "
             "when the two would broadcast."),
    "unknown reduction": "torch raises ValueError for a reduction other than 'mean', 'sum' or 'none'.",
    "logit targets": ("binary_cross_entropy_with_logits does not check its targets: the formula "
                      "is computed for any target value."),
    "gradients": ("autograd computes the gradient from your formula: if the values match but the "
                  "gradients do not, a step of the formula breaks the graph (.item(), .detach(), "
                  "torch.tensor(...), .numpy()) or uses an in-place operation."),
    "dtype": "compute in the input's dtype, so that the result has it too.",
    "output": ("with reduction='mean' or 'sum' torch returns a 0-dimensional tensor; with 'none', "
               "a tensor of the input's shape; always on the input's device."),
    "not a tensor": ("return the tensor itself: .item(), float(...), .tolist() and .numpy() turn it "
                     "into something else."),
    "in place": ("work on new tensors (x = x.clamp(...)), never on the arguments themselves "
                 "(x.clamp_(...), x[...] = ..., x += ...)."),
    "not implemented": "replace `raise NotImplementedError()` with your own code, then run this check again.",
    "own work": ("build the loss from elementwise operations (torch.log, torch.clamp, arithmetic): "
                 "the exercise is to compute it yourself."),
    "vectorized": ("use operations on whole tensors (torch.log(p), y * a + ..., .mean()) instead of a "
                   "Python loop over the elements."),
}


def _article_cases(function) -> list[Case]:
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


def _shape_cases(function) -> list[Case]:
    shapes = [(), (1,), (5,), (5, 5), (5, 5, 5), (0,), (2, 0, 3)]
    cases = [
        Case(f"shape {_shape_text(s)}", "shapes", _maker(function, s),
             hint=HINTS["empty"] if 0 in s else "")
        for s in shapes
    ]
    cases.append(Case(f"a large tensor of shape {_shape_text(LARGE_SHAPE)}", "shapes",
                      _maker(function, LARGE_SHAPE), grad_input=False, large=True))
    return cases


def _reduction_cases(function) -> list[Case]:
    cases = []
    for shape, reduction in itertools.product([(5,), (4, 5), (2, 3, 4)], ("mean", "sum", "none")):
        cases.append(Case(f"reduction={reduction!r} on shape {_shape_text(shape)}", "reductions",
                          _maker(function, shape, reduction=reduction), hint=HINTS["reduction"]))
    for shape, reduction in [((), "none"), ((), "sum"), ((0,), "sum"), ((0,), "none"), ((2, 0), "mean")]:
        cases.append(Case(f"reduction={reduction!r} on shape {_shape_text(shape)}", "reductions",
                          _maker(function, shape, reduction=reduction),
                          hint=HINTS["empty"] if 0 in shape else HINTS["reduction"]))
    return cases


def _weight_cases(function) -> list[Case]:
    pairs = [((4, 5), w) for w in [(), (1,), (5,), (1, 5), (4, 1), (4, 5)]]
    pairs += [((3, 4, 5), w) for w in [(5,), (4, 5), (3, 1, 1), (1, 4, 1), (3, 4, 5)]]
    reductions = itertools.cycle(("mean", "sum", "none"))
    return [
        Case(f"weight of shape {_shape_text(w)} for input {_shape_text(s)}, reduction={r!r}",
             "weight", _maker(function, s, weight=w, reduction=r), hint=HINTS["weight"])
        for (s, w), r in zip(pairs, reductions)
    ]


def _pos_weight_cases(function) -> list[Case]:
    if function != BCE_WITH_LOGITS:
        return []
    specs = [
        ((4, 5), (5,), None, "mean"),
        ((4, 5), (5,), None, "none"),
        ((4, 5), (), None, "sum"),
        ((4, 5), (1,), None, "mean"),
        ((4, 5), (4, 5), None, "none"),
        ((10, 64), (64,), None, "mean"),
        ((2, 3, 4, 4), (3, 1, 1), None, "none"),
        ((2, 3, 4, 4), (3, 1, 1), None, "mean"),
        ((4, 5), (5,), (4, 1), "none"),
        ((3, 4, 5), (5,), (4, 5), "mean"),
    ]
    cases = []
    for shape, pw, w, r in specs:
        name = f"pos_weight of shape {_shape_text(pw)} for input {_shape_text(shape)}"
        if len(shape) == 4:
            name += " (images: one weight per channel)"
        if w is not None:
            name += f", with weight of shape {_shape_text(w)}"
        name += f", reduction={r!r}"
        cases.append(Case(name, "pos_weight",
                          _maker(function, shape, hard=True, weight=w, pos_weight=pw, reduction=r),
                          grad_target=True, hint=HINTS["pos_weight"]))
    return cases


def _edge_cases(function) -> list[Case]:
    if function == BCE:
        return [
            Case("probabilities exactly 0 and 1, reduction='none'", "edge values",
                 _fixed([0, 1, 0, 1, 0, 1], [0, 1, 1, 0, 0.5, 0.5], reduction="none"),
                 grad_input=False, hint=HINTS["clamp"]),
            Case("probabilities exactly 0 and 1, averaged", "edge values",
                 _fixed([0, 1, 0, 1, 0.3], [0, 1, 1, 0, 0.6]),
                 grad_input=False, hint=HINTS["clamp"]),
            Case("tiny probabilities (1e-30, 1e-20, 1e-10) and 1 - 6e-8, reduction='none'", "edge values",
                 _fixed([1e-30, 1e-20, 1e-10, 1 - 6e-8], [1, 1, 0.5, 0], reduction="none"),
                 grad_input=False, hint=HINTS["epsilon"]),
            Case("tiny probabilities (1e-30, 1e-20, 1e-10) and 1 - 6e-8, averaged", "edge values",
                 _fixed([1e-30, 1e-20, 1e-10, 1 - 6e-8], [1, 1, 0.5, 0]),
                 grad_input=False, hint=HINTS["epsilon"]),
            Case("hard 0/1 targets", "edge values", _maker(function, (4, 5), hard=True), grad_target=True),
            Case("soft targets", "edge values",
                 _fixed([0.2, 0.5, 0.7, 0.9], [0.1, 0.5, 0.95, 0.25], reduction="none"),
                 grad_target=True),
        ]
    return [
        Case("logits of +-20 (beyond float32's sigmoid), reduction='none'", "edge values",
             _fixed([20, -20, 20, -20], [0, 1, 1, 0], reduction="none"), hint=HINTS["stable"]),
        Case("logits of +-100, reduction='none'", "edge values",
             _fixed([100, -100, 100, -100], [0, 1, 1, 0], reduction="none"), hint=HINTS["stable"]),
        Case("logits of +-1e4, reduction='none'", "edge values",
             _fixed([1e4, -1e4, 1e4, -1e4], [0, 1, 1, 0], reduction="none"), hint=HINTS["stable"]),
        Case("logits of +-1e4, averaged", "edge values",
             _fixed([1e4, -1e4, 3.0, -2.0], [0, 1, 1, 0.5]), hint=HINTS["stable"]),
        Case("logits of exactly 0 (where a zero-initialised model starts), reduction='none'", "edge values",
             _fixed([0.0, 0.0, 0.0, -0.0], [0.0, 1.0, 0.5, 0.25], reduction="none"),
             grad_target=True, hint=HINTS["kink"]),
        Case("targets outside [0, 1] (torch does not check them)", "edge values",
             _fixed([0.5, -1.0, 2.0, 0.25, -3.0], [-0.5, 1.5, 2.0, 0.3, -1.0], reduction="none"),
             grad_target=True, hint=HINTS["logit targets"]),
        Case("hard 0/1 targets", "edge values", _maker(function, (4, 5), hard=True), grad_target=True),
        Case("soft targets", "edge values",
             _fixed([-2.0, 0.5, 1.5, 4.0], [0.1, 0.5, 0.95, 0.25], reduction="none"),
             grad_target=True),
    ]


def _dtype_cases(function) -> list[Case]:
    cases = []
    for dtype, grads in [(torch.float64, True), (torch.float16, False), (torch.bfloat16, False)]:
        name = str(dtype).replace("torch.", "")
        for reduction in (None, "none"):  # None: the default, so that (input, target) alone is tested too
            cases.append(Case(name + (f", reduction={reduction!r}" if reduction else ""), "dtypes",
                              _maker(function, (4, 5), reduction=reduction),
                              dtype=dtype, grad_input=grads, hint=HINTS["dtype"]))
    cases.append(Case("float64 with a weight", "dtypes",
                      _maker(function, (4, 5), weight=(5,)), dtype=torch.float64, hint=HINTS["dtype"]))
    return cases


def _gradient_checks(function) -> list[Case]:
    cases = [
        Case("gradient with respect to input and target" + (f", reduction={r!r}" if r else ""), "gradients",
             _maker(function, (4, 5), reduction=r), grad_target=True, hint=HINTS["gradients"])
        for r in (None, "sum", "none")
    ]
    cases.append(Case("gradient of a 3-d batch", "gradients", _maker(function, (2, 3, 4)),
                      grad_target=True, hint=HINTS["gradients"]))
    cases.append(Case("gradient with respect to input and target, with a weight", "gradients",
                      _maker(function, (3, 4), weight=(4,)), grad_target=True, hint=HINTS["gradients"]))
    return cases


def _error_cases(function) -> list[Case]:
    cases = []
    if function == BCE:
        for name, inp, tgt in [
            ("an input above 1", [0.2, 1.5, 0.5], [0.0, 1.0, 0.5]),
            ("an input below 0", [0.2, -0.1, 0.5], [0.0, 1.0, 0.5]),
            ("an input that is nan", [0.2, float("nan"), 0.5], [0.0, 1.0, 0.5]),
            ("a target above 1", [0.2, 0.7, 0.5], [0.0, 1.5, 0.5]),
        ]:
            # torch checks the range on the device, where a failure is a device-side assert.
            cases.append(Case(name, "errors", _fixed(inp, tgt), grad_input=False,
                              expect_error=True, cpu_only=True, hint=HINTS["range"]))
    inputs = _logits if takes_logits(function) else _probabilities

    def mismatched(in_shape, target_shape):
        return lambda g: {"input": inputs(g, in_shape), "target": _soft_targets(g, target_shape)}

    cases += [
        Case("a target of shape (4,) for an input of shape (3,)", "errors", mismatched((3,), (4,)),
             grad_input=False, expect_error=True, hint=HINTS["size"]),
        Case("a target of shape (3,) for an input of shape (3, 1)", "errors", mismatched((3, 1), (3,)),
             grad_input=False, expect_error=True, hint=HINTS["size"]),
        Case("reduction='avg'", "errors", _maker(function, (3,), reduction="avg"),
             grad_input=False, expect_error=True, hint=HINTS["unknown reduction"]),
        Case("a weight of shape (3,) for an input of shape (3, 4)", "errors",
             _maker(function, (3, 4), weight=(3,)), grad_input=False, expect_error=True,
             hint="a weight must broadcast to the input's shape; torch raises RuntimeError otherwise."),
    ]
    if function == BCE_WITH_LOGITS:
        cases.append(Case("a pos_weight of shape (3,) for an input of shape (3, 4)", "errors",
                          _maker(function, (3, 4), pos_weight=(3,)), grad_input=False, expect_error=True,
                          hint="pos_weight broadcasts against the last dimension; torch raises "
                               "RuntimeError when it cannot."))
    return cases


def gradient_reference(reference: Callable) -> Callable:
    """The gradient of ``reference(input, target)`` with respect to the input, by autograd."""

    def gradient(input, target, **kwargs):
        x = input.detach().requires_grad_(True)
        return torch.autograd.grad(reference(input=x, target=target.detach(), **kwargs), x)[0]

    return gradient


_REDUCTION_IN_NAME = re.compile(r",? reduction='\w+'")


def _gradient_cases(function: str) -> list[Case]:
    """The hand-derived gradient of the mean loss: the inputs of the loss's cases
    that take no weight (their reduction dropped), compared with autograd through
    torch; for the logits, also the logits behind the sigmoid of article 002."""
    loss = base_loss(function)
    torch_loss = getattr(torch.nn.functional, loss)
    hint = ("the gradient of the mean loss with respect to each input element; compare your formula "
            "with autograd's input.grad.")
    cases: dict[str, Case] = {}
    if function == GRAD_BCE_WITH_LOGITS:
        for key in ("002-1", "002-2"):
            ex = articles.example(key)
            name = f"article {key}: the logits of {ex.title}"
            cases[name] = Case(name, "article examples", lambda g, key=key: articles.logits_of(key),
                               grad_input=False, hint=hint, reference=gradient_reference(torch_loss))
    for case in _battery(loss):
        if case.category not in ("article examples", "shapes", "edge values", "dtypes") or \
                case.keywords - {"reduction"}:
            continue

        def build(g, case=case):
            args = case.build(g)
            args.pop("reduction", None)
            return args

        name = _REDUCTION_IN_NAME.sub("", case.name).replace(", averaged", "")
        cases.setdefault(name, Case(
            name=name, category=case.category, build=build, dtype=case.dtype, grad_input=False,
            large=case.large, hint=hint, reference=gradient_reference(case.reference or torch_loss)))
    return list(cases.values())


@functools.lru_cache(maxsize=None)
def _battery(function: str) -> tuple[Case, ...]:
    if function in GRADIENTS:
        return tuple(_gradient_cases(function))
    return (
        *_article_cases(function),
        *_shape_cases(function),
        *_reduction_cases(function),
        *_weight_cases(function),
        *_pos_weight_cases(function),
        *_edge_cases(function),
        *_dtype_cases(function),
        *_gradient_checks(function),
        *_error_cases(function),
    )


def battery(function: str) -> tuple[Case, ...]:
    """Every case for ``function`` (one of :data:`CHECKABLE`), in report order."""
    if function not in CHECKABLE:
        raise ValueError(f"no battery for {function!r}; choose one of {', '.join(CHECKABLE)}")
    return _battery(function)


def categories_for(function: str) -> list[str]:
    """The categories that apply to ``function``, in report order."""
    return [c for c in CATEGORIES if c not in NOT_FOR[function]]
