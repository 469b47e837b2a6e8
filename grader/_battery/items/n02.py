"""Notebook 02 (BCELoss on a 2-D tensor): exercise 1 asks for the value of a weighted
binary cross-entropy, with 'sum' and with 'mean', on a small batch, before the student runs
it. torch computes both here, on the batch the exercise shows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..exercises import quantity


def weighted_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The exercise's ``p_small``, ``y_small`` and ``w_small``: a 2 x 3 batch of probabilities
    0.5, its targets, and a weight of shape (2, 1), one per row."""
    p_small = torch.full((2, 3), 0.5)
    y_small = torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 1.0]])
    w_small = torch.tensor([[2.0], [1.0]])
    return p_small, y_small, w_small


@quantity("02-weighted-sum", "F.binary_cross_entropy(p_small, y_small, weight=w_small, reduction='sum')")
def _weighted_sum():
    p_small, y_small, w_small = weighted_batch()
    return F.binary_cross_entropy(p_small, y_small, weight=w_small, reduction="sum")


@quantity("02-weighted-mean", "F.binary_cross_entropy(p_small, y_small, weight=w_small) with reduction='mean'")
def _weighted_mean():
    p_small, y_small, w_small = weighted_batch()
    return F.binary_cross_entropy(p_small, y_small, weight=w_small)
