"""Starting a notebook's process: confine it, keep only its two pipes open, run its cells.

A notebook's process is forked from a process that has imported torch, IPython and the
grader but has never seen a submission (:mod:`grader.instructor.engine.forker`), reads
its job (the cells to run) only after the fork, and enters the sandbox before any cell
runs. It talks to the engine through two pipes: its messages out (cell outputs, answers
to the judge) and the judge's requests in.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import traceback

from ..._battery import salt
from ..._battery.checks import JUDGED_ELSEWHERE


def _without_network() -> bool:
    """Move this process into a network namespace of its own, with no interface but a
    loopback that is down: connections fail. Needs root, or unprivileged user namespaces."""
    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(clone_newnet) == 0 or libc.unshare(clone_newuser | clone_newnet) == 0


def confine(memory_mb: int | None, cpu_seconds: int | None, network: bool) -> list[str]:
    """Limit this process (a notebook's, run without the sandbox): its address space, its CPU
    time and, unless ``network``, its network. Returns what could not be limited."""
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


def only_these_files_open(keep: tuple[int, ...]) -> None:
    """Close every file descriptor this process inherited but ``keep``; standard input,
    output and error become /dev/null. What the engine holds open (its pipes to other
    notebooks and to the workers, the gradebook's lock, the instructor's terminal) is out
    of reach, and nothing a notebook writes to file descriptors 1 and 2 reaches anyone."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    os.closerange(3, min(keep))
    for low, high in zip(sorted(keep), [*sorted(keep)[1:], 1 << 16]):
        os.closerange(low + 1, high)
    sys.stdin = open(os.devnull)


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent ends."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def settle_before_forking() -> None:
    """Before a process forks many others (the engine's first process, a shared beginning):

    * let matplotlib close the font files it keeps open. Its caches (fonts, mathtext) hold
      them in objects that reference cycles keep alive; in a process that closes every file
      it inherited (:func:`only_these_files_open`), such an object freed later would close
      whatever file has come to take its number -- a pipe to the judge, say;
    * freeze the heap (``gc.freeze``): the collections of a forked process then skip every
      object it inherited, which they would otherwise walk (300 ms for the engine's warmed-up
      heap), copying each page they touch. The garbage is collected first only where fonts
      were let go (a collection of that heap costs as much)."""
    import gc

    held = 0
    fonts = sys.modules.get("matplotlib.font_manager")
    if fonts is not None:
        held += fonts._get_font.cache_info().currsize
        fonts._get_font.cache_clear()
    mathtext = sys.modules.get("matplotlib.mathtext")
    if mathtext is not None:
        held += mathtext.MathTextParser._parse_cached.cache_info().currsize
        mathtext.MathTextParser._parse_cached.cache_clear()
    if held:
        gc.collect()
    gc.freeze()


def thread_count() -> int:
    """How many threads this process has."""
    return len(os.listdir("/proc/self/task"))


class _Cells:
    """The cells to run, handed to the session one at a time (an iterator of (index, source,
    subjects) triples). A cell not yet due -- its source, and the names its test's checks are
    given, hidden tests' included -- is kept as bytes, not as the lists and strings that a cell
    walking the stack (``traceback.walk_stack``, ``inspect``) or the garbage collector's lists
    would find by looking; each is decoded when the session asks for it, and the ones handed
    out are let go. The session needs every test cell's names when that cell comes, so they
    are in this process; a process determined to decode what is kept here still can (the
    tampering scan names the code that walks frames or the collector's objects)."""

    def __init__(self, cells):
        self._rest = b"".join(json.dumps([int(i), str(source), [str(s) for s in subjects] if subjects else None])
                              .encode() + b"\n" for i, source, subjects in cells)

    def __iter__(self):
        return self

    def __next__(self):
        if not self._rest:
            raise StopIteration
        line, _, self._rest = self._rest.partition(b"\n")
        index, source, subjects = json.loads(line)
        return index, source, subjects


class _Plan:
    """What running a notebook's cells needs of its job, and nothing more: not the job itself
    (its scratch folder, a path of the host's; its limits; every cell's subjects at once)."""

    def __init__(self, job: dict):
        self.cells = _Cells(job["cells"])
        self.threads = int(job["threads"])
        self.timeout = job["timeout"]
        self.drawn = {int(i) for i in job.get("drawn") or ()}
        self.count_processes = False


def _run(plan: _Plan, out_fd: int, in_fd: int, session=None) -> None:
    import torch

    from .session import Session

    os.environ[JUDGED_ELSEWHERE] = "1"
    # The judge's secret never reaches a notebook's process: the engine sets it after its root forker,
    # where every notebook's process comes from, has started (pool.main). One forked from a process
    # that held it (a notebook run outside the engine's pool, by a test) drops it from its environment
    # and the battery's state before any cell runs (memory it inherited may still hold a copy).
    os.environ.pop(salt.VARIABLE, None)
    salt.use(None)
    only_these_files_open((out_fd, in_fd))
    # a process the student's code forks runs at the lowest priority: however many spin, the
    # notebook's own process keeps the processor to run its cells and answer the judge (an
    # unprivileged process cannot raise its priority back)
    os.register_at_fork(after_in_child=_lowest_priority)
    torch.set_num_threads(plan.threads)
    (session or Session()).run(plan.cells, out_fd, in_fd, plan.timeout, plan.count_processes, drawn=plan.drawn)


def _lowest_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except OSError:
        pass


def _say(out_fd: int, message: dict) -> None:
    os.write(out_fd, (json.dumps(message) + "\n").encode())


def _prepare(job_fd: int, out_fd: int, in_fd: int) -> _Plan | int:
    """Read the job, then confine this process as it says. Returns what running the cells
    needs (:class:`_Plan`), in the process that is to run them; or the exit code of this
    process, when it could not confine itself or forked the one that ran them. The job is
    this function's alone: it is gone from every frame and object once it returns, before
    any cell runs.

    In the sandbox, process 1 of a new PID namespace enters it and runs the cells: this
    process, if its forker made it process 1 of a PID namespace of its own
    (:func:`forker._fork_for`), else a child it forks into one (then this one returns the
    child's exit code, 128 + the signal that killed it)."""
    job = read_job(job_fd)  # its share of the processors: its forker's group (cpu.confine_forker)
    plan = _Plan(job)
    if job["cwd"]:
        os.chdir(job["cwd"])
    if job["sandbox"] is None:
        if job["limits"]:
            confine(**job["limits"])
        return plan
    from . import sandbox

    box = sandbox.Sandbox(**job["sandbox"])
    plan.count_processes = True
    if os.getpid() == 1:  # the forker made the PID namespace: no second fork
        try:
            uid = 100000 + sandbox.outside_pid()
            sandbox.unshare(box.network, pid=False)
            sandbox.enter(box, job["scratch"], uid)
        except (sandbox.SandboxError, OSError, ValueError) as error:
            _say(out_fd, {"sandbox": str(error)})
            return 3
        return plan
    try:
        sandbox.unshare(box.network)
    except sandbox.SandboxError as error:
        _say(out_fd, {"sandbox": str(error)})
        return 3
    uid = 100000 + os.getpid()
    inner = os.fork()
    if inner == 0:  # (what it raises from here on, main reports, and it leaves: it never returns to its forker)
        try:
            sandbox.enter(box, job["scratch"], uid)
        except (sandbox.SandboxError, OSError) as error:
            _say(out_fd, {"sandbox": str(error)})
            os._exit(3)
        return plan
    os.close(out_fd)
    os.close(in_fd)
    _, status = os.waitpid(inner, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def read_job(job_fd: int) -> dict:
    """The job the engine wrote for this notebook, read after the fork."""
    with os.fdopen(job_fd, "rb") as source:
        return json.loads(source.read())


def main(job_fd: int, out_fd: int, in_fd: int, session=None) -> None:
    """In a notebook's freshly forked process: read the job, run its cells confined as it
    says, answer the judge, and leave. Never returns."""
    code = 0
    try:
        # a session of its own: no controlling terminal, so nothing it does can type into the
        # instructor's (TIOCSTI needs the terminal to be the caller's)
        os.setsid()
        plan = _prepare(job_fd, out_fd, in_fd)  # the job stays in there: no frame below the cells holds it
        if isinstance(plan, int):
            code = plan
        else:
            _run(plan, out_fd, in_fd, session)
    except BaseException:  # noqa: BLE001 - report, then leave without running the parent's code
        traceback.print_exc(file=sys.__stderr__)
        code = 1
    finally:
        os._exit(code)
