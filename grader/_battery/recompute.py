"""What the named diagnoses (:mod:`grader._battery.diagnose`) compare and recompute with torch:
float64 copies, a case's tolerances, the reduction the arguments ask for, and torch's loss on
the same arguments with one of them changed; and torch's results and gradients computed in float64,
which the judge accepts beside its own (:func:`exact`). Nothing here calls the student's code."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.nn import _reduction as legacy

from .answers import close
from .cases import TOLERANCES, base_loss

#: The deprecated arguments that, when given, decide the reduction instead of ``reduction``.
_LEGACY = ("size_average", "reduce")


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def _tolerance(case) -> tuple[float, float]:
    return TOLERANCES.get(getattr(case, "dtype", None), TOLERANCES[torch.float32])


def _close(actual, other, case, scale: float = 1.0) -> bool:
    """Whether ``actual`` equals ``other`` within ``scale`` times the tolerance (:func:`.answers.close`:
    a diagnosis asks this of every mistake it knows, for every case a wrong function fails, and needs
    no account of what differs)."""
    if other is None or other.shape != actual.shape:
        return False
    rtol, atol = _tolerance(case)
    return close(actual, other, scale * rtol, scale * atol)


def _bad(actual, expected, case) -> torch.Tensor:
    """The elements where ``actual`` differs from ``expected`` beyond the tolerance."""
    rtol, atol = _tolerance(case)
    return ~torch.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def _reduction(args: dict) -> str:
    """The reduction torch applies, from ``reduction`` or the deprecated arguments."""
    if any(args.get(k) is not None for k in _LEGACY):
        return legacy.legacy_get_string(args.get("size_average"), args.get("reduce"), emit_warning=False)
    return args.get("reduction", "mean")


def _asked(args: dict) -> str:
    if any(args.get(k) is not None for k in _LEGACY):
        return f"size_average and reduce (here meaning reduction={_reduction(args)!r})"
    return "reduction='mean' (torch's default)" if "reduction" not in args else f"reduction={args['reduction']!r}"


def _shown(t: torch.Tensor, where: torch.Tensor) -> str:
    """The first few values of ``t`` where ``where`` holds."""
    return ", ".join(f"{v:.3g}" for v in t[where].flatten()[:4].tolist())


def _torch(function: str, args: dict, **changes):
    """torch's loss in float64 with some arguments changed (a change to None drops one), or None."""
    call = {k: v for k, v in args.items() if not ("reduction" in changes and k in _LEGACY)}
    call.update(changes)
    call = {k: (v.to(torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in call.items() if v is not None}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(F, base_loss(function))(**call)
    except (RuntimeError, ValueError, TypeError):
        return None


def _finish(terms: torch.Tensor, args: dict, reduction: str, finite: bool = False):
    """Per-element losses weighted and reduced as torch does, in float64; None if the weight does not
    fit, or, with ``finite``, if the result is not finite."""
    terms = terms.to(torch.float64)
    if args.get("weight") is not None:
        w = _f64(args["weight"])
        if torch.broadcast_shapes(w.shape, terms.shape) != terms.shape:
            return None
        terms = terms * w
    out = terms.mean() if reduction == "mean" else terms.sum() if reduction == "sum" else terms
    return None if finite and not bool(torch.isfinite(out).all()) else out


def exact(function, base: dict, lay_out, upstream: torch.Tensor | None, wrt: list[str]) -> tuple:
    """torch's result of ``function`` on the arguments ``base`` (laid out by ``lay_out``), and its
    gradients of ``(result * upstream).sum()`` with respect to ``wrt`` (None without ``upstream``),
    computed by torch in float64 on the CPU from the same values: what torch's own would be without
    rounding to a narrower dtype. ``(None, None)`` where every argument is float64 already, or where
    ``function`` does not take float64 arguments.

    torch's own float32 and float16 results can be less exact than the tolerance: with pos_weight,
    near sigmoid(x) = 1, its float32 backward subtracts two numbers of a few units to get one of a
    hundredth; in float16 its loss with logits does the same. How often that happens depends on the
    draw, so the judge accepts a result as close to these as to torch's own."""
    floating = [v for v in base.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if all(v.dtype == torch.float64 for v in floating):
        return None, None
    try:
        leaves = {k: (v.detach().to("cpu", torch.float64).requires_grad_(k in wrt and upstream is not None)
                      if isinstance(v, torch.Tensor) and v.is_floating_point() else
                      v.to("cpu") if isinstance(v, torch.Tensor) else v) for k, v in base.items()}
        args = lay_out(leaves)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = function(**args)
            gradients = None if upstream is None or not out.requires_grad else torch.autograd.grad(
                (out * upstream.detach().to("cpu", torch.float64)).sum(), [args[k] for k in wrt], allow_unused=True)
            return out.detach(), gradients
    except (RuntimeError, ValueError, TypeError):
        return None, None
