"""Notebook 06 (the capstone): the number students predict before running a cell."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..exercises import quantity

#: The group of rows of the prediction: the share of positives q, and the pos_weight w.
SHARE, POS_WEIGHT = 0.1, 4.0


def best_logit(share: float, pos_weight: float) -> torch.Tensor:
    """The logit z that minimises the expected loss of a group of rows of which ``share`` are positive,
    with ``pos_weight``: BCEWithLogitsLoss with the soft target ``share``, minimised by Newton's method
    in float64 (the loss is convex in z; autograd gives its first and second derivatives), until a step
    no longer moves z beyond rounding (a handful of steps: Newton's method converges quadratically here)."""
    z = torch.zeros((), dtype=torch.float64, requires_grad=True)
    target = torch.tensor(share, dtype=torch.float64)
    weight = torch.tensor(pos_weight, dtype=torch.float64)
    for _ in range(50):
        loss = F.binary_cross_entropy_with_logits(z, target, pos_weight=weight)
        (slope,) = torch.autograd.grad(loss, z, create_graph=True)
        (curvature,) = torch.autograd.grad(slope, z)
        step = slope.detach() / curvature
        with torch.no_grad():
            z -= step
        if not bool(step.abs() > 1e-15 * (1 + z.detach().abs())):  # (a NaN step stops it too)
            break
    return z.detach()


@quantity("06-weighted-probability",
          f"the probability sigmoid(z*) at the logit z* that minimises the expected BCEWithLogitsLoss of a "
          f"group of rows of which a share q = {SHARE:g} is positive, with pos_weight w = {POS_WEIGHT:g}")
def _():
    return torch.sigmoid(best_logit(SHARE, POS_WEIGHT))


@quantity("06-threshold-equivalent",
          f"the share of positives q at which the loss-minimising probability sigmoid(z*) of a model trained with "
          f"pos_weight w = {POS_WEIGHT:g} is exactly 0.5")
def _():
    # sigmoid(z*) grows with q: bisect on q in float64 until sigmoid(best_logit(q, w)) is 0.5
    low, high = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    for _ in range(60):
        middle = (low + high) / 2
        if torch.sigmoid(best_logit(middle.item(), POS_WEIGHT)) < 0.5:
            low = middle
        else:
            high = middle
    return (low + high) / 2
