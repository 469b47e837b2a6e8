"""The patches of how nbgrader's autograde reads, checks and writes notebooks (nbgrader's,
nbconvert's and nbformat's) that the warm engine's workers make (see
:mod:`grader.instructor.patches`, which lists them in ``PATCHED`` and makes them)."""

from __future__ import annotations


def _json(value) -> str | None:
    """``value`` as JSON with its keys sorted (what a JSON schema sees of it); None where it
    is not JSON (or has keys of more than one type)."""
    import json

    try:
        return json.dumps(value, sort_keys=True, check_circular=False)
    except (TypeError, ValueError, RecursionError):
        return None


def validate_each_notebook_once() -> None:
    """Check a notebook against nbformat's schema once per content. nbconvert checks the
    whole notebook after every step of nbgrader's (thirteen per notebook), and nbformat again
    as it reads and writes it; most steps change nothing. A notebook whose JSON is, key for
    key and value for value, one that passed passes again, so the check is skipped for it;
    any other notebook is checked by nbformat's own ``validate``, which raises and logs as
    before (a notebook that fails fails at the same step, with the same error). What passed is
    remembered as it was after nbformat's check, which gives missing or repeated cell ids new
    ones: the notebook it skips has none to give. A strict check is skipped only for a
    notebook that passed a strict one; a check that allows additional properties (nbconvert's)
    for one that passed either, and it is made strict first, since a notebook that passes the
    strict check passes the other (nbformat then skips the strict check of the notebook it
    writes); one that fails it gets the check it was asked for, whose verdict stands, as do
    the cell ids the first gave.

    A notebook not seen before is mostly cells seen before (a class's released cells, the
    outputs every student's run prints alike): it is checked strictly by nbformat with only
    its new cells (:func:`_passes_by_cells`), where that decides."""
    import collections
    import os

    import nbformat

    validate = nbformat.validate
    passed: collections.OrderedDict = collections.OrderedDict()
    cells_passed: set = set()

    def digest(nb, version, version_minor) -> tuple | None:
        text = _json(nb)
        if text is None:  # checked every time
            return None
        return text, version, version_minor, os.environ.get("NBFORMAT_VALIDATOR")

    def validate_once(nbdict=None, ref=None, version=None, version_minor=None, relax_add_props=False,
                      nbjson=None):
        if nbdict is None or ref is not None or nbjson is not None:
            return validate(nbdict, ref, version, version_minor, relax_add_props, nbjson)
        before = digest(nbdict, version, version_minor)
        modes = passed.get(before, ())
        if False in modes or (relax_add_props and True in modes):
            passed.move_to_end(before)
            return None
        verdict = None if before is None else _passes_by_cells(validate, nbdict, version, version_minor,
                                                               cells_passed, before[3])
        if verdict:
            strict, after = True, before  # nbformat changed nothing: every cell has an id of its own
        else:
            strict = verdict is None and bool(relax_add_props) and _passes_strictly(validate, nbdict, version,
                                                                                   version_minor)
            if not strict:
                validate(nbdict, None, version, version_minor, bool(relax_add_props))
                strict = not relax_add_props
            after = digest(nbdict, version, version_minor)
        if after is not None:
            passed.setdefault(after, set()).add(not strict)
            passed.move_to_end(after)
            while len(passed) > 16:
                passed.popitem(last=False)
        return None

    nbformat.validate = validate_once


#: The most cells :func:`_passes_by_cells` remembers (digests of 16 bytes) before it forgets them all.
CELLS_REMEMBERED = 200_000


def _passes_by_cells(validate, nb, version, version_minor, cells_passed: set, validator) -> bool | None:
    """Whether ``nb`` passes nbformat's strict check, found by nbformat's own ``validate`` of
    the notebook with only its cells that have not passed before (all of them, the first
    time); None where this cannot tell. A notebook that fails is then checked whole, as asked,
    and that check's verdict and message stand.

    Sound because the check is made of parts: nbformat's schemas check the notebook's own
    fields, and each cell against the cell schema alone (the cells' array has no constraint
    of its own), so a cell whose JSON is, key for key and value for value, that of a cell that
    passed under the same schema passes again. What nbformat checks across cells, their ids,
    is checked here in full: every cell must have an id and no two the same (else nbformat
    would give new ones, and the whole notebook is checked instead). ``cells_passed`` holds
    digests of (schema, cell) that passed; ``validator`` is the validator nbformat uses."""
    import hashlib

    from nbformat.reader import get_version

    try:
        found, found_minor = get_version(nb)
    except Exception:  # noqa: BLE001 - not a notebook nbformat can place: the whole check says why
        return None
    version = found if version is None else version
    version_minor = found_minor if version_minor is None else version_minor
    cells = nb.get("cells")
    if version != 4 or not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        return None
    if version_minor >= 5:
        ids = [cell.get("id") for cell in cells]
        if None in ids or len(set(map(repr, ids))) < len(ids):
            return None
    schema = f"{version}.{version_minor}:{validator}:".encode()
    digests = []
    for cell in cells:
        text = _json(cell)
        if text is None:
            return None
        digests.append(hashlib.blake2b(schema + text.encode(), digest_size=16).digest())
    part = {key: value for key, value in nb.items() if key != "cells"}
    part["cells"] = [cell for cell, digest in zip(cells, digests) if digest not in cells_passed]
    try:
        validate(part, None, version, version_minor, False)
    except Exception:  # noqa: BLE001 - a part that fails fails in the whole: checked whole, it says why
        return False
    if len(cells_passed) + len(digests) > CELLS_REMEMBERED:
        cells_passed.clear()
    cells_passed.update(digests)
    return True


def _passes_strictly(validate, nb, version, version_minor) -> bool:
    """Whether ``nb`` passes nbformat's strict check (raising nothing, so that the check
    asked for next raises on its own where it fails)."""
    try:
        validate(nb, None, version, version_minor, False)
    except Exception:  # noqa: BLE001 - whatever it raises, the check asked for decides
        return False
    return True


def check_only_steps_that_change_the_notebook() -> None:
    """nbconvert's exporter runs nbgrader's steps on a deep copy of the notebook, which it
    copies again to normalise it, and checks the notebook against nbformat's schema after
    every step. Normalise it without the first copy (normalising copies it: the notebook
    given is left as it was), and check it after every step but one that hands on the very
    notebook checked after the step before and only reads it: a disabled step (nbconvert's
    ``__call__`` returns what it was given), ``CheckCellMetadata``, ``SaveAutoGrades`` and
    ``AssignLatePenalties``. That notebook is the one that passed; nbformat's check would
    pass it again and change nothing in it. Every other step is checked as before, so a
    notebook that fails fails after the same step, with the same error."""
    import copy

    import nbformat.validator
    from nbconvert.exporters.exporter import Exporter
    from nbconvert.preprocessors import Preprocessor
    from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, SaveAutoGrades

    readers = (CheckCellMetadata, SaveAutoGrades, AssignLatePenalties)
    preprocess = Exporter._preprocess

    def only_reads(step) -> bool:
        if type(step) in readers:
            return True
        return isinstance(step, Preprocessor) and type(step).__call__ is Preprocessor.__call__ and not step.enabled

    def _preprocess(self, nb, resources):
        if not hasattr(nbformat.validator, "normalize"):
            return preprocess(self, nb, resources)
        _, nbc = nbformat.validator.normalize(nb)
        resc = copy.deepcopy(resources)
        checked = None
        for preprocessor in self._preprocessors:
            given = nbc
            nbc, resc = preprocessor(nbc, resc)
            if not self.optimistic_validation and not (nbc is given is checked and only_reads(preprocessor)):
                self._validate_preprocessor(nbc, preprocessor)
                checked = nbc
        if self.optimistic_validation:
            self._validate_preprocessor(nbc, preprocessor)
        return nbc, resc

    Exporter._preprocess = _preprocess


def autograde_in_one_pass() -> None:
    """nbgrader's ``Autograde`` converts each notebook in two passes: it sanitizes the
    submission and writes the result into the autograded folder, then reads that file back,
    autogrades it and writes it again. Hand the sanitized notebook to the second pass as
    reading the file back would give it (:func:`as_written_and_read`), without the file: one
    write, and one read (of the submission). The folder is made where writing would make it,
    and the second pass runs on the same notebook with the same resources, so the autograded
    notebook and the gradebook end as before, and a pass that raises raises the same error
    (nbgrader then removes the notebook, as it would). While the notebook runs, the folder
    holds no copy of it yet; a sandboxed notebook never sees one anyway (``execute._LEFT_OUT``).
    A folder that cannot be written to fails at the one write, after the second pass, where
    nbgrader's second write fails too (its first would have failed before). Where the exporter
    writes another version than 4 (nbgrader's ``nbformat_version``), the two passes run as
    before."""
    import os

    from nbconvert.exporters.exporter import ResourcesDict
    from nbgrader import utils
    from nbgrader.converters.autograde import Autograde

    two_passes = Autograde.convert_single_notebook

    def convert_single_notebook(self, notebook_filename):
        if getattr(self.exporter, "nbformat_version", None) != 4:
            return two_passes(self, notebook_filename)
        self.log.info("Sanitizing %s", notebook_filename)
        self._sanitizing = True
        self._init_preprocessors()
        resources = self.init_single_notebook_resources(notebook_filename)
        self.log.info("Converting notebook %s", notebook_filename)
        nb, resources = _sanitized(self.exporter, notebook_filename, resources)
        # where nbgrader writes the sanitized notebook, and reads it back from
        self.writer.build_directory = self._format_dest(resources["nbgrader"]["assignment"],
                                                        resources["nbgrader"]["student"])
        notebook_filename = os.path.join(self.writer.build_directory, os.path.basename(notebook_filename))
        nb = as_written_and_read(nb)
        self.log.info("Autograding %s", notebook_filename)
        self._sanitizing = False
        self._init_preprocessors()
        try:
            with utils.setenv(NBGRADER_EXECUTION="autograde"):
                self.log.info("Converting notebook %s", notebook_filename)
                resources = self.init_single_notebook_resources(notebook_filename)
                resources["metadata"] = _file_metadata(notebook_filename, ResourcesDict())
                output, resources = self.exporter.from_notebook_node(nb, resources=resources)
                self.write_single_notebook(output, resources)
        finally:
            self._sanitizing = True

    Autograde.convert_single_notebook = convert_single_notebook


def _file_metadata(filename: str, metadata, modified=None):
    """What nbconvert's ``Exporter.from_filename`` records of the notebook file ``filename``:
    its name, its folder, and the day it was last modified (``modified``, a timestamp; now
    when None: the file nbgrader would have just written)."""
    import datetime
    import os
    import sys
    import time

    path, basename = os.path.split(filename)
    metadata["name"] = os.path.splitext(basename)[0]
    metadata["path"] = path
    day = datetime.datetime.fromtimestamp(time.time() if modified is None else modified, tz=datetime.timezone.utc)
    metadata["modified_date"] = day.strftime("%B %d, %Y" if sys.platform == "win32" else "%B %-d, %Y")
    return metadata


def _sanitized(exporter, filename: str, resources: dict):
    """nbconvert's ``from_filename`` of ``filename`` through ``exporter``'s steps, up to the
    notebook they make (which a ``NotebookExporter`` would then write to text)."""
    import os

    import nbformat
    from nbconvert.exporters.exporter import Exporter, ResourcesDict

    if "metadata" not in resources or resources["metadata"] == "":
        resources["metadata"] = ResourcesDict()
    _file_metadata(filename, resources["metadata"], os.path.getmtime(filename))
    with open(filename, encoding="utf-8") as f:
        nb = nbformat.read(f, as_version=4)
    return Exporter.from_notebook_node(exporter, nb, resources=resources)


def as_written_and_read(nb):
    """``nbformat.reads(nbformat.writes(nb), as_version=4)``, without the text in between, for
    a version 4 notebook: both check the notebook, logging what fails (and give cells ids as
    checking does); writing splits multi-line strings into lines, which reading joins again;
    both drop the transient fields; reading makes every dict a node. What writing the text to
    a file would refuse (a lone surrogate, which UTF-8 cannot hold) raises as it would."""
    import json

    import nbformat
    from nbformat.converter import convert
    from nbformat.notebooknode import from_dict
    from nbformat.v4.nbjson import BytesEncoder
    from nbformat.v4.rwbase import rejoin_lines, strip_transient

    if not isinstance(nb, dict) or nb.get("nbformat") != 4:
        return nbformat.reads(nbformat.writes(nb), as_version=4)
    _checked(nb)
    text = json.dumps(nb, cls=BytesEncoder, sort_keys=True, ensure_ascii=False)
    text.encode("utf-8")
    read = strip_transient(rejoin_lines(from_dict(json.loads(text))))
    return _checked(convert(read, 4))


def _checked(nb):
    """nbformat's check of a notebook it writes or reads: what fails is logged, not raised."""
    import nbformat
    from traitlets.log import get_logger

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as error:
        get_logger().error("Notebook JSON is invalid: %s", error)
    return nb
