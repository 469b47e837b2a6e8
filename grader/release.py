"""The course's notebooks: the masters, their header cells, and the student copies.

The masters live in the nbgrader course, ``grader/course/source/<assignment>/``;
``python -m grader release`` brings their header cells (the Colab badge and the
setup cell) in line with the repository configured in ``pyproject.toml``,
generates the student copies with nbgrader's ``generate_assignment`` and
writes them to ``notebooks/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent / "course"
SOURCE_DIR = COURSE_DIR / "source"
REPO_ROOT = COURSE_DIR.parent.parent

BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

SETUP = '''\
# Setup. In Google Colab, install the course's package first (Colab already has torch).
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "bce-course @ git+https://github.com/{repository}@{branch}"

import torch
import grader

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"torch {{torch.__version__}}, running on {{device}}")'''


class ReleaseError(Exception):
    """A missing or malformed master, or a configuration that cannot be used."""


@dataclass(frozen=True)
class Location:
    """Where the course's repository lives (``[tool.bce-course]`` in pyproject.toml)."""

    repository: str
    branch: str

    def colab_url(self, notebook: str) -> str:
        return (f"https://colab.research.google.com/github/{self.repository}/blob/{self.branch}/"
                f"notebooks/{notebook}")


def location(root: Path = REPO_ROOT) -> Location:
    path = root / "pyproject.toml"
    try:
        table = tomllib.loads(path.read_text())["tool"]["bce-course"]
        repository, branch = table["repository"], table.get("branch", "main")
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseError(f"{path} needs a [tool.bce-course] table with repository = \"OWNER/NAME\" "
                           f"and branch ({type(exc).__name__}: {exc})") from exc
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise ReleaseError(f"[tool.bce-course] repository should look like OWNER/NAME, not {repository!r}")
    return Location(repository, branch)


def assignments(source: Path = SOURCE_DIR) -> list[str]:
    """The assignments, in course order (their names sort in order)."""
    if not source.is_dir():
        raise ReleaseError(f"no nbgrader source folder at {source}")
    return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))


def master_path(assignment: str, source: Path = SOURCE_DIR) -> Path:
    path = source / assignment / f"{assignment}.ipynb"
    if not path.exists():
        raise ReleaseError(f"the assignment {assignment!r} has no master notebook {path.name} in {path.parent}")
    return path


def header_sources(assignment: str, where: Location) -> tuple[str, str]:
    """The text of the two header cells of a notebook: the badge, the setup."""
    badge = f"[![Open In Colab]({BADGE})]({where.colab_url(assignment + '.ipynb')})"
    return badge, SETUP.format(repository=where.repository, branch=where.branch)


@contextlib.contextmanager
def environment_bin_on_path():
    """Put this Python's scripts folder on PATH while nbgrader runs: it calls the
    ``alembic`` command, which a virtual environment that was not activated
    leaves off PATH."""
    scripts = str(Path(sys.executable).parent)
    saved = os.environ.get("PATH", "")
    if scripts not in saved.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + saved
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def _read(path: Path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a malformed master
        raise ReleaseError(f"{path} is not a readable notebook ({type(exc).__name__}: {exc})") from exc


def _header_cells(nb, path: Path) -> tuple:
    tagged = [c for c in nb.cells if "header" in c.get("metadata", {}).get("tags", [])]
    badge = next((c for c in tagged if c.cell_type == "markdown"), None)
    setup = next((c for c in tagged if c.cell_type == "code"), None)
    if badge is None or setup is None or nb.cells[:2] != [badge, setup]:
        raise ReleaseError(f"{path} must open with its two header cells, tagged 'header': a markdown "
                           "cell (the Colab badge) and a code cell (the setup)")
    return badge, setup


def sync_headers(where: Location | None = None, source: Path = SOURCE_DIR) -> list[Path]:
    """Rewrite the header cells of every master that is out of date; return those rewritten."""
    import nbformat

    where = where or location()
    changed = []
    for name in assignments(source):
        path = master_path(name, source)
        nb = _read(path)
        badge, setup = _header_cells(nb, path)
        want = header_sources(name, where)
        if (badge.source, setup.source) != want:
            badge.source, setup.source = want
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def title(path: Path) -> str:
    """The notebook's title: its first level-1 heading."""
    for cell in _read(path).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise ReleaseError(f"{path} has no title (a markdown line starting with '# ')")


def notebooks_readme(names: list[str], where: Location, source: Path = SOURCE_DIR) -> str:
    lines = [
        "# The course notebooks",
        "",
        "Work through them in order, in JupyterLab (`make lab` from the repository root) or in Google",
        "Colab (the badge opens a notebook there). Each has exercises that you check as you go with",
        "`grader.check(...)` in the notebook, or from a terminal with `python -m grader check FILE`.",
        "",
        "These student copies are generated from the instructor's masters by `python -m grader release`;",
        "do not edit them by hand.",
        "",
    ]
    for number, name in enumerate(names, start=1):
        badge = f"[![Open In Colab]({BADGE})]({where.colab_url(name + '.ipynb')})"
        lines.append(f"{number}. [{title(master_path(name, source))}]({name}.ipynb) {badge}")
    return "\n".join(lines) + "\n"


def generate(out: Path, *, source: Path = SOURCE_DIR, release_dir: Path | None = None,
             workspace: Path | None = None, config=None) -> list[Path]:
    """Generate the student copy of every master into ``out`` with nbgrader's
    generate_assignment, and ``out/README.md`` listing them. nbgrader runs in
    ``workspace`` with ``config`` when given (a course workspace, whose gradebook
    then knows the assignments), else in a temporary course folder. With
    ``release_dir``, nbgrader's release folder (release/<assignment>/...) is
    copied there too."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    names = assignments(source)
    if not names:
        raise ReleaseError(f"no assignments in {source}")
    for name in names:
        master_path(name, source)
    where = location()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="bce-release-") as tmp, environment_bin_on_path():
        if workspace is None:
            root = Path(tmp)
            shutil.copytree(source, root / "source")
            config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_DIR)).load_config()
            config.CourseDirectory.root = str(root)
        else:
            root = Path(workspace)
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        for name in names:
            result = api.generate_assignment(name, force=True)
            if not result["success"]:
                raise ReleaseError(f"nbgrader could not generate {name}:\n{result.get('error') or result.get('log')}")
            produced = root / "release" / name / f"{name}.ipynb"
            target = out / produced.name
            shutil.copyfile(produced, target)
            written.append(target)
        if release_dir is not None:
            shutil.copytree(root / "release", release_dir, dirs_exist_ok=True)
    (out / "README.md").write_text(notebooks_readme(names, where, source))
    return written


def differences(expected: Path, actual: Path) -> list[str]:
    """Files that differ between two folders of generated notebooks (by content)."""
    problems = []
    names = {p.name for p in expected.iterdir()} | {p.name for p in actual.iterdir() if p.suffix in (".ipynb", ".md")}
    for name in sorted(names):
        a, b = expected / name, actual / name
        if not b.exists():
            problems.append(f"{name} is missing")
        elif not a.exists():
            problems.append(f"{name} is not generated from any master")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{name} differs from what the masters generate")
    return problems
