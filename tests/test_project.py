"""The project's promises about itself: two commands, loose run-time requirements,
a pinned development environment, and a package that carries no tests."""

import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from helpers import copy_of_checkout

RUNTIME = {"torch", "numpy", "matplotlib", "ipywidgets", "anywidget", "nbformat"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project(request):
    root = request.path.parent.parent
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def names(requirements):
    return {Requirement(r).name.lower() for r in requirements}


def test_runtime_requirements_are_only_what_a_notebook_needs_with_loose_bounds(project):
    assert names(project["dependencies"]) == RUNTIME
    for text in project["dependencies"]:
        specifier = Requirement(text).specifier
        # lower bounds only: installing in Colab must never replace its torch
        assert all(s.operator == ">=" for s in specifier), text


def test_tools_are_extras(project):
    extras = project["optional-dependencies"]
    assert "jupyterlab" in names(extras["lab"])
    assert "nbgrader" in names(extras["instructor"])
    assert "pytest" in names(extras["test"])
    assert not {"jupyterlab", "nbgrader", "pytest"} & names(project["dependencies"])


def test_development_environment_pins_every_requirement(root, project):
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[req.name.lower()] = spec.version
    assert pins["torch"] == "2.13.0"
    wanted = names(project["dependencies"])
    for extra, reqs in project["optional-dependencies"].items():
        wanted |= {n for n in names(reqs) if n != project["name"]}
    assert wanted <= set(pins), wanted - set(pins)


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one(root):
    readme = (root / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (root / ".ci" / "run").read_text()
    makefile = (root / "Makefile").read_text()
    # the students' lab, without nbgrader's tools; the instructors' with them (tests/test_student_lab.py)
    assert re.search(r"^lab:.*\n\t.*python -m grader lab notebooks/$", makefile, re.M)
    assert re.search(r"^instructor-lab:.*\n\t.*python -m grader lab --instructor$", makefile, re.M)
    assert "make instructor-lab" in readme
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M)


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """The sdist and the wheel, built as PyPI would build them (isolated, from a copy of the
    repository's tracked files, so nothing a developer left in the checkout is in them)."""
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source") / "checkout"
    copy_of_checkout(ROOT, source)
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("tmp"))})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as archive:
        in_sdist = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    return in_sdist, zipfile.ZipFile(wheel).namelist()


def test_the_wheel_holds_the_grader_and_nothing_else(distributions):
    _, files = distributions
    packaged = {f.split("/")[0] for f in files if not f.split("/")[0].endswith(".dist-info")}
    assert packaged == {"grader"}
    assert {"grader/instructor/cli.py", "grader/_battery/cases.py", "grader/instructor/engine/session.py"} <= set(files)
    assert not [f for f in files if "test" in f.split("/")[-1]]
    # the nbgrader course (masters with solutions and hidden tests) never ships
    assert not [f for f in files if f.startswith("grader/course")]


def test_the_sdist_holds_no_master_and_no_hidden_test(distributions):
    files, _ = distributions
    assert "grader/__init__.py" in files and "pyproject.toml" in files
    assert not [f for f in files if f.startswith("grader/course") or f.endswith(".ipynb")], files


def test_no_module_of_the_package_is_over_500_lines(root):
    long = {str(p.relative_to(root)): n for p in (root / "grader").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_only_what_notebooks_import_is_flat_in_the_package(root):
    """grader/ holds what a notebook imports; the battery's internals and the instructor's side
    live in their own subpackages, and nothing there imports nbgrader outside instructor/."""
    flat = sorted(p.name for p in (root / "grader").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "articles.py", "datasets.py", "explore.py", "imbalance.py"]
    outside = [str(p.relative_to(root)) for p in (root / "grader").rglob("*.py")
               if "instructor" not in p.parts and re.search(r"^\s*(from|import) nbgrader", p.read_text(), re.M)]
    assert outside == []


def test_tests_never_import_each_other(root):
    """Shared helpers live in tests/helpers.py or conftest.py, never in another test module."""
    importing = [str(p.relative_to(root)) for p in (root / "tests").rglob("test_*.py")
                 if re.search(r"^\s*(from|import) test_", p.read_text(), re.M)]
    assert importing == []
