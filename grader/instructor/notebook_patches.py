"""The patches of nbconvert's and nbformat's notebook checks that the warm engine's workers
make (see :mod:`grader.instructor.patches`, which lists them in ``PATCHED`` and makes them)."""

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
    the cell ids the first gave."""
    import collections
    import os

    import nbformat

    validate = nbformat.validate
    passed: collections.OrderedDict = collections.OrderedDict()

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
        strict = bool(relax_add_props) and _passes_strictly(validate, nbdict, version, version_minor)
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
