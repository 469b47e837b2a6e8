"""Notebook 05, BCEWithLogitsLoss and pos_weight: the numbers students predict and the
gradient they derive. Every answer is computed here with torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import salt
from ..exercises import quantity, reference


def _loss_at_1000() -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.tensor([1000.0], requires_grad=True)
    loss = torch.nn.BCEWithLogitsLoss()(z, torch.tensor([0.0]))
    loss.backward()
    return loss.detach(), z.grad[0]


@quantity("05-loss-at-1000", "the loss of nn.BCEWithLogitsLoss() at logit 1000 and target 0, in float32")
def _():
    return _loss_at_1000()[0]


@quantity("05-gradient-at-1000",
          "the gradient of nn.BCEWithLogitsLoss() with respect to the logit at logit 1000 and target 0, in float32")
def _():
    return _loss_at_1000()[1]


def _hard(g: torch.Generator, shape) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=g).float()


def _cases() -> list[tuple[str, dict]]:
    """What the notebook's visible test shows: moderate logits in float32."""
    g = salt.generator(50)
    return [
        ("five logits, hard targets, pos_weight 3",
         {"z": torch.tensor([-2.0, -0.5, 0.5, 1.0, 3.0]), "y": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]),
          "pos_weight": torch.tensor(3.0)}),
        ("soft targets, pos_weight 0.5",
         {"z": torch.tensor([-1.0, 0.0, 0.25, 2.0]), "y": torch.tensor([0.3, 0.5, 0.9, 0.1]),
          "pos_weight": torch.tensor(0.5)}),
        ("a 4 x 3 batch, pos_weight 1 (no weighting)",
         {"z": torch.randn(4, 3, generator=g), "y": _hard(g, (4, 3)), "pos_weight": torch.tensor(1.0)}),
    ]


def _hard_cases() -> list[tuple[str, dict]]:
    """The hidden test: extreme logits, float64, logits of exactly 0, and pos_weight tensors
    that broadcast against the logits."""
    g = salt.generator(51)
    extreme = torch.tensor([1e4, -1e4, 100.0, -100.0, 30.0, -30.0, 1e4, -1e4])
    return [
        ("logits of +-1e4, +-100 and +-30 in float32, pos_weight 4",
         {"z": extreme, "y": torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]), "pos_weight": torch.tensor(4.0)}),
        ("logits of exactly 0, hard and soft targets",
         {"z": torch.zeros(4), "y": torch.tensor([0.0, 1.0, 0.5, 0.25]), "pos_weight": torch.tensor(2.0)}),
        ("a 6 x 4 batch in float64 with one pos_weight per class, shape [4]",
         {"z": 3 * torch.randn(6, 4, generator=g, dtype=torch.float64), "y": _hard(g, (6, 4)).double(),
          "pos_weight": torch.tensor([0.5, 1.0, 2.0, 10.0], dtype=torch.float64)}),
        ("extreme logits in float64 with pos_weight of shape [2] and soft targets",
         {"z": torch.tensor([[800.0, -800.0], [-1e4, 1e4], [0.0, 0.0]], dtype=torch.float64),
          "y": torch.tensor([[0.0, 1.0], [0.7, 0.2], [1.0, 0.0]], dtype=torch.float64),
          "pos_weight": torch.tensor([3.0, 0.25], dtype=torch.float64)}),
        ("images [N, C, H, W] = [2, 3, 2, 2] with pos_weight of shape [3, 1, 1]",
         {"z": 4 * torch.randn(2, 3, 2, 2, generator=g), "y": _hard(g, (2, 3, 2, 2)),
          "pos_weight": torch.tensor([1.0, 2.0, 5.0]).view(3, 1, 1)}),
    ]


_HINT = ("differentiate the per-element loss (1 - y) z - [1 + (p_w - 1) y] log sigmoid(z), using "
         "d/dz log sigmoid(z) = 1 - sigmoid(z); evaluate it with torch.sigmoid, which is finite at every "
         "logit (exp(z) / (1 + exp(z)) is nan at z = 1e4), and keep the dtype of z and the broadcast "
         "shape of z, y and pos_weight")


def _autograd(z: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    leaf = z.detach().clone().requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(leaf, y, pos_weight=pos_weight, reduction="none")
    (gradient,) = torch.autograd.grad(loss, leaf, torch.ones_like(loss))
    return gradient


@reference("05-pos-weight-gradient",
           "the gradient of the per-element BCE with logits and pos_weight with respect to the logits",
           _cases, hint=_HINT)
def _(z, y, pos_weight):
    return _autograd(z, y, pos_weight)


@reference("05-pos-weight-gradient-hard",
           "the gradient of the per-element BCE with logits and pos_weight with respect to the logits, "
           "at extreme logits, in float64 and with pos_weight broadcasting",
           _hard_cases, hint=_HINT)
def _(z, y, pos_weight):
    return _autograd(z, y, pos_weight)
