"""The battery: every case on which a student's BCE is compared with torch's.

A :class:`Case` only describes its inputs; :mod:`grader._battery.judge` runs it on each
device and compares the student's function with torch there. Expected values
are never stored: they are whatever torch computes in the same run.

Cases pass the student only the keyword arguments they are about
(``weight``, ``pos_weight``, ``reduction``), so an exercise that implements
part of the signature can be checked on the categories it covers. What a case is
and the constants of the battery are in :mod:`.spec`, the hints in :mod:`.hints`, the
cases themselves in :mod:`.families` (ordinary inputs) and :mod:`.edges`.
"""

from __future__ import annotations

import functools

from . import edges, families
from .edges import gradient_reference
from .hints import HINTS
from .spec import (BCE, BCE_WITH_LOGITS, CATEGORIES, CHECKABLE, FUNCTIONS, GRAD_BCE, GRAD_BCE_WITH_LOGITS,
                   GRADIENTS, LARGE_SHAPE, LAYOUTS, LEGACY, NOT_FOR, PARAMETERS, PER_CALL_CATEGORIES, TOLERANCES,
                   Case, base_loss, maker, takes_logits)

__all__ = ["BCE", "BCE_WITH_LOGITS", "CATEGORIES", "CHECKABLE", "FUNCTIONS", "GRAD_BCE", "GRAD_BCE_WITH_LOGITS",
           "GRADIENTS", "HINTS", "LARGE_SHAPE", "LAYOUTS", "LEGACY", "NOT_FOR", "PARAMETERS", "PER_CALL_CATEGORIES",
           "TOLERANCES", "Case", "base_loss", "battery", "categories_for", "gradient_reference", "maker",
           "takes_logits"]


@functools.lru_cache(maxsize=None)
def _battery(function: str) -> tuple[Case, ...]:
    if function in GRADIENTS:
        return tuple(edges.gradient_cases(function, _battery(base_loss(function))))
    return (
        *families.article_cases(function),
        *families.shape_cases(function),
        *families.layout_cases(function),
        *families.reduction_cases(function),
        *families.weight_cases(function),
        *families.pos_weight_cases(function),
        *edges.edge_cases(function),
        *families.dtype_cases(function),
        *edges.gradient_checks(function),
        *edges.error_cases(function),
    )


def battery(function: str) -> tuple[Case, ...]:
    """Every case for ``function`` (one of :data:`CHECKABLE`), in report order."""
    if function not in CHECKABLE:
        raise ValueError(f"no battery for {function!r}; choose one of {', '.join(CHECKABLE)}")
    return _battery(function)


def categories_for(function: str) -> list[str]:
    """The categories that apply to ``function``, in report order."""
    return [c for c in CATEGORIES if c not in NOT_FOR[function]]
