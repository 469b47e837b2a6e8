"""Profiling a worker's notebooks, for benchmarks/notebook_profile.py: when the engine's
environment names a folder in $BCE_ENGINE_PROFILE, each worker profiles every notebook it grades
with cProfile (its own process: the judge, nbgrader, the scan), and measures the processor time
of the notebook's process from outside, as the kernel counts it (``/proc/<pid>/schedstat``, in
nanoseconds, of its main thread): how much its cells took, one by one, and how much answering
the judge's requests took. Nothing the notebook's process says about itself is used.

The notebook's process runs a cell, sends its outputs, and, after a test cell, answers the
judge's requests. The time it used between two things the judge reads from it is therefore the
cell whose outputs came (its start too, for the first cell it runs), or the answer to a request.
The time after its last message (the end of the process) is not seen."""

from __future__ import annotations

import cProfile
import json
import os
import re

_INDEX = re.compile(rb'^\{"index": (\d+)')


def _cpu(pid: int) -> float | None:
    """The processor time the main thread of process ``pid`` has used, in seconds."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class ProcessTime:
    """The processor time of each notebook's process, split as the module says, for one
    notebook: ``cells`` {index: seconds}, ``answers`` seconds, ``first`` the index of the
    first cell it ran (whose time holds the process's start)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the notebook measured so far."""
        self.cells: dict[int, float] = {}
        self.answers = 0.0
        self.requests = 0
        self.first: int | None = None
        self._last: dict[int, float] = {}
        self._asking = False

    def _since(self, pid: int) -> float:
        now = _cpu(pid)
        if now is None:
            return 0.0
        spent = now - self._last.get(pid, 0.0)  # a forked process's count starts at 0
        self._last[pid] = now
        return spent

    def install(self) -> None:
        """Measure every :class:`execute.Channel` of this process from now on."""
        from . import execute

        ask, read = execute.Channel.ask, execute.Channel.next

        def timed_ask(channel, request, **extra):
            self._since(channel.pid)  # nothing ran: it waited for this request
            self._asking = True
            try:
                return ask(channel, request, **extra)
            finally:
                self._asking = False
                self.answers += self._since(channel.pid)
                self.requests += 1

        def timed_next(channel, *args, **kwargs):
            line = read(channel, *args, **kwargs)
            found = _INDEX.match(line) if line and not self._asking else None
            if found:
                index = int(found.group(1))
                self.first = index if self.first is None else self.first
                self.cells[index] = self.cells.get(index, 0.0) + self._since(channel.pid)
            return line

        execute.Channel.ask, execute.Channel.next = timed_ask, timed_next

    def data(self) -> dict:
        return {"cells": {str(k): v for k, v in self.cells.items()}, "answers": self.answers,
                "requests": self.requests, "first": self.first}


_measured: ProcessTime | None = None


def profiled(grade, task, folder: str):
    """``grade(task)`` under cProfile, with the processor time of its notebook's process:
    ``<student>-<assignment>.prof`` and ``.cpu.json`` in ``folder``."""
    global _measured
    if _measured is None:
        _measured = ProcessTime()
        _measured.install()
    _measured.reset()
    profile = cProfile.Profile()
    result = profile.runcall(grade, task)
    name = os.path.join(folder, f"{task[3]}-{task[2]}")
    profile.dump_stats(name + ".prof")
    with open(name + ".cpu.json", "w") as f:
        json.dump(_measured.data(), f)
    return result
