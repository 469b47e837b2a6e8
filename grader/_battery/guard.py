"""Calling a student's function without letting it disturb the grader.

Every call into student code goes through :func:`call_guarded`, which

* enforces a time limit (``SIGALRM`` in the main thread, where a Jupyter kernel
  and nbgrader run the code; elsewhere the limit cannot interrupt the call),
* captures what the call prints, at the Python level and on file descriptor 2,
  so that nothing reaches stderr (nbgrader gives 0 points to a cell that wrote
  to stderr) and the report can mention it instead,
* notes torch's own BCE kernels that run meanwhile on any thread of the process
  (:mod:`grader._battery.ownwork`),
* and, when asked, counts the ATen operators the call runs on its thread, through a
  ``TorchDispatchMode`` (to tell a vectorized implementation from a loop). The mode
  costs about 10 us on every operator, so only the calls that count pay it; it also
  names the BCE operators it sees, which is how torch's own BCE is noticed where
  ownwork cannot hook the kernels (a torch older than 2.9).
"""

from __future__ import annotations

import _signal
import contextlib
import io
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from torch.utils._python_dispatch import TorchDispatchMode

from . import ownwork

#: ATen operators that compute binary cross-entropy; a student's function must
#: not run any of them (``F.binary_cross_entropy``, ``nn.BCELoss``,
#: ``torch.binary_cross_entropy_with_logits``, ``torch._C._nn...`` and
#: ``torch.ops.aten...`` all end here).
FORBIDDEN_OPS = ("binary_cross_entropy",)


class CaseTimeout(BaseException):
    """Raised inside the student's code when a call runs past its time limit.

    A ``BaseException`` so that a student's ``except Exception`` cannot swallow it.
    """


class _OpRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.forbidden: list[str] = []

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps __torch_dispatch__ in torch._dynamo.disable,
        # whose first call imports torch._dynamo and sympy: a second of start-up
        # for every check cell. Nothing here is compiled.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        name = _NAMES.get(func)
        if name is None:  # str() of an operator reads its schema: 15 us, on every operator a call runs
            name = _NAMES[func] = str(func)  # for instance "aten.binary_cross_entropy.default"
        if any(bad in name for bad in FORBIDDEN_OPS):
            self.forbidden.append(name)
        return func(*args, **(kwargs or {}))


#: The name of each operator the recorder has seen (torch's operators are made once each).
_NAMES: dict = {}


class _LineCounter:
    """Counts the Python lines the student's own code executes (a ``sys.settrace``
    tracer): a loop over the elements in Python runs more lines on more elements, a
    vectorized function the same number. Lines of the grader, of torch, and of Python's
    and the installed packages' own code are not counted; neither are finalizers of
    unrelated objects, since the garbage collector does not run meanwhile."""

    def __init__(self) -> None:
        import torch

        self.count = 0
        grader_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        installed = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        self._skip = tuple({os.path.dirname(os.path.abspath(torch.__file__)), grader_dir, *installed})
        self._previous = None
        self._gc = False

    def _global(self, frame, event, arg):
        if os.path.abspath(frame.f_code.co_filename).startswith(self._skip):
            return None
        self.count += 1
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            self.count += 1
        return self._local

    def __enter__(self):
        import gc

        self._gc = gc.isenabled()
        gc.disable()
        self._previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc_info):
        import gc

        sys.settrace(self._previous)
        if self._gc:
            gc.enable()


@dataclass
class Call:
    """What one guarded call did."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # on the calling thread
    op_count: int = 0
    line_count: int = 0
    forbidden_ops: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


#: How many times a call's time limit, in wall-clock time, it may take when it is not using
#: the processor (sleeping, waiting): a backstop, since the limit itself is on CPU time.
WALL_CLOCK_FACTOR = 4


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise :class:`CaseTimeout` in the call once it has used ``seconds`` of CPU time (so a
    machine busy with other work never makes an honest function run out of time), or
    :data:`WALL_CLOCK_FACTOR` times as much wall-clock time (a call that sleeps)."""
    if not seconds or not _alarm_available():
        yield
        return

    def on_alarm(signum, frame):
        raise CaseTimeout(f"took longer than {seconds:g} s")

    # _signal.signal is signal.signal without its conversions to enums, which cost more than
    # the system calls (a ValueError each time the previous handler is a function)
    previous = _signal.signal(_PROF, on_alarm), _signal.signal(_ALRM, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL_CLOCK_FACTOR)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        _signal.signal(_PROF, previous[0])
        _signal.signal(_ALRM, previous[1])


_PROF, _ALRM = int(signal.SIGPROF), int(signal.SIGALRM)


def call_guarded(
    fn: Callable[..., Any],
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    time_limit: float | None = None,
    record_ops: bool = True,
    count_ops: bool = False,
    count_lines: bool = False,
) -> Call:
    """Call ``fn(*args, **kwargs)`` and return what happened, never raising
    (except ``KeyboardInterrupt``, so that a person can still stop the checks).

    ``record_ops`` notes torch's own BCE (``forbidden_ops``); ``count_ops`` counts the ATen
    operators run on this thread (``op_count``), ``count_lines`` the student's Python lines
    (``line_count``)."""
    call = Call()
    out, err = io.StringIO(), io.StringIO()
    if record_ops:
        ownwork.install()
    # the dispatch mode: to count, or to name torch's BCE where the kernels are not hooked
    dispatch = count_ops or (record_ops and not ownwork.installed())
    recorder = _OpRecorder() if dispatch else contextlib.nullcontext()
    kernels = ownwork.Watch() if record_ops else contextlib.nullcontext()
    lines = _LineCounter() if count_lines else contextlib.nullcontext()
    start, cpu_start = time.perf_counter(), time.thread_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                with _time_limit(time_limit):
                    with kernels, recorder, lines:
                        call.value = fn(*args, **(kwargs or {}))
        except KeyboardInterrupt:
            raise
        except CaseTimeout:
            call.timed_out = True
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit included
            call.error = exc
    call.seconds = time.perf_counter() - start
    call.cpu_seconds = time.thread_time() - cpu_start
    if dispatch:
        call.op_count = recorder.count
    if record_ops:
        # the operators seen on this thread, and torch's BCE kernels run on any thread
        seen_here = [] if not dispatch else [
            "aten::" + name.split(".")[1] if name.startswith("aten.") else name for name in recorder.forbidden]
        call.forbidden_ops = list(dict.fromkeys([*seen_here, *kernels.calls]))
    if count_lines:
        call.line_count = lines.count
    call.stdout, call.stderr = out.getvalue(), err.getvalue()
    call.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    return call


class StderrCapture:
    """Redirect file descriptor 2 to a temporary file while active.

    Python-level redirection does not see what C code (torch's ``TORCH_WARN``
    outside Python, a student's ``os.write(2, ...)``) writes to the descriptor;
    in a Jupyter kernel that output still reaches the notebook's stderr stream.
    """

    def __init__(self) -> None:
        self.text = ""
        self._saved: int | None = None
        self._file = None

    def __enter__(self) -> "StderrCapture":
        try:
            fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
            sys.__stderr__ and sys.__stderr__.flush()
            self._file = tempfile.TemporaryFile(mode="w+b")
            self._saved = os.dup(fd)
            os.dup2(self._file.fileno(), fd)
            self._fd = fd
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            self._saved = None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._saved is None:
            return
        with contextlib.suppress(Exception):
            sys.__stderr__ and sys.__stderr__.flush()
        os.dup2(self._saved, self._fd)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
