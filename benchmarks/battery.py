"""How long the whole battery takes on the CPU, next to one call of torch's BCE.

A student's check cell should feel instant: the target is under 1 s once warm
and under 2 s from a cold start (a fresh process: import, then the first run).
A failing check's report draws the student's curve against torch's: gathering
it takes under 0.5 s, whether the function is asked once per curve or once per point.
Times are medians over repeated runs in this same process, because these
machines are noisy; the cold start is measured in fresh subprocesses.

    python benchmarks/battery.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

WARM_TARGET, COLD_TARGET = 1.0, 2.0
#: Gathering the report's figure (grader._battery.sweep) for a function that passes: its curves,
#: torch's and the student's. Asked once per curve, or once per point for a function without
#: ``reduction``.
SWEEP_TARGET = 0.5

# A correct implementation of each function, as a student would write it.
STUDENT = '''
import torch
import torch.nn.functional as F


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _weighted(loss, weight):
    if weight is None:
        return loss
    weighted = loss * weight.to(loss.dtype)  # the loss stays in the input's dtype, as torch's
    if weighted.shape != loss.shape:
        raise RuntimeError("weight does not broadcast to the input")
    return weighted


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    if target.shape != input.shape:
        raise ValueError("target size differs from input size")
    if not bool(((input >= 0) & (input <= 1)).all() and ((target >= 0) & (target <= 1)).all()):
        raise RuntimeError("all elements of input and target should be between 0 and 1")
    loss = -(target * input.log().clamp(min=-100) + (1 - target) * (1 - input).log().clamp(min=-100))
    return _reduce(_weighted(loss, weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
    if target.shape != input.shape:
        raise ValueError("target size differs from input size")
    log_sig = F.logsigmoid(input)
    if pos_weight is not None:
        log_sig = log_sig * (1 + (pos_weight.to(input.dtype).expand_as(input) - 1) * target)
    return _reduce(_weighted((1 - target) * input - log_sig, weight), reduction)
'''

COLD = '''
import time
start = time.perf_counter()
''' + STUDENT + '''
import grader
imported = time.perf_counter()
report = grader.check(binary_cross_entropy)
assert report.passed, str(report)
done = time.perf_counter()
print(imported - start, done - imported)
'''


def one_torch_call(repeat: int = 2000) -> float:
    p, y = torch.rand(5) * 0.9 + 0.05, torch.rand(5)
    for _ in range(100):
        F.binary_cross_entropy(p, y)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        F.binary_cross_entropy(p, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    args = parser.parse_args()

    import grader

    namespace: dict = {}
    exec(compile(STUDENT, "student", "exec"), namespace)

    torch_call = one_torch_call()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"devices run: cpu")
    print(f"one call of torch's F.binary_cross_entropy on 5 elements: {torch_call * 1e6:.1f} us "
          "(median of 2000)")

    ok = True
    for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        fn = namespace[name]
        grader.check(fn, devices=["cpu"])  # warm up
        runs = []
        for _ in range(args.repeat):
            report = grader.check(fn, devices=["cpu"])
            assert report.passed, str(report)
            runs.append(report.seconds)
        warm = statistics.median(runs)
        verdict = "ok" if warm < WARM_TARGET else "OVER TARGET"
        ok &= warm < WARM_TARGET
        print(f"{name} battery, warm: {warm:.3f} s (median of {args.repeat}), "
              f"{warm / torch_call:,.0f} x one torch call; target < {WARM_TARGET:g} s: {verdict}")

    from grader._battery import checks, observe, sweep

    def point_by_point(input, target):  # no reduction: the sweep asks it once per point
        return namespace["binary_cross_entropy"](input, target)

    for name, fn, function in [("per curve", namespace["binary_cross_entropy"], "binary_cross_entropy"),
                               ("per curve", namespace["binary_cross_entropy_with_logits"],
                                "binary_cross_entropy_with_logits"),
                               ("point by point", point_by_point, "binary_cross_entropy")]:
        def gather():
            return sweep.gather(checks.local(fn), function, observe.describe(fn), "cpu", 5.0)

        gather()  # warm up
        runs = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            gather()
            runs.append(time.perf_counter() - started)
        took = statistics.median(runs)
        verdict = "ok" if took < SWEEP_TARGET else "OVER TARGET"
        ok &= took < SWEEP_TARGET
        print(f"the report's figure of {function}, asked {name}: {took:.3f} s (median of {args.repeat}), "
              f"{took / torch_call:,.0f} x one torch call; target < {SWEEP_TARGET:g} s: {verdict}")

    imports, firsts = [], []
    for _ in range(args.repeat):
        done = subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True, check=True)
        imported, first = map(float, done.stdout.split())
        imports.append(imported)
        firsts.append(first)
    imported, first = statistics.median(imports), statistics.median(firsts)
    cold = imported + first
    verdict = "ok" if cold < COLD_TARGET else "OVER TARGET"
    ok &= cold < COLD_TARGET
    print(f"cold start, fresh process: import grader (and torch) {imported:.3f} s + first battery "
          f"{first:.3f} s = {cold:.3f} s (medians of {args.repeat}), {cold / torch_call:,.0f} x one "
          f"torch call; target < {COLD_TARGET:g} s: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
