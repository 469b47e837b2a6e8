"""In a real browser: JupyterLab runs each course master, and every explorer in it fits
a laptop's screen at its natural size, redraws in the browser when a student moves its
controls (fast enough to follow a slider), follows JupyterLab's dark theme, and leaves
no error output in the notebook; and a wrong BCE's check report shows in both themes.

Chromium is Debian's (``apt-get install -y chromium``, /usr/bin/chromium; .ci/run
installs it), driven by Playwright for Python (tests/browser_lab.py). Never
``playwright install``: that downloads a browser of its own. Screenshots (each explorer
in the light and the dark theme), the step latencies (latency.json), the page and
JupyterLab's log go to test-artifacts/browser/, which CI keeps.

An explorer's DOM is grader/_widget/client.js's: a ``div.bce-explorer`` with its
controls (range inputs and menus, each with ``data-control`` and a label) and its
figure (``div.bce-figure``: a background image, a canvas, an overlay); ``data-ready``,
``data-busy``, ``data-frame`` and ``data-latency`` on the root say what it drew and when.
"""

import contextlib
import io
import json
import re
import shutil
import statistics
from pathlib import Path

import PIL.Image
import PIL.ImageChops
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from browser_lab import (ARM_KERNEL_STEP, ARTIFACTS, ERROR_OUTPUT, EXPLORER, IMAGE_LOADED,
                         KERNEL_STEP_DONE, KERNEL_STEP_RESULT, SET_THEME, STEP_RESULT,
                         VIEWPORT, LabError, kernel_errors, luminance, open_and_run_all,
                         press_on, running_lab, timed_step)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

# Every wait is bounded (seconds).
PAGE_S = 30  # Playwright's default for every action and wait on the page
RUN_ALL_S = 150  # the kernel starting and every cell running (06 trains its models)
READY_S = 120  # an explorer's frames computed in the kernel once the browser shows it
STEP_S = 10  # a fast control's redraw, which needs no kernel
KERNEL_STEP_S = 240  # a kernel control's new frames (06: training the models of another task)

#: The acceptance target for a fast control's step, from its input event to the frame on
#: screen: a redraw in the browser takes a few ms; a round trip through the kernel would not fit.
TARGET_MS = 50.0

# The notebooks under test: the course masters (their exercises solved, so "run all" reaches
# the explorers), with how many explorers each shows and which of their controls ask the
# kernel for new frames (the others only pick another frame in the browser).
SOURCE = ROOT / "grader" / "course" / "source"
NOTEBOOKS = [
    pytest.param(("01-bce-vector", 1, set()), id="01-bce-vector"),
    pytest.param(("02-bce-matrix", 1, set()), id="02-bce-matrix"),
    pytest.param(("03-sigmoid-then-bce", 1, set()), id="03-sigmoid-then-bce"),
    pytest.param(("04-functional-form", 1, set()), id="04-functional-form"),
    pytest.param(("05-bce-with-logits", 2, set()), id="05-bce-with-logits"),
    pytest.param(("06-class-imbalance", 1, {"task", "model"}), id="06-class-imbalance"),
]
# What a student presses on a slider: a few steps right and back, then a page up and back.
# Where a key would not move the slider (at an end of its range) the opposite one is pressed.
KEYS = ["ArrowRight"] * 3 + ["ArrowLeft"] * 3 + ["PageUp", "PageDown"]
# A value as a person writes it: a short number or words; never float noise (3.6000000000000005).
HUMAN_VALUE = re.compile(r"-?\d{1,4}(\.\d{1,3})?|[A-Za-z][\w ,:()\[\].-]{0,40}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on loopback, a port the system picks and a random token, its root a temporary
    directory, its configuration, settings, workspaces and temporary files isolated from the user's."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(running_lab(root, home, ARTIFACTS / "jupyterlab.log"))
        except LabError as error:
            pytest.fail(str(error), pytrace=False)
        yield lab  # then shut down with its kernels (browser_lab.stop)


@pytest.fixture(params=NOTEBOOKS)
def notebook(request, lab) -> tuple:
    """The notebook under test, copied into the lab's root directory: its name there, how many
    explorers it shows and the names of their kernel controls."""
    stem, count, kernel = request.param
    source = SOURCE / stem / f"{stem}.ipynb"
    shutil.copy(source, lab.root / source.name)
    return source.name, count, kernel


@pytest.fixture(scope="module")
def latencies():
    """Every step's latency, written to latency.json as each notebook's test ends:
    ``{notebook: {"explorer-N": {control: {"kind": "slider" | "menu", "kernel": bool, "ms": [...]}}}}``.
    For a fast control ``ms`` holds each step's data-latency (what the target is about) and
    ``step_ms`` the page's own measure (from the key or input event to the animation frame after
    the new picture, a new background image decoded included), for the record; for a kernel
    control ``ms`` is the time from the change until the explorer was no longer busy."""
    path = ARTIFACTS / "latency.json"
    path.unlink(missing_ok=True)
    return {}


def pixels(png: bytes) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(png)).convert("RGB")


def differ(a: bytes, b: bytes) -> bool:
    return PIL.ImageChops.difference(pixels(a), pixels(b)).getbbox() is not None


# An explorer's geometry: the figure's box and its CSS size as the widget set it, the canvas's
# pixels, the background's natural size; the controls' box; the notebook's visible height (its
# scrolling panel) and the output area's width.
GEOMETRY = """root => {
    const figure = root.querySelector('.bce-figure');
    const canvas = figure.querySelector('canvas.bce-plot');
    const background = figure.querySelector('img.bce-background');
    const fallback = figure.querySelector('img.bce-fallback');
    const box = (el) => { const b = el.getBoundingClientRect(); return {top: b.top, bottom: b.bottom, width: b.width, height: b.height}; };
    const panel = root.closest('.jp-WindowedPanel-outer') || root.closest('.jp-Notebook');
    const output = root.closest('.jp-OutputArea-output');
    const padding = parseFloat(getComputedStyle(output).paddingLeft) + parseFloat(getComputedStyle(output).paddingRight);
    return {
        figure: box(figure), css: {width: parseFloat(figure.style.width), height: parseFloat(figure.style.height)},
        canvas: {width: canvas.width, height: canvas.height}, canvasBox: box(canvas),
        background: {width: background.naturalWidth, height: background.naturalHeight}, backgroundBox: box(background),
        fallbackShown: getComputedStyle(fallback).display !== 'none',
        controls: box(root.querySelector('.bce-controls')),
        panelHeight: panel.clientHeight, outputWidth: output.clientWidth - padding,
        scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
        // the controls' labels, inputs and readouts that stick out of the explorer's box (cut off)
        outside: Array.from(root.querySelectorAll('.bce-controls label, .bce-controls [data-control], .bce-controls output'))
            .filter((el) => { const b = el.getBoundingClientRect(), r = root.getBoundingClientRect();
                              return b.left < r.left - 0.5 || b.right > r.right + 0.5; })
            .map((el) => `${el.tagName.toLowerCase()} ${el.textContent || el.dataset.control}`),
    };
}"""

# Each control: its element, type, data-control, label (by its for= attribute) and, for a
# range input, its aria-valuetext and its <output>'s text.
CONTROLS = """root => Array.from(root.querySelectorAll('.bce-controls [data-control]')).map((input) => {
    const output = root.querySelector(`output[for="${input.id}"]`);
    return {name: input.dataset.control, tag: input.tagName.toLowerCase(), type: input.type || null,
            labels: Array.from(input.labels || []).map((l) => l.textContent.trim()),
            valuetext: input.getAttribute('aria-valuetext'), shown: output ? output.textContent : null,
            value: input.value, options: input.tagName === 'SELECT' ? Array.from(input.options).map((o) => o.value) : null};
})"""
READOUT = """input => [input.getAttribute('aria-valuetext'),
                    (input.closest('.bce-explorer').querySelector(`output[for="${input.id}"]`) || {}).textContent]"""
LABEL_COLOUR = "root => getComputedStyle(root.querySelector('.bce-controls label')).color"
FOCUS = "() => { const el = document.activeElement; return el ? `${el.tagName.toLowerCase()}.${el.className}` : null; }"
FRAME_THEME = "([root, theme]) => (root.dataset.frame || '').endsWith(':' + theme)"


def human(text) -> bool:
    """A value as a person writes it: a short number that reads back as itself, or words."""
    if text is None or not HUMAN_VALUE.fullmatch(text):
        return False
    if text[-1].isdigit() and text.lstrip("-")[0].isdigit():
        decimals = len(text.split(".")[1]) if "." in text else 0
        return f"{float(text):.{decimals}f}" == text
    return True


def check_geometry(name: str, g: dict) -> None:
    """Shown at its natural size (nothing stretched), and with its controls within a laptop's notebook."""
    css = (g["css"]["width"], g["css"]["height"])
    shown = (g["figure"]["width"], g["figure"]["height"])
    assert shown == pytest.approx(css, abs=0.01), f"{name}: the figure is shown at {shown}, its natural size is {css}"
    canvas = (g["canvas"]["width"] / 2, g["canvas"]["height"] / 2)
    assert canvas == pytest.approx(css, abs=0.01), f"{name}: the canvas has {canvas} x 2 pixels for a figure of {css}"
    for layer in ("canvasBox", "backgroundBox"):
        box = (g[layer]["width"], g[layer]["height"])
        assert box == pytest.approx(css, abs=0.01), f"{name}: {layer} is {box}, the figure {css}"
    background = (g["background"]["width"], g["background"]["height"])
    assert background == (round(2 * css[0]), round(2 * css[1])), \
        f"{name}: the background image has {background} pixels, shown at {css}: stretched, not 2 x"
    assert not g["fallbackShown"], f"{name}: the static image still shows after the explorer is ready"
    span = g["figure"]["bottom"] - g["controls"]["top"]
    assert span <= g["panelHeight"], \
        f"{name}: controls and figure take {span:.0f} px, the notebook shows {g['panelHeight']} px"
    assert shown[0] <= g["outputWidth"], f"{name}: the figure ({shown[0]} px) is wider than the output ({g['outputWidth']} px)"
    assert g["outside"] == [], f"{name}: controls cut off at the explorer's edge: {g['outside']}"
    assert g["scrollWidth"] <= g["clientWidth"], \
        f"{name}: the explorer scrolls sideways ({g['scrollWidth']} px in {g['clientWidth']} px)"


def check_controls(name: str, controls: list) -> None:
    """Each control has a name and one label; a slider's aria-valuetext is its readout, a short human value."""
    assert controls, f"{name}: no control"
    names = [c["name"] for c in controls]
    assert len(set(names)) == len(names) and all(names), f"{name}: controls' data-control: {names}"
    for c in controls:
        assert len(c["labels"]) == 1 and c["labels"][0], f"{name}: {c['name']} has labels {c['labels']}"
        assert c["tag"] == "select" or c["type"] == "range", f"{name}: {c['name']} is a {c['tag']} {c['type']}"
        if c["type"] == "range":
            assert c["valuetext"] == c["shown"], f"{name}: {c['name']} says {c['valuetext']!r}, shows {c['shown']!r}"
            assert human(c["valuetext"]), f"{name}: {c['name']}'s value reads {c['valuetext']!r}"


def wait_for_images(page, figure) -> None:
    """The background and the overlay decoded: what a screenshot shows is the frame drawn."""
    for image in ("img.bce-background", "img.bce-overlay"):
        page.wait_for_function(IMAGE_LOADED, arg=figure.locator(image).element_handle(), timeout=STEP_S * 1000)


def fast_step(page, root, act, what: str) -> tuple[float, float]:
    """One step of a fast control: the frame drawn with no kernel in between. Its data-latency,
    and the time from the first key or input event to the animation frame after the new picture,
    measured by the page (tests/browser_lab.py's ARM_STEP)."""
    try:
        step = timed_step(page, root.element_handle(), "frame", act, STEP_S * 1000)
    except PlaywrightTimeoutError:
        focus = page.evaluate(FOCUS)
        pytest.fail(f"{what}: no new frame in {STEP_S} s (data-frame {root.get_attribute('data-frame')!r}, "
                    f"the step: {page.evaluate(STEP_RESULT)}); the focus is on {focus} (where the focus left "
                    "the control, one of JupyterLab's command-mode shortcuts took the key)")
    assert not step["busy"], f"{what}: a fast control made the explorer busy"
    assert step["latency"] is not None and step["latency"] >= 0, f"{what}: data-latency {step['latency']!r}"
    return step["latency"], step["ms"]


def move_slider(page, root, figure, control: dict, what: str) -> list:
    """The keyboard on a slider (KEYS): each step redraws, and its readout follows."""
    slider = root.locator(f'input[data-control="{control["name"]}"]')
    before = figure.screenshot(animations="disabled")
    changed, ms = False, []
    for key in KEYS:
        was = slider.get_attribute("aria-valuetext")
        ms.append(fast_step(page, root, lambda: press_on(page, slider, key), f"{what}, {key}"))
        valuetext, shown = slider.evaluate(READOUT)
        assert valuetext == shown, f"{what}: aria-valuetext {valuetext!r}, the readout shows {shown!r}"
        assert human(valuetext), f"{what}: the value reads {valuetext!r}"
        assert valuetext != was, f"{what}: {key} left the value at {was!r}"
        if not changed:
            wait_for_images(page, figure)
            changed = differ(before, figure.screenshot(animations="disabled"))
    assert changed, f"{what}: the plot looks the same at every value the slider took"
    return ms


def move_menu(page, root, figure, control: dict, what: str) -> list:
    """Every other option of a menu, then the first one again, twice round."""
    menu = root.locator(f'select[data-control="{control["name"]}"]')
    options, first = control["options"], control["value"]
    at = options.index(first)
    before = figure.screenshot(animations="disabled")
    changed, ms = False, []
    for value in (options[at + 1:] + options[:at + 1]) * 2:
        ms.append(fast_step(page, root, lambda: menu.select_option(value=value), f"{what}, option {value}"))
        if not changed:
            wait_for_images(page, figure)
            changed = differ(before, figure.screenshot(animations="disabled"))
    assert changed, f"{what}: the plot looks the same for every option"
    return ms


def move_kernel_menu(page, root, figure, control: dict, what: str) -> list:
    """Another option of a kernel control, then the first again: each time the explorer says it
    is busy, then draws the new frames; the time from the change to then (not asserted)."""
    menu = root.locator(f'select[data-control="{control["name"]}"]')
    first = control["value"]
    other = next(o for o in control["options"] if o != first)
    before = figure.screenshot(animations="disabled")
    ms = []
    for value in (other, first):
        text = menu.locator(f'option[value="{value}"]').text_content()
        page.evaluate(ARM_KERNEL_STEP, root.element_handle())
        menu.select_option(value=value)
        try:
            page.wait_for_function(KERNEL_STEP_DONE, timeout=KERNEL_STEP_S * 1000, polling=50)
        except PlaywrightTimeoutError:
            pytest.fail(f"{what}: {text!r} not drawn in {KERNEL_STEP_S} s (data-busy "
                        f"{root.get_attribute('data-busy')!r}, status {root.locator('.bce-status').text_content()!r})")
        step = page.evaluate(KERNEL_STEP_RESULT)
        assert step["status"] and step["status"].strip(), f"{what}: busy, with no status text"
        assert f"{control['name']}={text}" in step["frame"], f"{what}: chose {text!r}, drew {step['frame']!r}"
        assert root.locator(".bce-status").text_content() == "", f"{what}: the status stayed after the new frames"
        ms.append(step["end"] - step["start"])
        if value == other:
            wait_for_images(page, figure)
            assert differ(before, figure.screenshot(animations="disabled")), f"{what}: the plot looks the same for {text!r}"
    return ms


def check_explorer(page, root, name: str, kernel_controls: set, measured: dict) -> bytes:
    """One explorer: ready, at its natural size, fitting the screen; every control moved; the
    latencies in ``measured``. Its screenshot in the light theme."""
    root.scroll_into_view_if_needed()
    try:
        page.wait_for_function("root => root.dataset.ready === 'true'", arg=root.element_handle(),
                               timeout=READY_S * 1000)
    except PlaywrightTimeoutError:
        pytest.fail(f"{name}: not drawn in {READY_S} s; it says {root.locator('.bce-status').text_content()!r}")
    figure = root.locator(".bce-figure")
    wait_for_images(page, figure)
    check_geometry(name, root.evaluate(GEOMETRY))
    controls = root.evaluate(CONTROLS)
    check_controls(name, controls)
    light = root.screenshot(path=ARTIFACTS / f"{name}-light.png", animations="disabled")
    for control in sorted(controls, key=lambda c: c["name"] in kernel_controls):  # the kernel's last
        what = f"{name}: {control['name']}"
        kernel = control["name"] in kernel_controls
        kind = "menu" if control["tag"] == "select" else "slider"
        if kernel:
            assert kind == "menu", f"{what}: a kernel control is a menu"
            measured[control["name"]] = {"kind": kind, "kernel": True,
                                         "ms": [round(v, 1) for v in move_kernel_menu(page, root, figure, control, what)]}
            continue
        steps = (move_menu if kind == "menu" else move_slider)(page, root, figure, control, what)
        measured[control["name"]] = {"kind": kind, "kernel": False, "ms": [round(v, 1) for v, _ in steps],
                                     "step_ms": [round(v, 1) for _, v in steps]}
    return light


def test_every_explorer_fits_the_screen_redraws_in_the_browser_and_follows_the_theme(
        browser, lab, notebook, latencies):
    name, count, kernel_controls = notebook
    stem = Path(name).stem
    for stale in ARTIFACTS.glob(f"{stem}-*"):
        stale.unlink()
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PAGE_S * 1000)
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    errors = page.locator(ERROR_OUTPUT)
    measured = latencies.setdefault(stem, {})
    try:
        ran = open_and_run_all(page, lab, name, RUN_ALL_S)
        assert ran, f"running all cells stopped at an error: {errors.all_inner_texts()}"
        try:
            page.wait_for_function("([selector, count]) => document.querySelectorAll(selector).length >= count",
                                   arg=[EXPLORER, count], timeout=READY_S * 1000)
        except PlaywrightTimeoutError:
            pytest.fail(f"{page.locator(EXPLORER).count()} explorers in the notebook, not {count}")
        explorers = page.locator(EXPLORER)
        assert explorers.count() == count
        light = {}
        for number in range(1, count + 1):
            light[number] = check_explorer(page, explorers.nth(number - 1), f"{stem}-explorer-{number}",
                                           kernel_controls, measured.setdefault(f"explorer-{number}", {}))
        kernel_seen = {c for e in measured.values() for c, m in e.items() if m["kernel"]}
        assert kernel_seen == kernel_controls, f"kernel controls moved: {kernel_seen}, expected {kernel_controls}"

        page.evaluate(SET_THEME, "JupyterLab Dark")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        for number in range(1, count + 1):
            root = explorers.nth(number - 1)
            root.scroll_into_view_if_needed()
            try:
                page.wait_for_function(FRAME_THEME, arg=[root.element_handle(), 1], timeout=STEP_S * 1000)
            except PlaywrightTimeoutError:
                pytest.fail(f"{stem}-explorer-{number}: not redrawn for the dark theme (data-frame "
                            f"{root.get_attribute('data-frame')!r})")
            wait_for_images(page, root.locator(".bce-figure"))
            colour = root.evaluate(LABEL_COLOUR)
            assert luminance(colour) > 0.5, f"{stem}-explorer-{number}: dark labels on the dark theme: {colour}"
            dark = root.screenshot(path=ARTIFACTS / f"{stem}-explorer-{number}-dark.png", animations="disabled")
            assert differ(light[number], dark), f"{stem}-explorer-{number}: the same picture in both themes"

        assert errors.count() == 0, f"error output in the notebook: {errors.all_inner_texts()}"
        said = kernel_errors(page)
        assert said == [], f"the kernel sent errors or wrote on stderr: {said}"
        slow = {f"{explorer} {control}": statistics.median(m["ms"]) for explorer, controls in measured.items()
                for control, m in controls.items() if not m["kernel"] and statistics.median(m["ms"]) >= TARGET_MS}
        assert slow == {}, f"median step latency (data-latency) over {TARGET_MS:g} ms: {slow}"
    except BaseException:
        print("browser console:", *console, sep="\n")
        try:
            (ARTIFACTS / f"{stem}-page.html").write_text(page.content())
        except Exception as error:  # keep the test's own failure
            print(f"could not save the page: {error}")
        raise
    finally:
        (ARTIFACTS / "latency.json").write_text(json.dumps(latencies, indent=1))
        try:
            try:
                page.evaluate(SET_THEME, "JupyterLab Light")  # the lab's other tests see its default theme
            finally:
                page.screenshot(path=ARTIFACTS / f"{stem}-page.png", full_page=True, timeout=10_000)
        finally:
            context.close()
            lab.shutdown_kernels()


# The check report (grader.check's HTML, grader/_battery/html.py) of a wrong BCE, with its figure.
REPORT = ".bce-grader-report"
REPORT_FIGURE = f"{REPORT} figure img"
WRONG_BCE = '''import torch
import grader


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    if target.shape != input.shape:
        raise ValueError("target and input must have the same shape")
    for name, t in (("input", input), ("target", target)):
        if not bool(((t >= 0) & (t <= 1)).all()):
            raise RuntimeError(f"all elements of {name} should be between 0 and 1")
    p = torch.clamp(input, 1e-7, 1 - 1e-7)  # an epsilon instead of torch's clamp of the logs at -100
    loss = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    if weight is not None:
        loss = loss * weight.to(loss.dtype)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return loss if reduction == "none" else getattr(loss, reduction)()


grader.check(binary_cross_entropy)
'''
# The report's text colour and its headline's background, as the browser computed them.
REPORT_COLOURS = f"""() => {{
    const report = document.querySelector('{REPORT}');
    const headline = report.querySelector('.bce-headline');
    return [getComputedStyle(report).color, getComputedStyle(headline).backgroundColor,
            document.body.dataset.jpThemeLight];
}}"""


def test_a_wrong_bce_shows_the_report_with_its_figure_in_light_and_dark_themes(browser, lab):
    name = "report-html"
    (lab.root / f"{name}.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "check", "metadata": {}, "outputs": [],
                   "source": WRONG_BCE}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    for stale in ARTIFACTS.glob(f"{name}*"):
        stale.unlink()
    context = browser.new_context(viewport={"width": 1280, "height": 1800})  # the whole report in view
    page = context.new_page()
    page.set_default_timeout(PAGE_S * 1000)
    console = []
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    errors = page.locator(ERROR_OUTPUT)
    try:
        ran = open_and_run_all(page, lab, f"{name}.ipynb", RUN_ALL_S)
        assert ran, f"running the cell stopped at an error: {errors.all_inner_texts()}"
        report = page.locator(REPORT)
        report.wait_for(state="attached")
        report.scroll_into_view_if_needed()
        plot = page.locator(REPORT_FIGURE)
        page.wait_for_function(IMAGE_LOADED, arg=plot.element_handle())
        expect(report).to_be_visible()
        expect(plot).to_be_visible()
        expect(report.locator(".bce-headline")).to_contain_text("binary_cross_entropy: FAILED in edge values")
        expect(report.locator(".bce-first")).to_contain_text("First failure: edge values")
        box = plot.bounding_box()
        assert round(box["width"]) == 560 and round(box["height"]) == 320, box  # its CSS size, not stretched
        assert errors.count() == 0, f"error output in the notebook: {errors.all_inner_texts()}"
        # ipykernel's "No such comm ...": JupyterLab's widget manager probing a kernel without ipywidgets
        said = [s for s in page.evaluate("() => window.kernelErrors || []") if not s.startswith("No such comm")]
        assert said == [], f"the kernel sent errors or wrote on stderr: {said}"
        text, _, light = page.evaluate(REPORT_COLOURS)
        assert light == "true" and luminance(text) < 0.5, text
        report.screenshot(path=ARTIFACTS / f"{name}.png", animations="disabled")

        page.evaluate(SET_THEME, "JupyterLab Dark")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        text, headline, _ = page.evaluate(REPORT_COLOURS)
        assert luminance(text) > 0.5, f"dark text on the dark theme: {text}"
        assert headline.startswith("rgba(") and float(headline.rsplit(",", 1)[1][:-1]) < 0.5, headline  # a tint
        report.screenshot(path=ARTIFACTS / f"{name}-dark.png", animations="disabled")
    except BaseException:
        print("browser console:", *console, sep="\n")
        try:
            (ARTIFACTS / f"{name}-page.html").write_text(page.content())
        except Exception as error:  # keep the test's own failure
            print(f"could not save the page: {error}")
        raise
    finally:
        try:
            page.evaluate(SET_THEME, "JupyterLab Light")  # the lab's other tests see its default theme
            page.screenshot(path=ARTIFACTS / f"{name}-page.png", full_page=True, timeout=10_000)
        finally:
            context.close()
