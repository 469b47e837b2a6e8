"""The named diagnoses: each on tensors built with torch, then end to end on a small wrong
implementation through grader.check; every number a message states is checked against torch;
and no diagnosis fires on correct implementations or on unrelated mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

import grader
import implementations as impl
from grader._battery import diagnose
from grader._battery.cases import (BCE, BCE_WITH_LOGITS, GRAD_BCE, GRAD_BCE_WITH_LOGITS, HINTS, Case,
                                   categories_for)


def case(dtype=torch.float32):
    return Case(name="a case", category="edge values", build=lambda g: {}, dtype=dtype)


def probabilities(*shape, seed=0):
    return 0.02 + 0.96 * torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def targets(*shape, seed=1):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def logits(*shape, seed=2):
    return 3 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def named(function, args, actual, dtype=torch.float32):
    """What diagnose.values says when a loss returns ``actual`` for ``args``, where torch's differs."""
    return diagnose.values(function, case(dtype), args, getattr(F, function)(**args), actual)


def messages(fn, function, **kwargs):
    """Every failure message grader.check gives ``fn``, by category."""
    report = grader.check(fn, function, devices=["cpu"], **kwargs)
    return [(f.category, f.message) for f in report.failures]


def said(fn, function, words, **kwargs):
    found = messages(fn, function, **kwargs)
    assert any(words in message for _, message in found), found
    return found


def reduce(loss, reduction):
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


# --- 1. a missing reduction, and the reverse ------------------------------------------------

def test_per_element_losses_where_torch_reduces():
    p, y = probabilities(4, 5), targets(4, 5)
    right = F.binary_cross_entropy(p, y, reduction="none")
    message, hint = named(BCE, {"input": p, "target": y}, right)
    assert "per-element losses" in message and "reduction='mean' (torch's default) asks for their mean" in message
    message, _ = named(BCE, {"input": p, "target": y}, right * 1.3)  # not even the right losses: the shape says it
    assert "one loss per element, with the input's shape (4, 5)" in message and "their mean" in message
    message, _ = named(BCE, {"input": p, "target": y, "reduction": "sum"}, right * 1.3)
    assert "reduction='sum' asks for their sum" in message
    assert "loss.mean()" in hint


def test_a_single_number_where_none_asks_for_per_element_losses():
    p, y = probabilities(4, 5), targets(4, 5)
    args = {"input": p, "target": y, "reduction": "none"}
    message, _ = named(BCE, args, F.binary_cross_entropy(p, y))
    assert "returned the mean of the per-element losses where reduction='none'" in message
    assert "ignore the reduction argument" in message
    message, _ = named(BCE, args, torch.tensor(0.123))
    assert "a single number where reduction='none' asks for one loss per element" in message


def bce_never_reduces(input, target, weight=None, reduction="mean"):
    return impl.bce_direct(input, target, weight, "none")


def bce_sums_for_the_mean(input, target, weight=None, reduction="mean"):
    return impl.bce_direct(input, target, weight, "sum" if reduction == "mean" else reduction)


def test_end_to_end_reductions():
    said(bce_never_reduces, BCE, "your function returned the per-element losses")
    said(impl.bce_ignores_reduction, BCE, "does your function ignore the reduction argument?")
    found = said(bce_sums_for_the_mean, BCE, "returned the sum of the per-element losses where reduction='mean'")
    assert any("your result is 20 times torch's" in m for _, m in found)


# --- 2. one constant factor --------------------------------------------------------------------

def test_factors_of_a_mean():
    p, y = probabilities(4, 5), targets(4, 5)
    terms = F.binary_cross_entropy(p, y, reduction="none")
    args = {"input": p, "target": y}
    message, _ = named(BCE, args, terms.sum() / 4)
    assert "5 times torch's" in message and "input.shape[0] = 4 (the batch size)" in message
    message, _ = named(BCE, args, terms.sum() / 5)
    assert "input.shape[1] = 5 instead of by the number of elements, 20" in message
    message, _ = named(BCE, {**args, "reduction": "sum"}, terms.sum() / 4)
    assert "0.25 times torch's" in message and "reduction='sum' divides by nothing" in message


def test_factors_from_the_weights():
    p, y, w = probabilities(4, 5), targets(4, 5), 0.2 + torch.rand(5, generator=torch.Generator().manual_seed(3))
    weighted = F.binary_cross_entropy(p, y, weight=w, reduction="none")
    args = {"input": p, "target": y, "weight": w}
    message, hint = named(BCE, args, weighted.sum() / w.expand_as(p).sum())
    assert "divides the weighted sum by the sum of the weights broadcast to the input" in message
    assert f"({float(w.expand_as(p).sum()):.4g})" in message and "number of elements, 20" in message
    # dividing the mean by the mean of the weights is the same number, and the message says so
    assert torch.allclose(weighted.mean() / w.mean(), weighted.sum() / w.expand_as(p).sum())
    assert "or the mean by the mean of the weights" in message and "not by the sum of the weights" in hint
    message, _ = named(BCE, args, weighted.sum() / w.sum())
    assert f"weight.sum() = {float(w.sum()):.4g}" in message


def test_sign_halves_doubles_and_log_bases():
    p, y = probabilities(6), targets(6)
    args = {"input": p, "target": y, "reduction": "none"}
    right = F.binary_cross_entropy(p, y, reduction="none")
    assert "the sign is flipped" in named(BCE, args, -right)[0]
    assert "twice torch's" in named(BCE, args, 2 * right)[0]
    assert "half of torch's" in named(BCE, args, right / 2)[0]
    log2 = -(y * torch.log2(p) + (1 - y) * torch.log2(1 - p))
    log10 = -(y * torch.log10(p) + (1 - y) * torch.log10(1 - p))
    assert torch.allclose(log2 / right, torch.full_like(p, 1 / math.log(2)))
    assert "1/ln 2 = 1.4427 times torch's" in named(BCE, args, log2)[0] and f"{1 / math.log(2):.4f}" == "1.4427"
    assert "1/ln 10 = 0.4343 times" in named(BCE, args, log10)[0] and f"{1 / math.log(10):.4f}" == "0.4343"
    assert named(BCE, args, 1.7 * right)[0] == "every value of yours is 1.7 times torch's"


def test_the_gradient_of_the_mean_loss():
    p, y = probabilities(4, 5), targets(4, 5)
    x = p.clone().requires_grad_()
    right = torch.autograd.grad(F.binary_cross_entropy(x, y), x)[0]
    args = {"input": p, "target": y}
    assert torch.allclose(right, (p - y) / (p * (1 - p)) / 20)  # the formula the sign hint gives
    assert "factor 1/20, which yours lacks" in diagnose.values(GRAD_BCE, case(), args, right, right * 20)[0]
    twice = diagnose.values(GRAD_BCE, case(), args, right, right / 20)[0]
    assert "divides by the number of elements, 20, twice" in twice
    assert "input.shape[0] = 4 (the batch size)" in diagnose.values(GRAD_BCE, case(), args, right, right * 5)[0]
    message, hint = diagnose.values(GRAD_BCE, case(), args, right, -right)
    assert "sign is flipped" in message and "(p - y) / (p * (1 - p)) / N" in hint
    z = logits(4, 5)
    zz = z.clone().requires_grad_()
    right = torch.autograd.grad(F.binary_cross_entropy_with_logits(zz, y), zz)[0]
    assert torch.allclose(right, (torch.sigmoid(z) - y) / 20)
    assert "(sigmoid(x) - y) / N" in diagnose.values(GRAD_BCE_WITH_LOGITS, case(), {"input": z, "target": y},
                                                      right, -right)[1]


def test_no_constant_factor_is_claimed_for_other_differences():
    p, y = probabilities(4, 5), targets(4, 5)
    right = F.binary_cross_entropy(p, y, reduction="none")
    noise = 1 + 0.1 * torch.randn(4, 5, generator=torch.Generator().manual_seed(5))
    args = {"input": p, "target": y, "reduction": "none"}
    assert named(BCE, args, right * noise) is None
    assert named(BCE, {"input": p, "target": y}, right.mean() * 1.2345) is None  # one number, no name for c
    assert named(BCE, args, right + 0.3) is None


def bce_divides_by_the_batch(input, target, weight=None, reduction="mean"):
    loss = impl.bce_direct(input, target, weight, "none")
    return loss.sum() / max(input.shape[0], 1) if reduction == "mean" and input.dim() > 1 else \
        impl._reduce(loss, reduction)


def bce_flipped(input, target, weight=None, reduction="mean"):
    return -impl.bce_direct(input, target, weight, reduction)


def bce_log2(input, target, weight=None, reduction="mean"):
    loss = -(target * torch.clamp(torch.log2(input), min=-100)
             + (1 - target) * torch.clamp(torch.log2(1 - input), min=-100))
    return impl._reduce(impl._weighted(loss, weight), reduction)


def binary_cross_entropy_grad(input, target):  # forgets the mean's 1/N
    return (input - target) / torch.clamp(input * (1 - input), min=1e-12)


def test_end_to_end_factors():
    said(bce_divides_by_the_batch, BCE, "(the batch size) instead of by the number of elements")
    said(impl.bce_mean_over_weights, BCE, "divides the weighted sum by the sum of the weights")
    said(bce_flipped, BCE, "the sign is flipped")
    said(bce_log2, BCE, "takes logs base 2 (torch.log2)")
    said(binary_cross_entropy_grad, GRAD_BCE, "which yours lacks")


# --- 3. probabilities clamped instead of the logs ------------------------------------------

def test_the_numbers_in_the_clamp_messages_are_torchs():
    p = torch.tensor([0.0, 1.0, 1e-30])
    y = torch.tensor([1.0, 0.0, 1.0])
    assert F.binary_cross_entropy(p, y, reduction="none").tolist() == pytest.approx([100, 100, 69.0776], abs=1e-3)
    assert [round(-math.log(eps), 1) for eps in (1e-7, 1e-12, 1e-6, 1e-30)] == [16.1, 27.6, 13.8, 69.1]
    assert math.isnan(0 * -math.inf) and torch.log(torch.tensor(0.0)).item() == -math.inf


@pytest.mark.parametrize("eps, form, cost", [(1e-7, "clamp", "16.1"), (1e-12, "add", "27.6"), (1e-6, "clamp", "13.8")])
def test_probabilities_clamped_with_an_epsilon(eps, form, cost):
    p = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.3, 1e-30])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.6, 1.0])
    if form == "clamp":
        q = torch.clamp(p, eps, 1 - eps)
        terms = -(y * torch.log(q) + (1 - y) * torch.log(1 - q))
    else:
        terms = -(y * torch.log(p + eps) + (1 - y) * torch.log(1 - p + eps))
    for reduction in ("none", "mean"):
        message, hint = named(BCE, {"input": p, "target": y, "reduction": reduction}, reduce(terms, reduction))
        assert f"an epsilon of {eps:g}" in message and f"-log({eps:g}) = {cost}" in message
        assert "100 for p exactly 0 or 1" in message and "69.1 for p = 1e-30" in message
        assert "torch.clamp(torch.log(p), min=-100)" in hint


def test_no_clamp_at_all():
    p, y = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.3]), torch.tensor([1.0, 0.0, 0.0, 1.0, 0.6])
    naive = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    message, _ = named(BCE, {"input": p, "target": y, "reduction": "none"}, naive)
    assert "inf or nan where a probability is exactly 0 or 1" in message
    assert named(BCE, {"input": p, "target": y}, naive.mean()) is None  # a lone nan says nothing


def test_no_epsilon_is_claimed_for_other_differences_at_the_edges():
    p, y = torch.tensor([0.0, 1.0, 0.0, 0.3]), torch.tensor([1.0, 0.0, 0.0, 0.6])
    right = F.binary_cross_entropy(p, y, reduction="none")
    assert named(BCE, {"input": p, "target": y, "reduction": "none"}, right * torch.tensor([0.5, 0.9, 1, 1.1])) is None


def bce_plus_epsilon(input, target, weight=None, reduction="mean"):
    loss = -(target * torch.log(input + 1e-12) + (1 - target) * torch.log(1 - input + 1e-12))
    return impl._reduce(impl._weighted(loss, weight), reduction)


def test_end_to_end_epsilons():
    said(impl.bce_epsilon, BCE, "an epsilon of 1e-07 (torch.clamp(p, eps, 1 - eps))")
    said(bce_plus_epsilon, BCE, "an epsilon of 1e-12 (log(p + eps) and log(1 - p + eps))")
    said(impl.bce_no_clamp, BCE, "inf or nan where a probability is exactly 0 or 1")


# --- 4. pos_weight ---------------------------------------------------------------------------

def logits_terms(x, y, positive=1, negative=1):
    return -(positive * y * F.logsigmoid(x) + negative * (1 - y) * F.logsigmoid(-x))


def test_pos_weight_mistakes():
    x, y = logits(5, 5), torch.randint(0, 2, (5, 5), generator=torch.Generator().manual_seed(4)).float()
    pw = torch.tensor([0.5, 1.5, 2.0, 3.0, 4.0])
    args = {"input": x, "target": y, "pos_weight": pw}
    torchs = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw)
    assert torch.allclose(logits_terms(x, y, positive=pw).mean(), torchs)
    cases = [(logits_terms(x, y, positive=pw.view(-1, 1)), "along the first dimension, one weight per row,"),
             (logits_terms(x, y, negative=pw), "multiplies the negative term"),
             (pw * logits_terms(x, y), "multiplies the whole loss of each element by pos_weight"),
             (logits_terms(x, y), "ignores pos_weight")]
    for terms, words in cases:
        message, hint = named(BCE_WITH_LOGITS, args, terms.mean())
        assert words in message and "pos_weight multiplies only the positive term" in hint
    assert named(BCE_WITH_LOGITS, args, logits_terms(x, y, positive=pw).mean() * 1.01) is None


def logits_pos_weight_everywhere(input, target, weight=None, pos_weight=None, reduction="mean"):
    loss = impl.logits_stable(input, target, None, None, "none")
    loss = loss if pos_weight is None else loss * pos_weight
    return impl._reduce(impl._weighted(loss, weight), reduction)


def logits_no_pos_weight(input, target, weight=None, pos_weight=None, reduction="mean"):
    return impl.logits_stable(input, target, weight, None, reduction)


def test_end_to_end_pos_weight():
    said(impl.logits_pos_weight_on_negatives, BCE_WITH_LOGITS, "multiplies the negative term")
    said(impl.logits_pos_weight_first_dim, BCE_WITH_LOGITS, "along the first dimension")
    said(logits_pos_weight_everywhere, BCE_WITH_LOGITS, "multiplies the whole loss of each element")
    said(logits_no_pos_weight, BCE_WITH_LOGITS, "ignores pos_weight")


# --- 5. weight and reduction ignored, weight after the reduction -----------------------------

def test_weight_mistakes():
    p, y, w = probabilities(4, 5), targets(4, 5), 0.2 + torch.rand(5, generator=torch.Generator().manual_seed(3))
    args = {"input": p, "target": y, "weight": w}
    assert "ignores weight" in named(BCE, args, F.binary_cross_entropy(p, y))[0]
    message, hint = named(BCE, args, F.binary_cross_entropy(p, y) * w)  # shape (5,) where torch's is ()
    assert "applies weight after the reduction" in message and "unweighted mean times weight" in message
    uniform = {**args, "weight": torch.tensor(1.7)}
    message, _ = named(BCE, uniform, F.binary_cross_entropy(p, y))
    assert "ignores weight, or divides by the sum of the weights" in message


def bce_no_weight(input, target, weight=None, reduction="mean"):
    return impl.bce_direct(input, target, None, reduction)


def bce_weight_after(input, target, weight=None, reduction="mean"):
    loss = impl.bce_direct(input, target, None, reduction)
    return loss if weight is None else loss * weight


def test_end_to_end_weight():
    said(bce_no_weight, BCE, "ignores weight")
    said(bce_weight_after, BCE, "applies weight after the reduction")


# --- 6. log(sigmoid(x)) for extreme logits --------------------------------------------------

def test_the_numbers_in_the_logit_messages_are_torchs():
    assert torch.sigmoid(torch.tensor(16.7)).item() == 1.0 and torch.sigmoid(torch.tensor(16.5)).item() < 1.0
    assert diagnose._saturation(torch.float32) == pytest.approx(16.6, abs=0.05)
    assert torch.exp(torch.tensor(88.8)).item() == math.inf and math.isfinite(torch.exp(torch.tensor(88.6)).item())
    assert F.binary_cross_entropy_with_logits(torch.tensor(20.0), torch.tensor(0.0)).item() == pytest.approx(20)
    assert f"{math.log(torch.finfo(torch.float32).max):.3g}" == "88.7"


def test_log_of_sigmoid():
    x, y = torch.tensor([20.0, -20.0, 20.0, -20.0, 1.5]), torch.tensor([0.0, 1.0, 1.0, 0.0, 0.3])
    args = {"input": x, "target": y, "reduction": "none"}
    s = torch.sigmoid(x)
    naive = -(y * torch.log(s) + (1 - y) * torch.log(1 - s))
    message, hint = named(BCE_WITH_LOGITS, args, naive)
    assert "takes log(sigmoid(x))" in message and "rounds to exactly 1 from about x = 16.6" in message
    assert "logsigmoid" in hint
    clamped = -(y * torch.clamp(torch.log(s), min=-100) + (1 - y) * torch.clamp(torch.log(1 - s), min=-100))
    message, _ = named(BCE_WITH_LOGITS, args, clamped)
    assert "clamped at -100" in message and "about 20 for x = 20, y = 0" in message


@pytest.mark.parametrize("dtype, above", [(torch.float16, "8.32"), (torch.bfloat16, "6.24"), (torch.float64, "36.7")])
def test_where_sigmoid_rounds_to_one_in_each_dtype(dtype, above):
    just_below, just_above = float(above) - 0.1, float(above) + 0.1
    assert torch.sigmoid(torch.tensor(just_below, dtype=dtype)).item() < 1
    assert torch.sigmoid(torch.tensor(just_above, dtype=dtype)).item() == 1
    x, y = torch.tensor([40.0, -2.0, 1.0], dtype=dtype), torch.tensor([0.0, 1.0, 0.5], dtype=dtype)
    s = torch.sigmoid(x)
    naive = -(y * torch.log(s) + (1 - y) * torch.log(1 - s))
    message, _ = named(BCE_WITH_LOGITS, {"input": x, "target": y, "reduction": "none"}, naive, dtype)
    assert f"in {str(dtype)[6:]} sigmoid(x) rounds to exactly 1 from about x = {above}" in message


def test_large_logits_only():
    x, y = torch.tensor([100.0, -1e4, 2.0, -1.0]), torch.tensor([0.0, 1.0, 0.5, 0.0])
    args = {"input": x, "target": y, "reduction": "none"}
    overflowing = (1 - y) * x + torch.log1p(torch.exp(-x))
    message, _ = named(BCE_WITH_LOGITS, args, overflowing)
    assert "except where the logit is large (x = -1e+04)" in message
    assert "exp(x) overflows from about x = 88.7" in message
    right = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert named(BCE_WITH_LOGITS, args, right + torch.tensor([0, 0, 0.5, 0])) is None  # a small |x| differs


def logits_log1p_exp(input, target, weight=None, pos_weight=None, reduction="mean"):
    loss = (1 - target) * input + torch.log1p(torch.exp(-input))
    return impl._reduce(impl._weighted(loss, weight), reduction)


def test_end_to_end_logits():
    said(impl.logits_naive, BCE_WITH_LOGITS, "takes log(sigmoid(x)) and log(1 - sigmoid(x))")
    said(logits_log1p_exp, BCE_WITH_LOGITS, "your values match torch's except where the logit is large")


# --- 7. the gradients --------------------------------------------------------------------------

def test_how_autograd_breaks_ties_at_a_kink():
    z = torch.zeros(1, requires_grad=True)
    slopes = {name: torch.autograd.grad(f(z).sum(), z)[0].item() for name, f in [
        ("torch.relu", torch.relu), ("F.relu", F.relu), ("clamp", lambda t: torch.clamp(t, min=0)),
        ("maximum", lambda t: torch.maximum(t, torch.zeros_like(t))), ("abs", torch.abs)]}
    assert slopes == {"torch.relu": 0.0, "F.relu": 0.0, "clamp": 1.0, "maximum": 0.5, "abs": 0.0}
    y = torch.tensor([0.0, 1.0, 0.25])
    x = torch.zeros(3, requires_grad=True)
    grad = torch.autograd.grad(F.binary_cross_entropy_with_logits(x, y, reduction="sum"), x)[0]
    assert torch.allclose(grad, 0.5 - y)
    message, hint = diagnose.gradients(BCE_WITH_LOGITS, case(), {"input": x.detach(), "target": y}, "input",
                                       grad, -y)
    assert "only where the logit is exactly 0" in message
    for claim in ("0 at 0 for torch.relu and F.relu", "1 for torch.clamp(x, min=0)",
                  "0.5 for torch.maximum(x, torch.zeros_like(x))", "0 for torch.abs", "sigmoid(0) - y = 0.5 - y"):
        assert claim in message


def test_the_edges_of_the_probabilities():
    p, y = torch.tensor([0.0, 1.0, 1e-30, 0.4]), torch.tensor([1.0, 0.0, 1.0, 0.5])
    x = p.clone().requires_grad_()
    torchs = torch.autograd.grad(F.binary_cross_entropy(x, y, reduction="sum"), x)[0]
    assert torchs[:3].tolist() == pytest.approx([-1e12, 1e12, -1e12])
    assert torch.allclose(torchs, (p - y) / torch.clamp(p * (1 - p), min=1e-12))
    q = p.clone().requires_grad_()
    clamped = torch.clamp(q, 1e-7, 1 - 1e-7)
    theirs = torch.autograd.grad((-(y * torch.log(clamped) + (1 - y) * torch.log(1 - clamped))).sum(), q)[0]
    assert theirs[:3].tolist() == [0.0, 0.0, 0.0]  # a clamped probability gets no gradient
    message, _ = diagnose.gradients(BCE, case(), {"input": p, "target": y}, "input", torchs, theirs)
    assert "only where the probability is 0 or 1" in message and "-1e12 for p = 0 and y = 1" in message


def binary_cross_entropy_grad_without_floor(input, target):
    return (input - target) / (input * (1 - input)) / input.numel()


def test_a_hand_derived_gradient_without_the_floor():
    p, y = torch.tensor([0.0, 1.0, 1e-30, 0.4, 0.7]), torch.tensor([1.0, 0.0, 1.0, 0.5, 0.2])
    x = p.clone().requires_grad_()
    torchs = torch.autograd.grad(F.binary_cross_entropy(x, y), x)[0]
    assert torchs[0].item() == pytest.approx(-1e12 / 5)  # the floor, then the mean's 1/N
    message, hint = diagnose.values(GRAD_BCE, case(), {"input": p, "target": y}, torchs,
                                    binary_cross_entropy_grad_without_floor(p, y))
    assert "only where the probability is 0 or 1" in message and "then divided by N for the mean" in message
    assert "torch.clamp(p * (1 - p), min=1e-12)" in hint
    said(binary_cross_entropy_grad_without_floor, GRAD_BCE, "only where the probability is 0 or 1")


def test_gradient_patterns():
    x, y = logits(4, 5), targets(4, 5)
    xx = x.clone().requires_grad_()
    right = torch.autograd.grad(F.binary_cross_entropy_with_logits(xx, y), xx)[0]
    args = {"input": x, "target": y}
    assert "no gradient flows back to 'input'" in diagnose.gradients(BCE_WITH_LOGITS, case(), args, "input", right,
                                                                     torch.zeros_like(right))[0]
    assert "is twice torch's" in diagnose.gradients(BCE_WITH_LOGITS, case(), args, "input", right, 2 * right)[0]
    assert "the negative of torch's" in diagnose.gradients(BCE_WITH_LOGITS, case(), args, "input", right, -right)[0]
    noise = 1 + 0.1 * torch.randn(4, 5, generator=torch.Generator().manual_seed(6))
    message, hint = diagnose.gradients(BCE_WITH_LOGITS, case(), args, "input", right, right * noise)
    assert message.startswith("the values match, but the gradient with respect to 'input' differs from torch's")
    assert "times" not in message and "broken" not in message and "cuts" not in message
    assert hint == HINTS["gradients"]


def test_gradients_that_lose_digits_at_large_logits():
    x, y = torch.tensor([9.3, -1.0, 0.5, 2.0, 8.8]), torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0])
    xx, yy = x.clone().requires_grad_(), y.clone().requires_grad_()
    right = torch.autograd.grad(F.binary_cross_entropy_with_logits(xx, yy, reduction="sum"), yy)[0]
    s = torch.sigmoid(xx)  # the naive form, whose log(1 - s) keeps few digits at x = 8.8 in float32
    naive = torch.autograd.grad((-(yy * torch.log(s) + (1 - yy) * torch.log(1 - s))).sum(), yy)[0]
    assert not torch.allclose(naive, right, rtol=1e-5, atol=1e-6) and torch.allclose(naive, right, rtol=1e-3)
    args = {"input": x, "target": y}
    message, hint = diagnose.gradients(BCE_WITH_LOGITS, case(), args, "target", right, naive)
    assert "only where the logit is large (x = " in message and "logsigmoid" in hint
    far = torch.where(x.abs() > 5, 3 * right, right)  # not rounding: another formula there
    assert "large" not in diagnose.gradients(BCE_WITH_LOGITS, case(), args, "target", right, far)[0]
    one = {"input": torch.tensor(4.12), "target": torch.tensor(0.3)}  # nothing to contrast it with
    assert "large" not in diagnose.gradients(BCE_WITH_LOGITS, case(), one, "input", torch.tensor(0.68),
                                             torch.tensor(0.6801))[0]


def logits_zero_gradient(input, target, weight=None, pos_weight=None, reduction="mean"):
    loss = impl.logits_stable(input, target, weight, pos_weight, reduction).detach()
    return loss + 0 * input.sum() + 0 * target.sum()


def logits_twice_the_gradient(input, target, weight=None, pos_weight=None, reduction="mean"):
    loss = impl.logits_stable(input, target, weight, pos_weight, reduction)
    return 2 * loss - loss.detach()


def logits_scaled_gradient(input, target, weight=None, pos_weight=None, reduction="mean"):
    """The right values, but each element's gradient scaled by a factor of its own, from 1 to 2."""
    loss = impl.logits_stable(input, target, None, pos_weight, "none")
    factor = 1 + torch.linspace(0, 1, loss.numel(), dtype=loss.dtype, device=loss.device).reshape(loss.shape)
    loss = loss.detach() + (loss - loss.detach()) * factor
    return impl._reduce(impl._weighted(loss, weight), reduction)


def test_end_to_end_gradients():
    said(impl.logits_max_form, BCE_WITH_LOGITS, "only where the logit is exactly 0")
    said(impl.logits_naive, BCE_WITH_LOGITS, "differs from torch's only where the logit is large")
    said(logits_zero_gradient, BCE_WITH_LOGITS, "no gradient flows back to 'input'")
    said(logits_twice_the_gradient, BCE_WITH_LOGITS, "is twice torch's at every element")
    found = said(logits_scaled_gradient, BCE_WITH_LOGITS, "the values match, but the gradient with respect to")
    assert all("times torch's" not in m for _, m in found)


# --- nothing fires where nothing is wrong, nor on unrelated mistakes ---------------------------

DIAGNOSED_CATEGORIES = ("article examples", "shapes", "reductions", "weight", "pos_weight", "edge values",
                        "dtypes", "gradients")


CORRECT = ([(fn, BCE) for fn in impl.CORRECT_BCE] + [(impl.BCELossModule, BCE)]
           + [(fn, BCE_WITH_LOGITS) for fn in impl.CORRECT_LOGITS])


@pytest.mark.parametrize("fn, function", CORRECT, ids=lambda v: getattr(v, "__name__", v))
def test_correct_implementations_still_pass(fn, function):
    categories = [c for c in categories_for(function) if c in DIAGNOSED_CATEGORIES]
    report = grader.check(fn, function, categories=categories, devices=["cpu"])
    assert report.passed, str(report)


def bce_wobbles(input, target, weight=None, reduction="mean"):
    p = input * (1 + 1e-3 * torch.sin(1000 * input))
    return impl.bce_direct(p.clamp(0, 1), target, weight, reduction)


def test_an_unrelated_mistake_gets_no_named_diagnosis():
    found = messages(bce_wobbles, BCE)
    compared = [m for c, m in found if c in DIAGNOSED_CATEGORIES]
    assert compared and all(m == "your values differ from torch's" or m.startswith("the values match, but the "
                            "gradient with respect to") for m in compared), compared


def test_the_mistakes_recomputed_for_a_case_are_kept_for_the_next_diagnosis(monkeypatch):
    """What a diagnosis recomputes depends on the case's arguments alone: kept with torch's
    answer (``kept``), the next student's diagnosis of the case takes it from there and names
    the same mistake. Of a large case, the results of its mistakes are kept where they are small
    (a reduction); a large one (the per-element losses) keeps only its shape, and is computed again
    only for a result of that shape."""
    p, y = probabilities(4, 5), targets(4, 5)
    args = {"input": p, "target": y}
    summed = F.binary_cross_entropy(p, y, reduction="sum")
    kept = {}
    first = diagnose.values(BCE, case(), args, F.binary_cross_entropy(p, y), summed, kept=kept)
    assert first is not None and "sum of the per-element losses" in first[0]
    assert kept and all(v is None or isinstance(v, torch.Tensor) for v in kept.values())
    again = diagnose.values(BCE, case(), args, F.binary_cross_entropy(p, y), summed, kept=kept)
    assert again == first
    # taken from what is kept: a kept result that matches another answer names that mistake
    index = next(i for i, v in kept.items() if v is not None and v.shape == () and torch.allclose(v, summed.double()))
    kept[index] = torch.tensor(123.0, dtype=torch.float64)
    moved = diagnose.values(BCE, case(), args, F.binary_cross_entropy(p, y), torch.tensor(123.0), kept=kept)
    assert moved == first
    assert diagnose.values(BCE, case(), args, F.binary_cross_entropy(p, y), summed, kept=None) == first
    large = probabilities(diagnose.KEPT_UP_TO + 1), targets(diagnose.KEPT_UP_TO + 1)
    large_args, mean = {"input": large[0], "target": large[1]}, F.binary_cross_entropy(*large)
    per_element = F.binary_cross_entropy(*large, reduction="none")
    kept_large = {}
    named = diagnose.values(BCE, case(), large_args, mean, per_element, kept=kept_large)
    assert named is not None and "per-element" in named[0]
    sizes = [v for v in kept_large.values() if isinstance(v, torch.Size)]
    assert sizes == [per_element.shape]  # the per-element losses: their shape, not their 4 MB
    assert all(v is None or v.numel() <= diagnose.KEPT_UP_TO for v in kept_large.values() if v is not sizes[0])
    assert diagnose.values(BCE, case(), large_args, mean, per_element, kept=kept_large) == named  # computed again
    computed, compute_one = [], diagnose._computed
    monkeypatch.setattr(diagnose, "_computed", lambda compute: computed.append(compute_one(compute)) or computed[-1])
    assert diagnose.values(BCE, case(), large_args, mean, torch.tensor(123.0), kept=kept_large) is None
    assert all(r is None or r.numel() <= diagnose.KEPT_UP_TO for r in computed)  # not the per-element losses
    assert sizes[0] in kept_large.values()


def test_a_diagnosis_calls_values_close_exactly_where_compare_finds_nothing_that_differs():
    """recompute._close, which a diagnosis asks of every mistake it knows, is compare's verdict
    (every pair of edge values, each scale of the tolerance), in one operation."""
    import itertools

    from grader._battery.answers import compare
    from grader._battery.recompute import _close, _tolerance

    edges = [0.0, -0.0, 1.0, -1.0, 1e-8, 5e-324, 1e308, float("inf"), float("-inf"), float("nan"), 0.5, 0.5000001,
             100.0, 100.001]
    for dtype, scale in itertools.product((torch.float32, torch.float16, torch.float64), (1.0, 2.0)):
        case = Case("any", "shapes", lambda g: {}, dtype=dtype)
        rtol, atol = _tolerance(case)
        for a, e in itertools.product(edges, edges):
            actual, other = torch.tensor([a, 0.25], dtype=torch.float64), torch.tensor([e, 0.25], dtype=torch.float64)
            assert _close(actual, other, case, scale) == (compare(actual, other, scale * rtol, scale * atol) is None)
    assert not _close(torch.zeros(2), torch.zeros(3), case) and not _close(torch.zeros(2), None, case)
