"""What several test modules share: the course's assignments, a class of synthetic
submissions built from the released notebooks, and a fresh Python to run a script in."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Callable

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.instructor import release

A1, A5 = "01-bce-vector", "05-bce-with-logits"


# A student's notebook for the scan's tests: the course's setup cell, locked (cell 1); a markdown
# cell (cell 2); then the student's cells (cell 3 on).
SOLUTION = {"nbgrader": {"solution": True, "grade": False, "grade_id": "x", "locked": False, "schema_version": 3}}
LOCKED = {"nbgrader": {"solution": False, "grade": False, "grade_id": "setup", "locked": True, "schema_version": 3}}
SETUP = "import os\nimport sys\n\nimport torch\nimport grader\n\ndevice = torch.device('cpu')\n"


def scanned_notebook(*sources: str):
    """The course's setup cell (cell 1), a markdown cell (cell 2), then the student's cells
    (cell 3 on): the first a solution cell, the others cells the student added."""
    cells = [new_code_cell(SETUP, metadata=LOCKED), new_markdown_cell("# Exercise")]
    for index, source in enumerate(sources):
        cells.append(new_code_cell(source, metadata=SOLUTION if index == 0 else {}))
    return new_notebook(cells=cells)


def solutions(assignment):
    return release.master_solutions(assignment)


def hidden_lines(assignment):
    """Every non-empty line of the hidden tests of ``assignment``'s master."""
    master = nbformat.read(release.master_path(assignment), as_version=4)
    lines = []
    for cell in master.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


class Class:
    """Builds submissions from a released notebook."""

    def __init__(self, workspace):
        self.released = {a: nbformat.read(p, as_version=4) for a, p in workspace.released().items()}

    def notebook(self, assignment, answers=None, edit=None, delete=()):
        nb = nbformat.from_dict(json.loads(json.dumps(self.released[assignment])))
        cells = []
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in delete:
                continue
            if answers and grade_id in answers:
                cell.source = answers[grade_id]
            if edit and grade_id in edit:
                cell.source = edit[grade_id]
            cells.append(cell)
        nb.cells = cells
        return nbformat.writes(nb)


def run_script(script: str, timeout: int = 300) -> tuple[dict, str]:
    """Run ``script`` in a fresh Python (one that never used torch's thread pool, as the
    engine's first process); what its last line of output says, as JSON, and all it printed."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def released_workspace(root, notebooks, config: str = ""):
    """A course workspace at ``root`` after ``release`` (student copies in ``notebooks``), with
    ``config`` (lines of nbgrader configuration) added to its nbgrader_config.py."""
    from grader.instructor.cli import main
    from grader.instructor.workspace import Workspace

    workspace = Workspace.at(root)
    assert main(["release", "--out", str(notebooks), "--workspace", str(workspace.root)]) == 0
    if config:
        with workspace.config_file.open("a") as f:
            f.write(config)
    return workspace


def cell_scores(workspace):
    """Every graded cell's (score, maximum), by (student, assignment, cell)."""
    with workspace.gradebook() as gb:
        return {(g.student.id, g.assignment.name, g.name): (g.score, g.max_score)
                for a in gb.assignments for sub in gb.assignment_submissions(a.name)
                for nb in sub.notebooks for g in nb.grades}


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (another process may take
    it before it is used: a server that can pick its own, Jupyter's, is given port 0 instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyter_server_port(runtime_dir) -> int | None:
    """The port of the Jupyter server whose runtime folder (JUPYTER_RUNTIME_DIR, one of its own)
    is ``runtime_dir``, started with --ServerApp.port=0: the system gave it a free port as it
    bound, so that servers started at once (pytest-xdist's workers) never race for one. None
    until the server has written its server file there."""
    from pathlib import Path

    for path in Path(runtime_dir).glob("jpserver-*.json"):
        try:
            return int(json.loads(path.read_text())["port"])
        except (OSError, ValueError, KeyError):  # still being written
            return None
    return None


def stop_server(process: subprocess.Popen, shutdown: Callable[[], object], timeout: float) -> None:
    """Stop a server started for a test, and the processes it started (kernels run in sessions
    of their own): ``shutdown()`` asks it through its API, else signals end it."""
    import psutil
    import urllib.error

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if process.poll() is None:
        try:
            shutdown()
        except (urllib.error.URLError, OSError):
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=timeout)


def copy_of_checkout(root, dest) -> None:
    """The repository's files as git sees them (tracked, and new ones not ignored) copied to
    ``dest``: what building a package from a clean clone would start from."""
    import shutil
    from pathlib import Path

    root, dest = Path(root), Path(dest)
    files = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, files):
        if (root / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
