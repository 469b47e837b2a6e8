"""Wrong implementations that only the battery's newer cases catch, each with the cases
it must fail: a mutant is the correct implementation with one mistake a student makes."""

import torch
import torch.nn.functional as F

#: Names of the mistakes a mutant of _bce or _logits can make.
FLAWS = frozenset({
    "view", "weight view", "target range > 1 only", "target range misses nan", "weight larger",
    "last dim only", "reduction lower", "reduction strip", "reduction falsy", "weight promotes",
    "weight dtype", "sum over n", "nan_to_num", "legacy ignored", "no elementwise_mean", "view rows",
    "pos_weight where", "pos_weight larger", "target cast", "pos_weight promotes", "reduce sums",
    "range tolerance", "weight rank", "pos_weight rank", "subnormal as zero", "softplus", "zero weight masks",
    "pos_weight max form", "legacy yields", "chunked mean", "divide first",
})


def _reduction(reduction, flaws, size_average=None, reduce=None):
    if "legacy yields" in flaws and reduction != "mean":  # the legacy arguments only replace the default
        size_average = reduce = None
    if size_average is not None or reduce is not None:
        if "reduce sums" in flaws and reduce:
            return "sum"
        if "legacy ignored" not in flaws:
            if reduce is False:
                return "none"
            return "sum" if size_average is False else "mean"
    if reduction == "elementwise_mean" and "no elementwise_mean" not in flaws:
        return "mean"
    if isinstance(reduction, str) and "reduction lower" in flaws:
        reduction = reduction.lower()
    if isinstance(reduction, str) and "reduction strip" in flaws:
        reduction = reduction.strip()
    if "reduction falsy" in flaws:
        reduction = reduction or "mean"
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _sizes(input, target, flaws):
    if "last dim only" in flaws:
        if input.dim() and target.dim() and target.shape[-1] == input.shape[-1]:
            return
    if target.shape != input.shape:
        raise ValueError(f"target size {tuple(target.shape)} differs from input size {tuple(input.shape)}")


def _weighted(loss, weight, flaws):
    if weight is None:
        return loss
    if "weight view" in flaws and weight.shape == loss.shape:
        return (loss.reshape(-1) * weight.view(-1).to(loss.dtype)).view(loss.shape)
    if "weight dtype" in flaws:
        return (loss * weight).to(weight.dtype)
    weighted = loss * (weight if "weight promotes" in flaws else weight.to(loss.dtype))
    if "zero weight masks" in flaws:
        weighted = torch.where(weight == 0, torch.zeros_like(weighted), weighted)
    larger_allowed = "weight larger" in flaws or ("weight rank" in flaws and weight.dim() <= loss.dim())
    if weighted.shape != loss.shape and not larger_allowed:
        raise RuntimeError(f"weight of shape {tuple(weight.shape)} does not broadcast to {tuple(loss.shape)}")
    return weighted


def _reduce(loss, reduction, flaws):
    if reduction == "mean":
        if "chunked mean" in flaws and loss.numel() > 1 << 19:  # the mean of the means of pieces of 2**19
            return torch.stack([piece.mean() for piece in loss.reshape(-1).split(1 << 19)]).mean()
        if "divide first" in flaws and loss.numel():  # each loss divided by n, then added up: no sum beyond float16 range
            return (loss / loss.numel()).sum()
        return loss.sum() / loss.numel() if "sum over n" in flaws else loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _bce(input, target, weight, reduction, flaws, size_average=None, reduce=None):
    reduction = _reduction(reduction, flaws, size_average, reduce)
    _sizes(input, target, flaws)
    slack = 1e-6 if "range tolerance" in flaws else 0.0
    if not bool(((input >= -slack) & (input <= 1 + slack)).all()):
        raise RuntimeError("all elements of input should be between 0 and 1")
    if "range tolerance" in flaws:
        bad = not bool(((target >= -slack) & (target <= 1 + slack)).all())
    elif "target range > 1 only" in flaws:
        bad = bool((target > 1).any())
    elif "target range misses nan" in flaws:
        bad = bool(((target < 0) | (target > 1)).any())
    else:
        bad = not bool(((target >= 0) & (target <= 1)).all())
    if bad:
        raise RuntimeError("all elements of target should be between 0 and 1")
    shape = input.shape
    if "view" in flaws:
        input, target = input.view(-1), target.view(-1)
    if "nan_to_num" in flaws:
        log_p = torch.nan_to_num(torch.log(input), neginf=-100.0)
        log_q = torch.nan_to_num(torch.log1p(-input), neginf=-100.0)
    else:
        log_p, log_q = torch.log(input).clamp(min=-100), torch.log1p(-input).clamp(min=-100)
    if "subnormal as zero" in flaws:  # whatever float32 cannot hold as a normal number counts as 0
        log_p = torch.where(input < 1e-38, torch.full_like(log_p, -100.0), log_p)
    loss = -(target * log_p + (1 - target) * log_q)
    if "view" in flaws:
        loss = loss.view(shape)
    return _reduce(_weighted(loss, weight, flaws), reduction, flaws)


def _logits(input, target, weight, pos_weight, reduction, flaws):
    reduction = _reduction(reduction, flaws)
    _sizes(input, target, flaws)
    if "target cast" in flaws:
        target = target.to(input.dtype)
    shape = input.shape
    if "view rows" in flaws and input.dim() >= 2:
        input, target = input.view(input.shape[0], -1), target.view(target.shape[0], -1)
        if pos_weight is not None:
            pos_weight = pos_weight.expand(shape).reshape(input.shape)
    log_sig = F.logsigmoid(input)
    if "pos_weight max form" in flaws and pos_weight is not None:  # -softplus(-x), with a kink at 0
        log_sig = -((-input).clamp(min=0) + torch.log1p(torch.exp(-input.abs())))
    if pos_weight is not None:
        if "pos_weight promotes" not in flaws:
            pos_weight = pos_weight.to(input.dtype)
        if "pos_weight larger" not in flaws and not ("pos_weight rank" in flaws and pos_weight.dim() <= input.dim()):
            pos_weight = pos_weight.expand_as(input)
        if "pos_weight where" in flaws:
            log_sig = torch.where(target == 1, pos_weight * log_sig, log_sig)
        else:
            log_sig = log_sig * (1 + (pos_weight - 1) * target)
    loss = ((1 - target) * input - log_sig).view(shape) if "view rows" in flaws else (1 - target) * input - log_sig
    if "softplus" in flaws and pos_weight is None:  # the same formula, but inf - inf at infinite logits
        # (computed in float32 at least: in float16 it also cancels where x is large and y near 1, which
        # some draws have (those with the autograder's secret): its one flaw here is at infinity)
        wide = torch.promote_types(input.dtype, torch.float32)
        loss = (F.softplus(input.to(wide)) - target.to(wide) * input.to(wide)).to(torch.promote_types(input.dtype,
                                                                                                      target.dtype))
    return _reduce(_weighted(loss, weight, flaws), reduction, flaws)


def bce_mutant(*flaws):
    assert set(flaws) <= FLAWS, flaws

    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return _bce(input, target, weight, reduction, flaws)

    return binary_cross_entropy


def bce_legacy(*flaws):
    """torch's whole signature, with the deprecated size_average and reduce."""
    def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
        return _bce(input, target, weight, reduction, flaws, size_average, reduce)

    return binary_cross_entropy


def bce_reduction_before_weight(input, target, reduction="mean", weight=None):
    """The parameters in another order than torch's: right by keyword, wrong by position."""
    return _bce(input, target, weight, reduction, ())


def logits_mutant(*flaws):
    assert set(flaws) <= FLAWS, flaws

    def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
        return _logits(input, target, weight, pos_weight, reduction, flaws)

    return binary_cross_entropy_with_logits


def grad_without_floor(input, target):
    """The hand-derived gradient without notebook 01's floor max(p(1 - p), 1e-12)."""
    return (input - target) / (input * (1 - input)) / input.numel()


def grad_cancelling_floor(input, target):
    """The floor on p - p**2, which cancels near p = 1, instead of p * (1 - p)."""
    return (input - target) / torch.clamp(input - input ** 2, min=1e-12) / input.numel()


def grad_with_floor(input, target):
    return (input - target) / torch.clamp(input * (1 - input), min=1e-12) / input.numel()


# --- what a module or function keeps from one call to the next ------------------------------------

class BCELossClonesWeight(torch.nn.Module):
    """Keeps a copy of the weight it is built with: changing the caller's tensor later changes nothing."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", None if weight is None else weight.clone())
        self.reduction = reduction

    def forward(self, input, target):
        return _bce(input, target, self.weight, self.reduction, ())


class BCELossCachesResult(torch.nn.Module):
    """Returns its first result again on every later call with a target of the same shape."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction
        self._kept = {}

    def forward(self, input, target):
        key = tuple(input.shape)
        if key not in self._kept:
            self._kept[key] = _bce(input, target, self.weight, self.reduction, ())
        return self._kept[key]


class BCELossKeepsFirstShape(torch.nn.Module):
    """Counts the elements of the first input once, and divides every later mean by that count."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction
        self._n = None

    def forward(self, input, target):
        if self._n is None:
            self._n = input.numel()
        loss = _bce(input, target, self.weight, self.reduction, ())
        if self.reduction == "mean" and input.numel() != self._n:
            loss = loss * (input.numel() / self._n)
        return loss


class BCELossNotPersistent(torch.nn.Module):
    """Registers the weight with persistent=False: it moves with the module but is not in the state_dict."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.reduction = reduction

    def forward(self, input, target):
        return _bce(input, target, self.weight, self.reduction, ())


class BCELossFixedReduction(torch.nn.Module):
    """Reads the reduction once, in __init__: setting module.reduction later changes nothing."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction
        self._reduce = lambda loss: _reduce(loss, _reduction(reduction, ()), ())

    def forward(self, input, target):
        return self._reduce(_weighted(_bce(input, target, None, "none", ()), self.weight, ()))


class BCEWithLogitsLossClonesPosWeight(torch.nn.Module):
    """Keeps a float64 copy of pos_weight, made once in __init__ (the weight itself is kept)."""

    def __init__(self, weight=None, pos_weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self._pos = None if pos_weight is None else pos_weight.double()
        self.reduction = reduction

    def forward(self, input, target):
        return _logits(input, target, self.weight, self._pos, self.reduction, ())


_BY_ID = {}


def logits_pos_weight_by_id(input, target, weight=None, pos_weight=None, reduction="mean"):
    """Looks pos_weight's float copy up by id(), saved the first time it meets the tensor."""
    if pos_weight is not None:
        if id(pos_weight) not in _BY_ID:
            _BY_ID.clear()
            _BY_ID[id(pos_weight)] = (pos_weight, pos_weight.to(input.dtype).clone())
        pos_weight = _BY_ID[id(pos_weight)][1]
    return _logits(input, target, weight, pos_weight, reduction, ())


_LAST = {}


def bce_remembers_last_call(input, target, weight=None, reduction="mean"):
    """Returns the previous result when called again with the very same tensors (by id())."""
    key = (id(input), id(target), id(weight), reduction)
    if _LAST.get("key") != key:
        _LAST.update(key=key, refs=(input, target, weight), value=_bce(input, target, weight, reduction, ()))
    return _LAST["value"]


# --- a shortcut taken only where the judge's calls record gradients or not --------------------------

def bce_shortcut_without_grad(input, target, weight=None, reduction="mean"):
    """Under torch.no_grad() (evaluation), a 'faster' form that clamps the probabilities instead of the logs."""
    if torch.is_grad_enabled():
        return _bce(input, target, weight, reduction, ())
    _bce(input.reshape(-1)[:0], target.reshape(-1)[:0], None, reduction, ())  # the checks of the reduction
    if not bool(((input >= 0) & (input <= 1)).all()) or not bool(((target >= 0) & (target <= 1)).all()):
        raise RuntimeError("all elements of input and target should be between 0 and 1")
    p = input.clamp(1e-7, 1 - 1e-7)
    loss = -(target * torch.log(p) + (1 - target) * torch.log1p(-p))
    return _reduce(_weighted(loss, weight, ()), _reduction(reduction, ()), ())


def logits_shortcut_without_grad(input, target, weight=None, pos_weight=None, reduction="mean"):
    """Under torch.no_grad(), log(sigmoid(x)) instead of logsigmoid(x): -inf, then inf, for large logits."""
    if torch.is_grad_enabled():
        return _logits(input, target, weight, pos_weight, reduction, ())
    _logits(input.reshape(-1)[:0], target.reshape(-1)[:0], None, None, reduction, ())
    _sizes(input, target, ())
    log_sig = torch.log(torch.sigmoid(input))
    if pos_weight is not None:
        log_sig = log_sig * (1 + (pos_weight.to(input.dtype) - 1) * target)
    return _reduce(_weighted((1 - target) * input - log_sig, weight, ()), _reduction(reduction, ()), ())


# --- a hand-derived backward that cannot be differentiated again --------------------------------------

class _OnceLogits(torch.autograd.Function):
    """The loss per element from logits, with notebook 01's hand-derived gradients, sigmoid(x) - y with
    respect to x and -x with respect to y, marked @once_differentiable."""

    @staticmethod
    def forward(ctx, input, target):
        ctx.save_for_backward(input, target)
        return (1 - target) * input - F.logsigmoid(input)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        input, target = ctx.saved_tensors
        return grad * (torch.sigmoid(input) - target), grad * -input


def logits_once_differentiable(input, target, weight=None, pos_weight=None, reduction="mean"):
    """torch's values and first gradients (no pos_weight here), but no second derivative."""
    if pos_weight is not None:
        return _logits(input, target, weight, pos_weight, reduction, ())
    reduction = _reduction(reduction, ())
    _sizes(input, target, ())
    return _reduce(_weighted(_OnceLogits.apply(input, target), weight, ()), reduction, ())


class _OnceBCE(torch.autograd.Function):
    """The loss per element, with the hand-derived gradients of notebook 01, (p - y) / max(p(1 - p), 1e-12)
    with respect to p and log(1 - p) - log(p) (each clamped at -100) with respect to y, @once_differentiable."""

    @staticmethod
    def forward(ctx, input, target):
        ctx.save_for_backward(input, target)
        return -(target * torch.log(input).clamp(min=-100) + (1 - target) * torch.log1p(-input).clamp(min=-100))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        input, target = ctx.saved_tensors
        return (grad * (input - target) / torch.clamp(input * (1 - input), min=1e-12),
                grad * (torch.log1p(-input).clamp(min=-100) - torch.log(input).clamp(min=-100)))


def bce_once_differentiable(input, target, weight=None, reduction="mean"):
    """torch's values and first gradients through a hand-derived backward, but no second derivative."""
    _bce(input.detach().reshape(-1)[:0], target.detach().reshape(-1)[:0], None, reduction, ())  # reduction checks
    reduction = _reduction(reduction, ())
    _sizes(input, target, ())
    if not bool(((input >= 0) & (input <= 1)).all()) or not bool(((target >= 0) & (target <= 1)).all()):
        raise RuntimeError("all elements of input and target should be between 0 and 1")
    return _reduce(_weighted(_OnceBCE.apply(input, target), weight, ()), reduction, ())


class BCELossTorchAfterTheFirstCall(torch.nn.Module):
    """Computes its first call itself, then hands every later call to torch's own loss."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = reduction
        self.calls = 0

    def forward(self, input, target):
        self.calls += 1
        if self.calls == 1:
            return _bce(input, target, self.weight, self.reduction, ())
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)
