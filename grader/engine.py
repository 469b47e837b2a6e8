"""The warm autograding engine: notebooks run in processes forked from one that
has already imported torch, IPython and the grader, instead of a fresh kernel each.

Plain ``nbgrader autograde`` starts a kernel for every notebook and imports
torch there: seconds each, most of a notebook's grading time. Here a zygote
process imports everything and runs the check battery once, single-threaded
(a process that has used OpenMP's thread team cannot fork safely; its children
hang at their first parallel region); then every notebook runs in a child
forked from it, which sets torch's threads back, runs the cells with IPython's
semantics (magics, display, the last expression's result, tracebacks, the
per-cell timeout that nbgrader records as ``CellTimeoutError``) and sends each
executed cell back. A child sees nothing of the notebooks before it: each is a
fresh copy of the zygote, in a scratch working directory.

The code cells every student received before their first answer (a notebook's
explanations, figures and explorers) are the same in most submissions: each worker
runs them once, from the released notebook, in a process that every notebook
beginning with exactly those cells then forks from (:class:`SharedPrefix`).

nbgrader keeps all of its bookkeeping (checksums, overwriting locked cells,
scoring, the gradebook): the engine replaces only its ``Execute``
preprocessor, with :class:`WarmExecute`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback as _traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sandbox import Sandbox

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Integer, List, Unicode

#: How long after a cell's own time limit the parent waits before it calls the child dead.
_GRACE_S = 15
#: Characters of output (as JSON) one cell may produce; the rest is dropped, with a note.
OUTPUT_LIMIT = 1 << 20
TRUNCATED = "output truncated"


class CellTimeoutError(Exception):
    """A cell ran longer than its time limit (the name nbgrader records)."""


# --- inside the child ---------------------------------------------------------------------

def _shell(record):
    """An IPython shell whose outputs become nbformat outputs passed to ``record``."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            record({"output_type": "display_data", "data": data, "metadata": metadata or {}})

        def clear_output(self, wait=False):
            record(None)

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            record({"output_type": "execute_result", "data": format_dict, "metadata": md_dict or {},
                    "execution_count": self.shell.execution_count})

    class Shell(InteractiveShell):
        def _showtraceback(self, etype, evalue, stb):
            record({"output_type": "error", "ename": etype.__name__, "evalue": str(evalue), "traceback": stb})

        def enable_gui(self, gui=None):
            pass

    # The history (In, Out, _i, %history) lives in memory: no file of the grader's user is
    # written, and no history thread runs in a process that will fork.
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    # the singleton: IPython.display.display() and the inline backend find it by Shell.instance()
    return Shell.instance(config=config, displayhook_class=Hook, display_pub_class=Publisher, colors="NoColor")


class _Stream:
    def __init__(self, name, record):
        self.name, self.record = name, record

    def write(self, text):
        if text:
            self.record({"output_type": "stream", "name": self.name, "text": text})
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"


def _without_network() -> bool:
    """Move this process into a network namespace of its own, with no interface but a
    loopback that is down: connections fail. Needs root, or unprivileged user namespaces."""
    import ctypes

    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(clone_newnet) == 0 or libc.unshare(clone_newuser | clone_newnet) == 0


def confine(memory_mb: int | None, cpu_seconds: int | None, network: bool) -> list[str]:
    """Limit this process (a notebook's child): its address space, its CPU time and,
    unless ``network``, its network. Returns what could not be limited."""
    import resource

    missing = []
    if memory_mb:
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    if not network and not _without_network():
        missing.append("network (no network namespace could be made here)")
    return missing


class _Session:
    """The notebook's side: an IPython shell, and the outputs of the cell it is running.

    A session runs cells and reports each one as a JSON line on a pipe. It can run
    some cells, then fork: each child continues from the state those cells left
    (:class:`_PrefixServer`)."""

    def __init__(self):
        self.outputs: list = []
        self.size = 0  # characters of output kept for the current cell
        self.shell = _shell(self.record)
        sys.stdout, sys.stderr = _Stream("stdout", self.record), _Stream("stderr", self.record)
        try:
            self.shell.enable_matplotlib("inline")
        except Exception:  # noqa: BLE001 - no matplotlib: nothing to show
            pass

    def record(self, output):
        if output is None:
            self.outputs.clear()
            self.size = 0
            return
        length = len(json.dumps(output))
        if self.size + length > OUTPUT_LIMIT:
            if self.size <= OUTPUT_LIMIT:
                self.outputs.append({"output_type": "stream", "name": "stdout",
                                     "text": f"\n[{TRUNCATED}: the rest of this cell's output was dropped]\n"})
                self.size = OUTPUT_LIMIT + 1
            return
        self.size += length
        outputs = self.outputs
        if output["output_type"] == "stream" and outputs and outputs[-1]["output_type"] == "stream" \
                and outputs[-1]["name"] == output["name"]:
            outputs[-1]["text"] += output["text"]
        else:
            outputs.append(output)

    def run(self, cells, out_fd: int, timeout: int, count_processes: bool = False) -> None:
        """Run ``cells`` ((index, source) pairs); write one JSON line per cell to ``out_fd``."""

        def on_alarm(signum, frame):
            raise CellTimeoutError(f"the cell ran longer than its time limit of {timeout} s")

        signal.signal(signal.SIGALRM, on_alarm)
        me = os.getpid()
        with os.fdopen(out_fd, "w") as pipe:
            for index, source in cells:
                self.record(None)
                os.environ["BCE_GRADER_CELL"] = str(index)
                signal.alarm(timeout)
                try:
                    result = self.shell.run_cell(source, store_history=True)
                finally:
                    signal.alarm(0)
                if os.getpid() != me:  # a process the cell forked: it must not answer for the notebook
                    os._exit(0)
                message = {"index": index, "outputs": self.outputs, "execution_count": result.execution_count}
                if count_processes:
                    message["processes"] = _processes()
                pipe.write(json.dumps(message) + "\n")
                pipe.flush()


def _only_these_files_open(out_fd: int) -> None:
    """Close every file descriptor the notebook's process inherited but the pipe to its
    parent and standard error; standard input and output become /dev/null. What the
    workers hold open (their pipes to the pool, the gradebook's lock) is out of reach,
    and nothing a notebook writes to file descriptor 1 reaches the engine's own output."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    os.closerange(3, out_fd)
    os.closerange(out_fd + 1, 1 << 16)
    sys.stdin = open(os.devnull)


def _run_child(cells: list, cwd: str | None, timeout: int, threads: int, out_fd: int,
               limits: dict | None = None, count_processes: bool = False, session: _Session | None = None) -> None:
    """Execute ``cells`` (code sources) in ``session`` (a new one by default) and write
    one JSON line per cell to ``out_fd``."""
    import torch

    if cwd:
        os.chdir(cwd)
    if limits:
        confine(**limits)
    _only_these_files_open(out_fd)
    torch.set_num_threads(threads)
    (session or _Session()).run(cells, out_fd, timeout, count_processes)


def _processes() -> int:
    """How many processes this PID namespace holds (this one included)."""
    try:
        return sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        return 0


# --- in the parent ---------------------------------------------------------------------------

def execute(nb, *, cwd: str, timeout: int = 30, threads: int | None = None, limits: dict | None = None,
            sandbox: "Sandbox | None" = None, notebook_timeout: int | None = None,
            shared: "SharedPrefix | None" = None):
    """Run the code cells of ``nb`` in a child forked from this process and fill in
    their outputs, as a Jupyter kernel would.

    With ``sandbox`` (a :class:`grader.sandbox.Sandbox`) the notebook runs confined
    to a copy of ``cwd`` (see :mod:`grader.sandbox`), the checks it calls leave
    evidence, and every autograded test cell is decided again in this process
    (:mod:`grader.verdict`). Without it, ``limits`` (the arguments of :func:`confine`)
    limit the child's memory, CPU time and network.

    With ``shared`` (a :class:`SharedPrefix`), a notebook that begins with exactly the
    released notebook's code cells, beside exactly the released files, does not run
    them: its child is forked from a process that has run them once (see
    :class:`_PrefixServer`), and their outputs are those of that run.

    A child that dies, stops answering, or runs past ``notebook_timeout`` seconds
    ends the notebook: its current cell gets a ``DeadKernelError`` output and every
    autograded test cell after it an error saying it did not run, so the notebook
    keeps the points earned before. What the instructor should know is returned
    in ``nb.metadata["bce_grader"]["attention"]``.
    """
    import nbformat

    threads = threads or int(os.environ.get("BCE_ENGINE_THREADS", "1"))
    cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for _, cell in ((i, nb.cells[i]) for i, _ in cells):
        cell.outputs, cell.execution_count = [], None
    server = _server(shared, timeout) if _begins_with(nb, cells, shared, cwd) else None
    attention: list[str] = []
    scratch = None
    try:
        while True:
            reused = len(server.prefix) if server is not None else 0
            scratch = _scratch(cwd) if sandbox is not None else None
            if server is not None:
                server.copy_what_it_wrote(os.path.join(scratch, "work") if scratch else cwd)
            job = {"cells": cells[reused:], "cwd": cwd, "scratch": scratch, "timeout": timeout, "threads": threads,
                   "limits": limits, "sandbox": dataclasses.asdict(sandbox) if sandbox is not None else None}
            read_fd, write_fd = os.pipe()
            if server is None:
                pid = os.fork()
                if pid == 0:  # the child: never returns
                    os.close(read_fd)
                    _child(job, write_fd)
                os.close(write_fd)
                break
            pid = server.start(job, write_fd)
            os.close(write_fd)
            if pid is not None:
                break
            # the prefix's process is gone: run the whole notebook instead
            os.close(read_fd)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            server = None
        done: set[int] = set()

        def fill(index, message):
            cell = nb.cells[index]
            cell.outputs = [nbformat.from_dict(o) for o in message["outputs"]]
            cell.execution_count = message["execution_count"]
            done.add(index)

        for (index, _), message in zip(cells, server.prefix if server is not None else []):
            fill(index, message)

        def answer(message):
            if "sandbox" in message:
                return f"the sandbox could not be set up: {message['sandbox']}"
            index = message["index"]
            if not isinstance(index, int) or index in done or not 0 <= index < len(nb.cells) \
                    or nb.cells[index].cell_type != "code":
                return None
            fill(index, message)
            if isinstance(message.get("processes"), int) and message["processes"] > 1:
                attention.append(f"cell {index + 1} left {message['processes'] - 1} processes running "
                                 "(they were killed when the notebook ended)")
            return None

        stopped = _listen(read_fd, pid, timeout, notebook_timeout, answer)
        status = server.wait() if server is not None else os.waitpid(pid, 0)[1]
        pending = [i for i, _ in cells if i not in done]
        if pending:
            how = stopped or _ended(status)
            attention.append(f"the notebook stopped at cell {pending[0] + 1}: {how}")
            nb.cells[pending[0]].outputs = [nbformat.from_dict({
                "output_type": "error", "ename": "DeadKernelError",
                "evalue": f"the notebook's process ended while running this cell ({how})",
                "traceback": [f"DeadKernelError: the notebook's process ended while running this cell ({how})"]})]
            for index in pending[1:]:
                meta = nb.cells[index].get("metadata", {}).get("nbgrader", {})
                if meta.get("grade") and not meta.get("solution"):
                    text = f"not run: the notebook stopped at cell {pending[0] + 1} ({how})"
                    nb.cells[index].outputs = [nbformat.from_dict({
                        "output_type": "error", "ename": "NotRunError", "evalue": text,
                        "traceback": [f"NotRunError: {text}"]})]
        attention += _what_the_outputs_say(nb)
        if sandbox is not None:
            from . import evidence, verdict

            records = evidence.read(os.path.join(scratch, "evidence", "evidence.jsonl"))
            for record in records:
                record["cell"] = _int(record.get("cell"))
            found = verdict.suspicious(nb)
            attention += verdict.judge_notebook(nb, records, tampering=found)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    nb.metadata["bce_grader"] = {"attention": attention, "shared_cells": reused}
    return nb


def _child(job: dict, out_fd: int, session: "_Session | None" = None) -> None:
    """In a notebook's child (forked from a worker or from a prefix's process): run the
    job's cells, confined as the job says, and leave. Never returns."""
    code = 0
    try:
        cells = [tuple(c) for c in job["cells"]]
        if job["sandbox"] is None:
            _run_child(cells, job["cwd"], job["timeout"], job["threads"], out_fd, job["limits"], session=session)
        else:
            from .sandbox import Sandbox

            code = _run_sandboxed(cells, job["scratch"], Sandbox(**job["sandbox"]), job["timeout"], job["threads"],
                                  out_fd, session=session)
    except BaseException:  # noqa: BLE001 - report, then leave without running the parent's code
        _traceback.print_exc(file=sys.__stderr__)
        code = 1
    finally:
        os._exit(code)


def _listen(read_fd: int, pid: int, timeout: int, notebook_timeout: int | None, answer) -> str | None:
    """Pass every message the child at ``pid`` writes to ``read_fd`` to ``answer``, until
    the child closes it, stops answering (``timeout`` and a grace period without a
    message: killed) or runs past ``notebook_timeout`` (killed). Returns why the
    notebook was stopped, if it was, or what ``answer`` said was wrong."""
    buffer = b""
    started = time.monotonic()
    deadline = started + timeout + _GRACE_S
    stopped = None
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            wait = deadline - time.monotonic()
            if notebook_timeout:
                wait = min(wait, started + notebook_timeout - time.monotonic())
            ready, _, _ = select.select([pipe], [], [], max(wait, 0))
            if not ready:  # no answer in time: a child stuck where the alarm cannot reach
                os.kill(pid, signal.SIGKILL)
                if notebook_timeout and time.monotonic() >= started + notebook_timeout:
                    stopped = f"the notebook ran longer than its limit of {notebook_timeout} s"
                break
            chunk = pipe.read(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    said = answer(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    said = None
                stopped = said or stopped
                deadline = time.monotonic() + timeout + _GRACE_S
    return stopped


# --- a prefix run once per assignment ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SharedPrefix:
    """What every student of a notebook received before their first answer: the code
    cells of the released notebook before its first solution or test cell, and the
    files nbgrader puts beside the notebook when it autogrades (the source folder's
    files, notebooks aside).

    A submission whose first code cells are exactly these, beside exactly these files,
    would run them to the same state as every other such submission; the engine runs
    them once (:class:`_PrefixServer`). What the prefix cannot see, unlike a run of the
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
        files = _files(folder, ignore) if os.path.isdir(folder) else {}
        return cls(os.path.abspath(released), os.path.abspath(folder), tuple(sources), tuple(indices),
                   tuple(sorted(files.items())), tuple(ignore))


def _files(folder: str, ignore=()) -> dict[str, str]:
    """Every file under ``folder`` (relative path: SHA-256 of its content), leaving out
    the files and folders whose names match a pattern of ``ignore``."""
    import fnmatch
    import hashlib

    found = {}
    for path, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in ignore))
        for name in names:
            if any(fnmatch.fnmatch(name, p) for p in ignore):
                continue
            full = os.path.join(path, name)
            try:
                with open(full, "rb") as f:
                    found[os.path.relpath(full, folder)] = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                found[os.path.relpath(full, folder)] = "unreadable"
    return found


def _begins_with(nb, cells, shared: SharedPrefix | None, cwd: str) -> bool:
    """Whether ``nb`` (in ``cwd``) begins with ``shared``'s code cells, beside its files."""
    if shared is None or len(cells) < len(shared.sources):
        return False
    for (index, source), expected in zip(cells, shared.sources):
        meta = nb.cells[index].get("metadata", {}).get("nbgrader", {})
        if source != expected or meta.get("solution") or meta.get("grade"):
            return False
    return tuple(sorted(_files(cwd, shared.ignore).items())) == shared.files


#: The prefix processes of this worker, by (prefix, cell time limit); None: it failed.
_SERVERS: dict = {}
#: Where prefix processes keep their folders (grade_all sets one per run and removes it).
_SERVER_DIR: str | None = None


def _server(shared: SharedPrefix | None, timeout: int) -> "_PrefixServer | None":
    if shared is None:
        return None
    key = (shared, timeout)
    if key not in _SERVERS:
        _SERVERS[key] = _PrefixServer(shared, timeout)
    server = _SERVERS[key]
    if server is not None and not server.alive:  # it failed to run the prefix, or died since
        server.close()
        _SERVERS[key] = server = None
    return server


def close_servers() -> None:
    """End this process's prefix processes and remove their folders."""
    for server in _SERVERS.values():
        if server is not None:
            server.close()
    _SERVERS.clear()


class _PrefixServer:
    """A process that has run a :class:`SharedPrefix` once, in a folder of its own, and
    forks a child for every notebook that begins with it. The child continues from
    the prefix's state: it enters the sandbox (or the limits) as a notebook's child
    does and runs the notebook's other cells. The prefix's outputs are kept here and
    copied into every such notebook.

    The process runs torch on one thread, as the zygote does (a process that has used
    OpenMP's thread team cannot fork safely); each child sets its threads back."""

    def __init__(self, shared: SharedPrefix, timeout: int):
        import socket
        import tempfile

        self.prefix: list | None = None
        self.alive = False
        self.pid = None
        self.folder = tempfile.mkdtemp(prefix="bce-prefix-", dir=_SERVER_DIR)
        for relative, _ in shared.files:
            os.makedirs(os.path.dirname(os.path.join(self.folder, relative)), exist_ok=True)
            shutil.copy(os.path.join(shared.folder, relative), os.path.join(self.folder, relative))
        shutil.copy(shared.notebook, os.path.join(self.folder, os.path.basename(shared.notebook)))
        before = _files(self.folder)
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                self.control.close()
                os.close(read_fd)
                _die_with_parent()
                os.chdir(self.folder)
                import torch

                torch.set_num_threads(1)
                session = _Session()
                threads = _threads()
                session.run(list(zip(shared.indices, shared.sources)), write_fd, timeout)
                # A thread the prefix started (a progress bar's monitor, OpenMP's team after
                # torch.set_num_threads(4), ...) would not exist in the children, and a lock it
                # held would stay locked there: such a prefix is not shared.
                started = _threads() - threads
                theirs.send(json.dumps({"threads started": started}).encode())
                if started > 0:
                    os._exit(0)
                _serve(session, theirs)
            except BaseException:  # noqa: BLE001
                _traceback.print_exc(file=sys.__stderr__)
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        os.close(write_fd)
        self.pid = pid
        messages = []
        _listen(read_fd, pid, timeout, None, messages.append)
        if len(messages) != len(shared.sources):
            return  # it died or hung before the end of the prefix: notebooks run whole
        try:
            said = json.loads(self.control.recv(4096) or b"{}")
        except (OSError, ValueError):
            said = {}
        if said.get("threads started") != 0:
            return  # it left threads running: its children could not use them
        self.prefix = messages
        self.alive = True
        after = _files(self.folder)
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

    def start(self, job: dict, out_fd: int) -> int | None:
        """Fork a child that runs ``job`` (see :func:`_child`) and writes to ``out_fd``;
        its pid, or None if this process is gone."""
        import socket
        import tempfile

        request = tempfile.NamedTemporaryFile("w", prefix="bce-job-", suffix=".json", dir=self.folder, delete=False)
        with request:
            json.dump(job, request)
        try:
            socket.send_fds(self.control, [request.name.encode()], [out_fd])
            reply = self.control.recv(4096)
        except OSError:
            reply = b""
        if not reply:
            self.close()
            return None
        return json.loads(reply)["pid"]

    def wait(self) -> int:
        """The wait status of the child last started."""
        try:
            reply = self.control.recv(4096)
        except OSError:
            reply = b""
        if not reply:
            self.close()
            return signal.SIGKILL
        return json.loads(reply)["status"]

    def close(self) -> None:
        self.alive = False
        try:
            self.control.close()
        except OSError:
            pass
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _serve(session: _Session, control) -> None:
    """In a prefix's process: for every request, fork a child that runs the job in it."""
    import socket

    while True:
        message, fds, _, _ = socket.recv_fds(control, 4096, 1)
        if not message or not fds:
            os._exit(0)
        with open(message.decode()) as f:
            job = json.load(f)
        os.remove(message.decode())
        pid = os.fork()
        if pid == 0:
            control.close()
            _die_with_parent()
            _child(job, fds[0], session)
        os.close(fds[0])
        control.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        control.send(json.dumps({"status": status}).encode())


def _threads() -> int:
    """How many threads this process has."""
    return len(os.listdir("/proc/self/task"))


def _die_with_parent() -> None:
    """Have the kernel kill this process when its parent ends."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


#: What an error output says, and what the instructor should hear about it.
_LIMITS_HIT = (
    (("MemoryError", "can't allocate memory", "Cannot allocate memory"), "ran out of memory"),
    (("Network is unreachable", "Temporary failure in name resolution", "gaierror", "URLError"),
     "tried to use the network"),
    (("Read-only file system",), "tried to write outside its folder"),
    (("File too large",), "wrote a file larger than the limit"),
    (("Resource temporarily unavailable", "can't start new thread"), "hit the limit on processes"),
)


def _what_the_outputs_say(nb) -> list[str]:
    """The limits a notebook's cells ran into, read from their outputs."""
    notes = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = ""
            if output.get("output_type") == "error":
                text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
                if output.get("ename") in ("FileNotFoundError", "PermissionError"):
                    notes.append(f"cell {index + 1} could not open a file ({output.get('evalue', '')[:200]})")
            elif output.get("output_type") == "stream" and TRUNCATED in output.get("text", ""):
                notes.append(f"cell {index + 1} printed more than {OUTPUT_LIMIT >> 20} MiB; the rest was dropped")
            for needles, what in _LIMITS_HIT:
                if any(n in text for n in needles):
                    notes.append(f"cell {index + 1} {what}")
    return list(dict.fromkeys(notes))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)} ({signal.Signals(os.WTERMSIG(status)).name})"
    code = os.WEXITSTATUS(status)
    if code > 128:
        return f"killed by signal {code - 128} ({signal.Signals(code - 128).name})"
    return f"exit code {code}"


def _scratch(cwd: str) -> str:
    """A fresh folder: ``work/`` (a copy of the notebook's folder), ``evidence/``, ``root/``."""
    import tempfile

    scratch = tempfile.mkdtemp(prefix="bce-notebook-")
    os.chmod(scratch, 0o711)
    shutil.copytree(cwd, os.path.join(scratch, "work"), symlinks=True)
    os.mkdir(os.path.join(scratch, "evidence"))
    os.mkdir(os.path.join(scratch, "root"))
    return scratch


def _run_sandboxed(cells, scratch: str, box, timeout: int, threads: int, out_fd: int,
                   session: _Session | None = None) -> int:
    """In the child: new namespaces, then a grandchild -- process 1 of the new PID
    namespace -- enters the sandbox and runs the cells. Returns the exit code to
    report (128 + the signal that killed the grandchild)."""
    from . import sandbox

    try:
        sandbox.unshare(box.network)
    except sandbox.SandboxError as error:
        os.write(out_fd, (json.dumps({"sandbox": str(error)}) + "\n").encode())
        return 3
    uid = 100000 + os.getpid()
    inner = os.fork()
    if inner == 0:
        code = 0
        try:
            try:
                sandbox.enter(box, scratch, uid)
            except (sandbox.SandboxError, OSError) as error:
                os.write(out_fd, (json.dumps({"sandbox": str(error)}) + "\n").encode())
                os._exit(3)
            _run_child(cells, None, timeout, threads, out_fd, count_processes=True, session=session)
        except BaseException:  # noqa: BLE001
            _traceback.print_exc(file=sys.__stderr__)
            code = 1
        finally:
            os._exit(code)
    os.close(out_fd)
    _, status = os.waitpid(inner, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class WarmExecute(NbGraderPreprocessor):
    """nbgrader's Execute, with the notebook run by :func:`execute` instead of a new kernel."""

    timeout = Integer(30, help="Seconds a cell may run (like Execute.timeout)").tag(config=True)
    memory_limit = Integer(4096, help="MiB of address space a notebook may use (0: no limit)").tag(config=True)
    cpu_time_limit = Integer(600, help="Seconds of CPU time a notebook may use (0: no limit)").tag(config=True)
    network = Bool(False, help="Whether student code may use the network").tag(config=True)
    sandbox = Bool(True, help="Run each notebook in its own namespaces, file system view and user id "
                              "(grader.sandbox), and decide its test cells outside it (grader.verdict). "
                              "Needs Linux, and root or unprivileged user namespaces.").tag(config=True)
    notebook_time_limit = Integer(900, help="Seconds a whole notebook may run (0: no limit)").tag(config=True)
    process_limit = Integer(64, help="Processes and threads a sandboxed notebook may have at once").tag(config=True)
    file_size_limit = Integer(256, help="MiB the largest file a sandboxed notebook writes may have").tag(config=True)
    readable = List(Unicode(), help="More paths a sandboxed notebook may read (data the course needs)").tag(config=True)
    share_prefix = Bool(True, help="Run the code cells every student received before their first answer once "
                                   "per worker, and fork each notebook that begins with them unchanged from "
                                   "there (engine.SharedPrefix)").tag(config=True)

    def preprocess(self, nb, resources):
        cwd = resources.get("metadata", {}).get("path") or os.getcwd()
        timeout = self.config.Execute.get("timeout", self.timeout) if "Execute" in self.config else self.timeout
        box = None
        if self.sandbox:
            from .sandbox import Sandbox

            box = Sandbox(memory_mb=self.memory_limit or None, cpu_seconds=self.cpu_time_limit or None,
                          processes=self.process_limit, file_mb=self.file_size_limit, network=self.network,
                          readable=list(self.readable), hidden=_hidden_paths(self.config, cwd))
        limits = {"memory_mb": self.memory_limit or None, "cpu_seconds": self.cpu_time_limit or None,
                  "network": self.network}
        shared = _shared_prefix(self.config, resources) if self.share_prefix else None
        nb = execute(nb, cwd=cwd, timeout=int(timeout), limits=limits, sandbox=box,
                     notebook_timeout=self.notebook_time_limit or None, shared=shared)
        return nb, resources


_PREFIXES: dict = {}


def _shared_prefix(config, resources) -> SharedPrefix | None:
    """The shared prefix of the notebook nbgrader is autograding: from its released copy,
    with the source folder's files (those nbgrader copies beside the submission)."""
    info = resources.get("nbgrader", {})
    assignment, notebook = info.get("assignment"), info.get("notebook")
    if not assignment or not notebook:
        return None
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    released = os.path.join(coursedir.format_path(coursedir.release_directory, ".", assignment), f"{notebook}.ipynb")
    source = coursedir.format_path(coursedir.source_directory, ".", assignment)
    try:
        stamp = os.stat(released).st_mtime_ns
    except OSError:
        return None
    key = (released, source, stamp)
    if key not in _PREFIXES:
        _PREFIXES[key] = SharedPrefix.of(released, source, tuple(coursedir.ignore))
    return _PREFIXES[key]


def _hidden_paths(config, cwd: str) -> list[str]:
    """The course's folders and the gradebook's: never visible to a sandboxed notebook,
    even where a readable path contains them."""
    paths = []
    root = config.CourseDirectory.get("root") if "CourseDirectory" in config else None
    for path in (root, os.environ.get("BCE_COURSE_WORKSPACE")):
        if path:
            paths.append(os.path.abspath(path))
    return paths


# --- the zygote: warm up, then grade in parallel workers -----------------------------------------

_LOCK = None  # an open file whose flock serialises the gradebook's writers


class _locked:
    """Hold the gradebook lock: SQLite takes one writer at a time, and two connections
    that both read and then write can deadlock (SQLITE_BUSY at once, no waiting)."""

    def __enter__(self):
        if _LOCK is not None:
            import fcntl

            fcntl.flock(_LOCK, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        if _LOCK is not None:
            import fcntl

            fcntl.flock(_LOCK, fcntl.LOCK_UN)


def _lock_nbgraders_writers() -> None:
    """In a worker: the steps of nbgrader's autograde that write to the gradebook take the
    lock; the rest (reading, sanitising, running the notebook) runs in parallel."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    def locked(method):
        def wrapper(*args, **kwargs):
            with _locked():
                return method(*args, **kwargs)

        return wrapper

    Autograde.init_assignment = locked(Autograde.init_assignment)
    SaveAutoGrades.preprocess = locked(SaveAutoGrades.preprocess)
    AssignLatePenalties.preprocess = locked(AssignLatePenalties.preprocess)


def warm_up() -> None:
    """Import what notebooks use and run the battery once, on one thread."""
    import torch

    torch.set_num_threads(1)
    import IPython  # noqa: F401
    import matplotlib

    matplotlib.use("module://matplotlib_inline.backend_inline")
    import matplotlib.pyplot  # noqa: F401
    import nbgrader.api
    import torch.nn.functional as F

    import grader
    from grader import datasets, evidence, explore, imbalance, sandbox, verdict  # noqa: F401
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401 - verdict reads cells with it

    def binary_cross_entropy(input, target, weight=None, reduction="mean"):
        return F.binary_cross_entropy(input, target, weight=weight, reduction=reduction)

    grader.check(binary_cross_entropy, devices=["cpu"])
    # The capstone's data, read and checked once here rather than in every notebook that uses it.
    try:
        datasets.breast_cancer_split(), datasets.digits_split()
    except datasets.DataError:
        pass  # a notebook that reads the data gets the loader's own message
    _read_what_tracebacks_show()
    # nbgrader asks the alembic command for the gradebook's schema version every time it
    # opens the gradebook: a subprocess per notebook. The answer does not change.
    from .release import environment_bin_on_path

    with environment_bin_on_path():
        version = nbgrader.api.get_alembic_version()
    nbgrader.api.get_alembic_version = lambda: version


def _read_what_tracebacks_show() -> None:
    """Format, once, the tracebacks of failing checks as IPython formats a cell's error.
    IPython reads and parses the source of every module a traceback passes through
    (stack_data, executing, inspect) and keeps what it read; the children forked from
    here find it read, and a notebook's first failing test cell costs a few
    milliseconds instead of a few hundred."""
    from IPython.core import ultratb

    import grader
    from grader import imbalance

    def binary_cross_entropy(input, target):
        raise NotImplementedError

    def pos_weight_from_labels(labels):
        raise NotImplementedError

    formatter = ultratb.AutoFormattedTB(mode="Context", tb_offset=1)
    for fail in (lambda: grader.assert_passes(binary_cross_entropy, categories=["seed"], arguments=[]),
                 lambda: imbalance.assert_pos_weight(pos_weight_from_labels, cases="edge"),
                 lambda: 1 / 0):
        try:
            fail()
        except Exception:  # noqa: BLE001 - the point: format what it raised
            formatter.structured_traceback(*sys.exc_info())


def _grade(task):
    """In a worker: autograde one submission with nbgrader."""
    workspace_root, db_url, assignment, student = task
    from .workflow import Workspace

    api = _API.get((workspace_root, db_url))
    if api is None:
        api = _API[(workspace_root, db_url)] = Workspace(Path(workspace_root), db_url).api(warm=True)
    result = api.autograde(assignment, student, force=True, create=True)
    return student, assignment, bool(result.get("success")), (result.get("log") or "") + (result.get("error") or "")


_API: dict = {}


def _init_worker(lock_path: str, threads: int) -> None:
    global _LOCK
    _LOCK = open(lock_path, "a+")
    os.environ["BCE_ENGINE_THREADS"] = str(threads)
    _lock_nbgraders_writers()
    _one_database_engine_per_url()
    _check_nbgraders_schema_once()


def _check_nbgraders_schema_once() -> None:
    """In a worker: nbgrader validates the metadata of every nbgrader cell with
    ``jsonschema.validate``, which first checks the schema itself, every time (a third
    of its validation). Check each schema once; validate each cell as before."""
    import types

    import jsonschema
    import nbgrader.nbgraderformat.common as common

    validators: dict = {}

    def validate(instance, schema, cls=None, *args, **kwargs):
        if cls is not None or args or kwargs:
            return jsonschema.validate(instance, schema, cls, *args, **kwargs)
        key = id(schema)
        if key not in validators or validators[key][0] is not schema:
            kind = jsonschema.validators.validator_for(schema)
            kind.check_schema(schema)
            validators[key] = (schema, kind(schema))
        error = jsonschema.exceptions.best_match(validators[key][1].iter_errors(instance))
        if error is not None:
            raise error

    common.jsonschema = types.SimpleNamespace(**{**vars(jsonschema), "validate": validate})


def _one_database_engine_per_url() -> None:
    """In a worker: nbgrader opens the gradebook a dozen times per notebook, each time
    with a new SQLAlchemy engine, whose cache of compiled statements starts empty.
    One engine per database URL keeps it (nbgrader still closes its connections
    after each use: ``Gradebook.close`` disposes of the engine's pool)."""
    import nbgrader.api
    from sqlalchemy import create_engine

    engines: dict = {}

    def engine_for(url, *args, **kwargs):
        key = (str(url), repr(args), repr(sorted(kwargs.items())))
        if key not in engines:
            engines[key] = create_engine(url, *args, **kwargs)
        return engines[key]

    nbgrader.api.create_engine = engine_for


def grade_all(workspace_root: str, db_url: str | None, tasks: list[tuple[str, str]], jobs: int,
              progress: bool) -> list[tuple[str, str, bool, str]]:
    """Warm up, then autograde ``tasks`` ((student, assignment) pairs) in ``jobs`` workers."""
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    warm_up()
    # one writer at a time per gradebook (SQLite allows one)
    import zlib

    lock_path = os.path.join(workspace_root, f".gradebook-{zlib.crc32((db_url or '').encode()):08x}.lock")
    context = multiprocessing.get_context("fork")
    work = [(workspace_root, db_url, a, s) for s, a in tasks]
    results = []
    global _SERVER_DIR
    import tempfile

    _SERVER_DIR = tempfile.mkdtemp(prefix="bce-engine-")  # the workers' prefix processes keep their folders here
    try:
        with context.Pool(jobs, initializer=_init_worker, initargs=(lock_path, threads)) as pool:
            iterator = pool.imap_unordered(_grade, work)
            if progress:
                from tqdm.auto import tqdm

                iterator = tqdm(iterator, total=len(work), desc="autograde", unit="notebook")
            for result in iterator:
                results.append(result)
    finally:
        shutil.rmtree(_SERVER_DIR, ignore_errors=True)
    return results


def main() -> None:
    """``python -m grader.engine``: read a job from stdin, write the results to stdout (JSON)."""
    job = json.loads(sys.stdin.read())
    results = grade_all(job["workspace"], job["db_url"], [tuple(t) for t in job["tasks"]], job["jobs"],
                        job["progress"])
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    # Run the module nbgrader's configuration names (grader.engine.WarmExecute), not this
    # copy of it that `python -m` made: their globals (the workers' prefix folder) are one.
    from grader import engine

    engine.main()
