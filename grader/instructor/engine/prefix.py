"""Shared beginnings: the code cells every student received before their first answer,
run once per worker, and forked from for every notebook that begins with them unchanged.

The process that runs a beginning is forked from the worker's forker
(:mod:`grader.instructor.engine.forker`), so it has never seen a submission; it runs
the instructor's cells, in a folder of its own holding the released files, then forks
a process for every notebook that begins with those cells, which reads its own job after
the fork and enters the sandbox as any notebook's process does.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import traceback

from . import child, forker


@dataclasses.dataclass(frozen=True)
class SharedPrefix:
    """What every student of a notebook received before their first answer: the code
    cells of the released notebook before its first solution or test cell, and the
    files nbgrader puts beside the notebook when it autogrades (the source folder's
    files, notebooks aside).

    A submission whose first code cells are exactly these, beside exactly these files,
    would run them to the same state as every other such submission; the engine runs
    them once (:class:`PrefixServer`). What the prefix cannot see, unlike a run of the
    whole notebook: the submission's own notebook file and ``timestamp.txt``; and it
    runs in the folder it was given, outside the sandbox (it is the instructor's code),
    with torch on one thread."""

    notebook: str
    folder: str
    sources: tuple[str, ...]
    indices: tuple[int, ...]
    files: tuple[tuple[str, str], ...]
    ignore: tuple[str, ...]

    @classmethod
    def of(cls, released: str, folder: str, ignore=()) -> "SharedPrefix | None":
        """The prefix of the released notebook ``released``, whose files are in ``folder``."""
        import nbformat

        try:
            nb = nbformat.read(released, as_version=4)
        except Exception:  # noqa: BLE001 - no released notebook: nothing to share
            return None
        sources, indices = [], []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("solution") or meta.get("grade"):
                break
            sources.append(cell.source)
            indices.append(index)
        if not sources:
            return None
        ignore = (*ignore, "*.ipynb", "timestamp.txt")
        files = file_digests(folder, ignore) if os.path.isdir(folder) else {}
        return cls(os.path.abspath(released), os.path.abspath(folder), tuple(sources), tuple(indices),
                   tuple(sorted(files.items())), tuple(ignore))


#: The largest file whose content :func:`file_digests` reads; a larger one counts as changed.
DIGEST_LIMIT = 64 << 20


def file_digests(folder: str, ignore=()) -> dict[str, str]:
    """Every file under ``folder`` (relative path: SHA-256 of its content), leaving out
    the files and folders whose names match a pattern of ``ignore``.

    The folder may hold what a student handed in: nothing here follows a link, opens
    anything but a regular file (a FIFO would block, /dev/urandom never end), or reads
    more than :data:`DIGEST_LIMIT` bytes; such an entry gets a digest no released file has."""
    found = {}
    for path, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in ignore))
        for name in names:
            if any(fnmatch.fnmatch(name, p) for p in ignore):
                continue
            full = os.path.join(path, name)
            found[os.path.relpath(full, folder)] = _digest(full)
    return found


def _digest(path: str) -> str:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "not a regular file"
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return "unreadable"
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_size > DIGEST_LIMIT:
            return "not a regular file of a readable size"
        return hashlib.sha256(f.read(DIGEST_LIMIT + 1)).hexdigest()


def begins_with(nb, cells, shared: SharedPrefix | None, cwd: str) -> bool:
    """Whether ``nb`` (in ``cwd``) begins with ``shared``'s code cells, beside its files."""
    if shared is None or len(cells) < len(shared.sources):
        return False
    for (index, source, _), expected in zip(cells, shared.sources):
        meta = nb.cells[index].get("metadata", {}).get("nbgrader", {})
        if source != expected or meta.get("solution") or meta.get("grade"):
            return False
    return tuple(sorted(file_digests(cwd, shared.ignore).items())) == shared.files


def run_prefix(request: dict, out_fd: int, control: socket.socket) -> None:
    """In the process forked for a beginning: run its cells in its folder, say whether it
    left threads running, then fork a process for every notebook that asks. Never returns."""
    code = 0
    try:
        import torch

        from .session import Session

        os.environ[child.JUDGED_ELSEWHERE] = "1"
        os.chdir(request["folder"])
        torch.set_num_threads(1)
        session = Session()
        before = child.thread_count()
        cells = [(i, source, None) for i, source in zip(request["indices"], request["sources"])]
        session.run(cells, out_fd, None, request["timeout"])
        # A thread the prefix started (a progress bar's monitor, OpenMP's team after
        # torch.set_num_threads(4), ...) would not exist in the children, and a lock it
        # held would stay locked there: such a prefix is not shared.
        started = child.thread_count() - before
        control.send(json.dumps({"threads started": started}).encode())
        if started > 0:
            os._exit(0)
        forker.serve(control, session)
    except BaseException:  # noqa: BLE001
        traceback.print_exc(file=sys.__stderr__)
        code = 1
    finally:
        os._exit(code)


#: Where prefix processes keep their folders (the pool sets one per run and removes it).
SERVER_DIR: str | None = None


class PrefixServer:
    """A process that has run a :class:`SharedPrefix` once, in a folder of its own, and
    forks a process for every notebook that begins with it. The prefix's outputs are kept
    here and copied into every such notebook.

    The process runs torch on one thread, as the forker does (a process that has used
    OpenMP's thread team cannot fork safely); each notebook's process sets its threads back."""

    def __init__(self, shared: SharedPrefix, timeout: int):
        from .execute import listen

        self.prefix: list | None = None
        self.alive = False
        self.handle: forker.Forker | None = None
        self.folder = tempfile.mkdtemp(prefix="bce-prefix-", dir=SERVER_DIR)
        for relative, _ in shared.files:
            os.makedirs(os.path.dirname(os.path.join(self.folder, relative)), exist_ok=True)
            shutil.copy(os.path.join(shared.folder, relative), os.path.join(self.folder, relative))
        shutil.copy(shared.notebook, os.path.join(self.folder, os.path.basename(shared.notebook)))
        before = file_digests(self.folder)
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_fd, write_fd = os.pipe()
        reply = forker.mine().ask({"op": "prefix", "folder": self.folder, "sources": list(shared.sources),
                                    "indices": list(shared.indices), "timeout": timeout},
                                   [write_fd, theirs.fileno()])
        os.close(write_fd)
        theirs.close()
        if not reply or "pid" not in reply:
            os.close(read_fd)
            control.close()
            return
        self.handle = forker.Forker(control, reply["pid"])
        messages = []
        listen(read_fd, reply["pid"], timeout, None, lambda message, channel: messages.append(message))
        if len(messages) != len(shared.sources):
            return  # it died or hung before the end of the prefix: notebooks run whole
        try:
            said = json.loads(control.recv(4096) or b"{}")
        except (OSError, ValueError):
            said = {}
        if said.get("threads started") != 0:
            return  # it left threads running: its children could not use them
        self.prefix = messages
        self.alive = True
        after = file_digests(self.folder)
        self.written = sorted(name for name, digest in after.items() if before.get(name) != digest)
        self.deleted = sorted(name for name in before if name not in after)

    def copy_what_it_wrote(self, folder: str) -> None:
        """Make ``folder`` (a copy of the submission's) hold what the prefix left in its own."""
        for name in self.written:
            target = os.path.join(folder, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(self.folder, name), target)
        for name in self.deleted:
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass

    def spawn(self, job: dict) -> forker.Started | None:
        started = self.handle.spawn(job) if self.handle is not None else None
        if started is None:
            self.close()
        return started

    def wait(self) -> int:
        return self.handle.wait() if self.handle is not None else signal.SIGKILL

    def close(self) -> None:
        self.alive = False
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        shutil.rmtree(self.folder, ignore_errors=True)


#: The prefix processes of this worker, by (prefix, cell time limit); None: it failed.
_SERVERS: dict = {}


def server(shared: SharedPrefix | None, timeout: int) -> PrefixServer | None:
    """The running process of ``shared``'s beginning, started on first use."""
    if shared is None:
        return None
    key = (shared, timeout)
    if key not in _SERVERS:
        _SERVERS[key] = PrefixServer(shared, timeout)
    found = _SERVERS[key]
    if found is not None and not found.alive:  # it failed to run the prefix, or died since
        found.close()
        _SERVERS[key] = found = None
    return found


def close_servers() -> None:
    """End this process's prefix processes and remove their folders."""
    for found in _SERVERS.values():
        if found is not None:
            found.close()
    _SERVERS.clear()
