"""What an explorer costs the kernel: its frames, computed once when a browser first shows it.

The explorers draw in the browser (benchmarks/explorers_browser.py measures a step
there). The kernel's work is up front: every frame, for every combination of the
controls' values, and the images they are drawn on. For each explorer this prints
the time to prepare them and their size, next to the old way's cost of one redraw
(update the figure and render its PNG, which the old widget paid on every step),
measured in the same run, and for the capstone's explorer the time of a change of
task or model once the other choices are computed ahead (target: under 300 ms).

    python benchmarks/explorers.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import explore, imbalance  # noqa: E402

CHANGE_TARGET_MS = 300.0
MAKERS = {name: make for name, (make, _, _) in explore.EXPLORERS.items()}
MAKERS["imbalance"] = imbalance.imbalance_explorer


def size(payload: dict) -> int:
    images = sum(len(png) for pair in payload["backgrounds"] for png in pair) + sum(map(len, payload["overlays"]))
    return len(payload["pool"]) + images + len(str(payload["frames"]))


def one_redraw(widget) -> float:
    """The old widget's cost of one step: update the figure, render the PNG (median of 9)."""
    explorer = widget._frames.explorer("light")
    control = next(c for c in widget._controls if not c.kernel)
    values = [value for _, value in control.options]
    times = []
    for i in range(9):
        start = time.perf_counter()
        explorer.update(**{control.name: values[(i * 7) % len(values)]})
        explorer.png()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    print(f"{'explorer':12} {'frames':>7} {'prepare':>9} {'per frame':>10} {'old redraw':>11} {'sent':>8}")
    for name, make in MAKERS.items():
        widget = make()
        start = time.perf_counter()
        payload = widget.payload_for(widget._kernel_params())
        prepare = time.perf_counter() - start
        frames = len(payload["frames"])
        print(f"{name:12} {frames:7d} {prepare:8.2f}s {prepare / frames * 1e3:8.2f}ms "
              f"{one_redraw(widget) * 1e3:9.1f}ms {size(payload) / 1e6:6.2f}MB")

    widget = imbalance.imbalance_explorer()
    widget._message(widget, {"event": "view"}, [])
    start = time.perf_counter()
    widget._prefetching.join()
    print(f"capstone: every task and model computed ahead in {time.perf_counter() - start:.1f} s after the first view")
    changes = []
    for task in imbalance.TASKS[:3]:
        for model in imbalance.MODELS:
            start = time.perf_counter()
            widget.update(task=task, model=model)
            changes.append(time.perf_counter() - start)
    median = statistics.median(changes) * 1e3
    ok = median < CHANGE_TARGET_MS
    print(f"capstone: a change of task or model, once computed ahead: median {median:.1f} ms "
          f"(target under {CHANGE_TARGET_MS:g} ms): {'ok' if ok else 'OVER TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
