"""Notebook 03, sigmoid then BCELoss: the gradient students predict at z = -30, and the
gradient of a logistic regression they derive, each computed here by torch's autograd."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import salt
from ..exercises import quantity, reference


def _sigmoid_then_bce_grad(z: float, y: float, dtype: torch.dtype) -> torch.Tensor:
    """d loss / dz by autograd through torch.sigmoid and F.binary_cross_entropy, at one logit."""
    logit = torch.tensor(z, dtype=dtype, requires_grad=True)
    F.binary_cross_entropy(torch.sigmoid(logit), torch.tensor(y, dtype=dtype)).backward()
    return logit.grad


@quantity("03-grad-at-minus-30",
          "the gradient of sigmoid-then-F.binary_cross_entropy at z = -30 with y = 1, in float32")
def _():
    return _sigmoid_then_bce_grad(-30.0, 1.0, torch.float32)


@quantity("03-grad-at-minus-30-float64",
          "the gradient of sigmoid-then-F.binary_cross_entropy at z = -30 with y = 1, in float64")
def _():
    return _sigmoid_then_bce_grad(-30.0, 1.0, torch.float64)


def _batch(g: torch.Generator, rows: int, features: int, *, scale: float = 1.0, soft: bool = False,
           bias: bool = False, dtype: torch.dtype = torch.float32, least: float = 0.0) -> dict:
    """x of shape (rows, features), w of shape (features,), labels y of shape (rows,); the rows of x
    whose logit x @ w is smaller than ``least`` in size are scaled up to it (whatever the draw, every
    logit then is at least that large: the draws with the autograder's secret are any draws)."""
    x = torch.randn(rows, features, generator=g, dtype=torch.float64)
    if bias:
        x[:, -1] = 1.0
    w = scale * torch.randn(features, generator=g, dtype=torch.float64)
    size = (x @ w).abs()
    small = size < least
    if bool(small.any()):
        x[small] *= (least / size[small].clamp(min=1e-6)).unsqueeze(1)
    y = torch.rand(rows, generator=g, dtype=torch.float64) if soft else \
        torch.randint(0, 2, (rows,), generator=g).to(torch.float64)
    return {"x": x.to(dtype), "w": w.to(dtype), "y": y.to(dtype)}


def _cases() -> list[tuple[str, dict]]:
    g = salt.generator(3)
    return [("a batch of 8 rows and 3 features, 0/1 labels (float32)", _batch(g, 8, 3)),
            ("a batch of 200 rows and 5 features, soft labels (float32)", _batch(g, 200, 5, soft=True)),
            ("a batch of 30 rows whose last feature is a column of ones, a bias (float32)",
             _batch(g, 30, 4, bias=True))]


def _edge_cases() -> list[tuple[str, dict]]:
    g = salt.generator(4)
    return [("logits from 40 to several hundred in size, where the sigmoid saturates (float32)",
             _batch(g, 16, 3, scale=300.0, least=40.0)),
            ("a single row (N = 1)", _batch(g, 1, 4)),
            ("a single feature (D = 1)", _batch(g, 12, 1)),
            ("float64, soft labels", _batch(g, 50, 6, soft=True, dtype=torch.float64)),
            ("logits from 50 to several hundred in size (float64)",
             _batch(g, 20, 3, scale=300.0, dtype=torch.float64, least=50.0))]


def _logistic_gradient(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Autograd's gradient, with respect to w, of the mean BCE of the logits x @ w."""
    w = w.detach().clone().requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(x @ w, y)
    return torch.autograd.grad(loss, w)[0]


_HINT = ("the mean loss averages over the N rows, and by the chain rule row i contributes "
         "(sigmoid(z_i) - y_i) * x_i; avoid dividing by p(1 - p), which is 0 where sigmoid saturates, "
         "and keep the dtype of x.")

reference("03-logistic-gradient", "the gradient of a logistic regression's mean BCE with respect to w",
          _cases, hint=_HINT)(_logistic_gradient)
reference("03-logistic-gradient-edges",
          "the gradient of a logistic regression's mean BCE with respect to w, at the edges",
          _edge_cases, hint=_HINT)(_logistic_gradient)
