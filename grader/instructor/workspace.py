"""The course workspace on top of nbgrader: its configuration, nbgrader's API,
the gradebook, its paths and json files; and releasing the course into it.

The workspace is an nbgrader course folder (``source/``, ``release/``,
``submitted/``, ``autograded/``, ``feedback/`` and the gradebook), with an
``nbgrader_config.py`` that loads the course's own configuration, so that
nbgrader's commands and its formgrader work there too. Every command is safe
to run again: collect replaces a submission only when its content changed,
autograde and feedback overwrite their outputs, export and report read the
gradebook.

The course is a folder of its own, since the masters never ship in the package:
``--course DIR``, else the one the workspace's configuration loads (a workspace
released once remembers its course), else ``$BCE_COURSE_DIR``, else
``grader/course/`` of the checkout the package runs from. The gradebook is
``--db-url``, else ``$BCE_COURSE_DB_URL``, else the one the workspace's
configuration names, else ``gradebook.db`` in the workspace. The configuration
is kept in line with the course a command was given and with the folder the
workspace is in (copied, or mounted elsewhere).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import release

WORKSPACE_VARIABLE, DB_URL_VARIABLE, COURSE_VARIABLE = "BCE_COURSE_WORKSPACE", "BCE_COURSE_DB_URL", "BCE_COURSE_DIR"
#: What a course folder holds, as the errors say it.
COURSE_LAYOUT = "an nbgrader course folder holds nbgrader_config.py and source/<assignment>/<assignment>.ipynb"
NO_COURSE = (f"no course folder (the package holds no masters): give it with --course DIR or ${COURSE_VARIABLE}; "
             f"{COURSE_LAYOUT}")
#: What to install for each database driver SQLAlchemy may miss.
DRIVERS = {
    "psycopg": "pip install 'psycopg[binary]' (the instructor extra has it: pip install 'bce-course[instructor]')",
    "psycopg2": "pip install psycopg2-binary, or write the URL postgresql://... for psycopg 3, which the instructor "
                "extra installs",
    "MySQLdb": "pip install mysqlclient, or write the URL mysql+pymysql://... after pip install pymysql",
}


def default_workspace() -> Path:
    """course-workspace/ in the checkout the package runs from (git ignores it); run from an
    installed package, course-workspace/ in the current folder."""
    return (release.checkout_of(release.COURSE_DIR) or Path.cwd()) / "course-workspace"


class WorkflowError(Exception):
    """Something the instructor must fix before the command can run."""


# --- the workspace's configuration ------------------------------------------------------------
#
# The lines of nbgrader_config.py that record the workspace's course, folder and gradebook, as
# prepare() writes them: load_subconfig('<course>/nbgrader_config.py'), c.CourseDirectory.root =
# '<folder>', c.CourseDirectory.db_url = '<url>'.

_STRING = r"""(?P<value>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
_LINES = {"course": re.compile(rf"^load_subconfig\({_STRING}\)", re.M),
          "root": re.compile(rf"^c\.CourseDirectory\.root = {_STRING}", re.M),
          "db_url": re.compile(rf"^c\.CourseDirectory\.db_url = {_STRING}", re.M)}


def _recorded(text: str, what: str) -> str | None:
    match = _LINES[what].search(text)
    try:
        value = ast.literal_eval(match["value"]) if match else None
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) and value else None


def course_problem(folder: Path) -> str | None:
    """What keeps ``folder`` from being a course folder, or None."""
    if not folder.is_dir():
        return "does not exist" if not folder.exists() else "is not a folder"
    if not (folder / "nbgrader_config.py").is_file():
        return f"has no nbgrader_config.py ({COURSE_LAYOUT})"
    source = folder / "source"
    if not source.is_dir() or not any((d / f"{d.name}.ipynb").is_file() for d in source.iterdir() if d.is_dir()):
        return f"has no masters, source/<assignment>/<assignment>.ipynb ({COURSE_LAYOUT})"
    return None


# --- the gradebook's database -------------------------------------------------------------------

def shown_url(url: str) -> str:
    """``url`` without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: hide what looks like a password
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def database_problem(url: str, exc: BaseException) -> str | None:
    """One line on why the gradebook at ``url`` cannot be opened, and what to do; None when
    ``exc`` is not about the database or its URL."""
    from sqlalchemy import exc as errors

    shown, example = shown_url(url), "postgresql://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:///FILE"
    if isinstance(exc, ImportError):
        module = (exc.name or "").split(".")[0] or _short(exc)
        return (f"the gradebook {shown} needs the database driver {module}, which is not installed: "
                + DRIVERS.get(module, f"pip install {module}"))
    if isinstance(exc, errors.NoSuchModuleError):
        return f"the gradebook URL {shown} names a database or driver SQLAlchemy does not know; write {example}"
    if isinstance(exc, errors.ArgumentError):
        return f"the gradebook URL {shown} is not a database URL ({_short(exc)}); write {example}"
    if isinstance(exc, errors.DBAPIError):
        reason = _short(exc.orig if exc.orig is not None else exc, 300)
        if url.startswith("sqlite"):
            return f"cannot open the gradebook {shown}: {reason}; check that its folder exists and can be written"
        return (f"cannot open the gradebook {shown}: {reason}; check the host, port, user, password and database "
                f"of the URL (--db-url or ${DB_URL_VARIABLE}), that the server runs, and that the database exists "
                "(PostgreSQL: createdb NAME)")
    return None


# --- the workspace -------------------------------------------------------------------

@dataclass
class Workspace:
    root: Path
    db_url: str | None = None
    #: The course folder; None: the one the workspace's configuration loads, else $BCE_COURSE_DIR,
    #: else the checkout's grader/course/.
    course: Path | None = None
    _course: Path | None = field(default=None, init=False, repr=False, compare=False)
    _gradebook_checked: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def at(cls, root: str | os.PathLike | None = None, db_url: str | None = None,
           course: str | os.PathLike | None = None) -> "Workspace":
        root = Path(root or os.environ.get(WORKSPACE_VARIABLE) or default_workspace()).expanduser().resolve()
        workspace = cls(root, db_url or os.environ.get(DB_URL_VARIABLE) or None,
                        Path(course).expanduser().resolve() if course else None)
        workspace.db_url = workspace.db_url or workspace.recorded("db_url")
        return workspace

    @property
    def config_file(self) -> Path:
        return self.root / "nbgrader_config.py"

    def recorded(self, what: str) -> str | None:
        """What the workspace's configuration records: its "course" folder, "root" or "db_url"."""
        try:
            value = _recorded(self.config_file.read_text(), what)
        except (OSError, UnicodeDecodeError):
            return None
        return str(Path(value).parent) if what == "course" and value else value

    def course_dir(self) -> Path:
        """The course folder, or a WorkflowError that says how to give it."""
        if self._course is None:
            self._course = self._find_course()
        return self._course

    def _find_course(self) -> Path:
        if self.course is not None:
            problem = course_problem(self.course)
            if problem:
                raise WorkflowError(f"the course folder {self.course} {problem}")
            return self.course
        recorded = self.recorded("course")
        if recorded and not course_problem(Path(recorded)):
            return Path(recorded)
        if os.environ.get(COURSE_VARIABLE):
            path = Path(os.environ[COURSE_VARIABLE]).expanduser().resolve()
            problem = course_problem(path)
            if problem:
                raise WorkflowError(f"the course folder {path} (${COURSE_VARIABLE}) {problem}")
            return path
        checkout = release.checkout_of(release.COURSE_DIR)
        if checkout and not course_problem(release.COURSE_DIR):
            # a workspace elsewhere whose course is gone gets no other course silently; one inside
            # the checkout (course-workspace/, the checkout moved since) has the checkout's
            if not recorded or self.root.is_relative_to(checkout):
                return release.COURSE_DIR
        if recorded:
            raise WorkflowError(f"the course folder {recorded}, which {self.config_file} loads, "
                                f"{course_problem(Path(recorded))}: give it with --course DIR or ${COURSE_VARIABLE}")
        raise WorkflowError(NO_COURSE)

    @property
    def source(self) -> Path:
        """The course's masters: source/<assignment>/<assignment>.ipynb."""
        return self.course_dir() / "source"

    def prepare(self) -> None:
        """Create the folder and its nbgrader_config.py, and bring source/ in line with the masters."""
        course = self.course_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Written by `python -m grader`: this folder is an nbgrader course, so nbgrader's own",
            "# commands (nbgrader autograde, nbgrader formgrade ...) work here too.",
            "c = get_config()  # noqa: F821",
            f"load_subconfig({str(course / 'nbgrader_config.py')!r})  # noqa: F821",
            f"c.CourseDirectory.root = {str(self.root)!r}",
        ]
        if self.db_url:
            lines.append(f"c.CourseDirectory.db_url = {self.db_url!r}")
        text = "\n".join(lines) + "\n"
        if not self.config_file.exists() or self.config_file.read_text() != text:
            _replace(self.config_file, text)
        for name in release.assignments(self.source):
            target = self.root / "source" / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(release.master_path(name, self.source), target / f"{name}.ipynb")

    def _bring_config_in_line(self) -> None:
        """Point the recorded course and folder at this course and folder (a workspace given another
        course, or copied or mounted elsewhere), so that nbgrader and the engine's processes agree."""
        text = self.config_file.read_text()
        wanted = {"course": str(self.course_dir() / "nbgrader_config.py"), "root": str(self.root)}
        new = text
        for what, value in wanted.items():
            match = _LINES[what].search(new)
            if match and _recorded(new, what) != value:
                new = new[:match.start("value")] + repr(value) + new[match.end("value"):]
        if new != text:
            _replace(self.config_file, new)

    def config(self):
        from traitlets.config.loader import PyFileConfigLoader

        if not self.config_file.exists():
            raise WorkflowError(f"{self.root} is not a course workspace yet: run `python -m grader release` first")
        self._bring_config_in_line()
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

    def gradebook_url(self) -> str:
        return self.db_url or self.recorded("db_url") or f"sqlite:///{self.root / 'gradebook.db'}"

    def check_database(self) -> None:
        """Connect to the gradebook's database once: a WorkflowError, in one line, when it cannot be
        opened (no driver, a malformed URL, a server that refuses); nothing is written."""
        from sqlalchemy import create_engine

        url = self.gradebook_url()
        try:
            engine = create_engine(url)
            try:
                engine.connect().close()
            finally:
                engine.dispose()
        except Exception as exc:  # noqa: BLE001 - those of the database are said in a line, the rest raised
            problem = database_problem(url, exc)
            if problem is None:
                raise
            raise WorkflowError(problem) from exc

    def gradebook(self, *, released: bool = True):
        """The gradebook, open (a context manager). A WorkflowError, in one line, when its database
        cannot be opened, or (``released``) when release never ran against it: it knows no assignment."""
        from nbgrader.api import Gradebook

        course_id = self.config().CourseDirectory.course_id
        url = self.gradebook_url()
        try:
            with release.environment_bin_on_path():  # a new gradebook runs the alembic command
                gb = Gradebook(url, course_id)
        except Exception as exc:  # noqa: BLE001 - those of the database are said in a line, the rest raised
            problem = database_problem(url, exc)
            if problem is None:
                raise
            raise WorkflowError(problem) from exc
        if released:
            try:
                known = bool(gb.assignments)
            except BaseException:
                gb.close()
                raise
            if not known:
                gb.close()
                raise WorkflowError(f"the gradebook {shown_url(url)} knows no assignment: release never ran against "
                                    "it; run `python -m grader release` with this gradebook (the same --db-url) first")
            self._gradebook_checked = True
        return gb

    def released(self) -> dict[str, Path]:
        """The released student notebook of each assignment (which the gradebook knows)."""
        if not self.config_file.exists():
            raise WorkflowError(f"{self.root} is not a course workspace yet: run `python -m grader release` first")
        found = {name: self.root / "release" / name / f"{name}.ipynb" for name in release.assignments(self.source)}
        missing = [n for n, p in found.items() if not p.exists()]
        if missing:
            raise WorkflowError(f"{', '.join(missing)} not released in {self.root}: "
                                "run `python -m grader release` first")
        if not self._gradebook_checked:
            self.gradebook().close()
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


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole: a process reading it meanwhile sees the old text or the new."""
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(partial, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def release_course(workspace: Workspace, out: Path | None) -> list[Path]:
    """Generate the student copies in the workspace (registering the assignments
    in its gradebook) and copy them to ``out``; ``out`` None: the copies in the
    workspace's release/ folder."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    workspace.check_database()  # before the workspace records it, and before nbgrader's long logs
    workspace.prepare()
    return release.generate(out, source=workspace.source, workspace=workspace.root, config=workspace.config())

def _submitted_students(workspace: Workspace) -> list[str]:
    folder = workspace.root / "submitted"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []



def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
