"""Implementations of binary cross-entropy for the tests: correct ones, and
subtly wrong ones, each with the category of the battery it must fail in."""

import math

import torch
import torch.nn.functional as F


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_sizes(input, target):
    if target.shape != input.shape:
        raise ValueError(f"target size {tuple(target.shape)} differs from input size {tuple(input.shape)}")


def _check_range(input, target):
    # ~(x >= 0 & x <= 1) is True for nan, as in torch.
    if not bool(((input >= 0) & (input <= 1)).all()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    if not bool(((target >= 0) & (target <= 1)).all()):
        raise RuntimeError("all elements of target should be between 0 and 1")


def _weighted(loss, weight):
    if weight is None:
        return loss
    weighted = loss * weight.to(loss.dtype)  # the loss stays in the input's dtype, as torch's
    if weighted.shape != loss.shape:
        raise RuntimeError(f"weight of shape {tuple(weight.shape)} does not broadcast to {tuple(loss.shape)}")
    return weighted


# --- correct ----------------------------------------------------------------

def bce_direct(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    _check_range(input, target)
    log_p = torch.clamp(torch.log(input), min=-100)
    log_q = torch.clamp(torch.log(1 - input), min=-100)
    loss = -(target * log_p + (1 - target) * log_q)
    return _reduce(_weighted(loss, weight), reduction)


def bce_log1p(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    _check_range(input, target)
    loss = -(target * input.log().clamp_min(-100) + (1 - target) * torch.log1p(-input).clamp_min(-100))
    return _reduce(_weighted(loss, weight), reduction)


def logits_stable(input, target, weight=None, pos_weight=None, reduction="mean"):
    """torch's own formula: (1 - y) x - w_pos(y) logsigmoid(x)."""
    _check_sizes(input, target)
    log_sig = F.logsigmoid(input)
    if pos_weight is not None:
        log_sig = log_sig * (1 + (pos_weight.to(input.dtype).expand_as(input) - 1) * target)
    loss = (1 - target) * input - log_sig
    return _reduce(_weighted(loss, weight), reduction)


def logits_softplus(input, target, weight=None, pos_weight=None, reduction="mean"):
    """(1 - y) x + w_pos(y) softplus(-x), since -logsigmoid(x) = softplus(-x)."""
    _check_sizes(input, target)
    factor = 1 if pos_weight is None else 1 + (pos_weight.to(input.dtype).expand_as(input) - 1) * target
    loss = (1 - target) * input + factor * F.softplus(-input)
    return _reduce(_weighted(loss, weight), reduction)


class BCELossModule(torch.nn.Module):
    """A module form, like nn.BCELoss."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction

    def forward(self, input, target):
        return bce_direct(input, target, self.weight, self.reduction)


class BCELossPlainAttribute(BCELossModule):
    """Keeps weight as a plain attribute, which .to(device) leaves behind."""

    def __init__(self, weight=None, reduction="mean"):
        torch.nn.Module.__init__(self)
        self.weight, self.reduction = weight, reduction


CORRECT_BCE = [bce_direct, bce_log1p]
CORRECT_LOGITS = [logits_stable, logits_softplus]


# --- wrong, each in one way -------------------------------------------------

def bce_no_clamp(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    _check_range(input, target)
    loss = -(target * torch.log(input) + (1 - target) * torch.log(1 - input))
    return _reduce(_weighted(loss, weight), reduction)


def bce_epsilon(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    _check_range(input, target)
    p = torch.clamp(input, 1e-7, 1 - 1e-7)
    loss = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    return _reduce(_weighted(loss, weight), reduction)


def bce_mean_over_weights(input, target, weight=None, reduction="mean"):
    loss = bce_direct(input, target, weight, "none")
    if reduction == "mean" and weight is not None:
        return loss.sum() / weight.expand_as(loss).sum()
    return _reduce(loss, reduction)


def bce_ignores_reduction(input, target, weight=None, reduction="mean"):
    return bce_direct(input, target, weight, "mean")


def bce_no_range_check(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    loss = -(target * input.log().clamp_min(-100) + (1 - target) * (1 - input).log().clamp_min(-100))
    return _reduce(_weighted(loss, weight), reduction)


def bce_range_check_misses_nan(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    if bool(((input < 0) | (input > 1)).any()) or bool(((target < 0) | (target > 1)).any()):
        raise RuntimeError("all elements should be between 0 and 1")
    return bce_no_range_check(input, target, weight, reduction)


def bce_broadcasts_target(input, target, weight=None, reduction="mean"):
    input, target = torch.broadcast_tensors(input, target)
    return bce_direct(input, target, weight, reduction)


def bce_python_loop(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    _check_range(input, target)
    flat_p, flat_y = input.reshape(-1), target.reshape(-1)
    terms = []
    for i in range(flat_p.numel()):
        p, y = flat_p[i], flat_y[i]
        terms.append(-(y * torch.clamp(torch.log(p), min=-100)
                       + (1 - y) * torch.clamp(torch.log(1 - p), min=-100)))
    loss = torch.stack(terms).reshape(input.shape) if terms else input * 0
    return _reduce(_weighted(loss, weight), reduction)


def bce_float_loop(input, target, weight=None, reduction="mean"):
    """Loops over Python floats: few torch operations, so only the time gives it away."""
    _check_sizes(input, target)
    _check_range(input, target)
    values = [-(y * max(math.log(p) if p > 0 else -math.inf, -100)
                + (1 - y) * max(math.log(1 - p) if p < 1 else -math.inf, -100))
              for p, y in zip(input.reshape(-1).tolist(), target.reshape(-1).tolist())]
    loss = torch.tensor(values, dtype=input.dtype, device=input.device).reshape(input.shape)
    return _reduce(_weighted(loss, weight), reduction)


def bce_calls_torch(input, target, weight=None, reduction="mean"):
    return F.binary_cross_entropy(input, target, weight=weight, reduction=reduction)


def bce_calls_module(input, target, weight=None, reduction="mean"):
    return torch.nn.BCELoss(weight=weight, reduction=reduction)(input, target)


def bce_in_place(input, target, weight=None, reduction="mean"):
    _check_sizes(input, target)
    _check_range(input, target)
    log_p = input.log().clamp_min(-100)
    log_q = input.neg_().add_(1).log().clamp_min(-100)  # turns the caller's input into 1 - input
    loss = -(target * log_p + (1 - target) * log_q)
    return _reduce(_weighted(loss, weight), reduction)


def bce_returns_float(input, target, weight=None, reduction="mean"):
    loss = bce_direct(input, target, weight, reduction)
    return loss.item() if loss.dim() == 0 else loss


def bce_returns_float64(input, target, weight=None, reduction="mean"):
    return bce_direct(input.double(), target.double(), None if weight is None else weight.double(), reduction)


def bce_detached(input, target, weight=None, reduction="mean"):
    return bce_direct(input, target, weight, reduction).detach()


def logits_naive(input, target, weight=None, pos_weight=None, reduction="mean"):
    _check_sizes(input, target)
    p = torch.sigmoid(input)
    factor = 1 if pos_weight is None else pos_weight
    loss = -(factor * target * torch.log(p) + (1 - target) * torch.log(1 - p))
    return _reduce(_weighted(loss, weight), reduction)


def logits_max_form(input, target, weight=None, pos_weight=None, reduction="mean"):
    """max(x, 0) - x y + log(1 + exp(-|x|)): the right values everywhere, but at
    x = 0 autograd's one-sided slopes of max and |x| give the wrong gradient."""
    _check_sizes(input, target)
    softplus_neg = torch.clamp(-input, min=0) + torch.log1p(torch.exp(-input.abs()))
    factor = 1 if pos_weight is None else 1 + (pos_weight.to(input.dtype).expand_as(input) - 1) * target
    loss = (1 - target) * input + factor * softplus_neg
    return _reduce(_weighted(loss, weight), reduction)


def logits_pos_weight_on_negatives(input, target, weight=None, pos_weight=None, reduction="mean"):
    _check_sizes(input, target)
    factor = 1 if pos_weight is None else pos_weight
    loss = -(target * F.logsigmoid(input) + factor * (1 - target) * F.logsigmoid(-input))
    return _reduce(_weighted(loss, weight), reduction)


def logits_pos_weight_first_dim(input, target, weight=None, pos_weight=None, reduction="mean"):
    if pos_weight is not None and pos_weight.dim() == 1 and input.dim() >= 2 and pos_weight.numel() > 1:
        pos_weight = pos_weight.reshape(-1, *([1] * (input.dim() - 1)))[: input.shape[0]]
    return logits_stable(input, target, weight, pos_weight, reduction)


def logits_checks_targets(input, target, weight=None, pos_weight=None, reduction="mean"):
    if not bool(((target >= 0) & (target <= 1)).all()):
        raise RuntimeError("all elements of target should be between 0 and 1")
    return logits_stable(input, target, weight, pos_weight, reduction)


def logits_detaches_target(input, target, weight=None, pos_weight=None, reduction="mean"):
    return logits_stable(input, target.detach(), weight, pos_weight, reduction)


#: (implementation, the torch function it is meant to be, the category it must fail)
MISTAKES = [
    (bce_no_clamp, "binary_cross_entropy", "edge values"),
    (bce_epsilon, "binary_cross_entropy", "edge values"),
    (bce_mean_over_weights, "binary_cross_entropy", "weight"),
    (bce_ignores_reduction, "binary_cross_entropy", "reductions"),
    (bce_no_range_check, "binary_cross_entropy", "errors"),
    (bce_range_check_misses_nan, "binary_cross_entropy", "errors"),
    (bce_broadcasts_target, "binary_cross_entropy", "errors"),
    (bce_python_loop, "binary_cross_entropy", "vectorized"),
    (bce_float_loop, "binary_cross_entropy", "vectorized"),
    (bce_calls_torch, "binary_cross_entropy", "own work"),
    (bce_calls_module, "binary_cross_entropy", "own work"),
    (bce_in_place, "binary_cross_entropy", "inputs unchanged"),
    (bce_returns_float, "binary_cross_entropy", "output"),
    (bce_returns_float64, "binary_cross_entropy", "output"),
    (bce_detached, "binary_cross_entropy", "gradients"),
    (logits_naive, "binary_cross_entropy_with_logits", "edge values"),
    (logits_pos_weight_on_negatives, "binary_cross_entropy_with_logits", "pos_weight"),
    (logits_pos_weight_first_dim, "binary_cross_entropy_with_logits", "pos_weight"),
    (logits_checks_targets, "binary_cross_entropy_with_logits", "edge values"),
    (logits_max_form, "binary_cross_entropy_with_logits", "gradients"),
    (logits_detaches_target, "binary_cross_entropy_with_logits", "gradients"),
]
