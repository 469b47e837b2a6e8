"""Running one notebook, and judging its test cells from outside it.

:func:`execute` is the trusted side of the boundary for one notebook. It starts the
notebook's process (forked by :mod:`grader.instructor.engine.forker`, confined by
:mod:`grader.instructor.engine.sandbox`) with the notebook's code cells -- its test cells
without their hidden tests -- and listens to it: each cell's outputs come back as a
message. After each autograded test cell, the notebook's process waits for the judge:
here, in a process no student code has run in, every check the whole test cell calls is
run (:mod:`grader.instructor.verdict`), sending the battery's inputs to the notebook's
process and reading back only what the student's code returned for them. Every message
is read with a size and a time limit and parsed as data (:mod:`grader._battery.wire`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import time
from typing import TYPE_CHECKING

from ..._battery import wire
from ..._battery.answers import IN_THE_SOURCE
from .. import scan, verdict
from . import cpu, forker, prefix
from .session import OUTPUT_LIMIT, TRUNCATED

if TYPE_CHECKING:
    from .sandbox import Sandbox

#: How long after a cell's own time limit the parent waits before it calls the child dead.
GRACE_S = 15
#: The longest message a notebook's process may send about a cell (its outputs are capped
#: at OUTPUT_LIMIT characters there; this is for a process that writes to the pipe itself).
MESSAGE_LIMIT = 4 * OUTPUT_LIMIT
#: The most output a notebook's cells may bring back in all: beyond it, a cell keeps only its
#: errors (cut short), so that neither the autograded notebook nor its feedback grows without end.
NOTEBOOK_OUTPUT_LIMIT = 8 * OUTPUT_LIMIT
#: The longest answer to one of the judge's requests (a value and its gradients: the largest
#: case's three float32 tensors of 2 MiB are 8 MiB as base64).
ANSWER_LIMIT = 32 << 20
#: The checks whose own work the judge reads in the source (:mod:`grader.instructor.scan.reach`).
OWN_WORK_CHECKS = ("assert_passes",)
#: Seconds an answer may take beyond the time limit of the call it is about.
ANSWER_GRACE_S = 10


class _Stop(Exception):
    """The notebook's process must be stopped: why, in words."""


class Channel:
    """The two pipes to a notebook's process, read without trusting anything on them."""

    def __init__(self, messages: int, requests: int | None, pid: int):
        self.reader = os.fdopen(messages, "rb", buffering=0)
        self.requests = requests
        if requests is not None:
            os.set_blocking(requests, False)  # a process that reads a little, then stops, must not block the judge
        self.pid = pid
        self.buffer = bytearray()
        self.searched = 0  # how much of the buffer holds no newline
        self.dead: str | None = None
        self.told = 0  # bytes of the cells' messages read so far
        self.deadline: float | None = None  # the notebook's own (its time limit), if it has one

    def next(self, deadline: float, limit: int | None = None) -> bytes | None:
        """The next line the process writes, None at its end; ``_Stop`` past ``deadline``
        or ``limit`` bytes (default :data:`MESSAGE_LIMIT`)."""
        limit = limit or MESSAGE_LIMIT
        end = self.buffer.find(b"\n", self.searched)
        while end < 0:
            self.searched = len(self.buffer)
            if self.searched > limit:
                raise _Stop(f"it sent a message of more than {limit >> 20} MiB")
            wait = deadline - time.monotonic()
            ready, _, _ = select.select([self.reader], [], [], max(wait, 0))
            if not ready:
                raise _Stop("timeout")
            chunk = self.reader.read(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
            end = self.buffer.find(b"\n", self.searched)
        if end > limit:
            raise _Stop(f"it sent a message of more than {limit >> 20} MiB")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        self.searched = 0
        return line

    def send(self, request: dict, **extra) -> None:
        data = wire.frame(request, **extra)
        view = memoryview(data)
        deadline = self._until(30)
        while view:
            _, ready, _ = select.select([], [self.requests], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise _Stop("it stopped reading the grader's requests")
            try:
                view = view[os.write(self.requests, view[:forker.PIPE_SIZE]):]
            except BlockingIOError:
                continue

    def ask(self, request: dict, **extra) -> dict:
        """Send one request (with the fields ``extra``) and read its answer; a dead or
        misbehaving process answers nothing, and is stopped."""
        if self.dead:
            return {"refused": self.dead}
        seconds = request.get("time_limit", 5.0)
        try:
            self.send(request, **extra)
            line = self.next(self._until(float(seconds) * 3 + ANSWER_GRACE_S), ANSWER_LIMIT)
            if line is None:
                raise _Stop("the notebook's process ended while the grader was checking it")
            message = wire.loads(line)
            if not isinstance(message, dict) or "answer" not in message:
                raise wire.Unreadable("not an answer")
            return message["answer"]
        except wire.Unreadable as error:
            self.stop(f"it answered the grader with something that is not an answer ({error})")
        except (_Stop, OSError) as error:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop("it ran past the notebook's time limit while the grader was checking it")
            else:
                self.stop(str(error) if isinstance(error, _Stop) else f"its pipe failed ({error})")
        return {"refused": self.dead}

    def _until(self, seconds: float) -> float:
        """``seconds`` from now, but no later than the notebook's own deadline: the judge's
        requests count against the notebook's time limit like its cells."""
        until = time.monotonic() + seconds
        return until if self.deadline is None else min(until, self.deadline)

    def stop(self, why: str) -> None:
        self.dead = self.dead or why
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.reader.close()
        if self.requests is not None:
            try:
                os.close(self.requests)
            except OSError:
                pass


def listen(read_fd: int, pid: int, timeout: int, notebook_timeout: int | None, answer,
           requests: int | None = None) -> str | None:
    """Pass every message the process at ``pid`` writes to ``read_fd`` to ``answer`` (with
    the :class:`Channel`, to talk back), until it closes the pipe, stops answering
    (``timeout`` and a grace period without a message: killed), runs past
    ``notebook_timeout`` or sends something too large (killed). Returns why it was
    stopped, if it was, or what ``answer`` said was wrong."""
    channel = Channel(read_fd, requests, pid)
    started = time.monotonic()
    channel.deadline = started + notebook_timeout if notebook_timeout else None
    stopped = None
    try:
        while True:
            deadline = time.monotonic() + timeout + GRACE_S
            if notebook_timeout:
                deadline = min(deadline, started + notebook_timeout)
            try:
                line = channel.next(deadline)
            except _Stop as why:
                channel.stop(str(why))
                if str(why) != "timeout":
                    stopped = f"the notebook's process was stopped: {why}"
                elif notebook_timeout and time.monotonic() >= started + notebook_timeout:
                    stopped = f"the notebook ran longer than its limit of {notebook_timeout} s"
                break
            if line is None:
                break
            channel.told += len(line)
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                message = None
            try:
                if not isinstance(message, dict):
                    raise _Stop("it sent something that is not a message")
                said = answer(message, channel)
            except _Stop as why:
                channel.stop(str(why))
                said = None
            except (ValueError, KeyError, TypeError):
                said = None  # a message whose fields are not what they should be: ignored
            except Exception as error:  # noqa: BLE001 - whatever it sent, the batch goes on
                channel.stop(f"the grader could not use what it sent ({type(error).__name__})")
                said = None
            stopped = said or stopped
            if channel.dead:
                stopped = stopped or f"the notebook's process was stopped: {channel.dead}"
                break
    finally:
        channel.close()
    return stopped


@dataclasses.dataclass
class _TestCell:
    calls: list
    problem: str | None


def execute(nb, *, cwd: str, timeout: int = 30, threads: int | None = None, limits: dict | None = None,
            sandbox: "Sandbox | None" = None, notebook_timeout: int | None = None,
            shared: "prefix.SharedPrefix | None" = None, hide=None):
    """Run the code cells of ``nb`` in a process of their own, fill in their outputs as a
    Jupyter kernel would, and decide every autograded test cell with the judge.

    With ``sandbox`` (a :class:`grader.instructor.engine.sandbox.Sandbox`) the notebook runs
    confined to a copy of ``cwd``; without it, ``limits`` (the arguments of
    :func:`grader.instructor.engine.child.confine`) limit its memory, CPU time and network.
    ``hide`` removes a test cell's hidden tests (default: nbgrader's delimiters); the
    notebook's process never receives them.

    With ``shared`` (a :class:`prefix.SharedPrefix`), a notebook that begins with exactly the
    released notebook's code cells, beside exactly the released files, does not run them:
    its process is forked from one that has run them once, and their outputs are that run's.

    A process that dies, stops answering, or runs past ``notebook_timeout`` seconds ends the
    notebook: its current cell gets a ``DeadKernelError`` output and every autograded test
    cell after it an error saying it did not run, so the notebook keeps the points earned
    before. What the instructor should know is returned in
    ``nb.metadata["bce_grader"]["attention"]``.
    """
    import nbformat

    if hide is None:
        from ..plugins import HideHiddenTests

        hide = HideHiddenTests().split
    threads = threads or int(os.environ.get("BCE_ENGINE_THREADS", "1"))
    attention: list[str] = []
    tests: dict[int, _TestCell] = {}
    cells = []
    drawn = []  # the cells somebody grades: only their figures are drawn
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if isinstance(meta, dict) and (meta.get("grade") or meta.get("task")):
            drawn.append(index)
        source, subjects = cell.source, None
        if verdict.is_test_cell(cell):
            source, calls, problem = verdict.split_test_cell(cell.source, hide)
            tests[index] = _TestCell(calls or [], problem)
            subjects = sorted({s for _, _, s in calls or [] if s}) or None
            if problem:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", index)
                attention.append(f"test cell {grade_id}: {problem}")
        cells.append((index, source, subjects))
    reading = scan.Notebook(nb)
    tampering = reading.suspicious()
    if tampering:
        attention.append("code that tampers with the grader, so every check fails (an instructor can "
                         "grade by hand): " + "; ".join(tampering[:5])
                         + (f" (and {len(tampering) - 5} more)" if len(tampering) > 5 else ""))
    server = prefix.server(shared, timeout) if prefix.begins_with(nb, cells, shared, cwd) else None
    scratch = None
    reused = 0
    own_loss: set[str] = set()
    started = spawner = None
    settled = False  # whether the forker's word on how the process ended is read or left for later
    try:
        while True:
            reused = len(server.prefix) if server is not None else 0
            scratch = _scratch(cwd) if sandbox is not None else None
            if server is not None:
                server.copy_what_it_wrote(os.path.join(scratch, "work") if scratch else cwd)
            job = {"cells": cells[reused:], "drawn": drawn, "cwd": None if sandbox is not None else cwd,
                   "scratch": scratch,
                   "timeout": timeout, "threads": threads, "cores": threads, "limits": limits,
                   "cpus": cpu.processors_of_this_worker(),
                   "sandbox": dataclasses.asdict(sandbox) if sandbox is not None else None}
            spawner = server if server is not None else forker.mine()
            started = spawner.spawn(job)
            if started is not None:
                break
            if server is None:
                raise RuntimeError("the engine could not start a process for the notebook")
            # the prefix's process is gone: run the whole notebook instead
            if scratch is not None:
                _remove(scratch)
            server = None
        done: set[int] = set()

        def fill(index, message, told=0):
            cell = nb.cells[index]
            outputs = message["outputs"] if told <= NOTEBOOK_OUTPUT_LIMIT else _cut(message["outputs"])
            cell.outputs = [nbformat.from_dict(o) for o in outputs]
            cell.execution_count = message["execution_count"]
            done.add(index)

        for (index, _, _), message in zip(cells, server.prefix if server is not None else []):
            fill(index, message)

        turns = iter([i for i, _, _ in cells[reused:]])  # the order the notebook's process runs them
        serves = {i for i, _, subjects in cells if subjects}  # the test cells after which it waits for the judge

        def answer(message, channel):
            if "sandbox" in message:
                return f"the sandbox could not be set up: {wire.text(message['sandbox'], 500)}"
            index = message["index"]
            if not isinstance(index, int) or index in done or not 0 <= index < len(nb.cells) \
                    or nb.cells[index].cell_type != "code" or not isinstance(message.get("outputs"), list):
                return None
            # The engine's session sends every cell's message in turn and waits for the judge
            # after each test cell that has checks: anything else was written by the notebook's code.
            if index != next(turns, None):
                channel.stop(f"it sent the outputs of cell {index + 1} out of turn")
                return None
            if index in serves and channel.requests is not None and not message.get("serving"):
                channel.stop(f"it did not wait for the grader after cell {index + 1}")
                return None
            fill(index, message, channel.told)
            if channel.told > NOTEBOOK_OUTPUT_LIMIT:
                attention.append(f"its cells printed more than {NOTEBOOK_OUTPUT_LIMIT >> 20} MiB in all; "
                                 "from then on only their errors were kept")
            if isinstance(message.get("processes"), int) and message["processes"] > 1:
                attention.append(f"cell {index + 1} left {message['processes'] - 1} processes running "
                                 "(they were killed when the notebook ended)")
            if index in tests:
                _judge(nb.cells[index], tests[index], tampering, channel if message.get("serving") else None,
                       own_loss, reading)
                if message.get("serving") and not channel.dead:
                    channel.send({"op": "continue"})
            return None

        stopped = listen(started.messages, started.pid, timeout, notebook_timeout, answer, started.requests)
        pending = [i for i, _, _ in cells if i not in done]
        if pending:
            status, settled = spawner.wait(), True
            how = stopped or _ended(status)
            attention.append(f"the notebook stopped at cell {pending[0] + 1}: {how}")
            nb.cells[pending[0]].outputs = [nbformat.from_dict({
                "output_type": "error", "ename": "DeadKernelError",
                "evalue": f"the notebook's process ended while running this cell ({how})",
                "traceback": [f"DeadKernelError: the notebook's process ended while running this cell ({how})"]})]
            for index in pending[1:]:
                if index in tests:
                    text = f"not run: the notebook stopped at cell {pending[0] + 1} ({how})"
                    nb.cells[index].outputs = [nbformat.from_dict({
                        "output_type": "error", "ename": "NotRunError", "evalue": text,
                        "traceback": [f"NotRunError: {text}"]})]
        else:  # it has run every cell: it is ending, and the grader goes on meanwhile
            spawner.wait_later()
            settled = True
            if stopped:
                attention.append(stopped)
        attention += _what_the_outputs_say(nb)
        attention += [f"{name} called torch's own binary cross-entropy" for name in sorted(own_loss)]
    finally:
        if started is not None and not settled:
            # Something failed in the middle: the process is stopped, and the forker's word on
            # it skipped later, so that the worker's next notebook gets the process it asks for.
            try:
                os.kill(started.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            spawner.wait_later()
        if scratch is not None:
            _remove(scratch)
    nb.metadata["bce_grader"] = {"attention": list(dict.fromkeys(attention)), "shared_cells": reused}
    return nb


def _judge(cell, test: _TestCell, tampering: list[str], channel: Channel | None, own_loss: set,
           reading: "scan.Notebook") -> None:
    """Decide one test cell from outside the notebook, and give it the outputs nbgrader scores.
    ``channel`` is None when the notebook's process did not wait for the judge after it. Own work
    is read in the source (``reading``); the process's own report counts only against itself."""
    if test.problem:
        verdict.fail(cell, f"The grader could not run this test cell's checks: {test.problem}")
        return
    if not test.calls:
        return
    if channel is None:
        verdict.fail(cell, "The grader could not check this cell: the notebook's process did not wait for it")
        return
    if tampering:
        verdict.fail(cell, "The grader's own check of this cell failed:\nyour notebook reaches into the grader "
                           f"or into torch's machinery ({tampering[0]}); this check does not count it")
        return

    def ask_about(subject, check):
        uses = reading.torch_losses(subject) if subject and check in OWN_WORK_CHECKS else []
        if uses:
            own_loss.add(subject)

        def ask(request):
            found = channel.ask(request, subject=subject)
            if isinstance(found, dict) and found.get("forbidden"):
                own_loss.add(subject or "?")
            if uses and isinstance(found, dict) and request.get("op") == "call":
                found = {**found, IN_THE_SOURCE: uses}
            return found

        return ask

    try:
        problems = verdict.judge_test_cell(test.calls, ask_about)
    except Exception as error:  # noqa: BLE001 - the grader's own failure: the cell fails, the batch goes on
        channel.stop(f"the grader failed while checking a test cell ({type(error).__name__})")
        problems = [f"The grader could not finish checking this cell ({type(error).__name__}); "
                    "an instructor should look at this notebook"]
    if problems:
        verdict.fail(cell, "\n".join(problems))


#: What an error output says, and what the instructor should hear about it.
_LIMITS_HIT = (
    (("MemoryError", "can't allocate memory", "Cannot allocate memory"), "ran out of memory"),
    (("Network is unreachable", "Temporary failure in name resolution", "gaierror", "URLError"),
     "tried to use the network"),
    (("Read-only file system",), "tried to write outside its folder"),
    (("File too large",), "wrote a file larger than the limit"),
    (("No space left on device",), "filled its disk quota"),
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


def _cut(outputs: list) -> list:
    """A cell's outputs once the notebook's are over :data:`NOTEBOOK_OUTPUT_LIMIT`: its errors,
    cut short (nbgrader scores a cell by them), and a line saying the rest was dropped."""
    kept = [{"output_type": "error", "ename": str(o.get("ename", ""))[:200], "evalue": str(o.get("evalue", ""))[:2000],
             "traceback": [str(line)[:2000] for line in o.get("traceback", [])[-5:]]}
            for o in outputs if isinstance(o, dict) and o.get("output_type") == "error"]
    note = {"output_type": "stream", "name": "stdout",
            "text": f"[outputs dropped: the notebook's outputs passed {NOTEBOOK_OUTPUT_LIMIT >> 20} MiB in all]\n"}
    return [note, *kept]


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)} ({signal.Signals(os.WTERMSIG(status)).name})"
    code = os.WEXITSTATUS(status)
    if code > 128:
        return f"killed by signal {code - 128} ({signal.Signals(code - 128).name})"
    return f"exit code {code}"


def _remove(scratch: str) -> None:
    """Remove a notebook's scratch folder. A killed notebook's last process may still be
    leaving (its root is mounted on ``root/`` in a mount namespace of its own, which ends only
    when it has): the removal is tried again for a second before it gives up."""
    for _ in range(40):
        shutil.rmtree(scratch, ignore_errors=True)
        if not os.path.lexists(scratch):
            return
        time.sleep(0.025)


#: What a notebook's copy of its folder leaves out: nbgrader's copies of the assignment's
#: notebooks. The one being graded holds the instructor's test cells, hidden tests included
#: (nbgrader's ``OverwriteCells`` puts them back before ``Execute`` runs); every other
#: notebook file there was made the same way (nbgrader copies no notebook of the student's
#: or of the source folder beside them).
_LEFT_OUT = shutil.ignore_patterns("*.ipynb")


def _scratch(cwd: str) -> str:
    """A fresh folder: ``work/`` (a copy of the notebook's folder, notebooks left out:
    :data:`_LEFT_OUT`) and ``root/``."""
    import tempfile

    scratch = tempfile.mkdtemp(prefix="bce-notebook-")
    os.chmod(scratch, 0o711)
    shutil.copytree(cwd, os.path.join(scratch, "work"), symlinks=True, ignore=_LEFT_OUT)
    os.mkdir(os.path.join(scratch, "root"))
    return scratch
