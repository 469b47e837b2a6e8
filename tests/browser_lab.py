"""JupyterLab in headless Chromium, for tests/test_browser.py and benchmarks/explorers_browser.py.

JupyterLab runs on loopback, a port the system picks and a random token, its root a given
directory, its configuration, settings, workspaces and temporary files isolated from the
user's. Chromium is Debian's (/usr/bin/chromium), driven by Playwright for Python; never
``playwright install``, which downloads a browser of its own.

Then, in the page: open a notebook, run all its cells, and drive an explorer the way a
student does (the keyboard on a slider, a choice in a menu), timing each step in the page
itself. The DOM contract of an explorer is grader/_widget/client.js's: a ``div.bce-explorer``
whose ``data-frame`` changes on every draw and whose ``data-latency`` is the time from a
control's input event to the next animation frame after the draw.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from helpers import jupyter_server_port, stop_server

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"

CHROMIUM = Path("/usr/bin/chromium")
# This machine's network is closed: without these Chromium floods refused connections.
# --disable-dev-shm-usage: containers' /dev/shm is small (Debian's launcher means to add it
# then, but its check of /dev/shm fails in some containers).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
#: A student's laptop screen.
VIEWPORT = {"width": 1400, "height": 900}

# JupyterLab renders both error outputs (tracebacks) and stderr streams with this MIME type.
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
EXPLORER = ".bce-explorer"

# Every wait is bounded (seconds).
LAB_START_S = 60
LAB_STOP_S = 15


class LabError(RuntimeError):
    """JupyterLab did not start."""


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

    def get(self, path: str, timeout: float = 5):
        req = urllib.request.Request(self.base + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())

    def shutdown_kernels(self, timeout: float = LAB_STOP_S) -> None:
        """Every running kernel shut down: a notebook's background work (the imbalance explorer
        trains ahead) never slows the next one."""
        try:
            for kernel in self.get("api/kernels"):
                self.request(f"api/kernels/{kernel['id']}", method="DELETE", timeout=timeout)
        except (urllib.error.URLError, OSError):
            pass


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def lab_environment(home: Path) -> dict:
    """The environment of a JupyterLab whose configuration, data, runtime files, settings,
    workspaces and temporary files (its kernels' too) are under ``home``, with no toast over the
    plots."""
    env = dict(os.environ)
    for name, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython"), ("TMPDIR", "tmp")]:
        env[name] = str(home / sub)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    # No "Would you like to get notified about official Jupyter news?".
    notifications = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notifications.parent.mkdir(parents=True, exist_ok=True)
    notifications.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))
    return env


@contextlib.contextmanager
def running_lab(root: Path, home: Path, log_path: Path) -> Iterator[Lab]:
    """JupyterLab serving ``root``, its settings under ``home``, its log in ``log_path``; shut
    down, its kernels with it, on leaving. Raises LabError when it does not answer in time."""
    env = lab_environment(home)
    lab = Lab(root=root, port=0, token=secrets.token_hex(24))  # the port: once it has one
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={lab.token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False", "--allow-root",  # CI runs as root
        "--LabApp.expose_app_in_browser=True",
        # no network: no news feed, no update check
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    # Matplotlib's font cache built now, not in the kernel: that would write to stderr.
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, check=True, timeout=120)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + LAB_START_S
            while True:
                if process.poll() is not None:
                    raise LabError(f"JupyterLab exited with {process.returncode}:\n{tail(log_path)}")
                lab.port = lab.port or jupyter_server_port(env["JUPYTER_RUNTIME_DIR"]) or 0
                try:
                    if lab.port and lab.request("api/status") == 200:
                        break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise LabError(f"JupyterLab did not answer in {LAB_START_S} s:\n{tail(log_path)}")
                time.sleep(0.2)
            yield lab
        finally:
            stop_server(process, lambda: lab.request("api/shutdown", method="POST", timeout=LAB_STOP_S),
                        LAB_STOP_S)


def launch_chromium(playwright, chromium: Path = CHROMIUM):
    return playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
                                      timeout=60_000)


# --- in the page: JavaScript run by page.evaluate and page.wait_for_function ------------------------

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

# Code run in the notebook's kernel, as a cell would run it but with no cell: resolves with
# the reply's status ('ok' or 'error') and what the code printed.
EXECUTE = f"""async ([path, code, ms]) => {{
    const kernel = {PANEL}.sessionContext.session.kernel;
    const future = kernel.requestExecute({{code, store_history: false}});
    let printed = '';
    future.onIOPub = (msg) => {{
        if (msg.header.msg_type === 'stream') printed += msg.content.text;
        if (msg.header.msg_type === 'error') printed += msg.content.ename + ': ' + msg.content.evalue;
    }};
    const reply = await Promise.race([future.done, new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the kernel did not answer in ' + ms + ' ms')), ms))]);
    return [reply.content.status, printed];
}}"""

SET_THEME = "theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})"

IMAGE_LOADED = "img => img.complete && img.naturalWidth > 0"


def open_and_run_all(page, lab: Lab, name: str, run_all_s: float) -> bool:
    """Open ``name`` in the page, start its kernel and run every cell: True when every cell ran
    without error."""
    page.goto(lab.url_for(name), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function(NOTEBOOK_OPEN, arg=name, timeout=60_000)
    return page.evaluate(RUN_ALL, [name, int(run_all_s * 1000)])


def kernel_errors(page) -> list:
    return page.evaluate("() => window.kernelErrors || []")


# --- an explorer's controls, moved one step at a time -------------------------------------------------

# Arms the timing of the next step in the page: its start is the first keydown, input or change
# event anywhere (a capturing listener on the window runs before the control's own); its end
# the next animation frame after the new picture is ready. For mode 'frame' (target a
# .bce-explorer): its data-frame changed (client.js draws in the input event's handler) and any
# image of its figure whose src changed decoded (a frame can bring another background);
# `latency` is then the widget's own data-latency (set in client.js's animation frame callback,
# which runs before this one), `busy` whether data-busy went "true". For mode 'src' (target an
# img): its src changed and the new image decoded. Results in window.bceStep.
ARM_STEP = """([target, mode]) => {
    const step = {start: null, end: null, error: null, latency: null, busy: false, frame: null};
    window.bceStep = step;
    const events = ['keydown', 'input', 'change'];
    const started = () => { if (step.start === null) step.start = performance.now(); };
    events.forEach((type) => window.addEventListener(type, started, true));
    const finish = () => requestAnimationFrame(() => {
        step.end = performance.now();
        events.forEach((type) => window.removeEventListener(type, started, true));
        if (mode === 'frame' && target.dataset.latency !== undefined) step.latency = Number(target.dataset.latency);
    });
    const decoded = (images) => Promise.all(images.map((img) => img.decode())).then(finish, (error) => {
        step.error = String(error); finish();
    });
    if (mode === 'frame') {
        target.removeAttribute('data-latency');
        const before = target.dataset.frame;
        const images = Array.from(target.querySelectorAll('.bce-figure img:not(.bce-fallback)'));
        const sources = images.map((img) => img.getAttribute('src'));
        const seen = new MutationObserver(() => {
            if (target.dataset.busy === 'true') step.busy = true;
            if (target.dataset.frame === before || step.frame !== null) return;
            seen.disconnect();
            step.frame = target.dataset.frame;
            decoded(images.filter((img, i) => img.getAttribute('src') !== sources[i]));
        });
        seen.observe(target, {attributes: true, attributeFilter: ['data-frame', 'data-busy']});
    } else {
        const before = target.getAttribute('src');
        const seen = new MutationObserver(() => {
            if (target.getAttribute('src') === before) return;
            seen.disconnect();
            decoded([target]);
        });
        seen.observe(target, {attributes: true, attributeFilter: ['src']});
    }
}"""
STEP_DONE = "() => window.bceStep && window.bceStep.end !== null"
STEP_RESULT = "() => window.bceStep"

# A kernel control's change, in the page: when its input event came, whether (and when) the
# explorer said data-busy="true" and what its status said then, and when data-busy went back
# to "false" with a new frame drawn. Results in window.bceKernelStep.
ARM_KERNEL_STEP = """(root) => {
    const step = {start: null, busyAt: null, status: null, end: null, frame: null};
    window.bceKernelStep = step;
    const before = root.dataset.frame;
    const started = () => { if (step.start === null) step.start = performance.now(); };
    window.addEventListener('input', started, {capture: true, once: true});
    const seen = new MutationObserver(() => {
        if (root.dataset.busy === 'true' && step.busyAt === null) {
            step.busyAt = performance.now();
            step.status = root.querySelector('.bce-status').textContent;
        }
        if (step.busyAt !== null && root.dataset.busy === 'false' && root.dataset.frame !== before) {
            seen.disconnect();
            step.end = performance.now();
            step.frame = root.dataset.frame;
        }
    });
    seen.observe(root, {attributes: true, attributeFilter: ['data-busy', 'data-frame']});
}"""
KERNEL_STEP_DONE = "() => window.bceKernelStep && window.bceKernelStep.end !== null"
KERNEL_STEP_RESULT = "() => window.bceKernelStep"

# A slider's value and bounds: a range input's, or an ARIA slider's (ipywidgets' noUiSlider handle).
RANGE_STATE = """el => el.tagName === 'INPUT' ? [Number(el.value), Number(el.min), Number(el.max)]
    : ['aria-valuenow', 'aria-valuemin', 'aria-valuemax'].map((name) => Number(el.getAttribute(name)))"""


def key_toward(value: float, low: float, high: float, key: str) -> str:
    """``key``, or its opposite where ``key`` would not move a range input at ``value``."""
    up = key in ("ArrowRight", "ArrowUp", "PageUp")
    opposite = {"ArrowRight": "ArrowLeft", "ArrowLeft": "ArrowRight", "PageUp": "PageDown", "PageDown": "PageUp",
                "ArrowUp": "ArrowDown", "ArrowDown": "ArrowUp"}
    if (up and value >= high) or (not up and value <= low):
        return opposite[key]
    return key


def timed_step(page, target, mode: str, act, timeout_ms: int) -> dict:
    """Arm the timing (see ARM_STEP), ``act()``, wait for the step to end: the step's record,
    with ``ms`` from its input event to the next animation frame after the new picture."""
    page.evaluate(ARM_STEP, [target, mode])
    act()
    page.wait_for_function(STEP_DONE, timeout=timeout_ms, polling=10)
    step = page.evaluate(STEP_RESULT)
    step["ms"] = step["end"] - step["start"] if step["start"] is not None else None
    return step


def press_on(page, control, key: str) -> str:
    """Focus ``control`` (a range input or an ARIA slider) and press ``key``, or its opposite at
    the end of the range; the key pressed."""
    value, low, high = control.evaluate(RANGE_STATE)
    pressed = key_toward(value, low, high, key)
    control.focus()
    page.keyboard.press(pressed)
    return pressed


def percentile(values: list, fraction: float) -> float:
    """The ``fraction`` quantile of ``values``, interpolated between the two nearest (as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def luminance(css_colour: str) -> float:
    """0 (black) to 1 (white), from a computed rgb()/rgba() colour."""
    r, g, b = (float(v) for v in css_colour[css_colour.index("(") + 1:-1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
