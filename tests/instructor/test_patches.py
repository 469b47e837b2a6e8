"""The grader's patches of nbgrader: all listed in one place, refused loudly when nbgrader
no longer has what they replace, and each writing what nbgrader itself writes."""

import copy
import importlib
import json
import logging
import os
import shutil
import sqlite3

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader.instructor import patches

# nbgrader's add_submission makes SQLAlchemy warn about its sessions: noise, here as in the engine
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")


def test_every_patched_attribute_exists_in_the_pinned_nbgrader():
    patches.check()


@pytest.mark.parametrize("module, path", patches.PATCHED, ids=lambda v: str(v))
def test_a_missing_attribute_is_named(monkeypatch, module, path):
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    monkeypatch.delattr(owner, name)
    with pytest.raises(patches.PatchError, match=name):
        patches.check()


def test_nbgraders_version_is_capped_where_the_patches_were_checked(root):
    text = (root / "pyproject.toml").read_text()
    assert '"nbgrader>=0.9,<0.10"' in text


# --- a small course: what the patches read and write --------------------------------------

@pytest.fixture
def undo(monkeypatch):
    """Every attribute the patches replace, put back after the test; no alembic command."""
    import nbgrader.api

    for module, path in patches.PATCHED:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        monkeypatch.setattr(owner, name, getattr(owner, name))
    monkeypatch.setattr(patches, "_ENGINES", {})
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", lambda: "0")
    return monkeypatch


def _meta(grade_id, grade=False, solution=False, locked=False, points=None, task=False):
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    if task:
        meta["task"] = True
    return {"nbgrader": meta}


def _master():
    return new_notebook(cells=[
        new_markdown_cell("# A notebook"),
        new_code_cell("def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()",
                      metadata=_meta("answer", grade=True, solution=True, points=2)),
        new_code_cell("assert f() == 1", metadata=_meta("test_answer", grade=True, locked=True, points=1)),
        new_code_cell("import math", metadata=_meta("setup", locked=True)),
        new_markdown_cell("Plot it.", metadata=_meta("task", locked=True, points=3, task=True)),
        new_markdown_cell("YOUR ANSWER HERE", metadata=_meta("essay", grade=True, solution=True, points=1)),
        new_code_cell("assert f() > 0", metadata=_meta("test_more", grade=True, locked=True, points=2)),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _course(tmp_path, master=None):
    """A gradebook with one assignment of one notebook (``master``, default :func:`_master`),
    written by nbgrader's own steps; a student who submitted it, with a manual score on one
    cell; and the notebook."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import ComputeChecksums, SaveCells

    path = tmp_path / "gradebook.db"
    url = f"sqlite:///{path}"
    with Gradebook(url, "course") as gb:
        gb.add_assignment("a")
        gb.add_student("s")
    resources = {"nbgrader": {"notebook": "nb", "assignment": "a", "db_url": url}}
    master, _ = ComputeChecksums().preprocess(master or _master(), resources)
    SaveCells().preprocess(copy.deepcopy(master), resources)
    with Gradebook(url, "course") as gb:
        gb.add_submission("a", "s")
        gb.find_grade("test_more", "nb", "a", "s").manual_score = 1.5
        gb.db.commit()
    return path, url, master


def _graded(master):
    """A submission after its run: an answer, a test that failed, one that gave partial credit,
    the essay and the task untouched."""
    nb = copy.deepcopy(master)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    cells["answer"].source = "def f():\n    return 2"
    cells["test_answer"].outputs = [new_output("error", ename="AssertionError", evalue="", traceback=[])]
    cells["test_more"].outputs = [new_output("execute_result", data={"text/plain": "1.5"}, execution_count=4)]
    return nb


def _rows(path):
    """The gradebook's grades, comments and late penalties, by cell name (read by a connection
    of its own: only what was committed)."""
    con = sqlite3.connect(path)
    try:
        return {
            "grades": con.execute(
                "select bc.name, bc.type, g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade "
                "from grade g join base_cell bc on bc.id = g.cell_id order by bc.name, bc.type").fetchall(),
            "comments": con.execute(
                "select bc.name, bc.type, c.auto_comment, c.manual_comment from comment c "
                "join base_cell bc on bc.id = c.cell_id order by bc.name, bc.type").fetchall(),
            "notebooks": con.execute("select late_submission_penalty, flagged from submitted_notebook").fetchall(),
        }
    finally:
        con.close()


def _copies(path, n):
    """``n`` copies of the gradebook at ``path``: (path, url) each."""
    out = []
    for i in range(n):
        target = path.with_name(f"copy{i}.db")
        shutil.copyfile(path, target)
        out.append((target, f"sqlite:///{target}"))
    return out


@pytest.fixture
def statements():
    """The SQL statements run during the test (a list that grows)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    yield seen
    event.remove(Engine, "before_cursor_execute", count)


# --- the gradebook ------------------------------------------------------------------------

def test_the_gradebook_is_checked_at_its_first_opening_only(undo, tmp_path):
    from nbgrader.api import Gradebook

    path, url, _ = _course(tmp_path)
    patches.check_the_gradebook_once()
    checked = []
    check_course = Gradebook.check_course
    undo.setattr(Gradebook, "check_course",
                 lambda self, course_id="default_course", **kw: checked.append(course_id)
                 or check_course(self, course_id=course_id, **kw))
    for _ in range(3):
        with Gradebook(url, "course") as gb:
            assert [a.name for a in gb.assignments] == ["a"]
            assert gb.course_id == "course"
    assert checked == ["course"]
    with Gradebook(url, "another") as gb:  # another course is looked up, and added, as nbgrader does
        pass
    con = sqlite3.connect(path)
    assert {r[0] for r in con.execute("select id from course")} >= {"course", "another"}
    con.close()
    path.rename(tmp_path / "aside.db")  # no gradebook at that place: checked (its tables created) again
    with Gradebook(url, "course") as gb:
        assert gb.assignments == []
    assert checked == ["course", "another", "course"]
    other = tmp_path / "other.db"  # another gradebook moved there: checked (its course added) again
    with Gradebook(f"sqlite:///{other}", "other"):
        pass
    other.replace(path)
    with Gradebook(url, "course") as gb:
        assert gb.assignments == []
    con = sqlite3.connect(path)
    assert {r[0] for r in con.execute("select id from course")} == {"other", "course"}
    con.close()
    assert checked == ["course", "another", "course", "other", "course"]
    for _ in range(2):  # in memory: a new database each time, checked each time
        with Gradebook("sqlite://", "course") as gb:
            assert gb.assignments == []
    assert checked == ["course", "another", "course", "other", "course", "course", "course"]


def test_the_connection_is_kept_and_the_session_ended_as_before(undo, tmp_path):
    import nbgrader.api
    import sqlalchemy
    from nbgrader.api import Gradebook, Student

    path, url, _ = _course(tmp_path)
    patches.one_database_engine_per_url()
    patches.keep_the_gradebooks_connection()
    gb = Gradebook(url, "course")
    gb.find_student("s").first_name = "Ann"  # written (the next query flushes it), never committed
    assert [c.name for c in gb.find_notebook("nb", "a").source_cells] and gb.db.query(Student).first()
    engine = gb.engine
    gb.close()
    assert engine.pool.checkedin() == 1  # the connection kept for the next opening
    con = sqlite3.connect(path, timeout=0)  # and it holds no lock: another process may write at once
    con.execute("BEGIN EXCLUSIVE")
    con.rollback()
    con.close()
    con = sqlite3.connect(path)  # another writer, meanwhile
    con.execute("update student set last_name = 'Lee' where id = 's'")
    con.commit()
    con.close()
    with Gradebook(url, "course") as gb:
        assert gb.engine is engine
        student = gb.find_student("s")
        assert (student.first_name, student.last_name) == (None, "Lee")
    undo.setattr(nbgrader.api, "create_engine", sqlalchemy.create_engine)
    gb = Gradebook(url, "course")  # an engine the patches do not keep is disposed of, as nbgrader does
    gb.find_student("s")
    gb.close()
    assert gb.engine.pool.checkedin() == 0


# --- nbformat's checks ----------------------------------------------------------------------

def test_a_notebook_is_validated_once_per_content(undo):
    import warnings

    real = []  # the checks of whole notebooks nbformat made: strict (False) or not (True)
    validate = nbformat.validate

    def counting(nbdict=None, ref=None, version=None, version_minor=None, relax_add_props=False, nbjson=None):
        if ref is None:
            real.append(relax_add_props)
        return validate(nbdict, ref, version, version_minor, relax_add_props, nbjson)

    undo.setattr(nbformat, "validate", counting)
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    bad = new_notebook(cells=[new_code_cell("x = 1")])
    bad.cells[0].metadata["tags"] = "not a list"
    with pytest.raises(nbformat.ValidationError) as plain:
        validate(copy.deepcopy(bad), relax_add_props=True)
    patches.validate_each_notebook_once()
    real.clear()

    nbformat.validate(nb)
    nbformat.validate(copy.deepcopy(nb))
    nbformat.validate(nb, relax_add_props=True)  # a notebook that passed the strict check passes this one
    assert real == [False]
    nb.cells.append(new_markdown_cell("changed"))
    nbformat.validate(nb, relax_add_props=True)  # checked, strictly first
    nbformat.validate(nb)
    assert real == [False, False]
    for _ in range(2):  # never remembered: raised by nbformat each time, with its own message
        with pytest.raises(nbformat.ValidationError) as raised:
            nbformat.validate(copy.deepcopy(bad), relax_add_props=True)
        assert str(raised.value) == str(plain.value)
    assert real == [False, False] + [False, True] * 2  # strictly first, then as asked

    extra = copy.deepcopy(nb)
    extra.cells[0]["unknown"] = 1  # passes only the check that allows additional properties
    for _ in range(2):
        nbformat.validate(extra, relax_add_props=True)
        with pytest.raises(nbformat.ValidationError):
            nbformat.validate(extra)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        without_ids = copy.deepcopy(nb)
        for cell in without_ids.cells:
            del cell["id"]
        twin = copy.deepcopy(without_ids)
        nbformat.validate(without_ids)
        nbformat.validate(twin)  # the same content as the first had: given ids as nbformat gives them
    assert all("id" in cell for cell in without_ids.cells + twin.cells)


def test_a_new_notebook_is_checked_by_the_cells_not_seen_before(undo):
    """Another student's notebook: nbformat checks its own fields and only the cells that have
    not passed before; a cell that fails is reported as the check of the whole notebook
    reports it; cells whose ids nbformat would change get the whole check, and its new ids."""
    import warnings

    checked = []  # the cells of each check of a whole notebook that nbformat made
    validate = nbformat.validate

    def counting(nbdict=None, ref=None, version=None, version_minor=None, relax_add_props=False, nbjson=None):
        if ref is None:
            checked.append([cell.source for cell in nbdict["cells"]])
        return validate(nbdict, ref, version, version_minor, relax_add_props, nbjson)

    released = [new_code_cell("import torch"), new_markdown_cell("Explained."), new_code_cell("def f(): ...")]
    first = new_notebook(cells=copy.deepcopy(released))
    second = new_notebook(cells=copy.deepcopy(released) + [new_code_cell("f()")])
    second.cells[1].id = "other-id"  # an id is part of the cell: this one is new too
    bad = new_notebook(cells=copy.deepcopy(released) + [new_code_cell("g()")])
    bad.cells[-1].metadata["tags"] = "not a list"
    twins = new_notebook(cells=copy.deepcopy(released) + [new_code_cell("h()")])
    twins.cells[-1].id = twins.cells[0].id
    undo.setattr(nbformat, "validate", counting)
    patches.validate_each_notebook_once()
    nbformat.validate(first)
    assert checked == [["import torch", "Explained.", "def f(): ..."]]

    nbformat.validate(second, relax_add_props=True)
    assert checked[1:] == [["Explained.", "f()"]]
    nbformat.validate(copy.deepcopy(second))  # the same content again: no check at all
    assert len(checked) == 2

    with pytest.raises(nbformat.ValidationError) as whole:
        validate(copy.deepcopy(bad))
    checked.clear()
    with pytest.raises(nbformat.ValidationError) as raised:
        nbformat.validate(bad)
    assert str(raised.value) == str(whole.value)
    assert checked == [["g()"], [cell.source for cell in bad.cells]]  # its new cell, then the whole

    checked.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nbformat.validate(twins)
    assert checked == [[cell.source for cell in twins.cells]]
    assert twins.cells[-1].id != twins.cells[0].id  # repaired, as nbformat repairs


def _edit(new=False, breaks=False):
    """A step that changes a cell (``new``: in a new notebook), or breaks the notebook."""
    from nbconvert.preprocessors import Preprocessor

    class Edit(Preprocessor):
        def preprocess(self, nb, resources):
            if new:
                nb = copy.deepcopy(nb)
            nb.cells[0].source += "\n# edited"
            if breaks:
                nb.cells[0].metadata["tags"] = "not a list"
            return nb, resources

    return Edit(enabled=True)


def _export(steps, nb, log):
    """nbconvert's export of ``nb`` through ``steps``: the notebook and the steps after which
    it was checked, or the error and what nbconvert logged."""
    from nbconvert.exporters import NotebookExporter
    from nbconvert.exporters.exporter import Exporter
    from traitlets.config import Config

    exporter = NotebookExporter(log=log, config=Config({"Exporter": {"default_preprocessors": []}}))
    for step in steps:
        exporter.register_preprocessor(step)
    checked = []
    validate = Exporter._validate_preprocessor

    def counting(self, nbc, preprocessor):
        checked.append(type(preprocessor).__name__)
        return validate(self, nbc, preprocessor)

    Exporter._validate_preprocessor = counting
    try:
        output, _ = exporter.from_notebook_node(nb)
        return json.loads(output), checked
    except nbformat.ValidationError as error:
        return str(error), checked
    finally:
        Exporter._validate_preprocessor = validate


def test_only_steps_that_change_the_notebook_are_checked(undo, caplog):
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import CheckCellMetadata

    log = logging.getLogger("test-patches")
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_markdown_cell("text")])
    original = copy.deepcopy(nb)
    invalid = copy.deepcopy(nb)
    invalid.cells[1].metadata["tags"] = "not a list"

    def runs():
        def steps(*kinds):
            return [kind() for kind in kinds]

        reader, disabled = CheckCellMetadata, ClearMetadataPreprocessor  # disabled unless enabled
        out = []
        for notebook, chain in (
                (nb, steps(reader, _edit, reader, disabled, lambda: _edit(new=True), reader)),
                (nb, steps(_edit, reader, lambda: _edit(breaks=True), reader)),
                (invalid, steps(reader, reader))):
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="test-patches"):
                result, checked = _export(chain, copy.deepcopy(notebook), log)
            out.append((result, checked, [r.getMessage().split(" object at ")[0] for r in caplog.records]))
        return out

    expected = runs()
    patches.check_only_steps_that_change_the_notebook()
    got = runs()
    assert nb == original
    for (result, _, logged), (want, _, want_logged) in zip(got, expected):
        assert result == want and logged == want_logged
    (_, checked, _), (_, broken, logged), (_, first, _) = got
    assert checked == ["CheckCellMetadata", "Edit", "Edit"]  # the first step, and those that changed it
    assert expected[0][1] == ["CheckCellMetadata", "Edit", "CheckCellMetadata", "ClearMetadataPreprocessor",
                              "Edit", "CheckCellMetadata"]
    assert broken == ["Edit", "Edit"] and "Edit" in logged[0]  # fails after the step that broke it
    assert first == ["CheckCellMetadata"]  # a notebook that came in invalid fails after the first step


def test_cell_metadata_is_validated_once_per_content(undo):
    import jsonschema
    from nbgrader.nbgraderformat import ValidationError
    from nbgrader.nbgraderformat.v3 import MetadataValidatorV3

    good = new_code_cell("x = 1", metadata=_meta("a", grade=True, locked=True, points=2))
    bad = new_code_cell("x = 1", metadata=_meta("a", grade=True, locked=True, points="two"))
    with pytest.raises(ValidationError) as plain:
        MetadataValidatorV3().validate_cell(bad)
    validations = []
    best_match = jsonschema.exceptions.best_match
    undo.setattr(jsonschema.exceptions, "best_match", lambda errors, *a, **k: validations.append(1)
                 or best_match(errors, *a, **k))
    patches.check_schemas_once()
    for _ in range(3):  # each with the schema read anew, as nbgrader does for each notebook
        MetadataValidatorV3().validate_cell(copy.deepcopy(good))
    assert len(validations) == 1
    for _ in range(2):
        with pytest.raises(ValidationError) as raised:
            MetadataValidatorV3().validate_cell(bad)
        assert str(raised.value) == str(plain.value)
    assert len(validations) == 3


# --- the gradebook's cells, grades and comments ----------------------------------------------

def test_overwrite_cells_gives_nbgraders_notebook_from_cells_read_at_once(undo, tmp_path, caplog, statements):
    from nbgrader.preprocessors import OverwriteCells

    _, url, master = _course(tmp_path)
    submitted = copy.deepcopy(master)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in submitted.cells}
    cells["test_answer"].source = "pass  # edited a locked cell"
    cells["answer"].metadata.nbgrader["points"] = 20
    cells["setup"].metadata.nbgrader["locked"] = False
    cells["essay"].cell_type = "code"  # its type changed
    cells["essay"].outputs, cells["essay"].execution_count = [], None
    submitted.cells.remove(cells["test_more"])  # deleted: put back where add_missing_cells is on
    submitted.cells.remove(cells["task"])
    # a cell the gradebook does not know (with add_missing_cells on, nbgrader would then fail on it)
    stray = copy.deepcopy(submitted)
    stray.cells.append(new_code_cell("y = 2", metadata=_meta("stray", locked=True)))
    log = logging.getLogger("test-patches")

    def run():
        out = []
        for notebook, add_missing in ((submitted, True), (stray, False)):
            resources = {"nbgrader": {"notebook": "nb", "assignment": "a", "db_url": url, "student": "s"}}
            caplog.clear()
            statements.clear()
            with caplog.at_level(logging.DEBUG, logger="test-patches"):
                step = OverwriteCells(add_missing_cells=add_missing, log=log)
                nb, _ = step.preprocess(copy.deepcopy(notebook), resources)
            out.append((nb, [r.getMessage() for r in caplog.records], len(statements)))
        return out

    expected = run()
    patches.read_a_notebooks_cells_at_once()
    got = run()
    for (nb, logged, queries), (want, want_logged, plain_queries) in zip(got, expected):
        assert nb == want and logged == want_logged
        assert queries < plain_queries
    assert len(got[0][0].cells) == len(master.cells)
    assert any("does not exist in the database" in m for m in got[1][1])


def test_save_auto_grades_writes_nbgraders_rows_in_one_commit(undo, tmp_path):
    from nbgrader.api import MissingEntry
    from nbgrader.preprocessors import SaveAutoGrades
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    path, _, master = _course(tmp_path)
    graded = _graded(master)
    ghost = copy.deepcopy(graded)  # a grade cell the gradebook does not know, after a test
    ghost.cells.insert(3, new_code_cell("z = 3", metadata=_meta("ghost", grade=True, locked=True, points=1)))
    (plain, plain_url), (plain_ghost, plain_ghost_url), (ours, url), (ours_ghost, ghost_url) = _copies(path, 4)

    def save(nb, db_url):
        resources = {"nbgrader": {"notebook": "nb", "assignment": "a", "db_url": db_url, "student": "s"}}
        SaveAutoGrades().preprocess(copy.deepcopy(nb), resources)

    save(graded, plain_url)
    with pytest.raises(MissingEntry):
        save(ghost, plain_ghost_url)
    patches.write_a_notebooks_grades_at_once()
    transactions, writes = [], []  # the statements that wrote, of each commit that followed some

    def statement(conn, cursor, statement, parameters, context, executemany):
        if statement.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    def commit(conn):
        if writes:
            transactions.append(list(writes))
            writes.clear()

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        save(graded, url)
        assert len(transactions) == 1 and len(transactions[0]) > 1
        assert _rows(ours) == _rows(plain)  # the same rows, committed when the step returns
        with pytest.raises(MissingEntry):
            save(ghost, ghost_url)
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)
    assert _rows(ours_ghost) == _rows(plain_ghost)  # what the cells before it wrote is kept
    assert _rows(plain_ghost) != _rows(path)
    grades = {name: (auto, manual, needs) for name, kind, auto, manual, _, needs in _rows(ours)["grades"]}
    assert grades["test_answer"][0] == 0 and grades["test_more"] == (1.5, 1.5, 1)
    assert ("essay", "SolutionCell", "No response.", None) in _rows(ours)["comments"]


def test_the_schema_version_read_in_process_is_the_one_nbgraders_alembic_command_gives():
    import subprocess

    from nbgrader.dbutil import _temp_alembic_ini

    from grader.instructor.release import environment_bin_on_path

    # what nbgrader's get_alembic_version does (another test may have patched it in this process)
    with environment_bin_on_path(), _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        expected = subprocess.check_output(["alembic", "-c", ini, "heads"]).decode().split("\n")[0].split(" ")[0]
    assert expected and patches.alembic_version() == expected


# --- one pass -------------------------------------------------------------------------------

def _written_and_read_cases():
    """Notebooks that exercise what writing splits and reading joins, drops or repairs."""
    plain = new_notebook(cells=[new_markdown_cell("# Title\n\nText é ✓"), new_code_cell("x = 1\ny = 2\n")])
    outputs = copy.deepcopy(plain)
    outputs.cells[1].outputs = [
        new_output("stream", name="stdout", text="one\ntwo\r\nthree"),
        new_output("display_data", data={"text/plain": "a\nb", "image/png": "iVBORw0KGgo=\n",
                                         "image/svg+xml": "<svg>\n</svg>", "application/json": {"k": [1, 2]},
                                         "text/html": ["<b>\n", "bold</b>"]}),
        new_output("execute_result", data={"text/plain": "3"}, execution_count=1),
        new_output("error", ename="ValueError", evalue="bad", traceback=["line 1", "line 2"]),
    ]
    outputs.cells[1].execution_count = 1
    transient = copy.deepcopy(plain)
    transient.metadata.update(signature="sha256:00", orig_nbformat=3, number=float("nan"), raw=b"ascii")
    transient.cells[0].metadata["trusted"] = True
    transient.cells[0].attachments = {"a.png": {"image/png": "iVBORw0KGgo=", "text/plain": ["x\n", "y"]}}
    listed = copy.deepcopy(plain)
    listed.cells[1].source = ["x = 1\n", "y = 2\n"]
    twins = copy.deepcopy(plain)
    twins.cells[1].id = twins.cells[0].id
    return {"plain": plain, "outputs": outputs, "transient": transient, "listed": listed, "twins": twins}


@pytest.mark.parametrize("case", sorted(_written_and_read_cases()))
def test_a_notebook_as_written_and_read_is_what_nbformat_gives(undo, case, caplog):
    import warnings

    from grader.instructor.notebook_patches import as_written_and_read

    nb = _written_and_read_cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = nbformat.reads(nbformat.writes(copy.deepcopy(nb)), as_version=4)
        got = as_written_and_read(copy.deepcopy(nb))
    if case == "twins":  # nbformat gives a repeated id a new one at random: each has its own
        assert got.cells[0].id != got.cells[1].id and want.cells[0].id != want.cells[1].id
        got.cells[1].id = want.cells[1].id
    # the same keys in the same order, the same values, nodes where nbformat makes nodes
    assert json.dumps(got) == json.dumps(want)
    assert _kinds(got) == _kinds(want)


def _kinds(value):
    if isinstance(value, dict):
        return type(value).__name__, {k: _kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_kinds(v) for v in value]
    return type(value).__name__


def test_what_a_file_cannot_hold_is_refused_as_writing_refuses_it(undo):
    from grader.instructor.notebook_patches import as_written_and_read

    nb = new_notebook(cells=[new_code_cell("s = '\ud800'")])  # a lone surrogate: not UTF-8
    with pytest.raises(UnicodeEncodeError):
        nbformat.writes(nb).encode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        as_written_and_read(nb)


def _autograde(root, one_pass, master):
    """nbgrader's own autograde of a submission of :func:`_master` (a step that stands for
    Execute writes the outputs of a run): the autograded notebook, the gradebook's rows and
    what the step saw."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, Preprocessor
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    from traitlets import Bool
    from traitlets.config import Config

    root.mkdir()
    path, url, master = _course(root, copy.deepcopy(master))
    seen = []

    class Ran(Preprocessor):
        enabled = Bool(True)

        def preprocess(self, nb, resources):
            folder = resources["metadata"]["path"]
            seen.append((folder, sorted(os.listdir(folder)), resources["nbgrader"], os.environ["NBGRADER_EXECUTION"]))
            return _graded(nb), resources

    submitted = root / "submitted" / "s" / "a"
    submitted.mkdir(parents=True)
    nbformat.write(master, submitted / "nb.ipynb")
    (submitted / "timestamp.txt").write_text("2026-01-02 03:04:05 UTC")
    (submitted / "data.csv").write_text("1,2\n")
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = url
    config.CourseDirectory.course_id = "course"
    config.Autograde.autograde_preprocessors = [Ran, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                                SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    if one_pass:
        patches.autograde_in_one_pass()
    result = NbGraderAPI(CourseDirectory(config=config), config=config).autograde("a", "s", force=True)
    assert result["success"], result.get("error")
    autograded = root / "autograded" / "s" / "a"
    files = {p.name: p.read_bytes() for p in autograded.iterdir()}
    return files, _rows(path), [(os.path.relpath(f, root), listed, info["student"], mode)
                                 for f, listed, info, mode in seen]


def test_autograding_in_one_pass_writes_what_two_passes_write(undo, tmp_path):
    master = _master()
    two_files, two_rows, two_seen = _autograde(tmp_path / "two", False, master)
    one_files, one_rows, one_seen = _autograde(tmp_path / "one", True, master)
    assert one_files == two_files and sorted(one_files) == ["data.csv", "nb.ipynb", "timestamp.txt"]
    assert one_rows == two_rows
    scores = {name: auto for name, _, auto, *_ in one_rows["grades"]}
    assert scores["test_answer"] == 0 and scores["test_more"] == 1.5  # what the run's outputs earned
    # the same folder and step; only the sanitized notebook written between the passes is not there
    assert two_seen == [("autograded/s/a", ["data.csv", "nb.ipynb", "timestamp.txt"], "s", "autograde")]
    assert one_seen == [("autograded/s/a", ["data.csv", "timestamp.txt"], "s", "autograde")]


def _submission_rows(path, student):
    """Every row of ``student``'s submissions, each id replaced by what it stands for."""
    con = sqlite3.connect(path)
    try:
        where = "from submitted_assignment sa join assignment a on a.id = sa.assignment_id where sa.student_id = ?"
        joins = ("join submitted_notebook sn on sn.id = x.notebook_id join notebook n on n.id = sn.notebook_id "
                 "join submitted_assignment sa on sa.id = sn.assignment_id join base_cell bc on bc.id = x.cell_id "
                 "where sa.student_id = ?")
        rows = {
            "submissions": con.execute(f"select a.name, sa.timestamp, sa.extension {where}", (student,)).fetchall(),
            "notebooks": sorted(con.execute(
                "select n.name, sn.flagged, sn.late_submission_penalty from submitted_notebook sn "
                "join notebook n on n.id = sn.notebook_id join submitted_assignment sa on sa.id = sn.assignment_id "
                "where sa.student_id = ?", (student,)).fetchall()),
            "grades": sorted(con.execute(
                "select n.name, bc.name, bc.type, x.auto_score, x.manual_score, x.extra_credit, x.needs_manual_grade "
                f"from grade x {joins}", (student,)).fetchall()),
            "comments": sorted(con.execute(
                f"select n.name, bc.name, bc.type, x.auto_comment, x.manual_comment from comment x {joins}",
                (student,)).fetchall()),
        }
        ids = [i for table in ("submitted_assignment", "submitted_notebook", "grade", "comment")
               for (i,) in con.execute(f"select id from {table}")]
        return rows, ids
    finally:
        con.close()


def test_a_new_submission_gets_nbgraders_rows_a_table_at_a_time(undo, tmp_path):
    from nbgrader.api import Gradebook, InvalidEntry, MissingEntry
    from nbgrader.preprocessors import ComputeChecksums, SaveCells

    path, url, master = _course(tmp_path)
    second = new_notebook(cells=[new_code_cell("y = 1", metadata=_meta("other_answer", grade=True, solution=True,
                                                                        points=4))])
    resources = {"nbgrader": {"notebook": "nb2", "assignment": "a", "db_url": url}}
    SaveCells().preprocess(ComputeChecksums().preprocess(second, resources)[0], resources)
    with Gradebook(url, "course") as gb:
        gb.add_assignment("empty")
        gb.add_student("t")
    (plain, plain_url), (ours, ours_url) = _copies(path, 2)

    def submit(db_url):
        with Gradebook(db_url, "course") as gb:
            made = gb.add_submission("a", "t", timestamp="2026-02-03 04:05:06.789 UTC", extension=None)
            empty = gb.add_submission("empty", "t")
            assert (made.assignment.name, made.student.id, empty.notebooks) == ("a", "t", [])
            for args, kwargs, error in ((("a", "nobody"), {}, MissingEntry), (("none", "t"), {}, MissingEntry),
                                        (("a", "t"), {"grade": 1}, TypeError), (("a", "t"), {}, InvalidEntry)):
                with pytest.raises(error):
                    gb.add_submission(*args, **kwargs)  # the last: "t" has submitted "a" already

    submit(plain_url)
    patches.create_each_submission_at_once()
    submit(ours_url)
    assert _submission_rows(ours, "t")[0] == _submission_rows(plain, "t")[0]
    rows, ids = _submission_rows(ours, "t")
    assert len(rows["grades"]) == 6 and len(rows["comments"]) == 4 and len(rows["notebooks"]) == 2
    assert len(set(ids)) == len(ids) and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
