"""The names collect reads: the naming rule (which student a submitted file's path names,
and which assignment its name names), what may be a student id, the entries of an nbgrader
exchange, the names it refuses (control characters, path separators, ``.``/``..``, archive
paths that are absolute or climb out), and how names and sizes are shown in the report."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path


#: How a submitted file's path (relative to the folder or archive it came in, with "/"
#: separators) names its student, tried in order: "alice_01-bce-vector.ipynb" (flat, the
#: student id before the first "_"), then "alice/01-bce-vector.ipynb" (a folder per student).
#: A flat name that can be read more than one way ("mary_jane_01-bce-vector.ipynb": mary's or
#: mary_jane's?) is refused; with a roster, its longest id that begins the name is taken.
DEFAULT_PATTERNS = (
    r"(?:^|/)(?P<student>[^/_]+)_[^/]*\.ipynb$",
    r"(?:^|/)(?P<student>[^/]+)/[^/]+\.ipynb$",
)
DEFAULT_RULES = tuple(re.compile(p) for p in DEFAULT_PATTERNS)
#: What nbgrader accepts as a student id here: it becomes a folder name. The whole id must
#: match (``fullmatch``: "eve\n" is not "eve").
STUDENT_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@-]*\Z")
#: The folders of an nbgrader exchange's inbound: student+assignment+timestamp[+random]. Any
#: name of that shape is an entry; its parts are checked one by one (and a bad one reported).
EXCHANGE_ENTRY = re.compile(r"(?P<student>[^+/]+)\+(?P<assignment>[^+/]+)\+(?P<timestamp>[^+/]+)(?:\+[^/]*)?",
                            re.DOTALL)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(text: str, keep: str = "") -> str:
    """``text`` as it can be printed and read: control characters (a line break in a file
    name), invisible formatting ones and undecodable bytes written as escapes, but those in
    ``keep``."""
    if text.isprintable():
        return text
    return "".join(c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if c not in keep and unicodedata.category(c) in ("Cc", "Cf", "Cs") else c for c in text)


def _size(n: int) -> str:
    return f"{n / 1024 ** 3:.1f} GiB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.1f} MiB" if n >= 1024 ** 2 \
        else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


def _bad_name(name: str) -> str | None:
    """What makes ``name`` (one file or folder name from a source) unusable, if anything."""
    if name in ("", ".", ".."):
        return f"'{name}' is not a name (an empty path, '.' or '..')"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return (f"its name '{_shown(name)}' holds a control character (a line break, a tab, an invisible or "
                "undecodable character): rename it (letters, digits, - _ .) and collect again")
    if "/" in name or "\\" in name:
        return f"its name '{name}' holds a path separator (/ or \\)"
    return None


def _member_problem(path: str) -> str | None:
    """What makes a zip member's path (with "/" separators) unsafe to take, if anything."""
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return (f"its path in the archive, '{_shown(path)}', is absolute (it names a place outside the archive): "
                "refused; export the archive again or unpack it yourself and collect the folder")
    parts = [p for p in path.split("/") if p not in ("", ".")]  # "./alice/x.ipynb" stays where it is
    if ".." in parts:
        return (f"its path in the archive, '{_shown(path)}', climbs out of the archive ('..'): refused; "
                "export the archive again or unpack it yourself and collect the folder")
    for part in parts:
        problem = _bad_name(part)
        if problem:
            return problem
    return None


def _entry_problem(student: str, assignment: str, stamp: str) -> str | None:
    if not STUDENT_ID.fullmatch(student):
        return (f"an exchange entry for '{_shown(student)}', which cannot be a student id "
                "(letters, digits, . _ @ -): skipped")
    problem = _bad_name(assignment) or _bad_name(stamp)
    return f"a malformed exchange entry: {problem}" if problem else None


def _named_assignment(relative: str, released: dict[str, Path]) -> str | None:
    """An assignment named in the file name (as a whole word), if any."""
    name = relative.rsplit("/", 1)[-1]
    hits = [a for a in released if re.search(rf"(?:^|[^0-9A-Za-z]){re.escape(a)}(?:$|[^0-9A-Za-z])", name)]
    return hits[0] if len(hits) == 1 else None


# --- which student a file is: the default rule, the roster, ids that are assignments -------

def _assignment_in(name: str, released) -> tuple[str, int, int] | None:
    """The one assignment named in ``name`` (as a whole word), with where it is in it."""
    hits = [(a, m.start(1), m.end(1)) for a in released
            for m in [re.search(rf"(?:^|[^0-9A-Za-z])({re.escape(a)})(?:$|[^0-9A-Za-z])", name, re.IGNORECASE)] if m]
    return hits[0] if len(hits) == 1 else None


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^a-z]+", text.lower()) if w}


def _assignment_like(student: str, released) -> str | None:
    """The assignment ``student`` is (or looks like: "01-BCE-Vector", "02-bce-matrix-v2",
    "02-matrix", "bce-vector"), if any: a file named the other way round
    ("02-bce-matrix_grace.ipynb") would otherwise create a student of that name."""
    low = student.lower()
    for name in released:
        lowered = name.lower()
        if low == lowered or re.search(rf"(?:^|[^0-9a-z]){re.escape(lowered)}(?:$|[^0-9a-z])", low):
            return name
        numbered = re.fullmatch(r"0*(\d+)-(.+)", lowered)
        if not numbered:
            continue
        if low == numbered[2]:
            return name
        mine = re.fullmatch(r"0*(\d+)-([a-z].*)", low)
        if mine and mine[1] == numbered[1] and _words(mine[2]) & _words(numbered[2]):
            return name
    return None


def _file_name_for(relative: str, assignment: str, released, taken: str = "") -> str:
    """The name the file at ``relative`` should have: its student's id (guessed from what is
    left of its name once the assignment's name, or what was ``taken`` for one, is taken
    out; else ID), "_", the assignment."""
    stem = relative.rsplit("/", 1)[-1]
    stem = stem[:-len(".ipynb")] if stem.lower().endswith(".ipynb") else stem
    found = _assignment_in(stem, released)
    rest = (stem[:found[1]] + " " + stem[found[2]:]) if found else \
        stem.replace(taken, " ", 1) if taken and taken in stem else stem
    rest = re.sub(r"^[\s_.-]+|[\s_.-]+$", "", rest)
    guess = rest if STUDENT_ID.fullmatch(rest) and not _assignment_like(rest, released) else "ID"
    return f"{guess}_{assignment}.ipynb"


def _not_an_assignment(student: str, relative: str, released) -> str | None:
    """Why ``student`` cannot be a student id, if it is (or looks like) an assignment's name."""
    like = _assignment_like(student, released)
    if like is None:
        return None
    what = "is the name of an assignment" if student.lower() == like.lower() else f"looks like the assignment {like!r}"
    return (f"{student!r} {what}, not a student id: name the file {_file_name_for(relative, like, released, student)} "
            "(the student's id, '_', the assignment)")


def _default_student(relative: str, released) -> tuple[str | None, str | None]:
    """The student the default naming rule reads in ``relative`` (a path with "/"
    separators), and why none is taken when the name can be read more than one way:
    "mary_jane_01-bce-vector.ipynb" is mary's or mary_jane's (a roster tells)."""
    for number, rule in enumerate(DEFAULT_RULES):
        match = rule.search(relative)
        if match:
            break
    else:
        return None, None
    student = match["student"].strip()
    if number != 0:
        return student, None
    parts = [p for p in relative.split("/") if p]
    stem = parts[-1][:-len(".ipynb")]
    found = _assignment_in(stem, released)
    if found:
        words = re.sub(r"[\s_.-]+$", "", stem[:found[1]]).split("_")
        readings = ["_".join(words[:k]) for k in range(1, len(words) + 1)]
    else:
        words = stem.split("_")
        readings = ["_".join(words[:k]) for k in range(1, len(words))]
    readings = [r for r in readings if STUDENT_ID.fullmatch(r)]
    if len(readings) <= 1:
        return student, None
    if len(parts) > 1 and parts[-2] in readings:  # mary_jane/mary_jane_01-bce-vector.ipynb
        return parts[-2], None
    shown = " or ".join(repr(r) for r in readings)
    return None, (f"its name can be read as the student {shown} (an id may hold '_'): collect with --roster FILE "
                  "listing the students' ids (the longest id on it that begins a name is taken), or rename it "
                  f"ID_{found[0] if found else 'ASSIGNMENT'}.ipynb with an id that holds no '_'")


def _roster_student(relative: str, roster) -> tuple[str | None, str | None]:
    """The student on ``roster`` whose id begins the file's name (followed by "_") or its
    folder's (the whole name, or followed by "_"), the longest such id, the file's name
    first, then its folders from the nearest; and why none is taken when the name and a
    folder name two different students."""
    parts = [p for p in relative.split("/") if p]
    if not parts:
        return None, None
    levels = [(parts[-1], "its name")] + [(p, f"its folder {p!r}") for p in reversed(parts[:-1])]
    found: list[tuple[str, str]] = []
    for part, where in levels:
        ids = [r for r in roster if part.startswith(r + "_") or (where != "its name" and part == r)]
        if ids:
            best = max(ids, key=len)
            if best not in (f for f, _ in found):
                found.append((best, where))
    if len(found) > 1:
        (one, here), (other, there) = found[:2]
        return None, (f"its path names two students on the roster, {one!r} ({here}) and {other!r} ({there}): "
                      "collect it alone, or rename it")
    return (found[0][0], None) if found else (None, None)


def _closest(relative: str, roster, released, limit: int = 3) -> list[str]:
    """The ids on ``roster`` closest to what the file's name or its folder holds."""
    import difflib

    parts = [p for p in relative.split("/") if p]
    if not parts:
        return []
    stem = parts[-1][:-len(".ipynb")] if parts[-1].lower().endswith(".ipynb") else parts[-1]
    found = _assignment_in(stem, released)
    tokens = {stem.split("_")[0], stem}
    if found:
        tokens |= {re.sub(r"^[\s_.-]+|[\s_.-]+$", "", part) for part in (stem[:found[1]], stem[found[2]:])}
    tokens |= set(parts[:-1][-1:])
    scores: dict[str, float] = {}
    for token in filter(None, tokens):
        for rid in roster:
            ratio = difflib.SequenceMatcher(None, token.lower(), rid.lower()).ratio()
            if ratio >= 0.7:
                scores[rid] = max(scores.get(rid, 0), ratio)
    return sorted(scores, key=lambda r: (-scores[r], r))[:limit]
