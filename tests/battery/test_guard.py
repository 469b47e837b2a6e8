"""What one guarded call of student code records, and what the timing of the vectorization
probe asks of the student's process."""

import time

import torch
import torch.nn.functional as F

from grader._battery import observe, ownwork
from grader._battery.guard import call_guarded


def _calls_torchs_bce(p, t):
    return F.binary_cross_entropy(p, t)


def _own_bce(p, t):
    return -(t * torch.log(p) + (1 - t) * torch.log1p(-p)).mean()


P, T = torch.tensor([0.2, 0.7, 0.9]), torch.tensor([0.0, 1.0, 1.0])


def test_an_ordinary_call_names_torchs_bce_without_counting_operators():
    call = call_guarded(_calls_torchs_bce, (P, T))
    assert call.ok
    assert call.forbidden_ops == ["aten::binary_cross_entropy"]
    assert call.op_count == 0  # the dispatch mode, which counts, did not run
    assert call_guarded(_own_bce, (P, T)).forbidden_ops == []


def test_a_call_that_counts_counts_every_operator():
    counted = call_guarded(_own_bce, (P, T), count_ops=True)
    assert counted.op_count >= 6  # log, mul, rsub, log1p, neg, mul, add, neg, mean
    assert counted.forbidden_ops == []
    assert call_guarded(_calls_torchs_bce, (P, T), count_ops=True).forbidden_ops == ["aten::binary_cross_entropy"]


def test_where_the_kernels_are_not_hooked_the_dispatch_mode_names_torchs_bce(monkeypatch):
    """On a torch whose kernels ownwork cannot hook (older than 2.9), the mode is what sees it."""
    monkeypatch.setattr(ownwork, "installed", lambda: False)

    class Blind:  # a watch that sees nothing, as where the hooks are missing
        calls: list = []

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            pass

    monkeypatch.setattr(ownwork, "Watch", Blind)
    call = call_guarded(_calls_torchs_bce, (P, T))
    assert call.forbidden_ops == ["aten::binary_cross_entropy"]
    assert call.op_count > 0


def test_the_time_limit_still_stops_a_call_and_restores_the_handlers():
    import signal

    before = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGPROF)

    def spin():  # a Python loop (a loop inside one C call would not see the signal until it returned)
        while True:
            pass

    call = call_guarded(spin, time_limit=0.2)
    assert call.timed_out and not call.ok
    assert (signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGPROF)) == before


def _counting(work_seconds: float):
    calls = []

    def fn(input, target):
        calls.append(1)
        end = time.thread_time() + work_seconds
        while time.thread_time() < end:
            pass
        return _own_bce(input.clamp(0.01, 0.99), target)

    return fn, calls


def _timing_request(**extra):
    g = torch.Generator().manual_seed(0)
    p, t = torch.rand(1 << 12, generator=g), torch.rand(1 << 12, generator=g)
    return {"op": "time", "device": "cpu", "args": [p, t], "repeat": 3, "reference": "binary_cross_entropy",
            "time_limit": 5.0, **extra}


def test_a_function_faster_than_fast_is_timed_once_and_torch_not_at_all():
    fn, calls = _counting(0)
    timed = observe.answer(fn, _timing_request(fast=0.05))
    assert len(calls) == 1
    assert timed["torch seconds"] is None and timed["seconds"] <= 0.05


def test_a_slower_function_is_timed_every_time_and_against_torch():
    fn, calls = _counting(0.03)
    timed = observe.answer(fn, _timing_request(fast=0.01))
    assert len(calls) == 3
    assert timed["seconds"] >= 0.03 and timed["torch seconds"] > 0
    fn, calls = _counting(0)
    timed = observe.answer(fn, _timing_request())  # no "fast": every repeat, and torch
    assert len(calls) == 3 and timed["torch seconds"] > 0
