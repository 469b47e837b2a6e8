"""Which assignment a notebook is, told from the ids of its nbgrader cells (whatever its
file is called), and what in a notebook nbgrader could not work with (cells, or their
nbgrader metadata, damaged by hand or by another tool)."""

from __future__ import annotations

import json
from pathlib import Path

from .names import _clip


def _nbgrader(cell) -> dict | None:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    found = meta.get("nbgrader") if isinstance(meta, dict) else None
    return found if isinstance(found, dict) else None


def _grade_ids(nb) -> set[str]:
    cells = nb.get("cells") if isinstance(nb, dict) else None
    ids = set()
    for cell in cells if isinstance(cells, list) else []:
        grade_id = (_nbgrader(cell) or {}).get("grade_id")
        if grade_id and isinstance(grade_id, str):
            ids.add(grade_id)
    return ids


#: The types nbgrader writes in a cell's "nbgrader" metadata.
_NBGRADER_TYPES = {"grade_id": (str,), "grade": (bool,), "solution": (bool,), "locked": (bool,),
                   "task": (bool,), "points": (int, float), "checksum": (str,), "schema_version": (int,)}


def _what(value) -> str:
    return {str: "a text", list: "a list", dict: "a dictionary", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


#: What a damaged notebook's student should do, at the end of every reason given for one.
DAMAGED = ("the notebook was damaged (edited by hand or by another tool); ask the student to copy "
           "their answers into a fresh copy of the assignment and hand that in")
#: The most levels of lists and dictionaries inside each other a notebook may have. A notebook has
#: about ten (a widget's state or a rich output a few more). nbformat and nbgrader read and copy a
#: notebook recursively, a few of Python's frames a level, in a stack that autograding makes deep:
#: one a few hundred levels deep that can be read here would fail to be graded.
MAX_DEPTH = 100
#: The reason given for a notebook deeper than that (or too deep to read at all).
TOO_DEEP = (f"nested too deeply to grade: it holds lists or dictionaries inside each other more than {MAX_DEPTH} "
            f"levels deep, where a notebook has about ten; {DAMAGED}")


def _deeper_than(value, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) holds lists or dictionaries more than ``limit`` levels deep;
    without recursion, so that no depth makes this fail."""
    level = [value] if isinstance(value, (dict, list)) else []  # the containers at one depth
    for _ in range(limit):
        level = [inner for outer in level for inner in (outer.values() if isinstance(outer, dict) else outer)
                 if isinstance(inner, (dict, list))]
        if not level:
            return False
    return True


def _malformed(nb) -> str | None:
    """What in ``nb`` (a parsed notebook) nbgrader could not work with, if anything: its
    cells and their nbgrader metadata must have the shape nbgrader writes, and it must not be
    nested deeper than :data:`MAX_DEPTH`."""
    if _deeper_than(nb, MAX_DEPTH):
        return TOO_DEEP
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return f"its list of cells is {_what(cells)}, not a list: {DAMAGED}"
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            return f"its cell {number} is {_what(cell)}, not a cell: {DAMAGED}"
        if not isinstance(cell.get("source", ""), (str, list)):
            return f"the text of its cell {number} is {_what(cell['source'])}: {DAMAGED}"
        meta = cell.get("metadata", {})
        if not isinstance(meta, dict):
            return f"the metadata of its cell {number} is {_what(meta)}, not a dictionary: {DAMAGED}"
        if "nbgrader" not in meta:
            continue
        nbg = meta["nbgrader"]
        if not isinstance(nbg, dict):
            return (f"the nbgrader metadata of its cell {number} is {_what(nbg)} ({_clip(repr(nbg), 40)}) "
                    f"where nbgrader writes a dictionary: {DAMAGED}")
        for key, types in _NBGRADER_TYPES.items():
            value = nbg.get(key)
            if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
                return f"the nbgrader metadata of its cell {number} has {key!r} = {_what(value)}: {DAMAGED}"
    return None


class Identifier:
    """Tells a notebook's assignment from its nbgrader cells (the ids of its
    solution and test cells), whatever its file is called."""

    def __init__(self, released: dict[str, Path]):
        import nbformat

        ids = {name: _grade_ids(nbformat.read(path, as_version=4)) for name, path in released.items()}
        shared = set.intersection(*ids.values()) if len(ids) > 1 else set()
        self.ids = {name: found - shared for name, found in ids.items()}

    def __call__(self, nb) -> str | None:
        found = _grade_ids(nb)
        scores = {name: len(found & ids) for name, ids in self.ids.items()}
        best = max(scores.values(), default=0)
        winners = [name for name, score in scores.items() if score == best]
        return winners[0] if best and len(winners) == 1 else None


def _damaged_json(data: bytes) -> str | None:
    """Why nbformat could not read ``data``, if it is JSON whose cells are damaged (nbformat's
    own error would only say which attribute it missed)."""
    try:
        raw = json.loads(data)
    except Exception:  # noqa: BLE001 - not JSON: nbformat's error says so
        return None
    return _malformed(raw) if isinstance(raw, dict) and "cells" in raw else None
