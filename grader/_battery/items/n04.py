"""Notebook 04, the functional form and the module: what the student predicts about what a
loss module keeps. Each number is computed here with torch, by running the exercise's code."""

from __future__ import annotations

import torch
from torch import nn

from ..exercises import quantity


@quantity("04-shared-weight", "the value of criterion(p, y) after w.mul_(3), "
                              "for criterion = nn.BCELoss(weight=w) built before")
def _():
    w = torch.tensor([1.0, 1.0])
    criterion = nn.BCELoss(weight=w)
    w.mul_(3)
    p = torch.tensor([0.5, 0.5])
    y = torch.tensor([1.0, 0.0])
    return criterion(p, y)


class _Scorer(nn.Module):
    """The model of the exercise, as its text shows it."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())
        self.criterion = nn.BCELoss(weight=torch.tensor([2.0]))
        self.unweighted = nn.BCELoss()
        self.class_weight = torch.tensor([1.0, 3.0])


@quantity("04-state-dict-entries", "the number of entries of Scorer().state_dict()")
def _():
    return len(_Scorer().state_dict())
