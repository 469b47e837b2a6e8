"""Every change the grader makes to nbgrader's internals, in one place.

The warm engine grades in parallel workers, each running nbgrader's own ``autograde``;
these patches make that safe and quick, and change no score:

* nbgrader's steps that write to the gradebook take a file lock (SQLite takes one writer
  at a time, and two connections that both read and then write can deadlock);
* the gradebook's schema version, which nbgrader asks the ``alembic`` command for every
  time it opens the gradebook (a subprocess per notebook), is asked once;
* one SQLAlchemy engine per database URL, so that its cache of compiled statements
  survives nbgrader's opening the gradebook a dozen times per notebook;
* each JSON schema of nbgrader's cell metadata is checked once, not before every cell, and
  each cell's metadata once per content;
* the gradebook's tables and course are checked the first time a worker opens it, not at
  every opening (nbgrader opens it about ten times per notebook), and its connection is
  kept from one opening to the next;
* a notebook is checked against nbformat's schema once per content, and not after a step
  that only reads it: nbconvert checks it after every step of nbgrader's, most of which
  change nothing (and copies it once where it copied it twice);
* each notebook is autograded in one pass, not written and read back between nbgrader's
  two (its sanitizing and its autograding steps);
* a new submission's rows (its notebooks, grades and comments) are inserted a table at a
  time, not object by object;
* ``OverwriteCells`` reads the notebook's source and graded cells in a query per kind of
  cell, not two per cell; ``SaveAutoGrades`` reads its grades and comments likewise and
  writes them in one commit (gradebook writes batched), not one per cell.

nbgrader's version is capped in ``pyproject.toml``; :func:`check` runs before any patch
and fails loudly, naming what is missing, if a version moved what these patch.
"""

from __future__ import annotations

import importlib
import types

from .notebook_patches import (  # noqa: F401 - patches of their own module, made from here
    _json,
    autograde_in_one_pass,
    check_only_steps_that_change_the_notebook,
    validate_each_notebook_once,
)

#: (module, attribute path) of everything patched here.
PATCHED = (
    ("nbgrader.converters", "Autograde.init_assignment"),
    ("nbgrader.converters", "Autograde.convert_single_notebook"),
    ("nbgrader.preprocessors", "SaveAutoGrades.preprocess"),
    ("nbgrader.preprocessors", "AssignLatePenalties.preprocess"),
    ("nbgrader.api", "get_alembic_version"),
    ("nbgrader.api", "create_engine"),
    ("nbgrader.nbgraderformat.common", "jsonschema"),
    ("nbgrader.api", "Gradebook.__init__"),
    ("nbgrader.api", "Gradebook.close"),
    ("nbgrader.api", "Gradebook.add_submission"),
    ("nbgrader.preprocessors.overwritecells", "Gradebook"),
    ("nbgrader.preprocessors.saveautogrades", "Gradebook"),
    ("nbformat", "validate"),
    ("nbconvert.exporters.exporter", "Exporter._preprocess"),
)


class PatchError(RuntimeError):
    """nbgrader no longer has something the grader patches."""


def check() -> None:
    """Fail loudly if an attribute a patch replaces is gone."""
    missing = []
    for module, path in PATCHED:
        *parents, name = path.split(".")
        try:
            owner = importlib.import_module(module)
            for part in parents:
                owner = getattr(owner, part)
        except (ImportError, AttributeError):
            missing.append(f"{module}.{path}")
            continue
        if name not in vars(owner):  # its own, not one inherited from a class the patch does not mean
            missing.append(f"{module}.{path}")
    if missing:
        import nbgrader

        raise PatchError(f"nbgrader {nbgrader.__version__} has no {', '.join(missing)}, which the warm engine "
                         "patches: install the nbgrader version pinned in constraints.txt, or grade with "
                         "--engine nbgrader")


_LOCK = None  # an open file whose flock serialises the gradebook's writers


class _Locked:
    """Hold the gradebook lock while nbgrader writes."""

    def __enter__(self):
        if _LOCK is not None:
            import fcntl

            fcntl.flock(_LOCK, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        if _LOCK is not None:
            import fcntl

            fcntl.flock(_LOCK, fcntl.LOCK_UN)


def lock_gradebook_writes(lock_path: str) -> None:
    """nbgrader's autograde steps that write to the gradebook take the lock at ``lock_path``;
    the rest (reading, sanitising, running the notebook) runs in parallel."""
    global _LOCK
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    _LOCK = open(lock_path, "a+")

    def locked(method):
        def wrapper(*args, **kwargs):
            with _Locked():
                return method(*args, **kwargs)

        return wrapper

    Autograde.init_assignment = locked(Autograde.init_assignment)
    SaveAutoGrades.preprocess = locked(SaveAutoGrades.preprocess)
    AssignLatePenalties.preprocess = locked(AssignLatePenalties.preprocess)


def alembic_version() -> str:
    """The gradebook's schema version, read in this process from nbgrader's migration scripts:
    the first head, which is what nbgrader reads from the ``alembic heads`` command it runs
    (a new Python process, seconds, on every opening of the gradebook)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        return ScriptDirectory.from_config(Config(ini)).get_heads()[0]


def remember_alembic_version() -> None:
    """Read the gradebook's schema version once (:func:`alembic_version`); it does not change."""
    import nbgrader.api

    version = alembic_version()
    nbgrader.api.get_alembic_version = lambda: version


_ENGINES: dict = {}  # the engine of each database URL (and options), in this process


def one_database_engine_per_url() -> None:
    """One SQLAlchemy engine per database URL (its connections are kept from one opening of
    the gradebook to the next by :func:`keep_the_gradebooks_connection`)."""
    import nbgrader.api
    from sqlalchemy import create_engine

    def engine_for(url, *args, **kwargs):
        key = (str(url), repr(args), repr(sorted(kwargs.items())))
        if key not in _ENGINES:
            _ENGINES[key] = create_engine(url, *args, **kwargs)
        return _ENGINES[key]

    nbgrader.api.create_engine = engine_for


def check_schemas_once() -> None:
    """nbgrader validates the metadata of every nbgrader cell with ``jsonschema.validate``,
    which first checks the schema itself, every time (a third of its validation), and reads
    the schema anew for each notebook. Check each schema once (known by its content), and
    each cell's metadata once per content: metadata whose JSON is, key for key and value for
    value, metadata that passed passes again (a class's notebooks share their nbgrader cells);
    any other is validated as before, and raises the same error."""
    import jsonschema
    import nbgrader.nbgraderformat.common as common

    validators: dict = {}  # the schema's JSON: (its validator, the JSON of the metadata that passed)

    def validate(instance, schema, cls=None, *args, **kwargs):
        if cls is not None or args or kwargs:
            return jsonschema.validate(instance, schema, cls, *args, **kwargs)
        key, text = _json(schema), _json(instance)
        if key is None:
            return jsonschema.validate(instance, schema)
        if key not in validators:
            kind = jsonschema.validators.validator_for(schema)
            kind.check_schema(schema)
            validators[key] = (kind(schema), set())
        validator, passed = validators[key]
        if text is not None and text in passed:
            return
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error
        if text is not None and len(passed) < 100_000:
            passed.add(text)

    common.jsonschema = types.SimpleNamespace(**{**vars(jsonschema), "validate": validate})


def check_the_gradebook_once() -> None:
    """Open the gradebook without checking it again. Each time nbgrader opens it (about ten
    times per notebook) it lists the database's tables, creates those missing (a query per
    table) and looks up its course, adding it if missing (a query and a commit). None of that
    is ever undone while the engine grades: after a worker's first opening of a database with a
    course, the tables and the course are there, and an opening that skips those checks reads
    and writes what nbgrader's own would. A SQLite file is told apart from one that replaced
    it by its inode; an in-memory database is checked every time."""
    import nbgrader.api

    gradebook = nbgrader.api.Gradebook
    open_checked = gradebook.__init__
    checked: set = set()

    def __init__(self, db_url, course_id="default_course", authenticator=None):
        database = _database_identity(db_url)
        key = (db_url, course_id, database)
        if database is None or key not in checked:
            open_checked(self, db_url, course_id, authenticator)
            if database is not None:
                checked.add(key)
            return
        self.engine = nbgrader.api.create_engine(db_url, echo=False, future=True)
        self.db = nbgrader.api.scoped_session(nbgrader.api.sessionmaker(autoflush=True, bind=self.engine,
                                                                        future=True))
        self.course_id = course_id
        self.authenticator = authenticator

    gradebook.__init__ = __init__


def _database_identity(db_url) -> tuple | str | None:
    """What tells the database at ``db_url`` apart from another at the same URL: a SQLite
    file's device and inode, a server database's URL; None for one that may not persist
    (in memory, or a file that is not there yet)."""
    import os

    from sqlalchemy.engine import make_url

    try:
        url = make_url(db_url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: nbgrader's opening says why
        return None
    if url.get_backend_name() != "sqlite":
        return str(db_url)
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    try:
        stat = os.stat(database)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def keep_the_gradebooks_connection() -> None:
    """``Gradebook.close`` ends its session and disposes of its engine's pool, so that each
    opening (about ten per notebook) connects to the database anew (SQLite then reads its
    schema again). Close only the session: its connection goes back to the pool of the
    engine, which :func:`one_database_engine_per_url` keeps, for the next opening (an engine
    it does not keep is disposed of, as before). The session is ended as before (what it did
    not commit is rolled back), and an idle connection holds no lock: writers are serialised
    by the gradebook lock, as before."""
    import nbgrader.api

    def close(self):
        self.db.remove()
        if not any(self.engine is kept for kept in _ENGINES.values()):
            self.engine.dispose()

    nbgrader.api.Gradebook.close = close


def read_a_notebooks_cells_at_once() -> None:
    """``OverwriteCells`` asks the gradebook, for every nbgrader cell of a notebook, for its
    source cell, and for every grade cell for its graded cell: two queries a cell. The
    gradebook it opens reads each kind of the notebook's cells in one query the first time
    one is asked for, and answers from those: the same rows (nbgrader's precedence kept, a
    graded cell is a grade cell before a task cell); a cell that is not there is asked for with
    nbgrader's own query, which raises as before."""
    import nbgrader.preprocessors.overwritecells as overwritecells
    from nbgrader.api import Assignment, GradeCell, Notebook, SourceCell, TaskCell

    class CellsAtOnce(overwritecells.Gradebook):
        def _cells(self, kind, notebook, assignment) -> dict:
            cache = self.__dict__.setdefault("_cells_read", {})
            key = (kind, notebook, assignment)
            if key not in cache:
                rows = self.db.query(kind) \
                    .join(Notebook, Notebook.id == kind.notebook_id) \
                    .join(Assignment, Assignment.id == Notebook.assignment_id) \
                    .filter(Notebook.name == notebook, Assignment.name == assignment) \
                    .all()
                cache[key] = _by_unique_name((row.name, row) for row in rows)
            return cache[key]

        def find_source_cell(self, name, notebook, assignment):
            found = _first(name, lambda: self._cells(SourceCell, notebook, assignment))
            return found if found is not None else super().find_source_cell(name, notebook, assignment)

        def find_graded_cell(self, name, notebook, assignment):
            found = _first(name, lambda: self._cells(GradeCell, notebook, assignment),
                           lambda: self._cells(TaskCell, notebook, assignment))
            return found if found is not None else super().find_graded_cell(name, notebook, assignment)

    overwritecells.Gradebook = CellsAtOnce


def _by_unique_name(pairs) -> dict:
    """``{name: row}``, with None for a name that occurs more than once (its lookup takes
    nbgrader's own query, which says so)."""
    found: dict = {}
    for name, row in pairs:
        found[name] = None if name in found else row
    return found


def _first(name, *readers):
    """The row named ``name`` in the first of the tables ``readers`` read that has the name,
    as nbgrader's lookups try one kind of cell, then the next; None where nbgrader's own query
    must answer (no such row, or a name that occurs more than once)."""
    for read in readers:
        rows = read()
        if name in rows:
            return rows[name]
    return None


def write_a_notebooks_grades_at_once() -> None:
    """``SaveAutoGrades`` asks the gradebook for each grade and comment of a notebook (a
    query each, two where nbgrader tries a grade or solution cell before a task cell) and
    commits after each (a SQLite commit waits for the disk). The gradebook it opens reads the
    notebook's grades, then comments, of each kind in one query the first time one is asked
    for, and keeps its commits until it closes, at the end of ``SaveAutoGrades.preprocess`` (in
    the gradebook lock, before ``autograde`` returns): one transaction that writes the same
    values to the same rows. A cell that is not there is asked for with nbgrader's own query,
    which raises as before; when a cell raises, what the cells before it wrote is committed,
    as nbgrader's commit after each would have."""
    import nbgrader.preprocessors.saveautogrades as saveautogrades
    from nbgrader.api import (Assignment, Comment, Grade, GradeCell, Notebook, SolutionCell, Student,
                              SubmittedAssignment, SubmittedNotebook, TaskCell)

    class CommitWhenClosed:
        """The gradebook's session, whose ``commit`` waits for :meth:`commit_now`."""

        def __init__(self, session):
            self.session = session

        def commit(self):
            pass

        def commit_now(self):
            try:
                self.session.commit()
            except BaseException:
                self.session.rollback()
                raise

        def __getattr__(self, name):
            return getattr(self.session, name)

    class GradesAtOnce(saveautogrades.Gradebook):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.db = CommitWhenClosed(self.db)

        def close(self):
            try:
                self.db.commit_now()
            finally:
                super().close()

        def _rows(self, kind, cell, notebook, assignment, student) -> dict:
            cache = self.__dict__.setdefault("_rows_read", {})
            key = (kind, cell, notebook, assignment, student)
            if key not in cache:
                rows = self.db.query(cell.name, kind) \
                    .join(cell, cell.id == kind.cell_id) \
                    .join(SubmittedNotebook, SubmittedNotebook.id == kind.notebook_id) \
                    .join(Notebook, Notebook.id == SubmittedNotebook.notebook_id) \
                    .join(SubmittedAssignment, SubmittedAssignment.id == SubmittedNotebook.assignment_id) \
                    .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id) \
                    .join(Student, Student.id == SubmittedAssignment.student_id) \
                    .filter(Notebook.name == notebook, Assignment.name == assignment, Student.id == student) \
                    .all()
                cache[key] = _by_unique_name((name, row) for name, row in rows)
            return cache[key]

        def find_grade(self, grade_cell, notebook, assignment, student):
            where = (notebook, assignment, student)
            found = _first(grade_cell, lambda: self._rows(Grade, GradeCell, *where),
                           lambda: self._rows(Grade, TaskCell, *where))
            return found if found is not None else super().find_grade(grade_cell, *where)

        def find_comment(self, solution_cell, notebook, assignment, student):
            where = (notebook, assignment, student)
            found = _first(solution_cell, lambda: self._rows(Comment, SolutionCell, *where),
                           lambda: self._rows(Comment, TaskCell, *where))
            return found if found is not None else super().find_comment(solution_cell, *where)

    saveautogrades.Gradebook = GradesAtOnce


def create_each_submission_at_once() -> None:
    """``Gradebook.add_submission`` makes a new submission's rows as objects that SQLAlchemy's
    unit of work then inserts: the submission, a submitted notebook for each notebook of the
    assignment, a grade for each grade or task cell and a comment for each solution or task
    cell. Insert the same rows, with the same columns (each id a new uuid, as nbgrader's
    defaults give it), one statement per table, in the same transaction and commit, and return
    the submission as a query finds it. What nbgrader refuses raises as before: no such
    assignment or student (``MissingEntry``), a row the database rejects (rolled back,
    ``InvalidEntry``); arguments that are not the submission's own columns go to nbgrader's."""
    import nbgrader.api as api
    from nbgrader import utils
    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError, StatementError
    from sqlalchemy.orm.exc import FlushError

    one_by_one = api.Gradebook.add_submission
    columns = set(api.SubmittedAssignment.__table__.columns.keys()) - {"id", "assignment_id", "student_id"}

    def add_submission(self, assignment, student, **kwargs):
        if not set(kwargs) <= columns:
            return one_by_one(self, assignment, student, **kwargs)
        if "timestamp" in kwargs:
            kwargs["timestamp"] = utils.parse_utc(kwargs["timestamp"])
        try:
            found, who = self.find_assignment(assignment), self.find_student(student)
            db, submission = self.db, api.new_uuid()
            db.execute(insert(api.SubmittedAssignment.__table__),
                       [{**kwargs, "id": submission, "assignment_id": found.id, "student_id": who.id}])
            notebooks = {n: api.new_uuid() for n in db.execute(
                select(api.Notebook.id).where(api.Notebook.assignment_id == found.id)).scalars()}
            if notebooks:
                db.execute(insert(api.SubmittedNotebook.__table__),
                           [{"id": ours, "assignment_id": submission, "notebook_id": n} for n, ours in notebooks.items()])
            grades, comments = [], []
            for kind, rows in ((api.GradeCell, (grades,)), (api.SolutionCell, (comments,)),
                               (api.TaskCell, (comments, grades))):
                for cell, notebook in db.execute(select(kind.id, kind.notebook_id)
                                                 .where(kind.notebook_id.in_(list(notebooks)))):
                    for table in rows:
                        table.append({"id": api.new_uuid(), "cell_id": cell, "notebook_id": notebooks[notebook]})
            for table, rows in ((api.Grade.__table__, grades), (api.Comment.__table__, comments)):
                if rows:
                    db.execute(insert(table), rows)
            db.commit()
        except (IntegrityError, FlushError, StatementError) as e:
            api.app_log.exception("Rolling back session due to database error %s" % e)
            self.db.rollback()
            raise api.InvalidEntry(*e.args)
        return self.db.get(api.SubmittedAssignment, submission)

    api.Gradebook.add_submission = add_submission


def in_the_zygote() -> None:
    """The patches the engine's first process makes, before its workers fork."""
    check()
    remember_alembic_version()


def in_a_worker(lock_path: str) -> None:
    """The patches each worker makes when it starts."""
    lock_gradebook_writes(lock_path)
    one_database_engine_per_url()
    check_schemas_once()
    check_the_gradebook_once()
    keep_the_gradebooks_connection()
    validate_each_notebook_once()
    check_only_steps_that_change_the_notebook()
    read_a_notebooks_cells_at_once()
    write_a_notebooks_grades_at_once()
    create_each_submission_at_once()
    autograde_in_one_pass()
