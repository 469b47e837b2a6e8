"""Notebook 01 (BCELoss on a 1-D tensor): the numbers of its prediction exercise, the loss of one
prediction for the soft target y = 0.3 at its minimum over p, and where that minimum lies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..exercises import quantity

#: The target of the exercise, and the grid of p on which torch looks for the minimum.
SOFT_TARGET = 0.3
GRID_POINTS = 100_001


def _losses_on_the_grid() -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.linspace(0, 1, GRID_POINTS, dtype=torch.float64)
    return p, F.binary_cross_entropy(p, torch.full_like(p, SOFT_TARGET), reduction="none")


@quantity("01-soft-target-best-loss",
          "the smallest loss of one prediction p in [0, 1] for the target y = 0.3, in nats")
def _():
    return _losses_on_the_grid()[1].min()


@quantity("01-soft-target-best-p",
          "the probability p in [0, 1] at which the loss of one prediction for the target y = 0.3 is smallest")
def _():
    p, losses = _losses_on_the_grid()
    return p[losses.argmin()]
