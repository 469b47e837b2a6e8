"""The course's autograding secret: what makes the judge's random inputs unknowable to students.

Every case's random inputs are seeded by its name, so a student can draw them at home, record
torch's answer to each with a local ``grader.check``, and hand in a function that looks the
answers up (:mod:`grader._battery.salt`). The warm engine mixes this secret into every such
seed, in the judge's process only, so a recorded table misses.

Where it lives: ``autograde-secret`` in the workspace, beside the gradebook (nbgrader's course
root, which no sandboxed notebook sees, and of which only ``release/`` is ever handed out; git
ignores the name), made on the first autograde (128 random bits, file mode 0600) and read by
every later one, so that grading again gives the same grades. Shards of a class share it the
way they share the workspace: the first run to need it creates it whole (written under another
name, then linked into place, which is atomic on NFS too), and every other run reads that one.
``$BCE_GRADER_SALT``, when set, takes its place (for tests, and for an instructor who gives the
same value to every job of a class). It reaches the engine on the pipe it reads its job from,
never in its environment (:class:`grader.instructor.grading._Engine`); plain nbgrader
(``--engine nbgrader``) does not use it, unless its kernels inherit ``$BCE_GRADER_SALT``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from .._battery.salt import VARIABLE
from .workspace import WorkflowError, Workspace

#: The file, in the workspace, that holds the secret.
FILE = "autograde-secret"


def of(workspace: Workspace) -> str:
    """The secret to grade ``workspace``'s submissions with: ``$BCE_GRADER_SALT`` if set, else
    the workspace's own, made now if it has none yet."""
    given = os.environ.get(VARIABLE)
    if given:
        return given
    path = workspace.root / FILE
    if not path.exists():
        try:
            _make(path)
        except OSError as error:
            raise WorkflowError(f"cannot write the autograding secret {path}: {error.strerror or error}; "
                                f"or give one with ${VARIABLE}") from error
    return _read(path)


def _make(path: Path) -> None:
    """Write a new secret at ``path``, unless another run has meanwhile: whoever is first wins,
    and nobody ever reads a file half written."""
    token = secrets.token_hex(16)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another run made it first: its secret is the class's
        except OSError:  # a file system without hard links
            _make_in_place(path, token)
    finally:
        os.unlink(partial)


def _make_in_place(path: Path, token: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")


def _read(path: Path, patience: float = 5.0) -> str:
    """The secret in ``path``; a file still being written in place (:func:`_make_in_place`, by
    another run) is waited for, a little."""
    deadline = time.monotonic() + patience
    while True:
        try:
            text = path.read_text().strip()
        except OSError as error:
            raise WorkflowError(f"cannot read the autograding secret {path}: {error.strerror or error}") from error
        if text:
            return text
        if time.monotonic() > deadline:
            raise WorkflowError(f"the autograding secret {path} is empty: remove it (the next autograde makes "
                                f"another, which draws other inputs) or set ${VARIABLE}")
        time.sleep(0.1)
