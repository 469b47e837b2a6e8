"""The autograder's secret, mixed into the seed of every input the judge draws at random.

Every case's random inputs are seeded by the case's name (:attr:`spec.Case.seed`), the
exercises' and the capstone's by numbers in their modules: anyone can draw them again. So a
student could run ``grader.check`` at home with torch's own BCE, record torch's output for
every input (keyed by the input's bytes), and hand in a function that looks the answer up:
it mentions no torch function, and it would pass every case. When autograding, the judge
mixes a secret of the course into each of those seeds (:func:`seed`, a keyed hash), so the
inputs it draws are ones no table recorded at home holds, and such a function fails. Inputs
that are literal values (the articles' examples, the edge values, the errors' ranges, the
course's data) are the same with or without it: there is nothing to hide in them.

Where the secret comes from: :func:`use`, called in the judge's process only -- the warm
engine's first process, after its root forker (where every notebook's process comes from)
has started and before it computes torch's answers ahead (:mod:`grader.instructor.engine.pool`);
the instructor's side keeps it (:mod:`grader.instructor.secret`). In a process where nobody
called :func:`use`, ``$BCE_GRADER_SALT`` (empty: none): plain nbgrader's kernel can be given it
to grade as the engine does, though it has no trust boundary (the student's code runs in the
same process as the checks, and can read it). Without either (a student's own ``grader.check``,
a plain ``nbgrader validate``), every seed is what it has always been.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import torch

#: The environment variable that gives the secret where :func:`use` was not called.
VARIABLE = "BCE_GRADER_SALT"

_UNSET = object()
_given: object = _UNSET  # the secret :func:`use` set (a string, or None for none), else _UNSET


def use(secret: str | None) -> None:
    """Set this process's secret (None: none, whatever the environment says). Only ever in the
    judge's process, and never in one that notebooks' processes are forked from."""
    global _given
    if secret is not None and not isinstance(secret, str):
        raise TypeError(f"the secret is a string, not {type(secret).__name__}")
    _given = secret or None


def forget() -> None:
    """Back to the environment's secret, if any (for tests)."""
    global _given
    _given = _UNSET


@contextlib.contextmanager
def using(secret: str | None):
    """:func:`use` ``secret`` for the block, then go back to what was set before (for tests)."""
    global _given
    before = _given
    use(secret)
    try:
        yield
    finally:
        _given = before


def secret() -> str | None:
    """This process's secret: the one :func:`use` set, else ``$BCE_GRADER_SALT``, else None."""
    if _given is not _UNSET:
        return _given  # type: ignore[return-value]
    return os.environ.get(VARIABLE) or None


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"bce-grader salt\0" + secret.encode()).digest()


def seed(number: int) -> int:
    """The seed to draw with instead of ``number``: ``number`` itself without a secret; with
    one, a keyed hash of it (63 bits), which nobody without the secret can compute."""
    found = secret()
    if not found:
        return number
    digest = hashlib.blake2b(str(int(number)).encode(), key=_key(found), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(number: int) -> torch.Generator:
    """A CPU generator seeded with :func:`seed` of ``number``."""
    return torch.Generator().manual_seed(seed(number))


def tag() -> str:
    """Which secret the draws of this process use, for the keys of what is kept of them (torch's
    answers): "" without one, else a short digest that does not give the secret away."""
    found = secret()
    return hashlib.blake2b(_key(found), digest_size=6).hexdigest() if found else ""
