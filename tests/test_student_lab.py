"""The students' JupyterLab has none of nbgrader's tools; the instructors' has them all.

Each lab starts the way the Makefile starts it (`make lab`, `make instructor-lab`), with only
what a test needs added: loopback, a port the system picks, a random token, no browser, no
network, and every Jupyter folder (configuration, data, runtime, settings, workspaces, IPython)
a temporary one, so that neither the user's configuration nor this test's can decide the outcome."""

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import jupyter_server_port, stop_server

ROOT = Path(__file__).resolve().parent.parent
START_S, STOP_S = 120, 30

#: nbgrader's JupyterLab extension (the Nbgrader menu, Validate, Create Assignment) and the page
#: that its server extension, the formgrader, serves.
LAB_EXTENSION, FORMGRADER = "@jupyter/nbgrader", "formgrader"
SERVER_EXTENSIONS = ("formgrader", "validate_assignment", "assignment_list", "course_list")


def recipe(target: str) -> list[str]:
    """The command of a Makefile target, run by this test's Python."""
    found = re.search(rf"^{re.escape(target)}:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, f"the Makefile has no target {target}"
    argv = shlex.split(found[1].replace("$(BIN)/python", shlex.quote(sys.executable)))
    assert argv[:4] == [sys.executable, "-m", "grader", "lab"], argv  # the launcher
    return argv


class Lab:
    def __init__(self, port: int, token: str, log: Path):
        self.port, self.token, self.log = port, token, log

    def get(self, path: str, method: str = "GET", timeout: float = 10) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    def page_config(self) -> dict:
        status, html = self.get("lab")
        assert status == 200, status
        found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
        assert found, html[:2000]
        return json.loads(found[1])


def start(target: str, tmp_path: Path):
    """JupyterLab as ``make TARGET`` starts it, in a copy of the checkout's layout (an empty
    notebooks/ folder) under ``tmp_path``; returns the process and the Lab."""
    home, checkout = tmp_path / "home", tmp_path / "checkout"
    (checkout / "notebooks").mkdir(parents=True)
    env = dict(os.environ)
    env.pop("JUPYTER_CONFIG_PATH", None)
    env.pop("JUPYTER_PATH", None)
    for name, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython"), ("TMPDIR", "tmp")]:
        env[name] = str(home / sub)
        (home / sub).mkdir(parents=True)
    lab = Lab(0, secrets.token_hex(24), tmp_path / "jupyterlab.log")  # the port: once it has one
    command = recipe(target) + [
        "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={lab.token}", "--ServerApp.terminals_enabled=False", "--allow-root",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(lab.log, "wb") as log:
        process = subprocess.Popen(command, cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{lab.log.read_text(errors='replace')}")
        lab.port = lab.port or jupyter_server_port(env["JUPYTER_RUNTIME_DIR"]) or 0
        try:
            if lab.port and lab.get("api/status", timeout=2)[0] == 200:
                return process, lab
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop(process, lab)
            pytest.fail(f"JupyterLab did not answer in {START_S} s:\n{lab.log.read_text(errors='replace')}")
        time.sleep(0.2)


def nbgrader_in(lab: Lab) -> dict:
    """What JupyterLab shows of nbgrader: its lab extension (listed, disabled) and its formgrader."""
    config = lab.page_config()
    return {"listed": LAB_EXTENSION in [e["name"] for e in config.get("federated_extensions", [])],
            "disabled": LAB_EXTENSION in config.get("disabledExtensions", []),
            "formgrader": lab.get(FORMGRADER)[0]}


def loaded_server_extensions(lab: Lab) -> list[str]:
    text = lab.log.read_text(errors="replace")
    return [name for name in SERVER_EXTENSIONS if re.search(rf"nbgrader\.server_extensions\.{name}\b.*\bextension was "
                                                           r"successfully loaded", text)]


@pytest.mark.slow  # starts JupyterLab
def test_the_students_lab_has_none_of_nbgraders_tools(tmp_path):
    process, lab = start("lab", tmp_path)
    try:
        seen = nbgrader_in(lab)
        assert not seen["listed"] or seen["disabled"], seen  # the Nbgrader menu, Validate, Create Assignment
        assert seen["formgrader"] == 404, seen
        assert lab.get("api/contents")[0] == 200  # the lab itself works
    finally:
        stop(process, lab)
    assert loaded_server_extensions(lab) == [], lab.log.read_text(errors="replace")
    # done without writing to the user's own configuration
    assert not [p for p in (tmp_path / "home" / "config").rglob("*") if p.is_file() and "nbgrader" in p.read_text()]


@pytest.mark.slow  # starts JupyterLab
def test_the_instructors_lab_has_them(tmp_path):
    """The control: the same check finds nbgrader's tools where they should be."""
    pytest.importorskip("nbgrader")
    process, lab = start("instructor-lab", tmp_path)
    try:
        seen = nbgrader_in(lab)
        assert seen["listed"] and not seen["disabled"], seen
        assert seen["formgrader"] == 200, seen
    finally:
        stop(process, lab)
    assert loaded_server_extensions(lab) == list(SERVER_EXTENSIONS), lab.log.read_text(errors="replace")


def test_the_students_lab_keeps_the_users_own_configuration_path():
    from grader.instructor import lab

    env = lab.environment(base={"JUPYTER_CONFIG_PATH": os.pathsep.join(["/a", str(lab.STUDENT_CONFIG), "/b"])})
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.STUDENT_CONFIG), "/a", "/b"]
    assert lab.environment(base={})["JUPYTER_CONFIG_PATH"] == str(lab.STUDENT_CONFIG)
    assert "JUPYTER_CONFIG_PATH" not in lab.environment(instructor=True, base={})


def stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut JupyterLab down: through its API, else by signal."""
    stop_server(process, lambda: lab.get("api/shutdown", method="POST", timeout=STOP_S), STOP_S)
