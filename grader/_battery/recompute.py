"""What the named diagnoses (:mod:`grader._battery.diagnose`) compare and recompute with torch:
float64 copies, a case's tolerances, the reduction the arguments ask for, and torch's loss on
the same arguments with one of them changed. Nothing here calls the student's code."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.nn import _reduction as legacy

from .answers import compare
from .cases import TOLERANCES, base_loss

#: The deprecated arguments that, when given, decide the reduction instead of ``reduction``.
_LEGACY = ("size_average", "reduce")


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def _tolerance(case) -> tuple[float, float]:
    return TOLERANCES.get(getattr(case, "dtype", None), TOLERANCES[torch.float32])


def _close(actual, other, case, scale: float = 1.0) -> bool:
    """Whether ``actual`` equals ``other`` within ``scale`` times the tolerance."""
    if other is None or other.shape != actual.shape:
        return False
    rtol, atol = _tolerance(case)
    infinite = actual.isinf() | other.isinf()  # compare allows anything where ``other`` is infinite
    return bool((actual[infinite] == other[infinite]).all()) and \
        compare(actual, other, scale * rtol, scale * atol) is None


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
