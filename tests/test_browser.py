"""In a real browser: JupyterLab runs a notebook, and moving a slider of its
explorer redraws the explorer's plot, with no error output in the notebook.

Chromium is Debian's (``apt-get install -y chromium``, /usr/bin/chromium; .ci/run
installs it), driven by Playwright for Python. Never ``playwright install``: that
downloads a browser of its own. Screenshots, the page and JupyterLab's log go to
test-artifacts/browser/, which CI keeps.

"The explorer" is the first VBox holding a slider and an ipywidgets.Image: the
DOM shape of the course's explorers (control widgets, then one Image).
"""

import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import PIL.Image
import PIL.ImageChops
import psutil
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect, sync_playwright

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"

CHROMIUM = Path("/usr/bin/chromium")
# This machine's network is closed: without these Chromium floods refused connections.
# --disable-dev-shm-usage: containers' /dev/shm is small (Debian's launcher means to add it
# then, but its check of /dev/shm fails in some containers).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

# ipywidgets 8 DOM: sliders are noUiSlider widgets, an Image is an <img class="widget-image">.
EXPLORER = ".widget-vbox:has(.widget-slider):has(img.widget-image)"
SLIDER_HANDLE = ".widget-slider .noUi-handle"
PLOT = "img.widget-image"
# JupyterLab renders both error outputs (tracebacks) and stderr streams with this MIME type.
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# Every wait is bounded (seconds).
LAB_START_S = 60
LAB_STOP_S = 15
PAGE_S = 30  # Playwright's default for every action and wait on the page
RUN_ALL_S = 120  # the kernel starting and every cell running


# The notebooks under test: course masters (their exercises solved, so "run all" reaches the
# explorers), each with a slider explorer as its first explorer.
SOURCE = ROOT / "grader" / "course" / "source"
NOTEBOOKS = [
    pytest.param(SOURCE / "01-bce-vector" / "01-bce-vector.ipynb", id="01-probability-explorer"),
    pytest.param(SOURCE / "05-bce-with-logits" / "05-bce-with-logits.ipynb", id="05-naive-explorer"),
    pytest.param(SOURCE / "06-class-imbalance" / "06-class-imbalance.ipynb", id="06-imbalance-explorer"),
]


@dataclass
class Lab:
    root: Path
    port: int
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url_for(self, name: str) -> str:
        # A workspace of its own per notebook: one test's open tabs never restore in another's.
        workspace = quote(Path(name).stem, safe="")
        return f"{self.base}lab/workspaces/{workspace}/tree/{quote(name)}?token={self.token}"

    def request(self, path: str, method: str = "GET", timeout: float = 2):
        req = urllib.request.Request(self.base + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test drives Debian's Chromium. "
                    "Install it with: sudo apt-get update && sudo apt-get install -y chromium "
                    "(never `playwright install`).", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                             args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on loopback, a free port and a random token, its root a temporary
    directory, its configuration, settings and workspaces isolated from the user's."""
    root = tmp_path_factory.mktemp("lab-root")
    home = tmp_path_factory.mktemp("lab-home")
    env = dict(os.environ)
    for name, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
        env[name] = str(home / sub)
    # No toasts over the plots: no "Would you like to get notified about official Jupyter news?".
    notifications = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notifications.parent.mkdir(parents=True)
    notifications.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))
    lab = Lab(root=root, port=free_port(), token=secrets.token_hex(24))
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={lab.port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={lab.token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False", "--allow-root",  # CI runs as root
        "--LabApp.expose_app_in_browser=True",
        # no network: no news feed, no update check
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    # Matplotlib's font cache built now, not in the kernel: that would write to stderr.
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, check=True, timeout=120)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "jupyterlab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + LAB_START_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"JupyterLab exited with {process.returncode}:\n{tail(log_path)}")
                try:
                    if lab.request("api/status") == 200:
                        break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in {LAB_START_S} s:\n{tail(log_path)}")
                time.sleep(0.2)
            yield lab
        finally:
            stop(process, lab)


def stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut JupyterLab down and its kernels with it (they run in sessions of their own)."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if process.poll() is None:
        try:
            lab.request("api/shutdown", method="POST", timeout=LAB_STOP_S)
        except (urllib.error.URLError, OSError):
            pass
        try:
            process.wait(timeout=LAB_STOP_S)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=LAB_STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=LAB_STOP_S)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=LAB_STOP_S)


@pytest.fixture(params=NOTEBOOKS)
def notebook(request, lab) -> str:
    """The notebook under test, in the lab's root directory: its name there."""
    source = request.param
    shutil.copy(source, lab.root / source.name)
    return source.name


# In the page, JavaScript run by page.evaluate and page.wait_for_function.
PANEL = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path)"

NOTEBOOK_OPEN = f"path => window.jupyterapp && window.jupyterapp.shell && Boolean({PANEL})"

# The notebook opened, its kernel ready, then every cell run. From then on the kernel's
# error messages and what it writes on stderr in answer to a request (a cell, or a widget's
# comm message: JupyterLab shows those in its log console, not in the notebook) are kept in
# window.kernelErrors; the kernel's own log lines (no parent request: ipykernel's
# "No such comm" when the widget manager probes a kernel without ipywidgets) are not.
# Resolves with NotebookActions.runAll's answer: true when every cell ran without error.
RUN_ALL = f"""async ([path, ms]) => {{
    const within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
        setTimeout(() => reject(new Error(what + ': no answer in ' + ms + ' ms')), ms))]);
    const app = window.jupyterapp;
    const panel = {PANEL};
    app.shell.activateById(panel.id);
    await within(panel.context.ready, 'opening the notebook');
    await within(panel.sessionContext.ready, 'starting the kernel');
    window.kernelErrors = [];
    panel.sessionContext.iopubMessage.connect((_, msg) => {{
        const type = msg.header.msg_type;
        if (type === 'error') window.kernelErrors.push(msg.content.ename + ': ' + msg.content.evalue);
        if (type === 'stream' && msg.content.name === 'stderr' && msg.parent_header.msg_type)
            window.kernelErrors.push(msg.content.text);
    }});
    return await within(app.commands.execute('notebook:run-all-cells'), 'running all cells');
}}"""

KERNEL_IDLE = f"""path => {{
    const panel = {PANEL};
    const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return Boolean(kernel) && kernel.status === 'idle';
}}"""

IMAGE_LOADED = "img => img.complete && img.naturalWidth > 0"
IMAGE_CHANGED = "([img, before]) => img.src !== before && img.complete && img.naturalWidth > 0"


def pixels(png: bytes) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(png)).convert("RGB")


def test_moving_a_slider_redraws_the_explorer_with_no_error_output(browser, lab, notebook, request):
    name = request.node.callspec.id
    for stale in ARTIFACTS.glob(f"{name}-*"):
        stale.unlink()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(PAGE_S * 1000)
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    errors = page.locator(ERROR_OUTPUT)

    def kernel_errors():
        return page.evaluate("() => window.kernelErrors || []")

    try:
        page.goto(lab.url_for(notebook), wait_until="domcontentloaded", timeout=60_000)
        page.wait_for_function(NOTEBOOK_OPEN, arg=notebook, timeout=60_000)
        ran = page.evaluate(RUN_ALL, [notebook, RUN_ALL_S * 1000])
        assert ran, f"running all cells stopped at an error: {errors.all_inner_texts()}"

        # Attached, then scrolled to: JupyterLab skips rendering cells out of view.
        explorer = page.locator(EXPLORER).first
        explorer.wait_for(state="attached")
        explorer.scroll_into_view_if_needed()
        plot = explorer.locator(PLOT).last
        handle = explorer.locator(SLIDER_HANDLE).first
        plot.scroll_into_view_if_needed()
        page.wait_for_function(IMAGE_LOADED, arg=plot.element_handle())
        src = plot.get_attribute("src")
        before = plot.screenshot(path=ARTIFACTS / f"{name}-plot-before.png", animations="disabled")

        # The keyboard on the slider's handle: one PageUp (five steps), or PageDown at the maximum.
        # noUiSlider rounds aria-valuenow/-max to one decimal; aria-valuetext is the readout.
        at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
        value = handle.get_attribute("aria-valuetext")
        handle.focus()
        page.keyboard.press("PageDown" if at_max else "PageUp")
        expect(handle, "the slider did not move").not_to_have_attribute("aria-valuetext", value, timeout=5_000)
        try:
            page.wait_for_function(IMAGE_CHANGED, arg=[plot.element_handle(), src])
        except PlaywrightTimeoutError:
            pytest.fail(f"the plot was not redrawn in {PAGE_S} s after the slider moved from {value} to "
                        f"{handle.get_attribute('aria-valuetext')}; the kernel said: {kernel_errors()}")
        page.wait_for_function(KERNEL_IDLE, arg=notebook)
        after = plot.screenshot(path=ARTIFACTS / f"{name}-plot-after.png", animations="disabled")

        assert PIL.ImageChops.difference(pixels(before), pixels(after)).getbbox() is not None, \
            "the plot looks the same after the slider moved"
        assert errors.count() == 0, f"error output in the notebook: {errors.all_inner_texts()}"
        said = kernel_errors()
        assert said == [], f"the kernel sent errors or wrote on stderr: {said}"
    except BaseException:
        print("browser console:", *console, sep="\n")
        try:
            (ARTIFACTS / f"{name}-page.html").write_text(page.content())
        except Exception as error:  # keep the test's own failure
            print(f"could not save the page: {error}")
        raise
    finally:
        try:
            page.screenshot(path=ARTIFACTS / f"{name}-page.png", full_page=True, timeout=10_000)
        finally:
            context.close()


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
SET_THEME = "theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})"


def luminance(css_colour: str) -> float:
    """0 (black) to 1 (white), from a computed rgb()/rgba() colour."""
    r, g, b = (float(v) for v in css_colour[css_colour.index("(") + 1:-1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


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
        page.goto(lab.url_for(f"{name}.ipynb"), wait_until="domcontentloaded", timeout=60_000)
        page.wait_for_function(NOTEBOOK_OPEN, arg=f"{name}.ipynb", timeout=60_000)
        ran = page.evaluate(RUN_ALL, [f"{name}.ipynb", RUN_ALL_S * 1000])
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
