"""The instructor's commands from an installed package, as in the README's Kubernetes image, and
the README's SLURM and Kubernetes recipes run as each of their jobs would run them.

The wheel never holds the course (its masters have the solutions and hidden tests), so the course
folder is given with --course, or found from the workspace released with it. The wheel is built as
PyPI builds it and installed with pip into a folder of its own, which goes ahead of the test
environment's packages on PYTHONPATH (installing torch again would take minutes): `grader` is
imported from the wheel, never from the checkout, and the commands run from a folder outside the
repository. The recipes' command lines are read from README.md, so that this test follows it."""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from grader.instructor import release
from grader.instructor.workspace import WorkflowError, Workspace

from helpers import A1, Class, copy_of_checkout, solutions

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"alice": 9, "bob": 0, "carol": 5}  # all right; handed in unchanged; only the loss written
VARIABLES = ("BCE_COURSE_WORKSPACE", "BCE_COURSE_DB_URL", "BCE_COURSE_DIR", "PYTHONPATH", "PYTHONHOME",
             "PYTHONSTARTUP", "VIRTUAL_ENV")


def one_notebook_course(folder: Path) -> Path:
    """A course folder of the first notebook alone: the course's configuration and its master."""
    (folder / "source").mkdir(parents=True)
    shutil.copy(release.COURSE_DIR / "nbgrader_config.py", folder)
    shutil.copytree(release.SOURCE_DIR / A1, folder / "source" / A1)
    return folder


def scores(root: Path) -> dict[str, float]:
    with Workspace.at(root).gradebook() as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(A1)}


# --- where the course is found (no package to install) -------------------------------------------

def test_the_course_is_the_option_else_the_workspaces_else_the_environments(tmp_path, monkeypatch):
    for name in VARIABLES[:3]:
        monkeypatch.delenv(name, raising=False)
    first, second = one_notebook_course(tmp_path / "first"), one_notebook_course(tmp_path / "second")
    Workspace.at(tmp_path / "ws", course=first).prepare()
    assert Workspace.at(tmp_path / "ws").course_dir() == first  # remembered
    monkeypatch.setenv("BCE_COURSE_DIR", str(second))
    assert Workspace.at(tmp_path / "ws").course_dir() == first  # the workspace's own course first
    given = Workspace.at(tmp_path / "ws", course=second)
    given.config()  # the workspace now loads the course it was given
    assert f"load_subconfig({str(second / 'nbgrader_config.py')!r})" in given.config_file.read_text()
    assert Workspace(tmp_path / "ws").course_dir() == second  # as the engine's processes see it
    shutil.rmtree(second)
    monkeypatch.setenv("BCE_COURSE_DIR", str(first))
    assert Workspace.at(tmp_path / "ws").course_dir() == first  # the recorded one is gone: the environment's
    monkeypatch.delenv("BCE_COURSE_DIR")
    with pytest.raises(WorkflowError, match=r"the course folder .*second, which .*nbgrader_config.py loads, does not "
                                        r"exist: give it with --course DIR or \$BCE_COURSE_DIR"):
        Workspace.at(tmp_path / "ws").course_dir()


# --- an installed package ---------------------------------------------------------------------------

@dataclass
class Installed:
    site: Path     # where pip installed the wheel
    env: dict      # an environment in which `python` and `bce-grader` are the installed package's
    cwd: Path      # a folder outside the repository

    def run(self, argv, env=None, timeout=900) -> subprocess.CompletedProcess:
        done = subprocess.run([str(a) for a in argv], cwd=self.cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("installed")
    # the wheel, built in isolation from a copy of the repository's files, as tests/test_project.py builds it
    source = tmp / "checkout"
    copy_of_checkout(ROOT, source)
    (tmp / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["TMPDIR"] = str(tmp / "tmp")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("*.whl")
    site = tmp / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    env["PYTHONPATH"] = str(site)
    env["PATH"] = os.pathsep.join([str(site / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    package = Installed(site, env, elsewhere)
    done = package.run(["python", "-c", "import grader; print(grader.__file__)"])
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == site / "grader" / "__init__.py"
    assert not (site / "grader" / "course").exists()  # the masters never ship
    assert (site / "bin" / "bce-grader").exists()
    return package


@pytest.fixture(scope="module")
def collected(installed, tmp_path_factory) -> Path:
    """A workspace released by the installed package from a course folder, with a class of three
    collected: the folder to copy for each run."""
    tmp = tmp_path_factory.mktemp("class")
    course, workspace = one_notebook_course(tmp / "course"), tmp / "workspace"
    done = installed.run(["bce-grader", "release", "--course", course, "--workspace", workspace])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"the student copies are in {workspace / 'release'}/<assignment>/" in done.stdout
    assert (workspace / "release" / A1 / f"{A1}.ipynb").exists()
    assert list(installed.cwd.iterdir()) == []  # no notebooks/ where it ran, nor anywhere else
    build, s1 = Class(Workspace.at(workspace)), solutions(A1)
    downloads = tmp / "downloads"
    downloads.mkdir()
    (downloads / f"alice_{A1}.ipynb").write_text(build.notebook(A1, s1))
    (downloads / f"bob_{A1}.ipynb").write_text(build.notebook(A1))
    (downloads / f"carol_{A1}.ipynb").write_text(build.notebook(A1, {"bce_vector_solution": s1["bce_vector_solution"]}))
    done = installed.run(["bce-grader", "collect", downloads, "--workspace", workspace])  # the course: the workspace's
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 collected, 0 skipped" in done.stdout
    return workspace


def copy_of(workspace: Path, to: Path) -> Path:
    """The workspace copied (or mounted) elsewhere: its commands bring its configuration in line."""
    shutil.copytree(workspace, to)
    return to


@pytest.mark.slow
def test_without_a_course_folder_release_says_how_to_give_it(installed, tmp_path):
    done = installed.run(["bce-grader", "release", "--workspace", tmp_path / "workspace"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "no course folder" in done.stderr and "--course DIR or $BCE_COURSE_DIR" in done.stderr


@pytest.mark.slow
def test_release_and_autograde_from_the_installed_package(installed, collected, tmp_path):
    workspace = copy_of(collected, tmp_path / "workspace")
    done = installed.run(["bce-grader", "autograde", "--quiet", "--workspace", workspace, "--student", "alice"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"^alice +{A1} +9 / 9", done.stdout, re.M), done.stdout
    assert scores(workspace) == {"alice": 9}
    assert f"c.CourseDirectory.root = {str(workspace)!r}" in (workspace / "nbgrader_config.py").read_text()


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    assert "### Beyond one machine" in text
    return text.split("### Beyond one machine", 1)[1].split("\n## ", 1)[0]


def merge_command(section: str, workspace: str) -> str:
    """The merge the README gives for ``workspace``, as written there."""
    match = re.search(rf"`(python -m grader merge --workspace {re.escape(workspace)})`", section)
    assert match, f"the README gives no merge for {workspace}"
    return match[1]


def assert_merged(installed: Installed, workspace: Path, command: str, shards: int):
    done = installed.run(["sh", "-c", command])
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(workspace.glob(f"gradebook-shard-*-of-{shards}.db"))) == shards
    assert scores(workspace) == EXPECTED


@pytest.mark.slow
def test_the_readmes_slurm_recipe(installed, collected, tmp_path):
    section = readme_section()
    (script,) = [s for s in re.findall(r"```bash\n(.*?)```", section, re.S) if "#SBATCH" in s]
    first, last = map(int, re.search(r"^#SBATCH .*--array=(\d+)-(\d+)", script, re.M).groups())
    cpus = re.search(r"^#SBATCH .*--cpus-per-task=(\d+)", script, re.M)[1]
    shared = re.search(r"--workspace (\S+)", script)[1]
    workspace = copy_of(collected, tmp_path / "shared" / "course-workspace")
    (tmp_path / "grade.sh").write_text(script.replace(shared, str(workspace)))
    for task in range(first, last + 1):  # each job of the array, as SLURM starts it
        done = installed.run(["bash", tmp_path / "grade.sh"],
                             env={"SLURM_ARRAY_TASK_ID": str(task), "SLURM_CPUS_PER_TASK": cpus})
        assert done.returncode == 0, (task, done.stdout + done.stderr)
    assert_merged(installed, workspace, merge_command(section, shared).replace(shared, str(workspace)),
                  last - first + 1)


@pytest.mark.slow
def test_the_readmes_kubernetes_recipe(installed, collected, tmp_path):
    section = readme_section()
    (job,) = [yaml.safe_load(s) for s in re.findall(r"```yaml\n(.*?)```", section, re.S) if "kind: Job" in s]
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    (mount,) = [m["mountPath"] for m in container["volumeMounts"]]
    workspace = copy_of(collected, tmp_path / "volume")  # the volume, mounted at another path here

    def here(text: str) -> str:
        return re.sub(rf"{re.escape(mount)}(?=[\s/]|$)", str(workspace), text)

    command = [here(part) for part in container["command"]]
    for index in range(job["spec"]["completions"]):  # each pod of the indexed Job
        done = installed.run(command, env={"JOB_COMPLETION_INDEX": str(index)})
        assert done.returncode == 0, (index, done.stdout + done.stderr)
    assert_merged(installed, workspace, here(merge_command(section, mount)), job["spec"]["completions"])
