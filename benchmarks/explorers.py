"""How long an explorer takes to redraw when a control changes, on the CPU.

A redraw is what a widget does on a change: update the plotted data and render
the PNG the browser shows. For each explorer this sweeps every control across
its range the way a student drags a slider or steps through a dropdown, and
prints the median and 90th percentile of the redraw times, next to the time of
rebuilding the figure from scratch (the baseline an explorer that redrew
everything would pay), measured in the same run. Target: median under 50 ms.

    python benchmarks/explorers.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import explore  # noqa: E402

TARGET_MS = 50.0

SWEEPS = {
    "probability": [{"target": round(0.01 * i, 2)} for i in range(0, 101, 2)],
    "logit": ([{"target": round(0.02 * i, 2)} for i in range(51)]
              + [{"pos_weight": round(0.1 + 0.2 * i, 2)} for i in range(50)]),
    "naive": ([{"dtype": d} for d in ("float16", "bfloat16", "float32") * 4]
              + [{"target": round(0.05 * i, 2)} for i in range(21)]),
    "batch": [{"reduction": r, "weight": w, "example": e}
              for e in explore.EXAMPLES for w in explore.WEIGHTS for r in explore.REDUCTIONS] * 2,
}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ok = True
    print(f"{'explorer':12} {'redraws':>7} {'median':>9} {'p90':>9} {'rebuild':>9} {'speed-up':>9}")
    for name, (_, _, cls) in explore.EXPLORERS.items():
        explorer = cls()
        explorer.png()
        redraws = [timed(lambda c=change: (explorer.update(**c), explorer.png())) for change in SWEEPS[name]]
        rebuilds = [timed(lambda: cls(**explorer.params).png()) for _ in range(9)]
        median, p90 = statistics.median(redraws), statistics.quantiles(redraws, n=10)[-1]
        rebuild = statistics.median(rebuilds)
        ok &= median * 1e3 < TARGET_MS
        print(f"{name:12} {len(redraws):7d} {median * 1e3:7.1f}ms {p90 * 1e3:7.1f}ms {rebuild * 1e3:7.1f}ms "
              f"{rebuild / median:8.1f}x")
    print(f"target: median redraw under {TARGET_MS:g} ms: {'ok' if ok else 'OVER TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
