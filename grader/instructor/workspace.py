"""The course workspace on top of nbgrader: its configuration, nbgrader's API,
the gradebook, its paths and json files; and releasing the course into it.

The workspace is an nbgrader course folder (``source/``, ``release/``,
``submitted/``, ``autograded/``, ``feedback/`` and the gradebook), with an
``nbgrader_config.py`` that loads the course's own configuration, so that
nbgrader's commands and its formgrader work there too. Every command is safe
to run again: collect replaces a submission only when its content changed,
autograde and feedback overwrite their outputs, export and report read the
gradebook.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import release
from .release import COURSE_DIR, REPO_ROOT

#: Where the workspace lives unless --workspace or $BCE_COURSE_WORKSPACE says otherwise (git ignores it).
DEFAULT_WORKSPACE = REPO_ROOT / "course-workspace"


class WorkflowError(Exception):
    """Something the instructor must fix before the command can run."""


# --- the workspace -------------------------------------------------------------------

@dataclass
class Workspace:
    root: Path
    db_url: str | None = None

    @classmethod
    def at(cls, root: str | os.PathLike | None = None, db_url: str | None = None) -> "Workspace":
        root = Path(root or os.environ.get("BCE_COURSE_WORKSPACE") or DEFAULT_WORKSPACE).resolve()
        return cls(root, db_url or os.environ.get("BCE_COURSE_DB_URL"))

    @property
    def config_file(self) -> Path:
        return self.root / "nbgrader_config.py"

    def prepare(self) -> None:
        """Create the folder and its nbgrader_config.py, and bring source/ in line with the masters."""
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Written by `python -m grader`: this folder is an nbgrader course, so nbgrader's own",
            "# commands (nbgrader autograde, nbgrader formgrader ...) work here too.",
            "c = get_config()  # noqa: F821",
            f"load_subconfig({str(COURSE_DIR / 'nbgrader_config.py')!r})  # noqa: F821",
            f"c.CourseDirectory.root = {str(self.root)!r}",
        ]
        if self.db_url:
            lines.append(f"c.CourseDirectory.db_url = {self.db_url!r}")
        text = "\n".join(lines) + "\n"
        if not self.config_file.exists() or self.config_file.read_text() != text:
            self.config_file.write_text(text)
        for name in release.assignments():
            target = self.root / "source" / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(release.master_path(name), target / f"{name}.ipynb")

    def config(self):
        from traitlets.config.loader import PyFileConfigLoader

        if not self.config_file.exists():
            raise WorkflowError(f"{self.root} is not a course workspace yet: run `python -m grader release` first")
        config = PyFileConfigLoader(self.config_file.name, path=str(self.root)).load_config()
        if self.db_url:
            config.CourseDirectory.db_url = self.db_url
        return config

    def api(self, warm: bool = False):
        """nbgrader's API on this workspace; ``warm``: notebooks run by the warm engine
        (grader.instructor.engine.WarmExecute in place of nbgrader's Execute)."""
        from nbgrader.apps import NbGraderAPI
        from nbgrader.converters import Autograde
        from nbgrader.coursedir import CourseDirectory

        config = self.config()
        if warm:
            from nbgrader.preprocessors import Execute

            # The warm engine runs the notebook without its hidden tests and judges them outside
            # it; the autograded notebook it leaves holds none either.
            config.Autograde.autograde_preprocessors = [
                "grader.instructor.engine.WarmExecute" if p is Execute else p
                for p in Autograde.class_traits()["autograde_preprocessors"].default()] + [
                "grader.instructor.plugins.HideHiddenTests"]
        return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)

    def gradebook(self):
        from nbgrader.api import Gradebook

        config = self.config()
        course_id = config.CourseDirectory.course_id
        db_url = self.db_url or f"sqlite:///{self.root / 'gradebook.db'}"
        return Gradebook(db_url, course_id)

    def released(self) -> dict[str, Path]:
        """The released student notebook of each assignment."""
        found = {name: self.root / "release" / name / f"{name}.ipynb" for name in release.assignments()}
        missing = [n for n, p in found.items() if not p.exists()]
        if missing:
            raise WorkflowError(f"{', '.join(missing)} not released in {self.root}: "
                                "run `python -m grader release` first")
        return found

    def submitted(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment / f"{assignment}.ipynb"

    def write_json(self, name: str, data) -> Path:
        path = self.root / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    def read_json(self, name: str, default):
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else default


def release_course(workspace: Workspace, out: Path) -> list[Path]:
    """Generate the student copies in the workspace (registering the assignments
    in its gradebook) and copy them to ``out``."""
    workspace.prepare()
    return release.generate(out, workspace=workspace.root, config=workspace.config())



def _submitted_students(workspace: Workspace) -> list[str]:
    folder = workspace.root / "submitted"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []



def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
