"""A notebook's share of the processors: at most its worker's cores, however many processes it starts.

The engine grades ``--jobs`` notebooks at once, each worker with ``cores // jobs`` of the
machine's cores. A notebook that starts sixty spinning processes would take the processors
from the notebooks graded beside it; so the process that forks a worker's notebooks (its
forker, :func:`grader.instructor.engine.forker.serve`) joins a control group of its own,
limited to the worker's share (``cpu.max`` in cgroup v2, the CFS quota in v1), before it
forks the first: every notebook's process starts in it, before it runs any cell, and every
process a notebook starts stays in it. A worker grades one notebook at a time, so the group
holds one notebook's processes (and its idle forker); with the sandbox, a notebook's last
process ends with the notebook. Joining a group once per forker, not once per notebook,
matters: moving a process into a group waits for the kernel's other processors to pass a
quiescent state (milliseconds, on every notebook's critical path). Where no CPU controller
can be used (no cgroup file system, or no permission), the notebooks run at a lower
priority (``nice`` 10) instead, and the README says that then the share is not enforced.

Where the machine has a processor for each of them, each worker also keeps to processors of
its own, and so do its notebooks' processes (:func:`processors_of_worker`): a worker and its
notebook take turns, each waiting for the other's answer, and on one processor each wakes the
other without an interrupt to another processor, and finds the caches as it left them.
"""

from __future__ import annotations

import os

_V2 = "/sys/fs/cgroup"
_V1 = "/sys/fs/cgroup/cpu"
_GROUP = "bce-grader"
_PERIOD = 100_000  # microseconds


def _v2_ready() -> str | None:
    """The cgroup v2 folder to create notebooks' groups in, with the cpu controller on."""
    try:
        if "cpu" not in open(os.path.join(_V2, "cgroup.controllers")).read().split():
            return None
        here = open("/proc/self/cgroup").read().split("0::", 1)[1].split("\n", 1)[0].strip() or "/"
        parent = os.path.normpath(_V2 + here)
        group = os.path.join(parent, _GROUP)
        os.makedirs(group, exist_ok=True)
        with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
            f.write("+cpu")
        with open(os.path.join(group, "cgroup.subtree_control"), "w") as f:
            f.write("+cpu")
        return group
    except (OSError, IndexError):
        return None


def _v1_ready() -> str | None:
    try:
        if not os.path.isfile(os.path.join(_V1, "cpu.cfs_quota_us")):
            return None
        group = os.path.join(_V1, _GROUP)
        os.makedirs(group, exist_ok=True)
        return group
    except OSError:
        return None


def confine(cores: float, name: str) -> str | None:
    """Move this process into a control group of its own named ``name``, limited to ``cores``
    processors. Returns the group's folder, or None when only ``nice`` could be used."""
    quota = max(int(cores * _PERIOD), 1000)
    for ready, files in ((_v2_ready, lambda: {"cpu.max": f"{quota} {_PERIOD}"}),
                         (_v1_ready, lambda: {"cpu.cfs_period_us": str(_PERIOD), "cpu.cfs_quota_us": str(quota)})):
        group = ready()
        if group is None:
            continue
        folder = os.path.join(group, name)
        try:
            os.makedirs(folder, exist_ok=True)
            for file, value in files().items():
                with open(os.path.join(folder, file), "w") as f:
                    f.write(value)
            with open(os.path.join(folder, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            return folder
        except OSError:
            release(folder)
            continue
    try:
        os.nice(10)
    except OSError:
        pass
    return None


#: The prefix of the groups' names: the forker's process id follows.
FORKER = "forker-"
#: The prefixes of the names of the groups that earlier versions made, one per notebook.
_EARLIER = ("notebook-",)


def confine_forker(cores: float) -> str | None:
    """In a forker: join a group of its own (:data:`FORKER` and its pid) limited to ``cores``
    processors, first removing the groups of forkers that have ended (:func:`sweep`).
    Returns the group's folder, or None when only ``nice`` could be used."""
    sweep()
    return confine(cores, f"{FORKER}{os.getpid()}")


def sweep() -> None:
    """Remove the groups of forkers that have ended (and those of earlier versions whose
    notebook has): a group goes only once it holds no process (the kernel refuses
    otherwise), and only if the process its name gives is gone."""
    for base in (os.path.join(_V2, _GROUP), os.path.join(_V1, _GROUP)):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            prefix = next((p for p in (FORKER, *_EARLIER) if name.startswith(p)), None)
            pid = name[len(prefix):] if prefix else ""
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # its forker is still there
            except ProcessLookupError:
                release(os.path.join(base, name))
            except OSError:
                continue


def release(folder: str | None) -> None:
    """Remove a control group once its processes have ended (the kernel refuses before)."""
    if folder and os.path.isdir(folder):
        try:
            os.rmdir(folder)  # a control group's folder goes with rmdir alone, once it has no process
        except OSError:
            pass


#: The environment variable in which a worker of the engine names the processors it keeps to.
CPUS = "BCE_ENGINE_CPUS"
_ALL: list[set[int]] = []  # the processors this process could use before it first kept to some


def processors_of_worker(index: int, threads: int, jobs: int) -> list[int]:
    """The processors the worker numbered ``index`` (from 0) of ``jobs`` keeps to with its
    notebooks, ``threads`` each: the worker and its notebook's process take turns, and on a
    processor of their own they wake each other without waking another processor, and find
    their caches as they left them. None (the scheduler places them) where there are not
    enough processors for every worker to have its own."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []
    if jobs < 2 or threads < 1 or jobs * threads > len(allowed) or not 0 <= index < jobs:
        return []
    return allowed[index * threads:(index + 1) * threads]


def processors_of_this_worker() -> list[int]:
    """The processors this worker keeps to (:func:`processors_of_worker`), as it said in
    :data:`CPUS`; none outside the engine's workers."""
    return [int(c) for c in os.environ.get(CPUS, "").split(",") if c.isdigit()]


def keep_to(cpus) -> None:
    """Keep this process, and the processes it forks from now on, to the processors ``cpus``
    (ids), those of them it may use; to all it could use at first where ``cpus`` names none."""
    try:
        if not _ALL:
            _ALL.append(set(os.sched_getaffinity(0)))
        wanted = {c for c in cpus if isinstance(c, int) and not isinstance(c, bool)} & _ALL[0] \
            if isinstance(cpus, list) else set()
        os.sched_setaffinity(0, wanted or _ALL[0])
    except (AttributeError, OSError, ValueError):
        pass
