"""Every change the grader makes to nbgrader's internals, in one place.

The warm engine grades in parallel workers, each running nbgrader's own ``autograde``;
these patches make that safe and quick, and change no score:

* nbgrader's steps that write to the gradebook take a file lock (SQLite takes one writer
  at a time, and two connections that both read and then write can deadlock);
* the gradebook's schema version, which nbgrader asks the ``alembic`` command for every
  time it opens the gradebook (a subprocess per notebook), is asked once;
* one SQLAlchemy engine per database URL, so that its cache of compiled statements
  survives nbgrader's opening the gradebook a dozen times per notebook;
* each JSON schema of nbgrader's cell metadata is checked once, not before every cell.

nbgrader's version is capped in ``pyproject.toml``; :func:`check` runs before any patch
and fails loudly, naming what is missing, if a version moved what these patch.
"""

from __future__ import annotations

import importlib
import types

#: (module, attribute path) of everything patched here.
PATCHED = (
    ("nbgrader.converters", "Autograde.init_assignment"),
    ("nbgrader.preprocessors", "SaveAutoGrades.preprocess"),
    ("nbgrader.preprocessors", "AssignLatePenalties.preprocess"),
    ("nbgrader.api", "get_alembic_version"),
    ("nbgrader.api", "create_engine"),
    ("nbgrader.nbgraderformat.common", "jsonschema"),
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


def remember_alembic_version() -> None:
    """Ask ``alembic`` for the gradebook's schema version once; the answer does not change."""
    import nbgrader.api

    from .release import environment_bin_on_path

    with environment_bin_on_path():
        version = nbgrader.api.get_alembic_version()
    nbgrader.api.get_alembic_version = lambda: version


def one_database_engine_per_url() -> None:
    """One SQLAlchemy engine per database URL (nbgrader still closes its connections after
    each use: ``Gradebook.close`` disposes of the engine's pool)."""
    import nbgrader.api
    from sqlalchemy import create_engine

    engines: dict = {}

    def engine_for(url, *args, **kwargs):
        key = (str(url), repr(args), repr(sorted(kwargs.items())))
        if key not in engines:
            engines[key] = create_engine(url, *args, **kwargs)
        return engines[key]

    nbgrader.api.create_engine = engine_for


def check_schemas_once() -> None:
    """nbgrader validates the metadata of every nbgrader cell with ``jsonschema.validate``,
    which first checks the schema itself, every time (a third of its validation). Check each
    schema once; validate each cell as before."""
    import jsonschema
    import nbgrader.nbgraderformat.common as common

    validators: dict = {}

    def validate(instance, schema, cls=None, *args, **kwargs):
        if cls is not None or args or kwargs:
            return jsonschema.validate(instance, schema, cls, *args, **kwargs)
        key = id(schema)
        if key not in validators or validators[key][0] is not schema:
            kind = jsonschema.validators.validator_for(schema)
            kind.check_schema(schema)
            validators[key] = (schema, kind(schema))
        error = jsonschema.exceptions.best_match(validators[key][1].iter_errors(instance))
        if error is not None:
            raise error

    common.jsonschema = types.SimpleNamespace(**{**vars(jsonschema), "validate": validate})


def in_the_zygote() -> None:
    """The patches the engine's first process makes, before its workers fork."""
    check()
    remember_alembic_version()


def in_a_worker(lock_path: str) -> None:
    """The patches each worker makes when it starts."""
    lock_gradebook_writes(lock_path)
    one_database_engine_per_url()
    check_schemas_once()
