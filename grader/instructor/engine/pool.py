"""The engine's first process: start the root forker, warm up, then grade in parallel workers.

Plain ``nbgrader autograde`` starts a kernel for every notebook and imports torch there:
seconds each, most of a notebook's grading time. Here, first thing, this process (which has
imported torch and nothing else heavy) starts the root forker
(:mod:`grader.instructor.engine.forker`) -- before it has read anything, so that no process
that runs student code holds anything of anyone's submission. The forker imports what
notebooks use (IPython, matplotlib, the grader), single-threaded (a process that has used
OpenMP's thread team cannot fork safely: its children hang at their first parallel region),
while this process, on another core, imports what the judge uses (nbgrader). Told how many
notebooks it will grade, and the course's autograding secret (which it sets in its judge
only, :mod:`grader._battery.salt`: the root forker, and so every notebook's process, started
before this process read it), this process computes ahead what they all need (the battery run
once, torch's answers to every case, on inputs drawn with the secret, and what the other
checks of the released notebooks share, such as the capstone's trained models; for four
notebooks or more, when the forker also warms up more) and freezes its heap. For that many, it
reads its job first and asks the root forker for the shared beginnings of the assignments with
enough submissions (:mod:`grader.instructor.engine.prefix`), which the forker starts once it has
warmed up and which run meanwhile; for fewer, it starts them after. Then it forks ``--jobs``
workers, each running nbgrader's own autograde with
:class:`~grader.instructor.engine.preprocessor.WarmExecute` and taking turns to write to the
gradebook.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

from .. import patches
from . import child, forker, prefix


#: The fewest notebooks for which the engine computes torch's answers to every check before
#: its workers fork; for fewer, each worker computes those its notebooks ask for.
PREPARE_FROM = 4


#: The modules IPython imports when a shell starts (session.Session: its completer, magics,
#: in-memory history, inline figures): 25 ms of each notebook's process that runs whole.
_WHAT_A_SHELL_IMPORTS = ("bdb", "IPython.core.application", "IPython.core.completer", "IPython.core.completerlib",
                         "IPython.core.magics", "IPython.core.magics.execution", "IPython.core.oinspect",
                         "IPython.core.pylabtools", "IPython.core.logger", "IPython.core.crashhandler", "sqlite3",
                         "matplotlib_inline.backend_inline")


def warm_up(notebooks: int | None = None) -> None:
    """Import what notebooks and the judge use, then compute ahead what a run of ``notebooks``
    notebooks (None: unknown, many) will need: for a process that both forks the notebooks'
    processes and judges them (the engine's first process starts a root forker that warms up
    on its own instead, :func:`main`)."""
    import_what_notebooks_use()
    if notebooks is None or notebooks >= PREPARE_FROM:
        import_what_many_notebooks_use()
    import_what_the_judge_uses()
    compute_ahead(notebooks)


def import_what_notebooks_use() -> None:
    """What a notebook's process needs, however small the run: torch (on one thread), IPython,
    matplotlib and the grader (with what its explorers and reports import only when a cell
    shows one: a module imported in every notebook's process is compiled in each where Python
    may not write its bytecode cache), torch's BCE kernels hooked, the capstone's data read,
    and what tracebacks show read. The root forker runs this (:func:`main`): every notebook's
    process inherits it."""
    import torch

    torch.set_num_threads(1)
    import IPython  # noqa: F401
    import matplotlib

    matplotlib.use("module://matplotlib_inline.backend_inline")
    import matplotlib.pyplot  # noqa: F401

    from grader import _widget, datasets, explore, imbalance  # noqa: F401
    from grader._battery import capstone, checks, exercises, html, judge, ownwork  # noqa: F401

    from . import sandbox, session  # noqa: F401

    for name in _WHAT_A_SHELL_IMPORTS:  # what a notebook's shell (session.Session) imports as it starts
        importlib.import_module(name)
    ownwork.install()  # torch's BCE kernels hooked once, here: every notebook's process inherits the hooks
    # The capstone's data, read and checked once here rather than in every notebook that uses it.
    try:
        datasets.breast_cancer_split(), datasets.digits_split()
    except datasets.DataError:
        pass  # a notebook that reads the data gets the loader's own message
    _read_what_tracebacks_show()


def import_what_many_notebooks_use(released=()) -> None:
    """What the root forker does when told that many notebooks are coming (a notebook graded
    alone does not wait for it): import torch's compiler (``torch._dynamo``), which torch
    imports the first time a process builds an optimizer (0.7 s; notebooks 02 and 06 train
    models), and have the course modules that the ``released`` notebooks (paths) import
    compute ahead what those notebooks ask of them (:func:`prefix.prepare_what_it_imports`),
    and transform their code cells as IPython's shell does before it runs them
    (:func:`session.transform_ahead`). Every notebook's process then finds all this done,
    those that run whole included, where each would do it again."""
    import torch._dynamo  # noqa: F401

    from . import session

    for path in released:
        sources = _code_cells(path)  # (none: only a head start, the notebooks run as they would without it)
        prefix.prepare_what_it_imports(sources)
        session.transform_ahead(sources)


def import_what_the_judge_uses() -> None:
    """What the workers need to grade: torch (on one thread), nbgrader (checked against what
    :mod:`~grader.instructor.patches` patches), the battery, the scan and the verdict. What
    only some judgements use (the capstone's data, matplotlib) each worker imports when a
    notebook first needs it."""
    import torch

    torch.set_num_threads(1)
    import nbgrader.api  # noqa: F401
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401 - the verdict reads cells with it

    from grader._battery import checks, exercises, judge, ownwork  # noqa: F401

    from .. import scan, verdict  # noqa: F401

    ownwork.install()
    patches.in_the_zygote()


def compute_ahead(notebooks: int | None, released=()) -> None:
    """For a run of at least :data:`PREPARE_FROM` notebooks (or an unknown number): run the
    battery once, and compute torch's answer to every case the judges ask, once, here, so that
    every worker inherits them (on the CPU: CUDA cannot start in a process that forks; a
    worker computes those once), with what the other checks that the ``released`` notebooks
    (paths) call compute the same for every student (:func:`checks.prepare`: the capstone's
    trained models, its data). Then settle the heap before forking
    (:func:`child.settle_before_forking`)."""
    if notebooks is None or notebooks >= PREPARE_FROM:
        import torch.nn.functional as F

        import grader
        from grader._battery import checks, exercises, references

        def binary_cross_entropy(input, target, weight=None, reduction="mean"):
            return F.binary_cross_entropy(input, target, weight=weight, reduction=reduction)

        grader.check(binary_cross_entropy, devices=["cpu"])
        references.prepare(["cpu"])
        exercises.prepare()
        checks.prepare(checks.called_in([code for path in released for code in _code_cells(path)]))
    child.settle_before_forking()


def _code_cells(path: str) -> list[str]:
    """The sources of the code cells of the notebook at ``path``; none where it cannot be read."""
    try:
        cells = json.loads(Path(path).read_text()).get("cells", [])
        return ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def _read_what_tracebacks_show() -> None:
    """Format, once, a traceback as IPython formats a cell's error. IPython reads and parses
    the source of every module a traceback passes through (stack_data, executing, inspect)
    and keeps what it read; the processes forked from here find it read, and a notebook's
    first error costs a few milliseconds instead of a few hundred."""
    from IPython.core import ultratb

    def binary_cross_entropy(input, target):
        raise NotImplementedError

    formatter = ultratb.AutoFormattedTB(mode="Context", tb_offset=1)
    for fail in (lambda: binary_cross_entropy(None, None), lambda: 1 / 0):
        try:
            fail()
        except Exception:  # noqa: BLE001 - the point: format what it raised
            formatter.structured_traceback(*sys.exc_info())


_API: dict = {}


def _grade(task):
    """In a worker: autograde one submission with nbgrader."""
    workspace_root, db_url, assignment, student = task
    from ..workspace import Workspace

    api = _API.get((workspace_root, db_url))
    if api is None:
        api = _API[(workspace_root, db_url)] = Workspace(Path(workspace_root), db_url).api(warm=True)
    result = api.autograde(assignment, student, force=True, create=True)
    return student, assignment, bool(result.get("success")), (result.get("log") or "") + (result.get("error") or "")


def _init_worker(lock_path: str, threads: int, jobs: int) -> None:
    import multiprocessing
    import signal

    from . import cpu

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine stops its workers itself, without a traceback each
    os.environ["BCE_ENGINE_THREADS"] = str(threads)
    identity = multiprocessing.current_process()._identity  # the pool's number for this worker, from 1
    cpus = cpu.processors_of_worker(identity[0] - 1 if identity else 0, threads, jobs)
    if cpus:
        os.environ[cpu.CPUS] = ",".join(map(str, cpus))
        cpu.keep_to(cpus)
    patches.in_a_worker(lock_path)


def grade_all(workspace_root: str, db_url: str | None, tasks: list[tuple[str, str]], jobs: int,
              progress: bool, begun: bool = False) -> list[tuple[str, str, bool, str]]:
    """Autograde ``tasks`` ((student, assignment) pairs) in ``jobs`` workers. Warms up and
    starts the root forker first, unless :func:`main` already has, and the shared beginnings,
    unless ``begun`` says it has (:func:`begin`)."""
    import multiprocessing
    import warnings

    from sqlalchemy.exc import SAWarning

    # nbgrader's gradebook makes SQLAlchemy warn about its sessions on every submission: noise
    warnings.filterwarnings("ignore", category=SAWarning)
    if forker._ROOT is None:
        warm_up(len(tasks))
        forker.start_root()
    jobs = max(1, min(jobs, len(tasks)))  # no worker without a notebook to grade
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # one writer at a time per gradebook (SQLite allows one)
    lock_path = os.path.join(workspace_root, f".gradebook-{zlib.crc32((db_url or '').encode()):08x}.lock")
    context = multiprocessing.get_context("fork")
    work = [(workspace_root, db_url, a, s) for s, a in tasks]
    results = []
    try:
        if not begun:
            begin(workspace_root, db_url, tasks)
        with context.Pool(jobs, initializer=_init_worker, initargs=(lock_path, threads, jobs)) as pool:
            iterator = _graded_in_turn(pool, work, jobs)
            if progress:
                from tqdm.auto import tqdm

                iterator = tqdm(iterator, total=len(work), desc="autograde", unit="notebook")
            for result in iterator:
                results.append(result)
    except KeyboardInterrupt:  # asked to stop: the pool's workers are ended, what they finished is kept
        raise Stopped(results) from None
    finally:
        _remove_beginnings_folder()
    return results


#: How many notebooks per worker, at the end of a run, are started longest first.
TAIL_PER_WORKER = 2


def _graded_in_turn(pool, work: list, jobs: int):
    """The results of :func:`_grade` over ``work``, as they come. Each worker has one notebook
    queued behind the one it grades, in the order given; but the last ``TAIL_PER_WORKER``
    notebooks per worker are taken longest first (:func:`_next`), so that a run ends with
    short notebooks, not with one worker grading a long one while the others have nothing
    left to do."""
    import queue

    finished: queue.SimpleQueue = queue.SimpleQueue()
    waiting, seconds, given = list(work), {}, 0
    while waiting or given:
        while waiting and given < 2 * jobs:
            task = waiting.pop(_next(waiting, seconds, TAIL_PER_WORKER * jobs))
            pool.apply_async(_grade_timed, (task,), callback=finished.put,
                             error_callback=lambda error: finished.put((None, 0.0, error)))
            given += 1
        task, spent, result = finished.get()
        given -= 1
        if task is None:
            raise result
        total = seconds.setdefault(task[2], [0.0, 0])
        total[0], total[1] = total[0] + spent, total[1] + 1
        yield result


def _next(waiting: list, seconds: dict, tail: int) -> int:
    """Which notebook of ``waiting`` (tasks, in order) to start next: the first, until only
    ``tail`` are left; then the one whose assignment's notebooks have taken longest on average
    so far (``seconds``: assignment -> [total, count]; one not graded yet counts as longest)."""
    if len(waiting) > tail:
        return 0

    def expected(index: int) -> float:
        total, count = seconds.get(waiting[index][2], (0.0, 0))
        return total / count if count else float("inf")

    return max(range(len(waiting)), key=expected)


#: A folder in which each worker writes a profile of every notebook it grades, when the engine's
#: environment names one (:mod:`~grader.instructor.engine.profiling`).
PROFILE = "BCE_ENGINE_PROFILE"


def _grade_timed(task):
    """In a worker: :func:`_grade`, with the task and how long it took."""
    import time

    began = time.perf_counter()
    folder = os.environ.get(PROFILE)
    if folder:
        from . import profiling

        result = profiling.profiled(_grade, task, folder)
    else:
        result = _grade(task)
    return task, time.perf_counter() - began, result


def begin(workspace_root: str, db_url: str | None, tasks, wait: bool = True) -> list:
    """Start, from the root forker, the shared beginning of every notebook of the assignments
    with enough submissions to grade: they run while the workers start (or, from :func:`main`,
    while this process computes ahead), once for all of them. Without ``wait``, the root forker
    is only told, and the beginnings returned wait for :func:`prefix.started` before any worker
    forks."""
    from collections import Counter

    from ..workspace import Workspace
    from .preprocessor import beginnings_worth_sharing

    if prefix.SERVER_DIR is None:
        prefix.SERVER_DIR = tempfile.mkdtemp(prefix="bce-engine-")  # the beginnings' processes keep their folders here
    config = Workspace(Path(workspace_root), db_url).config()
    beginnings = beginnings_worth_sharing(config, Counter(a for _, a in tasks))
    told = prefix.start_for_workers(beginnings, forker.root(), wait)
    _scan_the_released([shared.notebook for shared, _ in beginnings])
    return told


def _remove_beginnings_folder() -> None:
    if prefix.SERVER_DIR is not None:
        shutil.rmtree(prefix.SERVER_DIR, ignore_errors=True)
        prefix.SERVER_DIR = None


def _scan_the_released(notebooks) -> None:
    """Scan each released notebook (paths) once, here, before the workers fork: the scan keeps
    what it read of each cell, and every worker inherits it for the course's cells of every
    submission (a notebook scanned already takes milliseconds)."""
    import nbformat

    from .. import scan

    for path in notebooks:
        try:
            scan.suspicious(nbformat.read(path, as_version=4))
        except Exception:  # noqa: BLE001 - only a head start: each submission is scanned in full anyway
            pass


def _ahead(line: str) -> dict:
    """The first line the command sends: JSON, {"notebooks": how many, "released": the released
    notebooks of their assignments (paths), "salt": the autograding secret}; what cannot be read
    counts as an unknown number (and no secret)."""
    try:
        ahead = json.loads(line)
    except ValueError:
        return {"notebooks": None}
    if not isinstance(ahead, dict) or not isinstance(ahead.get("notebooks"), int):
        return {"notebooks": None}
    released = ahead.get("released")
    found = {"notebooks": ahead["notebooks"],
             "released": [p for p in released if isinstance(p, str)] if isinstance(released, list) else []}
    if isinstance(ahead.get("salt"), str) and ahead["salt"]:
        found["salt"] = ahead["salt"]
    return found


def _readable(stream) -> bool:
    """Whether ``stream`` (nothing read from it yet) has something to read now."""
    import select

    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _tell_the_root_forker(first: str) -> tuple[dict, bool]:
    """The command's first line read (:func:`_ahead`), and whether many notebooks come; if so,
    the root forker is told to warm up more for them (:func:`import_what_many_notebooks_use`),
    and answers later."""
    ahead = _ahead(first) if first else {"notebooks": 0}
    notebooks = ahead.get("notebooks")
    many = notebooks is None or notebooks >= PREPARE_FROM
    if many:
        forker.root().tell({"op": "more", "released": ahead.get("released", [])}, [])
    return ahead, many


class Stopped(Exception):
    """SIGINT while grading: ``results`` holds the submissions finished (graded and saved)."""

    def __init__(self, results: list):
        super().__init__(f"stopped after {len(results)} submissions")
        self.results = results


def main() -> None:
    """``python -m grader.instructor.engine``: start the root forker (which warms up what
    notebooks use), import what the judge uses, read from stdin a first line saying how many
    notebooks to grade (not which: the command that starts the engine starts it first, so
    that both warm up at once), compute ahead as much as they need (and have the root forker
    warm up more), then read the job (JSON, to the end of stdin) and write the results to
    stdout (JSON).

    The autograding secret (:mod:`grader._battery.salt`) comes on that first line: read after
    the root forker has started, so that no notebook's process, all of which come from it, ever
    holds it; it is set here, in the judge, before torch's answers are computed ahead (with the
    inputs it draws), and every worker inherits it."""
    from ..._battery import salt

    try:
        # never in the environment the root forker inherits (the command that starts this one leaves
        # it out, and sends it on stdin)
        os.environ.pop(salt.VARIABLE, None)
        # The root forker first, before this process has read anything: it warms up what
        # notebooks use on one core while this process imports what the judge uses on another.
        forker.start_root(warm=import_what_notebooks_use, more=import_what_many_notebooks_use)
        # How many notebooks come: read now if the command has said it already (then the root
        # forker warms up for them while this process imports), else after the imports.
        first = sys.stdin.readline() if _readable(sys.stdin) else None
        if first is not None:
            ahead, many = _tell_the_root_forker(first)
        import_what_the_judge_uses()
        if first is None:
            first = sys.stdin.readline()
            ahead, many = _tell_the_root_forker(first)
        if not first:
            return  # nothing to grade after all: the command that started the engine has closed its end
        salt.use(ahead.get("salt"))  # the judge's alone: the root forker has started already
        job, told = None, []
        if many:
            # The job now, and the shared beginnings asked of the root forker: it forks them once it
            # has warmed up, and they run on its core while this process computes ahead.
            job = json.loads(sys.stdin.read())
            told = begin(job["workspace"], job["db_url"], [tuple(t) for t in job["tasks"]], wait=False)
        compute_ahead(ahead.get("notebooks"), ahead.get("released", []))
        if many:
            _scan_the_released(ahead.get("released", []))  # while the root forker warms up
            child.settle_before_forking()
            forker.root().answer()  # its warm-up done: it answers in the order it was asked
            for beginning in told:
                prefix.started(beginning, forker.root())
        if job is None:
            job = json.loads(sys.stdin.read())
        results, interrupted = grade_all(job["workspace"], job["db_url"], [tuple(t) for t in job["tasks"]],
                                         job["jobs"], job["progress"], begun=many), False
    except Stopped as stopped:  # SIGINT from the command that started this one (its Ctrl-C)
        results, interrupted = stopped.results, True
    except KeyboardInterrupt:  # before any grading
        results, interrupted = [], True
    finally:
        _remove_beginnings_folder()
    sys.stdout.write(json.dumps({"results": results, "interrupted": interrupted}))
