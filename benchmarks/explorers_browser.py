"""How long a step of an explorer's control takes in the browser, next to the old approach.

One JupyterLab (loopback, a temporary root) and one headless Chromium page at a laptop's
size (1400 x 900), started as tests/test_browser.py starts them (tests/browser_lab.py).
A notebook built here shows each explorer twice:

- new: the explorer as the course shows it (``grader.explore.*_explorer``,
  ``grader.imbalance.imbalance_explorer``): frames computed in the kernel once, each step
  drawn on a canvas in the browser;
- baseline: the old approach, rebuilt here: an ipywidgets ``VBox`` of ``FloatSlider``
  (``SelectionSlider`` where the values are not evenly spaced) and ``Dropdown`` controls with
  the same values, observed in the kernel, where each change calls the explorer's
  ``update(**params)`` and sets an ``ipywidgets.Image`` to ``explorer.png()``.

Each control that needs no training is moved as a student moves it, one step at a time:
a slider with the keyboard (ArrowRight, then ArrowLeft, STEPS times each), a menu to each
of its other options and back, twice. A step's latency is measured in the page, the same
way for both: from the first keydown/input/change event to the next animation frame after
the new picture is ready (new: the explorer's ``data-frame`` changed and its images
decoded; baseline: the Image's ``src`` changed and the new PNG decoded). The new widget's
own ``data-latency`` (input event to the animation frame after its draw) is printed too.

Before measuring, the imbalance explorer's background training of the other tasks ends
(its thread is joined), so that neither side is measured against it; JupyterLab's
command-mode shortcuts are switched off on every control (``data-lm-suppress-shortcuts``),
or the arrow keys would move between cells instead of moving a slider.

Target: the new widget's median step under 50 ms for every explorer; the ratio is the
baseline's median over the new one's.

    python benchmarks/explorers_browser.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser_lab import (ARTIFACTS, CHROMIUM, EXECUTE, EXPLORER, VIEWPORT, kernel_errors,  # noqa: E402
                         launch_chromium, open_and_run_all, percentile, press_on, running_lab, timed_step)

TARGET_MS = 50.0
STEPS = 10  # key presses each way on a slider
RUN_ALL_S = 300
READY_S = 180
STEP_S = 10
NOTEBOOK = "explorers-browser-benchmark.ipynb"

SETUP = '''\
import threading

import ipywidgets as widgets

from grader import explore, imbalance

STYLE = {"description_width": "initial"}


def slider(name, values, value, description):
    """The old explorers' slider: a FloatSlider over evenly spaced values, else a SelectionSlider."""
    values = list(values)
    gaps = {round(b - a, 9) for a, b in zip(values, values[1:])}
    if len(gaps) == 1:
        control = widgets.FloatSlider(value=value, min=values[0], max=values[-1], step=gaps.pop(),
                                      description=description, continuous_update=True, readout_format=".2f",
                                      style=STYLE)
    else:
        control = widgets.SelectionSlider(options=[(f"{v:g}", v) for v in values], value=value,
                                          description=description, continuous_update=True, style=STYLE)
    control.add_class(f"bench-{name}")
    return control


def dropdown(name, options, value, description):
    control = widgets.Dropdown(options=list(options), value=value, description=description, style=STYLE)
    control.add_class(f"bench-{name}")
    return control


def baseline(explorer, controls):
    """The old approach: the controls observed in the kernel; each change updates the explorer
    and sends its PNG to an Image."""
    image = widgets.Image(value=explorer.png(), format="png")
    image.add_class("bench-image")

    def redraw(change=None):
        explorer.update(**{name: control.value for name, control in controls.items()})
        image.value = explorer.png()

    for control in controls.values():
        control.observe(redraw, names="value")
    box = widgets.VBox([*controls.values(), image])
    box.add_class("bench-baseline")
    return box
'''

# Each explorer: the new widget, the explorer the baseline redraws (built as the widget builds
# it), and the controls: (name, kind, values, initial value, moved: False for a kernel control).
EXPLORERS = [
    ("probability", "explore.probability_explorer(target=0.3)", "explore.LossVsProbability(0.3, points=201)",
     [("target", "slider", "explore.TARGETS", 0.3, True)]),
    ("logit", "explore.logit_explorer(target=1.0, pos_weight=3.0)", "explore.LossVsLogit(1.0, 3.0, points=201)",
     [("target", "slider", "explore.COARSE_TARGETS", 1.0, True),
      ("pos_weight", "slider", "explore.POS_WEIGHTS", 3.0, True)]),
    ("naive", "explore.naive_explorer(dtype='float16')", "explore.NaiveVsFused('float16', 0.0)",
     [("dtype", "menu", "explore.DTYPES", "float16", True), ("target", "slider", "explore.COARSE_TARGETS", 0.0, True)]),
    ("batch", "explore.batch_explorer(example='001-2')", "explore.BatchHeatmap('001-2', 'mean', 'none')",
     [("example", "menu", "explore.EXAMPLES", "001-2", True), ("reduction", "menu", "explore.REDUCTIONS", "mean", True),
      ("weight", "menu", "explore.WEIGHTS", "none", True)]),
    ("imbalance", "imbalance.imbalance_explorer()", "imbalance.ImbalanceExplorer()",
     [("task", "menu", "imbalance.TASKS", "digits: eight", False),
      ("model", "menu", "imbalance.MODELS", "logistic regression", False),
      ("pos_weight", "slider", "imbalance.GRID", 1.0, True),
      ("threshold", "slider", "explore.steps(0.02, 0.98, 0.02)", 0.5, True)]),
]

# The imbalance explorer's training ahead (grader/_widget: the "explorer-prefetch" thread), waited for.
JOIN_PREFETCH = '''\
for thread in threading.enumerate():
    if thread.name == "explorer-prefetch":
        thread.join(600)
print(sum(thread.name == "explorer-prefetch" for thread in threading.enumerate()), end="")
'''
SUPPRESS_SHORTCUTS = """() => document.querySelectorAll('.bce-controls [data-control], .bench-baseline .noUi-handle, '
    + '.bench-baseline select').forEach((el) => el.setAttribute('data-lm-suppress-shortcuts', 'true'))"""
READY = "root => root.dataset.ready === 'true'"
IMAGE_READY = "img => img.complete && img.naturalWidth > 0"


def notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    cells = [nbformat.v4.new_code_cell(SETUP)]
    for _, new, explorer, controls in EXPLORERS:
        built = ", ".join(f"{name!r}: {'slider' if kind == 'slider' else 'dropdown'}({name!r}, {values}, {value!r}, "
                          f"{name!r})" for name, kind, values, value, _ in controls)
        cells.append(nbformat.v4.new_code_cell(new))
        cells.append(nbformat.v4.new_code_cell(f"baseline({explorer}, {{{built}}})"))
    nb.cells = cells
    return nb


def slider_keys() -> list[str]:
    return ["ArrowRight"] * STEPS + ["ArrowLeft"] * STEPS


def menu_cycle(menu) -> list[int]:
    """A menu's other options in turn, then its own again, twice round: their indices."""
    count, at = menu.evaluate("s => [s.options.length, s.selectedIndex]")
    return ([*range(at + 1, count), *range(at + 1)]) * 2


def measure_new(page, root, controls) -> tuple[list, list]:
    """Every step of the new widget's fast controls: (harness ms, the widget's data-latency)."""
    handle = root.element_handle()
    ms, own = [], []
    for name, kind, _, _, moved in controls:
        if not moved:
            continue
        control = root.locator(f'[data-control="{name}"]')
        if kind == "slider":
            acts = [lambda key=key: press_on(page, control, key) for key in slider_keys()]
        else:
            acts = [lambda i=i: control.select_option(index=i) for i in menu_cycle(control)]
        for act in acts:
            step = timed_step(page, handle, "frame", act, STEP_S * 1000)
            ms.append(step["ms"])
            own.append(step["latency"])
    return ms, own


def measure_baseline(page, box, controls) -> tuple[list, int]:
    """Every step of the baseline's controls (the same as the new widget's): harness ms, and how
    many steps brought no new image (the same PNG: no message from the kernel)."""
    image = box.locator("img.bench-image")
    ms, missed = [], 0
    for name, kind, _, _, moved in controls:
        if not moved:
            continue
        if kind == "slider":
            control = box.locator(f".bench-{name} .noUi-handle")
            acts = [lambda key=key: press_on(page, control, key) for key in slider_keys()]
        else:
            control = box.locator(f".bench-{name} select")
            acts = [lambda i=i: control.select_option(index=i) for i in menu_cycle(control)]
        for act in acts:
            try:
                step = timed_step(page, image.element_handle(), "src", act, STEP_S * 1000)
            except PlaywrightTimeoutError:  # a step with no new image: counted, not timed
                missed += 1
                continue
            ms.append(step["ms"])
    return ms, missed


def main() -> int:
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: this benchmark drives Debian's Chromium "
              "(sudo apt-get install -y chromium; never `playwright install`)")
        return 1
    results = {}
    with tempfile.TemporaryDirectory(prefix="explorers-browser-") as tmp:
        root, home = Path(tmp) / "root", Path(tmp) / "home"
        root.mkdir()
        home.mkdir()
        nbformat.write(notebook(), root / NOTEBOOK)
        with running_lab(root, home, ARTIFACTS / "benchmark-jupyterlab.log") as lab, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.set_default_timeout(60_000)
                started = time.monotonic()
                if not open_and_run_all(page, lab, NOTEBOOK, RUN_ALL_S):
                    print(f"the benchmark's notebook stopped at an error: {kernel_errors(page)}")
                    return 1
                news, boxes = page.locator(EXPLORER), page.locator(".bench-baseline")
                page.wait_for_function(f"() => document.querySelectorAll('{EXPLORER}').length >= {len(EXPLORERS)} && "
                                       f"document.querySelectorAll('.bench-baseline img.bench-image').length >= "
                                       f"{len(EXPLORERS)}", timeout=READY_S * 1000)
                for i in range(len(EXPLORERS)):
                    news.nth(i).scroll_into_view_if_needed()
                    page.wait_for_function(READY, arg=news.nth(i).element_handle(), timeout=READY_S * 1000)
                status, joined = page.evaluate(EXECUTE, [NOTEBOOK, JOIN_PREFETCH, 700_000])
                if status != "ok" or joined != "0":
                    print(f"the imbalance explorer's training ahead did not end: {status} {joined}")
                    return 1
                print(f"(set up in {time.monotonic() - started:.0f} s: notebook run, frames computed, "
                      "training ahead ended)")
                page.evaluate(SUPPRESS_SHORTCUTS)
                for i, (name, _, _, controls) in enumerate(EXPLORERS):
                    new, box = news.nth(i), boxes.nth(i)
                    new.scroll_into_view_if_needed()
                    new_ms, own = measure_new(page, new, controls)
                    box.scroll_into_view_if_needed()
                    page.wait_for_function(IMAGE_READY, arg=box.locator("img.bench-image").element_handle())
                    old_ms, missed = measure_baseline(page, box, controls)
                    results[name] = (new_ms, own, old_ms, missed)
                errors = kernel_errors(page)
                if errors:
                    print(f"the kernel sent errors or wrote on stderr: {errors}")
                    return 1
            except PlaywrightTimeoutError as error:
                print(f"the page did not answer in time: {error}")
                return 1
            finally:
                browser.close()

    ok = True
    print("a step's latency in the browser, from the key or input event to the next frame with the new picture")
    print(f"{'':12} {'':>5}  {'new widget':^26}  {'baseline':^17}")
    print(f"{'explorer':12} {'steps':>5}  {'median':>8} {'p90':>8} {'own':>8}  {'median':>8} {'p90':>8}  "
          f"{'baseline/new':>12}")
    for name, (new_ms, own, old_ms, missed) in results.items():
        new_median, old_median = statistics.median(new_ms), statistics.median(old_ms) if old_ms else float("nan")
        ok &= new_median < TARGET_MS
        note = f"  ({missed} baseline steps brought no new image)" if missed else ""
        print(f"{name:12} {len(new_ms):5d}  {new_median:6.1f}ms {percentile(new_ms, 0.9):6.1f}ms "
              f"{statistics.median(own):6.1f}ms  {old_median:6.1f}ms {percentile(old_ms, 0.9):6.1f}ms  "
              f"{old_median / new_median:11.1f}x{note}")
    print("own: the median of the widget's data-latency (input event to the animation frame after its draw);")
    print("baseline: ipywidgets controls observed in the kernel, update() and png() sent to an Image at each step")
    print(f"target: the new widget's median step under {TARGET_MS:g} ms: {'ok' if ok else 'OVER TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
