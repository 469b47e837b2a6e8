"""Named diagnoses of the mistakes students make, from the values the judge has.

The judge calls :func:`values` when a result differs from torch's (in shape or beyond the tolerance),
:func:`gradients` when a gradient does. A diagnosis recomputes with torch what one mistake gives on the
same arguments and finds the student's result equal to it, or finds one clear pattern in the differences
(one constant factor; differences only at x = 0, or only at large logits); without such evidence it names
nothing. Nothing here calls the student's code.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .answers import compare
from .cases import BCE, BCE_WITH_LOGITS, GRAD_BCE, GRADIENTS, HINTS
from .recompute import _asked, _bad, _close, _f64, _finish, _reduction, _shown, _tolerance, _torch

#: The epsilons students keep probabilities away from 0 and 1 with: 1e-3 to 1e-16.
_EPSILONS = [10.0 ** -k for k in (7, 8, 6, 12, 10, 15, 5, 9, 11, 13, 14, 16, 4, 3)]
_REDUCED = {"mean": "their mean", "sum": "their sum",
            "none": "the per-element losses themselves, with the input's shape"}
_RETURNED = {"mean": "the mean of the per-element losses", "sum": "the sum of the per-element losses",
             "none": "the per-element losses, with the input's shape, unreduced"}
_REDUCE_HINT = ("finish with the reduction the caller asks for: loss.mean() for 'mean' (the default), "
                "loss.sum() for 'sum', and the per-element losses themselves for 'none'. ")


# --- the values ---------------------------------------------------------------------------------

def values(function, case, args, expected, actual, kept: dict | None = None):
    """(message, hint) naming the mistake that makes ``actual`` differ from ``expected``, or None;
    ``kept``, kept with torch's answer to the case, keeps what :func:`_recomputed` computes."""
    try:
        args = {k: (v.detach().to("cpu") if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        e, a = _f64(expected), _f64(actual)
        if "input" not in args or "target" not in args:
            return None
        for diagnosis in (functools.partial(_recomputed, kept=kept), _shape, _large_logits, _factor_in_values):
            named = diagnosis(function, case, args, e, a)
            if named is not None:
                return named
        return _edges(function, case, args, "input", e, a) if function == GRAD_BCE else None
    except Exception:  # noqa: BLE001 - a diagnosis never stands in the way of the verdict itself
        pass
    return None


#: The most elements a mistake's result may have to be kept (a larger one's shape is kept instead).
KEPT_UP_TO = 1 << 16


def _recomputed(function, case, args, e, a, kept: dict | None = None):
    """The first mistake whose recomputed result equals the student's and differs from torch's.
    The results depend on the case's arguments alone: they are taken from ``kept``, or computed
    and kept there for the next student's diagnosis. A result of more than :data:`KEPT_UP_TO`
    elements (the per-element losses of a large case) is not kept, only its shape: it is computed
    again only for a student's result of that shape."""
    if function in GRADIENTS or args["input"].numel() < 2:
        return None
    if kept is None:
        kept = {}  # computed for this diagnosis alone
    mistakes = (m for make in (_reduction_mistakes, _weight_mistakes, _pos_weight_mistakes,
                               _probability_mistakes, _sigmoid_mistakes) for m in make(function, args))
    for index, (compute, message, hint) in enumerate(mistakes):
        candidate = kept.get(index, _UNKNOWN)
        if isinstance(candidate, torch.Size):
            if candidate != a.shape:
                continue  # a result of another shape than the student's is not theirs
            candidate = _computed(compute)
        elif candidate is _UNKNOWN:
            candidate = _computed(compute)
            kept[index] = candidate if candidate is None or candidate.numel() <= KEPT_UP_TO else candidate.shape
        if candidate is None or (a.dim() == 0 and not bool(torch.isfinite(candidate).all())):
            continue  # a single inf or nan is no evidence of one mistake
        if _close(a, candidate, case, 2) and not _close(candidate, e, case):
            return message, hint
    return None


_UNKNOWN = object()


def _computed(compute):
    """A mistake's result; None where the mistake is impossible with these shapes."""
    try:
        return compute()
    except RuntimeError:
        return None


def _reduction_mistakes(function, args):
    asked, reduction, n = _asked(args), _reduction(args), args["input"].numel()
    for other in ("mean", "sum", "none"):
        if other == reduction:
            continue
        message = f"your function returned {_RETURNED[other]} where {asked} asks for {_REDUCED[reduction]}"
        if {reduction, other} == {"mean", "sum"}:
            factor = f"{n}" if other == "sum" else f"1/{n}"
            message += f": your result is {factor} times torch's ({n} being the number of elements)"
        elif "reduction" in args and reduction != "mean" and other == "mean":
            message += ": does your function ignore the reduction argument?"
        yield (lambda o=other: _torch(function, args, reduction=o)), message, _REDUCE_HINT + HINTS["reduction"]


def _weight_mistakes(function, args):
    if args.get("weight") is None:
        return
    reduction, w = _reduction(args), args["weight"]
    message = "your function ignores weight: your values are torch's without the weight"
    if reduction == "mean" and bool((w == w.flatten()[0]).all()):
        message = ("your result is torch's without the weight: your function ignores weight, or divides by the "
                   "sum of the weights, which cancels a weight of a single value; torch's 'mean' divides the "
                   "weighted sum by the number of elements")
    yield (lambda: _torch(function, args, weight=None)), message, HINTS["weight"]
    if reduction != "none":
        def after():
            unweighted = _torch(function, args, weight=None)
            return None if unweighted is None else unweighted * _f64(args["weight"])
        yield after, (f"your function applies weight after the reduction: your result is torch's unweighted "
                      f"{reduction} times weight, where torch multiplies each element's loss by its weight "
                      "before the reduction"), HINTS["weight"]


def _pos_weight_mistakes(function, args):
    if function != BCE_WITH_LOGITS or args.get("pos_weight") is None:
        return
    x, y, pw, reduction = _f64(args["input"]), _f64(args["target"]), _f64(args["pos_weight"]), _reduction(args)
    hint = HINTS["pos_weight"]
    yield (lambda: _torch(function, args, pos_weight=None)), (
        "your function ignores pos_weight: your values are torch's without it"), hint

    def terms(positive, negative):
        return -(positive * y * F.logsigmoid(x) + negative * (1 - y) * F.logsigmoid(-x))

    yield (lambda: _finish(terms(1, pw), args, reduction)), (
        "your function multiplies the negative term, (1 - y) * log(1 - sigmoid(x)), by pos_weight, where "
        "torch multiplies the positive one, y * log(sigmoid(x))"), hint
    yield (lambda: _finish(pw * terms(1, 1), args, reduction)), (
        "your function multiplies the whole loss of each element by pos_weight, where torch multiplies "
        "only its positive term, y * log(sigmoid(x))"), hint
    if pw.dim() == 1 and pw.numel() > 1 and x.dim() >= 2:
        for k in range(x.dim() - 1):
            size, ones = x.shape[k], [1] * (x.dim() - 1 - k)
            if pw.numel() < size:
                continue
            along = pw[:size].reshape(size, *ones)
            which = "the first dimension, one weight per row," if k == 0 else f"dimension {k}"
            taken = "" if pw.numel() == size else f" (its first {size} values)"
            yield (lambda along=along: _finish(terms(along, 1), args, reduction)), (
                f"your function applies pos_weight{taken} along {which} instead of along the last dimension, "
                f"where torch broadcasts it: one weight per class, of which there are input.shape[-1] = "
                f"{x.shape[-1]}"), hint


def _probability_mistakes(function, args):
    if function != BCE:
        return
    p, reduction = args["input"], _reduction(args)
    if not p.is_floating_point():
        return
    y = args["target"].to(p.dtype)
    hint = ("clamp the log terms, not the probabilities: torch.clamp(torch.log(p), min=-100) and "
            "torch.clamp(torch.log(1 - p), min=-100) keep torch's value for every p, "
            "69.1 for p = 1e-30 and 100 at exactly 0 or 1.")
    if bool(((p == 0) | (p == 1)).any()):
        yield (lambda: _finish(_terms(p, y), args, reduction)), (
            "your loss is inf or nan where a probability is exactly 0 or 1: log(0) is -inf, and "
            "a target of 0 times log(0) is nan (0 * -inf), where torch clamps each log term at -100"), \
            HINTS["clamp"]
    forms = (("torch.clamp(p, eps, 1 - eps)", lambda eps: _terms(torch.clamp(p, eps, 1 - eps), y)),
             ("log(p + eps) and log(1 - p + eps)",
              lambda eps: -(y * torch.log(p + eps) + (1 - y) * torch.log(1 - p + eps))))
    for eps in _EPSILONS:
        if not bool(((p < eps) | (p > 1 - eps) | (p == 1)).any()):
            continue
        for form, make in forms:
            yield (lambda make=make, eps=eps: _finish(make(eps), args, reduction, finite=True)), (
                f"your function keeps the probabilities away from 0 and 1 with an epsilon of {eps:g} ({form}) "
                f"instead of clamping the log terms at -100 as torch does: a wrong prediction then costs at "
                f"most -log({eps:g}) = {-math.log(eps):.1f}, where torch's loss is 100 for p exactly 0 or 1 "
                "and -log(1e-30) = 69.1 for p = 1e-30"), hint


def _terms(p, y):
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def _sigmoid_mistakes(function, args):
    if function != BCE_WITH_LOGITS:
        return
    x, reduction = args["input"], _reduction(args)
    if not x.is_floating_point():
        return
    y = args["target"].to(x.dtype)
    factor = 1 if args.get("pos_weight") is None else args["pos_weight"].to(x.dtype)
    s = torch.sigmoid(x)
    naive = (torch.log(s), torch.log(1 - s))
    clamped = tuple(torch.clamp(t, min=-100) for t in naive)
    where = (f"in {str(x.dtype).replace('torch.', '')} sigmoid(x) rounds to exactly 1 from about x = "
             f"{_saturation(x.dtype):.3g} (and to 0 for very negative x), where the log becomes log(0), and it "
             "loses digits well before that")
    yield (lambda: _finish(-(factor * y * naive[0] + (1 - y) * naive[1]), args, reduction)), (
        f"your function takes log(sigmoid(x)) and log(1 - sigmoid(x)): {where}; torch's formula never takes "
        "the log of a rounded probability"), HINTS["stable"]
    yield (lambda: _finish(-(factor * y * clamped[0] + (1 - y) * clamped[1]), args, reduction)), (
        f"your function takes log(sigmoid(x)) and log(1 - sigmoid(x)), clamped at -100: {where}. A large |x| "
        "costs at most 100 in yours, where torch's loss grows with |x| (it is about 20 for x = 20, y = 0)"), \
        HINTS["stable"]


@functools.lru_cache(maxsize=None)
def _saturation(dtype: torch.dtype) -> float:
    """The smallest x (to 0.01) for which sigmoid(x) is exactly 1 in ``dtype``."""
    grid = torch.arange(0, 800, 0.01, dtype=torch.float64)
    ones = torch.sigmoid(grid.to(dtype)) == 1
    return float(grid[ones][0]) if bool(ones.any()) else math.inf


def _shape(function, case, args, e, a):
    """A result of the input's shape where torch reduces, or the reverse."""
    if a.shape == e.shape:
        return None
    x = args["input"]
    if function in GRADIENTS:
        return None
    reduction, asked = _reduction(args), _asked(args)
    if reduction != "none" and e.dim() == 0 and x.dim() > 0 and a.shape == x.shape:
        return (f"your function returned one loss per element, with the input's shape {tuple(x.shape)}, where "
                f"{asked} asks for {_REDUCED[reduction]}, a 0-dimensional tensor"), \
            _REDUCE_HINT + HINTS["reduction"]
    if reduction == "none" and a.dim() == 0 and e.shape == x.shape and x.numel() > 1:
        return (f"your function returned a single number where {asked} asks for one loss per element, "
                f"with the input's shape {tuple(x.shape)}"), _REDUCE_HINT + HINTS["reduction"]
    return None


def _only_where(case, args, e, a, inside):
    """The elements that differ from torch's, when some do and ``inside(input)`` holds at each, else None."""
    x = args.get("input")
    if x is None or not x.is_floating_point() or not x.shape == e.shape == a.shape:
        return None
    bad = _bad(a, e, case)
    return bad if bool(bad.any()) and bool(inside(_f64(x))[bad].all()) else None


def _large_logits(function, case, args, e, a):
    """With logits: the values match except where |x| is large."""
    x = args["input"]
    bad = _only_where(case, args, e, a, lambda t: t.abs() > 0.9 * _saturation(x.dtype)) \
        if function == BCE_WITH_LOGITS else None
    if bad is None:
        return None
    return (f"your values match torch's except where the logit is large (x = {_shown(_f64(x), bad)}): there "
            f"yours are {_shown(a, bad)} and torch's {_shown(e, bad)}. In {str(x.dtype).replace('torch.', '')} "
            f"sigmoid(x) rounds to exactly 1 from about x = {_saturation(x.dtype):.3g}, exp(x) overflows from about "
            f"x = {math.log(torch.finfo(x.dtype).max):.3g}, so log(sigmoid(x)), log(1 - sigmoid(x)) and "
            "log(1 + exp(-x)) lose the value for such x"), HINTS["stable"]


# --- one constant factor -----------------------------------------------------------------------

def _factor(case, e, a):
    """(c, informative elements) when ``a`` is c times ``e`` at every element, else None."""
    if a.shape != e.shape or not bool(torch.isfinite(e).all()) or not bool(torch.isfinite(a).all()):
        return None
    rtol, atol = _tolerance(case)
    informative = e.abs() > 10 * atol
    count = int(informative.sum())
    c = float((a[informative] / e[informative]).median()) if count else 0.0
    if c == 0 or not math.isfinite(c) or abs(c - 1) <= 2 * rtol or \
            compare(a, c * e, 2 * rtol, 2 * atol * max(1.0, abs(c))) is not None:
        return None
    return c, count


def _named(c: float, case, names) -> tuple[str, str] | None:
    rtol, _ = _tolerance(case)
    close = min(max(3 * rtol, 1e-4), 0.03)
    for value, message, hint in names:
        if value and math.isfinite(value) and abs(c / value - 1) <= close:
            return message, hint
    return None


def _general_names(function):
    p = "sigmoid(x)" if BCE_WITH_LOGITS in function else "p"
    sign = f"the loss is -(y * log({p}) + (1 - y) * log(1 - {p})): the minus sign in front makes it positive."
    if function in GRADIENTS:
        formula = "(sigmoid(x) - y) / N" if BCE_WITH_LOGITS in function else "(p - y) / (p * (1 - p)) / N"
        sign = f"the gradient of the mean loss is {formula}, N being the number of elements."
    names = [(-1.0, "every value of yours is the negative of torch's: the sign is flipped", sign),
             (2.0, "every value of yours is twice torch's", "look for a factor 2 that torch's formula lacks."),
             (0.5, "every value of yours is half of torch's", "look for a division by 2 that torch's formula lacks.")]
    if function not in GRADIENTS:
        names += [(1 / math.log(b), f"every value of yours is 1/ln {b} = {1 / math.log(b):.4f} times torch's: "
                   f"your function takes logs base {b} (torch.log{b}) instead of natural logs",
                   "use the natural log, torch.log, as torch does.") for b in (2, 10)]
    return names


def _size_names(function, args):
    """The factors a wrong division of a mean gives, for a 0-d loss or a hand-derived gradient."""
    x, grad = args["input"], function in GRADIENTS
    n, reduction = x.numel(), "mean" if grad else _reduction(args)
    if n < 2 or reduction == "none":
        return []
    if grad:
        hint = f"the mean loss divides by the number of elements, input.numel() = {n}: so does its gradient, once."
        names = [(float(n), f"your gradient is {n} times autograd's: the mean divides by the {n} elements, so its "
                  f"gradient carries a factor 1/{n}, which yours lacks", hint),
                 (1 / n, f"your gradient is 1/{n} times autograd's: it divides by the number of elements, {n}, "
                  "twice", hint)]
    else:
        hint = HINTS["weight"] if args.get("weight") is not None else HINTS["reduction"]
        names = _weight_names(args, reduction, n)
    right = f"instead of by the number of elements, {n}" if reduction == "mean" else \
        "where reduction='sum' divides by nothing"
    for k, size in enumerate(x.shape):
        if 1 < size < n:
            c, batch = (n if reduction == "mean" else 1) / size, " (the batch size)" if k == 0 else ""
            names.append((c, f"your result is {c:.4g} times torch's: it divides "
                          f"{'the gradient' if grad else 'the sum of the per-element losses'} by "
                          f"input.shape[{k}] = {size}{batch} {right}", hint))
    return names


def _weight_names(args, reduction, n):
    x, w = _f64(args["input"]), args.get("weight")
    try:
        w = _f64(w).expand_as(x) if w is not None else None
    except RuntimeError:  # a weight that does not broadcast to the input
        w = None
    if w is None:
        return []
    total, own = float(w.sum()), float(_f64(args["weight"]).sum())
    torch_does = f"torch's 'mean' divides the weighted sum by the number of elements, {n}"
    if reduction == "sum":
        return [(1 / total, f"your result is 1/{total:.4g} times torch's: it divides the weighted sum by the sum "
                 f"of the weights ({total:.4g}), where reduction='sum' divides by nothing", HINTS["weight"])]
    return [(n / total, f"your result is {n / total:.4g} times torch's: your mean divides the weighted sum by the "
             f"sum of the weights broadcast to the input ({total:.4g}), or the mean by the mean of the weights, "
             f"where {torch_does}", HINTS["weight"]),
            (n / own, f"your result is {n / own:.4g} times torch's: your mean divides the weighted sum by "
             f"weight.sum() = {own:.4g}, where {torch_does}", HINTS["weight"])]


def _factor_in_values(function, case, args, e, a):
    found = _factor(case, e, a)
    if found is None:
        return None
    c, count = found
    sized = _size_names(function, args) if (e.dim() == 0 or function in GRADIENTS) else []
    named = _named(c, case, sized + _general_names(function))
    if named is not None or count < 3:
        return named
    return (f"every value of yours is {c:.4g} times torch's",
            "one constant factor over every element points to a factor missing from your formula or "
            "added to it, or to a wrong division in the reduction: compare each factor with torch's formula.")


# --- the gradients ------------------------------------------------------------------------------

def gradients(function, case, args, key, expected, actual):
    """(message, hint) for a gradient with respect to ``key`` that differs from torch's, always."""
    try:
        args = {k: (v.detach().to("cpu") if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        e, a = _f64(expected), _f64(actual)
        for diagnosis in (_no_flow, _kink, _edges, _imprecise, _factor_in_gradients):
            named = diagnosis(function, case, args, key, e, a)
            if named is not None:
                return named
    except Exception:  # noqa: BLE001 - the general words below still apply
        pass
    return (f"the values match, but the gradient with respect to {key!r} differs from torch's: autograd "
            "differentiates the operations your formula uses, one by one, and the result differs from the "
            "derivative of torch's formula"), HINTS["gradients"]


def _no_flow(function, case, args, key, e, a):
    _, atol = _tolerance(case)
    if a.shape != e.shape or not bool((a == 0).all()) or not bool((e.abs() > atol).any()):
        return None
    return (f"no gradient flows back to {key!r}: every element of yours is 0 where torch's is not. A step of "
            "your formula cuts the graph (.item(), .detach(), torch.tensor(...), .numpy()) or has zero "
            "derivative everywhere (a comparison, rounding, or a conversion to an integer or bool tensor)"), \
        HINTS["gradients"]


def _kink(function, case, args, key, e, a):
    if function != BCE_WITH_LOGITS or key != "input" or _only_where(case, args, e, a, lambda x: x == 0) is None:
        return None
    return ("your gradient differs from torch's only where the logit is exactly 0: your formula has a kink "
            "there (max(x, 0), |x|, relu), where autograd takes one slope and not the derivative of the smooth "
            "loss. Autograd gives slope 0 at 0 for torch.relu and F.relu, 1 for torch.clamp(x, min=0), "
            "0.5 for torch.maximum(x, torch.zeros_like(x)), and 0 for torch.abs; torch's gradient of the loss "
            "there is sigmoid(0) - y = 0.5 - y"), HINTS["kink"]


def _edges(function, case, args, key, e, a):
    """A gradient of binary_cross_entropy that differs only where p is 0, 1 or within 1e-6 of them."""
    bad = _only_where(case, args, e, a, lambda p: (p <= 1e-6) | (p >= 1 - 1e-6)) \
        if function in (BCE, GRAD_BCE) and key == "input" else None
    if bad is None:
        return None
    message = (f"your gradient differs from torch's only where the probability is 0 or 1, or within 1e-6 of them "
               f"(p = {_shown(_f64(args['input']), bad)}): there yours is {_shown(a, bad)} and torch's "
               f"{_shown(e, bad)}. torch's backward is (p - y) / max(p * (1 - p), 1e-12), -1e12 for p = 0 and y = 1")
    if function == GRAD_BCE:
        return message + ", then divided by N for the mean", ("divide by torch.clamp(p * (1 - p), min=1e-12), "
                                                               "as torch does, not by p * (1 - p) or a clamped p.")
    return (message + ", where autograd through a formula gives 0 for clamped probabilities "
            "(torch.clamp(p, eps, 1 - eps)) and -y/p from log(p)"), \
        ("near 0 and 1 torch's gradient is its own formula, (p - y) / max(p * (1 - p), 1e-12), which autograd "
         "through the logs does not reproduce; clamp the log terms at -100, not the probabilities, so that at "
         "least the values match torch's there.")


def _imprecise(function, case, args, key, e, a):
    """With logits: the gradients differ, by little, only where |x| is large, and match elsewhere."""
    if BCE_WITH_LOGITS not in function:
        return None
    rtol, atol = _tolerance(case)
    limit = max(1.0, math.log(rtol / torch.finfo(args["input"].dtype).eps) - 1)
    bad = _only_where(case, args, e, a, lambda x: x.abs() > limit)
    if bad is None or int((_f64(args["input"]).abs() <= limit).sum()) < 3 or \
            not bool(((a - e).abs() <= 0.01 * e.abs() + atol)[bad].all()):  # rounding, not another formula
        return None
    return (f"the values match, but your gradient with respect to {key!r} differs from torch's only where the "
            f"logit is large (x = {_shown(_f64(args['input']), bad)}): there sigmoid(x) is so close to 1 or 0 "
            "that log(sigmoid(x)) and log(1 - sigmoid(x)), computed from it, lose digits that torch's "
            "logsigmoid keeps"), HINTS["stable"]


def _factor_in_gradients(function, case, args, key, e, a):
    found = _factor(case, e, a)
    if found is None:
        return None
    (c, count), (rtol, _) = found, _tolerance(case)
    said = next((words for value, words in {-1.0: "the negative of", 2.0: "twice", 0.5: "half of"}.items()
                 if abs(c / value - 1) <= max(3 * rtol, 1e-4)), None)
    if said is None and count < 3:
        return None
    said = said or f"{c:.4g} times"
    return (f"the values match, but your gradient with respect to {key!r} is {said} torch's at every element: "
            "a factor of your formula is outside the graph (a value from .detach(), .item() or torch.tensor(...)) "
            "or a hand-written backward has the wrong factor"), HINTS["gradients"]
