"""A notebook's share of the processors: at most its worker's cores, however many processes it starts.

The engine grades ``--jobs`` notebooks at once, each worker with ``cores // jobs`` of the
machine's cores. A notebook that starts sixty spinning processes would take the processors
from the notebooks graded beside it; so each notebook's process joins a control group of
its own, limited to its worker's share (``cpu.max`` in cgroup v2, the CFS quota in v1),
before it runs any cell, and every process it starts stays in it. Where no CPU controller
can be used (no cgroup file system, or no permission), the notebook runs at a lower
priority (``nice`` 10) instead, and the README says that then the share is not enforced.
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


def release(folder: str | None) -> None:
    """Remove a notebook's control group once its processes have ended."""
    if folder and os.path.isdir(folder):
        try:
            os.rmdir(folder)  # a control group's folder goes with rmdir alone, once it has no process
        except OSError:
            pass


def folder_of(name: str) -> str | None:
    """Where :func:`confine` put the group called ``name``, if it exists."""
    for base in (os.path.join(_V2, _GROUP), os.path.join(_V1, _GROUP)):
        if os.path.isdir(os.path.join(base, name)):
            return os.path.join(base, name)
    return None
