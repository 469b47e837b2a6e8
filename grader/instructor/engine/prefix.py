"""Shared beginnings: the code cells every student received before their first answer,
run once per run of the engine, and forked from for every notebook that begins with them
unchanged, whichever worker grades it.

The process that runs a beginning is forked from a forker that has never seen a submission
(:mod:`grader.instructor.engine.forker`; in a run of many notebooks, the engine's root
forker, before any worker starts: :func:`grader.instructor.engine.pool.begin`); it runs
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
    whole notebook: ``timestamp.txt`` (and, unconfined, nbgrader's copy of the notebook: a
    sandboxed notebook's folder holds no notebook, see ``execute._LEFT_OUT``); and it
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


def run_prefix(request: dict, control: socket.socket) -> None:
    """In the process forked for a beginning: run its cells in its folder, writing their
    outputs to a file, and say whether it left threads running; then, for every socket a
    grading process sends on ``control``, answer with that (and where the outputs are), and
    fork a forker that serves it, continuing from the state the cells left. Never returns."""
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
        out_fd = os.open(request["outputs"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        session.run(cells, out_fd, None, request["timeout"])
        prepare_what_it_imports(request["sources"])
        child.settle_before_forking()
        # A thread the prefix started (a progress bar's monitor, OpenMP's team after
        # torch.set_num_threads(4), ...) would not exist in the children, and a lock it
        # held would stay locked there: such a prefix is not shared.
        started = child.thread_count() - before
        status = json.dumps({"threads started": started}).encode()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the forkers it starts are reaped by the kernel
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(control, 4096, 1)
            except OSError:
                os._exit(0)
            if not fds:
                os._exit(0)
            user = socket.socket(fileno=fds[0])
            try:
                user.send(status)
            except OSError:
                user.close()
                continue
            if started == 0 and os.fork() == 0:
                control.close()
                child.die_with_parent()
                forker.serve(user, session)
            user.close()
    except BaseException:  # noqa: BLE001
        traceback.print_exc(file=sys.__stderr__)
        code = 1
    finally:
        os._exit(code)


#: The course's modules that can compute ahead what their notebooks use (deterministic course
#: code, no student's), by the name a beginning imports them by, with the function that does it.
PREPARE = {"grader.imbalance": "prepare"}


def prepare_what_it_imports(sources) -> None:
    """Have each course module of :data:`PREPARE` that the beginning imports compute ahead what
    its notebook will ask of it: every notebook forked from here then finds it done."""
    import importlib
    import re

    code = "\n".join(sources)
    for name, function in PREPARE.items():
        package, _, module = name.rpartition(".")
        if re.search(rf"^\s*(import\s+{re.escape(name)}\b|from\s+{re.escape(package)}\s+import\s+.*\b{module}\b)",
                     code, re.MULTILINE):
            try:
                getattr(importlib.import_module(name), function)()
            except Exception:  # noqa: BLE001 - the notebook's own cell will meet the problem and say it
                pass


#: Where prefix processes keep their folders (the pool sets one per run and removes it).
SERVER_DIR: str | None = None


@dataclasses.dataclass
class Beginning:
    """A process started to run a :class:`SharedPrefix` once (:func:`start`), as the process
    that started it, and every process forked from that one, sees it: the socket on which a
    grading process asks for a forker of its own (:func:`connect`), the folder it runs in,
    the file its outputs go to, and the folder's files before it ran."""

    shared: SharedPrefix
    timeout: int
    control: socket.socket | None
    base: str
    before: dict

    @property
    def folder(self) -> str:
        return os.path.join(self.base, "work")

    @property
    def outputs(self) -> str:
        return os.path.join(self.base, "outputs.jsonl")

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        shutil.rmtree(self.base, ignore_errors=True)


def start(shared: SharedPrefix, timeout: int, via=None, wait: bool = True) -> Beginning:
    """Start a process that runs ``shared``'s cells, forked by ``via`` (a forker that has never
    seen a submission: by default this process's own, :func:`forker.mine`). It runs while
    this process goes on; :func:`connect` waits for it. Without ``wait``, the forker is only
    told: it forks the process when it comes to it, and :func:`started` reads its reply."""
    base = tempfile.mkdtemp(prefix="bce-prefix-", dir=SERVER_DIR)
    folder = os.path.join(base, "work")
    os.mkdir(folder)
    for relative, _ in shared.files:
        os.makedirs(os.path.dirname(os.path.join(folder, relative)), exist_ok=True)
        shutil.copy(os.path.join(shared.folder, relative), os.path.join(folder, relative))
    shutil.copy(shared.notebook, os.path.join(folder, os.path.basename(shared.notebook)))
    beginning = Beginning(shared, timeout, None, base, file_digests(folder))
    control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    via = via or forker.mine()
    told = via.tell({"op": "prefix", "folder": folder, "outputs": beginning.outputs,
                     "sources": list(shared.sources), "indices": list(shared.indices),
                     "timeout": timeout}, [theirs.fileno()])
    theirs.close()
    beginning.control = control
    if not told:
        started(beginning, None)
    elif wait:
        started(beginning, via)
    return beginning


def started(beginning: Beginning, via) -> Beginning:
    """``beginning`` as its forker ``via`` replied to :func:`start` (read now, in the order the
    forker was told; None: it is gone): without a process, it has no control socket."""
    reply = via.answer() if via is not None else None
    if not (reply and "pid" in reply) and beginning.control is not None:
        beginning.control.close()
        beginning.control = None
    return beginning


#: The longest the file of a beginning's outputs may be.
OUTPUTS_LIMIT = 64 << 20


class PrefixServer:
    """A grading process's forker that continues from a :class:`Beginning`: it forks a process
    for every notebook that begins with the beginning's cells. The beginning's outputs are
    read once and copied into every such notebook, with the files it wrote.

    The beginning runs torch on one thread, as the forker does (a process that has used
    OpenMP's thread team cannot fork safely); each notebook's process sets its threads back."""

    def __init__(self, beginning: Beginning):
        self.prefix: list | None = None
        self.alive = False
        self.handle: forker.Forker | None = None
        self.folder = beginning.folder
        if beginning.control is None:
            return
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(beginning.control, [b"connect"], [theirs.fileno()])
        except OSError:
            mine.close()
            return
        finally:
            theirs.close()
        self.handle = forker.Forker(mine)
        # the cells, each within its time limit and the grace the engine gives any cell, and the
        # course's modules computing ahead (prepare_what_it_imports)
        mine.settimeout(len(beginning.shared.sources) * (beginning.timeout + 15) + 600)
        try:
            said = json.loads(mine.recv(4096) or b"{}")
        except (OSError, ValueError):
            said = {}
        mine.settimeout(None)
        if said.get("threads started") != 0:
            return  # it died, hung, or left threads running (its children could not use them)
        messages = _read_outputs(beginning.outputs)
        if messages is None or [m.get("index") for m in messages] != list(beginning.shared.indices):
            return  # it did not run every cell of the beginning: notebooks run whole
        self.prefix = messages
        self.alive = True
        after = file_digests(self.folder)
        self.written = sorted(name for name, digest in after.items() if beginning.before.get(name) != digest)
        self.deleted = sorted(name for name in beginning.before if name not in after)

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

    def wait_later(self) -> None:
        if self.handle is not None:
            self.handle.wait_later()

    def close(self) -> None:
        self.alive = False
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _read_outputs(path: str) -> list | None:
    """The messages a beginning wrote (one JSON object per cell), or None if they cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(OUTPUTS_LIMIT + 1)
    except OSError:
        return None
    if len(data) > OUTPUTS_LIMIT:
        return None
    try:
        messages = [json.loads(line) for line in data.splitlines() if line.strip()]
    except ValueError:
        return None
    return messages if all(isinstance(m, dict) and isinstance(m.get("outputs"), list) for m in messages) else None


#: The beginnings the engine's first process started for its workers (:func:`start_for_workers`),
#: by (prefix, cell time limit); once it has, a worker shares no other beginning.
STARTED: dict = {}
DECIDED = False
#: This process's forkers that continue from a beginning, by (prefix, cell time limit); None: it failed.
_SERVERS: dict = {}
#: The beginnings this process started itself, by (prefix, cell time limit).
_OWN: dict = {}


def server(shared: SharedPrefix | None, timeout: int) -> PrefixServer | None:
    """A forker that continues from ``shared``'s beginning: from the one the engine's first
    process started, else (outside the engine's pool) from one this process starts on first use."""
    if shared is None:
        return None
    key = (shared, timeout)
    if key not in _SERVERS:
        beginning = STARTED.get(key)
        if beginning is None and not DECIDED:
            beginning = _OWN[key] = start(shared, timeout)
        _SERVERS[key] = PrefixServer(beginning) if beginning is not None else None
    found = _SERVERS[key]
    if found is not None and not found.alive:  # it failed to run the prefix, or died since
        found.close()
        _SERVERS[key] = found = None
    return found


def start_for_workers(beginnings, via, wait: bool = True) -> list[Beginning]:
    """In the engine's first process, before its workers fork: start the beginnings
    ``[(prefix, cell time limit)]`` worth sharing, all at once, each forked by ``via`` (the
    root forker); every worker then connects to them instead of running its own. Without
    ``wait``, the root forker is only told (it forks them when it comes to them, after what it
    was asked before): the beginnings returned wait for :func:`started`, in order, before any
    worker forks."""
    global DECIDED
    DECIDED = True
    told = []
    for shared, timeout in beginnings:
        if (shared, timeout) not in STARTED:
            STARTED[(shared, timeout)] = start(shared, timeout, via, wait)
            told.append(STARTED[(shared, timeout)])
    return [] if wait else told


def close_servers() -> None:
    """End this process's forkers of beginnings, and the beginnings it started itself."""
    for found in _SERVERS.values():
        if found is not None:
            found.close()
    _SERVERS.clear()
    for beginning in _OWN.values():
        beginning.close()
    _OWN.clear()
