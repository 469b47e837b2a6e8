"""Open in Colab, without Colab: every student notebook runs top to bottom in a
Colab-like environment, its setup cell installs the course package, its checks
give feedback and its explorers render; and the environment Binder builds from
environment.yml installs.

The Colab-like environment is a fresh virtual environment with only what Colab
provides (tests/colab-requirements.txt: torch, numpy, matplotlib, ipywidgets
7.7, IPython, ipykernel; no JupyterLab, no nbgrader, not this repository), a
kernel whose start-up imports a stand-in ``google.colab`` (tests/colab_stub/),
and each notebook copied alone into an empty folder. The setup cell's install
source is overridden with $BCE_COURSE_INSTALL so that it installs this checkout
instead of the repository on GitHub.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from grader.instructor import release

pytestmark = pytest.mark.slow  # grades a class, or builds an environment: minutes

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = release.assignments()
PROBE = "import ipywidgets, grader, sys\nprint('probe:', ipywidgets.__version__, grader.__file__, sys.prefix)"


# What would reach a fresh environment's Python from the one running the tests: a PYTHONPATH
# holding this checkout (as a developer's may) would make `grader` importable there without
# any install.
LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")


def environment(tmp: Path) -> dict:
    """The environment for a fresh environment's commands: none of LEAKS, and a temporary
    folder of the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    env["TMPDIR"] = str(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    return env


def pip(python: Path, *args, cwd=None, bytecode=True):
    """``pip install ARGS`` with the fresh environment's ``python``; ``bytecode=False`` skips
    writing the bytecode of every installed module (half of installing torch), which Python
    compiles anyway for the modules it imports."""
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           *([] if bytecode else ["--no-compile"]), *args],
                          capture_output=True, text=True, timeout=1500, cwd=cwd,
                          env=environment(python.parents[2] / "tmp"))  # beside the venv
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def fresh_venv(path: Path) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True, timeout=300, env=environment(path.parent / "tmp"))
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """The Colab-like environment: its python, and a Jupyter kernel named colab-sim."""
    tmp = tmp_path_factory.mktemp("colab")
    python = fresh_venv(tmp / "venv")
    pip(python, "-r", str(ROOT / "tests" / "colab-requirements.txt"))
    ipython_dir = tmp / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as Colab's kernel does at start-up\n")
    spec = tmp / "jupyter" / "kernels" / "colab-sim"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python",
        "env": {"PYTHONPATH": str(ROOT / "tests" / "colab_stub"), "IPYTHONDIR": str(ipython_dir),
                release.INSTALL_VARIABLE: str(ROOT), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "TMPDIR": str(tmp / "tmp")},
    }))
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(tmp / "jupyter") + (os.pathsep + saved if saved else "")
    yield python, tmp
    if saved is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = saved


def test_the_colab_like_environment_has_only_what_colab_has(colab):
    python, _ = colab
    done = subprocess.run([str(python), "-c", "import importlib.util as u, ipywidgets; print(ipywidgets.__version__, "
                           "[m for m in ('grader', 'jupyterlab', 'nbgrader') if u.find_spec(m)])"],
                          capture_output=True, text=True, timeout=120, cwd=colab[1],
                          env=environment(colab[1] / "tmp"))
    assert done.stdout.split(" ", 1) == ["7.7.1", "[]\n"], done.stdout + done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_colab(colab, name, tmp_path):
    python, _ = colab
    folder = tmp_path / "content"  # the notebook alone, as Colab opens it
    folder.mkdir()
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", folder)
    nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, timeout=600, kernel_name="colab-sim", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()

    def text(cell):
        return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)

    setup = text(nb.cells[1])
    assert f"Setup: installed the course package from {ROOT}" in setup, setup
    version, location, prefix = text(nb.cells[-1]).split("probe: ")[1].split()
    assert version.startswith("7.7."), version
    assert location.startswith(prefix) and not location.startswith(str(ROOT)), (location, prefix)

    checks = explorers = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        graded = cell.get("metadata", {}).get("nbgrader", {}).get("grade", False)
        if graded:
            assert errors and errors[0].ename == "AssertionError", f"{name} cell {index}: {errors}"
        elif cell.get("metadata", {}).get("nbgrader", {}).get("solution"):  # an answer still to write
            assert all(e.ename == "NotImplementedError" for e in errors), f"{name} cell {index}: {errors}"
        else:
            assert not errors, f"{name} cell {index}: {errors[0].ename}: {errors[0].evalue}"
        # grader.check(...), and the capstone's grader.imbalance.check_pos_weight(...) and check_trained(...)
        if re.search(r"^grader\.(?:imbalance\.check_\w+|check)\(", cell.source, re.M):
            checks += 1
            shown = text(cell)
            assert "NotImplementedError" in shown and ("First failure" in shown or "not written yet" in shown), \
                shown[:500]
        if "explorer" in cell.get("metadata", {}).get("tags", []) and cell.cell_type == "code":
            explorers += 1
            assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)
    assert checks >= 1 and explorers >= 1


def test_environment_yml_is_the_projects_requirements_and_installs(tmp_path):
    """environment.yml's pip part installs this repository with the students' and instructors'
    extras, so it names exactly pyproject.toml's requirements; and it installs in a clean venv."""
    import tomllib

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip_part,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    (line,) = pip_part
    match = re.fullmatch(r"-e \.\[(?P<extras>[a-z,]+)\]", line)
    assert match, line
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(match["extras"].split(",")) == {"lab", "instructor"} <= set(project["optional-dependencies"])
    python = fresh_venv(tmp_path / "venv")
    # -c constraints.txt: the pinned torch, as everywhere in development
    pip(python, "-c", str(ROOT / "constraints.txt"), *line.split(), cwd=ROOT, bytecode=False)
    done = subprocess.run([str(python), "-c", "import grader, jupyterlab, nbgrader, torch, ipywidgets; "
                           "print(torch.__version__)"], capture_output=True, text=True, timeout=300,
                          env=environment(tmp_path / "tmp"))
    assert done.returncode == 0 and done.stdout.startswith("2.13.0"), done.stderr


def test_badges_point_at_the_notebooks_in_the_configured_repository():
    where = release.location()
    colab = re.compile(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/notebooks/([^)\s]+)")
    found = {}
    for path in [ROOT / "README.md", NOTEBOOKS / "README.md", *sorted(NOTEBOOKS.glob("*.ipynb"))]:
        for repository, branch, notebook in colab.findall(path.read_text()):
            assert (repository, branch) == (where.repository, where.branch), path
            assert (NOTEBOOKS / notebook).is_file(), (path, notebook)
            found.setdefault(notebook, set()).add(path.name)
    for name in NAMES:
        # listed in both READMEs, and in its own first cell, on the line under the title
        assert {"README.md", f"{name}.ipynb"} <= found[f"{name}.ipynb"], found
        first = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells[0].source.splitlines()
        assert first[0].startswith("# ") and first[2].startswith("[![Open In Colab]") \
            and f"notebooks/{name}.ipynb" in first[2]
    readme = (ROOT / "README.md").read_text()
    assert f"https://mybinder.org/v2/gh/{where.repository}/{where.branch}?urlpath=lab/tree/notebooks" in readme
