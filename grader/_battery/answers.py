"""Reading what the student's process sent back, without trusting it, and comparing values.

:class:`Seen` reads one answer to a ``call`` request field by field: anything that is not
what the judge asked for raises :class:`grader._battery.wire.Unreadable`, which fails the
case it was for. :func:`compare` says how far a value is from torch's.
"""

from __future__ import annotations

from typing import Any

import torch

from .wire import Unreadable, text


def compare(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float,
            exact: torch.Tensor | None = None) -> dict | None:
    """None when ``actual`` matches ``expected`` within the tolerance (nan where torch has
    nan, the same infinities), else what differs most. With ``exact`` (torch's result computed
    in float64, :func:`recompute.exact`), matching it instead passes too: torch's own float32
    and float16 arithmetic is sometimes the less exact of the two."""
    found = _compare(actual, expected, rtol, atol)
    if found is not None and exact is not None and _compare(actual, exact, rtol, atol) is None:
        return None
    return found


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    """Whether :func:`compare` finds nothing that differs, of two tensors of the same shape: torch's
    own closeness (|a - e| <= atol + rtol * |e|, nan with nan, an infinity with the same one), in
    float64, one operation, without working out what differs."""
    a, e = (t.detach().to("cpu", torch.float64) for t in (actual, expected))
    return bool(torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True).all())


def _compare(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> dict | None:
    if actual.shape != expected.shape:
        return {"reason": f"shape {tuple(actual.shape)} instead of {tuple(expected.shape)}"}
    if close(actual, expected, rtol, atol):  # exactly the test below, where it holds everywhere
        return None
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    allowed = atol + rtol * e.abs()
    nan_mismatch = a.isnan() != e.isnan()
    both_inf = a.isinf() & e.isinf()
    diff = (a - e).abs()
    diff = torch.where(a.isnan() & e.isnan(), torch.zeros_like(diff), diff)
    diff = torch.where(both_inf & (a == e), torch.zeros_like(diff), diff)
    # where torch's value is infinite the allowed difference is too: only the same infinity matches
    bad = nan_mismatch | (e.isinf() & (a != e)) | (diff > allowed) | (diff.isnan())
    if not bool(bad.any()):
        return None
    score = torch.where(bad, torch.where(diff.isnan(), torch.full_like(diff, float("inf")), diff),
                        torch.full_like(diff, -1.0))
    flat = int(score.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape)) if a.dim() else ()
    return {"index": index, "expected": e.flatten()[flat].item(), "actual": a.flatten()[flat].item(),
            "difference": diff.flatten()[flat].item(), "mismatched": int(bad.sum()), "total": a.numel(),
            "rtol": rtol, "atol": atol}


#: The key under which the judge adds to an answer what it read in the student's source
#: (:mod:`grader.instructor.scan.reach`): where the code the graded name reaches uses torch's
#: own loss. The notebook's process could write this key too, but only against itself.
IN_THE_SOURCE = "torch's loss in the source"


class Seen:
    """One answer to a ``call`` request, read without trusting it."""

    def __init__(self, answer: Any):
        if not isinstance(answer, dict):
            raise Unreadable("the answer is not a record")
        if "refused" in answer:
            raise Unreadable(text(answer["refused"], 200))
        self.timed_out = answer.get("timed_out") is True
        error = answer.get("error")
        if error is not None and not isinstance(error, dict):
            raise Unreadable("an error of the wrong form")
        self.error = error
        self.types = [t for t in (error or {}).get("types") or [] if isinstance(t, str)][:50]
        self.forbidden = sorted({text(op, 100) for op in answer.get("forbidden") or []})[:20]
        #: Where the student's source uses torch's own loss, as the judge read it (added by the
        #: judge to the answer, never believed from the notebook's process: see :data:`IN_THE_SOURCE`).
        self.in_the_source = [text(use, 200) for use in answer.get(IN_THE_SOURCE) or []][:20]
        self.changed = [k for k in answer.get("changed") or [] if isinstance(k, str)][:10]
        self.value = answer.get("value")
        self.not_a_tensor = answer.get("not a tensor")
        self.value_device = text(answer.get("value device", "cpu"), 50)
        self.gradients = answer.get("gradients")
        self.without_grad = answer.get("without grad")
        self.ops, self.lines = answer.get("ops"), answer.get("lines")
        self.stdout, self.stderr = text(answer.get("stdout"), 4000), text(answer.get("stderr"), 4000)
        self.warnings = [text(w, 300) for w in answer.get("warnings") or []][:20]
        ok = not self.timed_out and error is None
        if ok and self.not_a_tensor is None and "value" in answer and not isinstance(self.value, (torch.Tensor, dict)):
            raise Unreadable("a value that is neither a tensor nor a description")
        if ok and self.not_a_tensor is None and "value" not in answer:
            raise Unreadable("no value")

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.error is None

    def error_text(self) -> str:
        return text((self.error or {}).get("text") or (self.types[:1] or ["an exception"])[0], 2000)

    def frames(self) -> str:
        return text((self.error or {}).get("frames"), 2000)

    def raised(self, kind: type) -> bool:
        return kind.__name__ in self.types

    def in_place(self) -> bool:
        return bool((self.error or {}).get("in place"))


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Unreadable("a count that is not a whole number")
    return value


def _same_device(shown: str, device: torch.device) -> bool:
    try:
        seen = torch.device(shown)
    except (RuntimeError, TypeError):
        return False
    return seen.type == device.type and (seen.index or 0) == (device.index or 0)
