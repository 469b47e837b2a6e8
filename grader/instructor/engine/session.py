"""Inside the notebook's process: an IPython session that runs cells and answers the judge.

This is the untrusted side of the boundary. Everything here runs in the process that
runs the student's code, confined by :mod:`grader.instructor.engine.sandbox`, and may be
changed by that code: nothing it sends is believed. It runs the cells it is given
(test cells with their hidden tests already removed), reports each cell's outputs, and,
after each autograded test cell, answers the judge's requests about the student's code
that cell names -- "call it on these inputs" -- with :func:`grader._battery.observe.answer`,
until the judge says to go on.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from ..._battery import observe, wire
from ..._battery.checks import NOT_DRAWN, figures_drawn

#: Characters of output (as JSON) one cell may produce; the rest is dropped, with a note.
OUTPUT_LIMIT = 1 << 20
TRUNCATED = "output truncated"
#: The longest request the judge sends (its inputs: a few large tensors).
REQUEST_LIMIT = 64 << 20


class CellTimeoutError(Exception):
    """A cell ran longer than its time limit (the name nbgrader records)."""


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

        def should_run_async(self, raw_cell, **kwargs):
            # IPython compiles every cell once more, only to see whether it awaits at top level:
            # a released cell's answer was found ahead (transform_ahead)
            ahead = _ASYNC.get(kwargs.get("transformed_cell"))
            if ahead is not None and self.autoawait and kwargs.get("preprocessing_exc_tuple") is None:
                return ahead
            return super().should_run_async(raw_cell, **kwargs)

    # The history (In, Out, _i, %history) lives in memory: no file of the grader's user is
    # written, and no history thread runs in a process that will fork.
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    # the singleton: IPython.display.display() and the inline backend find it by Shell.instance()
    shell = Shell.instance(config=config, displayhook_class=Hook, display_pub_class=Publisher, colors="NoColor",
                           compiler_class=_compiler_class())
    shell.compile.shell = shell
    _transformed_ahead(shell.input_transformer_manager)
    return shell


#: Released code cells' sources, as IPython's static input transformations (magics, shell
#: escapes, prompts: ``TransformerManager``) leave them, filled before notebooks' processes
#: fork (:func:`transform_ahead`); and the transformations they were made with.
_TRANSFORMED: dict[str, str] = {}
_MADE_WITH: tuple = ()
#: Whether IPython runs each of those transformed sources as a coroutine (a top-level ``await``):
#: a question of the source alone, which IPython answers by compiling it.
_ASYNC: dict[str, bool] = {}


def _transformations(manager) -> tuple:
    return (tuple(map(id, manager.cleanup_transforms)), tuple(map(id, manager.line_transforms)),
            tuple(map(id, manager.token_transformers)))


def transform_ahead(sources) -> None:
    """Transform each of ``sources`` (code cells every notebook of a run has) as IPython's
    static input transformations do, once, before the notebooks' processes fork, see whether
    IPython would run it as a coroutine, and compile it as a shell compiles a cell
    (:func:`_compile_ahead`): their shells then find this done (milliseconds a notebook of
    tokenizing and compiling). All of it depends on the source alone."""
    from IPython.core.async_helpers import _should_be_async
    from IPython.core.inputtransformer2 import TransformerManager

    global _MADE_WITH
    manager = TransformerManager()
    _MADE_WITH = _transformations(manager)
    for source in sources:
        if source not in _TRANSFORMED:
            try:
                _TRANSFORMED[source] = transformed = manager.transform_cell(source)
                _ASYNC[transformed] = bool(_should_be_async(transformed))
                if not _ASYNC[transformed]:
                    _compile_ahead(transformed)
            except Exception:  # noqa: BLE001 - transformed where it runs, which then says why it fails
                pass


#: Released cells compiled ahead as IPython compiles them (:func:`transform_ahead`), under a
#: stand-in file name: each transformed source's statements (by the source and the compiler's
#: flags), and each statement's code (by the statement, how IPython runs it, and the flags).
_PARSED: dict[tuple[str, int], tuple] = {}
_CODE: dict[tuple[int, str, int], object] = {}
_AHEAD = "<compiled ahead>"


def _compile_ahead(transformed: str) -> None:
    """Parse ``transformed`` and compile its statements as a shell's compiler does when it runs
    it as a cell (each statement by itself; a last expression to be shown, the rest to be run)."""
    import ast

    from IPython.core.compilerop import CachingCompiler

    flags = CachingCompiler().flags
    module = compile(transformed, _AHEAD, "exec", flags | ast.PyCF_ONLY_AST, 1)
    body = tuple(module.body)
    with_await = flags | getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)  # the shell's autoawait
    codes = {}
    for index, node in enumerate(body):
        shown = index == len(body) - 1 and isinstance(node, ast.Expr)
        mode, mod = ("single", ast.Interactive([node])) if shown else ("exec", ast.Module([node], []))
        codes[(id(node), mode, with_await)] = compile(mod, _AHEAD, mode, with_await, True)
    # all or nothing, and the statements kept with their code: a statement's id names it only
    # while it lives
    _PARSED[(transformed, flags)] = body
    _CODE.update(codes)


def _compiler_class():
    """IPython's compiler, taking the statements and code of a released cell compiled ahead
    while the shell changes no cell's statements (it has no AST transformer): the code is the
    same, named after the cell. Any other cell, or flags, is compiled as IPython compiles it."""
    import ast
    import codeop

    from IPython.core.compilerop import CachingCompiler

    class Compiler(CachingCompiler):
        shell = None

        def _plain(self) -> bool:
            return self.shell is not None and not self.shell.ast_transformers

        def ast_parse(self, source, filename="<unknown>", symbol="exec"):
            body = _PARSED.get((source, self.flags)) if symbol == "exec" else None
            if body is None or not self._plain():
                return super().ast_parse(source, filename, symbol)
            return ast.Module(body=list(body), type_ignores=[])

        def __call__(self, source, filename, symbol, **kwargs):
            body = getattr(source, "body", None)
            code = None
            if not kwargs and isinstance(source, (ast.Module, ast.Interactive)) and len(body) == 1 and self._plain():
                code = _CODE.get((id(body[0]), symbol, self.flags))
            if code is None:
                return super().__call__(source, filename, symbol, **kwargs)
            code = _named(code, filename)
            for feature in codeop._features:  # as codeop's compiler: a __future__ import stays on
                if code.co_flags & feature.compiler_flag:
                    self.flags |= feature.compiler_flag
            return code

    return Compiler


def _named(code, filename: str):
    """``code`` (and the code it holds: its functions, classes, comprehensions) with the file
    name ``filename``."""
    consts = tuple(_named(c, filename) if hasattr(c, "co_filename") else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _transformed_ahead(manager) -> None:
    """Have ``manager`` (a shell's) take a source transformed ahead (:func:`transform_ahead`)
    while it has the transformations it was made with; a cell that changed them (added its
    own) has every later cell transformed anew, by them."""
    transform = manager.transform_cell

    def transform_cell(cell):
        if _TRANSFORMED and _transformations(manager) == _MADE_WITH:
            found = _TRANSFORMED.get(cell)
            if found is not None:
                return found
        return transform(cell)

    manager.transform_cell = transform_cell


def _figures_drawn_only_where_graded() -> None:
    """Figures are made as the cell says, but drawn (rendered to an image for the notebook)
    only in the cells somebody grades (:func:`grader._battery.checks.figures_drawn`): drawing is
    most of the time a notebook's explanations take, and no score depends on it. A figure
    not drawn shows one line in its place, and is not laid out either (``tight_layout``).
    IPython's image formatters call these two functions of ``pylabtools`` (also when a cell
    chooses other formats)."""
    from IPython.core import pylabtools
    from matplotlib.figure import Figure

    def when_drawn(draw):
        if getattr(draw, "only_where_graded", False):
            return draw

        def maybe(figure, *args, **kwargs):
            return draw(figure, *args, **kwargs) if figures_drawn() else None

        maybe.only_where_graded = True
        return maybe

    pylabtools.print_figure = when_drawn(pylabtools.print_figure)
    pylabtools.retina_figure = when_drawn(pylabtools.retina_figure)
    # the layout only places what is drawn (the subplots' margins): a figure not drawn needs none
    Figure.tight_layout = when_drawn(Figure.tight_layout)


def _say_what_is_not_drawn(shell) -> None:
    """A figure not drawn shows its usual text, and says why there is no image."""
    from matplotlib.figure import Figure

    def text(figure, printer, cycle):
        printer.text(repr(figure) if figures_drawn()
                     else f"{figure!r} (not drawn by the autograder: run the notebook to see it)")

    shell.display_formatter.formatters["text/plain"].for_type(Figure, text)


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


class _Missing:
    """A name a test cell passes to a check that the notebook had not defined."""

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"nothing ({self.why})"


def processes() -> int:
    """How many processes this PID namespace holds (this one included)."""
    try:
        return sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        return 0


def stop_strays() -> None:
    """Kill every other process of this PID namespace, when this process is its first (PID 1),
    before the judge's questions: processes a cell left running (counted and flagged already)
    must not slow the answers down to a timeout. Outside a PID namespace of its own this
    does nothing."""
    if os.getpid() != 1:
        return
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != 1:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:  # reap them: they were this namespace's children
            pass
    except ChildProcessError:
        pass


class Session:
    """The notebook's side: an IPython shell, the outputs of the cell it is running, and the
    student's code each test cell named, as it was when that cell ran.

    A session runs cells and reports each one as a JSON line on a pipe. It can run some
    cells, then fork: each child continues from the state those cells left
    (:class:`grader.instructor.engine.prefix.PrefixServer`)."""

    def __init__(self):
        self.outputs: list = []
        self.size = 0  # characters of output kept for the current cell
        self.shell = _shell(self.record)
        sys.stdout, sys.stderr = _Stream("stdout", self.record), _Stream("stderr", self.record)
        try:
            _figures_drawn_only_where_graded()
            self.shell.enable_matplotlib("inline")
            _say_what_is_not_drawn(self.shell)  # after: choosing the inline formats resets a figure's text
        except Exception:  # noqa: BLE001 - no matplotlib: nothing to show
            pass

    def record(self, output):
        if output is None:
            self.outputs.clear()
            self.size = 0
            return
        length = len(json.dumps(output, default=str))
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

    def subject(self, expression: str):
        """The object a dotted name (``binary_cross_entropy``, ``mine.bce``) stands for now."""
        parts = expression.split(".")
        if not parts or not all(p.isidentifier() for p in parts):
            return _Missing(f"{expression!r} is not a name")
        namespace = self.shell.user_ns
        if parts[0] not in namespace:
            return _Missing(f"{parts[0]} is not defined when the test cell runs")
        value = namespace[parts[0]]
        for part in parts[1:]:
            try:
                value = getattr(value, part)
            except Exception as error:  # noqa: BLE001 - the student's object: anything may happen
                return _Missing(f"{expression} cannot be read: {type(error).__name__}")
        return value

    def run(self, cells, out_fd: int, in_fd: int | None, timeout: int, count_processes: bool = False,
            drawn=()) -> None:
        """Run ``cells`` ((index, source, subjects) triples); write one JSON line per cell to
        ``out_fd``. Before a cell with ``subjects`` (the names its checks are given) runs, they
        are looked up; after it, the judge's requests about them are answered from ``in_fd``.
        Only the cells whose index is in ``drawn`` (those somebody grades) draw their figures."""

        def on_alarm(signum, frame):
            raise CellTimeoutError(f"the cell ran longer than its time limit of {timeout} s")

        me = os.getpid()
        with os.fdopen(out_fd, "wb", buffering=0) as pipe:
            for index, source, subjects in cells:
                self.record(None)
                os.environ[NOT_DRAWN] = "0" if index in drawn else "1"
                found = {name: self.subject(name) for name in subjects or ()}
                signal.signal(signal.SIGALRM, on_alarm)
                signal.alarm(timeout)
                try:
                    result = self.shell.run_cell(source, store_history=True)
                finally:
                    signal.alarm(0)
                if os.getpid() != me:  # a process the cell forked: it must not answer for the notebook
                    os._exit(0)
                message = {"index": index, "outputs": self.outputs, "execution_count": result.execution_count}
                if count_processes:
                    message["processes"] = processes()
                if subjects:
                    message["serving"] = True
                _write(pipe, json.dumps(message, default=str).encode() + b"\n")
                if subjects and in_fd is not None:
                    if count_processes:
                        stop_strays()
                    _serve(found, in_fd, pipe)


def _write(pipe, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = pipe.write(view)
        view = view[written:]


class _Requests:
    """The judge's requests on a pipe: each a JSON line, then the raw bytes of its tensors
    (:func:`wire.frame`), which are read from the pipe straight into the memory of the tensor
    they make: a large case's megabytes are copied once, not once per buffer on the way."""

    def __init__(self, fd: int):
        self.reader = os.fdopen(os.dup(fd), "rb", buffering=0)
        self.buffer = bytearray()

    def _more(self) -> None:
        chunk = self.reader.read(1 << 16)  # a line is short; what follows it is read by take
        if not chunk:
            os._exit(0)  # the judge is gone
        self.buffer.extend(chunk)
        if len(self.buffer) > REQUEST_LIMIT:
            os._exit(3)

    def line(self) -> bytes:
        end = self.buffer.find(b"\n")
        while end < 0:
            searched = len(self.buffer)
            self._more()
            end = self.buffer.find(b"\n", searched)
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line

    def take(self, count: int):
        """The next ``count`` bytes after the request's line, as a ``uint8`` tensor."""
        import torch

        if count > REQUEST_LIMIT:
            os._exit(3)
        taken = torch.empty(count, dtype=torch.uint8)
        view = memoryview(taken.numpy())
        have = min(count, len(self.buffer))
        view[:have] = self.buffer[:have]
        del self.buffer[:have]
        while have < count:
            read = self.reader.readinto(view[have:])
            if not read:
                os._exit(0)  # the judge is gone
            have += read
        return taken

    def close(self) -> None:
        self.reader.close()


def _serve(subjects: dict, in_fd: int, pipe) -> None:
    """Answer the judge's requests about ``subjects`` until it says to go on."""
    requests = _Requests(in_fd)
    while True:
        line = requests.line()
        request = wire.unframe(line, requests.take)  # (the framing: wire.frame)
        if request.get("op") == "continue":
            requests.close()
            return
        subject = subjects.get(request.get("subject"), _Missing("not a name this test cell passes"))
        if isinstance(subject, _Missing):
            found = ({"callable": False, "module": False, "name": "", "shown": repr(subject), "parameters": None}
                     if request.get("op") == "describe" else {"refused": repr(subject)})
        else:
            found = observe.answer(subject, request)
        _write(pipe, wire.dumps({"answer": found}))
