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
DEFAULT_PATTERNS = (
    r"(?:^|/)(?P<student>[^/_]+)_[^/]*\.ipynb$",
    r"(?:^|/)(?P<student>[^/]+)/[^/]+\.ipynb$",
)
#: What nbgrader accepts as a student id here: it becomes a folder name. The whole id must
#: match (``fullmatch``: "eve\n" is not "eve").
STUDENT_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@-]*\Z")
#: The folders of an nbgrader exchange's inbound: student+assignment+timestamp[+random]. Any
#: name of that shape is an entry; its parts are checked one by one (and a bad one reported).
EXCHANGE_ENTRY = re.compile(r"(?P<student>[^+/]+)\+(?P<assignment>[^+/]+)\+(?P<timestamp>[^+/]+)(?:\+[^/]*)?",
                            re.DOTALL)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(text: str) -> str:
    """``text`` as it can be printed and read: control characters (a line break in a file
    name), invisible formatting ones and undecodable bytes written as escapes."""
    return "".join(c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if unicodedata.category(c) in ("Cc", "Cf", "Cs") else c for c in text)


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
