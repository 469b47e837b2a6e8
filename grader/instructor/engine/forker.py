"""Where every notebook's process comes from: a process that has never seen a submission.

A process forked from a worker would inherit everything the worker ever held: the
notebook being graded and, in its memory, the notebooks, gradebook rows and file names
of every student graded before (``inspect.stack()`` and ``gc`` reach them). So the
engine forks notebooks from elsewhere. Before it reads which students to grade, the
engine's first process starts the *root forker*; each worker then asks it for a forker
of its own (a fresh copy of it, which never reads a submission either), and sends it
requests: "fork a notebook's process, with these pipes" and "fork a process that runs
this assignment's shared beginning" (:mod:`grader.instructor.engine.prefix`). A
notebook's process reads its own job only after the fork, from a pipe, so nothing of
it stays in the forker.

All of these processes die with their parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import sys
import traceback
from dataclasses import dataclass

from . import child, cpu

_BUFFER = 1 << 16


@dataclass
class Started:
    """A notebook's process, as its parent sees it."""

    pid: int
    messages: int  # read end of its messages (cell outputs, answers to the judge)
    requests: int  # write end of the judge's requests to it


def serve(control: socket.socket, session=None) -> None:
    """Answer ``spawn`` (and, without a session, ``prefix``) requests on ``control`` until
    it closes. Each notebook's process is forked, its pid sent back, and its end waited for
    and sent back too; requests are served one at a time. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    cores = None  # the share of the processors this forker's group has (cpu.confine_forker)
    cpus = None  # the processors its notebooks keep to
    while True:
        _reap()
        try:
            message, fds, _, _ = socket.recv_fds(control, _BUFFER, 4)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)
        request = json.loads(message)
        if request.get("op") == "spawn" and len(fds) == 3:
            wanted = request.get("cores")
            wanted = float(wanted) if isinstance(wanted, (int, float)) and 0 < wanted <= 1024 else 1.0
            if wanted != cores:  # once: every notebook's process forked from here starts in the group
                cpu.confine_forker(wanted)
                cores = wanted
            processors = request.get("cpus")
            if processors != cpus:  # the worker's processors, where it keeps to some (cpu.processors_of_worker)
                cpu.keep_to(processors)
                cpus = processors
            pid = _fork_for(bool(request.get("sandboxed")))
            if pid == 0:
                control.close()
                child.die_with_parent()
                child.main(*fds, session=session)
            for fd in fds:
                os.close(fd)
            _reply(control, {"pid": pid})
            _, status = os.waitpid(pid, 0)
            _reply(control, {"status": status})
        elif request.get("op") == "prefix" and session is None and len(fds) == 1:
            _reply(control, {"pid": _fork_prefix(request, fds[0], control)})
        else:
            for fd in fds:
                os.close(fd)
            _reply(control, {"error": "unknown request"})


_OWN_PID_NAMESPACE: list[int] = []  # this forker's own PID namespace (an open file), once it has opened it


def _fork_for(sandboxed: bool) -> int:
    """``os.fork()``; for a notebook that runs in the sandbox, where this process may (as
    root), the child is process 1 of a PID namespace of its own from the start, which the
    sandbox would otherwise make by forking the notebook's process once more (copying its
    whole address space, and tearing it down twice). This process makes the namespace for
    that one child, then comes back to its own for the next."""
    if not sandboxed or os.geteuid() != 0:
        return os.fork()
    from . import sandbox

    if not _OWN_PID_NAMESPACE:
        try:
            _OWN_PID_NAMESPACE.append(os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            _OWN_PID_NAMESPACE.append(-1)
    own = _OWN_PID_NAMESPACE[0]
    if own < 0 or sandbox.new_pid_namespace_for_children() is not None:
        return os.fork()  # the child makes the namespace itself (child._prepare)
    try:
        pid = os.fork()
    except BaseException:
        sandbox.back_to_pid_namespace(own)
        raise
    if pid:  # (the child stays in the new namespace: it is its process 1)
        sandbox.back_to_pid_namespace(own)
    return pid


def _reply(control: socket.socket, message: dict) -> None:
    """Answer on ``control``; if whoever asked is gone (its grading stopped), leave quietly."""
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        os._exit(0)


def _fork_prefix(request: dict, fd: int, control: socket.socket) -> int:
    """Fork the process of a shared beginning (:func:`prefix.run_prefix`), talking on ``fd``."""
    from . import prefix

    pid = os.fork()
    if pid == 0:
        control.close()
        child.die_with_parent()
        prefix.run_prefix(request, socket.socket(fileno=fd))
    os.close(fd)
    return pid


def _reap() -> None:
    """Collect the processes of shared beginnings that have ended since (nobody waits for them)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Forker:
    """A worker's handle on its own forker."""

    def __init__(self, control: socket.socket, pid: int | None = None):
        self.control, self.pid = control, pid
        self.unread = 0  # wait statuses the forker has sent (or will) that nobody read yet (wait_later)

    def ask(self, request: dict, fds: list[int]) -> dict | None:
        """Send ``request`` with the file descriptors ``fds``; the forker's reply, or None if it is gone."""
        return self.answer() if self.tell(request, fds) else None

    def tell(self, request: dict, fds: list[int]) -> bool:
        """Send ``request`` with ``fds``, without waiting for the reply (:meth:`answer` reads it,
        before anything else is asked); False if the forker is gone."""
        try:
            socket.send_fds(self.control, [json.dumps(request).encode()], fds)
        except OSError:
            return False
        return True

    def answer(self) -> dict | None:
        """The reply to what was told last; None if the forker is gone."""
        try:
            while self.unread:  # the forker answers in order: the statuses left unread come first
                self.control.recv(_BUFFER)
                self.unread -= 1
            reply = self.control.recv(_BUFFER)
        except OSError:
            return None
        return json.loads(reply) if reply else None

    def spawn(self, job: dict) -> Started | None:
        """Fork a notebook's process for ``job`` (see :func:`child.main`); None if the forker is gone."""
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        in_r, in_w = os.pipe()
        for fd in (out_w, in_w):
            _widen(fd)
        reply = self.ask({"op": "spawn", "cores": job.get("cores") or 1, "cpus": job.get("cpus") or [],
                          "sandboxed": job.get("sandbox") is not None},
                         [job_r, out_w, in_r])
        for fd in (job_r, out_w, in_r):
            os.close(fd)
        if not reply or "pid" not in reply:
            for fd in (job_w, out_r, in_w):
                os.close(fd)
            return None
        with os.fdopen(job_w, "wb") as pipe:
            try:
                pipe.write(json.dumps(job).encode())
            except BrokenPipeError:
                pass
        return Started(reply["pid"], out_r, in_w)

    def wait(self) -> int:
        """The wait status of the notebook's process last spawned."""
        reply = self.answer()
        return reply["status"] if reply and "status" in reply else signal.SIGKILL

    def wait_later(self) -> None:
        """Leave the wait status of the notebook's process last spawned unread: its process is
        ending (it has sent all it will), and the grader goes on meanwhile. The forker takes
        no other request before it has reaped it; the next reply read skips the status."""
        self.unread += 1

    def close(self) -> None:
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


#: The size asked for the pipes to and from a notebook's process (Linux's limit for any user,
#: /proc/sys/fs/pipe-max-size, is 1 MiB by default): the judge's largest requests and most
#: answers then go through in one write, without waiting for the other side to read.
PIPE_SIZE = 1 << 20


def _widen(fd: int) -> None:
    """Ask for a pipe of :data:`PIPE_SIZE` bytes (keeping the default where that is refused)."""
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except OSError:
        pass


def _fork_server(target) -> tuple[socket.socket, int]:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            child.die_with_parent()
            # a forker holds nothing but its socket: no pipe, file or lock of whoever started it
            keep = theirs.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, 1 << 16)
            target(theirs)
        except BaseException:  # noqa: BLE001
            traceback.print_exc(file=sys.__stderr__)
        finally:
            os._exit(1)
    theirs.close()
    return mine, pid


def _root(control: socket.socket, warm=None, more=None) -> None:
    """The root forker: for every socket a worker sends, fork a forker that serves it; asked
    by the engine's first process, fork the process of a shared beginning (and say its pid),
    or call ``more`` with the request's released notebooks (the warm-up worth it only for a
    run of many notebooks). ``warm``, when given, is called first; the heap is settled after
    each. What is asked meanwhile waits on the socket."""
    if warm is not None:
        warm()
        child.settle_before_forking()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its forkers are reaped by the kernel
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, _BUFFER, 1)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)
        if message.startswith(b"{"):
            request = json.loads(message)
            if request.get("op") == "prefix" and len(fds) == 1:
                _reply(control, {"pid": _fork_prefix(request, fds[0], control)})
            elif request.get("op") == "more" and not fds and more is not None:
                more(request.get("released", []))
                child.settle_before_forking()
                _reply(control, {"more": True})
            else:
                for fd in fds:
                    os.close(fd)
                _reply(control, {"error": "unknown request"})
            continue
        if not fds:
            os._exit(0)
        if os.fork() == 0:
            control.close()
            child.die_with_parent()
            serve(socket.socket(fileno=fds[0]))
        os.close(fds[0])


def root() -> Forker | None:
    """The root forker, to ask from the engine's first process (before its workers fork)."""
    return Forker(_ROOT) if _ROOT is not None else None


#: This process's root forker's socket, once started (:func:`start_root`), and its own forker.
_ROOT: socket.socket | None = None
_MINE: Forker | None = None


def start_root(warm=None, more=None) -> None:
    """Start the root forker from this process, which must not have seen a submission; it
    calls ``warm`` before it serves, and ``more`` when asked (see :func:`_root`)."""
    global _ROOT
    if _ROOT is None:
        _ROOT, _ = _fork_server(functools.partial(_root, warm=warm, more=more))


def mine() -> Forker:
    """This process's forker: asked of the root forker when there is one (a worker of the
    engine), else forked from this process (a notebook graded outside the engine's pool)."""
    global _MINE
    if _MINE is None:
        if _ROOT is not None:
            control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            socket.send_fds(_ROOT, [b"forker"], [theirs.fileno()])
            theirs.close()
            _MINE = Forker(control)
        else:
            control, pid = _fork_server(serve)
            _MINE = Forker(control, pid)
    return _MINE


def forget() -> None:
    """End this process's own forker (the next :func:`mine` starts another)."""
    global _MINE
    if _MINE is not None:
        _MINE.close()
        _MINE = None
